/**
 * The versions etcd-ts reports. Clients decide what they may call from the server's version
 * (Status.version, /version, etcd_server_version), so those report the etcd release whose API
 * etcd-ts implements, not etcd-ts's own version; `etcd-ts --version` shows both.
 */

/** etcd-ts's own version (kept equal to package.json's "version"; a test checks it). */
export const ETCD_TS_VERSION = "0.1.0";

/** The etcd release whose v3 API and behaviour etcd-ts implements: Status.version, /version "etcdserver". */
export const ETCD_SERVER_VERSION = "3.4.23";

/** /version "etcdcluster" once the cluster version is decided (etcd prints major.minor.0). */
export const ETCD_CLUSTER_VERSION = "3.4.0";

/** The cluster version as etcd logs it and uses in capability checks and metrics ("3.4"). */
export const ETCD_CLUSTER_VERSION_MINOR = "3.4";

/** /version "etcdcluster" before the members have agreed on a cluster version. */
export const ETCD_CLUSTER_VERSION_NOT_DECIDED = "not_decided";

/** etcd prints this when built without a commit id; release builds may set ETCD_TS_GIT_SHA at build time. */
export const GIT_SHA_NOT_PROVIDED = "Not provided";

/**
 * `etcd-ts --version`: etcd's four lines adapted to Node, plus the etcd version implemented. The
 * "etcd Version:" line is kept so scripts that read it (`etcd --version | awk ...`) see the API level.
 */
export function versionText(gitSha: string = GIT_SHA_NOT_PROVIDED): string {
  return [
    `etcd-ts Version: ${ETCD_TS_VERSION}`,
    `etcd Version: ${ETCD_SERVER_VERSION}`,
    `etcd API Version: ${ETCD_CLUSTER_VERSION_MINOR}`,
    `Git SHA: ${gitSha}`,
    `Node Version: ${process.version}`,
    `Node OS/Arch: ${process.platform}/${process.arch}`,
    "",
  ].join("\n");
}
