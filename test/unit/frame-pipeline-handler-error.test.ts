/**
 * A handler that throws after a per-user decision that came back from Redis is a bug, and is
 * logged as one (Session.internalError: a security line with the error's class, `internal_error`
 * to the client), as a handler throwing on the synchronous path is. It was answered without a line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createFramePipeline, rateRules } from '../../src/pipeline/frame-pipeline.js';
import { parseConfig } from '../../src/config/load-config.js';
import type { Limiter, RateDecision } from '../../src/limits/limiter.js';
import type { Session } from '../../src/session/session.js';

const fake = <T>(value: object): T => value as unknown as T;

test('a handler that throws after an asynchronous per-user decision reaches Session.internalError', async () => {
  const config = parseConfig({});
  const limiter = fake<Limiter>({
    consume: (key: string) => (key.startsWith('f:') ? { allowed: true } : Promise.resolve<RateDecision>({ allowed: true })),
  });
  const handle = createFramePipeline({
    contentPolicy: config.chat.contentPolicy,
    roles: { roles: config.chat.roles, defaultRole: config.chat.defaultRole },
    rules: rateRules(config),
    limiter,
    chat: fake({
      sendMessage: () => {
        throw new TypeError('a bug');
      },
    }),
    groups: fake({}),
    changes: fake({}),
    presence: fake({}),
    authenticator: fake({}),
    countFrame: () => {},
  });
  const internal: unknown[] = [];
  const sent: unknown[] = [];
  const session = fake<Session>({
    id: 's1',
    userKey: 'default:u',
    deviceId: 'phone',
    ackablePos: 0,
    state: 'active',
    isOpen: true,
    identity: { userId: randomUUID(), tenantId: 'default', role: undefined, expiresAt: Date.now() + 60_000 },
    reject: (r: unknown) => sent.push(r),
    sendFrame: (f: unknown) => sent.push(f),
    internalError: (err: unknown) => internal.push(err),
  });
  await handle(session, Buffer.from(JSON.stringify({ type: 'chat_message', recipientId: randomUUID(), content: 'hi', clientMsgId: 'c1' })), false);
  await new Promise((r) => setImmediate(r));
  assert.equal(internal.length, 1, `sent instead: ${JSON.stringify(sent)}`);
  assert.ok(internal[0] instanceof TypeError);
});
