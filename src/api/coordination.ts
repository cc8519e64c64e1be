import type * as grpc from "@grpc/grpc-js";
import type { EtcdServerApi, LeaseServerApi } from "../server/api.js";
import type { WatchHub } from "../watch/hub.js";

/**
 * The v3lock and v3election services (spec §9): etcd's server implements them on top of its own lease,
 * txn and watch; so do these. createApi serves each one given here and answers "unknown service" for
 * one that is absent.
 */
export interface CoordinationDeps {
  readonly server: EtcdServerApi & LeaseServerApi;
  readonly hub: WatchHub;
}

export interface CoordinationServices {
  readonly lock?: grpc.UntypedServiceImplementation;
  readonly election?: grpc.UntypedServiceImplementation;
}

export function createCoordinationServices(_deps: CoordinationDeps): CoordinationServices {
  return {};
}
