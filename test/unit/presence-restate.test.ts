/**
 * A flip's publisher restates the published state while it moves, with a read after every frame:
 * another node that keeps flipping the user (hiding them between reads) never leaves a contact
 * with a stale "online" for a hidden user. Deterministic: the other node's flips happen inside A's
 * state reads (as while a Redis reply is in flight).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceService } from '../../src/presence/presence-service.js';
import { MemoryPresenceState } from '../../src/presence/presence-state.js';
import type { Store } from '../../src/store/store.js';
import type { Bus } from '../../src/bus/bus.js';
import type { ConnectionRegistry } from '../../src/limits/limiter.js';

const T = 'default';
const USER = '33333333-3333-4333-8333-333333333333';
const CONTACT = '44444444-4444-4444-8444-444444444444';
const KEY = `${T}:${USER}`;

async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(done(), what);
}

test('a hidden user is not left shown online by the restate loop\'s last round', async () => {
  let visible = true;
  let sessions = 0;
  const store = {
    async presenceSettings(_t: string, ids: string[]) {
      return new Map(ids.map((id) => [id, visible]));
    },
    async contactsOf() {
      return [CONTACT];
    },
  } as unknown as Store;
  const published: boolean[] = [];
  const bus = { publish: (_to: string, frame: string) => void published.push((JSON.parse(frame) as { online: boolean }).online) } as unknown as Bus;
  const registry = { countUser: async () => sessions } as unknown as ConnectionRegistry;
  const inner = new MemoryPresenceState();
  await inner.swap(KEY, true);
  // Node B, as its check would: swap, then (its contacts read done) publish.
  const nodeB = async (online: boolean): Promise<void> => {
    if (await inner.swap(KEY, online)) published.push(online);
  };
  let reads = 0;
  const state = Object.assign(Object.create(inner) as MemoryPresenceState, {
    swap: (k: string, o: boolean) => inner.swap(k, o),
    async states(keys: readonly string[]): Promise<boolean[]> {
      reads++;
      // What node B does while A's read of the published state is under way.
      if (reads === 1) { sessions = 1; await nodeB(true); } // the user opens a session on B
      if (reads === 2) { visible = false; await nodeB(false); } // hides on B
      if (reads === 3) { visible = true; await nodeB(true); } // un-hides on B
      const out = await inner.states(keys);
      if (reads === 3) { visible = false; await nodeB(false); } // hides again on B; the reply to A's read is already on its way
      return out;
    },
    track() {},
    async sweep() { return []; },
    async rejoin() { return false; },
    due() { return []; },
    holds() { return false; },
    releaseHeld() { return []; },
    async close() {},
  });
  const a = new PresenceService({ bus, registry, state, store, debounceMs: 0, defaultVisible: true, sweepMs: 0, onError: (e: unknown) => assert.fail(String(e)) });
  try {
    a.changed(KEY, false); // the user's last session on A closed
    await until(() => reads >= 3 && published.length >= 8, 'the flips were published');
    // Let A's follow-up check (it saw the session count move) run to the end.
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(await inner.states([KEY]), [false], 'published state: hidden');
    assert.equal(visible, false);
    assert.equal(published.at(-1), false, `the contact's frames, in order: ${JSON.stringify(published)} — the last one shows a hidden user online`);
  } finally {
    await a.close();
  }
});
