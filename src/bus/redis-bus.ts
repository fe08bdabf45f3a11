import { Redis, type ChainableCommander, type RedisOptions } from 'ioredis';
import type { Bus, BusHandler } from './bus.js';
import { quitRedis } from '../redis/quit.js';
import { watchLiveness, type RedisLiveness } from '../redis/liveness.js';
import { PeerWatch } from './peer-watch.js';
import { resubscribeOnReconnect } from '../redis/resubscribe.js';

/** Where a reported error came from; lets the logger pick a level and a metric label. */
export type BusErrorSource = 'connection' | 'publish' | 'subscribe' | 'unsubscribe' | 'deliver';
export type BusErrorHandler = (err: Error, source: BusErrorSource) => void;

export interface RedisBusOptions {
  redisUrl: string;
  /** Namespaces every channel (`${channelPrefix}u:${userId}`), so clusters/tests can share a Redis. */
  channelPrefix: string;
  /** Unique per node; must not contain '\n' (it is the separator in the wire payload). */
  nodeId: string;
  /** Called for failures that cannot be thrown to anyone (the bus never throws from publish). */
  onError?: BusErrorHandler;
  /** How long `RedisBus.connect` waits for both connections before rejecting. Default 5000. */
  connectTimeoutMs?: number;
  /** Liveness PINGs on both connections (config `redisPingIntervalMs`, `redisPingTimeoutMs`). Default 1000 / 3000; interval 0: none. */
  ping?: { intervalMs: number; timeoutMs: number };
  /**
   * A node that has not refreshed its cluster membership for this long is counted as dead and
   * every node resyncs from storage (it may have died between a commit and its publish); see
   * peer-watch.ts. Config `limits.nodeLivenessMs`. Unset or 0: no watch.
   */
  peerLivenessMs?: number;
  /**
   * Peers found dead, by this node: how many deaths were announced, and the ids whose leftovers are
   * this node's to clean (those it removed now, and earlier ones not cleaned up yet). A promise
   * returned is that cleanup: until it resolves to anything but `false` the ids are handed over
   * again at later heartbeats (PeerWatchOptions.onLapsed).
   */
  onPeersLost?: (count: number, nodes: string[]) => unknown;
}

export interface RedisBusStats {
  /** Frames Redis accepted (PUBLISH replied). */
  published: number;
  /** Frames Redis never accepted (connection down, command error); they are lost, not retried. */
  publishFailures: number;
  /** Frames from other nodes handed to the handler. */
  received: number;
  /** Messages ignored: malformed, or for a user unsubscribed while the message was in flight. */
  dropped: number;
}

/** Caps one pipeline so a burst becomes several moderate socket writes, not one huge buffer. */
const MAX_BATCH = 1024;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** First wait before a failed resync announcement is sent again; it doubles up to the max. */
const RESYNC_RETRY_MS = 250;
const RESYNC_RETRY_MAX_MS = 2000;
/** First wait before a SUBSCRIBE Redis refused (the connection up) is sent again; it doubles up to the max. */
const SUBSCRIBE_RETRY_MS = 250;
const SUBSCRIBE_RETRY_MAX_MS = 30_000;
const noop: BusHandler = () => {};

/**
 * Cluster `Bus` over Redis pub/sub: one channel per user, one publisher and one subscriber
 * connection per node.
 *
 * Duplicate avoidance: a frame for a user with sessions on this node is delivered locally and
 * synchronously, and its Redis payload is tagged `${nodeId}\n${frame}`, so this node drops its own
 * echo. When the user had no local session at publish time the payload is `\n${frame}` (no tag):
 * should the user subscribe here before the echo arrives, the echo is its only delivery.
 *
 * Failure behaviour: `publish` never throws and never queues while Redis is down (offline queue
 * off, no resend), failures are counted and reported via `onError`; the Store redelivers what the
 * bus loses. Subscriptions, in contrast, are state: they queue while disconnected, and every
 * channel is subscribed again on reconnect (resubscribe.ts), before the resync reads the gaps.
 */
export class RedisBus implements Bus {
  /** Connects both connections, or rejects (naming `redisUrl`, password redacted) after the timeout. */
  static async connect(options: RedisBusOptions): Promise<RedisBus> {
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const safeUrl = redactUrl(options.redisUrl);
    if (!/^rediss?:\/\//.test(options.redisUrl)) {
      throw new Error(`redisUrl must be a redis:// or rediss:// URL, got ${safeUrl}`);
    }
    const bus = new RedisBus(options, timeoutMs);
    try {
      await bus.waitReady(timeoutMs, safeUrl);
    } catch (err) {
      await bus.close();
      throw err;
    }
    bus.opened = true;
    await bus.join();
    return bus;
  }

  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly onError: BusErrorHandler | undefined;
  private readonly channelPrefix: string;
  /** Payload prefix meaning "already delivered locally on this node". */
  private readonly tag: string;
  /** userId → channel, for users with local sessions. */
  private readonly users = new Map<string, string>();
  /** channel → userId, to route incoming messages without parsing the channel name. */
  private readonly channels = new Map<string, string>();
  private handler: BusHandler = noop;
  private resyncHandler: () => void = () => {};
  /** Cluster-wide channel: "frames were lost, every node resyncs its sessions from storage". */
  private readonly resyncChannel: string;
  /** A publish failed since the last resync announcement. */
  private lostPublishes = false;
  /**
   * The announcement is retried on a timer too: a PUBLISH answered with an error leaves the
   * connection up, so neither a reconnect nor (on a quiet node) another batch would come to send it.
   */
  private resyncRetry: NodeJS.Timeout | undefined;
  private resyncRetryMs = RESYNC_RETRY_MS;
  private readonly liveness: RedisLiveness[];
  private readonly stopResubscribing: () => void;
  private readonly peers: PeerWatch | undefined;
  private batch: ChainableCommander | null = null;
  /** The last batch sent, settled once Redis answered it (and, one connection, every batch before it). */
  private lastExec: Promise<void> = Promise.resolve();
  private batchSize = 0;
  private flushScheduled = false;
  private readonly flushBound = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
  private readonly counters: RedisBusStats = { published: 0, publishFailures: 0, received: 0, dropped: 0 };
  /** Connection errors before `connect` resolves go into its rejection, not to `onError`. */
  private opened = false;
  private closed = false;
  private lastConnectionError: Error | undefined;
  /** Replies on one connection come in order, so the last (un)subscribe settling means all did. */
  private lastSubscriptionOp: Promise<unknown> = Promise.resolve();
  /**
   * Users whose SUBSCRIBE Redis has not confirmed yet, and the release of the sessions waiting on
   * it: Redis' answer, or the subscriber connection dropping (the resync after it covers the rest).
   */
  private readonly confirming = new Map<string, { promise: Promise<void>; release: () => void }>();
  /** A SUBSCRIBE was answered with an error while the connection stayed up: the timer sending it again (retrySubscriptions). */
  private refusedRetry: NodeJS.Timeout | undefined;
  /** The next refused-SUBSCRIBE retry's wait, whether one is on the wire, and whether a SUBSCRIBE was refused meanwhile (see retrySubscriptions). */
  private refusedWaitMs = SUBSCRIBE_RETRY_MS;
  private retrying = false;
  private refusedWhileRetrying = false;

  private constructor(options: RedisBusOptions, connectTimeoutMs: number) {
    if (options.nodeId === '' || options.nodeId.includes('\n')) {
      throw new Error('nodeId must be non-empty and must not contain a newline');
    }
    this.onError = options.onError;
    this.channelPrefix = `${options.channelPrefix}u:`;
    this.tag = `${options.nodeId}\n`;
    this.resyncChannel = `${options.channelPrefix}ctl:resync`;

    const name = `rampart:${options.channelPrefix}${options.nodeId}`.replace(/[^\w.:@-]/g, '_');
    const common: RedisOptions = {
      connectTimeout: Math.min(connectTimeoutMs, 10_000),
      // Reconnect quickly: every second down is a second of frames lost for live sessions.
      retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    };
    this.pub = new Redis(options.redisUrl, {
      ...common,
      connectionName: `${name}:pub`,
      // Fire-and-forget: fail fast while down instead of buffering unbounded frames, and never
      // resend an in-flight PUBLISH (it may already have been delivered).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    });
    this.sub = new Redis(options.redisUrl, {
      ...common,
      connectionName: `${name}:sub`,
      // Subscribe/unsubscribe issued while down must apply after reconnect, in order.
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      // resubscribe.ts does it, with the reply handled.
      autoResubscribe: false,
    });
    this.watch(this.pub, 'publisher');
    this.watch(this.sub, 'subscriber');
    this.liveness = [
      watchLiveness(this.pub, 'publisher', options.ping, (err) => this.report(err, 'connection')),
      watchLiveness(this.sub, 'subscriber', options.ping, (err) => this.report(err, 'connection')),
    ];
    this.sub.on('message', (channel: string, message: string) => this.receive(channel, message));
    // While the subscriber was away, frames for our users went nowhere: once every channel is live
    // again, each session reads its gap from storage, so nothing falls between the two.
    this.stopResubscribing = resubscribeOnReconnect(this.sub, {
      channels: () => [this.resyncChannel, ...this.channels.keys()],
      onRestored: () => {
        // Every channel went through: a retry still waiting is moot, and a later refusal backs
        // off from the start again (a timer armed before the drop would hold it back).
        clearTimeout(this.refusedRetry);
        this.refusedRetry = undefined;
        this.refusedWaitMs = SUBSCRIBE_RETRY_MS;
        this.refusedWhileRetrying = false;
        if (!this.closed) this.resync();
      },
      onError: (err) => this.report(err, 'subscribe'),
    });
    void this.sub.subscribe(this.resyncChannel).catch((err: Error) => {
      this.report(err, 'subscribe');
      this.retrySubscriptions();
    });
    if (options.peerLivenessMs !== undefined && options.peerLivenessMs > 0) {
      const onPeersLost = options.onPeersLost;
      this.peers = new PeerWatch({
        client: this.pub,
        key: `${options.channelPrefix}ctl:nodes`,
        nodeId: options.nodeId,
        resyncChannel: this.resyncChannel,
        livenessMs: options.peerLivenessMs,
        onLapsed: (count, nodes) => onPeersLost?.(count, nodes),
        onError: (err) => this.report(err, 'connection'),
      });
    }
  }

  /** Joins the cluster's membership now rather than at the first heartbeat (see peer-watch.ts). */
  private async join(): Promise<void> {
    await this.peers?.refresh();
  }

  subscribe(userId: string): void {
    if (this.closed || this.users.has(userId)) return;
    const channel = this.channelPrefix + userId;
    this.users.set(userId, channel);
    this.channels.set(channel, userId);
    const confirmed = this.sub.subscribe(channel).then(
      () => undefined,
      (err: Error) => {
        this.report(err, 'subscribe');
        this.retrySubscriptions();
      },
    );
    this.lastSubscriptionOp = confirmed;
    let release!: () => void;
    const entry = { promise: new Promise<void>((resolve) => (release = resolve)), release };
    this.confirming.set(userId, entry);
    void confirmed.then(() => {
      release();
      if (this.confirming.get(userId) === entry) this.confirming.delete(userId);
    });
  }

  /**
   * A SUBSCRIBE answered with an error while the subscriber stays up: no reconnect will send it
   * again, so it is retried here, backing off to 30 s, until Redis confirms. Every channel still
   * wanted is sent again, not just the refused one (SUBSCRIBE is idempotent, and an error reply
   * cannot always be told apart from its neighbours' replies on a pipelined connection). The
   * sessions waiting on it were released (they went live, deaf to other nodes' frames): once Redis
   * confirms, every session reads what it missed from storage (the resync). A connection that
   * drops meanwhile resubscribes everything and resyncs on its own (resubscribe.ts).
   *
   * The wait is the bus's, not the call's: it grows with each refused retry and starts over only
   * once one goes through. Were it the call's, a new session refused just as a retry went out
   * would start it over at 250 ms — under churn, every channel sent again four times a second.
   */
  private retrySubscriptions(): void {
    if (this.closed || this.sub.status !== 'ready') return;
    // A refusal while a retry is on the wire waits for that retry's answer: refused, it backs off
    // further; confirmed, one more retry sends the channels it may not have named.
    if (this.retrying) {
      this.refusedWhileRetrying = true;
      return;
    }
    if (this.refusedRetry !== undefined) return;
    const waitMs = this.refusedWaitMs;
    this.refusedRetry = setTimeout(() => {
      this.refusedRetry = undefined;
      if (this.closed || this.sub.status !== 'ready') return;
      this.retrying = true;
      this.refusedWhileRetrying = false;
      this.sub.subscribe(this.resyncChannel, ...this.channels.keys()).then(
        () => {
          this.retrying = false;
          this.refusedWaitMs = SUBSCRIBE_RETRY_MS;
          if (this.closed) return;
          this.resync();
          if (this.refusedWhileRetrying) this.retrySubscriptions();
        },
        (err: Error) => {
          this.retrying = false;
          this.report(err, 'subscribe');
          // The wait now (a reconnect meanwhile started it over), doubled.
          this.refusedWaitMs = Math.min(this.refusedWaitMs * 2, SUBSCRIBE_RETRY_MAX_MS);
          this.retrySubscriptions();
        },
      );
    }, waitMs);
    this.refusedRetry.unref();
  }

  subscribed(userId: string): Promise<void> | undefined {
    // The subscriber down: the resync once it is back makes every session read what it missed.
    return this.sub.status === 'ready' ? this.confirming.get(userId)?.promise : undefined;
  }

  /** The subscriber dropped: nobody waits for confirmations that now come only after a reconnect. */
  private releaseWaiters(): void {
    for (const { release } of this.confirming.values()) release();
  }

  unsubscribe(userId: string): void {
    const channel = this.users.get(userId);
    if (channel === undefined || this.closed) return;
    this.users.delete(userId);
    this.channels.delete(channel);
    this.confirming.get(userId)?.release();
    this.confirming.delete(userId);
    this.lastSubscriptionOp = this.sub
      .unsubscribe(channel)
      .catch((err: Error) => this.report(err, 'unsubscribe'));
  }

  publish(userId: string, frame: string): void {
    if (this.closed) return;
    const local = this.users.has(userId);
    // Enqueue before local delivery so a throwing handler cannot stop other nodes' delivery.
    (this.batch ??= this.startBatch()).publish(this.channelPrefix + userId, (local ? this.tag : '\n') + frame);
    if (++this.batchSize >= MAX_BATCH) this.flush();
    if (local) this.handler(userId, frame);
  }

  healthy(): boolean {
    return !this.closed && this.pub.status === 'ready' && this.sub.status === 'ready' && this.liveness.every((l) => l.alive);
  }

  onFrame(handler: BusHandler): void {
    this.handler = handler;
  }

  onResync(handler: () => void): void {
    this.resyncHandler = handler;
  }

  /**
   * Resolves once Redis has confirmed every subscribe/unsubscribe issued so far (never rejects;
   * waits out a disconnection). Until then, frames published on other nodes may be missed.
   */
  async subscriptionsSettled(): Promise<void> {
    await this.lastSubscriptionOp;
  }

  stats(): RedisBusStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearTimeout(this.resyncRetry);
    clearTimeout(this.refusedRetry);
    // Leaving the membership says nothing was left unpublished, so it waits for Redis' answer to
    // the last batch; frames lost on the way (now or earlier) are announced first. If even that
    // fails, the node stays a member: its lapse makes another node announce the resync.
    await this.lastExec;
    const lost = this.lostPublishes && !(await this.pub.publish(this.resyncChannel, '1').then(() => true, () => false));
    if (lost) this.peers?.stop();
    else await this.peers?.leave();
    for (const l of this.liveness) l.stop();
    this.stopResubscribing();
    this.releaseWaiters();
    this.users.clear();
    this.channels.clear();
    await Promise.all([quitRedis(this.pub), quitRedis(this.sub)]);
  }

  private startBatch(): ChainableCommander {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // setImmediate, not a microtask: it also gathers publishes from every socket read of this
      // poll phase into one write, at a cost of well under a millisecond.
      setImmediate(this.flushBound);
    }
    return this.pub.pipeline();
  }

  private flush(): void {
    const batch = this.batch;
    const size = this.batchSize;
    if (batch === null) return;
    this.batch = null;
    this.batchSize = 0;
    this.lastExec = batch.exec().then(
      (results) => {
        let firstError: Error | null = null;
        for (const [err] of results ?? []) {
          if (err) {
            this.counters.publishFailures++;
            firstError ??= err;
          } else {
            this.counters.published++;
          }
        }
        // One report per failed batch, not per frame: a down Redis must not flood the log.
        if (firstError) this.publishFailed(firstError);
        else if (this.lostPublishes) this.announceResync();
      },
      (err: Error) => {
        this.counters.publishFailures += size;
        this.publishFailed(err);
      },
    );
  }

  private publishFailed(err: Error): void {
    this.lostPublishes = true;
    this.report(err, 'publish');
    if (this.closed || this.resyncRetry !== undefined) return;
    this.resyncRetry = setTimeout(() => {
      this.resyncRetry = undefined;
      if (this.lostPublishes) this.announceResync();
    }, this.resyncRetryMs);
    this.resyncRetry.unref();
    this.resyncRetryMs = Math.min(this.resyncRetryMs * 2, RESYNC_RETRY_MAX_MS);
  }

  /**
   * Frames this node published were lost: tell every node (this one included) to read its
   * sessions' gaps from storage. Retried on a timer (backing off to 2 s), on the next successful
   * publish batch, and on a reconnect, until it goes through.
   */
  private announceResync(): void {
    if (this.closed || this.pub.status !== 'ready') return;
    this.lostPublishes = false;
    this.pub.publish(this.resyncChannel, '1').then(
      () => {
        if (!this.lostPublishes) this.resyncRetryMs = RESYNC_RETRY_MS;
      },
      (err: Error) => this.publishFailed(err),
    );
  }

  private resync(): void {
    try {
      this.resyncHandler();
    } catch (err) {
      this.report(toError(err), 'deliver');
    }
  }

  private receive(channel: string, message: string): void {
    if (channel === this.resyncChannel) return this.resync();
    if (message.startsWith(this.tag)) return; // our own echo, delivered locally already
    const userId = this.channels.get(channel);
    const sep = message.indexOf('\n');
    if (userId === undefined || sep < 0) {
      this.counters.dropped++;
      return;
    }
    this.counters.received++;
    // A throw here would unwind into ioredis's reply parser; isolate it.
    try {
      this.handler(userId, message.slice(sep + 1));
    } catch (err) {
      this.report(toError(err), 'deliver');
    }
  }

  /**
   * Reports the first sign of each outage only (a lost connection or an error), since ioredis
   * retries, and errors, every couple of seconds until Redis is back.
   */
  private watch(conn: Redis, role: 'publisher' | 'subscriber'): void {
    let down = false;
    const outage = (err: Error): void => {
      if (down) return;
      down = true;
      this.report(err, 'connection');
    };
    conn.on('error', (err: Error) => {
      this.lastConnectionError = err; // the real cause, for the `connect` rejection
      outage(err);
    });
    // A peer close emits no 'error'; it still means frames are being lost.
    conn.on('close', () => {
      outage(new Error(`Redis ${role} connection lost; reconnecting`));
      if (role === 'subscriber') this.releaseWaiters();
    });
    conn.on('ready', () => {
      const wasDown = down;
      down = false;
      if (!wasDown || this.closed) return;
      if (role === 'publisher' && this.lostPublishes) this.announceResync();
    });
  }

  private report(err: Error, source: BusErrorSource): void {
    if (!this.opened || this.closed || !this.onError) return;
    try {
      this.onError(err, source);
    } catch {
      // A failing logger must not break the bus.
    }
  }

  private waitReady(timeoutMs: number, safeUrl: string): Promise<void> {
    const conns = [this.pub, this.sub];
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (conns.every((c) => c.status === 'ready')) done();
      };
      const timer = setTimeout(() => {
        done(
          new Error(
            `cannot connect to Redis (redisUrl ${safeUrl}) within ${timeoutMs} ms` +
              (this.lastConnectionError ? `: ${this.lastConnectionError.message}` : ''),
            { cause: this.lastConnectionError },
          ),
        );
      }, timeoutMs);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        for (const c of conns) c.off('ready', check);
        if (err) reject(err);
        else resolve();
      };
      for (const c of conns) c.on('ready', check);
      check();
    });
  }
}

/**
 * Credentials never appear in errors or logs: the userinfo is masked and the query string dropped
 * (ioredis also reads `?password=` and `?username=` from it).
 */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    const user = url.username || url.password ? '***@' : '';
    return `${url.protocol}//${user}${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return '<unparseable URL>';
  }
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
