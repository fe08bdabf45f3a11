/**
 * Cluster-wide `Limiter` on Redis. One Lua script checks every rule for a key and, only if all
 * admit, counts the event in all of them — atomic, one round trip. The script is a port of
 * `sliding-window.ts` (same geometry, same `retryAfter`), so Memory and Redis decide identically.
 *
 * Storage: one hash per (key, rule), field = absolute bucket index, value = count; buckets that
 * left the window are deleted by the script and the hash gets PEXPIRE = time until it is idle, so
 * dead keys vanish on their own. Keys carry a `{key}` hash tag so one key's rules share a slot.
 *
 * Clock: the caller's `now` (default `Date.now()` of this node), not Redis `TIME` — tests can
 * drive time, and a node's view matches its own timers. Nodes must be NTP-synced: a node whose
 * clock runs s ms ahead sees others' buckets s ms older, so limits loosen by at most s ms of
 * window; a node running behind counts extra (buckets "from the future" are kept: conservative).
 * TTLs are padded by `skewAllowanceMs` so a key never expires while a lagging node still needs it.
 */
import type { Redis } from 'ioredis';
import type { Limiter, RateDecision, RateRule } from './limiter.js';
import { DEFAULT_BUCKETS, geometry } from './sliding-window.js';

export interface RedisLimiterOptions {
  /** Shared client (not closed by the limiter). Use `createRedisClient` for fail-fast settings. */
  client: Redis;
  keyPrefix: string;
  /** Sub-buckets per window; must match on every node (it is part of the key). Default 10. */
  buckets?: number;
  /** Extra TTL on counters to cover clock skew between nodes. Default 1000 ms. */
  skewAllowanceMs?: number;
}

const CONSUME_LUA = `
-- KEYS[i]: bucket hash of rule i. ARGV[1]: now (ms), ARGV[2]: TTL padding (ms),
-- then per rule i: ARGV[3i] limit, ARGV[3i+1] windowMs, ARGV[3i+2] bucket width.
local now = tonumber(ARGV[1])
local pad = tonumber(ARGV[2])
local heads = {}
-- A refusal names the rule with the longest wait (every rule is checked): a client retrying after
-- it must pass them all.
local refused, longest = 0, 0
for i = 1, #KEYS do
  local limit = tonumber(ARGV[3 * i])
  local win = tonumber(ARGV[3 * i + 1])
  local w = tonumber(ARGV[3 * i + 2])
  local slots = math.ceil(win / w) + 1
  local raw = redis.call('HGETALL', KEYS[i])
  -- A clock behind the newest bucket keeps the newest as head (conservative).
  local head = math.floor(now / w)
  for j = 1, #raw, 2 do
    local b = tonumber(raw[j])
    if b > head then head = b end
  end
  local from = math.max(math.floor((now - win + 1) / w), head - slots + 1)
  local live = {}
  local dead = {}
  local sum = 0
  for j = 1, #raw, 2 do
    local b = tonumber(raw[j])
    if b < from then
      dead[#dead + 1] = raw[j]
    else
      local c = tonumber(raw[j + 1])
      live[b] = c
      sum = sum + c
    end
  end
  if #dead > 0 then redis.call('HDEL', KEYS[i], unpack(dead)) end
  if sum >= limit then
    local wait = win
    if limit >= 1 then
      for b = from, head do
        sum = sum - (live[b] or 0)
        if sum < limit then
          wait = (b + 1) * w + win - 1 - now
          break
        end
      end
    end
    if refused == 0 or wait > longest then refused, longest = i, wait end
  end
  heads[i] = head
end
if refused > 0 then return {refused, longest} end
-- Every rule admits: count the event in all of them.
for i = 1, #KEYS do
  local win = tonumber(ARGV[3 * i + 1])
  local w = tonumber(ARGV[3 * i + 2])
  redis.call('HINCRBY', KEYS[i], string.format('%.0f', heads[i]), 1)
  redis.call('PEXPIRE', KEYS[i], math.max(1, (heads[i] + 1) * w + win - now + pad))
end
return {0, 0}
`;

const BLOCK_LUA = `
-- KEYS[1]: block key. ARGV[1]: blocked-until (epoch ms), ARGV[2]: duration (ms).
-- A shorter block never shortens a longer one already running.
local cur = tonumber(redis.call('GET', KEYS[1]))
if cur == nil or cur < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
`;

/** The script commands as ioredis exposes them after `defineCommand` (numkeys passed first). */
interface LimiterScripts {
  rampartLimitConsume(numKeys: number, ...args: (string | number)[]): Promise<[number, number]>;
  rampartLimitBlock(key: string, until: number, ms: number): Promise<number>;
}

const ALLOWED: RateDecision = Object.freeze({ allowed: true });

export class RedisLimiter implements Limiter {
  private readonly client: Redis;
  private readonly scripts: LimiterScripts;
  private readonly prefix: string;
  private readonly buckets: number;
  private readonly pad: number;

  constructor(options: RedisLimiterOptions) {
    this.client = options.client;
    this.prefix = options.keyPrefix;
    this.buckets = options.buckets ?? DEFAULT_BUCKETS;
    this.pad = options.skewAllowanceMs ?? 1000;
    // defineCommand sends EVALSHA and falls back to EVAL once on NOSCRIPT: loaded once per server.
    this.client.defineCommand('rampartLimitConsume', { lua: CONSUME_LUA });
    this.client.defineCommand('rampartLimitBlock', { lua: BLOCK_LUA, numberOfKeys: 1 });
    this.scripts = this.client as unknown as LimiterScripts;
  }

  async consume(key: string, rules: readonly RateRule[], now: number = Date.now()): Promise<RateDecision> {
    if (rules.length === 0) return ALLOWED;
    const keys: string[] = [];
    const args: number[] = [Math.floor(now), this.pad];
    for (const rule of rules) {
      const { width } = geometry(rule.windowMs, this.buckets);
      keys.push(`${this.prefix}:rl:{${key}}:${rule.name}:${rule.windowMs}:${width}`);
      args.push(rule.limit, rule.windowMs, width);
    }
    const [index, wait] = await this.scripts.rampartLimitConsume(keys.length, ...keys, ...args);
    if (index === 0) return ALLOWED;
    const rule = rules[index - 1];
    return { allowed: false, rule: rule?.name ?? 'unknown', retryAfter: wait };
  }

  async block(key: string, ms: number, now: number = Date.now()): Promise<void> {
    const duration = Math.ceil(ms);
    if (!(duration > 0)) return;
    await this.scripts.rampartLimitBlock(this.blockKey(key), Math.floor(now) + duration, duration);
  }

  async blockedFor(key: string, now: number = Date.now()): Promise<number> {
    const until = await this.client.get(this.blockKey(key));
    if (until === null) return 0;
    return Math.max(0, Number(until) - Math.floor(now));
  }

  /** The client belongs to the caller; nothing else to release. */
  async close(): Promise<void> {}

  private blockKey(key: string): string {
    return `${this.prefix}:blk:{${key}}`;
  }
}
