import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerMatches } from '../../src/server/metrics-endpoint.js';

test('bearerMatches: only `Bearer <exact token>` matches', () => {
  const t = 'scrape-token-0123456789abcdef';
  assert.equal(bearerMatches(`Bearer ${t}`, t), true);
  assert.equal(bearerMatches(`bearer ${t}`, t), true);
  for (const h of [undefined, '', 'Bearer', 'Bearer ', `Basic ${t}`, `Bearer ${t}x`, `Bearer ${t.slice(1)}`, `Bearer ${t} extra`, t]) {
    assert.equal(bearerMatches(h, t), false, String(h));
  }
});
