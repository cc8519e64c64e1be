/**
 * grpc-js glue for the generated codecs: typed method definitions (what gen/services.ts is built
 * from), typed client method shapes, a promise helper, and the pre-encoded variant for load
 * generators. Hand-written; gen/services.ts instantiates it per service.
 */
import * as grpc from "@grpc/grpc-js";
import type { MessageType } from "./runtime.js";

/**
 * One RPC as grpc-js sees it. `ReqIn`/`ResIn` are what the serializers accept (Init shapes: every field
 * optional), `Req`/`Res` what the deserializers produce (every field present). Structurally a
 * grpc.MethodDefinition, so a record of these is a grpc.ServiceDefinition.
 */
export interface EtcdMethodDefinition<ReqIn, Req, ResIn, Res> {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly originalName: string;
  readonly requestSerialize: (value: ReqIn) => Buffer;
  readonly requestDeserialize: (bytes: Buffer) => Req;
  readonly responseSerialize: (value: ResIn) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => Res;
  readonly requestType: MessageType<Req, ReqIn>;
  readonly responseType: MessageType<Res, ResIn>;
}

export function methodDefinition<Req extends ReqIn, ReqIn, Res extends ResIn, ResIn>(
  path: string,
  originalName: string,
  requestStream: boolean,
  responseStream: boolean,
  requestType: MessageType<Req, ReqIn>,
  responseType: MessageType<Res, ResIn>,
): EtcdMethodDefinition<ReqIn, Req, ResIn, Res> {
  return {
    path,
    requestStream,
    responseStream,
    originalName,
    requestSerialize: requestType.encode,
    requestDeserialize: requestType.decode,
    responseSerialize: responseType.encode,
    responseDeserialize: responseType.decode,
    requestType,
    responseType,
  };
}

// ---- client method shapes (what makeGenericClientConstructor builds, typed) ----

export interface UnaryClientMethod<ReqIn, Res> {
  (
    request: ReqIn,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
  (request: ReqIn, metadata: grpc.Metadata, callback: grpc.requestCallback<Res>): grpc.ClientUnaryCall;
  (
    request: ReqIn,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
  (request: ReqIn, callback: grpc.requestCallback<Res>): grpc.ClientUnaryCall;
}

export interface ServerStreamClientMethod<ReqIn, Res> {
  (
    request: ReqIn,
    metadata?: grpc.Metadata,
    options?: Partial<grpc.CallOptions>,
  ): grpc.ClientReadableStream<Res>;
  (request: ReqIn, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<Res>;
}

export interface BidiClientMethod<ReqIn, Res> {
  (metadata?: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<ReqIn, Res>;
  (options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<ReqIn, Res>;
}

export interface ClientConstructor<C extends grpc.Client> {
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>): C;
  readonly service: grpc.ServiceDefinition;
  readonly serviceName: string;
}

/** The same client whose request arguments are bytes already encoded (see preEncodedService). */
export type PreEncodedClient<C extends grpc.Client> = grpc.Client & {
  [K in Exclude<keyof C, keyof grpc.Client>]: C[K] extends UnaryClientMethod<infer _ReqIn, infer Res>
    ? UnaryClientMethod<Uint8Array, Res>
    : C[K] extends ServerStreamClientMethod<infer _ReqIn, infer Res>
      ? ServerStreamClientMethod<Uint8Array, Res>
      : C[K] extends BidiClientMethod<infer _ReqIn, infer Res>
        ? BidiClientMethod<Uint8Array, Res>
        : C[K];
};

type AnyMethodDefinition = EtcdMethodDefinition<never, unknown, never, unknown>;

function passBytes(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A copy of `service` whose requestSerialize passes bytes through: a load generator encodes a request
 * once (e.g. `PutRequest.encode(...)`) and sends the same bytes on every call. Responses still decode.
 *
 *   const Raw = makeClient<PreEncodedClient<KVClient>>(preEncodedService(KVService), "etcdserverpb.KV");
 *   new Raw(addr, creds).Put(encodedPut, cb);
 */
export function preEncodedService<S extends Record<string, AnyMethodDefinition>>(
  service: S,
): grpc.ServiceDefinition {
  const copy: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    copy[name] = { ...method, requestSerialize: passBytes };
  }
  return copy as grpc.ServiceDefinition;
}

/** grpc.makeGenericClientConstructor, typed with the client interface the service generates. */
export function makeClient<C extends grpc.Client>(
  service: grpc.ServiceDefinition,
  serviceName: string,
): ClientConstructor<C> {
  return grpc.makeGenericClientConstructor(service, serviceName) as unknown as ClientConstructor<C>;
}

/** Calls a unary method and settles with its response or its grpc.ServiceError. */
export function callUnary<ReqIn, Res>(
  client: grpc.Client,
  method: UnaryClientMethod<ReqIn, Res>,
  request: ReqIn,
  metadata: grpc.Metadata = new grpc.Metadata(),
  options: Partial<grpc.CallOptions> = {},
): Promise<Res> {
  const invoke: (
    request: ReqIn,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<Res>,
  ) => grpc.ClientUnaryCall = method;
  return new Promise((resolve, reject) => {
    invoke.call(client, request, metadata, options, (error, response) => {
      if (error !== null) reject(error);
      else if (response === undefined) reject(new Error("unary call ended without a response"));
      else resolve(response);
    });
  });
}
