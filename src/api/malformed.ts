import type * as grpc from "@grpc/grpc-js";
import { GrpcCode } from "../errors.js";
import type { GrpcStatus } from "./status.js";

/**
 * Requests whose bytes do not decode. grpc-js answers a deserializer that throws with its own status
 * (INTERNAL "Error deserializing request"), before any handler or interceptor runs. etcd (grpc-go)
 * answers INTERNAL "grpc: error unmarshalling request: <gogo's error>" for a unary call, and UNIMPLEMENTED
 * for a method it does not serve whatever the payload. So the api's deserializers never throw: a bad
 * message decodes to a MalformedRequest, which the handler turns into grpc-go's status (unary calls:
 * ./call.ts; stream messages: malformedStreamStatus) or ignores (unserved methods answer UNIMPLEMENTED).
 *
 * Cost per call: the wrapper's call frame and one `instanceof` in the handler (a try block costs nothing
 * in V8 until it throws).
 */
export class MalformedRequest {
  constructor(readonly reason: string) {}
}

/** grpc-go's status for a unary request that does not decode (server.go processUnaryRPC). */
export function malformedUnaryStatus(request: MalformedRequest): GrpcStatus {
  return { code: GrpcCode.INTERNAL, details: `grpc: error unmarshalling request: ${request.reason}` };
}

/**
 * grpc-go's status for a stream message that does not decode (stream.RecvMsg): the handler returns it
 * and the stream ends with it, e.g. a LeaseKeepAlive or Watch request.
 */
export function malformedStreamStatus(request: MalformedRequest): GrpcStatus {
  return {
    code: GrpcCode.INTERNAL,
    details: `grpc: failed to unmarshal the received message ${request.reason}`,
  };
}

/** True when the decoded request is a MalformedRequest (typed requests can be one, see above). */
export function isMalformed(request: unknown): request is MalformedRequest {
  return request instanceof MalformedRequest;
}

type Deserializer = (bytes: Buffer) => unknown;

function tolerant(deserialize: Deserializer): Deserializer {
  return (bytes) => {
    try {
      return deserialize(bytes);
    } catch (error) {
      return new MalformedRequest(error instanceof Error ? error.message : String(error));
    }
  };
}

/** `definition` with every request deserializer made tolerant (see MalformedRequest). */
export function withTolerantDecoding<D extends grpc.ServiceDefinition>(definition: D): D {
  const copy: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    copy[name] = { ...method, requestDeserialize: tolerant(method.requestDeserialize) };
  }
  return copy as D;
}
