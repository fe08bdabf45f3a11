/**
 * PresenceService.shared() (a sender's first message in a conversation) tells its members the
 * sender is online. It waits for storage in between; a check flipping the user offline (last
 * session closed, or set_presence {visible: false}) at that moment must not leave the members with
 * a stale "online" as the last word: shared() runs in the user's line with the checks.
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
const USER = '55555555-5555-4555-8555-555555555555';
const MEMBER = '66666666-6666-4666-8666-666666666666';
const CONV = '77777777-7777-4777-8777-777777777777';
const KEY = `${T}:${USER}`;

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 2));
    for (let j = 0; j < 10; j++) await new Promise((r) => setImmediate(r));
  }
}

function setup() {
  let visible = true;
  let sessions = 1;
  const held: (() => void)[] = [];
  let holdAudience = false;
  const store = {
    async presenceSettings(_t: string, ids: string[]) {
      return new Map(ids.map((id) => [id, visible]));
    },
    async setPresenceVisible(_t: string, _u: string, v: boolean) {
      visible = v;
    },
    async contactsOf() {
      return [MEMBER]; // after the first write, MEMBER is a contact
    },
    async audienceOf() {
      if (holdAudience) {
        holdAudience = false;
        await new Promise<void>((resolve) => held.push(resolve));
      }
      return { members: [USER, MEMBER], sharing: [USER] };
    },
  } as unknown as Store;
  const toMember: boolean[] = [];
  const bus = {
    publish: (to: string, frame: string) => {
      if (to === `${T}:${MEMBER}`) toMember.push((JSON.parse(frame) as { online: boolean }).online);
    },
  } as unknown as Bus;
  const registry = { countUser: async () => sessions } as unknown as ConnectionRegistry;
  const state = new MemoryPresenceState();
  const errors: unknown[] = [];
  const service = new PresenceService({ store, bus, registry, state, debounceMs: 0, defaultVisible: true, sweepMs: 0, onError: (e) => errors.push(e) });
  return {
    service,
    state,
    toMember,
    errors,
    held,
    hold: () => (holdAudience = true),
    setSessions: (n: number) => (sessions = n),
  };
}

test('shared() racing the last session closing: the member ends with "offline"', async () => {
  const s = setup();
  s.service.changed(KEY, true);
  await settle();
  assert.equal((await s.state.states([KEY]))[0], true);
  s.toMember.length = 0;

  s.hold();
  const sharing = s.service.shared(T, USER, CONV); // first write: read "online", now reading members
  await settle();
  assert.equal(s.held.length, 1);
  s.setSessions(0);
  s.service.changed(KEY, false); // the user's last session closes meanwhile
  await settle();
  s.held[0]!();
  await sharing;
  await settle();
  assert.equal((await s.state.states([KEY]))[0], false);
  assert.equal(s.toMember.at(-1), false, `the member's last presence_changed must say offline (frames: ${JSON.stringify(s.toMember)})`);
  await s.service.close();
});

test('shared() racing set_presence {visible: false}: the hidden user is not announced online last', async () => {
  const s = setup();
  s.service.changed(KEY, true);
  await settle();
  s.toMember.length = 0;

  s.hold();
  const sharing = s.service.shared(T, USER, CONV);
  await settle();
  const outbox = { sendFrame: () => {}, send: () => {}, isOpen: true, replyInTimeline: () => {} } as unknown as Outbox;
  await s.service.setVisible({ tenantId: T, userId: USER, role: 'user', expiresAt: Date.now() + 60_000 }, outbox, { type: 'set_presence', visible: false });
  await settle();
  s.held[0]!();
  await sharing;
  await settle();
  assert.equal((await s.state.states([KEY]))[0], false);
  assert.equal(s.toMember.at(-1), false, `the hidden user's last frame to the member must say offline (frames: ${JSON.stringify(s.toMember)})`);
  await s.service.close();
});
