import type { etcdserverpb } from "../../src/proto/index.js";
import type { LeaseServerApi } from "../../src/server/api.js";
import { StoreServer } from "../api/storeServer.js";

/** Leases as far as the recipes need them: grant hands out ids; keys are not tied to them here. */
export class LeaseStoreServer extends StoreServer implements LeaseServerApi {
  private nextLeaseId = 0x100n;
  /** A learner answers only Status and serializable Range (spec §1.2). */
  isLearner = false;

  constructor() {
    super();
    // Every lease exists here: the lease layer is not what these tests are about.
    this.store.setLeases({ exists: () => true, attach() {}, detach() {} });
  }

  async leaseGrant(request: etcdserverpb.LeaseGrantRequest) {
    return { header: { revision: this.store.revision }, ID: this.nextLeaseId++, TTL: request.TTL };
  }
  async leaseRevoke(): Promise<etcdserverpb.LeaseRevokeResponseInit> {
    throw new Error("not in this double");
  }
  async leaseRenew(): Promise<etcdserverpb.LeaseKeepAliveResponseInit> {
    throw new Error("not in this double");
  }
  async leaseTimeToLive(): Promise<etcdserverpb.LeaseTimeToLiveResponseInit> {
    throw new Error("not in this double");
  }
  async leaseLeases(): Promise<etcdserverpb.LeaseLeasesResponseInit> {
    throw new Error("not in this double");
  }
}
