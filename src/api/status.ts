import type * as grpc from "@grpc/grpc-js";
import { Errors, EtcdError, GrpcCode } from "../errors.js";

/**
 * The one place where errors become gRPC statuses (etcd's togRPCError / toGRPCErrorMap,
 * server/etcdserver/api/v3rpc/util.go):
 * - an `EtcdError` (src/errors.ts holds etcd's table: exact text and code per error) goes out with its
 *   code and text;
 * - an `ApiError` (below: errors of this layer that src/errors.ts does not list) likewise;
 * - anything else is a bug or an unexpected failure: UNKNOWN with the error's message, as etcd sends an
 *   unmapped error (`status.Error(codes.Unknown, err.Error())`).
 */

/** Errors raised by the api layer itself, with etcd's text and code. */
export const ApiErrors = {
  /**
   * etcd 3.6's checkRangeRequest: a sort order or target outside the enum. etcd 3.4.23 has no such check
   * and panics (sort.Sort on a nil sorter) on an unknown target; we answer as 3.6 does.
   */
  InvalidSortOption: { message: "etcdserver: invalid sort option", grpcCode: GrpcCode.INVALID_ARGUMENT },
} as const;

export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly grpcCode: number;

  constructor(readonly code: keyof typeof ApiErrors) {
    super(ApiErrors[code].message);
    this.grpcCode = ApiErrors[code].grpcCode;
  }
}

/** What grpc-js takes as an error status (callback first argument, or a stream's 'error' event). */
export interface GrpcStatus extends Partial<grpc.StatusObject> {
  code: number;
  details: string;
}

/** Statuses of EtcdErrors are built once: they are immutable and grpc-js only reads them. */
const etcdStatuses = new Map<string, GrpcStatus>(
  Object.entries(Errors).map(([code, spec]) => [code, { code: spec.grpcCode, details: spec.message }]),
);

export function toGrpcStatus(error: unknown): GrpcStatus {
  if (error instanceof EtcdError) {
    return etcdStatuses.get(error.code) ?? { code: error.grpcCode, details: error.message };
  }
  if (error instanceof ApiError) return { code: error.grpcCode, details: error.message };
  const details = error instanceof Error ? error.message : String(error);
  return { code: GrpcCode.UNKNOWN, details };
}

/** grpc-go's answer for a method or service it does not serve (server.go handleStream). */
export function unimplementedStatus(service: string, method: string | undefined): GrpcStatus {
  return {
    code: GrpcCode.UNIMPLEMENTED,
    details:
      method === undefined ? `unknown service ${service}` : `unknown method ${method} for service ${service}`,
  };
}
