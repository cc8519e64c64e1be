import type * as grpc from "@grpc/grpc-js";
import { GrpcCode } from "../errors.js";
import { ProtoDecodeError } from "../proto/index.js";

/**
 * The standard gRPC health service (grpc/health/v1/health.proto), as etcd registers it (spec §1): service
 * "" answers SERVING for as long as the server runs; any other name is unknown (Check: NOT_FOUND "unknown
 * service", Watch: one SERVICE_UNKNOWN message), as grpc-go's health server answers. etcdctl and Kubernetes
 * probes call it.
 *
 * Its two messages have one field each, so they are coded here by hand rather than generated:
 * HealthCheckRequest { string service = 1; } and HealthCheckResponse { ServingStatus status = 1; }.
 */

export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

export interface HealthCheckRequest {
  service: string;
}

export interface HealthCheckResponse {
  status: number;
}

/** Longest service name we decode: names are short identifiers; this bounds a hostile request. */
const SERVICE_NAME_BYTES_MAX = 4096;

function readVarint(bytes: Uint8Array, at: { pos: number }): number {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at.pos >= bytes.length) throw new ProtoDecodeError("truncated varint");
    const byte = bytes[at.pos++] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return value;
  }
  // Longer varints are legal for uint64 fields; none of ours needs one, and we skip what we do not know.
  for (let i = 0; i < 5; i++) {
    if (at.pos >= bytes.length) throw new ProtoDecodeError("truncated varint");
    if ((bytes[at.pos++] as number) < 0x80) return value;
  }
  throw new ProtoDecodeError("varint over ten bytes");
}

export function decodeHealthCheckRequest(bytes: Uint8Array): HealthCheckRequest {
  const at = { pos: 0 };
  let service = "";
  while (at.pos < bytes.length) {
    const tag = readVarint(bytes, at);
    const wireType = tag & 7;
    if (tag >>> 3 === 0) throw new ProtoDecodeError("field number 0");
    if (wireType === 0) {
      readVarint(bytes, at);
    } else if (wireType === 2) {
      const length = readVarint(bytes, at);
      if (at.pos + length > bytes.length) throw new ProtoDecodeError("length past the message");
      if (tag === 10) {
        if (length > SERVICE_NAME_BYTES_MAX) throw new ProtoDecodeError("service name too long");
        service = Buffer.from(bytes.buffer, bytes.byteOffset + at.pos, length).toString("utf8");
      }
      at.pos += length;
    } else if (wireType === 1 || wireType === 5) {
      at.pos += wireType === 1 ? 8 : 4;
      if (at.pos > bytes.length) throw new ProtoDecodeError("truncated fixed field");
    } else {
      throw new ProtoDecodeError(`wire type ${wireType}`);
    }
  }
  return { service };
}

export function encodeHealthCheckRequest(request: Partial<HealthCheckRequest>): Buffer {
  const name = Buffer.from(request.service ?? "", "utf8");
  if (name.length === 0) return Buffer.alloc(0);
  if (name.length >= 128) throw new RangeError("service name too long for this encoder");
  return Buffer.concat([Buffer.from([10, name.length]), name]);
}

export function encodeHealthCheckResponse(response: HealthCheckResponse): Buffer {
  return response.status === 0 ? Buffer.alloc(0) : Buffer.from([8, response.status]);
}

export function decodeHealthCheckResponse(bytes: Uint8Array): HealthCheckResponse {
  const at = { pos: 0 };
  let status = 0;
  while (at.pos < bytes.length) {
    const tag = readVarint(bytes, at);
    if (tag === 8) status = readVarint(bytes, at);
    else throw new ProtoDecodeError(`unexpected tag ${tag}`);
  }
  return { status };
}

export const HealthService = {
  Check: {
    path: "/grpc.health.v1.Health/Check",
    requestStream: false,
    responseStream: false,
    originalName: "check",
    requestSerialize: encodeHealthCheckRequest,
    requestDeserialize: decodeHealthCheckRequest,
    responseSerialize: encodeHealthCheckResponse,
    responseDeserialize: decodeHealthCheckResponse,
  },
  Watch: {
    path: "/grpc.health.v1.Health/Watch",
    requestStream: false,
    responseStream: true,
    originalName: "watch",
    requestSerialize: encodeHealthCheckRequest,
    requestDeserialize: decodeHealthCheckRequest,
    responseSerialize: encodeHealthCheckResponse,
    responseDeserialize: decodeHealthCheckResponse,
  },
} satisfies grpc.ServiceDefinition;

/** The serving status of each service name; etcd sets only "" (SERVING). */
export class HealthStatus {
  private readonly statuses = new Map<string, number>([["", ServingStatus.SERVING]]);

  get(service: string): number | undefined {
    return this.statuses.get(service);
  }

  set(service: string, status: number): void {
    this.statuses.set(service, status);
  }

  handlers(): grpc.UntypedServiceImplementation {
    const check: grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
      const status = this.get(call.request.service);
      if (status === undefined) callback({ code: GrpcCode.NOT_FOUND, details: "unknown service" }, null);
      else callback(null, { status });
    };
    // Sends the current status and keeps the stream open (status changes are not pushed: etcd's "" never
    // changes while it serves); the client ends it.
    const watch: grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse> = (call) => {
      call.write({ status: this.get(call.request.service) ?? ServingStatus.SERVICE_UNKNOWN });
    };
    return { Check: check, Watch: watch };
  }
}
