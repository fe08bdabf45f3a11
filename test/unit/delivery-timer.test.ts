import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeliveryTimer } from '../../src/observability/delivery-timer.js';

function fakeMetrics() {
  const seen = { delivered: 0, latencies: [] as number[] };
  const metrics = {
    countDelivered: () => void seen.delivered++,
    deliveryLatency: { observe: (s: number) => void seen.latencies.push(s) },
  };
  return { seen, metrics: metrics as unknown as ConstructorParameters<typeof DeliveryTimer>[0] };
}

const chat = (pos: number) => `{"pos":${pos},"type":"chat_message","id":"x","content":"{\\"pos\\":1,\\"type\\":\\"chat_message\\""}`;

test('counts timeline chat messages only, by the type right after the position', () => {
  const { seen, metrics } = fakeMetrics();
  const t = new DeliveryTimer(metrics);
  t.written(chat(12345), 2);
  t.written('{"pos":7,"type":"membership","change":"added"}', 1);
  t.written('{"type":"chat_message","note":"no position"}', 1);
  t.written('{"type":"typing_indicator","senderId":"u","isTyping":true}', 1);
  // Content that looks like a chat message is not the frame's type.
  t.written('{"pos":8,"type":"message_edited","content":"\\"type\\":\\"chat_message\\""}', 1);
  t.written(chat(3), 0); // nobody got it
  assert.equal(seen.delivered, 1);
  assert.deepEqual(seen.latencies, []); // nothing was being published
});

test('times a published message to its last local write, once, and nothing outside the bracket', () => {
  const { seen, metrics } = fakeMetrics();
  const t = new DeliveryTimer(metrics);
  const receivedAt = performance.now();
  t.publishing(receivedAt);
  t.written(chat(1), 1);
  t.written(chat(2), 1);
  t.published();
  assert.equal(seen.delivered, 2);
  assert.equal(seen.latencies.length, 1);
  assert.ok(seen.latencies[0]! >= 0 && seen.latencies[0]! < 60, String(seen.latencies[0]));
  // A frame from another node after the bracket: counted, not timed.
  t.written(chat(3), 1);
  t.publishing(performance.now());
  t.published(); // no local session: no observation
  assert.equal(seen.delivered, 3);
  assert.equal(seen.latencies.length, 1);
});
