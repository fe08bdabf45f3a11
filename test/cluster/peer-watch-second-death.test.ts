/**
 * A node id that dies again while the cleanup of its previous death is still running
 * (src/bus/peer-watch.ts). Cleanups are not handed over twice at once, so a second death of the
 * same id (the node restarted under a fixed nodeId and was killed again, or the id came with the
 * pending set of a remover that died) cannot start a cleanup of its own while the first runs. The
 * first cleanup may have begun before the second life wrote its entries (session directory), so
 * when it ends the id must stay pending and be handed over again — not be settled with it, which
 * would leave the second life's entries in the directory for good:
 *
 * - the second death found by the same node's heartbeat;
 * - the second death found by another node that died before cleaning up after it (its pending set
 *   comes to the node whose cleanup runs);
 * - the second death found by a heartbeat whose reply was lost;
 * - the first cleanup ending while the heartbeat that finds the second death is on the wire (its
 *   removal from the pending set waits for that heartbeat: sent behind it, it would undo it);
 * - and once the second cleanup succeeded, the id is settled (no third hand-over).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { PeerWatch } from '../../src/bus/peer-watch.js';
import { redisScratch } from '../helpers/redis-scratch.js';

/** Long enough that no watch's own timer runs: the tests call refresh(). */
const MANUAL_MS = 600_000;

const redis = redisScratch();
const client = (): Promise<Redis> => redis.client();

interface Cluster {
  key: string;
  raw: Redis;
  /** A node of this cluster (its heartbeat's reply can be lost: loseNextReply). */
  watch(nodeId: string, onLapsed: (count: number, nodes: string[]) => unknown): Promise<PeerWatch>;
  /** The next heartbeat of the watches made by this cluster runs in Redis, but its reply is lost. */
  loseNextReply(): void;
  /** `fn` runs right after the next heartbeat was sent, before its reply. */
  onNextSent(fn: () => void): void;
  /** Lets the watch's pending commands (a settle's SREM) reach Redis: one turn, then a PING behind them. */
  flush(watch: PeerWatch): Promise<void>;
  /** The node's member lapses now (as if it had stopped refreshing for livenessMs). */
  lapse(nodeId: string): Promise<void>;
}

async function cluster(): Promise<Cluster> {
  const prefix = redis.prefix('pw2death');
  const key = `${prefix}ctl:nodes`;
  const raw = await client();
  let lose = false;
  let onSent: (() => void) | undefined;
  const connections = new Map<PeerWatch, Redis>();
  return {
    key,
    raw,
    async watch(nodeId, onLapsed) {
      const real = await client();
      const lossy = new Proxy(real, {
        get(target, prop, receiver) {
          if (prop === 'rampartPeerHeartbeat') {
            return (...args: unknown[]) => {
              const reply = (target as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>).rampartPeerHeartbeat!(...args);
              const sent = onSent;
              onSent = undefined;
              sent?.();
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
      const w = new PeerWatch({ client: lossy, key, nodeId, resyncChannel: `${prefix}ctl:resync`, livenessMs: MANUAL_MS, onLapsed, onError: () => {} });
      redis.stopAfter(w);
      connections.set(w, real);
      return w;
    },
    loseNextReply: () => void (lose = true),
    onNextSent: (fn) => void (onSent = fn),
    async flush(watch) {
      await new Promise((resolve) => setImmediate(resolve));
      await connections.get(watch)!.ping();
    },
    lapse: async (nodeId) => void (await raw.zadd(key, 1, nodeId)),
  };
}

/** A node whose cleanups run until the test ends them (`outcomes[i](ok)`), reporting what it was handed. */
interface Sweeper {
  watch: PeerWatch;
  reports: string[][];
  outcomes: ((ok: boolean) => void)[];
  /** Cleanup `i` ends (`ok` or failed), its result lands, and the next heartbeat runs. */
  end(i: number, ok: boolean): Promise<void>;
}

async function sweeper(c: Cluster, nodeId: string): Promise<Sweeper> {
  const reports: string[][] = [];
  const outcomes: ((ok: boolean) => void)[] = [];
  const watch = await c.watch(nodeId, (_count, nodes) => {
    reports.push([...nodes].sort());
    return new Promise<boolean>((resolve) => outcomes.push(resolve));
  });
  await watch.refresh(); // joined
  return {
    watch,
    reports,
    outcomes,
    async end(i, ok) {
      outcomes[i]!(ok);
      await c.flush(watch);
      await watch.refresh();
    },
  };
}

/** One life of node `nodeId`: joins, then is killed (its member lapses). */
async function lifeKilled(c: Cluster, nodeId: string): Promise<void> {
  const life = await c.watch(nodeId, () => undefined);
  await life.refresh();
  life.stop();
  await c.lapse(nodeId);
}

const id = (name: string): string => `${name}-${randomUUID().slice(0, 8)}`;

/** A cluster, a sweeper `s` (node `sId`) and node `x`'s first life killed and found: its cleanup #1 runs. */
async function firstDeathFound(): Promise<{ c: Cluster; sId: string; s: Sweeper; x: string }> {
  const c = await cluster();
  const sId = id('sweeper');
  const s = await sweeper(c, sId);
  const x = id('x');
  await lifeKilled(c, x);
  await s.watch.refresh();
  return { c, sId, s, x };
}

test('a second death found by the same node while the first cleanup runs is handed over once that cleanup ends', async () => {
  const { c, sId, s, x } = await firstDeathFound(); // first death found: cleanup #1 runs (slow: a SCAN over the directory)
  assert.deepEqual(s.reports, [[x]]);

  await lifeKilled(c, x); // restarted under the same id, served, killed again
  await s.watch.refresh(); // second death found while cleanup #1 still runs
  assert.equal(await c.raw.zscore(c.key, x), null, 'the second death was found');
  assert.deepEqual(s.reports, [[x]], 'not handed over twice at once');

  s.outcomes[0]!(true); // cleanup #1 succeeds (it began before life 2 wrote its entries)
  await c.flush(s.watch);
  assert.equal(await c.raw.sismember(`${c.key}:lapsed:${sId}`, x), 1, 'still pending once cleanup #1 ended');
  await s.watch.refresh();
  assert.deepEqual(s.reports, [[x], [x]], 'the second death is handed over for cleanup too');

  await s.end(1, true);
  assert.deepEqual(s.reports, [[x], [x]], 'not handed over a third time');
  assert.equal(await c.raw.exists(`${c.key}:lapsed:${sId}`), 0, 'settled once its own cleanup succeeded');
});

test('a second death that comes with a dead remover\'s pending set while the first cleanup runs is handed over once that cleanup ends', async () => {
  const { c, sId, s, x } = await firstDeathFound(); // first death of x found by s: cleanup #1 runs
  assert.deepEqual(s.reports, [[x]]);

  // Another node r finds x's second life dead, and is killed before its cleanup ran.
  const rId = id('remover');
  const r = await c.watch(rId, () => new Promise(() => {}));
  await r.refresh();
  await lifeKilled(c, x);
  await r.refresh();
  assert.deepEqual(await c.raw.smembers(`${c.key}:lapsed:${rId}`), [x], 'r holds the second death');
  r.stop();
  await c.lapse(rId);

  await s.watch.refresh(); // s finds r dead and takes over its pending set (x, still being cleaned)
  assert.deepEqual(s.reports, [[x], [rId]]);
  await s.end(0, true); // cleanup #1 of x succeeds
  assert.deepEqual(s.reports, [[x], [rId], [x]], 'the second death of x is handed over for cleanup too');
  assert.deepEqual((await c.raw.smembers(`${c.key}:lapsed:${sId}`)).sort(), [rId, x].sort(), 'both still pending');
});

test('a second death found by a heartbeat whose reply was lost while the first cleanup runs is handed over once that cleanup ends', async () => {
  const { c, sId, s, x } = await firstDeathFound();
  assert.deepEqual(s.reports, [[x]]);

  await lifeKilled(c, x);
  c.loseNextReply();
  await s.watch.refresh(); // found in Redis, the reply never came
  assert.equal(await c.raw.zscore(c.key, x), null, 'the script ran: the second death was found');

  await s.end(0, true);
  assert.deepEqual(s.reports, [[x], [x]], 'the second death is handed over for cleanup too');
  await s.end(1, true);
  assert.deepEqual(s.reports, [[x], [x]]);
  assert.equal(await c.raw.exists(`${c.key}:lapsed:${sId}`), 0, 'settled once its own cleanup succeeded');
});

test('a first cleanup that ends while the heartbeat finding the second death is on the wire leaves the id pending', async () => {
  const { c, sId, s, x } = await firstDeathFound(); // first death: cleanup #1 runs
  assert.deepEqual(s.reports, [[x]]);

  await lifeKilled(c, x); // second life, killed
  c.onNextSent(() => s.outcomes[0]!(true)); // cleanup #1 ends just as that heartbeat went out
  await s.watch.refresh();
  await c.flush(s.watch);
  assert.equal(await c.raw.zscore(c.key, x), null, 'the second death was found');
  assert.deepEqual(s.reports, [[x], [x]], 'the second death is handed over');
  assert.equal(await c.raw.sismember(`${c.key}:lapsed:${sId}`, x), 1, 'pending while its second cleanup runs');

  await s.end(1, false); // the second cleanup fails: still pending, handed over again
  assert.deepEqual(s.reports, [[x], [x], [x]], 'a failed cleanup of the second death is retried');
  await s.end(2, true);
  assert.deepEqual(s.reports, [[x], [x], [x]]);
  assert.equal(await c.raw.exists(`${c.key}:lapsed:${sId}`), 0, 'settled once its own cleanup succeeded');
});

test('a cleanup that ends while a heartbeat that did not find the id again is on the wire settles it, without a second hand-over', async () => {
  const { c, sId, s, x } = await firstDeathFound();
  c.onNextSent(() => s.outcomes[0]!(true));
  await s.watch.refresh(); // nothing new found; x is still in the reply's pending ids
  await c.flush(s.watch);
  assert.deepEqual(s.reports, [[x]], 'not handed over again');
  assert.equal(await c.raw.exists(`${c.key}:lapsed:${sId}`), 0, 'settled after the heartbeat');
});

test('a hand-over that throws keeps the ids pending, also one an ended cleanup had set aside to settle', async () => {
  const c = await cluster();
  const sId = id('sweeper');
  const reports: string[][] = [];
  const outcomes: ((ok: boolean) => void)[] = [];
  const s = { watch: await c.watch(sId, (_count, nodes) => {
    reports.push([...nodes]);
    if (reports.length === 2) throw new Error('cleanup could not start');
    return new Promise<boolean>((resolve) => outcomes.push(resolve));
  }) };
  await s.watch.refresh(); // joined
  const x = id('x');
  await lifeKilled(c, x);
  await s.watch.refresh(); // cleanup #1 of x runs
  await lifeKilled(c, x);
  c.onNextSent(() => outcomes[0]!(true)); // it ends as the heartbeat finding the second death goes out
  await s.watch.refresh(); // the second death is handed over, and that hand-over throws
  await c.flush(s.watch);
  assert.deepEqual(reports, [[x], [x]]);
  assert.equal(await c.raw.sismember(`${c.key}:lapsed:${sId}`, x), 1, 'still pending: nobody cleaned the second death');
  await s.watch.refresh();
  assert.deepEqual(reports, [[x], [x], [x]], 'handed over again');
});
