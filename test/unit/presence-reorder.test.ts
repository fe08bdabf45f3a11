/**
 * Two nodes (two PresenceService instances sharing one published state, as with Redis) flip one
 * user at nearly the same time. Node A flips the user offline (their last session there closed)
 * and is slow to read the contacts; meanwhile the user's session opens on node B, which flips them
 * online and publishes first. A's "offline" goes out last — and would stand, but a flip's
 * publisher reads the published state again after its frame and restates it while it moved
 * (protocol.md §6a: online while holding a session on any node). Deterministic: A's contacts read
 * is held until B has published.
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

/** Resolves once `done()` holds, letting timers (debounce 0) and promises run in between. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(done(), what);
}

test('a late "offline" from one node is restated as "online" when another node flipped the user back meanwhile', async () => {
  const held: (() => void)[] = [];
  let holdNext = true;
  const storeFor = (hold: boolean): Store =>
    ({
      async presenceSettings(_t: string, ids: string[]) {
        return new Map(ids.map((id) => [id, true]));
      },
      async contactsOf() {
        if (hold && holdNext) {
          holdNext = false;
          await new Promise<void>((resolve) => held.push(resolve));
        }
        return [CONTACT];
      },
    }) as unknown as Store;
  const published: boolean[] = [];
  const bus = { publish: (_to: string, frame: string) => void published.push((JSON.parse(frame) as { online: boolean }).online) } as unknown as Bus;
  let sessions = 0; // the cluster-wide count (the connection registry)
  const registry = { countUser: async () => sessions } as unknown as ConnectionRegistry;
  const state = new MemoryPresenceState();
  await state.swap(KEY, true); // shown online: the user's session was on node A
  const opts = { bus, registry, state, debounceMs: 0, defaultVisible: true, sweepMs: 0, onError: (e: unknown) => assert.fail(String(e)) };
  const a = new PresenceService({ ...opts, store: storeFor(true) });
  const b = new PresenceService({ ...opts, store: storeFor(false) });
  try {
    a.changed(KEY, false); // the last session on A closed: A flips the user offline, then reads the contacts (held)
    await until(() => held.length === 1, "node A's check holds the contacts read");
    assert.deepEqual(await state.states([KEY]), [false]);
    sessions = 1;
    b.changed(KEY, true); // the user comes back on node B: B flips them online and publishes first
    await until(() => published.length === 1, 'node B published');
    assert.deepEqual(published, [true]);
    held[0]!(); // A's read answers: its "offline" goes out last …
    await until(() => published.length >= 3, "node A's frame and its restatement");
    assert.deepEqual(published, [true, false, true], '… and is restated: the contact ends with "online"');
    assert.deepEqual(await state.states([KEY]), [true]);
  } finally {
    await a.close();
    await b.close();
  }
});
