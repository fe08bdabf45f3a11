/**
 * Two nodes (two PresenceService instances sharing one published state, one store and one
 * registry, as with Redis). Node A's check of the user has read the "visible" setting and not
 * swapped yet when the user's set_presence {visible: false} arrives on node B; B's immediate check
 * finds nothing to change and A then publishes "online". A flip to online reads the setting again,
 * and the user ends hidden (protocol.md §6a: `presence` lists a member "never while hidden").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceService } from '../../src/presence/presence-service.js';
import { MemoryPresenceState } from '../../src/presence/presence-state.js';
import type { Store } from '../../src/store/store.js';
import type { Bus } from '../../src/bus/bus.js';
import type { ConnectionRegistry } from '../../src/limits/limiter.js';
import type { Outbox } from '../../src/chat/chat-service.js';

const T = 'default';
const USER = '33333333-3333-4333-8333-333333333333';
const CONTACT = '44444444-4444-4444-8444-444444444444';
const KEY = `${T}:${USER}`;

async function turns(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

test('set_presence {visible:false} on node B while node A\'s check is mid-flight: the user must end hidden', async () => {
  let visible = true;
  const held: (() => void)[] = [];
  let holdFor: 'A' | undefined = 'A';
  const storeFor = (node: 'A' | 'B'): Store =>
    ({
      async presenceSettings(_t: string, ids: string[]) {
        const reading = visible;
        if (holdFor === node) {
          holdFor = undefined;
          await new Promise<void>((resolve) => held.push(resolve));
        }
        return new Map(ids.map((id) => [id, reading]));
      },
      async setPresenceVisible(_t: string, _u: string, v: boolean) {
        visible = v;
      },
      async contactsOf() {
        return [CONTACT];
      },
    }) as unknown as Store;
  const published: boolean[] = [];
  const bus = { publish: (_to: string, frame: string) => published.push((JSON.parse(frame) as { online: boolean }).online) } as unknown as Bus;
  const registry = { countUser: async () => 1 } as unknown as ConnectionRegistry;
  const state = new MemoryPresenceState(); // the shared (Redis) published state
  const opts = { bus, registry, state, debounceMs: 0, defaultVisible: true, sweepMs: 0, onError: (e: unknown) => assert.fail(String(e)) };
  const a = new PresenceService({ ...opts, store: storeFor('A') });
  const b = new PresenceService({ ...opts, store: storeFor('B') });
  const outbox = { sendFrame: () => {}, send: () => {}, isOpen: true, replyInTimeline: () => {} } as unknown as Outbox;

  a.changed(KEY, true); // a session opened on node A: its check reads the setting (held)
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 0));
    await turns();
  }
  assert.equal(held.length, 1, "node A's check is reading the setting");
  await b.setVisible({ tenantId: T, userId: USER, role: 'user', expiresAt: Date.now() + 60_000 }, outbox, { type: 'set_presence', visible: false });
  await turns();
  held[0]!(); // A's read answers "visible" (read before the change)
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 5));
    await turns();
  }
  const final = (await state.states([KEY]))[0];
  assert.equal(final, false, `the hidden user is published online (frames: ${JSON.stringify(published)})`);
});
