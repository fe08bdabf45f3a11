/**
 * Notices nodes that vanished without a clean shutdown. Such a node may have committed frames it
 * never published (killed between its COMMIT and its PUBLISH): online sessions on the other nodes
 * would see them only when a later frame revealed the gap, or on reconnect. So when a node's
 * membership lapses, the node that notices announces a resync and every node reads its sessions'
 * gaps from storage, as after a Redis outage.
 *
 * Membership is one sorted set, `<channelPrefix>ctl:nodes`: member = nodeId, score = when its
 * membership lapses, on Redis' clock (`TIME`, so nodes' clocks need not agree). Each node refreshes
 * its own every `livenessMs / 3`; the refresh removes every lapsed member and, if it removed any,
 * publishes the resync in the same script — so exactly one node announces each death; a node that
 * joins and finds a member of its own id (a restart under a fixed nodeId, before the lapse was
 * noticed) announces it. A clean shutdown removes its own member once everything it committed was
 * published, and announces nothing.
 *
 * The ids a refresh removed are also kept in the remover's pending set
 * (`<channelPrefix>ctl:nodes:lapsed:<nodeId>`) until its cleanup of them succeeded (`onLapsed`'s
 * promise): every refresh returns that set, so a reply lost on the way (the connection dropped
 * after the script ran) or a failed cleanup only delays it. A node found dead hands its own
 * pending set to the node that removed it. An id that comes in again while its cleanup is running
 * (the node died again under the same id, or it came with a dead node's pending set) stays pending
 * when that cleanup ends, and is handed over once more: the running cleanup may have begun before
 * the new death's entries were written (cleaning an id twice is harmless).
 *
 * No pending set is left to nobody. A node that shuts down cleanly is never found dead: its leave
 * moves its pending ids into `<channelPrefix>ctl:nodes:lapsed-orphans`, which the next heartbeat of
 * any node takes over. A node of the previous build that removes a dead node hands over only the
 * id, not the dead node's pending set: every node with a pending set is listed in
 * `<channelPrefix>ctl:nodes:lapsed-owners` (kept by the scripts), and a heartbeat takes over the
 * pending set of each one listed there that is no longer a member. (Neither key can be a pending
 * set: those are under `:lapsed:`.)
 */
import type { Redis } from 'ioredis';

const HEARTBEAT_LUA = `
-- KEYS[1]: members, KEYS[2]: pending ids of nodes that left cleanly, KEYS[3]: nodes that may have a
-- pending set. ARGV[1]: own nodeId, ARGV[2]: lapse after (ms), ARGV[3]: resync channel,
-- ARGV[4]: '1' on joining, ARGV[5]: prefix of the pending sets (ids found dead, not cleaned up yet).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Returns {restarted, deaths found now, n, the n ids that came in now (found dead now, or taken
-- over from another node's pending set: perhaps ids still being cleaned up here after an earlier
-- death), pending node ids (those n included)...}.
local restarted = 0
local found = 0
local pending = ARGV[5] .. ARGV[1]
local came = {}
-- Another node's pending ids become ours (they came in now).
local function takeSet(set)
  if redis.call('EXISTS', set) == 1 then
    for _, id in ipairs(redis.call('SMEMBERS', set)) do came[#came + 1] = id end
    redis.call('SUNIONSTORE', pending, pending, set)
    redis.call('DEL', set)
  end
end
-- Joining while a member of our id is still there: a previous life of this node (same nodeId)
-- ended without leaving, and before its lapse was noticed.
if ARGV[4] == '1' and redis.call('ZSCORE', KEYS[1], ARGV[1]) then restarted = 1 end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  -- Our own lapsed member: we were only stalled, and publish what we commit once running again.
  if node ~= ARGV[1] then
    redis.call('ZREM', KEYS[1], node)
    redis.call('SADD', pending, node)
    came[#came + 1] = node
    -- What the dead node had found dead and not cleaned up yet is ours to clean now.
    takeSet(ARGV[5] .. node)
    redis.call('SREM', KEYS[3], node)
    found = found + 1
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if restarted == 1 then
  redis.call('SADD', pending, ARGV[1])
  came[#came + 1] = ARGV[1]
  found = found + 1
end
if found > 0 then redis.call('PUBLISH', ARGV[3], '1') end
-- Pending ids of nodes that shut down cleanly (nobody finds them dead): ours to clean now.
takeSet(KEYS[2])
-- Pending sets of nodes that are no longer members, yet were not taken over: a node of the
-- previous build removed them (its heartbeat hands over only the id). Ours to clean now.
for _, node in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if node ~= ARGV[1] and not redis.call('ZSCORE', KEYS[1], node) then
    takeSet(ARGV[5] .. node)
    redis.call('SREM', KEYS[3], node)
  end
end
if redis.call('EXISTS', pending) == 1 then
  redis.call('SADD', KEYS[3], ARGV[1])
else
  redis.call('SREM', KEYS[3], ARGV[1])
end
local out = {restarted, found, #came}
for _, id in ipairs(came) do out[#out + 1] = id end
for _, id in ipairs(redis.call('SMEMBERS', pending)) do out[#out + 1] = id end
return out
`;

const LEAVE_LUA = `
-- KEYS[1]: members, KEYS[2]: pending ids of nodes that left cleanly, KEYS[3]: nodes that may have a
-- pending set. ARGV[1]: own nodeId, ARGV[2]: prefix of the pending sets.
-- A clean leave: nobody will find this node dead, so its pending ids go where any heartbeat takes them.
redis.call('ZREM', KEYS[1], ARGV[1])
local pending = ARGV[2] .. ARGV[1]
if redis.call('EXISTS', pending) == 1 then
  redis.call('SUNIONSTORE', KEYS[2], KEYS[2], pending)
  redis.call('DEL', pending)
end
redis.call('SREM', KEYS[3], ARGV[1])
return 1
`;

export interface PeerWatchOptions {
  /** The publisher connection (offline queue off: a refresh while Redis is down just fails). */
  client: Redis;
  /** Sorted set of the cluster's nodes. */
  key: string;
  nodeId: string;
  /** Channel every node resyncs on. */
  resyncChannel: string;
  /** A node that has not refreshed for this long is counted as dead. */
  livenessMs: number;
  /**
   * Nodes found dead by this node (it removed them: no other node hears of these ids; our own id
   * when a previous life of this node ended without leaving): how many deaths were found now, and
   * the ids to clean up — those found now, and those found earlier whose cleanup has not succeeded
   * (`count` may then be 0). A promise returned is the cleanup: the ids are kept in Redis and
   * handed over again until it resolves to anything but `false`. Otherwise (no promise) they count
   * as cleaned up once handed over.
   */
  onLapsed(count: number, nodes: string[]): unknown;
  onError(err: Error): void;
}

interface PeerWatchScripts {
  rampartPeerHeartbeat(key: string, orphans: string, owners: string, nodeId: string, livenessMs: number, channel: string, joining: '0' | '1', pendingPrefix: string): Promise<[number, number, number, ...string[]]>;
  rampartPeerLeave(key: string, orphans: string, owners: string, nodeId: string, pendingPrefix: string): Promise<number>;
}

export class PeerWatch {
  readonly #timer: NodeJS.Timeout;
  #busy = false;
  #stopped = false;
  #joined = false;
  /** Ids handed to `onLapsed` whose cleanup is still running (not handed over again meanwhile). */
  readonly #cleaning = new Set<string>();
  /**
   * Ids of `#cleaning` that came in again meanwhile (the node died again, under the same id, or
   * another node's pending set held it): the running cleanup may have begun before the new
   * death's entries were written, so they stay pending when it ends, and are handed over again.
   */
  readonly #again = new Set<string>();
  /**
   * Cleaned ids whose removal from the pending set waits for the heartbeat on the wire: sent after
   * it, the SREM would undo what it found (the id dead again), while its reply hands the id over
   * again — pending nowhere while that cleanup runs. See refresh's `finally`.
   */
  readonly #toSettle = new Set<string>();

  constructor(private readonly o: PeerWatchOptions) {
    o.client.defineCommand('rampartPeerHeartbeat', { lua: HEARTBEAT_LUA, numberOfKeys: 3 });
    o.client.defineCommand('rampartPeerLeave', { lua: LEAVE_LUA, numberOfKeys: 3 });
    this.#timer = setInterval(() => void this.refresh(), Math.max(50, Math.floor(o.livenessMs / 3)));
    this.#timer.unref();
  }

  /** Refreshes this node's membership and sweeps lapsed peers (also run by the timer). */
  async refresh(): Promise<void> {
    if (this.#busy || this.#stopped || this.o.client.status !== 'ready') return;
    this.#busy = true;
    let answered = false;
    try {
      const scripts = this.o.client as unknown as PeerWatchScripts;
      // Joining is said once per life, even if its reply is lost: a second "join" would find the
      // member the first one wrote and take this running node for a previous life of itself.
      const joining = this.#joined ? '0' : '1';
      this.#joined = true;
      const [, found, came, ...ids] = await scripts.rampartPeerHeartbeat(this.o.key, this.#orphans, this.#owners, this.o.nodeId, this.o.livenessMs, this.o.resyncChannel, joining, this.#pendingPrefix);
      answered = true;
      const cameNow = new Set(ids.slice(0, came));
      for (const n of cameNow) if (this.#cleaning.has(n)) this.#again.add(n);
      // Not: ids being cleaned, nor ids cleaned meanwhile that did not come in again (removed below).
      const nodes = ids.slice(came).filter((n) => !this.#cleaning.has(n) && !(this.#toSettle.has(n) && !cameNow.has(n)));
      if (nodes.length > 0) this.#handOver(found, nodes);
    } catch (err) {
      // The script may have run, its reply lost: what came in unseen may include ids being cleaned.
      for (const n of this.#cleaning) this.#again.add(n);
      this.o.onError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      // Cleanups that ended while the heartbeat was on the wire: an id it found dead again was
      // handed over again (being cleaned now, its own cleanup settles it); the others leave the
      // pending set now, behind the heartbeat. A lost reply keeps them all: cleaned once more.
      if (this.#toSettle.size > 0) {
        const cleaned = answered ? [...this.#toSettle].filter((n) => !this.#cleaning.has(n)) : [];
        this.#toSettle.clear();
        this.#removePending(cleaned);
      }
      this.#busy = false;
    }
  }

  #removePending(ids: readonly string[]): void {
    if (ids.length === 0) return;
    this.o.client.srem(this.#pendingPrefix + this.o.nodeId, ...ids).catch((err: unknown) => this.o.onError(err instanceof Error ? err : new Error(String(err))));
  }

  get #pendingPrefix(): string {
    return `${this.o.key}:lapsed:`;
  }

  /** Pending ids of nodes that left cleanly, for the next heartbeat of any node. */
  get #orphans(): string {
    return `${this.o.key}:lapsed-orphans`;
  }

  /** Nodes that may have a pending set (a non-member's is taken over by the next heartbeat). */
  get #owners(): string {
    return `${this.o.key}:lapsed-owners`;
  }

  /**
   * Hands lapsed ids over for cleanup; they leave the pending set once it succeeded — except those
   * that came in again while it ran (`#again`): the next heartbeat hands them over again.
   */
  #handOver(found: number, nodes: string[]): void {
    const settle = (): void => {
      const cleaned = nodes.filter((n) => !this.#again.has(n));
      if (!this.#busy) return this.#removePending(cleaned);
      for (const n of cleaned) this.#toSettle.add(n);
    };
    let cleanup: unknown;
    try {
      cleanup = this.o.onLapsed(found, nodes);
    } catch (err) {
      // Not cleaned: they stay pending, also those an earlier cleanup set aside to settle.
      for (const n of nodes) this.#toSettle.delete(n);
      this.o.onError(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (!(cleanup instanceof Promise)) {
      settle();
      return;
    }
    for (const n of nodes) this.#cleaning.add(n);
    const done = (ok: boolean): void => {
      for (const n of nodes) this.#cleaning.delete(n);
      if (ok) settle();
      for (const n of nodes) this.#again.delete(n);
    };
    cleanup.then(
      (result) => done(result !== false),
      () => done(false),
    );
  }

  /**
   * Clean shutdown: leave the membership, so that nobody resyncs for us. Ids whose cleanup has not
   * succeeded (a cleanup still running is cut short by the shutdown) pass to the next heartbeat of
   * any node.
   */
  async leave(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    if (this.o.client.status !== 'ready') return;
    const scripts = this.o.client as unknown as PeerWatchScripts;
    await scripts.rampartPeerLeave(this.o.key, this.#orphans, this.#owners, this.o.nodeId, this.#pendingPrefix).catch((err: unknown) => this.o.onError(err instanceof Error ? err : new Error(String(err))));
  }

  /** Stops refreshing without leaving: what a killed node does (tests). */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }
}
