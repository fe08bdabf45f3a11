/**
 * The admin subsystem as the server sees it: session control (always on: bans and revocations are
 * checked at `auth`, users list and end their own sessions) and the admin HTTP API (only with an
 * `admin` credential), served under `/admin/` on the main port or on `admin.port`.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RampartConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { listen } from '../server/listen.js';
import { requestPath } from '../server/request-path.js';
import { guardListener, httpServerLimits } from '../server/http-limits.js';
import { redisPing } from '../redis/liveness.js';
import type { SecurityEventSink } from '../observability/security-events.js';
import { ipLimitKey, resolveClientIp } from '../gate/client-ip.js';
import { MemoryLimiter } from '../limits/memory-limiter.js';
import { createUserSessionsHandler, type UserSessionsHandler } from '../pipeline/user-sessions.js';
import { adminCredential } from './admin-auth.js';
import { createAdminRoutes } from './admin-routes.js';
import type { AuditLog } from './audit-log.js';
import { openAuditLog } from './open-audit-log.js';
import { openSessionControl, type SessionControl } from './session-control.js';
import type { LocalSessions } from './session-directory.js';
import type { Session } from '../session/session.js';
import { errorSummary } from '../observability/error-summary.js';

export interface Admin {
  readonly control: SessionControl;
  readonly userSessions: UserSessionsHandler;
  /** The main port's request handler, with `/admin/` in front when the API lives there. */
  mount(routes: RequestListener): RequestListener;
  /** Starts the API's own listener (`admin.port`), if any. */
  listen(): Promise<void>;
  /** Where the API's own listener is bound (undefined on the main port or when off). */
  address(): AddressInfo | undefined;
  close(): Promise<void>;
}

export interface OpenAdminOptions {
  config: RampartConfig;
  nodeId: string;
  logger: Logger;
  security: SecurityEventSink;
  /** This node's authenticated sessions (the session registry), which session control reads. */
  localSessions: LocalSessions<Session>;
}

/** The request's path (origin or absolute form, query left out) is the API's. */
const isAdminPath = (url: string | undefined): boolean => {
  const path = requestPath(url);
  return path === '/admin' || path.startsWith('/admin/');
};

export async function openAdmin(o: OpenAdminOptions): Promise<Admin> {
  const { config, logger } = o;
  const onError = (err: unknown, op: string): void => logger.error({ op, err: errorSummary(err) }, 'session control error');
  const control = await openSessionControl({
    ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
    prefix: config.redisKeyPrefix,
    nodeId: o.nodeId,
    local: o.localSessions,
    ping: redisPing(config),
    pendingCloseMs: config.admin.pendingCloseMs,
    onError,
  });
  const userSessions = createUserSessionsHandler(control, (err) => onError(err, 'user_sessions'));
  const credential = adminCredential(config.admin);
  if (credential === undefined) {
    return { control, userSessions, mount: (routes) => routes, listen: async () => {}, address: () => undefined, close: () => control.close() };
  }

  let audit: AuditLog;
  try {
    audit = await openAuditLog(config.storage);
  } catch (err) {
    await control.close();
    throw err;
  }
  const limiter = new MemoryLimiter();
  const trustedProxies = new Set(config.behindProxy);
  const handle = createAdminRoutes({
    credential,
    control,
    audit,
    limiter,
    rule: { name: 'admin', limit: config.admin.requestsPerMinute, windowMs: 60_000 },
    maxBodyBytes: config.admin.maxBodyBytes,
    maxBanMs: config.admin.maxBanMs,
    maxTokenLifetimeMs: config.jwt.maxTokenLifetimeMs,
    revokeGraceMs: config.jwt.clockTolerance * 1000,
    clientIp: (req: IncomingMessage) => resolveClientIp(req.socket.remoteAddress, req.headers['x-forwarded-for'], trustedProxies),
    // Per-IP limits of the admin API count an IPv6 client by its network, as the WebSocket gate does.
    limitKey: (ip: string) => ipLimitKey(ip, config.limits.ipv6PrefixLength),
    logger,
    security: o.security,
  });
  const ownPort = config.admin.port;
  let server: Server | undefined;
  if (ownPort !== undefined) {
    // The listener's own limits follow the main port's: headers in limits.headersTimeout, a body
    // within 5 s more.
    const L = config.limits;
    server = guardListener(
      createServer(httpServerLimits(L.headersTimeout, L.maxHeaderSize, 5000), (req: IncomingMessage, res: ServerResponse) => {
        if (isAdminPath(req.url)) return handle(req, res);
        res.writeHead(404, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end('{"error":"not_found"}\n');
      }),
    );
  }
  return {
    control,
    userSessions,
    mount: (routes) => (ownPort !== undefined ? routes : (req, res) => (isAdminPath(req.url) ? handle(req, res) : routes(req, res))),
    listen: () =>
      server === undefined
        ? Promise.resolve()
        : listen(server, ownPort!, config.admin.host, (err) => logger.error({ err: errorSummary(err) }, 'admin listener error')).then(({ address, port }) => {
            logger.info({ host: address, port }, 'admin API listening');
          }),
    address: () => (server?.listening ? (server.address() as AddressInfo) : undefined),
    async close() {
      if (server?.listening) {
        const closed = new Promise((resolve) => server.close(resolve));
        server.closeAllConnections();
        await closed;
      }
      await Promise.allSettled([control.close(), audit.close(), limiter.close()]);
    },
  };
}
