/**
 * A reference codec for the differential tests: protobufjs's reflection runtime loaded from the same
 * .proto files, and a canonical form (driven by the reflection schema) in which our decoded messages
 * and protobufjs's can be compared field by field.
 */
import { isAbsolute, join, resolve } from "node:path";
import protobuf from "protobufjs";
import { PROTO_FILES } from "../../src/proto/codegen/generate.js";

export { rng } from "../support/prng.js";

const PROTO_ROOT = resolve(import.meta.dirname, "../../src/proto");

export function loadReference(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(PROTO_ROOT, target));
  root.loadSync([...PROTO_FILES], { keepCase: true });
  root.resolveAll();
  return root;
}

export function camelCase(name: string): string {
  return name.replace(/_([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** JSON-able canonical value: 64-bit and other integers as decimal strings, bytes as hex. */
export type Canon = string | boolean | null | Canon[] | { [k: string]: Canon };

function canonScalar(field: protobuf.Field, v: unknown): Canon {
  if (field.resolvedType instanceof protobuf.Enum) return String(v);
  switch (field.type) {
    case "bool":
      return v === true;
    case "string":
      return String(v);
    case "bytes": {
      if (!(v instanceof Uint8Array)) throw new Error(`${field.name}: bytes expected`);
      return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex");
    }
    default:
      if (typeof v === "bigint" || typeof v === "number" || typeof v === "string") return String(v);
      // protobufjs Long
      return String(v);
  }
}

/**
 * Canonical form of a message. `naming` says how the object names fields: "ours" (camelCase,
 * oneofs as {case, value}) or "ref" (protobufjs keepCase, oneof members as plain fields).
 */
export function canon(type: protobuf.Type, obj: Record<string, unknown>, naming: "ours" | "ref"): Canon {
  const out: { [k: string]: Canon } = {};
  for (const field of type.fieldsArray) {
    let v: unknown;
    if (naming === "ours") {
      if (field.partOf !== null) {
        const o = obj[camelCase(field.partOf.name)] as { case: string; value: unknown } | undefined;
        v = o !== undefined && o.case === camelCase(field.name) ? o.value : undefined;
      } else v = obj[camelCase(field.name)];
    } else v = obj[field.name];
    if (v === undefined || v === null) {
      out[field.name] = field.repeated ? [] : null;
      continue;
    }
    const one = (x: unknown): Canon =>
      field.resolvedType instanceof protobuf.Type
        ? canon(field.resolvedType, x as Record<string, unknown>, naming)
        : canonScalar(field, x);
    out[field.name] = field.repeated ? (v as unknown[]).map(one) : one(v);
  }
  return out;
}

/** protobufjs decodes with defaults filled only for scalars; align absent values on both sides. */
export function refToObject(type: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  const decoded = type.decode(bytes);
  return type.toObject(decoded, { longs: String, defaults: true, arrays: true, oneofs: false }) as Record<
    string,
    unknown
  >;
}

/** Our (camelCase, {case, value}) object as a protobufjs keepCase plain object for fromObject. */
export function toRef(type: protobuf.Type, obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    let v: unknown;
    if (field.partOf !== null) {
      const o = obj[camelCase(field.partOf.name)] as { case: string; value: unknown } | undefined | null;
      if (o == null || o.case !== camelCase(field.name)) continue;
      v = o.value;
    } else v = obj[camelCase(field.name)];
    if (v === undefined || v === null) continue;
    const one = (x: unknown): unknown => {
      if (field.resolvedType instanceof protobuf.Type) {
        return toRef(field.resolvedType, x as Record<string, unknown>);
      }
      if (typeof x === "bigint" || (typeof x === "number" && /int64/.test(field.type))) return String(x);
      return x;
    };
    out[field.name] = field.repeated ? (v as unknown[]).map(one) : one(v);
  }
  return out;
}

const TWO_POW_53 = 2 ** 53;

/** A random message in our Init shape, for the schema `type`, nested at most `depthLeft` deep. */
export function randomMessage(
  type: protobuf.Type,
  next: () => number,
  depthLeft: number,
): Record<string, unknown> {
  const pick = (n: number) => Math.floor(next() * n);
  const u32 = () => Math.floor(next() * 4294967296);
  const out: Record<string, unknown> = {};
  const value = (field: protobuf.Field): unknown => {
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) return randomMessage(rt, next, depthLeft - 1);
    if (rt instanceof protobuf.Enum) {
      const values = Object.values(rt.values);
      const r = pick(10);
      return r === 0 ? -1 : r === 1 ? 77 : values[pick(values.length)];
    }
    const numberTyped = field.options?.["jstype"] === "JS_NUMBER";
    switch (field.type) {
      case "bool":
        return next() < 0.5;
      case "uint32":
        return pick(3) === 0 ? pick(200) : u32();
      case "int64":
      case "uint64": {
        const signed = field.type === "int64";
        const shape = pick(5);
        if (numberTyped) {
          if (shape === 0) return pick(128);
          if (shape === 1) return signed ? -pick(1e6) : pick(1e6);
          if (shape === 2) return Math.floor(next() * TWO_POW_53);
          if (shape === 3) return signed ? -Math.floor(next() * TWO_POW_53) : TWO_POW_53 - 1;
          return pick(1 << 30);
        }
        const big = (BigInt(u32()) << 32n) | BigInt(u32());
        if (shape === 0) return BigInt(pick(128));
        if (shape === 1) return signed ? -BigInt(pick(1e6)) : BigInt(pick(1e6));
        return signed ? BigInt.asIntN(64, big) : BigInt.asUintN(64, big);
      }
      case "string": {
        const alphabet = ["a", "Z", "0", "/", "é", "ß", "中", "😀", "\u0000", " "];
        const len = pick(4) === 0 ? 70 + pick(100) : pick(12);
        let s = "";
        for (let i = 0; i < len; i++) s += alphabet[pick(alphabet.length)];
        return s;
      }
      case "bytes": {
        const len = pick(5) === 0 ? 200 + pick(2000) : pick(20);
        const b = new Uint8Array(len);
        for (let i = 0; i < len; i++) b[i] = pick(256);
        return b;
      }
      default:
        throw new Error(`unsupported field type ${field.type}`);
    }
  };
  for (const field of type.fieldsArray) {
    if (field.partOf !== null) continue;
    const isMessage = field.resolvedType instanceof protobuf.Type;
    if (isMessage && depthLeft <= 0) continue;
    if (next() < 0.25) continue;
    out[camelCase(field.name)] = field.repeated
      ? Array.from({ length: pick(4) }, () => value(field))
      : value(field);
  }
  for (const oneof of type.oneofsArray) {
    const members = oneof.fieldsArray.filter(
      (f) => !(f.resolvedType instanceof protobuf.Type) || depthLeft > 0,
    );
    if (members.length === 0 || next() < 0.2) continue;
    const f = members[pick(members.length)]!;
    out[camelCase(oneof.name)] = { case: camelCase(f.name), value: value(f) };
  }
  return out;
}

/**
 * One line per message, enum and service: every field as number:name:label:type:oneof, every enum
 * value, every method with its streaming. Comparable across two sets of .proto files.
 */
export function schemaListing(root: protobuf.Root): string[] {
  const lines: string[] = [];
  const walk = (ns: protobuf.NamespaceBase) => {
    for (const o of ns.nestedArray) {
      const name = o.fullName.slice(1);
      if (o instanceof protobuf.Type) {
        const fields = o.fieldsArray
          .slice()
          .sort((x, y) => x.id - y.id)
          .map((f) => {
            const type = f.resolvedType ? f.resolvedType.fullName.slice(1) : f.type;
            return `${f.id}:${f.name}:${f.repeated ? "repeated" : ""}:${type}:${f.partOf?.name ?? ""}`;
          });
        lines.push(`message ${name} ${fields.join(" ")}`);
        walk(o);
      } else if (o instanceof protobuf.Enum) {
        lines.push(
          `enum ${name} ${Object.entries(o.values)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")}`,
        );
      } else if (o instanceof protobuf.Service) {
        const methods = o.methodsArray.map((m) => {
          const req = `${m.requestStream ? "stream " : ""}${m.resolvedRequestType?.fullName.slice(1)}`;
          return `${m.name}(${req})->${m.responseStream ? "stream " : ""}${m.resolvedResponseType?.fullName.slice(1)}`;
        });
        lines.push(`service ${name} ${methods.join(" ")}`);
      } else if (o instanceof protobuf.Namespace) walk(o);
    }
  };
  walk(root);
  return lines.sort();
}
