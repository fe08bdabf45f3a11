/**
 * The HTTP `upgrade` handler: path check, handshake gate, then the WebSocket and its session.
 * A refusal is a plain HTTP answer written to the raw socket; no WebSocket is ever created for it.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import type { Logger } from '../observability/logger.js';
import type { SecurityEventSink } from '../observability/security-events.js';
import { ipLimitKey, normalizeIp, resolveClientIp } from '../gate/client-ip.js';
import { runHandshakeGate, type HandshakeGateOptions } from '../gate/handshake-gate.js';
import { websocketRequestProblem } from '../gate/websocket-request.js';
import type { ConnectionRegistry } from '../limits/limiter.js';
import type { Identity } from '../auth/token-verifier.js';
import { Session, type SessionHooks, type SessionTimings } from '../session/session.js';
import type { NodeConnections } from './node-connections.js';
import { requestPath } from './request-path.js';
import { errorSummary } from '../observability/error-summary.js';

const WS_PATHS = new Set(['/ws', '/']);

export interface UpgradeHandlerOptions {
  wss: WebSocketServer;
  gate: HandshakeGateOptions;
  registry: ConnectionRegistry;
  connections: NodeConnections;
  trustedProxies: ReadonlySet<string>;
  /** IPv6 clients are counted by their network of this many bits (see ipLimitKey). */
  ipv6PrefixLength: number;
  timings: SessionTimings;
  hooks: SessionHooks;
  security: SecurityEventSink;
  logger: Logger;
  /** True once shutdown started: every new handshake is refused with 503. */
  isClosing(): boolean;
  /** A handshake carried a valid query token: admit the session without an `auth` frame. */
  admit(session: Session, identity: Identity): void;
  /** The socket became a session: the session drain closes it at shutdown, not the raw-connection sweep. */
  onUpgraded?(socket: Duplex): void;
  /** Every handshake's outcome: `ok`, or the refusal reason (gate event, `draining`, `not_found`, `bad_request`, `gate_error`). */
  onHandshake?(result: 'accepted' | 'refused', reason: string): void;
  /** Header lines every refusal carries (`Strict-Transport-Security: …\r\n` on TLS), or ''. */
  responseHeaders?: string;
}

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

function destroySelf(this: Duplex): void {
  this.destroy();
}

/**
 * A draining node's `Retry-After`: the node is going away, not busy, and its clients were just told
 * (1001) to come back within `shutdownDelayMaxMs`: a restarted node or another one takes them in
 * seconds, so a 60 s wait (the default below) would keep them offline a minute.
 */
const DRAINING_RETRY_AFTER_MS = 1000;

/** `retryAfterMs`: how long the refusal lasts, when known (an attempt rate, a lockout); else 60 s. */
export function refuseHandshake(socket: Duplex, status: number, retryAfterMs?: number, headers = ''): void {
  const seconds = retryAfterMs === undefined ? 60 : Math.max(1, Math.ceil(retryAfterMs / 1000));
  const extra = (status === 429 || status === 503 ? `Retry-After: ${seconds}\r\n` : '') + (status === 405 ? 'Allow: GET\r\n' : '') + headers;
  // Destroyed once the answer is written: a peer that never closes its side must not hold the
  // socket (an upgrade request's socket is not managed by the HTTP server's timeouts).
  socket.once('finish', destroySelf);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n${extra}\r\n`);
}

export function createUpgradeHandler(o: UpgradeHandlerOptions): UpgradeHandler {
  // Once upgraded, the session's own close releases the IP slot: no listener, `once` wrapper and
  // closure per socket for the life of the connection (ws emits 'close' on every close path). A
  // closure created in the handler would keep its whole scope (the request, its headers, `head`)
  // alive that long — about 1 KB per idle socket.
  const hooks: SessionHooks = {
    ...o.hooks,
    onClosed(session, code) {
      void o.registry.releaseIp(session.ip);
      o.hooks.onClosed(session, code);
    },
  };

  const headers = o.responseHeaders ?? '';
  const refuse = (socket: Duplex, status: number, retryAfterMs?: number): void => refuseHandshake(socket, status, retryAfterMs, headers);
  // Anything else ws refuses after the gate (a malformed Sec-WebSocket-Protocol, say) is answered
  // here, as every other refusal is: counted, and with the same headers (HSTS).
  o.wss.on('wsClientError', (_err: Error, socket: Duplex) => {
    o.onHandshake?.('refused', 'bad_request');
    refuse(socket, 400);
  });

  return (req, socket, head) => {
    socket.on('error', destroySelf); // a reset mid-handshake must not crash us
    // Every per-IP limit, count and log of this connection uses this key (an IPv6 client's network);
    // the session listings show the address itself.
    const address = normalizeIp(resolveClientIp(req.socket.remoteAddress, req.headers['x-forwarded-for'], o.trustedProxies));
    const ip = ipLimitKey(address, o.ipv6PrefixLength);
    const closing = o.isClosing();
    if (closing || !WS_PATHS.has(requestPath(req.url))) {
      o.onHandshake?.('refused', closing ? 'draining' : 'not_found');
      if (closing) refuse(socket, 503, DRAINING_RETRY_AFTER_MS);
      else refuse(socket, 404);
      return;
    }
    const malformed = websocketRequestProblem(req.method, req.headers);
    if (malformed !== undefined) {
      o.onHandshake?.('refused', 'bad_request');
      // RFC 6455 §4.4: a refused version is answered with the versions the server speaks.
      refuseHandshake(socket, malformed.status, undefined, headers + (malformed.versions ? 'Sec-WebSocket-Version: 13, 8\r\n' : ''));
      return;
    }
    runHandshakeGate(o.gate, req, ip).then(
      (result) => {
        if (!result.ok) {
          // A client that left while its check waited is no security event (as when it leaves during the gate).
          if (result.event !== 'client_gone') o.security(result.event, { ip, code: result.status });
          o.onHandshake?.('refused', result.event);
          refuse(socket, result.status, result.retryAfterMs);
          return;
        }
        // The IP slot is tied to the TCP socket: released on every close path, upgrade or not —
        // including a socket that closed while the gate was waiting on Redis ('close' already emitted).
        if (socket.destroyed) {
          o.onHandshake?.('refused', 'client_gone');
          void o.registry.releaseIp(ip);
          result.unreserve();
          return;
        }
        // The drain began while the gate was waiting: no new session may start now.
        if (o.isClosing()) {
          o.onHandshake?.('refused', 'draining');
          void o.registry.releaseIp(ip);
          result.unreserve();
          refuse(socket, 503, DRAINING_RETRY_AFTER_MS);
          return;
        }
        // Listens only until the upgrade completes (removed below), so it may hold the handler's scope.
        const release = (): void => {
          void o.registry.releaseIp(ip);
          result.unreserve();
        };
        socket.once('close', release);
        o.wss.handleUpgrade(req, socket, head, (ws) => {
          // From here ws handles socket errors (it destroys the socket) and the session releases the slot.
          socket.off('close', release);
          socket.off('error', destroySelf);
          const session = new Session(ws, socket, ip, address, o.timings, hooks);
          o.connections.add(session, result.identity !== undefined);
          o.onUpgraded?.(socket);
          result.unreserve(); // counted now
          o.onHandshake?.('accepted', 'ok');
          if (result.identity) o.admit(session, result.identity);
        });
      },
      (err: unknown) => {
        o.logger.error({ err: errorSummary(err), ip }, 'handshake gate failed');
        o.onHandshake?.('refused', 'gate_error');
        refuse(socket, 503);
      },
    );
  };
}
