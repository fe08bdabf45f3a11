/**
 * This node's part in controlling sessions cluster-wide: it records its sessions in the session
 * directory, applies control commands (disconnect, ban, revoke, end) to its own sockets, and offers
 * the operations the admin API and the `list_sessions` / `end_session` frames use. It exists with
 * or without the admin API (users can end their own sessions either way).
 */
import type { Redis } from 'ioredis';
import { CloseCode } from '../protocol/close-codes.js';
import { closeWith } from '../pipeline/rejection.js';
import type { Session } from '../session/session.js';
import type { SessionObserver } from '../server/session-registry.js';
import { createRedisClient } from '../limits/redis-health.js';
import { quitRedis } from '../redis/quit.js';
import { watchLiveness, type RedisLiveness } from '../redis/liveness.js';
import { PendingCloses } from './pending-closes.js';
import { ExpiringSet, MemoryAccessPolicy, revokedTokenKey, type AccessPolicy, type RevokedToken } from './access-policy.js';
import { RedisAccessPolicy } from './redis-access-policy.js';
import { LocalControlChannel, type CloseCause, type ControlChannel, type ControlCommand } from './control-channel.js';
import { RedisControlChannel } from './redis-control-channel.js';
import { LocalSessionDirectory, clusterSessionId, type LocalSessions, type SessionDescriptor, type SessionDirectory } from './session-directory.js';
import { RedisSessionDirectory } from './redis-session-directory.js';

export interface SessionControlOptions {
  /** Set: share bans, revocations, the directory and commands through Redis. */
  redisUrl?: string;
  /** `redisKeyPrefix` of the config. */
  prefix: string;
  nodeId: string;
  /** This node's authenticated sessions: the session registry, which tells `observer` of each one added and removed. */
  local: LocalSessions<Session>;
  /** Redis: retry period of failed directory writes. */
  retryMs?: number;
  /** How long start-up waits for Redis. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Redis: liveness PINGs on both connections (redis/liveness.ts). Default 1000 / 3000 ms. */
  ping?: { intervalMs: number; timeoutMs: number };
  /** Redis: how long a disconnect or end_session is kept for nodes cut from Redis when it passed (config `admin.pendingCloseMs`). Default 1 h. */
  pendingCloseMs?: number;
  onError(err: unknown, op: string): void;
}

export type EndOutcome = 'ended' | 'forbidden';

export interface SessionControl {
  /** Hooked into the session registry: every authenticated session of this node. */
  readonly observer: SessionObserver;
  /** Checked at `auth` and refresh. */
  readonly policy: AccessPolicy;
  /** The cluster-wide id of a local session. */
  idOf(session: Session): string;
  listSessions(userKey: string): Promise<SessionDescriptor[]>;
  /** Drops the session-directory entries of nodes this node found dead (see RedisSessionDirectory.forgetNodes). */
  forgetNodes(nodeIds: readonly string[]): Promise<void>;
  /** Closes one session (by cluster-wide id) or all of a user's, on every node (4012). */
  disconnect(userKey: string, sessionId?: string): Promise<void>;
  /** Bans until `until` (never shortening a ban in force) and closes the user's open sessions (4010); resolves to the end that stands. */
  ban(userKey: string, until: number): Promise<number>;
  unban(userKey: string): Promise<boolean>;
  /** Refuses the token `jti` until `until` and closes the sessions authenticated with it (4003). */
  revoke(token: RevokedToken, until: number): Promise<void>;
  /**
   * `end_session` from `requester`: only a session of the same user may be ended (4011).
   * `ended` is called before the session closes (the requester's own session included).
   */
  endSession(requester: Session, sessionId: string, ended: () => void): Promise<EndOutcome>;
  /** False while its Redis connections are down or silent: `auth` is refused then (bans fail closed), so /readyz says so. */
  healthy(): boolean;
  close(): Promise<void>;
}

/** How each cause closes a session: code, and the frame sent before (refusals only). */
const CLOSES = {
  admin: (s: Session) => s.close(CloseCode.DISCONNECTED_BY_ADMIN, 'disconnected by admin'),
  user: (s: Session) => s.close(CloseCode.ENDED_BY_USER, 'ended by user'),
  banned: (s: Session) => s.reject(closeWith('banned', CloseCode.BANNED, { type: 'auth_failure', reason: 'banned' })),
} satisfies Record<CloseCause, (s: Session) => void>;
const closeRevoked = (s: Session): void =>
  s.reject(closeWith('token_revoked', CloseCode.INVALID_TOKEN, { type: 'auth_failure', reason: 'invalid_token' }));

/** Bans/revocations this node heard of recently: closes a session that was mid-`auth` when the command passed. */
const RACE_WINDOW_MS = 5000;
/** First wait before a failed recheck runs again; it doubles up to the max. */
const RECHECK_RETRY_MS = 250;
const RECHECK_RETRY_MAX_MS = 2000;
/** The tenant of a revocation published by an older node (no tenant): it held for every tenant. `|` is in no tenant. */
const ANY_TENANT = '|';

export async function openSessionControl(o: SessionControlOptions): Promise<SessionControl> {
  const recentBans = new ExpiringSet();
  const recentRevocations = new ExpiringSet();
  const heardRevoked = (tenantId: string, jti: string): boolean =>
    recentRevocations.has(revokedTokenKey({ tenantId, jti })) || recentRevocations.has(revokedTokenKey({ tenantId: ANY_TENANT, jti }));
  const idOf = (session: Session): string => clusterSessionId(o.nodeId, session);
  let policy: AccessPolicy;
  let channel: ControlChannel;
  let directory: SessionDirectory;
  const connections: Redis[] = [];
  /** Redis: both connections up and the control channel live again (a recheck can read and hear). */
  let bothReady = (): boolean => true;
  const liveness: RedisLiveness[] = [];
  /** Redis: disconnects and end_sessions kept for nodes cut from Redis when they passed (pending-closes.ts). */
  let pendingCloses: PendingCloses | undefined;
  if (o.redisUrl === undefined || o.redisUrl === '') {
    policy = new MemoryAccessPolicy();
    channel = new LocalControlChannel();
    directory = new LocalSessionDirectory(o.nodeId, o.local);
  } else {
    const client = createRedisClient(o.redisUrl, {}, o.onError);
    // Subscriptions are state: they may queue while disconnected and are restored on reconnect (by
    // the control channel, see resubscribe.ts).
    const subscriber = createRedisClient(
      o.redisUrl,
      { enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined, autoResubscribe: false },
      o.onError,
    );
    connections.push(client, subscriber);
    liveness.push(
      watchLiveness(client, 'session control', o.ping, (err) => o.onError(err, 'liveness')),
      watchLiveness(subscriber, 'session control subscriber', o.ping, (err) => o.onError(err, 'liveness')),
    );
    pendingCloses = new PendingCloses(client, o.prefix, o.pendingCloseMs ?? 3_600_000);
    try {
      await withTimeout(
        Promise.all([waitReady(client), subscriber.subscribe(`${o.prefix}admin:ready-check`).then(() => subscriber.unsubscribe(`${o.prefix}admin:ready-check`))]),
        o.connectTimeoutMs ?? 5000,
      );
      policy = new RedisAccessPolicy(client, o.prefix);
      // Both connections' first 'ready' came before this point: each later one is a reconnect. The
      // check reads keys through `client`, so it runs once both are back, whichever comes last: the
      // subscriber counts as back once Redis confirmed the channel again, so a ban published while
      // it was away is in the keys the check reads (a reconnect of `client` alone costs one
      // harmless extra check).
      let channelLive = true;
      bothReady = () => client.status === 'ready' && channelLive;
      const recheckWhenBothReady = (): void => {
        if (bothReady()) void recheckAll();
      };
      channel = await RedisControlChannel.open({
        client,
        subscriber,
        prefix: o.prefix,
        nodeId: o.nodeId,
        onError: o.onError,
        onRestored: () => {
          channelLive = true;
          recheckWhenBothReady();
        },
      });
      directory = new RedisSessionDirectory({ client, prefix: o.prefix, nodeId: o.nodeId, local: o.local, retryMs: o.retryMs ?? 1000, onError: o.onError });
      subscriber.on('close', () => (channelLive = false));
      client.on('ready', recheckWhenBothReady);
    } catch (err) {
      for (const l of liveness) l.stop();
      await Promise.all(connections.map(quitRedis));
      throw err;
    }
  }

  const apply = (command: ControlCommand): void => {
    if (command.kind === 'revoke') {
      const { jti, tenantId } = command;
      recentRevocations.extend(revokedTokenKey({ tenantId: tenantId ?? ANY_TENANT, jti }), Date.now() + RACE_WINDOW_MS);
      for (const s of o.local.all()) {
        if (s.identity?.jti === jti && (tenantId === undefined || s.identity.tenantId === tenantId)) closeRevoked(s);
      }
      return;
    }
    if (command.kind === 'unban') {
      recentBans.delete(command.userKey);
      return;
    }
    if (command.cause === 'banned') recentBans.extend(command.userKey, Math.min(Date.now() + RACE_WINDOW_MS, command.until ?? Infinity));
    for (const s of [...(o.local.sessionsOf(command.userKey) ?? [])]) {
      if (command.sessionId === undefined || command.sessionId === idOf(s)) CLOSES[command.cause](s);
    }
  };
  channel.onCommand(apply);

  /**
   * Pub/sub is at-most-once: commands published while this node's subscriber was away never
   * arrive. When it is back, every local session is checked against the ban and revocation keys
   * (what every `auth` checks), so a ban reaches open sessions here too, and against the
   * disconnects and end_sessions kept in Redis.
   */
  async function recheckAll(): Promise<void> {
    let failed = false;
    try {
      const byId = new Map<string, Session>();
      for (const session of o.local.all()) byId.set(idOf(session), session);
      const open = [...byId].map(([id, session]) => ({ id, userKey: session.userKey, addedAt: session.authenticatedAt }));
      const closes = (await pendingCloses?.due(open)) ?? new Map<string, CloseCause>();
      for (const [id, cause] of closes) {
        const session = byId.get(id);
        if (session !== undefined && session.isOpen) CLOSES[cause](session);
      }
    } catch (err) {
      failed = true;
      o.onError(err, 'recheck'); // the bans and revocations below are still checked
    }
    for (const session of o.local.all()) {
      const identity = session.identity;
      if (identity === undefined || !session.isOpen) continue;
      try {
        const denied = await policy.isDenied(identity);
        if (denied === 'banned') CLOSES.banned(session);
        else if (denied === 'revoked') closeRevoked(session);
      } catch (err) {
        if (!failed) o.onError(err, 'recheck'); // one report per pass
        failed = true;
      }
    }
    recheckDone(failed);
  }

  // A failed read does not mean the connection dropped (an error reply, a slow Redis past the
  // command timeout): no reconnect would come to run the recheck again, so it is retried on a
  // timer, backing off, until a whole pass succeeds. (A reconnect meanwhile runs one too.)
  let recheckRetry: NodeJS.Timeout | undefined;
  let recheckRetryMs = RECHECK_RETRY_MS;
  let closed = false;
  function recheckDone(failed: boolean): void {
    if (!failed) {
      recheckRetryMs = RECHECK_RETRY_MS;
      return;
    }
    if (closed || recheckRetry !== undefined) return;
    recheckRetry = setTimeout(() => {
      recheckRetry = undefined;
      // Redis away: its reconnect runs the recheck (no failing retry, and no log line, every 2 s).
      if (bothReady()) void recheckAll();
    }, recheckRetryMs);
    recheckRetry.unref();
    recheckRetryMs = Math.min(recheckRetryMs * 2, RECHECK_RETRY_MAX_MS);
  }
  /** A session that was mid-`auth` or mid-refresh when a ban or revocation passed: closed now. */
  const closeIfHeard = (session: Session): void => {
    const jti = session.identity?.jti;
    if (recentBans.has(session.userKey)) CLOSES.banned(session);
    else if (jti !== undefined && heardRevoked(session.identity!.tenantId, jti)) closeRevoked(session);
  };

  const observer: SessionObserver = {
    added(session) {
      directory.add(session);
      closeIfHeard(session);
    },
    refreshed: closeIfHeard,
    removed(session) {
      directory.remove(session);
    },
  };

  return {
    observer,
    policy,
    idOf,
    healthy: () => connections.every((c) => c.status === 'ready') && liveness.every((l) => l.alive),
    listSessions: (userKey) => directory.list(userKey),
    forgetNodes: (nodeIds) => directory.forgetNodes(nodeIds),
    async disconnect(userKey, sessionId) {
      const command = { kind: 'close', cause: 'admin', userKey, ...(sessionId !== undefined ? { sessionId } : {}) } as const;
      await pendingCloses?.remember(command);
      await channel.publish(command);
    },
    async ban(userKey, until) {
      const stands = await policy.ban(userKey, until);
      await channel.publish({ kind: 'close', cause: 'banned', userKey, until: stands });
      return stands;
    },
    async unban(userKey) {
      const lifted = await policy.unban(userKey);
      await channel.publish({ kind: 'unban', userKey });
      return lifted;
    },
    async revoke(token, until) {
      await policy.revoke(token, until);
      await channel.publish({ kind: 'revoke', jti: token.jti, tenantId: token.tenantId });
    },
    async endSession(requester, sessionId, ended) {
      if (sessionId === idOf(requester)) {
        ended();
        CLOSES.user(requester);
        return 'ended';
      }
      const mine = await directory.list(requester.userKey);
      // Same answer for someone else's session and for no session at all (no oracle).
      if (!mine.some((d) => d.sessionId === sessionId)) return 'forbidden';
      const command = { kind: 'close', cause: 'user', userKey: requester.userKey, sessionId } as const;
      await pendingCloses?.remember(command);
      await channel.publish(command);
      ended();
      return 'ended';
    },
    async close() {
      closed = true;
      clearTimeout(recheckRetry);
      for (const l of liveness) l.stop();
      await Promise.allSettled([channel.close(), directory.close(), policy.close()]);
      await Promise.all(connections.map(quitRedis));
    },
  };
}

function waitReady(client: Redis): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => client.once('ready', () => resolve()));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error('session control: Redis not reachable')), ms);
    }),
  ]);
}
