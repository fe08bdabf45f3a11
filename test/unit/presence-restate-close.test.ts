/**
 * The presence restatement that looks again on a later turn never runs once close() began: nothing
 * is published on a closed state, and close() waits for what it started.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceService } from '../../src/presence/presence-service.js';
import type { Store } from '../../src/store/store.js';
import type { Bus } from '../../src/bus/bus.js';
import type { ConnectionRegistry } from '../../src/limits/limiter.js';
import type { PresenceState } from '../../src/presence/presence-state.js';

const T = 'default';
const USER = '33333333-3333-4333-8333-333333333333';
const CONTACT = '44444444-4444-4444-8444-444444444444';
const KEY = `${T}:${USER}`;
const turn = () => new Promise<void>((r) => setImmediate(r));

test('presence: once close() resolved, the restate loop neither reads the closed state nor publishes', async () => {
  const store = {
    async presenceSettings(_t: string, ids: string[]) { return new Map(ids.map((id) => [id, true])); },
    async contactsOf() { return [CONTACT]; },
  } as unknown as Store;
  let stateClosed = false;
  let publishedAfterClose = 0;
  let readsAfterClose = 0;
  let reads = 0;
  const bus = { publish: () => { if (stateClosed) publishedAfterClose++; } } as unknown as Bus;
  const registry = { countUser: async () => 0 } as unknown as ConnectionRegistry;
  let flip = false;
  // Another node flipping the user at every read (the published state always moved since our frame).
  const state = {
    async swap() { return true; },
    async states() {
      reads++;
      if (stateClosed) readsAfterClose++;
      await turn();
      flip = !flip;
      return [flip];
    },
    track() {},
    async sweep() { return []; },
    async rejoin() { return false; },
    due() { return []; },
    holds() { return false; },
    releaseHeld() { return []; },
    async close() { stateClosed = true; },
  } as unknown as PresenceState;
  const errors: unknown[] = [];
  const a = new PresenceService({ bus, registry, state, store, debounceMs: 0, defaultVisible: true, sweepMs: 0, onError: (e: unknown) => void errors.push(e) });
  a.changed(KEY, false);
  for (let i = 0; i < 1000 && reads < 5; i++) await turn();
  assert.ok(reads >= 5, 'the restate loop went on to a later turn');
  await a.close();
  const readsAtClose = reads;
  for (let i = 0; i < 50; i++) await turn();
  assert.equal(readsAfterClose, 0, `${readsAfterClose} read(s) of the published state after state.close()`);
  assert.equal(publishedAfterClose, 0, `${publishedAfterClose} presence frame(s) published after close()`);
  assert.equal(reads, readsAtClose, 'the loop kept reading after close() resolved');
  assert.deepEqual(errors, []);
});

test('presence: close() called while the check is in flight (the restate loop moved to a later turn): the restate loop neither reads the closed state nor publishes', async () => {
  const store = {
    async presenceSettings(_t: string, ids: string[]) { return new Map(ids.map((id) => [id, true])); },
    async contactsOf() { return [CONTACT]; },
  } as unknown as Store;
  let stateClosed = false;
  let publishedAfterClose = 0;
  let readsAfterClose = 0;
  let reads = 0;
  const bus = { publish: () => { if (stateClosed) publishedAfterClose++; } } as unknown as Bus;
  const registry = { countUser: async () => { await turn(); return 0; } } as unknown as ConnectionRegistry;
  let flip = false;
  let closing: Promise<void> | undefined;
  // Another node flipping the user at every read (the published state always moved since our frame).
  const state = {
    async swap() { return true; },
    async states() {
      reads++;
      if (reads === 3) queueMicrotask(() => void (closing = a.close()));
      if (stateClosed) readsAfterClose++;
      await turn();
      flip = !flip;
      return [flip];
    },
    track() {},
    async sweep() { return []; },
    async rejoin() { return false; },
    due() { return []; },
    holds() { return false; },
    releaseHeld() { return []; },
    async close() { stateClosed = true; },
  } as unknown as PresenceState;
  const errors: unknown[] = [];
  const a = new PresenceService({ bus, registry, state, store, debounceMs: 0, defaultVisible: true, sweepMs: 0, onError: (e: unknown) => void errors.push(e) });
  a.changed(KEY, false);
  for (let i = 0; i < 1000 && closing === undefined; i++) await turn();
  await closing;
  const readsAtClose = reads;
  for (let i = 0; i < 50; i++) await turn();
  assert.equal(readsAfterClose, 0, `${readsAfterClose} read(s) of the published state after state.close()`);
  assert.equal(publishedAfterClose, 0, `${publishedAfterClose} presence frame(s) published after close()`);
  assert.equal(reads, readsAtClose, 'the loop kept reading after close() resolved');
  assert.deepEqual(errors, []);
});
