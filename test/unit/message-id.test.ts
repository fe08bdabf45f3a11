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

test('the time part is the 48-bit millisecond timestamp, as hex, at every magnitude', () => {
  for (const ms of [0, 1, 255, 256, 2 ** 24 - 1, 2 ** 32 - 1, 2 ** 32, 1_700_000_000_000, 1_799_999_999_999, 2 ** 40 + 12345, 2 ** 48 - 1]) {
    const hex = ms.toString(16).padStart(12, '0');
    const id = messageId(ms);
    assert.equal(id.slice(0, 8) + id.slice(9, 13), hex, `${ms} → ${id}`);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
});

test('every random digit takes all sixteen values and the variant all four', () => {
  // 5,000 ids: a position stuck on some digits (a wrong shift or mask) shows as a missing value.
  const seen = Array.from({ length: 36 }, () => new Set<string>());
  for (let i = 0; i < 5_000; i++) {
    const id = messageId(1_700_000_000_000);
    for (let p = 0; p < 36; p++) seen[p]!.add(id[p]!);
  }
  for (const p of [15, 16, 17, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35]) assert.equal(seen[p]!.size, 16, `position ${p}`);
  assert.deepEqual([...seen[19]!].sort(), ['8', '9', 'a', 'b']);
  assert.deepEqual([...seen[14]!], ['7']);
});

test('a time outside 0 … 2^48 − 1 ms is refused, not wrapped into a valid-looking id', () => {
  for (const bad of [-1, 2 ** 48, 2 ** 48 + 5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    assert.throws(() => messageId(bad), RangeError, String(bad));
  }
  assert.equal(messageId(1_700_000_000_000.9).slice(0, 13), '018bcfe5-6800', 'fractions are dropped');
});
