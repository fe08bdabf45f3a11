import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommittedCache } from '../../src/store/committed-cache.js';

test('a read loads once per version; a moved version (another connection committed) loads again', () => {
  const cache = new CommittedCache<number, string>(10);
  let loads = 0;
  const load = () => `v${++loads}`;
  assert.equal(cache.read(1, 7, load), 'v1');
  assert.equal(cache.read(1, 7, load), 'v1');
  assert.equal(cache.read(2, 7, load), 'v2');
  assert.equal(cache.peek(7), 'v2');
  cache.set(7, 'mine');
  assert.equal(cache.read(2, 7, load), 'mine', 'a value set after the read is kept while the version holds');
  cache.clear();
  assert.equal(cache.peek(7), undefined);
  assert.equal(cache.read(2, 7, load), 'v3', 'after clear() the next read loads, whatever the version');
});

test('at its bound it starts over (memory only); replacing a held key does not', () => {
  const cache = new CommittedCache<number, number>(2);
  cache.set(1, 1);
  cache.set(2, 2);
  cache.set(2, 22);
  assert.deepEqual([cache.peek(1), cache.peek(2)], [1, 22]);
  cache.set(3, 3);
  assert.deepEqual([cache.peek(1), cache.peek(2), cache.peek(3)], [undefined, undefined, 3]);
});

test('weighed entries: the bound counts what they hold, so a few large values start it over as many small ones do', () => {
  const cache = new CommittedCache<number, readonly string[]>(10, (members) => members.length);
  cache.read(1, 1, () => ['a', 'b', 'c', 'd']);
  cache.read(1, 2, () => ['e', 'f', 'g', 'h']);
  assert.equal(cache.weight, 8);
  cache.set(1, ['a']); // replacing a value re-weighs it
  assert.equal(cache.weight, 5);
  cache.read(1, 3, () => ['i', 'j', 'k', 'l', 'm', 'n']); // 5 + 6 > 10: starts over first
  assert.equal(cache.weight, 6);
  assert.equal(cache.peek(1), undefined);
  assert.deepEqual(cache.peek(3), ['i', 'j', 'k', 'l', 'm', 'n']);
  cache.delete(3);
  assert.equal(cache.weight, 0);
  cache.read(1, 4, () => []); // an empty list still counts one
  assert.equal(cache.weight, 1);
  cache.read(2, 5, () => ['x']); // another connection committed: everything goes
  assert.equal(cache.weight, 1);
  assert.equal(cache.peek(4), undefined);
});
