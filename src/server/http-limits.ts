/**
 * The HTTP limits every listener of a node shares (the main port, the admin and metrics ports):
 * request headers within `limits.headersTimeout`, of at most `limits.maxHeaderSize`, and a bare
 * 400/431 for a malformed, oversized or too slow request, nothing echoed.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** `bodyGraceMs`: time for a request's body after its headers. */
export function httpServerLimits(headersTimeout: number, maxHeaderSize: number, bodyGraceMs = 1000) {
  return {
    headersTimeout,
    requestTimeout: headersTimeout + bodyGraceMs,
    // Node checks these timeouts only every connectionsCheckingInterval (30 s by default): a slow
    // request would otherwise hold its connection up to 30 s past headersTimeout.
    connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeout / 2)),
    maxHeaderSize,
  };
}

/**
 * Answers a request the HTTP parser refused (or one cut for its timeout) and closes it. `headers`:
 * lines every answer carries (`Strict-Transport-Security: …\r\n` on TLS).
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex, headers = ''): void {
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
  if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n${headers}\r\n`);
  socket.destroy();
}

/**
 * The parser's refusals answered, on a listener. Header lines are not counted (`maxHeadersCount`
 * 0; `maxHeaderSize` bounds them): Node's default keeps the first 2,000 and drops the rest
 * silently — a proxy's own `X-Forwarded-For` line after 2,000 of the client's would be lost, and
 * the client's forged one believed.
 */
export function guardListener(server: Server, headers = ''): Server {
  server.maxHeadersCount = 0;
  return server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => answerClientError(err, socket, headers));
}

/**
 * Every raw connection of a listener, until it closes. `server.closeAllConnections()` reaches only
 * connections that became HTTP ones: on a TLS listener, a socket that never finished (or never
 * began) its TLS handshake — a port scan, a load balancer's TCP probe — would hold `server.close()`
 * open, and with it the shutdown, until TLS's own handshake timeout.
 */
export function trackConnections(server: Server): { destroyAll(): void; untrack(socket: Duplex): void } {
  const open = new Set<Duplex>();
  // One shared listener, no closure or `once` wrapper per socket: this lives as long as the socket
  // (0.5 KB per idle connection with a closure each, 1.27× a bare ws socket instead of 1.13×).
  function untrack(this: Duplex): void {
    open.delete(this);
  }
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.on('close', untrack);
  });
  return {
    destroyAll: () => {
      for (const socket of open) socket.destroy();
      open.clear();
    },
    /**
     * A socket someone else now closes at shutdown (an upgraded WebSocket: the session drain). On
     * a TLS listener the upgrade has the TLS socket, the sweep the TCP one under it (`_parent`).
     */
    untrack: (socket) => {
      const raw = (socket as Duplex & { _parent?: Duplex })._parent ?? socket;
      if (open.delete(raw)) raw.removeListener('close', untrack);
    },
  };
}
