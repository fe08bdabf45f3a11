/**
 * The SDK against a real server's budgets (default limits unless said): a burst of requests is
 * paced under `limits.requests` (no refusal, no close 4029), a fast replay is acknowledged without
 * spending that budget past its limit, a device clock ahead of the issuer does not make the SDK
 * refresh its token over and over, and a token over the pre-auth frame cap (1009 before
 * `auth_success`) stops the client with `token_too_large` instead of reconnecting forever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { createNodeClient } from '../../src/client/node.js';
import { FakeClock } from '../helpers/fake-client-env.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { startServer, newUserId, TEST_SECRET, waitFor, within } from '../helpers/harness.js';

const tok = (sub: string) => () => signDevToken(TEST_SECRET, { sub, ttl: 3600 });

test('60 history() calls at once are paced under the request budget: all answered, no refusal, no close', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  const client = createNodeClient({ url: srv.url, token: tok(newUserId()), pingIntervalMs: 0, backoff: { baseMs: 200, maxMs: 1000 } });
  const disconnects: string[] = [];
  const errors: string[] = [];
  client.on('disconnected', (d) => disconnects.push(`${d.code}/${d.reason}`));
  client.on('error', (e) => errors.push(e.reason));
  try {
    await client.connect();
    const calls = Array.from({ length: 60 }, () => client.history({ peerId: randomUUID(), limit: 1 }));
    const outcomes = await within(Promise.allSettled(calls), 15_000, 'the requests to settle');
    const failed = outcomes.flatMap((o) => (o.status === 'rejected' ? [String((o.reason as { reason?: string }).reason)] : []));
    assert.deepEqual({ failed, disconnects, errors }, { failed: [], disconnects: [], errors: [] });
  } finally {
    client.close();
    await srv.close();
  }
});

test('a replay of 3000 events with the default ack batching is acknowledged without a refusal', { timeout: 90_000 }, async () => {
  const srv = await startServer({
    rateLimit: { burstLimit: 100_000, messagesPerMinute: 1_000_000, messagesPerHour: 1_000_000 },
    limits: { frames: { limit: 100_000, windowMs: 1000 } },
  });
  const reader = newUserId();
  const writer = newUserId();
  // The server's message budget is raised for the backlog: so is the writer's send pacing.
  const w = createNodeClient({ url: srv.url, token: tok(writer), maxInFlightSends: 64, maxPendingSends: 10_000, sendBudget: { limit: 100_000 }, pingIntervalMs: 0 });
  const r = createNodeClient({ url: srv.url, token: tok(reader), pingIntervalMs: 0 });
  const errors: string[] = [];
  const disconnects: string[] = [];
  let got = 0;
  r.on('message', () => got++);
  r.on('error', (e) => errors.push(e.reason));
  r.on('disconnected', (d) => disconnects.push(`${d.code}/${d.reason}`));
  try {
    await w.connect();
    await within(Promise.all(Array.from({ length: 3000 }, (_, i) => w.sendMessage({ recipientId: reader }, `m${i}`))), 60_000, 'the backlog to be written');
    w.close();
    await r.connect();
    await waitFor(() => got >= 3000, 20_000, 'the replay');
    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual({ errors, disconnects }, { errors: [], disconnects: [] });
  } finally {
    w.close();
    r.close();
    await srv.close();
  }
});

test('a device clock 2 h ahead of the issuer: the SDK does not refresh its 1-hour token every second', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  const me = newUserId();
  // The SDK's timers run on a fake clock set 2 h ahead of real time (the issuer's): a minute of
  // device time passes at once, while the socket to the real server works as usual.
  const skewed = new FakeClock();
  await skewed.advance(Date.now() + 2 * 3600_000 - skewed.now());
  let calls = 0;
  const client = createNodeClient({
    url: srv.url,
    token: () => {
      calls++;
      return signDevToken(TEST_SECRET, { sub: me, ttl: 3600 });
    },
    clock: skewed,
    pingIntervalMs: 0,
  });
  const disconnects: number[] = [];
  client.on('disconnected', (d) => disconnects.push(d.code));
  try {
    await client.connect();
    await skewed.advance(60_000);
    assert.deepEqual({ calls, disconnects }, { calls: 1, disconnects: [] }, 'the connect token only, for a minute');
  } finally {
    client.close();
    await srv.close();
  }
});

function bigToken(sub: string, padding: number): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub, exp: Math.floor(Date.now() / 1000) + 3600, pad: 'x'.repeat(padding) })}`;
  return `${head}.${createHmac('sha256', TEST_SECRET).update(head).digest('base64url')}`;
}

test('a token over the pre-auth frame cap (the server closes with 1009 before auth_success) stops the client with token_too_large', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  const me = newUserId();
  const codes: number[] = [];
  const client = createNodeClient({ url: srv.url, token: () => bigToken(me, 9000), backoff: { baseMs: 50, maxMs: 200 }, pingIntervalMs: 0 });
  client.on('disconnected', (d) => codes.push(d.code));
  try {
    const outcome = await within(
      client.connect().then(
        () => 'connected',
        (e: { reason?: string }) => `stopped: ${e.reason}`,
      ),
      5_000,
      'the client to stop',
    ).catch((e: Error) => `${e.message}; closes: ${codes.slice(0, 5).join(',')}… (${codes.length})`);
    assert.equal(outcome, 'stopped: token_too_large');
    assert.deepEqual(codes, [1009], 'one connection, never again');
  } finally {
    client.close();
    await srv.close();
  }
});
