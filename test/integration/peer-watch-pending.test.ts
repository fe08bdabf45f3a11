/**
 * Cleanup after dead nodes must not depend on a single reply (src/bus/peer-watch.ts,
 * src/admin/dead-nodes.ts). Only the node whose heartbeat removed a lapsed member is told its id,
 * and only that node drops the dead node's session-directory entries. So the id must stay in Redis
 * (the remover's pending set) until the cleanup succeeded:
 *
 * - a heartbeat that ran in Redis but whose reply was lost: the next heartbeat hands the id over;
 * - a cleanup that failed (its promise resolves false): handed over again at a later heartbeat, but
 *   never twice while one is still running;
 * - a node that died with cleanups still pending: whoever removes it inherits them;
 * - a node that shuts down cleanly with cleanups still pending (cut short by the shutdown, waiting
 *   for session control, or failed and due again): nobody finds it dead, and node ids are random per
 *   process, so its leave must pass them on — the next heartbeat of any node takes them over;
 * - a node removed by a node of the previous build (rolling upgrade), whose heartbeat hands over
 *   only the id: the dead node's pending set is taken over by the next heartbeat of a node of this
 *   build — but never the pending set of a node that is still a member;
 * - DeadNodeCleanup.found resolves true only once forgetNodes succeeded, false when it failed
 *   (never rejects: an unused promise must not crash the process), keeping failed ids for a retry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { PeerWatch } from '../../src/bus/peer-watch.js';
import { DeadNodeCleanup } from '../../src/admin/dead-nodes.js';
import { redisScratch } from '../helpers/redis-scratch.js';

/** Long enough that the watch's own timer never runs: the tests call refresh(). */
const MANUAL_MS = 600_000;

const redis = redisScratch();
const client = (): Promise<Redis> => redis.client();

interface Setup {
  key: string;
  raw: Redis;
  reports: string[][];
  /** The next heartbeat runs in Redis, but its reply is lost (rejects, as on a dropped connection). */
  loseNextReply(): void;
  watch: PeerWatch;
}

async function setup(nodeId: string, onLapsed?: (count: number, nodes: string[]) => unknown): Promise<Setup> {
  const prefix = redis.prefix('pwpend');
  const key = `${prefix}ctl:nodes`;
  const raw = await client();
  const real = await client();
  let lose = false;
  const lossy = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'rampartPeerHeartbeat') {
        return (...args: unknown[]) => {
          const reply = (target as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>).rampartPeerHeartbeat!(...args);
          if (!lose) return reply;
          lose = false;
          return reply.then(() => {
            throw new Error('Connection is closed.');
          });
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const reports: string[][] = [];
  const watch = new PeerWatch({
    client: lossy,
    key,
    nodeId,
    resyncChannel: `${prefix}ctl:resync`,
    livenessMs: MANUAL_MS,
    onLapsed: (count, nodes) => {
      reports.push([...nodes].sort());
      return onLapsed?.(count, nodes);
    },
    onError: () => {},
  });
  redis.stopAfter(watch);
  return { key, raw, reports, loseNextReply: () => void (lose = true), watch };
}

const dead = (): string => `dead-${randomUUID().slice(0, 8)}`;

test('a dead node removed by a heartbeat whose reply was lost is handed over by the next one, once', async () => {
  const s = await setup('node-a');
  await s.watch.refresh(); // joined
  const gone = dead();
  await s.raw.zadd(s.key, 1, gone);
  s.loseNextReply();
  await s.watch.refresh();
  assert.equal(await s.raw.zscore(s.key, gone), null, 'the script ran: the member is gone');
  assert.deepEqual(s.reports, [], 'nothing handed over yet');
  await s.watch.refresh();
  assert.deepEqual(s.reports, [[gone]], 'handed over by the next heartbeat');
  await s.watch.refresh();
  assert.deepEqual(s.reports, [[gone]], 'a cleanup that returned no promise counts as done');
  assert.equal(await s.raw.exists(`${s.key}:lapsed:node-a`), 0);
});

test('an id stays pending until its cleanup succeeded, and is not handed over twice while it runs', async () => {
  const outcomes: ((ok: boolean) => void)[] = [];
  const s = await setup('node-b', () => new Promise<boolean>((resolve) => outcomes.push(resolve)));
  await s.watch.refresh();
  const gone = dead();
  await s.raw.zadd(s.key, 1, gone);
  await s.watch.refresh();
  await s.watch.refresh(); // the cleanup is still running
  assert.deepEqual(s.reports, [[gone]]);
  outcomes[0]!(false); // it failed
  await new Promise((r) => setImmediate(r));
  await s.watch.refresh();
  assert.deepEqual(s.reports, [[gone], [gone]], 'a failed cleanup is handed over again');
  outcomes[1]!(true);
  await new Promise((r) => setImmediate(r));
  await s.watch.refresh();
  assert.deepEqual(s.reports, [[gone], [gone]]);
  assert.equal(await s.raw.exists(`${s.key}:lapsed:node-b`), 0, 'settled once the cleanup succeeded');
});

test('the pending cleanups of a node that died go to the node that removes it', async () => {
  const s = await setup('node-c', () => new Promise(() => {}));
  await s.watch.refresh();
  const sweeper = dead();
  const itsDead = dead();
  // `sweeper` had removed `itsDead`, then died before cleaning up after it.
  await s.raw.sadd(`${s.key}:lapsed:${sweeper}`, itsDead);
  await s.raw.zadd(s.key, 1, sweeper);
  await s.watch.refresh();
  assert.deepEqual(s.reports, [[sweeper, itsDead].sort()]);
  assert.equal(await s.raw.exists(`${s.key}:lapsed:${sweeper}`), 0);
});

test('DeadNodeCleanup.found resolves once forgetNodes succeeded, false when it failed, and retries the ids', async () => {
  const errors: unknown[] = [];
  const cleanup = new DeadNodeCleanup((err) => errors.push(err));
  const calls: string[][] = [];
  let fail = true;
  const first = cleanup.found(['n1']);
  cleanup.attach({
    forgetNodes: async (ids) => {
      calls.push([...ids]);
      if (fail) throw new Error('redis down');
    },
  });
  assert.equal(await first, false);
  assert.equal(errors.length, 1);
  fail = false;
  assert.equal(await cleanup.found(['n2', 'n1']), true);
  assert.deepEqual(calls, [['n1'], ['n1', 'n2']], 'the failed id is tried again, once');
});

/** The previous build's heartbeat (before pending sets; git show 715fa33^:src/bus/peer-watch.ts). */
const OLD_HEARTBEAT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local restarted = 0
local lapsed = {}
if ARGV[4] == '1' and redis.call('ZSCORE', KEYS[1], ARGV[1]) then restarted = 1 end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  if node ~= ARGV[1] then
    redis.call('ZREM', KEYS[1], node)
    lapsed[#lapsed + 1] = node
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if restarted == 1 then lapsed[#lapsed + 1] = ARGV[1] end
if #lapsed > 0 then redis.call('PUBLISH', ARGV[3], '1') end
table.insert(lapsed, 1, restarted)
return lapsed
`;

test('a node that leaves cleanly with cleanups pending hands them to the next heartbeat of another node', async () => {
  const s = await setup('node-d', () => new Promise(() => {})); // its cleanup never finishes
  await s.watch.refresh();
  const gone = dead();
  await s.raw.zadd(s.key, 1, gone);
  await s.watch.refresh();
  assert.deepEqual(s.reports, [[gone]]);
  await s.watch.leave();
  assert.equal(await s.raw.zscore(s.key, 'node-d'), null, 'left the membership');
  assert.equal(await s.raw.exists(`${s.key}:lapsed:node-d`), 0, 'no pending set left under the leaver\'s id');
  const handed: string[][] = [];
  const other = new PeerWatch({
    client: await client(),
    key: s.key,
    nodeId: 'node-e',
    resyncChannel: `${s.key}:resync`,
    livenessMs: MANUAL_MS,
    onLapsed: (count, nodes) => {
      handed.push([String(count), ...nodes]);
      return Promise.resolve(true);
    },
    onError: () => {},
  });
  redis.stopAfter(other);
  await other.refresh();
  assert.deepEqual(handed, [['0', gone]], 'taken over (no new death announced)');
  await new Promise((r) => setImmediate(r));
  await other.refresh();
  assert.deepEqual(handed, [['0', gone]], 'once');
  assert.deepEqual((await s.raw.keys(`${s.key}:lapsed*`)).sort(), [], 'nothing left in Redis');
});

test('rolling upgrade: the pending set of a node removed by a node of the previous build is taken over; a member\'s is not', async () => {
  const s = await setup('node-f', () => new Promise(() => {})); // dies before cleaning up
  await s.watch.refresh();
  const itsDead = dead();
  await s.raw.zadd(s.key, 1, itsDead);
  await s.watch.refresh();
  assert.deepEqual(s.reports, [[itsDead]]);
  // A live member of this build with a cleanup of its own running: its pending set stays its own.
  const busy = new PeerWatch({ client: await client(), key: s.key, nodeId: 'node-busy', resyncChannel: `${s.key}:resync`, livenessMs: MANUAL_MS, onLapsed: () => new Promise(() => {}), onError: () => {} });
  redis.stopAfter(busy);
  await busy.refresh();
  const busyDead = dead();
  await s.raw.zadd(s.key, 1, busyDead);
  await busy.refresh();
  assert.deepEqual(await s.raw.smembers(`${s.key}:lapsed:node-busy`), [busyDead]);
  // node-f is killed; its member lapses and a node of the previous build removes it (id only).
  s.watch.stop();
  await s.raw.zadd(s.key, 1, 'node-f');
  const removed = (await s.raw.eval(OLD_HEARTBEAT_LUA, 1, s.key, 'old-node', MANUAL_MS, `${s.key}:resync`, '0')) as unknown[];
  assert.deepEqual(removed.slice(1), ['node-f']);
  const handed: string[] = [];
  const survivor = new PeerWatch({
    client: await client(),
    key: s.key,
    nodeId: 'node-g',
    resyncChannel: `${s.key}:resync`,
    livenessMs: MANUAL_MS,
    onLapsed: (_count, nodes) => void handed.push(...nodes),
    onError: () => {},
  });
  redis.stopAfter(survivor);
  await survivor.refresh();
  assert.deepEqual(handed, [itsDead], 'the dead node\'s pending id is taken over, the live member\'s is not');
  assert.equal(await s.raw.exists(`${s.key}:lapsed:node-f`), 0);
  assert.deepEqual(await s.raw.smembers(`${s.key}:lapsed:node-busy`), [busyDead], 'a member keeps its own');
  await survivor.refresh();
  assert.deepEqual(handed, [itsDead]);
  // The old build keeps working beside the new keys.
  const again = (await s.raw.eval(OLD_HEARTBEAT_LUA, 1, s.key, 'old-node', MANUAL_MS, `${s.key}:resync`, '0')) as unknown[];
  assert.deepEqual(again, [0]);
});
