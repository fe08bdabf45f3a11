/**
 * Cluster-wide `ConnectionRegistry` on Redis, safe against nodes that die without releasing.
 *
 * Layout: `<prefix>:ip:<ip>` and `<prefix>:user:<userId>` are hashes, field = nodeId, value = slots
 * that node holds. Each node keeps `<prefix>:node:<nodeId>` alive with PX `livenessMs`, refreshed
 * every `heartbeatMs`. The acquire script sums only fields of live nodes (and deletes the others)
 * before comparing with `max`, so a SIGKILLed node's slots free themselves once its liveness key
 * expires. On start a node deletes its own leftover fields (a restart reuses the nodeId) and those
 * of dead nodes (garbage collection for keys nobody touches any more).
 *
 * Each node also keeps a local mirror of its own counts. When a heartbeat finds its liveness key
 * had vanished (a stall longer than `livenessMs`, or Redis restarted empty), or a release failed,
 * it rewrites its fields from the mirror — the node is the authority on its own sockets.
 *
 * The scripts read liveness keys not passed in KEYS: standalone/Sentinel Redis only, not Redis
 * Cluster.
 */
import type { Redis } from 'ioredis';
import type { ConnectionRegistry } from './limiter.js';
import { BackendUnavailableError, type BackendErrorHandler } from './redis-health.js';

export interface RedisRegistryOptions {
  /** Shared client (not closed by the registry). */
  client: Redis;
  keyPrefix: string;
  /** Unique per running process (a restart may reuse it: its old fields are then discarded). */
  nodeId: string;
  /** Liveness key TTL: how long a dead node's slots stay held. Default 15 000 ms. */
  livenessMs?: number;
  /** Liveness refresh period; keep it well under `livenessMs`. Default 5 000 ms. */
  heartbeatMs?: number;
  onError?: BackendErrorHandler;
}

const ACQUIRE_LUA = `
-- KEYS[1]: counter hash. ARGV[1]: max, ARGV[2]: own nodeId, ARGV[3]: liveness key prefix.
-- Returns 1 (acquired), 0 (at the limit), -1 (our own liveness key is gone: Redis lost its keys, or
-- we stalled past it; our counts must be written back before anything can be compared).
if redis.call('EXISTS', ARGV[3] .. ARGV[2]) == 0 then return -1 end
local sum = 0
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  local node = raw[i]
  if node == ARGV[2] or redis.call('EXISTS', ARGV[3] .. node) == 1 then
    sum = sum + tonumber(raw[i + 1])
  else
    redis.call('HDEL', KEYS[1], node) -- a dead node's slots free themselves
  end
end
if sum >= tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return 1
`;

const RELEASE_LUA = `
-- KEYS[1]: counter hash. ARGV[1]: own nodeId. Never below zero; an empty hash disappears.
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
`;

const COUNT_LUA = `
-- KEYS[1]: counter hash. ARGV[1]: own nodeId, ARGV[2]: liveness key prefix. Read-only.
local sum = 0
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  if raw[i] == ARGV[1] or redis.call('EXISTS', ARGV[2] .. raw[i]) == 1 then
    sum = sum + tonumber(raw[i + 1])
  end
end
return sum
`;

const CLEAN_LUA = `
-- KEYS[1]: counter hash. ARGV[1]: own nodeId, ARGV[2]: liveness key prefix.
-- Drops this node's leftover field and every dead node's field.
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  if raw[i] == ARGV[1] or redis.call('EXISTS', ARGV[2] .. raw[i]) == 0 then
    redis.call('HDEL', KEYS[1], raw[i])
  end
end
return 1
`;

const HEARTBEAT_LUA = `
-- KEYS[1]: own liveness key. ARGV[1]: value, ARGV[2]: PX. Returns 1 if it was still alive.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return existed
`;

interface RegistryScripts {
  rampartRegAcquire(key: string, max: number, nodeId: string, livePrefix: string): Promise<number>;
  rampartRegRelease(key: string, nodeId: string): Promise<number>;
  rampartRegCount(key: string, nodeId: string, livePrefix: string): Promise<number>;
  rampartRegHeartbeat(key: string, value: string, px: number): Promise<number>;
}

/** Escape glob metacharacters so a prefix is matched literally by SCAN MATCH. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

export class RedisConnectionRegistry implements ConnectionRegistry {
  private readonly client: Redis;
  private readonly scripts: RegistryScripts;
  private readonly prefix: string;
  private readonly nodeId: string;
  private readonly liveKey: string;
  private readonly livePrefix: string;
  private readonly livenessMs: number;
  private readonly onError: BackendErrorHandler | undefined;
  /** Slots this node holds, per counter key (entries deleted at 0). Updated at call time. */
  private readonly mirror = new Map<string, number>();
  /** Counter keys whose Redis value may disagree with the mirror (a command failed). */
  private readonly dirty = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private readonly onReady = (): void => void this.tick();
  private started = false;
  private closed = false;
  private busy = false;
  /** A write-back of our liveness and counts in progress (acquire found them lost). */
  private restoring: Promise<void> | undefined;
  /** Write-backs of the mirror issued so far (each may carry acquires still in flight). */
  private writebacks = 0;
  private startWaiters: Array<(ok: boolean) => void> = [];

  constructor(options: RedisRegistryOptions) {
    this.client = options.client;
    this.prefix = options.keyPrefix;
    this.nodeId = options.nodeId;
    this.livePrefix = `${this.prefix}:node:`;
    this.liveKey = this.livePrefix + this.nodeId;
    this.livenessMs = options.livenessMs ?? 15_000;
    this.onError = options.onError;
    const c = this.client;
    c.defineCommand('rampartRegAcquire', { lua: ACQUIRE_LUA, numberOfKeys: 1 });
    c.defineCommand('rampartRegRelease', { lua: RELEASE_LUA, numberOfKeys: 1 });
    c.defineCommand('rampartRegCount', { lua: COUNT_LUA, numberOfKeys: 1, readOnly: true });
    c.defineCommand('rampartRegHeartbeat', { lua: HEARTBEAT_LUA, numberOfKeys: 1 });
    this.scripts = c as unknown as RegistryScripts;
    this.timer = setInterval(() => void this.tick(), options.heartbeatMs ?? 5_000);
    this.timer.unref();
    // Start (or re-check liveness) as soon as the connection is (re)established.
    c.on('ready', this.onReady);
    if (c.status === 'ready') void this.tick();
  }

  /** Resolves true once started (own stale fields cleaned, liveness set), false after `timeoutMs`. */
  ready(timeoutMs = 5_000): Promise<boolean> {
    if (this.started) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.startWaiters = this.startWaiters.filter((w) => w !== done);
        resolve(ok);
      };
      this.startWaiters.push(done);
    });
  }

  acquireIp(ip: string, max: number): Promise<boolean> {
    return this.acquire(this.ipKey(ip), max);
  }

  releaseIp(ip: string): Promise<void> {
    return this.release(this.ipKey(ip));
  }

  acquireUser(userId: string, max: number): Promise<boolean> {
    return this.acquire(this.userKey(userId), max);
  }

  releaseUser(userId: string): Promise<void> {
    return this.release(this.userKey(userId));
  }

  countIp(ip: string): Promise<number> {
    return this.scripts.rampartRegCount(this.ipKey(ip), this.nodeId, this.livePrefix);
  }

  countUser(userId: string): Promise<number> {
    return this.scripts.rampartRegCount(this.userKey(userId), this.nodeId, this.livePrefix);
  }

  /**
   * Stops the heartbeat and, if Redis is reachable, gives back this node's slots and liveness at
   * once (sessions should have released already; this covers any that did not).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.client.off('ready', this.onReady);
    for (const w of [...this.startWaiters]) w(false);
    if (this.client.status !== 'ready' || !this.started) return;
    try {
      const p = this.client.pipeline();
      for (const key of this.mirror.keys()) p.hdel(key, this.nodeId);
      p.del(this.liveKey);
      await p.exec();
    } catch (err) {
      this.onError?.(err, 'close');
    }
    this.mirror.clear();
  }

  /**
   * Script calls are issued synchronously (no await before them), so Redis sees acquires and
   * releases in call order; the mirror is updated optimistically in that same order.
   */
  private async acquire(key: string, max: number): Promise<boolean> {
    if (!this.started || this.closed) throw new BackendUnavailableError('connection registry not started');
    // Our optimistic +1 is in the mirror from here until Redis answers (`counted`); a write-back of
    // the mirror issued meanwhile (`writebacks` moved) put it into Redis whatever the answer.
    let counted = true;
    this.bump(key, 1);
    let writebacks = this.writebacks;
    const uncount = (): void => {
      if (!counted) return;
      counted = false;
      this.bump(key, -1);
      // Refused, but a write-back carried our +1 into Redis: write this key again now.
      if (this.writebacks !== writebacks) this.rewrite(key);
    };
    try {
      let result = await this.scripts.rampartRegAcquire(key, max, this.nodeId, this.livePrefix);
      if (result === -1) {
        // Counts lost (a FLUSHDB, eviction, a restart the connection did not notice): write ours
        // back now rather than at the next heartbeat, then decide — else the limit admits anyone.
        uncount();
        await this.restore();
        counted = true;
        this.bump(key, 1);
        writebacks = this.writebacks;
        result = await this.scripts.rampartRegAcquire(key, max, this.nodeId, this.livePrefix);
        if (result === -1) throw new BackendUnavailableError('connection registry: liveness key lost again');
      }
      const ok = result === 1;
      if (!ok) uncount();
      return ok;
    } catch (err) {
      // The script may or may not have run: reconcile this key on the next heartbeat.
      uncount();
      this.dirty.add(key);
      throw err;
    }
  }

  /** Writes one key of ours again from the mirror, now (best effort: else it stays dirty for the heartbeat). */
  private rewrite(key: string): void {
    this.dirty.add(key);
    this.resync(false).catch((err: unknown) => this.onError?.(err, 'resync'));
  }

  /** Never throws: a failed release is reconciled from the mirror on the next heartbeat. */
  private async release(key: string): Promise<void> {
    // Unmatched (double) release: nothing of ours to give back.
    if (!this.mirror.has(key)) return;
    this.bump(key, -1);
    try {
      await this.scripts.rampartRegRelease(key, this.nodeId);
    } catch (err) {
      this.dirty.add(key);
      this.onError?.(err, 'release');
    }
  }

  private bump(key: string, delta: number): void {
    const n = (this.mirror.get(key) ?? 0) + delta;
    if (n > 0) this.mirror.set(key, n);
    else this.mirror.delete(key);
  }

  /** Liveness key and every count of ours written again (one at a time, however many acquires ask). */
  private restore(): Promise<void> {
    this.restoring ??= (async () => {
      try {
        await this.scripts.rampartRegHeartbeat(this.liveKey, this.nodeId, this.livenessMs);
        await this.resync(true);
      } finally {
        this.restoring = undefined;
      }
    })();
    return this.restoring;
  }

  /** Heartbeat: start if not started yet, else refresh liveness and reconcile if needed. */
  private async tick(): Promise<void> {
    if (this.busy || this.closed || this.client.status !== 'ready') return;
    this.busy = true;
    try {
      if (!this.started) await this.start();
      else {
        const alive = await this.scripts.rampartRegHeartbeat(this.liveKey, this.nodeId, this.livenessMs);
        if (alive === 0 || this.dirty.size > 0) await this.resync(alive === 0);
      }
    } catch (err) {
      this.onError?.(err, 'heartbeat');
    } finally {
      this.busy = false;
    }
  }

  private async start(): Promise<void> {
    const sha = await this.cleanSha();
    for (const kind of ['ip', 'user']) {
      const stream = this.client.scanStream({ match: `${globEscape(this.prefix)}:${kind}:*`, count: 500 });
      for await (const batch of stream as AsyncIterable<string[]>) {
        if (batch.length === 0) continue;
        const p = this.client.pipeline();
        for (const key of batch) p.evalsha(sha, 1, key, this.nodeId, this.livePrefix);
        await p.exec();
      }
    }
    await this.scripts.rampartRegHeartbeat(this.liveKey, this.nodeId, this.livenessMs);
    if (this.closed) return;
    this.started = true;
    for (const w of [...this.startWaiters]) w(true);
  }

  /** Rewrite this node's fields from the mirror: all of them after a lapse, else the dirty ones. */
  private async resync(all: boolean): Promise<void> {
    this.writebacks++;
    const keys = all ? new Set([...this.mirror.keys(), ...this.dirty]) : new Set(this.dirty);
    this.dirty.clear();
    const p = this.client.pipeline();
    for (const key of keys) {
      const n = this.mirror.get(key);
      if (n === undefined) p.hdel(key, this.nodeId);
      else p.hset(key, this.nodeId, n);
    }
    let failed: unknown = null;
    try {
      const results = await p.exec();
      failed = results?.find(([err]) => err !== null)?.[0] ?? null;
    } catch (err) {
      failed = err;
    }
    if (failed !== null) {
      // Try every one of them again next heartbeat (a lapse is not re-detected once we're alive).
      for (const key of keys) this.dirty.add(key);
      throw failed;
    }
  }

  /** SHA of the clean script, loaded just before use (the start-up sweep pipelines EVALSHA). */
  private async cleanSha(): Promise<string> {
    return String(await this.client.script('LOAD', CLEAN_LUA));
  }

  private ipKey(ip: string): string {
    return `${this.prefix}:ip:${ip}`;
  }

  private userKey(userId: string): string {
    return `${this.prefix}:user:${userId}`;
  }
}
