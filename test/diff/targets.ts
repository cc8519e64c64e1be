import { StoreServer, startStoreServer } from "../api/storeServer.js";
import { startEtcdTs } from "../support/etcdTs.js";
import { startRealEtcd } from "../support/realEtcd.js";

/**
 * A server the differential suite can run a scenario against: start it fresh (empty store, revision 1),
 * get its client endpoint, stop it.
 */
export interface DiffTarget {
  name: string;
  /** `flags`: extra etcd flags (both etcd and etcd-ts take them; the store double ignores them). */
  start(flags?: readonly string[]): Promise<RunningTarget>;
}

export interface RunningTarget {
  /** host:port for etcdctl's --endpoints. */
  endpoint: string;
  stop(): Promise<void>;
}

export const realEtcdTarget: DiffTarget = {
  name: "etcd-3.4.23",
  async start(flags) {
    const etcd = await startRealEtcd({ flags: [...(flags ?? [])] });
    return { endpoint: etcd.endpoint, stop: () => etcd.stop() };
  },
};

/** Every target's member is named as test/support/realEtcd.ts names the real one (--name=ref). */
const MEMBER_NAME = "ref";

/** The etcd-ts bin as a child process (test/support/etcdTs.ts): raft, WAL and lmdb, one member. */
export const etcdTsTarget: DiffTarget = {
  name: "etcd-ts",
  async start(flags) {
    const member = await startEtcdTs({ name: MEMBER_NAME, flags: [...(flags ?? [])] });
    return {
      endpoint: member.endpoint,
      stop: async () => {
        const code = await member.stop();
        if (code !== 0) throw new Error(`etcd-ts exited with ${code} on SIGTERM:\n${member.stderr()}`);
      },
    };
  },
};

/** The api layer over a bare store (test/api/storeServer.ts): no raft, no WAL. */
export const storeDoubleTarget: DiffTarget = {
  name: "store-double",
  async start() {
    const running = await startStoreServer(new StoreServer(undefined, MEMBER_NAME));
    return { endpoint: running.endpoint, stop: () => running.stop() };
  },
};

/**
 * A deliberately wrong server, to prove that the comparison catches differences: every Put reports a
 * header revision one too high.
 */
class OffByOneServer extends StoreServer {
  override async put(request: Parameters<StoreServer["put"]>[0]) {
    const response = await super.put(request);
    return { ...response, header: { revision: (response.header?.revision ?? 0) + 1 } };
  }
}

export const offByOneTarget: DiffTarget = {
  name: "off-by-one",
  async start() {
    const running = await startStoreServer(new OffByOneServer(undefined, MEMBER_NAME));
    return { endpoint: running.endpoint, stop: () => running.stop() };
  },
};
