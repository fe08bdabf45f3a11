import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TimelinePublisher } from '../../src/chat/timeline-publisher.js';
import { peerKey } from '../../src/chat/authorization.js';
import type { Bus } from '../../src/bus/bus.js';
import type { StoredMessage } from '../../src/store/store.js';

const message: StoredMessage = {
  kind: 'message', id: '018bcfe5-6800-7000-8000-000000000001', tenantId: 't1', conversationId: '11111111-2222-4333-8444-555555555555',
  conversationKind: 'direct', seq: 1, senderId: '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10', content: 'hi', mentions: [], hashtags: [], links: [], timestamp: 1,
};

test('each delivery goes to its user\'s bus key with its own position, in every tenant, also after the key cache starts over', () => {
  const published: [string, string][] = [];
  const bus = { publish: (key: string, frame: string) => void published.push([key, frame]) } as unknown as Bus;
  const publisher = new TimelinePublisher(bus);
  const users = Array.from({ length: 50_010 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
  for (const tenant of ['t1', 't2']) {
    published.length = 0;
    publisher.publish(tenant, message, users.map((userId, i) => ({ userId, pos: i + 1 })));
    assert.equal(published.length, users.length);
    for (const i of [0, 1, 49_999, 50_000, 50_009]) {
      assert.equal(published[i]![0], peerKey(tenant, users[i]!));
      assert.ok(published[i]![1].startsWith(`{"pos":${i + 1},"type":"chat_message"`));
    }
  }
  // The same users again: same keys (from the cache).
  published.length = 0;
  publisher.publish('t1', message, [{ userId: users[7]!, pos: 9 }]);
  assert.deepEqual(published.map(([k]) => k), [peerKey('t1', users[7]!)]);
});
