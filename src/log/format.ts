/**
 * The value formats etcd's zap logger prints, so our lines read the same: zap's ISO8601 time,
 * Go duration strings ("100ms", "1s", "885.093µs"), go-humanize sizes ("2.1 GB"), %x member ids.
 */
import { formatGoDuration } from "../config/goparse.js";

const MS_PER_MINUTE = 60_000;

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/**
 * zapcore.ISO8601TimeEncoder: "2006-01-02T15:04:05.000Z0700" in local time, "Z" when the offset is
 * zero (etcd in a container or with TZ=UTC prints "2026-11-23T18:17:48.615Z"), else "+0100".
 * `offsetMinutes` is east of UTC (the negation of Date#getTimezoneOffset).
 */
export function formatZapTime(
  epochMs: number,
  offsetMinutes: number = -new Date(epochMs).getTimezoneOffset(),
): string {
  const local = new Date(epochMs + offsetMinutes * MS_PER_MINUTE);
  const date = `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1, 2)}-${pad(local.getUTCDate(), 2)}`;
  const time = `${pad(local.getUTCHours(), 2)}:${pad(local.getUTCMinutes(), 2)}:${pad(local.getUTCSeconds(), 2)}`;
  const millis = pad(local.getUTCMilliseconds(), 3);
  let zone = "Z";
  if (offsetMinutes !== 0) {
    const sign = offsetMinutes > 0 ? "+" : "-";
    const minutes = Math.abs(offsetMinutes);
    zone = `${sign}${pad(Math.floor(minutes / 60), 2)}${pad(minutes % 60, 2)}`;
  }
  return `${date}T${time}.${millis}${zone}`;
}

/** A duration field as zap's StringDurationEncoder prints it (Go's time.Duration.String()). */
export function formatDurationMs(milliseconds: number): string {
  return formatGoDuration(BigInt(Math.round(milliseconds * 1_000_000)));
}

const SI_SIZES = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
const SI_BASE = 1000;

/** go-humanize's Bytes (SI units), used by etcd for "quota-size": 2147483648 -> "2.1 GB". */
export function humanizeBytes(bytes: number): string {
  if (bytes < 10) return `${bytes} B`;
  const exponent = Math.min(Math.floor(Math.log(bytes) / Math.log(SI_BASE)), SI_SIZES.length - 1);
  const value = Math.floor((bytes / SI_BASE ** exponent) * 10 + 0.5) / 10;
  const text = value < 10 ? value.toFixed(1) : value.toFixed(0);
  return `${text} ${SI_SIZES[exponent]}`;
}

/** A 64-bit member/cluster id as etcd prints it (%x: lower-case hex, no padding). */
export function formatId(id: bigint): string {
  return id.toString(16);
}
