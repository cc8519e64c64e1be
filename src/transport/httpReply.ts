import { type ServerResponse, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";

/**
 * Error answers shaped like Go's http.Error, which etcd uses for every refusal on the peer port: the text
 * plus "\n", as text/plain with nosniff. Peers compare the trimmed body to etcd's strings.
 */
export function sendError(
  response: ServerResponse,
  status: number,
  text: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  const body = `${text}\n`;
  response.writeHead(status, {
    ...headers,
    "Content-Type": "text/plain; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
    "Content-Length": Buffer.byteLength(body),
  });
  response.end(body);
}

/**
 * The same answer written by hand on a socket taken over by an 'upgrade' event (there is no
 * ServerResponse there), then the socket is ended.
 */
export function sendRawError(
  socket: Duplex,
  status: number,
  text: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  const body = `${text}\n`;
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  lines.push(
    "Content-Type: text/plain; charset=utf-8",
    "X-Content-Type-Options: nosniff",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
    "",
    body,
  );
  socket.end(lines.join("\r\n"));
}

/** The 101 answer that turns a handshake into a stream. */
export function sendSwitchingProtocols(
  socket: Duplex,
  upgradeToken: string,
  headers: Readonly<Record<string, string>>,
): void {
  const lines = ["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", `Upgrade: ${upgradeToken}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  lines.push("", "");
  socket.write(lines.join("\r\n"));
}
