/**
 * Helpers for the URL objects in MemberConfig. WHATWG URLs drop a port equal to the scheme's
 * default (http://h:80 has port ""), and print "http://h:2379/" where etcd prints "http://h:2379";
 * these give back what etcd would use and print.
 */

const DEFAULT_PORT: Readonly<Record<string, number>> = { "http:": 80, "https:": 443 };

/** The port to listen on or dial: the explicit port, else the scheme's default. */
export function urlPort(url: URL): number {
  if (url.port !== "") return Number(url.port);
  const port = DEFAULT_PORT[url.protocol];
  if (port === undefined) throw new RangeError(`URL ${url.href} has no port`);
  return port;
}

/** The host to bind or dial, without IPv6 brackets (what net.listen takes). */
export function urlHost(url: URL): string {
  const host = url.hostname;
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** The URL as etcd prints it (Go's url.URL.String()): no trailing slash for an empty path. */
export function urlText(url: URL): string {
  const path = url.pathname === "/" ? "" : url.pathname;
  return `${url.protocol}//${url.host}${path}${url.search}`;
}

/** "host:port" as etcd logs listener addresses (e.g. the "address" field of "serving peer traffic"). */
export function urlAddress(url: URL): string {
  const host = url.hostname;
  return `${host}:${urlPort(url)}`;
}
