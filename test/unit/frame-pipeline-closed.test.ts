/**
 * A per-user decision that comes back from Redis after the session closed (a ban, a revocation, an
 * expired token, end_session, all closing it meanwhile) must not act: the message was stored and
 * delivered after the close. An `ack` is the exception: the SDK acks and closes at once, and a
 * dropped ack made the device replay what it had acknowledged. The pipeline is driven with fakes
 * for what it calls; the limiter's answer is held until the session has closed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createFramePipeline, rateRules } from '../../src/pipeline/frame-pipeline.js';
import { parseConfig } from '../../src/config/load-config.js';
import type { Limiter, RateDecision } from '../../src/limits/limiter.js';
import { MemoryLimiter } from '../../src/limits/memory-limiter.js';
import type { Session } from '../../src/session/session.js';

/** A stand-in with only what the pipeline calls on these paths. */
const fake = <T>(value: object): T => value as unknown as T;

test('a frame whose per-user limit answers after its session closed is dropped (nothing sent, stored or run), but an ack, capped at what the stream sent, is written', async () => {
  const config = parseConfig({});
  const answers: Array<(d: RateDecision) => void> = [];
  const limiter = fake<Limiter>({
    // Per-connection frames decide at once; per-user budgets wait for "Redis".
    consume: (key: string) => (key.startsWith('f:') ? { allowed: true } : new Promise<RateDecision>((resolve) => answers.push(resolve))),
  });
  const ran: string[] = [];
  const acks: unknown[][] = [];
  const track = (what: string) => () => {
    ran.push(what);
    return Promise.resolve();
  };
  const handle = createFramePipeline({
    contentPolicy: config.chat.contentPolicy,
    roles: { roles: config.chat.roles, defaultRole: config.chat.defaultRole },
    rules: rateRules(config),
    limiter,
    chat: fake({ sendMessage: track('sendMessage'), history: track('history'), typing: track('typing'), ack: (...args: unknown[]) => Promise.resolve(acks.push(args) > 0) }),
    groups: fake({ change: track('groupChange') }),
    changes: fake({ edit: track('edit'), delete: track('delete') }),
    presence: fake({}),
    authenticator: fake({}),
    countFrame: () => {},
  });
  const replies: unknown[] = [];
  const state = { now: 'active' };
  const session = fake<Session>({
    id: 's1',
    userKey: 'default:u',
    deviceId: 'phone',
    ackablePos: 7,
    get state() {
      return state.now;
    },
    get isOpen() {
      return state.now !== 'closing';
    },
    identity: { userId: randomUUID(), tenantId: 'default', role: undefined, expiresAt: Date.now() + 60_000 },
    reject: (r: unknown) => replies.push(r),
    sendFrame: (f: unknown) => replies.push(f),
  });
  const frames = [
    { type: 'chat_message', recipientId: randomUUID(), content: 'after the ban', clientMsgId: 'c1' },
    { type: 'history', conversationId: randomUUID() },
    { type: 'typing_indicator', recipientId: randomUUID(), isTyping: true },
    { type: 'create_group', name: 'g', memberIds: [] },
    { type: 'ack', upTo: 9 },
  ];
  for (const f of frames) await handle(session, Buffer.from(JSON.stringify(f)), false);
  assert.equal(answers.length, frames.length, 'each waits for its per-user decision');
  // The ack joins the user's acks at once, before the decision: a reconnect's resume point waits for it.
  assert.equal(acks.length, 1);
  state.now = 'closing'; // closed meanwhile
  for (const answer of answers) answer({ allowed: true });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual({ ran, replies }, { ran: [], replies: [] });
  // Unlike the others, the ack still counts: it reports what the device received (the SDK acks, then closes).
  const [user, deviceId, upTo, allowed] = acks[0]!;
  assert.deepEqual([(user as { tenantId: string }).tenantId, deviceId, upTo, await allowed], ['default', 'phone', 7, true]);
});

test('acks handed back at close collapse into the highest one, written once and charged once: a nearly spent budget no longer drops the last', async () => {
  // Two requests left in the user's budget; three acks were queued behind a slow token refresh.
  const config = parseConfig({ limits: { requests: { limit: 2, windowMs: 60_000 } } });
  const acks: Array<{ upTo: number; allowed: boolean }> = [];
  const handle = createFramePipeline({
    contentPolicy: config.chat.contentPolicy,
    roles: { roles: config.chat.roles, defaultRole: config.chat.defaultRole },
    rules: rateRules(config),
    limiter: new MemoryLimiter(),
    chat: fake({
      ack: async (_user: unknown, _device: unknown, upTo: number, allowed: boolean | Promise<boolean>) => {
        acks.push({ upTo, allowed: await allowed });
        return true;
      },
    }),
    groups: fake({}),
    changes: fake({}),
    presence: fake({}),
    authenticator: fake({}),
    countFrame: () => {},
  });
  const session = fake<Session>({
    id: 's1',
    userKey: 'default:u',
    deviceId: 'phone',
    ackablePos: 100,
    state: 'closing',
    isOpen: false,
    identity: { userId: randomUUID(), tenantId: 'default', role: undefined, expiresAt: Date.now() + 60_000 },
    reject: () => {},
    sendFrame: () => {},
  });
  // Session.handBackQueue hands the queue back in one synchronous loop, in the order it came.
  for (const upTo of [30, 90, 60]) void handle(session, Buffer.from(JSON.stringify({ type: 'ack', upTo })), false);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(acks, [{ upTo: 90, allowed: true }]);
  // One request of the budget was spent: a second closing session of the user still gets its ack written.
  const second = fake<Session>({ ...session, id: 's2' });
  void handle(second, Buffer.from(JSON.stringify({ type: 'ack', upTo: 95 })), false);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(acks[1], { upTo: 95, allowed: true });
});
