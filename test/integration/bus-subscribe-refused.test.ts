/**
 * A SUBSCRIBE that Redis answers with an error while the subscriber connection stays up (here a
 * `-NOPERM` from an ACL user that may not use the user channels yet) must not leave the node deaf
 * to the channel until the connection happens to drop: nothing else would ever send it again. The
 * bus (src/bus/redis-bus.ts) sends it again, backing off, while the channel is still wanted, and
 * once Redis confirms it resyncs (every session reads from storage what it missed while deaf). The
 * same holds for the resubscription after a reconnect (src/redis/resubscribe.ts): refused, it is
 * retried and `onRestored` (the owner's resync) runs once it went through.
 *
 * The refusal is real: an ACL user whose channel permissions are changed during the test.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { resubscribeOnReconnect } from '../../src/redis/resubscribe.js';
import { REDIS_URL, startRedisProxy, uniqueRedisPrefix, waitFor, type TcpProxy } from '../helpers/harness.js';

const aclUsers: string[] = [];
const conns: Redis[] = [];
const buses: RedisBus[] = [];
const proxies: TcpProxy[] = [];

after(async () => {
  await Promise.all(buses.map((b) => b.close()));
  for (const p of proxies) await p.close();
  const admin = new Redis(REDIS_URL);
  for (const u of aclUsers) await admin.acl('DELUSER', u);
  for (const c of conns) c.disconnect();
  await admin.quit();
});

/** An ACL user allowed only the channels matching `channels`; the URL to connect as it. */
async function aclUser(admin: Redis, ...channels: string[]): Promise<{ name: string; url: string }> {
  const name = `rampart-test-acl-${randomUUID().slice(0, 8)}`;
  aclUsers.push(name);
  await admin.acl('SETUSER', name, 'on', 'nopass', '~*', 'resetchannels', ...channels.map((c) => `&${c}`), '+@all');
  const url = new URL(REDIS_URL);
  url.username = name;
  url.password = 'x';
  return { name, url: url.toString() };
}

function admin(): Redis {
  const r = new Redis(REDIS_URL);
  conns.push(r);
  return r;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a refused SUBSCRIBE is retried while wanted, then the bus resyncs', { timeout: 20_000 }, async () => {
  const prefix = uniqueRedisPrefix('subref');
  const r = admin();
  const acl = await aclUser(r, `${prefix}ctl:*`);
  const errors: string[] = [];
  const a = await RedisBus.connect({ redisUrl: REDIS_URL, channelPrefix: prefix, nodeId: 'a' });
  const b = await RedisBus.connect({ redisUrl: acl.url, channelPrefix: prefix, nodeId: 'b', ping: { intervalMs: 0, timeoutMs: 3000 }, onError: (err, source) => errors.push(`${source}: ${err.message}`) });
  buses.push(a, b);
  let resyncs = 0;
  b.onResync(() => resyncs++);
  const user = randomUUID();
  const got: string[] = [];
  b.onFrame((u, f) => u === user && got.push(f));
  b.subscribe(user);
  await b.subscribed(user);
  assert.ok(errors.some((e) => e.startsWith('subscribe: NOPERM')), `refused: ${JSON.stringify(errors)}`);
  const connected = (await r.client('LIST')) as string;
  assert.ok(connected.includes(`user=${acl.name}`), 'the subscriber connection stays up');
  // A few retries are refused too (backing off), then the permission comes.
  const refusals = () => errors.filter((e) => e.startsWith('subscribe: NOPERM')).length;
  await waitFor(() => refusals() >= 3, 5000, 'two refused retries after the first refusal');
  assert.equal(resyncs, 0, 'no resync while every SUBSCRIBE is refused');
  await r.acl('SETUSER', acl.name, `&${prefix}u:*`);
  await waitFor(() => resyncs > 0, 5000, 'a resync once the subscription is confirmed');
  for (let i = 0; i < 30 && got.length === 0; i++) {
    a.publish(user, `frame-${i}`);
    await sleep(100);
  }
  assert.ok(got.length > 0, 'frames from the other node reach the user again');
});

test('a refused SUBSCRIBE is not retried for a channel no longer wanted', { timeout: 20_000 }, async () => {
  const prefix = uniqueRedisPrefix('subref');
  const r = admin();
  const acl = await aclUser(r, `${prefix}ctl:*`);
  const b = await RedisBus.connect({ redisUrl: acl.url, channelPrefix: prefix, nodeId: 'b', ping: { intervalMs: 0, timeoutMs: 3000 }, onError: () => {} });
  buses.push(b);
  let resyncs = 0;
  b.onResync(() => resyncs++);
  const user = randomUUID();
  b.subscribe(user);
  await b.subscribed(user);
  b.unsubscribe(user); // the user's last session left before Redis allowed it
  await r.acl('SETUSER', acl.name, `&${prefix}u:*`);
  // The retry armed by the refusal goes out (and, naming only allowed channels, is confirmed: the
  // bus resyncs): had it named the channel no longer wanted, Redis would have let it through.
  await waitFor(() => resyncs > 0, 5000, 'the retry to go through');
  await b.subscriptionsSettled();
  const [, subscribers] = (await r.pubsub('NUMSUB', `${prefix}u:${user}`)) as [string, number];
  assert.equal(Number(subscribers), 0, 'not subscribed');
});

test('a resubscription refused after a reconnect is retried, and onRestored runs once it went through', { timeout: 20_000 }, async () => {
  const prefix = uniqueRedisPrefix('subref');
  const r = admin();
  const channel = `${prefix}u:${randomUUID()}`;
  const acl = await aclUser(r, `${prefix}u:*`);
  const sub = new Redis(acl.url, { autoResubscribe: false, retryStrategy: () => 50 });
  conns.push(sub);
  const errors: Error[] = [];
  let restored = 0;
  const stop = resubscribeOnReconnect(sub, { channels: () => [channel], onRestored: () => restored++, onError: (err) => errors.push(err) });
  try {
    await sub.subscribe(channel);
    // Revoking the channel disconnects the subscriber (Redis 7); it comes back, and is refused.
    await r.acl('SETUSER', acl.name, 'resetchannels', `&${prefix}ctl:*`);
    const refusals = () => errors.filter((e) => e.message.startsWith('NOPERM')).length;
    await waitFor(() => refusals() >= 3, 5000, 'the resubscription refused, then two retries refused');
    assert.equal(restored, 0);
    assert.equal(sub.status, 'ready', 'the connection is up: no reconnect will resend it');
    await r.acl('SETUSER', acl.name, `&${prefix}u:*`);
    await waitFor(() => restored > 0, 5000, 'restored once allowed');
    const [, subscribers] = (await r.pubsub('NUMSUB', channel)) as [string, number];
    assert.equal(Number(subscribers), 1);
  } finally {
    stop();
  }
});

test('refused retries back off whatever new sessions are refused meanwhile (the wait is the bus’s, not each SUBSCRIBE’s)', { timeout: 20_000 }, async () => {
  const prefix = uniqueRedisPrefix('subref');
  const r = admin();
  const acl = await aclUser(r, `${prefix}ctl:*`);
  const b = await RedisBus.connect({ redisUrl: acl.url, channelPrefix: prefix, nodeId: 'b', ping: { intervalMs: 0, timeoutMs: 3000 }, onError: () => {} });
  buses.push(b);
  // The retries are the SUBSCRIBEs of every wanted channel at once; a new session's is of one. A new
  // session arrives, and is refused, each time a retry goes out.
  const sub = (b as unknown as { sub: Redis }).sub;
  const subscribe = sub.subscribe.bind(sub) as (...channels: string[]) => Promise<unknown>;
  const retries: number[] = [];
  (sub as unknown as { subscribe: (...channels: string[]) => Promise<unknown> }).subscribe = (...channels: string[]) => {
    if (channels.length > 1) {
      retries.push(performance.now());
      // Refused just before the retry goes out: its answer comes while the retry is on the wire.
      b.subscribe(randomUUID());
    }
    return subscribe(...channels);
  };
  b.subscribe(randomUUID());
  await waitFor(() => retries.length >= 4, 10_000, 'four retries');
  const gaps = retries.slice(1).map((t, i) => t - retries[i]!);
  // Timers never fire early: 500, 1000 and 2000 ms at least (each new refusal used to start over at 250).
  assert.ok(gaps[0]! >= 450 && gaps[1]! >= 950 && gaps[2]! >= 1950, `gaps between retries: ${gaps.map(Math.round).join(', ')} ms`);
});

test('after a reconnect whose resubscription went through, a new refusal backs off from the start again (no retry timer from before is left)', { timeout: 30_000 }, async () => {
  const prefix = uniqueRedisPrefix('subref');
  const r = admin();
  const acl = await aclUser(r, `${prefix}ctl:*`);
  const proxy = await startRedisProxy();
  proxies.push(proxy);
  const url = new URL(proxy.url);
  url.username = acl.name;
  url.password = 'x';
  const b = await RedisBus.connect({ redisUrl: url.toString(), channelPrefix: prefix, nodeId: 'b', ping: { intervalMs: 0, timeoutMs: 3000 }, onError: () => {} });
  buses.push(b);
  let resyncs = 0;
  b.onResync(() => resyncs++);
  const state = b as unknown as { sub: Redis; refusedWaitMs: number; refusedRetry: NodeJS.Timeout | undefined };
  const subscribe = state.sub.subscribe.bind(state.sub) as (...channels: string[]) => Promise<unknown>;
  let retries = 0;
  (state.sub as unknown as { subscribe: (...channels: string[]) => Promise<unknown> }).subscribe = (...channels: string[]) => {
    if (channels.length > 1) retries++;
    return subscribe(...channels);
  };
  const u1 = randomUUID();
  b.subscribe(u1);
  await waitFor(() => retries >= 2 && state.refusedWaitMs >= 1000, 10_000, 'two refused retries');
  // The subscriber drops; meanwhile the channel is allowed; back, resubscribe.ts gets every channel confirmed.
  await proxy.stop();
  await r.acl('SETUSER', acl.name, `&${prefix}u:*`);
  const before = resyncs;
  await proxy.start();
  await waitFor(() => resyncs > before && state.sub.status === 'ready', 10_000, 'the resubscription went through');
  assert.equal(state.refusedWaitMs, 250, 'the next refusal is retried after 250 ms, not the back-off from before');
  assert.equal(state.refusedRetry, undefined, 'no retry armed before the drop still waits to go');
});
