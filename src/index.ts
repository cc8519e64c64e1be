/**
 * etcd-ts as a library: start a member inside this Node process, with the same options as the
 * `etcd-ts` flags (camelCase, units last), as Go programs embed etcd.
 *
 *   import { startMember } from "etcd-ts";
 *   const member = await startMember({
 *     dataDir: "./data",
 *     listenClientUrls: "http://127.0.0.1:0",
 *     advertiseClientUrls: "http://127.0.0.1:0",
 *   });
 *   console.log(member.clientUrls); // [ "http://127.0.0.1:41234" ]
 *   await member.close();
 *
 * startMember rejects with a ConfigError (bad options, `code` and etcd's message) or a MemberError
 * (the data dir and the options disagree, an unsupported URL) before anything is served.
 */
export { ConfigError, type ConfigErrorCode } from "./config/errors.js";
export type { MemberConfig, MemberOptions, ZapLevel } from "./config/types.js";
export { ETCD_SERVER_VERSION, ETCD_TS_VERSION } from "./config/version.js";
export type { Logger } from "./log/logger.js";
export { createLogger, type LoggerOptions } from "./log/logger.js";
export { MemberError, type MemberErrorCode } from "./server/bootstrap.js";
export { type FatalHandler, type Member, type StartMemberOptions, startMember } from "./server/member.js";
