import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalBus } from '../../src/bus/local-bus.js';
import { openBus } from '../../src/bus/open-bus.js';

function recorder(bus: LocalBus): Array<[string, string]> {
  const got: Array<[string, string]> = [];
  bus.onFrame((userId, frame) => got.push([userId, frame]));
  return got;
}

test('delivers synchronously, only to subscribed users', () => {
  const bus = new LocalBus();
  const got = recorder(bus);
  bus.subscribe('alice');
  bus.publish('alice', 'f1');
  assert.deepEqual(got, [['alice', 'f1']], 'delivered before publish returned');
  bus.publish('bob', 'f2');
  assert.deepEqual(got, [['alice', 'f1']]);
});

test('unsubscribe stops delivery; subscription is a set, not a count', () => {
  const bus = new LocalBus();
  const got = recorder(bus);
  bus.subscribe('alice');
  bus.subscribe('alice');
  bus.unsubscribe('alice');
  bus.publish('alice', 'f');
  assert.deepEqual(got, []);
  bus.unsubscribe('nobody'); // harmless
});

test('publish before any handler is installed is a no-op', () => {
  const bus = new LocalBus();
  bus.subscribe('alice');
  assert.doesNotThrow(() => bus.publish('alice', 'f'));
});

test('frames keep their order', () => {
  const bus = new LocalBus();
  const got = recorder(bus);
  bus.subscribe('u');
  for (let i = 0; i < 1000; i++) bus.publish('u', String(i));
  assert.deepEqual(
    got.map(([, f]) => f),
    Array.from({ length: 1000 }, (_, i) => String(i)),
  );
});

test('after close nothing is delivered and subscribe is ignored', async () => {
  const bus = new LocalBus();
  const got = recorder(bus);
  bus.subscribe('alice');
  await bus.close();
  bus.publish('alice', 'f');
  bus.subscribe('alice');
  bus.publish('alice', 'f');
  assert.deepEqual(got, []);
});

test('openBus without redisUrl gives a LocalBus', async () => {
  const bus = await openBus({ channelPrefix: 'x:', nodeId: 'n1' });
  assert.ok(bus instanceof LocalBus);
  await bus.close();
  const empty = await openBus({ redisUrl: '', channelPrefix: 'x:', nodeId: 'n1' });
  assert.ok(empty instanceof LocalBus);
  await empty.close();
});

test('onResync: in-process delivery never loses a frame, so the handler is never called', async () => {
  const bus = new LocalBus();
  let resyncs = 0;
  bus.onResync(() => resyncs++);
  const got = recorder(bus);
  bus.subscribe('alice');
  for (let i = 0; i < 10; i++) bus.publish('alice', `{"pos":${i + 1},"type":"chat_message"}`);
  bus.unsubscribe('alice');
  bus.subscribe('alice');
  await bus.close();
  assert.equal(resyncs, 0);
  assert.equal(got.length, 10);
});

test('timeline frames are passed through byte for byte, in publish order, per user', () => {
  const bus = new LocalBus();
  const got = recorder(bus);
  bus.subscribe('a');
  bus.subscribe('b');
  const frames = ['{"pos":2,"type":"chat_message","content":"x\\n"}', '{"pos":1,"type":"membership"}'];
  bus.publish('a', frames[0]!);
  bus.publish('b', frames[1]!);
  bus.publish('a', frames[1]!);
  assert.deepEqual(got, [['a', frames[0]], ['b', frames[1]], ['a', frames[1]]]);
});
