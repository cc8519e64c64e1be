/**
 * Typed WAL errors with stable codes: callers match `code`, never the message text.
 *
 * Two families:
 * - bad input or a WAL that cannot be opened (the caller decides what to do): NOT_FOUND, EXISTS,
 *   CORRUPT, SNAPSHOT_NOT_FOUND, SNAPSHOT_MISMATCH, METADATA_CONFLICT, INDEX_GAP, RECORD_TOO_LARGE,
 *   CLOSED;
 * - FATAL: the writer failed (worker died, fsync failed, short write, ENOSPC). After a failed fsync the
 *   page cache cannot be trusted, so there is no retry: every pending and future append is rejected and
 *   the fatal handler stops the process.
 */
export type WalErrorCode =
  | "WAL_NOT_FOUND"
  | "WAL_EXISTS"
  | "WAL_CORRUPT"
  | "WAL_SNAPSHOT_NOT_FOUND"
  | "WAL_SNAPSHOT_MISMATCH"
  | "WAL_METADATA_CONFLICT"
  | "WAL_INDEX_GAP"
  | "WAL_RECORD_TOO_LARGE"
  | "WAL_CLOSED"
  | "WAL_FATAL"
  | "SNAP_CORRUPT";

export class WalError extends Error {
  override readonly name = "WalError";

  constructor(
    readonly code: WalErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A record that fails its checks where a torn write cannot explain it. Names the file and offset. */
export class WalCorruptError extends WalError {
  constructor(
    readonly file: string,
    readonly offsetBytes: number,
    reason: string,
  ) {
    super("WAL_CORRUPT", `wal: corrupt record in ${file} at offset ${offsetBytes}: ${reason}`);
  }
}
