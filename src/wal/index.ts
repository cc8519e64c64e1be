// The WAL's public surface for the server: the log, snapshot files, their types and errors.
export { WalCorruptError, WalError, type WalErrorCode } from "./errors.js";
export type { WalFaults } from "./fs.js";
export { silentLogger, stderrLogger, type WalLogger } from "./log.js";
export {
  SNAPSHOTTER_DEFAULTS,
  type SnapshotFile,
  Snapshotter,
  type SnapshotterOptions,
  snapshotName,
} from "./snap.js";
export type { WalEntry, WalHardState, WalMetadata, WalSnapshotMarker, WalSnapshotPosition } from "./types.js";
export { EMPTY_HARD_STATE, isEmptyHardState } from "./types.js";
export {
  exitOnFatal,
  WAL_DEFAULTS,
  Wal,
  type WalFatalHandler,
  type WalOpenOptions,
  type WalOpenResult,
  type WalOptions,
  type WalStats,
} from "./wal.js";
