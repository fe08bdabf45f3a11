/**
 * The composition root: builds every adapter from config, wires gate → session → pipeline →
 * chat → store + bus, and owns start-up and graceful shutdown. No protocol logic lives here.
 */
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type ServerOptions } from 'ws';
import type { DestinationStream } from 'pino';
import type { RampartConfig } from '../config/schema.js';
import { loadOrCreateDevSecret } from '../config/dev-key.js';
import { createLogger, pathOnly, type Logger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import { createSecurityEventSink, type SecurityEventSink } from '../observability/security-events.js';
import { jwksKeySource, publicKeySource, secretKeySource, type KeySource } from '../auth/key-source.js';
import { createTokenVerifier } from '../auth/token-verifier.js';
import { compileOriginPolicy } from '../gate/origin.js';
import { resolveClientIp } from '../gate/client-ip.js';
import { runHandshakeGate } from '../gate/handshake-gate.js';
import { openStore } from '../store/open-store.js';
import { ContentCipher } from '../store/content-cipher.js';
import { GroupCommitter } from '../store/group-commit.js';
import type { Store } from '../store/store.js';
import { openBus } from '../bus/open-bus.js';
import type { Bus } from '../bus/bus.js';
import { createLimits, type Limits } from '../limits/index.js';
import { ChatService } from '../chat/chat-service.js';
import { Session, type SessionHooks } from '../session/session.js';
import { FlushScheduler } from '../session/flush-scheduler.js';
import { SessionRegistry } from './session-registry.js';
import { createHttpRoutes } from './http-routes.js';
import { createFramePipeline, rateRules } from '../pipeline/frame-pipeline.js';
import { createAuthenticator, lockoutKey, penaltyKey } from '../pipeline/authenticate.js';
import { closeWith } from '../pipeline/rejection.js';
import { CloseCode } from '../protocol/close-codes.js';
import { openAdmin, type Admin } from '../admin/index.js';

export interface RampartServerOptions {
  config: RampartConfig;
  /** Where log lines go (tests capture them); stdout by default. */
  logDestination?: DestinationStream;
  /** Unique id of this process in a cluster; random by default. */
  nodeId?: string;
  /** Serve the demo page at `/` (on by default). */
  demoPage?: boolean;
}

export interface RampartServer {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly nodeId: string;
  /** Resolves with the bound address (port 0 → an ephemeral port). */
  listen(): Promise<AddressInfo>;
  /** Graceful: 1001 to every socket, flush storage, close adapters. */
  close(): Promise<void>;
  /** Counters for tests and the admin view. */
  stats(): { open: number; unauthenticated: number; unauthenticatedIps: number; users: number };
  readonly limits: Limits;
  /** The admin API's own listener (`admin.port`), when it has one. */
  adminAddress(): AddressInfo | undefined;
}

const DEMO_PAGE = fileURLToPath(new URL('../../public/index.html', import.meta.url));
const WS_PATHS = new Set(['/ws', '/']);

function keySourceFor(config: RampartConfig, logger: Logger): KeySource {
  const { jwt } = config;
  if (jwt.secret !== undefined) return secretKeySource(jwt.secret);
  if (jwt.publicKeyFile !== undefined) return publicKeySource(jwt.publicKeyFile);
  if (jwt.jwksUrl !== undefined) return jwksKeySource(jwt.jwksUrl, jwt.jwksCacheMaxAge);
  // Development only (production config validation refuses a missing key).
  const { secret, created } = loadOrCreateDevSecret(config.dataDir);
  logger.warn({ dataDir: config.dataDir, created }, 'using the development signing key (never in production)');
  return secretKeySource(secret);
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

function refuseHandshake(socket: Duplex, status: number): void {
  const extra = status === 429 || status === 503 ? 'Retry-After: 60\r\n' : '';
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n${extra}\r\n`);
}

/** What a storage error says about itself, never what it carried (no row data, no content). */
function errorSummary(err: unknown): string {
  return err instanceof Error ? err.message : 'unknown';
}

export async function createRampartServer(options: RampartServerOptions): Promise<RampartServer> {
  const { config } = options;
  const nodeId = options.nodeId ?? randomUUID().slice(0, 8);
  const logger = createLogger(config.logLevel, options.logDestination);
  const metrics = createMetrics();
  const security: SecurityEventSink = createSecurityEventSink(logger, metrics);
  const originPolicy = compileOriginPolicy(
    config.allowedOrigins.length > 0 ? config.allowedOrigins : [`http://localhost:${config.port}`, `http://127.0.0.1:${config.port}`],
    config.allowMissingOrigin,
  );
  const verify = createTokenVerifier({
    keySource: keySourceFor(config, logger),
    ...(config.jwt.algorithms ? { algorithms: config.jwt.algorithms } : {}),
    ...(config.jwt.issuer ? { issuer: config.jwt.issuer } : {}),
    ...(config.jwt.audience ? { audience: config.jwt.audience } : {}),
    clockTolerance: config.jwt.clockTolerance,
    maxTokenLength: config.jwt.maxTokenLength,
  });

  // ── adapters ──
  const cipher = config.encryption ? ContentCipher.fromBase64(config.encryption.activeKeyId, config.encryption.keys) : undefined;
  const store: Store = await openStore(config.storage, cipher ? { cipher } : {});
  let bus: Bus | undefined;
  let limits: Limits | undefined;
  let admin: Admin | undefined;
  try {
    bus = await openBus({
      ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
      channelPrefix: config.redisKeyPrefix,
      nodeId,
      onError: (err, source) => logger.error({ source, err: err.message }, 'bus error'),
    });
    limits = createLimits({
      ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
      keyPrefix: config.redisKeyPrefix,
      nodeId,
      livenessMs: config.limits.nodeLivenessMs,
      heartbeatMs: Math.max(100, Math.floor(config.limits.nodeLivenessMs / 3)),
      onBackendError: (err: unknown) => logger.error({ err: err instanceof Error ? err.message : 'unknown' }, 'limits backend error'),
    });
    if (!(await limits.ready(5000))) logger.error('limits backend (Redis) not reachable: new connections are refused until it is');
    admin = await openAdmin({ config, nodeId, logger, security });
  } catch (err) {
    await Promise.allSettled([store.close(), bus?.close(), limits?.close()]);
    throw err;
  }
  const { limiter, registry } = limits;
  const committer = new GroupCommitter(store, {
    maxInboxSize: config.chat.maxInboxSize,
    onBatch: (size) => metrics.storeBatchSize.observe(size),
  });
  const sessions = new SessionRegistry(bus, admin.control.observer);
  const chat = new ChatService({
    store,
    committer,
    bus,
    maxInboxSize: config.chat.maxInboxSize,
    events: {
      stored: (n) => metrics.messagesStored.inc(n),
      delivered: () => metrics.messagesDelivered.inc(),
      storeFailed: (err) => logger.error({ err: errorSummary(err) }, 'store write failed'),
    },
  });

  // ── node-wide socket accounting (the registry holds the cluster-wide per-IP/per-user counts) ──
  const open = new Set<Session>();
  const unauthenticated = new Set<Session>();
  const unauthByIp = new Map<string, number>();
  const L = config.limits;
  const leaveUnauthenticated = (session: Session): void => {
    if (!unauthenticated.delete(session)) return;
    const n = (unauthByIp.get(session.ip) ?? 1) - 1;
    if (n <= 0) unauthByIp.delete(session.ip);
    else unauthByIp.set(session.ip, n);
  };
  const updateGauges = (): void => {
    metrics.connections.set({ state: 'unauthenticated' }, unauthenticated.size);
    metrics.connections.set({ state: 'active' }, open.size - unauthenticated.size);
  };

  const authenticator = createAuthenticator({
    verify,
    limiter,
    registry,
    sessions,
    chat,
    maxConnectionsPerUser: config.maxConnectionsPerUser,
    onUserLimit: L.onUserLimit,
    // The rule refuses the maxAuthFailures-th failure, and a refusal is what locks the IP out.
    authFailureRule: { name: 'auth_failures', limit: L.maxAuthFailures - 1, windowMs: L.authFailureWindowMs },
    lockoutMs: L.authLockoutMs,
    maxBufferedBytes: L.maxBufferedBytes,
    replayAttempts: config.chat.inboxReplayAttempts,
    replayRetryMs: config.chat.inboxReplayRetryMs,
    onAuthenticated: (session) => {
      leaveUnauthenticated(session);
      updateGauges();
    },
    onReplayFailed: (err) => logger.error({ err: errorSummary(err) }, 'inbox replay failed'),
    access: admin.control.policy,
  });
  const handleFrame = createFramePipeline({
    maxPreAuthMessageSize: config.maxPreAuthMessageSize,
    contentPolicy: config.chat.contentPolicy,
    roles: { roles: config.chat.roles, defaultRole: config.chat.defaultRole },
    rules: rateRules(config),
    limiter,
    connectionLimiter: limits.connectionLimiter,
    chat,
    authenticator,
    countFrame: (type) => metrics.framesIn.inc({ type }),
    userSessions: admin.userSessions,
  });
  const hooks: SessionHooks = {
    handleFrame,
    flush: new FlushScheduler(),
    security,
    onAbuse: (session) => {
      void limiter.block(penaltyKey(session.userKey), L.penaltyMs);
      session.reject(closeWith('rate_limit_abuse', CloseCode.RATE_LIMIT_ABUSE));
    },
    onClosed: (session) => {
      open.delete(session);
      leaveUnauthenticated(session);
      if (session.userKey) sessions.remove(session);
      if (session.holdsUserSlot) {
        session.holdsUserSlot = false;
        void registry.releaseUser(session.userKey);
      }
      updateGauges();
    },
  };
  const timings = {
    authTimeout: config.authTimeout,
    heartbeatInterval: config.heartbeatInterval,
    heartbeatTimeout: config.heartbeatTimeout,
    maxBufferedBytes: L.maxBufferedBytes,
    maxQueuedFrames: L.maxQueuedFrames,
    maxViolations: L.maxViolations,
    violationWindowMs: L.violationWindowMs,
  };

  // ── HTTP(S) server and the WebSocket upgrade ──
  const wssOptions: ServerOptions & { maxFragments: number; maxBufferedChunks: number; maxPendingAutoPongs: number } = {
    noServer: true,
    maxPayload: config.maxMessageSize, // nothing bigger is ever buffered (close 1009)
    perMessageDeflate: false, // compression bombs and CPU cost; chat frames are small
    clientTracking: false, // we track sessions ourselves
    skipUTF8Validation: false, // invalid UTF-8 → close 1007
    maxFragments: L.maxFragments,
    maxBufferedChunks: L.maxBufferedChunks,
    maxPendingAutoPongs: L.maxPendingAutoPongs, // ping floods: at most this many pongs waiting
  };
  const wss = new WebSocketServer(wssOptions);
  const routes = createHttpRoutes({
    ready: async () => {
      try {
        await store.ping();
        return true;
      } catch {
        return false;
      }
    },
    metrics: metrics.registry,
    ...(options.demoPage === false ? {} : { demoPage: DEMO_PAGE }),
  });
  const httpHandler = admin.mount(routes);
  const serverOptions = {
    headersTimeout: L.headersTimeout,
    requestTimeout: L.headersTimeout + 1000,
    connectionsCheckingInterval: Math.min(1000, Math.ceil(L.headersTimeout / 2)),
    maxHeaderSize: 16384,
  };
  const server: Server = config.tls
    ? createHttpsServer({ ...serverOptions, cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), minVersion: config.tls.minVersion }, httpHandler)
    : createHttpServer(serverOptions, httpHandler);
  const trustedProxies = new Set(config.behindProxy);
  const attemptRule = { name: 'attempts', limit: L.connectionAttemptsPerMinute, windowMs: 60_000 };
  let closing = false;

  const gateOptions = {
    limiter,
    registry,
    originPolicy,
    attemptRule,
    maxConnectionsPerIP: config.maxConnectionsPerIP,
    allowQueryToken: config.allowQueryToken,
    verify,
    lockoutKey,
    capacity: (ip: string) =>
      open.size >= L.maxConnections
        ? ('connections' as const)
        : unauthenticated.size >= L.maxUnauthenticated
          ? ('unauthenticated' as const)
          : (unauthByIp.get(ip) ?? 0) >= L.maxUnauthenticatedPerIP
            ? ('unauthenticated_ip' as const)
            : ('ok' as const),
  };

  // Listeners that live as long as the socket are built outside the upgrade handler: a closure
  // created inside it would keep the handler's whole scope (the request, its headers, `head`)
  // alive for the life of the connection — about 1 KB per idle socket.
  const releaseIpOnClose = (ip: string) => (): void => void registry.releaseIp(ip);

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', destroySelf); // a reset mid-handshake must not crash us
    const ip = resolveClientIp(req.socket.remoteAddress, req.headers['x-forwarded-for'], trustedProxies);
    if (closing || !WS_PATHS.has(pathOnly(req.url))) {
      refuseHandshake(socket, closing ? 503 : 404);
      return;
    }
    runHandshakeGate(gateOptions, req, ip).then(
      (result) => {
        if (!result.ok) {
          security(result.event, { ip, code: result.status });
          refuseHandshake(socket, result.status);
          return;
        }
        // The IP slot is tied to the TCP socket: released on every close path, upgrade or not —
        // including a socket that closed while the gate was waiting on Redis ('close' already emitted).
        if (socket.destroyed) {
          void registry.releaseIp(ip);
          return;
        }
        socket.once('close', releaseIpOnClose(ip));
        wss.handleUpgrade(req, socket, head, (ws) => {
          const session = new Session(ws, socket, ip, timings, hooks);
          open.add(session);
          if (result.identity) {
            void authenticator.admit(session, result.identity);
          } else {
            unauthenticated.add(session);
            unauthByIp.set(ip, (unauthByIp.get(ip) ?? 0) + 1);
          }
          updateGauges();
        });
      },
      (err: unknown) => {
        logger.error({ err: err instanceof Error ? err.message : 'unknown', ip }, 'handshake gate failed');
        refuseHandshake(socket, 503);
      },
    );
  });
  server.on('clientError', (_err, socket) => {
    // Slow, malformed or oversized HTTP requests: a bare 400/408 and close, nothing echoed.
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    socket.destroy();
  });

  // ── retention ──
  const prune = (): void => {
    store.pruneOlderThan(Date.now() - config.chat.retentionDays * 86_400_000).catch((err: unknown) => {
      logger.error({ err: err instanceof Error ? err.message : 'unknown' }, 'retention prune failed');
    });
  };
  const pruneTimer = setInterval(prune, 3_600_000);
  pruneTimer.unref();
  prune();

  return {
    logger,
    metrics,
    nodeId,
    limits,
    stats: () => ({ open: open.size, unauthenticated: unauthenticated.size, unauthenticatedIps: unauthByIp.size, users: sessions.userCount }),
    adminAddress: () => admin!.address(),
    listen: async () => {
      await admin!.listen();
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          logger.info({ host: address.address, port: address.port, tls: Boolean(config.tls), nodeId }, 'listening');
          resolve(address);
        });
      });
    },
    close: async () => {
      if (closing) return;
      closing = true;
      clearInterval(pruneTimer);
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of open) session.close(CloseCode.GOING_AWAY, 'server shutting down');
      const deadline = Date.now() + config.shutdownGraceMs;
      while (open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const session of open) session.terminate();
      server.closeAllConnections?.();
      await serverClosed;
      await committer.close();
      await Promise.allSettled([store.close(), bus!.close(), limits!.close(), admin!.close()]);
      logger.info('closed');
    },
  };
}
