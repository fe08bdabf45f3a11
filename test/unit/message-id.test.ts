import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { messageId } from '../../src/chat/message-id.js';

test('message ids are valid UUIDv7 that sort by creation time', () => {
  const a = messageId(1_700_000_000_000);
  const b = messageId(1_700_000_000_001);
  assert.ok(z.uuid().safeParse(a).success, a);
  assert.equal(a[14], '7');
  assert.match(a[19] as string, /[89ab]/);
  assert.ok(a < b);
  assert.equal(a.slice(0, 13), '018bcfe5-6800');
});

test('ids are unique', () => {
  const seen = new Set(Array.from({ length: 10_000 }, () => messageId(42)));
  assert.equal(seen.size, 10_000);
});
