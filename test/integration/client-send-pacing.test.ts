/**
 * The SDK against a real server's message budget, default limits: an application that sends 50
 * messages at once (under `messagesPerMinute` 60), or a burst of messages then edits and deletes,
 * must get every one stored once, in the order made, without a single `rate_limited`.
 *
 * Why: the server's burst window (`rateLimit.burstLimit` 10 per `burstWindow` 1000 ms, per user)
 * refuses what is over it, every refusal is a strike, and 20 strikes in 10 s close the connection
 * with 4029 and lock the user out for a minute. Refilling `maxInFlightSends` (8) as each send is
 * confirmed went past the window at once and collected strikes until 4029; the SDK paces sends,
 * edits and deletes itself (`sendBudget`, 5 per 1000 ms by default), so its own sending never
 * collects a strike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { RampartClient, type RampartClientOptions } from '../../src/client/rampart-client.js';
import type { WebSocketLike } from '../../src/client/socket.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { startServer, newUserId, TEST_SECRET, within } from '../helpers/harness.js';

const tok = (sub: string) => () => signDevToken(TEST_SECRET, { sub, ttl: 3600 });

/** A client on `ws` sockets that records every refusal the server sends it (`rate_limited`, `error`). */
function recordingClient(options: Omit<RampartClientOptions, 'createSocket'>) {
  const refusals: string[] = [];
  const client = new RampartClient({
    ...options,
    createSocket: (url) => {
      const ws = new WebSocket(url);
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as { type?: string; reason?: string };
        if (f.type === 'rate_limited' || f.type === 'error') refusals.push(`${f.type}/${f.reason}`);
      });
      return ws as unknown as WebSocketLike;
    },
  });
  const disconnects: string[] = [];
  client.on('disconnected', (d) => disconnects.push(`${d.code}/${d.reason}`));
  return { client, refusals, disconnects };
}

/** Settles `promises`, or stops early when the connection drops (4029, then a 60 s penalty). */
async function settledOrDropped<T>(client: RampartClient, promises: Promise<T>[], what: string): Promise<PromiseSettledResult<T>[] | 'dropped'> {
  let dropped!: () => void;
  const drop = new Promise<'dropped'>((r) => (dropped = () => r('dropped')));
  const off = client.on('disconnected', () => dropped());
  try {
    return await within(Promise.race([Promise.allSettled(promises), drop]), 45_000, what);
  } finally {
    off();
  }
}

const reasons = (outcomes: PromiseSettledResult<unknown>[]): string[] => outcomes.flatMap((o) => (o.status === 'rejected' ? [String((o.reason as { reason?: string }).reason)] : []));

test('50 sends at once with default limits: all stored once, in order, without a rate_limited or a close 4029', { timeout: 60_000 }, async () => {
  const srv = await startServer();
  const peer = newUserId();
  const { client, refusals, disconnects } = recordingClient({ url: srv.url, token: tok(newUserId()), pingIntervalMs: 0, backoff: { baseMs: 200, maxMs: 1000 } });
  try {
    await client.connect();
    const sends = Array.from({ length: 50 }, (_, i) => client.sendMessage({ recipientId: peer }, `m${i}`));
    const outcomes = await settledOrDropped(client, sends, 'the sends to settle');
    assert.deepEqual({ disconnects, refusals }, { disconnects: [], refusals: [] }, 'the SDK went past the burst window: refused, struck, closed 4029');
    assert.notEqual(outcomes, 'dropped');
    assert.deepEqual(reasons(outcomes as PromiseSettledResult<unknown>[]), []);
    const receipts = await Promise.all(sends);
    assert.equal(new Set(receipts.map((r) => r.id)).size, 50, 'each stored once');
    const seqs = receipts.map((r) => r.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'stored in the order they were made');
    assert.equal(client.pendingSends, 0);
  } finally {
    client.close();
    await srv.close();
  }
});

test('40 messages, then 10 edits and 5 deletes at once (one message budget): all confirmed, no rate_limited, no close', { timeout: 60_000 }, async () => {
  const srv = await startServer();
  const peer = newUserId();
  const { client, refusals, disconnects } = recordingClient({ url: srv.url, token: tok(newUserId()), pingIntervalMs: 0, backoff: { baseMs: 200, maxMs: 1000 } });
  try {
    await client.connect();
    const sends = Array.from({ length: 40 }, (_, i) => client.sendMessage({ recipientId: peer }, `m${i}`));
    const sent = await settledOrDropped(client, sends, 'the sends to settle');
    assert.deepEqual({ disconnects, refusals }, { disconnects: [], refusals: [] });
    assert.deepEqual(reasons(sent as PromiseSettledResult<unknown>[]), []);
    const ids = (await Promise.all(sends)).map((r) => r.id);
    const changes: Promise<unknown>[] = [...ids.slice(0, 10).map((id, i) => client.editMessage(id, `edit${i}`)), ...ids.slice(10, 15).map((id) => client.deleteMessage(id))];
    const changed = await settledOrDropped(client, changes, 'the changes to settle');
    assert.deepEqual({ disconnects, refusals }, { disconnects: [], refusals: [] }, 'edits and deletes spend the same budget: paced with the sends');
    assert.deepEqual(reasons(changed as PromiseSettledResult<unknown>[]), []);
  } finally {
    client.close();
    await srv.close();
  }
});
