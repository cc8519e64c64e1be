import { createRequire } from "node:module";

/**
 * grpc-go's text for a message over the receive limit. etcd answers an oversized request with
 * RESOURCE_EXHAUSTED `grpc: received message larger than max (N vs. M)`; grpc-js with the same code but
 * `Received message larger than max (N vs M)`. grpc-js builds that status in its frame decoder
 * (build/src/stream-decoder.js, StreamDecoder.write throws; server-interceptors.js handleDataFrame sends
 * the error's message), before any handler or interceptor runs, so no public hook can change it.
 *
 * What we do instead: wrap StreamDecoder.prototype.write once per process and rewrite that one error's
 * message on its way out. The cost is one extra call frame per received DATA frame, not per call:
 * measured at ~550 ns per StreamDecoder.write of a 300-byte frame both with and without the wrapper
 * (difference below the noise, < 10 ns); the normal path never enters the catch. If a grpc-js upgrade moves or renames the decoder, nothing is
 * patched (grpc-js's own text stays) and test/api/grpc.test.ts, which pins etcd's text, fails: the place
 * to look. Client-side decoders in this process get the same text, which is grpc-go's client text too.
 */

const GRPC_JS_TEXT = /^Received message larger than max \((\d+) vs (\d+)\)$/;
const PATCHED = Symbol.for("etcd-ts.grpcGoOversizeText");

interface DecoderPrototype {
  write(this: unknown, data: Buffer): Buffer[];
  [PATCHED]?: true;
}

/** grpc-go's wording of grpc-js's oversize message, or null for any other text. */
export function grpcGoOversizeText(grpcJsText: string): string | null {
  const match = GRPC_JS_TEXT.exec(grpcJsText);
  return match === null ? null : `grpc: received message larger than max (${match[1]} vs. ${match[2]})`;
}

/**
 * Makes grpc-js report oversized messages with grpc-go's text (see above). Idempotent; answers whether
 * the decoder was found (false: grpc-js's text stays).
 */
export function useGrpcGoOversizeText(): boolean {
  let prototype: DecoderPrototype | undefined;
  try {
    const require = createRequire(import.meta.url);
    const module = require("@grpc/grpc-js/build/src/stream-decoder.js") as {
      StreamDecoder?: { prototype?: DecoderPrototype };
    };
    prototype = module.StreamDecoder?.prototype;
  } catch {
    return false;
  }
  if (prototype === undefined || typeof prototype.write !== "function") return false;
  if (prototype[PATCHED] === true) return true;
  const write = prototype.write;
  prototype.write = function writeWithGrpcGoText(this: unknown, data: Buffer): Buffer[] {
    try {
      return write.call(this, data);
    } catch (error) {
      if (error instanceof Error) {
        const text = grpcGoOversizeText(error.message);
        if (text !== null) error.message = text;
      }
      throw error;
    }
  };
  prototype[PATCHED] = true;
  return true;
}
