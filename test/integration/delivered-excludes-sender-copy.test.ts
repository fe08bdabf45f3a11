/**
 * `rampart_messages_delivered_total` counts chat messages written live to a session of their
 * recipient, and `rampart_delivery_latency_seconds` times them (docs/protocol.md §10); the sender's
 * own timeline copy (for its other devices) is neither. It used to be both: a message to an
 * offline recipient counted as delivered, timed to the sender's own copy.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { authedClient, closeAll, newUserId, startServer, type TestServer } from '../helpers/harness.js';

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function counter(srv: TestServer, name: string): Promise<number> {
  const json = await srv.server.metrics.registry.getMetricsAsJSON();
  const metric = json.find((m) => m.name === name);
  if (metric === undefined) return 0;
  const values = metric.values as { value: number; metricName?: string }[];
  const sample = values.find((v) => v.metricName === undefined || v.metricName === name);
  return sample?.value ?? 0;
}

async function latencyCount(srv: TestServer): Promise<number> {
  const json = await srv.server.metrics.registry.getMetricsAsJSON();
  const metric = json.find((m) => m.name === 'rampart_delivery_latency_seconds');
  const values = (metric?.values ?? []) as { value: number; metricName?: string }[];
  return values.find((v) => v.metricName === 'rampart_delivery_latency_seconds_count')?.value ?? 0;
}

test('a message to an offline recipient is not counted as delivered, nor timed', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  servers.push(srv);
  const alice = await authedClient(srv.url);
  const bob = newUserId(); // never connects

  const deliveredBefore = await counter(srv, 'rampart_messages_delivered_total');
  const storedBefore = await counter(srv, 'rampart_messages_stored_total');
  const timedBefore = await latencyCount(srv);

  alice.send({ type: 'chat_message', recipientId: bob, content: 'are you there?', clientMsgId: 'offline-1' });
  await alice.nextOfType('message_sent');
  await new Promise((r) => setTimeout(r, 100));
  // Alice's single session got message_sent only: no chat_message was written anywhere.
  assert.equal(alice.frames.filter((f) => f.type === 'chat_message').length, 0);

  assert.equal((await counter(srv, 'rampart_messages_stored_total')) - storedBefore, 1, 'stored once');
  assert.equal(
    (await counter(srv, 'rampart_messages_delivered_total')) - deliveredBefore,
    0,
    'rampart_messages_delivered_total counted a message that reached no session of its recipient',
  );
  assert.equal((await latencyCount(srv)) - timedBefore, 0, 'rampart_delivery_latency_seconds timed a message with no local recipient');
  await closeAll(alice);
});

test("the sender's other device gets its copy, but only the recipient's counts as a delivery", { timeout: 30_000 }, async () => {
  const srv = await startServer();
  servers.push(srv);
  const alice = await authedClient(srv.url);
  const aliceOther = await authedClient(srv.url, alice.userId);
  const bob = await authedClient(srv.url);

  const deliveredBefore = await counter(srv, 'rampart_messages_delivered_total');
  const timedBefore = await latencyCount(srv);

  alice.send({ type: 'chat_message', recipientId: bob.userId, content: 'hello', clientMsgId: 'online-1' });
  await alice.nextOfType('message_sent');
  await aliceOther.nextOfType('chat_message');
  await bob.nextOfType('chat_message');

  assert.equal((await counter(srv, 'rampart_messages_delivered_total')) - deliveredBefore, 1, "the recipient's copy only");
  assert.equal((await latencyCount(srv)) - timedBefore, 1, 'one observation for the message');
  await closeAll(alice, aliceOther, bob);
});
