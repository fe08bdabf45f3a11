/**
 * Cluster `SessionDirectory` on Redis: a hash per user, `<prefix>admin:sessions:<tenant:user>`,
 * field = cluster-wide session id, value = the descriptor (JSON). Entries live as long as their
 * node: `list` keeps only fields of nodes whose liveness key (`<prefix>:node:<nodeId>`, kept alive
 * by the connection registry, src/limits/redis-registry.ts) still exists, and deletes the others —
 * a SIGKILLed node's sessions disappear from listings once its liveness key expires (and a node
 * that was only stalled writes its entries back when it finds the marker the pruning left).
 *
 * The node is the authority on its own sessions: it rewrites every entry of its own, described from
 * its session registry, after a failed write or a reconnect (Redis restarted empty).
 */
import type { Redis } from 'ioredis';
import { bySince, clusterSessionId, describeSession, type LocalSession, type LocalSessions, type SessionDescriptor, type SessionDirectory } from './session-directory.js';

export interface RedisSessionDirectoryOptions {
  /** Shared client (not closed here). */
  client: Redis;
  /** `redisKeyPrefix` of the config. */
  prefix: string;
  nodeId: string;
  /** This node's sessions (the session registry): what a resync writes again. */
  local: LocalSessions;
  /** Retry period for failed writes. */
  retryMs: number;
  onError(err: unknown, op: string): void;
}

const LIST_LUA = `
-- KEYS[1]: user hash. ARGV[1]: liveness key prefix. ARGV[2]: pruned-marker prefix.
-- Returns live descriptors, drops dead nodes' ones and marks each such node as pruned.
local out = {}
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  local ok, d = pcall(cjson.decode, raw[i + 1])
  local known = ok and type(d) == 'table' and type(d.node) == 'string'
  if known and redis.call('EXISTS', ARGV[1] .. d.node) == 1 then
    out[#out + 1] = raw[i + 1]
  else
    redis.call('HDEL', KEYS[1], raw[i])
    if known then redis.call('SET', ARGV[2] .. d.node, '1', 'EX', 86400) end
  end
end
return out
`;

const FORGET_LUA = `
-- KEYS: user hashes. ARGV[1]: pruned-marker prefix, then the ids of the nodes whose entries to drop
-- (compared with each descriptor's node exactly, as LIST_LUA does: a field's '<nodeId>:' prefix
-- could be another node's id too). Each call marks the nodes pruned, with what it dropped: a node
-- only stalled writes its entries back, even if a later step fails or drops what it rewrote.
local dead = {}
for i = 2, #ARGV do
  dead[ARGV[i]] = true
  redis.call('SET', ARGV[1] .. ARGV[i], '1', 'EX', 86400)
end
local dropped = 0
for _, key in ipairs(KEYS) do
  local raw = redis.call('HGETALL', key)
  for i = 1, #raw, 2 do
    local ok, d = pcall(cjson.decode, raw[i + 1])
    if ok and type(d) == 'table' and type(d.node) == 'string' and dead[d.node] then
      redis.call('HDEL', key, raw[i])
      dropped = dropped + 1
    end
  end
end
return dropped
`;

interface DirectoryScripts {
  rampartAdminListSessions(key: string, livePrefix: string, prunedPrefix: string): Promise<string[]>;
  rampartAdminForgetNodes(numKeys: number, ...args: string[]): Promise<number>;
}

/** User hashes per scan step of `forgetNodes`. */
const FORGET_SCAN = 500;

export class RedisSessionDirectory implements SessionDirectory {
  /** Fields removed locally whose HDEL failed: retried with the resync. */
  private readonly pendingRemovals = new Map<string, string>();
  private dirty = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onReady = (): void => {
    this.dirty = true;
    void this.resync();
  };

  constructor(private readonly o: RedisSessionDirectoryOptions) {
    o.client.defineCommand('rampartAdminListSessions', { lua: LIST_LUA, numberOfKeys: 1 });
    o.client.defineCommand('rampartAdminForgetNodes', { lua: FORGET_LUA });
    o.client.on('ready', this.onReady);
    this.timer = setInterval(() => void this.tick(), o.retryMs);
    this.timer.unref();
  }

  add(session: LocalSession): void {
    const d = describeSession(this.o.nodeId, session);
    this.o.client.hset(this.key(session.userKey), d.sessionId, JSON.stringify(d)).catch(this.failed('add'));
  }

  remove(session: LocalSession): void {
    const sessionId = clusterSessionId(this.o.nodeId, session);
    const userKey = session.userKey;
    this.o.client.hdel(this.key(userKey), sessionId).catch((err: unknown) => {
      this.pendingRemovals.set(sessionId, userKey);
      this.failed('remove')(err);
    });
  }

  async list(userKey: string): Promise<SessionDescriptor[]> {
    const raw = await (this.o.client as unknown as DirectoryScripts).rampartAdminListSessions(this.key(userKey), `${this.o.prefix}:node:`, this.prunedPrefix());
    const list: SessionDescriptor[] = [];
    for (const entry of raw) {
      try {
        list.push(JSON.parse(entry) as SessionDescriptor);
      } catch {
        // written by us; a malformed one is skipped, never echoed
      }
    }
    return list.sort(bySince);
  }

  /**
   * Drops every entry of nodes this node found dead (kill -9: nobody removed them, and `list` drops
   * them only for the users someone lists). One SCAN over the directory per death, in steps; each
   * step marks the nodes pruned, so one that was only stalled writes its entries back.
   */
  async forgetNodes(nodeIds: readonly string[]): Promise<void> {
    if (nodeIds.length === 0) return;
    const scripts = this.o.client as unknown as DirectoryScripts;
    const match = `${this.key('').replace(/[*?[\]\\]/g, '\\$&')}*`;
    for await (const keys of this.o.client.scanStream({ match, count: FORGET_SCAN }) as AsyncIterable<string[]>) {
      if (keys.length > 0) await scripts.rampartAdminForgetNodes(keys.length, ...keys, this.prunedPrefix(), ...nodeIds);
    }
  }

  /** Removes this node's entries (graceful shutdown; sessions are closed by then). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.o.client.off('ready', this.onReady);
    if (this.o.client.status !== 'ready') return;
    const p = this.o.client.pipeline();
    for (const s of this.o.local.all()) p.hdel(this.key(s.userKey), clusterSessionId(this.o.nodeId, s));
    for (const [sessionId, userKey] of this.pendingRemovals) p.hdel(this.key(userKey), sessionId);
    await p.exec().catch((err: unknown) => this.o.onError(err, 'close'));
  }

  private failed(op: string): (err: unknown) => void {
    return (err) => {
      this.dirty = true;
      this.o.onError(err, op);
    };
  }

  /**
   * A node whose liveness key lapsed (a long stall) had its entries dropped by another node's
   * `list`, which leaves a marker; the node, alive again, finds it here and writes them back.
   */
  private async tick(): Promise<void> {
    if (this.o.client.status !== 'ready') return;
    try {
      if ((await this.o.client.del(`${this.prunedPrefix()}${this.o.nodeId}`)) === 1) this.dirty = true;
    } catch (err) {
      this.o.onError(err, 'pruned check');
    }
    await this.resync();
  }

  private prunedPrefix(): string {
    return `${this.o.prefix}admin:sessions-pruned:`;
  }

  private async resync(): Promise<void> {
    if (!this.dirty || this.o.client.status !== 'ready') return;
    this.dirty = false;
    const p = this.o.client.pipeline();
    for (const s of this.o.local.all()) {
      const d = describeSession(this.o.nodeId, s);
      p.hset(this.key(s.userKey), d.sessionId, JSON.stringify(d));
    }
    const removals = [...this.pendingRemovals];
    this.pendingRemovals.clear();
    for (const [sessionId, userKey] of removals) p.hdel(this.key(userKey), sessionId);
    try {
      const results = await p.exec();
      const err = results?.find(([e]) => e !== null)?.[0];
      if (err) throw err;
    } catch (err) {
      for (const [sessionId, userKey] of removals) this.pendingRemovals.set(sessionId, userKey);
      this.failed('resync')(err);
    }
  }

  private key(userKey: string): string {
    return `${this.o.prefix}admin:sessions:${userKey}`;
  }
}
