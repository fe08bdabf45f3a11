/**
 * The composition root: builds every adapter from config, wires gate → session → pipeline →
 * chat → store + bus, and owns start-up and graceful shutdown. No protocol logic lives here.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type ServerOptions } from 'ws';
import type { DestinationStream } from 'pino';
import type { RampartConfig } from '../config/schema.js';
import { loadOrCreateDevSecret } from '../config/dev-key.js';
import { DeadNodeCleanup } from '../admin/dead-nodes.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { createMetrics, registerHealthGauges, type Metrics } from '../observability/metrics.js';
import { DeliveryTimer } from '../observability/delivery-timer.js';
import { createSecurityEventSink } from '../observability/security-events.js';
import { secretKeySource, type KeySource } from '../auth/key-source.js';
import { createIssuerRouter, issuerVerifiers } from '../auth/issuers.js';
import { serverOriginPolicy } from '../gate/origin.js';
import type { HandshakeGateOptions } from '../gate/handshake-gate.js';
import { openStore } from '../store/open-store.js';
import { ContentCipher } from '../store/content-cipher.js';
import { GroupCommitter } from '../store/group-commit.js';
import type { Store } from '../store/store.js';
import { openBus } from '../bus/open-bus.js';
import type { Bus } from '../bus/bus.js';
import { createLimits, type Limits } from '../limits/index.js';
import { presenceLossTimings, registryHeartbeatMs } from '../limits/node-liveness.js';
import { ChatService } from '../chat/chat-service.js';
import { GroupService } from '../chat/group-service.js';
import { TimelinePublisher } from '../chat/timeline-publisher.js';
import { ReceiptService } from '../chat/receipt-service.js';
import { MessageChangeService } from '../chat/message-changes.js';
import { permissionsFor } from '../chat/authorization.js';
import { PresenceService } from '../presence/presence-service.js';
import { MemoryPresenceState } from '../presence/presence-state.js';
import { RedisPresenceState } from '../presence/redis-presence-state.js';
import type { SessionHooks } from '../session/session.js';
import { FlushScheduler } from '../session/flush-scheduler.js';
import { TimerWheel } from '../session/timer-wheel.js';
import { SessionRegistry } from './session-registry.js';
import { createHttpRoutes } from './http-routes.js';
import { devTokensFor } from './dev-tokens.js';
import { createSessionLifecycle } from './session-lifecycle.js';
import { NodeConnections } from './node-connections.js';
import { createUpgradeHandler } from './upgrade-handler.js';
import { createReadiness } from './readiness.js';
import { shutDown } from './shutdown.js';
import { createMetricsServer } from './metrics-server.js';
import type { MetricsEndpoint } from './metrics-endpoint.js';
import { normalizeIp, resolveClientIp } from '../gate/client-ip.js';
import { listen } from './listen.js';
import { hstsHeader, httpsOptions, refuseUnverifiedClientCert, reloadSecureContext, withResponseHeaders, type TlsReloadResult } from './tls-options.js';
import { createFramePipeline, rateRules } from '../pipeline/frame-pipeline.js';
import type { AuthFailureReasonValue } from '../protocol/reasons.js';
import { countAuthFailure, createAuthenticator, lockoutKey } from '../pipeline/authenticate.js';
import { authFailureRule, createTokenChecks } from '../pipeline/token-checks.js';
import { guardListener, httpServerLimits, trackConnections } from './http-limits.js';
import { redisPing } from '../redis/liveness.js';
import { scheduleRetention } from './retention.js';
import { openAdmin, type Admin } from '../admin/index.js';
import { errorSummary } from '../observability/error-summary.js';
import { throttled } from '../observability/throttled.js';

/** A storage ping slower than this counts as "storage does not answer" (readiness, storage gauge). */
const STORAGE_PING_TIMEOUT_MS = 2000;
/**
 * At most one `storage connection error` / `presence failed` line per this long: a pool emits one
 * per idle connection lost, presence one per sweep and per user's check while Redis is away.
 */
const BURST_ERROR_LOG_MS = 60_000;

export interface RampartServerOptions {
  config: RampartConfig;
  /** Where log lines go (tests capture them); stdout by default. */
  logDestination?: DestinationStream;
  /** Unique id of this process in a cluster; random by default. */
  nodeId?: string;
  /** Serve the demo page at `/` (on by default, always off in production mode). */
  demoPage?: boolean;
}

export interface RampartServer {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly nodeId: string;
  /** Resolves with the bound address (port 0 → an ephemeral port). */
  listen(): Promise<AddressInfo>;
  /** Address of the dedicated metrics listener once listening (`metrics.port` set), else undefined. */
  metricsAddress(): AddressInfo | undefined;
  /**
   * Graceful: refuse new handshakes and turn `/readyz` 503, close sessions with 1001 in batches,
   * flush storage, close adapters. Resolves within about `shutdownGraceMs` (sockets still open at
   * the deadline are destroyed). Every call returns the same promise.
   */
  close(): Promise<void>;
  /** Counters for tests and the admin view. */
  stats(): { open: number; unauthenticated: number; unauthenticatedIps: number; users: number };
  readonly limits: Limits;
  /**
   * Reads `tls.certFile`/`keyFile`/`caFile` again for new handshakes (SIGHUP); open connections
   * are untouched. A bad new certificate keeps the old one (logged as an error).
   */
  reloadTls(): TlsReloadResult;
  /** The admin API's own listener (`admin.port`), when it has one. */
  adminAddress(): AddressInfo | undefined;
}

const DEMO_PAGE = fileURLToPath(new URL('../../public/index.html', import.meta.url));

/** The development key, when config names no key at all (production config validation refuses that). */
function devKeySource(config: RampartConfig, logger: Logger): KeySource {
  const { secret, created, exposed } = loadOrCreateDevSecret(config.dataDir);
  logger.warn({ dataDir: config.dataDir, created }, 'using the development signing key (never in production)');
  if (exposed) logger.warn({ dataDir: config.dataDir }, 'the development signing key file is readable by other users (anyone who reads it can sign tokens): chmod 600 it');
  return secretKeySource(secret);
}

export async function createRampartServer(options: RampartServerOptions): Promise<RampartServer> {
  const { config } = options;
  const nodeId = options.nodeId ?? randomUUID().slice(0, 8);
  const heartbeatMs = registryHeartbeatMs(config.limits.nodeLivenessMs);
  const logger = createLogger(config.logLevel, options.logDestination, nodeId);
  const metrics = createMetrics();
  const security = createSecurityEventSink(logger, metrics, { logLinesPerSecond: config.securityLogLinesPerSecond });
  // Compiled now so a bad entry fails start-up; the own-origin default is compiled again once the port is bound.
  const originPolicyOn = (port: number) => serverOriginPolicy(config.allowedOrigins, config.allowMissingOrigin, { secure: config.tls !== undefined, port });
  const originPolicy = originPolicyOn(config.port);
  const verify = createIssuerRouter(
    issuerVerifiers(config.jwt, () => devKeySource(config, logger)),
    config.jwt.maxTokenLength,
  );

  // Read before any adapter opens: an unreadable certificate fails start-up with nothing to close.
  const tlsOptions = config.tls ? httpsOptions(config.tls) : undefined;

  // ── adapters ──
  const cipher = config.encryption ? ContentCipher.fromBase64(config.encryption.activeKeyId, config.encryption.keys) : undefined;
  // An idle pooled connection that dies (a PostgreSQL restart, a cut network) emits an error and
  // nothing else: logged, but rate-limited, since a pool loses all of them at once in an outage.
  const onPoolError = throttled<Error>(BURST_ERROR_LOG_MS, (err, unlogged) =>
    logger.error({ err: errorSummary(err), ...(unlogged > 0 ? { unlogged } : {}) }, 'storage connection error'),
  );
  const store: Store = await openStore(config.storage, {
    ...(cipher ? { cipher } : {}),
    strangerPrivacy: config.chat.strangerPrivacy,
    maxDevicesPerUser: config.chat.maxDevicesPerUser,
    postgres: { onPoolError },
  });
  let bus: Bus | undefined;
  let limits: Limits | undefined;
  let admin: Admin | undefined;
  let sessions: SessionRegistry;
  const deliveryTimer = new DeliveryTimer(metrics);
  // Dead nodes' session-directory entries, dropped by the node that found them (src/admin/dead-nodes.ts).
  const deadNodes = new DeadNodeCleanup((err) => logger.error({ err: errorSummary(err) }, 'dropping dead nodes\' session directory entries failed'));
  try {
    bus = await openBus({
      ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
      channelPrefix: config.redisKeyPrefix,
      nodeId,
      onError: (err, source) => logger.error({ source, err: errorSummary(err) }, 'bus error'),
      ping: redisPing(config),
      peerLivenessMs: config.limits.nodeLivenessMs,
      onPeersLost: (count, nodes) => {
        // `count` 0: ids handed over again (their cleanup had not succeeded yet), not new deaths.
        if (count > 0) logger.warn({ count }, 'cluster nodes lapsed without a clean shutdown: every node reads its sessions\' gaps from storage');
        // Resolves false while their directory entries are not dropped: the peer watch hands them over again.
        return deadNodes.found(nodes);
      },
    });
    limits = createLimits({
      ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
      keyPrefix: config.redisKeyPrefix,
      nodeId,
      livenessMs: config.limits.nodeLivenessMs,
      heartbeatMs,
      ping: redisPing(config),
      onBackendError: (err: unknown, op: string) => logger.error({ op, err: errorSummary(err) }, 'limits backend error'),
    });
    if (!(await limits.ready(5000))) logger.error('limits backend (Redis) not reachable: new connections are refused until it is');
    sessions = new SessionRegistry(bus, (frame, n) => deliveryTimer.written(frame, n));
    admin = await openAdmin({ config, nodeId, logger, security, localSessions: sessions });
    deadNodes.attach(admin.control);
  } catch (err) {
    await Promise.allSettled([store.close(), bus?.close(), limits?.close()]);
    throw err;
  }
  const { limiter, registry } = limits;
  const committer = new GroupCommitter(store, {
    maxInboxSize: config.chat.maxInboxSize,
    onBatch: (size) => metrics.storeBatchSize.observe(size),
    onCommit: (seconds, ok) => metrics.storeCommitDuration.observe({ result: ok ? 'ok' : 'error' }, seconds),
  });
  sessions.observe(admin.control.observer);
  const publisher = new TimelinePublisher(bus);
  const storeFailed = (err: unknown): void => logger.error({ err: errorSummary(err) }, 'storage call failed');
  const receipts = new ReceiptService({
    store,
    bus,
    enabled: config.chat.receipts === 'on',
    coalesceMs: config.chat.receiptCoalesceMs,
    membersMax: config.chat.receiptMembersMax,
    onError: (err) => logger.error({ err: errorSummary(err) }, 'receipt failed'),
  });
  const changes = new MessageChangeService({
    store,
    publisher,
    editWindowMs: config.chat.editWindowMs,
    maxInboxSize: config.chat.maxInboxSize,
    groupHistory: config.chat.groupHistory,
    storeFailed,
  });
  const presenceError = throttled<unknown>(BURST_ERROR_LOG_MS, (err, unlogged) =>
    logger.error({ err: errorSummary(err), ...(unlogged > 0 ? { unlogged } : {}) }, 'presence failed'),
  );
  const presence = new PresenceService({
    store,
    bus,
    registry,
    state: config.redisUrl
      ? new RedisPresenceState({
          redisUrl: config.redisUrl,
          keyPrefix: config.redisKeyPrefix,
          nodeId,
          onError: presenceError,
          ping: redisPing(config),
          ...presenceLossTimings(config.limits.nodeLivenessMs),
        })
      : new MemoryPresenceState(),
    debounceMs: config.chat.presenceDebounceMs,
    defaultVisible: config.presence.visible,
    sweepMs: config.redisUrl ? heartbeatMs : 0,
    onError: presenceError,
  });
  const chat = new ChatService({
    store,
    committer,
    bus,
    publisher,
    groupHistory: config.chat.groupHistory,
    receipts,
    replyBytes: Math.floor(config.limits.maxBufferedBytes / 4),
    onFirstWrite: (sender, conversationId) => {
      void presence.shared(sender.tenantId, sender.userId, conversationId);
      receipts.shared(sender.tenantId, sender.userId, conversationId);
    },
    events: {
      stored: (n) => metrics.countStored(n),
      publishing: (receivedAt) => deliveryTimer.publishing(receivedAt),
      published: () => deliveryTimer.published(),
      storeFailed,
    },
  });
  const groups = new GroupService({
    store,
    publisher,
    limits: { maxGroupMembers: config.chat.maxGroupMembers, maxGroupsPerUser: config.chat.maxGroupsPerUser, maxInboxSize: config.chat.maxInboxSize },
    storeFailed,
  });

  const L = config.limits;
  const connections = new NodeConnections(L, metrics);
  const authFailures = authFailureRule(L);

  const checkToken = createTokenChecks({
    limiter,
    verify,
    lockoutKey,
    countFailure: (ip) => countAuthFailure(limiter, ip, authFailures, L.authLockoutMs),
  });
  /** Every authentication's outcome (first `auth`, query token, refresh): `rampart_auth_results_total`. */
  const countAuthResult = (result: 'success' | AuthFailureReasonValue): void =>
    metrics.authResults.inc(result === 'success' ? { result, reason: 'ok' } : { result: 'failure', reason: result });
  const rolePolicy = { roles: config.chat.roles, defaultRole: config.chat.defaultRole };
  const authenticator = createAuthenticator({
    checkToken,
    limiter,
    registry,
    sessions,
    chat,
    maxConnectionsPerUser: config.maxConnectionsPerUser,
    onUserLimit: L.onUserLimit,
    maxBufferedBytes: L.maxBufferedBytes,
    replayAttempts: config.chat.inboxReplayAttempts,
    replayRetryMs: config.chat.inboxReplayRetryMs,
    replayMaxRetryMs: config.chat.inboxReplayMaxRetryMs,
    replayPageSize: config.chat.replayPageSize,
    onAuthenticated: (session) => {
      connections.authenticated(session);
      presence.changed(session.userKey, true);
    },
    onReplayFailed: (err) => logger.error({ err: errorSummary(err) }, 'timeline read failed'),
    onAuthResult: countAuthResult,
    access: admin.control.policy,
    mayRead: (identity) => permissionsFor(rolePolicy, identity.role).read,
  });
  const handleFrame = createFramePipeline({
    contentPolicy: config.chat.contentPolicy,
    roles: rolePolicy,
    rules: rateRules(config),
    limiter,
    connectionLimiter: limits.connectionLimiter,
    chat,
    groups,
    changes,
    presence,
    authenticator,
    countFrame: (type) => metrics.countFrame(type),
    userSessions: admin.userSessions,
    maxPendingRequests: config.limits.maxQueuedFrames,
  });
  const lifecycle = createSessionLifecycle({ limiter, registry, connections, sessions, presence, penaltyMs: L.penaltyMs, logger });
  const hooks: SessionHooks = {
    handleFrame,
    flush: new FlushScheduler(),
    timers: new TimerWheel(),
    security,
    onAbuse: lifecycle.onAbuse,
    onClosed: lifecycle.onClosed,
  };
  const timings = {
    authTimeout: config.authTimeout,
    heartbeatInterval: config.heartbeatInterval,
    heartbeatTimeout: config.heartbeatTimeout,
    maxBufferedBytes: L.maxBufferedBytes,
    maxQueuedFrames: L.maxQueuedFrames,
    maxPreAuthMessageSize: config.maxPreAuthMessageSize,
    maxMessageSize: config.maxMessageSize,
    tokenExpiryGraceMs: config.jwt.clockTolerance * 1000,
    maxViolations: L.maxViolations,
    violationWindowMs: L.violationWindowMs,
    maxPendingAutoPongs: L.maxPendingAutoPongs,
  };

  // ── HTTP(S) server and the WebSocket upgrade ──
  const wssOptions: ServerOptions & { maxFragments: number; maxBufferedChunks: number } = {
    noServer: true,
    maxPayload: config.maxMessageSize, // nothing bigger is ever buffered (close 1009); lower before auth (Session)
    perMessageDeflate: false, // compression bombs and CPU cost; chat frames are small
    clientTracking: false, // we track sessions ourselves
    skipUTF8Validation: false, // invalid UTF-8 → close 1007
    maxFragments: L.maxFragments,
    maxBufferedChunks: L.maxBufferedChunks,
    autoPong: false, // the session answers pings, ignoring them past limits.maxPendingAutoPongs (ws would terminate)
  };
  const wss = new WebSocketServer(wssOptions);
  let closing = false;
  let shutdown: Promise<void> | undefined;
  const busUp = (): boolean => bus!.healthy() && limits!.healthy() && admin!.control.healthy();
  const readiness = createReadiness({
    ping: () => store.ping(),
    busUp,
    draining: () => closing,
    storageTimeoutMs: STORAGE_PING_TIMEOUT_MS,
    // `/readyz` does not say why it is 503: the log does, once per change.
    onStorageChange: (up, cause) => {
      if (up) logger.info('storage answering again: ready as far as storage goes');
      else logger.error({ err: cause === 'timeout' ? 'timeout' : errorSummary(cause) }, 'storage not answering: not ready');
    },
  });
  registerHealthGauges(metrics.registry, {
    backlog: () => committer.pending,
    busUp,
    storageUp: readiness.storageUp,
  });
  const trustedProxies = new Set(config.behindProxy);
  const metricsEndpoint: MetricsEndpoint = {
    registry: metrics.registry,
    ...(config.metrics.token !== undefined ? { token: config.metrics.token } : {}),
    onRefused: (req) => security('metrics_unauthorized', { ip: normalizeIp(resolveClientIp(req.socket.remoteAddress, req.headers['x-forwarded-for'], trustedProxies)), code: 401 }),
  };
  const metricsServer =
    config.metrics.port !== undefined
      ? createMetricsServer(config.metrics.port, config.metrics.host, metricsEndpoint, (err) => logger.error({ err: errorSummary(err) }, 'metrics listener error'), {
          headersTimeout: L.headersTimeout,
          maxHeaderSize: L.maxHeaderSize,
        })
      : undefined;
  let metricsAddress: AddressInfo | undefined;
  // The demo page and its token endpoint: never in production (dev-tokens.ts narrows the endpoint further).
  const demoServed = options.demoPage !== false && config.mode !== 'production';
  const routes = createHttpRoutes({
    ready: readiness.ready,
    // On the main port only when guarded by a token and no dedicated port is configured.
    ...(metricsServer === undefined && metricsEndpoint.token !== undefined ? { metrics: metricsEndpoint } : {}),
    ...(demoServed ? { demoPage: DEMO_PAGE, devTokens: devTokensFor(config) } : {}),
  });
  const mainRoutes = admin.mount(routes); // `/admin/` in front unless the API has its own port
  const hsts = hstsHeader(config.tls);
  // Answers written to the socket directly (handshake refusals, malformed requests) carry it too.
  const hstsLine = hsts === undefined ? '' : `Strict-Transport-Security: ${hsts}\r\n`;
  const handler = hsts ? withResponseHeaders(mainRoutes, { 'strict-transport-security': hsts }) : mainRoutes;
  const serverOptions = httpServerLimits(L.headersTimeout, L.maxHeaderSize);
  // A TLS handshake gets the same time as the request headers (Node's default is 120 s: a slow one held a socket that long).
  const httpsServer = tlsOptions ? createHttpsServer({ ...serverOptions, handshakeTimeout: L.headersTimeout, ...tlsOptions }, handler) : undefined;
  if (config.tls?.requestClientCert && !config.tls.requireClientCert) httpsServer?.on('secureConnection', refuseUnverifiedClientCert);
  const server: Server = httpsServer ?? createHttpServer(serverOptions, handler);
  const rawConnections = trackConnections(server);
  const attemptRule = { name: 'attempts', limit: L.connectionAttemptsPerMinute, windowMs: 60_000 };

  const gate: HandshakeGateOptions = {
    limiter,
    registry,
    originPolicy,
    attemptRule,
    maxConnectionsPerIP: config.maxConnectionsPerIP,
    allowQueryToken: config.allowQueryToken,
    checkToken,
    lockoutKey,
    onAuthResult: countAuthResult,
    capacity: (ip) => connections.capacity(ip),
    reserve: (ip) => connections.reserve(ip),
  };
  server.on(
    'upgrade',
    createUpgradeHandler({
      wss,
      onUpgraded: (socket) => rawConnections.untrack(socket),
      gate,
      registry,
      connections,
      trustedProxies,
      ipv6PrefixLength: L.ipv6PrefixLength,
      timings,
      hooks,
      security,
      logger,
      isClosing: () => closing,
      admit: (session, identity) => session.holdFramesWhile(authenticator.admit(session, identity)),
      onHandshake: (result, reason) => metrics.handshakes.inc({ result, reason }),
      responseHeaders: hstsLine,
    }),
  );
  guardListener(server, hstsLine); // malformed or oversized HTTP requests: a bare status and close, nothing echoed

  // ── retention ──
  const retention = scheduleRetention({
    prune: (olderThan) => store.pruneOlderThan(olderThan),
    retentionMs: config.chat.retentionDays * 86_400_000,
    intervalMs: 3_600_000,
    onError: (err) => logger.error({ err: errorSummary(err) }, 'retention prune failed'),
  });

  /** Graceful shutdown (see RampartServer.close and shutdown.ts); runs once. */
  async function drainAndClose(): Promise<void> {
    closing = true; // from here /readyz is 503 and every new handshake is refused with 503
    logger.info({ sessions: connections.size }, 'draining');
    retention.close();
    await shutDown({
      graceMs: config.shutdownGraceMs,
      ...config.shutdown,
      logger,
      sessions: connections,
      server,
      connections: rawConnections,
      releasing: lifecycle.releasing,
      flushes: [() => committer.close(), () => receipts.close()],
      presence: () => presence.close(),
      adapters: [() => store.close(), () => bus!.close(), () => limits!.close(), () => metricsServer?.close(), () => admin!.close()],
    });
    hooks.timers.close();
    // What the log bounds held back is written before the last line.
    security.close();
    onPoolError.close();
    presenceError.close();
    logger.info('closed');
  }

  return {
    logger,
    metrics,
    nodeId,
    limits,
    reloadTls: () => {
      if (!config.tls || !httpsServer) return { ok: false, error: 'tls is not configured' };
      const result = reloadSecureContext(httpsServer, config.tls);
      if (result.ok) logger.info({ fingerprint: result.fingerprint }, 'tls certificate reloaded');
      else logger.error({ err: result.error }, 'tls reload failed; keeping the previous certificate');
      return result;
    },
    stats: () => ({ ...connections.stats(), users: sessions.userCount }),
    metricsAddress: () => metricsAddress,
    adminAddress: () => admin!.address(),
    listen: async () => {
      await admin!.listen();
      if (metricsServer) {
        metricsAddress = await metricsServer.listen();
        logger.info({ host: metricsAddress.address, port: metricsAddress.port }, 'metrics listening');
      }
      const address = await listen(server, config.port, config.host, (err) => logger.error({ err: errorSummary(err) }, 'listener error'), config.listenBacklog);
      gate.originPolicy = originPolicyOn(address.port); // port 0 bound an ephemeral port
      logger.info({ host: address.address, port: address.port, tls: Boolean(config.tls) }, 'listening');
      return address;
    },
    // Every caller gets the one shutdown, and its promise resolves once it finished.
    close: () => (shutdown ??= drainAndClose()),
  };
}
