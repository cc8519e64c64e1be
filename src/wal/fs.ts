import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  renameSync,
  unlinkSync,
  writevSync,
} from "node:fs";
import { open } from "node:fs/promises";

/**
 * The file-system seam of the WAL writer. Everything the worker does to disk goes through it, so tests
 * can inject faults (short writes, ENOSPC, EIO on fdatasync) without touching the real kernel paths.
 * The hot path is synchronous on purpose: the writer thread does nothing else while it waits for the
 * disk, and a synchronous call avoids a thread-pool hop per batch. Preallocation is asynchronous so it
 * runs on the thread pool beside the writer.
 */
export interface WalFs {
  /** `flags` as for fs.openSync ("r+", "w+"...). */
  open(path: string, flags: string): number;
  /** Writes all buffers at `positionBytes`; returns the bytes written (less than asked = short write). */
  writev(fd: number, buffers: readonly Uint8Array[], positionBytes: number): number;
  fdatasync(fd: number): void;
  fsync(fd: number): void;
  ftruncate(fd: number, lengthBytes: number): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  close(fd: number): void;
  /** Opens a directory so it can be fsynced after a rename. */
  openDirectory(path: string): number;
  /** Creates (or truncates) `path` and fills it with `sizeBytes` zeros, synced: allocated blocks. */
  preallocate(path: string, sizeBytes: number): Promise<void>;
}

/** Chunk used to write preallocation zeros: large enough to be cheap, small enough to hold in memory. */
const PREALLOCATE_CHUNK_BYTES = 1 << 20;

/**
 * Writing real zeros (not ftruncate, which leaves a sparse file) is what makes later fdatasyncs cheap:
 * the blocks are allocated and the file size does not change per append. Measured here: ~6.6k
 * write+fdatasync/s into a zero-filled file against ~4.7k/s into a growing or sparse one.
 */
async function preallocateZeros(path: string, sizeBytes: number): Promise<void> {
  const handle = await open(path, "w", 0o600);
  try {
    const zeros = new Uint8Array(Math.min(PREALLOCATE_CHUNK_BYTES, Math.max(sizeBytes, 1)));
    let written = 0;
    while (written < sizeBytes) {
      const length = Math.min(zeros.length, sizeBytes - written);
      const { bytesWritten } = await handle.write(zeros, 0, length, written);
      if (bytesWritten !== length) throw new Error(`short write while preallocating ${path}`);
      written += length;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const nodeWalFs: WalFs = {
  open: (path, flags) => openSync(path, flags, 0o600),
  writev: (fd, buffers, positionBytes) => writevSync(fd, buffers as Uint8Array[], positionBytes),
  fdatasync: (fd) => fdatasyncSync(fd),
  fsync: (fd) => fsyncSync(fd),
  ftruncate: (fd, lengthBytes) => ftruncateSync(fd, lengthBytes),
  rename: (from, to) => renameSync(from, to),
  unlink: (path) => unlinkSync(path),
  close: (fd) => closeSync(fd),
  openDirectory: (path) => openSync(path, "r"),
  preallocate: preallocateZeros,
};

/**
 * Faults for tests, counted per call from 1 (so "at 3" fails the third writev). Passed to the worker
 * through workerData, so they must stay plain data.
 */
export interface WalFaults {
  /** The nth writev writes only a prefix of its bytes (cut at a sector boundary) and returns that count. */
  shortWriteAt?: number;
  /** The nth writev writes a sector-aligned prefix, then fails with ENOSPC. */
  enospcAt?: number;
  /** The nth fdatasync fails with EIO. */
  eioOnFdatasyncAt?: number;
  /** The nth writev ends the worker thread abruptly, as a crash of the worker would. */
  exitWorkerAt?: number;
  /** The nth fdatasync takes this much longer (a slow disk), for the slow-fsync warning. */
  slowFdatasyncAt?: number;
  slowFdatasyncMs?: number;
}

/**
 * Kernels copy a write into the page cache a page at a time, so a write cut short by ENOSPC or a fatal
 * signal stops at a page boundary; the fault keeps to sector boundaries, which is what torn-write
 * detection assumes.
 */
const FAULT_ALIGN_BYTES = 512;

/** Blocks the (writer) thread, as a slow disk would. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${syscall}`);
  err.code = code;
  err.syscall = syscall;
  return err;
}

/** Writes the sector-aligned prefix of `buffers` (starting at file offset `positionBytes`). */
function writePrefix(
  inner: WalFs,
  fd: number,
  buffers: readonly Uint8Array[],
  positionBytes: number,
): number {
  let total = 0;
  for (const b of buffers) total += b.length;
  const endAligned =
    Math.floor((positionBytes + Math.floor(total / 2)) / FAULT_ALIGN_BYTES) * FAULT_ALIGN_BYTES;
  let keep = Math.max(0, endAligned - positionBytes);
  const prefix: Uint8Array[] = [];
  for (const b of buffers) {
    if (keep === 0) break;
    const part = b.subarray(0, Math.min(b.length, keep));
    prefix.push(part);
    keep -= part.length;
  }
  return prefix.length === 0 ? 0 : inner.writev(fd, prefix, positionBytes);
}

export function faultyWalFs(inner: WalFs, faults: WalFaults, exitWorker: () => never): WalFs {
  let writes = 0;
  let datasyncs = 0;
  return {
    ...inner,
    writev(fd, buffers, positionBytes) {
      writes++;
      if (writes === faults.exitWorkerAt) exitWorker();
      if (writes === faults.shortWriteAt) return writePrefix(inner, fd, buffers, positionBytes);
      if (writes === faults.enospcAt) {
        writePrefix(inner, fd, buffers, positionBytes);
        throw errnoError("ENOSPC", "writev");
      }
      return inner.writev(fd, buffers, positionBytes);
    },
    fdatasync(fd) {
      datasyncs++;
      if (datasyncs === faults.eioOnFdatasyncAt) throw errnoError("EIO", "fdatasync");
      inner.fdatasync(fd);
      if (datasyncs === faults.slowFdatasyncAt) sleepSync(faults.slowFdatasyncMs ?? 0);
    },
  };
}
