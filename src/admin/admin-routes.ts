/**
 * The admin API's routes (JSON in and out, under `/admin/`). Every request: rate limit per IP
 * (429) → bearer credential (401, no detail) → route → body (JSON only, size-capped, strict
 * schema, never echoed) → action → audit record (storage and log) → reply.
 *
 *   GET    /admin/users/{userId}/sessions[?tenant=T]     list the user's sessions on every node
 *   POST   /admin/users/{userId}/disconnect               {tenant?, sessionId?}: one session or all
 *   POST   /admin/users/{userId}/ban                      {tenant?, durationMs}
 *   DELETE /admin/users/{userId}/ban[?tenant=T]           unban
 *   POST   /admin/tokens/revoke                           {jti, exp}: refused until exp (seconds)
 *   GET    /admin/audit[?before=ID&limit=N]               audit records, newest first
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { isUserId, DEFAULT_TENANT } from '../auth/token-verifier.js';
import { peerKey } from '../chat/authorization.js';
import type { RateRule } from '../limits/limiter.js';
import type { MemoryLimiter } from '../limits/memory-limiter.js';
import type { Logger } from '../observability/logger.js';
import type { SecurityEventSink } from '../observability/security-events.js';
import { parseSafeJson } from '../pipeline/safe-json.js';
import { authenticateAdmin, type AdminCredential } from './admin-auth.js';
import type { AuditEntry, AuditLog } from './audit-log.js';
import type { SessionControl } from './session-control.js';
import { errorSummary } from '../observability/error-summary.js';

export interface AdminRoutesOptions {
  credential: AdminCredential;
  control: SessionControl;
  audit: AuditLog;
  /** Per node: an admin API is reached on one node at a time. */
  limiter: MemoryLimiter;
  rule: RateRule;
  maxBodyBytes: number;
  maxBanMs: number;
  /** `jwt.maxTokenLifetimeMs`: no accepted token expires later, so no revocation needs to reach further. */
  maxTokenLifetimeMs: number;
  /** Added to a revoked token's `exp` (the verifier's clock tolerance). */
  revokeGraceMs: number;
  /** The request's IP (audit records, security events, logs). */
  clientIp(req: IncomingMessage): string;
  /** What the per-IP limit counts for an IP (an IPv6 client by its network, as the WebSocket gate does). */
  limitKey(ip: string): string;
  logger: Logger;
  security: SecurityEventSink;
}

export const MAX_AUDIT_PAGE = 500;
const DEFAULT_AUDIT_PAGE = 50;

const tenant = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/);
const printable = (max: number) => z.string().min(1).max(max).regex(/^[\x21-\x7e]+$/);
const DisconnectBody = z.strictObject({ tenant: tenant.optional(), sessionId: printable(128).optional() });
const BanBody = z.strictObject({ tenant: tenant.optional(), durationMs: z.number().int().min(1) });
const RevokeBody = z.strictObject({ tenant: tenant.optional(), jti: printable(255), exp: z.number().int().min(1) });

const HEADERS = { 'content-type': 'application/json', 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' };

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(String(body.error));
  }
}

const invalid = (details: { path: string; rule: string }[]) => new HttpError(400, { error: 'invalid_request', details });
const NOT_FOUND = new HttpError(404, { error: 'not_found' });

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { ...HEADERS, 'content-length': String(Buffer.byteLength(text)), ...extra });
  res.end(text);
}

/** The body as a JSON object; 413 past `max` bytes (nothing more is buffered), 415 if not JSON. */
function readJson(req: IncomingMessage, max: number): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') return Promise.reject(new HttpError(415, { error: 'unsupported_media_type' }));
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.reject(new HttpError(413, { error: 'body_too_large' }, { connection: 'close' }));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.pause();
        reject(new HttpError(413, { error: 'body_too_large' }, { connection: 'close' }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const parsed = parseSafeJson(Buffer.concat(chunks).toString('utf8'));
      // The documented shape, like a schema refusal: what was wrong, never the value.
      if (!parsed.ok) reject(invalid([{ path: 'body', rule: parsed.reason }]));
      else resolve(parsed.value);
    });
    req.on('error', reject);
  });
}

function parseBody<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  // Paths and rule codes only, never the values.
  throw invalid(r.error.issues.slice(0, 10).map((i) => ({ path: i.path.map(String).join('.'), rule: i.code })));
}

/** `?tenant=`, once: a repeated one is refused (a proxy may read the last where we would read the first). */
function queryTenant(params: URLSearchParams): string | null {
  const all = params.getAll('tenant');
  if (all.length > 1) throw invalid([{ path: 'tenant', rule: 'repeated' }]);
  return all[0] ?? null;
}

function tenantOf(value: string | null | undefined): string {
  if (value === null || value === undefined) return DEFAULT_TENANT;
  if (!tenant.safeParse(value).success) throw invalid([{ path: 'tenant', rule: 'invalid_format' }]);
  return value;
}

/**
 * A POST's tenant: from its body or its query string (as GET and DELETE take it), never ignored:
 * `?tenant=acme` on a ban must not ban the user of the default tenant. Both, differing: refused.
 */
function postTenantOf(body: string | undefined, params: URLSearchParams): string {
  const query = queryTenant(params);
  if (body !== undefined && query !== null && body !== query) throw invalid([{ path: 'tenant', rule: 'conflict' }]);
  return tenantOf(body ?? query);
}

/** The request announces a body (a length above 0, or a chunked one). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

function intParam(params: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const raw = params.get(name);
  if (raw === null) return undefined;
  const n = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) throw invalid([{ path: name, rule: 'invalid_number' }]);
  return n;
}

export function createAdminRoutes(o: AdminRoutesOptions): (req: IncomingMessage, res: ServerResponse) => void {
  /** Writes the audit record (storage, then log); a storage failure is logged with the record and answered 503. */
  async function audited(entry: AuditEntry): Promise<void> {
    try {
      const record = await o.audit.append(entry);
      o.logger.info({ event: 'audit', ...record }, 'admin action');
    } catch (err) {
      o.logger.error({ event: 'audit', ...entry, err: errorSummary(err) }, 'audit write failed');
      throw new HttpError(503, { error: 'audit_unavailable' });
    }
  }

  /** Runs an action; one that throws (Redis down) is still audited, as `failed`. */
  async function attempt<T>(entry: AuditEntry, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (err) {
      await audited({ ...entry, outcome: 'failed' }).catch(() => {});
      throw err;
    }
  }

  async function route(req: IncomingMessage, actor: string, ip: string): Promise<{ status: number; body: unknown }> {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const parts = url.pathname.split('/').filter((p) => p !== '');
    // Dot segments are resolved by now: a path that left /admin/ (`/admin/../x/audit`) is no route.
    if (parts[0] !== 'admin') throw NOT_FOUND;
    const method = req.method ?? 'GET';
    const entry = (action: string, target: string, outcome: string, detail?: AuditEntry['detail']): AuditEntry => ({
      actor,
      action,
      target,
      outcome,
      ip,
      ...(detail !== undefined ? { detail } : {}),
    });

    // /admin/audit
    if (parts.length === 2 && parts[1] === 'audit') {
      if (method !== 'GET') throw new HttpError(405, { error: 'method_not_allowed' }, { allow: 'GET' });
      const before = intParam(url.searchParams, 'before', 1, Number.MAX_SAFE_INTEGER);
      const limit = intParam(url.searchParams, 'limit', 1, MAX_AUDIT_PAGE) ?? DEFAULT_AUDIT_PAGE;
      const page = await o.audit.page({ limit, ...(before !== undefined ? { before } : {}) });
      o.logger.info({ event: 'audit_read', actor, ip }, 'admin read the audit log');
      return { status: 200, body: page };
    }

    // /admin/tokens/revoke
    if (parts.length === 3 && parts[1] === 'tokens' && parts[2] === 'revoke') {
      if (method !== 'POST') throw new HttpError(405, { error: 'method_not_allowed' }, { allow: 'POST' });
      const body = parseBody(RevokeBody, await readJson(req, o.maxBodyBytes));
      const t = postTenantOf(body.tenant, url.searchParams);
      const until = body.exp * 1000 + o.revokeGraceMs;
      if (until <= Date.now()) throw invalid([{ path: 'exp', rule: 'expired' }]);
      // Tokens expiring later are refused at auth anyway (which allows the clock tolerance too:
      // `until` already holds one grace, the bound another): nothing to revoke.
      if (until > Date.now() + o.maxTokenLifetimeMs + 2 * o.revokeGraceMs) throw invalid([{ path: 'exp', rule: 'too_big' }]);
      const target = `jti:${t}|${body.jti}`; // `|` is in no tenant: tenant and jti read apart
      await attempt(entry('revoke', target, 'failed'), () => o.control.revoke({ tenantId: t, jti: body.jti }, until));
      await audited(entry('revoke', target, 'ok', { until }));
      return { status: 200, body: { jti: body.jti, tenant: t, until } };
    }

    // /admin/users/{userId}/(sessions|disconnect|ban)
    if (parts.length === 4 && parts[1] === 'users') {
      const userId = parts[2]!.toLowerCase();
      if (!isUserId(userId)) throw invalid([{ path: 'userId', rule: 'invalid_format' }]);
      const action = parts[3];
      if (action === 'sessions') {
        if (method !== 'GET') throw new HttpError(405, { error: 'method_not_allowed' }, { allow: 'GET' });
        const t = tenantOf(queryTenant(url.searchParams));
        const sessions = await attempt(entry('list_sessions', `user:${t}:${userId}`, 'failed'), () => o.control.listSessions(peerKey(t, userId)));
        await audited(entry('list_sessions', `user:${t}:${userId}`, 'ok', { count: sessions.length }));
        return { status: 200, body: { userId, tenant: t, sessions } };
      }
      if (action === 'disconnect') {
        if (method !== 'POST') throw new HttpError(405, { error: 'method_not_allowed' }, { allow: 'POST' });
        const body = parseBody(DisconnectBody, await readJson(req, o.maxBodyBytes));
        const t = postTenantOf(body.tenant, url.searchParams);
        const key = peerKey(t, userId);
        const target = body.sessionId === undefined ? `user:${t}:${userId}` : `session:${body.sessionId}`;
        const sessions = await attempt(entry('disconnect', target, 'failed'), () => o.control.listSessions(key));
        const targets = body.sessionId === undefined ? sessions : sessions.filter((s) => s.sessionId === body.sessionId);
        if (body.sessionId !== undefined && targets.length === 0) {
          await audited(entry('disconnect', target, 'not_found'));
          throw NOT_FOUND;
        }
        await attempt(entry('disconnect', target, 'failed'), () => o.control.disconnect(key, body.sessionId));
        await audited(entry('disconnect', target, 'ok', { sessions: targets.length }));
        return { status: 200, body: { disconnected: targets.map((s) => s.sessionId) } };
      }
      if (action === 'ban') {
        if (method === 'POST') {
          const body = parseBody(BanBody, await readJson(req, o.maxBodyBytes));
          if (body.durationMs > o.maxBanMs) throw invalid([{ path: 'durationMs', rule: 'too_big' }]);
          const t = postTenantOf(body.tenant, url.searchParams);
          // A ban in force that ends later stands (lifting it early takes DELETE): the reply names the end that holds.
          const until = await attempt(entry('ban', `user:${t}:${userId}`, 'failed', { durationMs: body.durationMs }), () =>
            o.control.ban(peerKey(t, userId), Date.now() + body.durationMs),
          );
          await audited(entry('ban', `user:${t}:${userId}`, 'ok', { durationMs: body.durationMs, until }));
          return { status: 200, body: { userId, tenant: t, until } };
        }
        if (method === 'DELETE') {
          // The tenant comes from ?tenant= only: a body naming one would otherwise be ignored (the default tenant's user unbanned).
          if (hasBody(req)) throw invalid([{ path: 'body', rule: 'not_allowed' }]);
          const t = tenantOf(queryTenant(url.searchParams));
          const lifted = await attempt(entry('unban', `user:${t}:${userId}`, 'failed'), () => o.control.unban(peerKey(t, userId)));
          await audited(entry('unban', `user:${t}:${userId}`, lifted ? 'ok' : 'not_found'));
          if (!lifted) throw NOT_FOUND;
          return { status: 200, body: { userId, tenant: t, unbanned: true } };
        }
        throw new HttpError(405, { error: 'method_not_allowed' }, { allow: 'POST, DELETE' });
      }
    }
    throw NOT_FOUND;
  }

  return (req, res) => {
    const ip = o.clientIp(req);
    // The memory limiter answers synchronously.
    const decision = o.limiter.consume(`admin:${o.limitKey(ip)}`, [o.rule]);
    if (!decision.allowed) {
      o.security('admin_rate_limited', { ip, code: 429 });
      req.resume();
      return send(res, 429, { error: 'rate_limited' }, { 'retry-after': String(Math.max(1, Math.ceil(decision.retryAfter / 1000))) });
    }
    const who = authenticateAdmin(req.headers.authorization, o.credential);
    if (who === undefined) {
      o.security('admin_unauthorized', { ip, code: 401 });
      req.resume();
      return send(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer' });
    }
    route(req, who.name, ip).then(
      ({ status, body }) => send(res, status, body),
      (err: unknown) => {
        if (err instanceof HttpError) {
          req.resume();
          return send(res, err.status, err.body, err.headers);
        }
        o.logger.error({ err: errorSummary(err), ip }, 'admin request failed');
        send(res, 503, { error: 'unavailable' });
      },
    );
  };
}
