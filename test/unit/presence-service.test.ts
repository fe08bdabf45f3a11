/**
 * PresenceService with an in-memory state and a storage fake whose reads the test holds: checks of
 * one user never overlap, so the last reading is the one published.
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
const USER = '11111111-1111-4111-8111-111111111111';
const CONTACT = '22222222-2222-4222-8222-222222222222';
const KEY = `${T}:${USER}`;

async function turns(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/**
 * A store holding one user's presence setting (visible at first), with CONTACT as their only
 * contact. `whileReading` runs after a check read the setting and before it gets the answer (a
 * test may hold it there): the answer is what was stored when the read began.
 */
function settingsStore(whileReading: () => Promise<void> = async () => {}): Store {
  let visible = true;
  return {
    async presenceSettings(_t: string, ids: string[]) {
      const reading = visible;
      await whileReading();
      return new Map(ids.map((id) => [id, reading]));
    },
    async setPresenceVisible(_t: string, _u: string, v: boolean) {
      visible = v;
    },
    async contactsOf() {
      return [CONTACT];
    },
  } as unknown as Store;
}

test('set_presence while the check of a new session still reads: the hidden state is published last', async () => {
  const held: (() => void)[] = [];
  let holdNext = true;
  const store = settingsStore(async () => {
    if (holdNext) {
      holdNext = false;
      await new Promise<void>((resolve) => held.push(resolve));
    }
  });
  const published: string[] = [];
  const bus = { publish: (_to: string, frame: string) => published.push(frame) } as unknown as Bus;
  const registry = { countUser: async () => 1 } as unknown as ConnectionRegistry;
  const errors: unknown[] = [];
  const service = new PresenceService({ store, bus, registry, state: new MemoryPresenceState(), debounceMs: 0, defaultVisible: true, sweepMs: 0, onError: (e) => errors.push(e) });
  const replies: unknown[] = [];
  const outbox = { sendFrame: (f: unknown) => replies.push(f), send: () => {}, isOpen: true, replyInTimeline: () => {} } as unknown as Outbox;

  service.changed(KEY, true); // a session opened: a check reads the setting (held)
  await turns();
  assert.equal(held.length, 1, 'the first check is reading');
  await service.setVisible({ tenantId: T, userId: USER, role: 'user', expiresAt: Date.now() + 60_000 }, outbox, { type: 'set_presence', visible: false });
  await turns();
  held[0]!();
  await turns();
  await service.close();
  const states = published.map((f) => (JSON.parse(f) as { online: boolean }).online);
  assert.equal(states.at(-1), false, `published ${JSON.stringify(states)}: the user chose to hide`);
  assert.deepEqual(errors, []);
  assert.deepEqual(replies, [{ type: 'presence_updated', visible: false }]);
});

function raceSetup(): { service: PresenceService; state: MemoryPresenceState; published: string[]; errors: unknown[] } {
  // Node A counts 0 sessions (the user's session there closed); node B's new session registers and
  // B's check runs while A has not swapped yet: B sees "online" still published and changes
  // nothing. A then publishes offline. Only A re-counting after its flip can repair that.
  const counts = [0]; // the first count (A's check) reads 0, every later one 1
  const store = {
    async presenceSettings(_t: string, ids: string[]) {
      return new Map(ids.map((id) => [id, true]));
    },
    async contactsOf() {
      return [CONTACT];
    },
  } as unknown as Store;
  const published: string[] = [];
  const bus = { publish: (_to: string, frame: string) => published.push(frame) } as unknown as Bus;
  const registry = { countUser: async () => counts.shift() ?? 1 } as unknown as ConnectionRegistry;
  const state = new MemoryPresenceState();
  const errors: unknown[] = [];
  const service = new PresenceService({ store, bus, registry, state, debounceMs: 0, defaultVisible: true, sweepMs: 0, onError: (e) => errors.push(e) });
  return { service, state, published, errors };
}

const onlineStates = (published: string[]): boolean[] => published.map((f) => (JSON.parse(f) as { online: boolean }).online);

test('a session opened on another node between our count and our swap: counted again after the flip, the user ends online', async () => {
  const { service, state, published, errors } = raceSetup();
  await state.swap(KEY, true); // the user was shown online
  service.changed(KEY, false); // A: its session closed
  // debounceMs 0: each check waits one timer turn; two checks, then the bus frames.
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 0));
    await turns();
  }
  assert.deepEqual(await state.states([KEY]), [true], 'the published state is online again');
  await service.close();
  assert.deepEqual(onlineStates(published), [false, true], 'offline was published from a stale count, then repaired');
  assert.deepEqual(errors, []);
});

test('the same race while the node shuts down: close() runs the repairing check too', async () => {
  const { service, state, published, errors } = raceSetup();
  await state.swap(KEY, true);
  service.changed(KEY, false);
  await service.close(); // runs the pending check at once; its re-check is scheduled during close
  assert.deepEqual(onlineStates(published), [false, true]);
  assert.deepEqual(errors, []);
});

test('set_presence {visible: false} is published at once, not after chat.presenceDebounceMs', async () => {
  const store = settingsStore();
  const published: string[] = [];
  const bus = { publish: (_to: string, frame: string) => published.push(frame) } as unknown as Bus;
  const registry = { countUser: async () => 1 } as unknown as ConnectionRegistry;
  const state = new MemoryPresenceState();
  await state.swap(KEY, true); // shown online
  // A debounce no test waits for: the offline state must not depend on it.
  const service = new PresenceService({ store, bus, registry, state, debounceMs: 3_600_000, defaultVisible: true, sweepMs: 0, onError: (e) => assert.fail(String(e)) });
  const outbox = { sendFrame: () => {}, send: () => {}, isOpen: true, replyInTimeline: () => {} } as unknown as Outbox;
  await service.setVisible({ tenantId: T, userId: USER, role: 'user', expiresAt: Date.now() + 60_000 }, outbox, { type: 'set_presence', visible: false });
  await turns();
  assert.deepEqual(published.map((f) => JSON.parse(f) as unknown), [{ type: 'presence_changed', userId: USER, online: false }]);
  assert.deepEqual(await state.states([KEY]), [false]);
  await service.close();
});
