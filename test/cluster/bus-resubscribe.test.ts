/**
 * After a subscriber outage every online user is subscribed again, including users whose
 * sessions arrived (or churned) during the outage, and also after a second drop right after the
 * reconnect (before Redis answered the resubscriptions).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { REDIS_URL, startRedisProxy, uniqueRedisPrefix, waitFor, type TcpProxy } from '../helpers/harness.js';

const open: Array<{ close(): Promise<void> }> = [];
const proxies: TcpProxy[] = [];
after(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
  for (const p of proxies) await p.close();
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The bus's subscriber connection (private), to see when it is down. */
const subscriberOf = (b: RedisBus) => (b as unknown as { sub: { status: string; once(e: string, f: () => void): void } }).sub;

/** Waits until `b` noticed its subscriber dropped, so what the test does next happens during the outage. */
async function subscriberDown(b: RedisBus): Promise<void> {
  await waitFor(() => subscriberOf(b).status !== 'ready', 5000, 'the subscriber to notice the drop');
}

async function setup(): Promise<{ a: RedisBus; b: RedisBus; proxy: TcpProxy; inB: Array<[string, string]>; resyncs: { n: number } }> {
  const proxy = await startRedisProxy(REDIS_URL);
  proxies.push(proxy);
  const prefix = uniqueRedisPrefix('bus-resub');
  const a = await RedisBus.connect({ redisUrl: REDIS_URL, channelPrefix: prefix, nodeId: 'a' });
  const b = await RedisBus.connect({ redisUrl: proxy.url, channelPrefix: prefix, nodeId: 'b', onError: () => {} });
  open.push(a, b);
  const inB: Array<[string, string]> = [];
  b.onFrame((u, f) => inB.push([u, f]));
  const resyncs = { n: 0 };
  b.onResync(() => resyncs.n++);
  return { a, b, proxy, inB, resyncs };
}

async function probeAll(a: RedisBus, inB: Array<[string, string]>, users: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const u of users) {
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) {
      const f = `probe-${u}-${i}`;
      a.publish(u, f);
      await sleep(50);
      ok = inB.some(([uu, ff]) => uu === u && ff === f);
    }
    if (!ok) missing.push(u);
  }
  return missing;
}

test('users subscribed before, during and churning through an outage all receive afterwards', { timeout: 30_000 }, async () => {
  const { a, b, proxy, inB, resyncs } = await setup();
  b.subscribe('before');
  b.subscribe('leaves-and-returns');
  b.subscribe('leaves');
  await b.subscriptionsSettled();
  await proxy.stop();
  await subscriberDown(b);
  b.subscribe('during');
  b.unsubscribe('leaves-and-returns');
  b.subscribe('leaves-and-returns');
  b.unsubscribe('leaves');
  b.subscribe('churn');
  b.unsubscribe('churn');
  b.subscribe('churn');
  await proxy.start();
  await waitFor(() => resyncs.n >= 1, 5000, 'a resync after the reconnect');
  assert.deepEqual(await probeAll(a, inB, ['before', 'during', 'leaves-and-returns', 'churn']), []);
  // One connection publishes both and one receives both, in order: once the frame for a user
  // still subscribed arrived, the one for 'leaves' would have arrived before it.
  a.publish('leaves', 'x');
  a.publish('before', 'after-leaves');
  await waitFor(() => inB.some(([u, f]) => u === 'before' && f === 'after-leaves'), 5000, 'the frame published after the one for "leaves"');
  assert.equal(inB.some(([u]) => u === 'leaves'), false);
});

test('a second drop right after the reconnect (resubscriptions unanswered) still ends with every user subscribed', { timeout: 30_000 }, async () => {
  const { a, b, proxy, inB, resyncs } = await setup();
  const users = Array.from({ length: 50 }, (_, i) => `u${i}`);
  for (const u of users) b.subscribe(u);
  await b.subscriptionsSettled();
  await proxy.stop();
  await subscriberDown(b);
  b.subscribe('late');
  await proxy.start();
  // Cut again as soon as the subscriber reconnects (its SUBSCRIBEs may still be in flight).
  const sub = subscriberOf(b);
  await new Promise<void>((r) => sub.once('ready', r));
  proxy.freeze();
  await proxy.stop();
  await subscriberDown(b);
  await proxy.start();
  await waitFor(() => resyncs.n >= 1, 5000, 'a resync after the reconnects');
  assert.deepEqual(await probeAll(a, inB, [...users.slice(0, 5), 'u49', 'late']), []);
});

test('closing while Redis has not answered the resubscription leaves no unhandled rejection (it would end the process)', { timeout: 30_000 }, async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    const { b, proxy } = await setup();
    b.subscribe('u1');
    await b.subscriptionsSettled();
    await proxy.stop();
    await proxy.start();
    // The resubscription is written on 'ready'; black-hole it before Redis can answer, then close.
    const sub = subscriberOf(b);
    await new Promise<void>((r) => sub.once('ready', r));
    proxy.freeze();
    await b.close();
    // The socket ends once ioredis gives up on a graceful close (the path is frozen); then it
    // rejects what was unanswered, and unhandled rejections are reported after microtasks drain.
    if (sub.status !== 'end') await new Promise<void>((r) => sub.once('end', r));
    await sleep(50);
    assert.deepEqual(unhandled.map(String), []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
