/**
 * The peer transport: raft messages between members over --listen-peer-urls (etcd's rafthttp).
 *
 * Wiring in the server (etcd's raftNode + EtcdServer):
 *
 *   const transport = await createTransport({
 *     clusterId, memberId, listen: cfg.listenPeerUrls, advertiseUrls: cfg.initialAdvertisePeerUrls,
 *     logger, snapshotDir: `${dataDir}/member/snap`,
 *     onMessage: (m, file) => { node.step(m); raftLoop.kick(); },   // file: MsgSnap's durable db
 *     onUnreachable: (id) => node.reportUnreachable(id),
 *     onSnapshotStatus: (id, ok) => node.reportSnapshot(id, ok ? SnapshotStatus.Finish : SnapshotStatus.Failure),
 *     onMemberRemoved: (err) => server.stopWithError(err),          // "permanently removed from the cluster"
 *     isRemoved: (id) => membership.isRemoved(id),
 *     snapshotData: (m) => backend.snapshotStream(),                // MsgSnap from send() gets its data here
 *     members: () => membership.list(), clusterVersion: () => cluster.version,
 *   });
 *   for (const m of membership.list()) if (m.id !== memberId) transport.addPeer(m.id, m.peerUrls);
 *   new RaftLoop({ ..., transport });     // RaftTransport.send: the Ready's messages, never blocks
 *   transport.handle("/leases", leaseHandler); ...
 *
 * Conf changes: AddNode/AddLearnerNode -> addPeer, RemoveNode -> removePeer (after the membership marks
 * the id removed), UpdateNode -> updatePeer; after applying a received snapshot, removePeer/addPeer to
 * match its member list (etcd: RemoveAllPeers + AddPeer).
 */
export type { PeerCounters, ReceivedSnapshot } from "./context.js";
export { EtcdPeerText, isTransportError, TransportError, TransportErrorCode } from "./errors.js";
export { FrameKind } from "./frame.js";
export { PEER_PROTOCOL_VERSION, SNAPSHOT_PATH, STREAM_PATH_PREFIX } from "./headers.js";
export type { PeerHttpHandler, PeerMember } from "./http.js";
export { TRANSPORT_LIMITS_DEFAULT, type TransportLimits } from "./limits.js";
export { type PeerNetwork, plainHttpNetwork } from "./network.js";
export { SNAPSHOT_FILE_SUFFIX, snapshotFileName } from "./snapshot.js";
export { createTransport, type PeerStatus, Transport, type TransportOptions } from "./transport.js";
