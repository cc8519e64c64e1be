/** The lease layer's public surface, for the server and the api. */
export { type Clock, ManualClock, monotonicClock } from "./clock.js";
export {
  type BeginTxnDelete,
  CHECKPOINT_BATCH_MAX,
  CHECKPOINT_INTERVAL_MS_DEFAULT,
  EXPIRED_RETRY_MS_DEFAULT,
  EXPIRY_ROUND_INTERVAL_MS,
  FOREVER_REMAINING_SECONDS,
  type GrantResult,
  LEASE_REVOKE_RATE_PER_SECOND_DEFAULT,
  type LeaseCheckpoint,
  Lessor,
  type LessorOptions,
  MAX_LEASE_TTL_SECONDS,
  minLeaseTtlSeconds,
  REVOKES_IN_FLIGHT_MAX,
  type RenewResult,
  type TimeToLiveResult,
  type TxnDelete,
} from "./lessor.js";
