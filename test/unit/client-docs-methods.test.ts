/**
 * Every method docs/client.md names as `name(` exists on RampartClient: code copied from the guide
 * must type-check and run (the `resync` row once told users to call a `presence()` the client does
 * not have; the request is `getPresence(conversationId)`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createNodeClient } from '../../src/client/node.js';

test('every method the SDK guide names with () exists on RampartClient', () => {
  const guide = readFileSync(new URL('../../docs/client.md', import.meta.url), 'utf8');
  const client = createNodeClient({ url: 'ws://127.0.0.1:1/ws', token: 't' });
  const missing: string[] = [];
  // Methods named as `name()` or `name(args…)` in the guide (constructors and the token callback aside).
  for (const m of guide.matchAll(/`([a-z][A-Za-z]*)\(/g)) {
    const name = m[1]!;
    if (name === 'getToken' || name === 'createNodeClient' || name === 'ws') continue;
    if (typeof Reflect.get(client, name) !== 'function' && !missing.includes(name)) missing.push(name);
  }
  client.close();
  assert.deepEqual(missing, [], `docs/client.md names methods RampartClient does not have: ${missing.join(', ')}`);
});
