/**
 * etcd-ts raft: a pure, deterministic consensus state machine in the style of etcd-io/raft. See RawNode and
 * Ready (rawnode.ts) for how the server drives it, and types.ts for the data shapes.
 */
export { RaftAssertionError } from "./assert.js";
export * from "./codec.js";
export { LEAVE_JOINT, toConfChangeV2 } from "./confchange.js";
export { isRaftError, RaftError, RaftErrorCode } from "./errors.js";
export type { ProgressStatus, RaftBug, RaftConfig, Status } from "./raft.js";
export type { Peer, Ready } from "./rawnode.js";
export { RawNode } from "./rawnode.js";
export type { Rng } from "./rng.js";
export { Xoshiro128 } from "./rng.js";
export type { Storage } from "./storage.js";
export { MemoryStorage, NO_LIMIT } from "./storage.js";
export { ProgressState } from "./tracker.js";
export * from "./types.js";
