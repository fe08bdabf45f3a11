/**
 * The handshake gate: runs before any WebSocket exists, and a refusal is a plain HTTP answer.
 * Order (docs/protocol.md §1): attempt rate per IP → auth lockout → node capacity (open sockets,
 * unauthenticated ones node-wide and per IP) → concurrent sockets per IP → Origin → query token.
 * The lockout and the unauthenticated-socket caps are checked here, so a locked-out or flooding IP
 * never costs a WebSocket.
 */
import type { IncomingMessage } from 'node:http';
import type { ConnectionRegistry, Limiter, RateRule } from '../limits/limiter.js';
import type { Identity } from '../auth/token-verifier.js';
import type { TokenCheckFn } from '../pipeline/token-checks.js';
import { checkOrigin, declaredOrigins, type OriginPolicy } from './origin.js';
import { AuthFailureReason, type AuthFailureReasonValue } from '../protocol/reasons.js';

export interface GateRefusal {
  status: 400 | 401 | 403 | 429 | 503;
  /** Security-event reason. */
  event: string;
  /** When the refusal says how long it lasts (attempt rate, lockout): ms until a retry may pass. */
  retryAfterMs?: number;
}

/**
 * `unreserve`: gives back the place the gate held under the node-wide caps; the caller calls it
 * once the socket is counted (or gone).
 */
export type GateResult = { ok: true; identity?: Identity; unreserve: () => void } | ({ ok: false } & GateRefusal);

export interface HandshakeGateOptions {
  limiter: Limiter;
  registry: ConnectionRegistry;
  originPolicy: OriginPolicy;
  attemptRule: RateRule;
  maxConnectionsPerIP: number;
  allowQueryToken: boolean;
  /** The query token under the IP's lockout; a refusal counts towards it, as a refused `auth` frame does. */
  checkToken: TokenCheckFn;
  lockoutKey(ip: string): string;
  /** Node-wide caps held by the server (open sockets, unauthenticated ones). */
  capacity(ip: string): 'ok' | 'connections' | 'unauthenticated' | 'unauthenticated_ip';
  /**
   * Holds a place under those caps from the check until the socket is counted: handshakes that
   * wait on Redis meanwhile see it taken, so they cannot all pass one free place. Returns the
   * release (idempotent).
   */
  reserve(ip: string): () => void;
  /** A query token's outcome, for the auth metrics (success is counted when the session is announced). */
  onAuthResult?(result: AuthFailureReasonValue): void;
}

/**
 * `Retry-After` of a refusal for a backend that is away (Redis, a key set): the clients reconnect
 * in seconds (FAIL_FAST_REDIS_OPTIONS retries every 2 s at most), so a minute's wait (the default
 * for a refusal that does not say) would keep clients off long after it is back.
 */
const BACKEND_RETRY_AFTER_MS = 5000;

function refuse(status: GateRefusal['status'], event: string, retryAfterMs?: number): GateResult {
  return retryAfterMs === undefined ? { ok: false, status, event } : { ok: false, status, event, retryAfterMs };
}

/** The `token` query parameter, if any (the URL is never logged). */
export function queryToken(url: string | undefined): string | undefined {
  if (!url) return undefined;
  const q = url.indexOf('?');
  if (q === -1) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined;
}

/**
 * On `{ok: true}` the caller owns one IP slot in the registry and must release it when the
 * socket closes; on refusal nothing is held.
 */
export async function runHandshakeGate(o: HandshakeGateOptions, req: IncomingMessage, ip: string): Promise<GateResult> {
  const attempt = await o.limiter.consume(`att:${ip}`, [o.attemptRule]);
  if (!attempt.allowed) return refuse(429, 'connection_attempt_rate', attempt.retryAfter);
  const locked = await o.limiter.blockedFor(o.lockoutKey(ip));
  if (locked > 0) {
    // A query token refused here is an authentication outcome too (as when the lockout is found later).
    if (o.allowQueryToken && queryToken(req.url) !== undefined) o.onAuthResult?.(AuthFailureReason.LOCKED_OUT);
    return refuse(429, 'auth_locked_out', locked);
  }
  const capacity = o.capacity(ip);
  if (capacity === 'connections') return refuse(503, 'node_connection_cap');
  if (capacity !== 'ok') return refuse(429, capacity === 'unauthenticated' ? 'unauthenticated_cap' : 'unauthenticated_ip_cap');
  const unreserve = o.reserve(ip);
  let result: GateResult;
  try {
    result = await afterCapacity(o, req, ip, unreserve);
  } catch (err) {
    unreserve();
    throw err;
  }
  if (!result.ok) unreserve();
  return result;
}

/** How long the IP's lockout still lasts (ms), for Retry-After; undefined when it cannot be read. */
async function lockoutLeft(o: HandshakeGateOptions, ip: string): Promise<number | undefined> {
  try {
    const ms = await o.limiter.blockedFor(o.lockoutKey(ip));
    return ms > 0 ? ms : undefined;
  } catch {
    return undefined;
  }
}

async function afterCapacity(o: HandshakeGateOptions, req: IncomingMessage, ip: string, unreserve: () => void): Promise<GateResult> {
  let acquired: boolean;
  try {
    acquired = await o.registry.acquireIp(ip, o.maxConnectionsPerIP);
  } catch {
    return refuse(503, 'backend_unavailable', BACKEND_RETRY_AFTER_MS); // fail closed for new connections
  }
  if (!acquired) return refuse(429, 'ip_connection_limit');

  const release = (result: GateResult): GateResult => {
    void o.registry.releaseIp(ip);
    return result;
  };

  const origin = checkOrigin(o.originPolicy, declaredOrigins(req.rawHeaders));
  if (origin !== 'allowed' && origin !== 'missing_allowed') return release(refuse(403, `origin_${origin}`));

  const token = queryToken(req.url);
  if (token === undefined) return { ok: true, unreserve };
  if (!o.allowQueryToken) return release(refuse(401, 'query_token_not_allowed'));
  let verified;
  try {
    verified = await o.checkToken(ip, token, () => !req.socket.destroyed);
  } catch {
    return release(refuse(503, 'backend_unavailable', BACKEND_RETRY_AFTER_MS)); // the lockout could not be read (Redis): fail closed
  }
  if (verified === 'locked_out') {
    o.onAuthResult?.(AuthFailureReason.LOCKED_OUT);
    return release(refuse(429, 'auth_locked_out', await lockoutLeft(o, ip)));
  }
  if (verified === 'abandoned') return release(refuse(400, 'client_gone')); // the client left while its check waited in line
  // Counted already, unless the key set could not be read (then nothing was judged).
  if (!verified.ok) {
    o.onAuthResult?.(verified.reason);
    if (verified.reason === 'unavailable') return release(refuse(503, 'query_token_unavailable', BACKEND_RETRY_AFTER_MS));
    return release(refuse(401, `query_token_${verified.reason}`));
  }
  return { ok: true, identity: verified.identity, unreserve };
}
