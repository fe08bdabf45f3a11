/**
 * One contract suite, run against the memory adapters and the Redis adapters (real Redis at
 * RAMPART_TEST_REDIS_URL): if Redis is unreachable these tests fail, they never skip. Every key
 * lives under a per-run prefix and is deleted in `after`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { ConnectionRegistry, Limiter, RateDecision, RateRule } from '../../src/limits/limiter.js';
import { MemoryLimiter } from '../../src/limits/memory-limiter.js';
import { MemoryConnectionRegistry } from '../../src/limits/memory-registry.js';
import { RedisLimiter } from '../../src/limits/redis-limiter.js';
import { RedisConnectionRegistry } from '../../src/limits/redis-registry.js';
import { BackendUnavailableError, FAIL_FAST_REDIS_OPTIONS } from '../../src/limits/redis-health.js';
import { createLimits, type Limits } from '../../src/limits/index.js';
import { startRedisProxy, within } from '../helpers/harness.js';

const REDIS_URL = process.env.RAMPART_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `rampart-test:${randomUUID()}`;
/** A fake clock far from zero and aligned to every bucket width used here. */
const T = 1_700_000_000_000;

const BURST: RateRule = { name: 'burst', limit: 10, windowMs: 1000 };
const MINUTE: RateRule = { name: 'minute', limit: 60, windowMs: 60_000 };

const clients: Redis[] = [];
const closers: Array<() => Promise<void>> = [];

/** A connected client; rejects (and so fails the test) when Redis cannot be reached. */
async function connect(url = REDIS_URL): Promise<Redis> {
  const client = new Redis(url, { ...FAIL_FAST_REDIS_OPTIONS, lazyConnect: true, retryStrategy: () => null });
  client.on('error', () => {});
  clients.push(client);
  await client.connect();
  return client;
}

async function keysUnder(admin: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const batch of admin.scanStream({ match: `${prefix}*`, count: 1000 }) as AsyncIterable<string[]>) {
    found.push(...batch);
  }
  return found;
}

function until(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    while (!(await cond())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
}

let admin: Redis;
before(async () => {
  admin = await connect();
});

after(async () => {
  for (const close of closers.reverse()) await close();
  if (admin?.status === 'ready') {
    const keys = await keysUnder(admin, PREFIX);
    if (keys.length > 0) await admin.del(...keys);
  }
  for (const c of clients) if (c.status !== 'end') c.disconnect();
});

/** A fresh, unique prefix per harness so suites cannot see each other's keys. */
function subPrefix(): string {
  return `${PREFIX}:${randomUUID().slice(0, 8)}`;
}

// ---------------------------------------------------------------------------------------------
// Limiter contract
// ---------------------------------------------------------------------------------------------

function limiterContract(name: string, make: () => Promise<Limiter>): void {
  describe(`Limiter contract — ${name}`, () => {
    let limiter: Limiter;
    const key = (): string => `k-${randomUUID()}`;
    const at = async (k: string, rules: readonly RateRule[], now: number): Promise<RateDecision> =>
      limiter.consume(k, rules, now);
    const admittedOf = async (k: string, rules: readonly RateRule[], now: number, n: number): Promise<number> => {
      let ok = 0;
      for (let i = 0; i < n; i++) if ((await at(k, rules, now)).allowed) ok++;
      return ok;
    };

    before(async () => {
      limiter = await make();
    });
    after(async () => {
      await limiter.close();
    });

    test('burst of 10 per 1000 ms, then refused with a retryAfter that holds', async () => {
      const k = key();
      assert.equal(await admittedOf(k, [BURST, MINUTE], T, 10), 10);
      const refused = await at(k, [BURST, MINUTE], T);
      assert.ok(!refused.allowed);
      assert.equal(refused.rule, 'burst');
      assert.ok(refused.retryAfter >= 1000 && refused.retryAfter <= 1100, `retryAfter ${refused.retryAfter}`);
      assert.equal((await at(k, [BURST, MINUTE], T + refused.retryAfter - 1)).allowed, false);
      assert.equal((await at(k, [BURST, MINUTE], T + refused.retryAfter)).allowed, true);
    });

    test('no 2× burst at a window edge: 9 at t=999, 10 at t=1001 → most refused', async () => {
      const k = key();
      assert.equal(await admittedOf(k, [BURST], T + 999, 9), 9);
      assert.ok((await admittedOf(k, [BURST], T + 1001, 10)) <= 1);
    });

    test('rules are atomic: a refused event is counted in no rule', async () => {
      const k = key();
      const rules = [
        { name: 'burst', limit: 3, windowMs: 1000 },
        { name: 'minute', limit: 5, windowMs: 60_000 },
      ];
      assert.equal(await admittedOf(k, rules, T, 3), 3);
      for (let i = 0; i < 10; i++) {
        const r = await at(k, rules, T);
        assert.ok(!r.allowed && r.rule === 'burst');
      }
      // Had the 10 refusals counted in "minute" it would already be full.
      assert.equal(await admittedOf(k, rules, T + 1100, 2), 2);
      const r = await at(k, rules, T + 1100);
      assert.ok(!r.allowed);
      assert.equal(r.rule, 'minute');
    });

    test('with several rules spent, the refusal names the longest wait: a retry after retryAfter passes', async () => {
      const k = key();
      const rules = [
        { name: 'burst', limit: 3, windowMs: 1000 },
        { name: 'minute', limit: 3, windowMs: 60_000 },
        { name: 'hour', limit: 1000, windowMs: 3_600_000 },
      ];
      assert.equal(await admittedOf(k, rules, T, 3), 3);
      const r = await at(k, rules, T);
      assert.ok(!r.allowed);
      // Both the burst and the minute budget are spent: waiting out the burst alone would be refused again.
      assert.equal(r.rule, 'minute');
      assert.ok(r.retryAfter >= 60_000, `retryAfter ${r.retryAfter}`);
      assert.equal((await at(k, rules, T + r.retryAfter - 1)).allowed, false);
      assert.equal((await at(k, rules, T + r.retryAfter)).allowed, true);
    });

    test('keys are independent', async () => {
      const a = key();
      const b = key();
      assert.equal(await admittedOf(a, [BURST], T, 11), 10);
      assert.equal(await admittedOf(b, [BURST], T, 10), 10);
    });

    test('no rules: always allowed', async () => {
      assert.deepEqual(await at(key(), [], T), { allowed: true });
    });

    test('decides exactly like the reference algorithm on a random trace', async () => {
      const reference = new MemoryLimiter({ sweepIntervalMs: 0 });
      const k = key();
      const rules = [
        { name: 'burst', limit: 4, windowMs: 700 },
        { name: 'long', limit: 9, windowMs: 5000 },
      ];
      let seed = 42;
      const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      let t = T + 13;
      for (let i = 0; i < 200; i++) {
        t += Math.floor(rand() < 0.3 ? rand() * 800 : rand() * 60);
        assert.deepEqual(await at(k, rules, t), reference.consume('ref', rules, t), `event ${i} at +${t - T}`);
      }
      await reference.close();
    });

    test('penalty box: block / blockedFor, never shortened by a shorter block', async () => {
      const k = key();
      assert.equal(await limiter.blockedFor(k, T), 0);
      await limiter.block(k, 500, T);
      assert.equal(await limiter.blockedFor(k, T), 500);
      assert.equal(await limiter.blockedFor(k, T + 200), 300);
      assert.equal(await limiter.blockedFor(k, T + 500), 0);
      assert.equal(await limiter.blockedFor(key(), T), 0);
      await limiter.block(k, 1000, T);
      await limiter.block(k, 100, T);
      assert.equal(await limiter.blockedFor(k, T), 1000);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Registry contract
// ---------------------------------------------------------------------------------------------

interface RegistryHarness {
  registry: ConnectionRegistry;
  /** True when the backend holds no counter at all (map empty / no Redis keys). */
  empty(): Promise<boolean>;
}

function registryContract(name: string, make: () => Promise<RegistryHarness>): void {
  describe(`ConnectionRegistry contract — ${name}`, () => {
    let h: RegistryHarness;
    before(async () => {
      h = await make();
    });
    after(async () => {
      await h.registry.close();
    });

    test('acquire up to max, refuse, release back to zero', async () => {
      const r = h.registry;
      for (let i = 0; i < 3; i++) assert.equal(await r.acquireIp('10.0.0.1', 3), true);
      assert.equal(await r.acquireIp('10.0.0.1', 3), false);
      assert.equal(await r.countIp('10.0.0.1'), 3);
      assert.equal(await r.countIp('10.0.0.2'), 0);
      assert.equal(await r.countUser('10.0.0.1'), 0, 'users and IPs are separate namespaces');
      for (let i = 0; i < 3; i++) await r.releaseIp('10.0.0.1');
      assert.equal(await r.countIp('10.0.0.1'), 0);
      assert.ok(await h.empty());
    });

    test('user slots', async () => {
      const r = h.registry;
      const u = randomUUID();
      for (let i = 0; i < 5; i++) assert.equal(await r.acquireUser(u, 5), true);
      assert.equal(await r.acquireUser(u, 5), false);
      assert.equal(await r.countUser(u), 5);
      await r.releaseUser(u);
      assert.equal(await r.acquireUser(u, 5), true);
      for (let i = 0; i < 5; i++) await r.releaseUser(u);
      assert.equal(await r.countUser(u), 0);
      assert.ok(await h.empty());
    });

    test('an unmatched release does not go below zero', async () => {
      const r = h.registry;
      await r.releaseIp('10.0.0.9');
      await r.releaseUser('nobody');
      assert.equal(await r.countIp('10.0.0.9'), 0);
      assert.equal(await r.acquireIp('10.0.0.9', 1), true);
      assert.equal(await r.acquireIp('10.0.0.9', 1), false);
      await r.releaseIp('10.0.0.9');
      assert.ok(await h.empty());
    });

    test('10,000 open/close cycles leave every counter at zero', async () => {
      const r = h.registry;
      // Issued back to back in batches of 1,000 cycles: Redis adapters pipeline each batch on one
      // connection, and a batch never waits behind 40,000 queued commands.
      for (let batch = 0; batch < 10; batch++) {
        const ops: Array<boolean | void | Promise<boolean | void>> = [];
        for (let i = batch * 1000; i < (batch + 1) * 1000; i++) {
          const ip = `10.1.${i % 7}.1`;
          const user = `u-${i % 11}`;
          ops.push(r.acquireIp(ip, 100), r.acquireUser(user, 5), r.releaseUser(user), r.releaseIp(ip));
        }
        const results = await Promise.all(ops);
        assert.ok(results.every((x) => x === true || x === undefined), 'every acquire succeeded');
      }
      for (let i = 0; i < 7; i++) assert.equal(await r.countIp(`10.1.${i}.1`), 0);
      for (let i = 0; i < 11; i++) assert.equal(await r.countUser(`u-${i}`), 0);
      assert.ok(await h.empty());
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Adapters under the contracts
// ---------------------------------------------------------------------------------------------

limiterContract('memory', async () => new MemoryLimiter());

limiterContract('redis', async () => {
  const client = await connect();
  return new RedisLimiter({ client, keyPrefix: subPrefix() });
});

limiterContract('createLimits(redisUrl)', async () => {
  const limits = createLimits({ redisUrl: REDIS_URL, keyPrefix: subPrefix(), nodeId: 'n1' });
  closers.push(() => limits.close());
  assert.equal(await limits.ready(3000), true);
  return limits.limiter;
});

registryContract('memory', async () => {
  const registry = new MemoryConnectionRegistry();
  return { registry, empty: async () => registry.size() === 0 };
});

registryContract('redis', async () => {
  const prefix = subPrefix();
  const registry = new RedisConnectionRegistry({ client: await connect(), keyPrefix: prefix, nodeId: 'n1' });
  assert.equal(await registry.ready(3000), true);
  return { registry, empty: async () => (await keysUnder(admin, `${prefix}:ip:`)).length + (await keysUnder(admin, `${prefix}:user:`)).length === 0 };
});

registryContract('createLimits(redisUrl)', async () => {
  const prefix = subPrefix();
  const limits = createLimits({ redisUrl: REDIS_URL, keyPrefix: prefix, nodeId: 'n1' });
  closers.push(() => limits.close());
  assert.equal(await limits.ready(3000), true);
  return {
    registry: limits.registry,
    empty: async () => (await keysUnder(admin, `${prefix}:ip:`)).length + (await keysUnder(admin, `${prefix}:user:`)).length === 0,
  };
});

// ---------------------------------------------------------------------------------------------
// Redis-only behaviour: TTLs, several nodes, dead nodes, restarts
// ---------------------------------------------------------------------------------------------

describe('Redis limiter storage', () => {
  test('rate and block keys carry a TTL so dead keys vanish', async () => {
    const prefix = subPrefix();
    const limiter = new RedisLimiter({ client: await connect(), keyPrefix: prefix });
    const now = Date.now();
    await limiter.consume('ttl', [BURST, MINUTE], now);
    await limiter.block('ttl', 5000, now);
    const keys = await keysUnder(admin, prefix);
    assert.equal(keys.length, 3);
    for (const k of keys) {
      const ttl = await admin.pttl(k);
      assert.ok(ttl > 0 && ttl <= 60_000 + 6_000 + 1000, `${k} PTTL ${ttl}`);
    }
    await limiter.close();
  });
});

describe('Redis registry across nodes', () => {
  const opts = { livenessMs: 300, heartbeatMs: 50 };

  test('two nodes share one limit', async () => {
    const keyPrefix = subPrefix();
    const a = new RedisConnectionRegistry({ client: await connect(), keyPrefix, nodeId: 'a', ...opts });
    const b = new RedisConnectionRegistry({ client: await connect(), keyPrefix, nodeId: 'b', ...opts });
    assert.ok((await a.ready(2000)) && (await b.ready(2000)));
    assert.equal(await a.acquireIp('1.2.3.4', 3), true);
    assert.equal(await a.acquireIp('1.2.3.4', 3), true);
    assert.equal(await b.acquireIp('1.2.3.4', 3), true);
    assert.equal(await b.acquireIp('1.2.3.4', 3), false);
    assert.equal(await a.acquireIp('1.2.3.4', 3), false);
    assert.equal(await a.countIp('1.2.3.4'), 3);
    assert.equal(await b.countIp('1.2.3.4'), 3);
    await a.releaseIp('1.2.3.4');
    assert.equal(await b.acquireIp('1.2.3.4', 3), true);
    // B cannot release A's slots: B's extra release is ignored.
    await b.releaseIp('1.2.3.4');
    await b.releaseIp('1.2.3.4');
    await b.releaseIp('1.2.3.4');
    assert.equal(await a.countIp('1.2.3.4'), 1);
    await a.close();
    await b.close();
  });

  test("a dead node's slots free themselves once its liveness key expires", async () => {
    const keyPrefix = subPrefix();
    const deadClient = await connect();
    const dead = new RedisConnectionRegistry({ client: deadClient, keyPrefix, nodeId: 'dead', ...opts });
    const alive = new RedisConnectionRegistry({ client: await connect(), keyPrefix, nodeId: 'alive', ...opts });
    assert.ok((await dead.ready(2000)) && (await alive.ready(2000)));
    for (let i = 0; i < 3; i++) assert.equal(await dead.acquireIp('5.6.7.8', 3), true);
    assert.equal(await alive.acquireIp('5.6.7.8', 3), false);
    // SIGKILL, as far as Redis can tell: the connection drops and no release ever comes.
    deadClient.disconnect();
    const killedAt = Date.now();
    await until(async () => alive.acquireIp('5.6.7.8', 3), 2000, 'the dead node slots to free');
    assert.ok(Date.now() - killedAt >= 200, 'slots were held while the liveness key lived');
    assert.equal(await alive.countIp('5.6.7.8'), 1);
    assert.deepEqual(await admin.hkeys(`${keyPrefix}:ip:5.6.7.8`), ['alive'], 'the dead field was deleted');
    await dead.close();
    await alive.close();
  });

  test('a node restarting under the same id discards its stale fields at once', async () => {
    const keyPrefix = subPrefix();
    const firstClient = await connect();
    const first = new RedisConnectionRegistry({ client: firstClient, keyPrefix, nodeId: 'n', livenessMs: 60_000 });
    assert.ok(await first.ready(2000));
    assert.equal(await first.acquireUser('u1', 2), true);
    assert.equal(await first.acquireUser('u1', 2), true);
    firstClient.disconnect(); // crash: liveness key still alive for a minute
    await first.close();
    const second = new RedisConnectionRegistry({ client: await connect(), keyPrefix, nodeId: 'n', livenessMs: 60_000 });
    assert.ok(await second.ready(2000));
    assert.equal(await second.countUser('u1'), 0);
    assert.equal(await second.acquireUser('u1', 2), true);
    await second.close();
  });

  test("a node whose liveness lapsed (Redis lost its keys) re-publishes its own counts", async () => {
    const keyPrefix = subPrefix();
    const node = new RedisConnectionRegistry({ client: await connect(), keyPrefix, nodeId: 'n', ...opts });
    assert.ok(await node.ready(2000));
    assert.equal(await node.acquireIp('9.9.9.9', 10), true);
    assert.equal(await node.acquireIp('9.9.9.9', 10), true);
    await admin.del(...(await keysUnder(admin, keyPrefix))); // e.g. Redis restarted empty
    assert.equal(await node.countIp('9.9.9.9'), 0);
    await until(async () => (await node.countIp('9.9.9.9')) === 2, 2000, 'the counts to be restored');
    await node.releaseIp('9.9.9.9');
    await node.releaseIp('9.9.9.9');
    assert.equal(await node.countIp('9.9.9.9'), 0);
    await node.close();
  });

  test('close() gives slots and liveness back at once', async () => {
    const keyPrefix = subPrefix();
    const a = new RedisConnectionRegistry({ client: await connect(), keyPrefix, nodeId: 'a', livenessMs: 60_000 });
    const b = new RedisConnectionRegistry({ client: await connect(), keyPrefix, nodeId: 'b', livenessMs: 60_000 });
    assert.ok((await a.ready(2000)) && (await b.ready(2000)));
    assert.equal(await a.acquireIp('4.4.4.4', 1), true);
    assert.equal(await b.acquireIp('4.4.4.4', 1), false);
    await a.close();
    assert.equal(await b.acquireIp('4.4.4.4', 1), true);
    assert.equal(await admin.exists(`${keyPrefix}:node:a`), 0);
    await b.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Failure policy: fail closed for new connections, open (per node) for chat
// ---------------------------------------------------------------------------------------------

describe('Redis unreachable', () => {
  let limits: Limits;
  /** Operations that sent a command and saw it fail ('connection': the reconnect attempts). */
  const failedOps: string[] = [];
  /** Failing fast means sending no command at all while down: none can wait on the 2 s command timeout. */
  const commandsTried = (): string[] => failedOps.filter((op) => op !== 'connection');
  before(() => {
    limits = createLimits({ redisUrl: 'redis://127.0.0.1:1', keyPrefix: subPrefix(), nodeId: 'n1', onBackendError: (_err, op) => failedOps.push(op) });
  });
  after(async () => {
    // A shutdown requirement, bounded by the setting it comes from: close() does not wait on
    // ioredis' connect timeout for a server that is not there (normally it takes a few ms). The
    // bound is clearly below that timeout: a close() that waited it out would end in step with it.
    await within(limits.close(), FAIL_FAST_REDIS_OPTIONS.connectTimeout! / 2, 'close() with the server unreachable');
  });

  test('acquire fails closed, at once, with BackendUnavailableError', async () => {
    // Refused before any command is sent (a failed command would be "backend failed", with its cause).
    const refusedUpFront = (err: unknown): boolean => err instanceof BackendUnavailableError && /unavailable/.test(err.message) && err.cause === undefined;
    await assert.rejects(Promise.resolve(limits.registry.acquireIp('1.1.1.1', 100)), refusedUpFront);
    await assert.rejects(Promise.resolve(limits.registry.acquireUser('u', 5)), refusedUpFront);
    await limits.registry.releaseIp('1.1.1.1'); // never throws
    assert.deepEqual(commandsTried(), [], 'no command was sent to the dead server');
    assert.equal(await limits.ready(200), false);
  });

  test('consume fails open to per-node memory limits', async () => {
    let admitted = 0;
    for (let i = 0; i < 15; i++) if ((await limits.limiter.consume('k', [BURST], T)).allowed) admitted++;
    assert.equal(admitted, 10, 'the burst rule still holds, on this node');
    await limits.limiter.block('k', 1000, T);
    assert.equal(await limits.limiter.blockedFor('k', T), 1000);
    assert.deepEqual(commandsTried(), [], 'memory answered without trying the dead server first');
  });
});


describe('Redis outage and recovery', () => {
  test('chat falls back to memory during the outage and returns to Redis afterwards', async () => {
    const proxy = await startRedisProxy(REDIS_URL);
    const keyPrefix = subPrefix();
    const limits = createLimits({
      redisUrl: proxy.url,
      keyPrefix,
      nodeId: 'n1',
      heartbeatMs: 50,
      redisOptions: { retryStrategy: () => 50, connectTimeout: 500 },
    });
    closers.push(async () => {
      await limits.close();
      await proxy.stop().catch(() => {});
    });
    assert.equal(await limits.ready(2000), true);
    const rateKeys = async (k: string): Promise<number> => (await keysUnder(admin, `${keyPrefix}:rl:{${k}}`)).length;

    assert.equal((await limits.limiter.consume('before', [BURST], Date.now())).allowed, true);
    assert.equal(await rateKeys('before'), 1, 'counted in Redis while it is up');
    assert.equal(await limits.registry.acquireIp('2.2.2.2', 10), true);

    await proxy.stop();
    await until(
      async () => Promise.resolve(limits.registry.countIp('x')).then(() => false, (e: unknown) => e instanceof BackendUnavailableError),
      2000,
      'the outage to be noticed',
    );
    assert.equal((await limits.limiter.consume('during', [BURST], Date.now())).allowed, true);
    assert.equal(await rateKeys('during'), 0, 'counted locally while Redis is away');
    await limits.registry.releaseIp('2.2.2.2'); // missed by Redis; reconciled after recovery

    await proxy.start();
    await until(
      async () => Promise.resolve(limits.registry.acquireIp('3.3.3.3', 10)).then(() => true, () => false),
      3000,
      'Redis to come back',
    );
    assert.equal((await limits.limiter.consume('after', [BURST], Date.now())).allowed, true);
    assert.equal(await rateKeys('after'), 1, 'back on Redis without a restart');
    await until(async () => (await limits.registry.countIp('2.2.2.2')) === 0, 2000, 'the missed release to be reconciled');
    await limits.registry.releaseIp('3.3.3.3');
  });
});
