import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWireUuid } from '../../src/protocol/bounds.js';
import { z } from 'zod';
import fc from 'fast-check';
import { validateFrame } from '../../src/pipeline/validate-frame.js';
import { plainChatMessage } from '../../src/protocol/plain-chat-message.js';
import { ClientFrame } from '../../src/protocol/client-frames.js';

const U1 = '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10';
const U2 = '0b8a3b1e-6d7c-4f2a-8e1b-3c4d5e6f7a8b';
const MARKER = 'MARKER-7f3a9c';

function ok(value: Record<string, unknown>): void {
  const r = validateFrame(value);
  assert.equal(r.ok, true, JSON.stringify(value) + ' → ' + JSON.stringify(r));
  if (r.ok) assert.deepEqual(r.frame, value);
}

function failed(value: Record<string, unknown>, paths?: string[]): { path: string; rule: string }[] {
  const r = validateFrame(value);
  assert.equal(r.ok, false, JSON.stringify(value));
  if (r.ok || r.reason !== 'validation_failed') assert.fail(`expected validation_failed, got ${JSON.stringify(r)}`);
  for (const d of r.details) {
    assert.equal(typeof d.path, 'string');
    assert.match(d.rule, /^[a-z_]+$/);
  }
  if (paths) assert.deepEqual([...new Set(r.details.map((d) => d.path))].sort(), [...paths].sort(), JSON.stringify(value));
  return r.details;
}

const longString = (n: number) => 'x'.repeat(n);

const C1 = '11111111-2222-4333-8444-555555555555';

test('auth', () => {
  ok({ type: 'auth', token: 'a.b.c' });
  ok({ type: 'auth', token: 'a.b.c', deviceId: 'phone-1', after: 0 });
  ok({ type: 'auth', token: 'a.b.c', deviceId: longString(64) });
  ok({ type: 'auth', token: 'a.b.c', after: Number.MAX_SAFE_INTEGER });
  ok({ type: 'auth', token: 'a.b.c', deviceId: '!~' });
  failed({ type: 'auth' }, ['token']);
  failed({ type: 'auth', token: '' }, ['token']);
  failed({ type: 'auth', token: 42 }, ['token']);
  failed({ type: 'auth', token: ['a'] }, ['token']);
  failed({ type: 'auth', token: 't', deviceId: '' }, ['deviceId']);
  failed({ type: 'auth', token: 't', deviceId: longString(65) }, ['deviceId']);
  failed({ type: 'auth', token: 't', deviceId: 'my phone' }, ['deviceId']);
  failed({ type: 'auth', token: 't', deviceId: 'tab\t' }, ['deviceId']);
  failed({ type: 'auth', token: 't', deviceId: 'é' }, ['deviceId']);
  failed({ type: 'auth', token: 't', deviceId: 7 }, ['deviceId']);
  failed({ type: 'auth', token: 't', after: -1 }, ['after']);
  failed({ type: 'auth', token: 't', after: 1.5 }, ['after']);
  failed({ type: 'auth', token: 't', after: '3' }, ['after']);
  failed({ type: 'auth', token: 't', after: Number.MAX_SAFE_INTEGER + 1 }, ['after']);
  failed({ type: 'auth', token: 't', after: Infinity }, ['after']);
  failed({ type: 'auth', token: 't', after: NaN }, ['after']);
  failed({ type: 'auth', token: 't', after: null }, ['after']);
});

test('chat_message', () => {
  ok({ type: 'chat_message', recipientId: U1, content: 'hi' });
  ok({ type: 'chat_message', recipientId: U1, content: longString(5000) });
  ok({
    type: 'chat_message',
    recipientId: U1,
    content: 'hi',
    replyTo: U2,
    clientMsgId: 'c-1',
    attachments: [
      { type: 'image', url: 'https://cdn.example.com/a.png', name: 'a.png' },
      { type: 'file', url: 'http://example.com/f', name: longString(255) },
      { type: 'audio', url: 'https://example.com/x.ogg', name: 'x' },
    ],
  });
  ok({ type: 'chat_message', recipientId: U1, content: 'x', attachments: Array.from({ length: 10 }, () => ({ type: 'file', url: 'https://e.com/f', name: 'f' })) });
  // v2: a conversation instead of a recipient; exactly one of the two.
  ok({ type: 'chat_message', conversationId: C1, content: 'hi' });
  ok({ type: 'chat_message', conversationId: C1, content: 'hi', clientMsgId: 'c-2', replyTo: U2 });
  failed({ type: 'chat_message', content: 'hi' }, ['recipientId']);
  failed({ type: 'chat_message', recipientId: U1, conversationId: C1, content: 'hi' }, ['recipientId']);
  failed({ type: 'chat_message', conversationId: 'not-a-uuid', content: 'hi' }, ['conversationId']);
  failed({ type: 'chat_message', conversationId: C1, content: longString(5001) }, ['content']);
  failed({ type: 'chat_message', conversationId: C1 }, ['content']);
  failed({ type: 'chat_message', conversationId: null, recipientId: U1, content: 'hi' }, ['conversationId']);
  failed({ type: 'chat_message', recipientId: 'not-a-uuid', content: 'hi' }, ['recipientId']);
  failed({ type: 'chat_message', recipientId: U1 }, ['content']);
  failed({ type: 'chat_message', recipientId: U1, content: '' }, ['content']);
  failed({ type: 'chat_message', recipientId: U1, content: longString(5001) }, ['content']);
  failed({ type: 'chat_message', recipientId: U1, content: 5 }, ['content']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', replyTo: 'nope' }, ['replyTo']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', clientMsgId: '' }, ['clientMsgId']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', clientMsgId: longString(65) }, ['clientMsgId']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', clientMsgId: 'has space' }, ['clientMsgId']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: Array.from({ length: 11 }, () => ({ type: 'file', url: 'https://e.com/f', name: 'f' })) }, ['attachments']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: [{ type: 'video', url: 'https://e.com/f', name: 'f' }] }, ['attachments.0.type']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: [{ type: 'file', url: 'javascript:alert(1)', name: 'f' }] }, ['attachments.0.url']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: [{ type: 'file', url: 'ftp://e.com/f', name: 'f' }] }, ['attachments.0.url']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: [{ type: 'file', url: 'https://e.com/f', name: '' }] }, ['attachments.0.name']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: [{ type: 'file', url: 'https://e.com/f', name: longString(256) }] }, ['attachments.0.name']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: [{ type: 'file', url: 'https://e.com/f', name: 'f', size: 1 }] }, ['attachments.0']);
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: {} }, ['attachments']);
});

test('typing_indicator', () => {
  ok({ type: 'typing_indicator', recipientId: U1, isTyping: true });
  ok({ type: 'typing_indicator', recipientId: U1, isTyping: false });
  failed({ type: 'typing_indicator', recipientId: U1 }, ['isTyping']);
  failed({ type: 'typing_indicator', recipientId: U1, isTyping: 'true' }, ['isTyping']);
  failed({ type: 'typing_indicator', recipientId: 'x', isTyping: true }, ['recipientId']);
  ok({ type: 'typing_indicator', conversationId: C1, isTyping: true });
  failed({ type: 'typing_indicator', isTyping: true }, ['recipientId']);
  failed({ type: 'typing_indicator', recipientId: U1, conversationId: C1, isTyping: true }, ['recipientId']);
  failed({ type: 'typing_indicator', conversationId: 'x', isTyping: true }, ['conversationId']);
});

test('ack {upTo}: a timeline position; the v1 messageIds form is gone', () => {
  ok({ type: 'ack', upTo: 0 });
  ok({ type: 'ack', upTo: 1 });
  ok({ type: 'ack', upTo: Number.MAX_SAFE_INTEGER });
  failed({ type: 'ack' }, ['upTo']);
  failed({ type: 'ack', upTo: -1 }, ['upTo']);
  failed({ type: 'ack', upTo: 2.5 }, ['upTo']);
  failed({ type: 'ack', upTo: '5' }, ['upTo']);
  failed({ type: 'ack', upTo: [5] }, ['upTo']);
  failed({ type: 'ack', upTo: null }, ['upTo']);
  failed({ type: 'ack', upTo: Number.MAX_SAFE_INTEGER + 2 }, ['upTo']);
  failed({ type: 'ack', upTo: Infinity }, ['upTo']);
  failed({ type: 'ack', messageIds: [U1] }, ['', 'upTo']);
  failed({ type: 'ack', upTo: 1, messageIds: [U1] }, ['']);
});

test('history', () => {
  ok({ type: 'history', peerId: U1 });
  ok({ type: 'history', peerId: U1, before: U2, limit: 100 });
  ok({ type: 'history', peerId: U1, limit: 1 });
  ok({ type: 'history', conversationId: C1 });
  ok({ type: 'history', conversationId: C1, beforeSeq: 10, limit: 20, requestId: 'r-1' });
  ok({ type: 'history', peerId: U1, beforeSeq: 0 });
  failed({ type: 'history' }, ['conversationId']);
  failed({ type: 'history', peerId: U1, conversationId: C1 }, ['conversationId']);
  failed({ type: 'history', conversationId: 'general' }, ['conversationId']);
  failed({ type: 'history', conversationId: C1, beforeSeq: -1 }, ['beforeSeq']);
  failed({ type: 'history', conversationId: C1, beforeSeq: 1.5 }, ['beforeSeq']);
  failed({ type: 'history', conversationId: C1, beforeSeq: '9' }, ['beforeSeq']);
  failed({ type: 'history', conversationId: C1, requestId: '' }, ['requestId']);
  failed({ type: 'history', conversationId: C1, requestId: longString(65) }, ['requestId']);
  failed({ type: 'history', conversationId: C1, requestId: 'a b' }, ['requestId']);
  failed({ type: 'history', peerId: U1, limit: 0 }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: 101 }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: 1.5 }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: '10' }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: Infinity }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: NaN }, ['limit']);
  failed({ type: 'history', peerId: U1, before: 'yesterday' }, ['before']);
});

test('list_conversations', () => {
  ok({ type: 'list_conversations' });
  ok({ type: 'list_conversations', limit: 1, before: 'cursor', requestId: 'r' });
  ok({ type: 'list_conversations', limit: 100, before: longString(200) });
  failed({ type: 'list_conversations', limit: 0 }, ['limit']);
  failed({ type: 'list_conversations', limit: 101 }, ['limit']);
  failed({ type: 'list_conversations', limit: 2.5 }, ['limit']);
  failed({ type: 'list_conversations', before: '' }, ['before']);
  failed({ type: 'list_conversations', before: longString(201) }, ['before']);
  failed({ type: 'list_conversations', before: 5 }, ['before']);
});

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `6f1c0c52-4a4e-4a59-9b7e-${String(i).padStart(12, '0')}`);

test('create_group', () => {
  ok({ type: 'create_group', name: 'team', memberIds: [] });
  ok({ type: 'create_group', name: longString(100), memberIds: ids(256), requestId: 'g1' });
  failed({ type: 'create_group', memberIds: [] }, ['name']);
  failed({ type: 'create_group', name: '', memberIds: [] }, ['name']);
  failed({ type: 'create_group', name: longString(101), memberIds: [] }, ['name']);
  failed({ type: 'create_group', name: 7, memberIds: [] }, ['name']);
  failed({ type: 'create_group', name: 'team' }, ['memberIds']);
  failed({ type: 'create_group', name: 'team', memberIds: ids(257) }, ['memberIds']);
  failed({ type: 'create_group', name: 'team', memberIds: ['x'] }, ['memberIds.0']);
  failed({ type: 'create_group', name: 'team', memberIds: U1 }, ['memberIds']);
  failed({ type: 'create_group', name: 'team', memberIds: [], conversationId: C1 }, ['']);
});

test('add_members and remove_members', () => {
  for (const type of ['add_members', 'remove_members']) {
    ok({ type, conversationId: C1, userIds: [U1] });
    ok({ type, conversationId: C1, userIds: ids(256), requestId: 'x' });
    failed({ type, conversationId: C1, userIds: [] }, ['userIds']);
    failed({ type, conversationId: C1, userIds: ids(257) }, ['userIds']);
    failed({ type, conversationId: C1, userIds: ['nope'] }, ['userIds.0']);
    failed({ type, conversationId: C1 }, ['userIds']);
    failed({ type, userIds: [U1] }, ['conversationId']);
    failed({ type, conversationId: 'group-1', userIds: [U1] }, ['conversationId']);
  }
});

test('leave_group, rename_group, set_role, read', () => {
  ok({ type: 'leave_group', conversationId: C1 });
  ok({ type: 'leave_group', conversationId: C1, requestId: 'l' });
  failed({ type: 'leave_group' }, ['conversationId']);
  failed({ type: 'leave_group', conversationId: C1, userIds: [U1] }, ['']);

  ok({ type: 'rename_group', conversationId: C1, name: 'new name' });
  failed({ type: 'rename_group', conversationId: C1 }, ['name']);
  failed({ type: 'rename_group', conversationId: C1, name: '' }, ['name']);
  failed({ type: 'rename_group', conversationId: C1, name: longString(101) }, ['name']);
  failed({ type: 'rename_group', name: 'x' }, ['conversationId']);

  ok({ type: 'set_role', conversationId: C1, userId: U1, role: 'admin' });
  ok({ type: 'set_role', conversationId: C1, userId: U1, role: 'member' });
  failed({ type: 'set_role', conversationId: C1, userId: U1, role: 'owner' }, ['role']);
  failed({ type: 'set_role', conversationId: C1, userId: U1 }, ['role']);
  failed({ type: 'set_role', conversationId: C1, userId: 'x', role: 'admin' }, ['userId']);

  ok({ type: 'read', conversationId: C1, upToSeq: 0 });
  ok({ type: 'read', conversationId: C1, upToSeq: 12, requestId: 'r' });
  failed({ type: 'read', conversationId: C1 }, ['upToSeq']);
  failed({ type: 'read', conversationId: C1, upToSeq: -3 }, ['upToSeq']);
  failed({ type: 'read', conversationId: C1, upToSeq: 0.5 }, ['upToSeq']);
  failed({ type: 'read', upToSeq: 1 }, ['conversationId']);
});

test('frames that name no server-assigned field: senderId, pos, seq and role fields from clients are refused', () => {
  failed({ type: 'chat_message', conversationId: C1, content: 'hi', seq: 1 }, ['']);
  failed({ type: 'chat_message', conversationId: C1, content: 'hi', pos: 1 }, ['']);
  failed({ type: 'chat_message', conversationId: C1, content: 'hi', timestamp: 1 }, ['']);
  failed({ type: 'create_group', name: 'g', memberIds: [], ownerId: U1 }, ['']);
  failed({ type: 'add_members', conversationId: C1, userIds: [U1], role: 'admin' }, ['']);
});

test('unknown keys are rejected in every frame type, and nested objects', () => {
  failed({ type: 'auth', token: 't', extra: 1 });
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', senderId: U2 });
  failed({ type: 'typing_indicator', recipientId: U1, isTyping: true, x: 1 });
  failed({ type: 'ack', upTo: 1, x: 1 });
  failed({ type: 'history', peerId: U1, x: 1 });
  failed({ type: 'list_conversations', x: 1 });
  failed({ type: 'create_group', name: 'g', memberIds: [], x: 1 });
  failed({ type: 'add_members', conversationId: C1, userIds: [U1], x: 1 });
  failed({ type: 'remove_members', conversationId: C1, userIds: [U1], x: 1 });
  failed({ type: 'leave_group', conversationId: C1, x: 1 });
  failed({ type: 'rename_group', conversationId: C1, name: 'n', x: 1 });
  failed({ type: 'set_role', conversationId: C1, userId: U1, role: 'admin', x: 1 });
  failed({ type: 'read', conversationId: C1, upToSeq: 1, x: 1 });
  for (const value of [
    { type: 'auth', token: 't', x: 1 },
    { type: 'ack', upTo: 1, x: 1 },
    { type: 'list_conversations', x: 1 },
    { type: 'leave_group', conversationId: C1, x: 1 },
  ]) assert.ok(failed(value).some((d) => d.rule === 'unrecognized_keys'), JSON.stringify(value));
  const details = failed({ type: 'chat_message', recipientId: U1, content: 'hi', attachments: [{ type: 'file', url: 'https://e.com/f', name: 'f', x: 1 }] });
  assert.ok(details.some((d) => d.rule === 'unrecognized_keys'));
});

test('unknown or missing type', () => {
  assert.deepEqual(validateFrame({ type: 'admin' }), { ok: false, reason: 'unknown_type' });
  assert.deepEqual(validateFrame({ type: 'AUTH', token: 't' }), { ok: false, reason: 'unknown_type' });
  assert.deepEqual(validateFrame({ type: '__proto__' }), { ok: false, reason: 'unknown_type' });
  assert.deepEqual(validateFrame({ type: 'toString' }), { ok: false, reason: 'unknown_type' });
  assert.deepEqual(validateFrame({ token: 't' }), { ok: false, reason: 'invalid_format' });
  assert.deepEqual(validateFrame({ type: 1 }), { ok: false, reason: 'invalid_format' });
  assert.deepEqual(validateFrame({ type: null }), { ok: false, reason: 'invalid_format' });
  assert.deepEqual(validateFrame({ type: ['auth'] }), { ok: false, reason: 'invalid_format' });
});

test('details carry paths and rules only, never the offending value or an unknown key name', () => {
  const cases: Record<string, unknown>[] = [
    { type: 'auth', token: 7, [MARKER]: MARKER },
    { type: 'chat_message', recipientId: MARKER, content: MARKER.repeat(1000), replyTo: MARKER, clientMsgId: `${MARKER} ${MARKER}` },
    { type: 'chat_message', recipientId: U1, content: 'x', attachments: [{ type: MARKER, url: `javascript:${MARKER}`, name: MARKER.repeat(50), [MARKER]: 1 }] },
    { type: 'typing_indicator', recipientId: MARKER, isTyping: MARKER },
    { type: 'ack', upTo: MARKER, [`${MARKER}2`]: true },
    { type: 'history', peerId: MARKER, before: MARKER, limit: MARKER },
    { type: 'history', conversationId: MARKER, beforeSeq: MARKER, requestId: `${MARKER} x` },
    { type: 'auth', token: 't', deviceId: `${MARKER} ${MARKER}`, after: MARKER },
    { type: 'chat_message', conversationId: MARKER, content: 'x' },
    { type: 'create_group', name: MARKER.repeat(20), memberIds: [MARKER], [MARKER]: MARKER },
    { type: 'add_members', conversationId: MARKER, userIds: [MARKER, MARKER] },
    { type: 'rename_group', conversationId: C1, name: MARKER.repeat(20) },
    { type: 'set_role', conversationId: C1, userId: MARKER, role: MARKER },
    { type: 'read', conversationId: C1, upToSeq: MARKER },
    { type: 'list_conversations', before: MARKER.repeat(30), limit: MARKER },
  ];
  for (const value of cases) {
    const details = failed(value);
    assert.ok(details.length > 0 && details.length <= 10);
    assert.ok(!JSON.stringify(details).includes(MARKER), JSON.stringify(details));
    assert.ok(!JSON.stringify(details).includes('javascript'), JSON.stringify(details));
  }
  // Many bad fields: the list is capped.
  const many: Record<string, unknown> = { type: 'create_group', name: 'g', memberIds: Array.from({ length: 50 }, () => MARKER) };
  const details = failed(many);
  assert.equal(details.length, 10);
});

test("the SDK's id check (isWireUuid) accepts exactly the ids the server's schemas accept", () => {
  const schema = z.uuid();
  const cases = [
    '11111111-1111-4111-8111-111111111111',
    '11111111-1111-4111-A111-111111111111',
    '0190f0f0-0000-7000-8000-000000000000',
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
    '11111111-1111-0111-8111-111111111111', // version 0
    '11111111-1111-9111-8111-111111111111', // version 9
    '11111111-1111-4111-0111-111111111111', // NCS variant
    '11111111-1111-4111-c111-111111111111', // Microsoft variant
    '11111111111141118111111111111111',
    '11111111-1111-4111-8111-11111111111',
    ' 11111111-1111-4111-8111-111111111111',
    'g1111111-1111-4111-8111-111111111111',
    '',
  ];
  for (const id of cases) assert.equal(isWireUuid(id), schema.safeParse(id).success, id);
});

test('the plain chat_message check accepts exactly what the schema accepts for its shape, with the same value (seeded)', () => {
  const uuids = ['6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10', '6F1C0C52-4A4E-4A59-9B7E-2F4F8A3F6A10', '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff', '6f1c0c52-4a4e-0a59-9b7e-2f4f8a3f6a10', '6f1c0c52-4a4e-4a59-cb7e-2f4f8a3f6a10',
    '6f1c0c52-4a4e-9a59-9b7e-2f4f8a3f6a10', '6f1c0c524a4e4a599b7e2f4f8a3f6a10', ' 6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10', '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a1g'];
  const value = fc.oneof(
    fc.constantFrom(...uuids),
    fc.string({ maxLength: 70 }),
    fc.constantFrom('', 'x', ' ', 'a b', 'm-1', '\u00e9', 'x'.repeat(64), 'x'.repeat(65), 'x'.repeat(5000), 'x'.repeat(5001), '\u{1F600}'.repeat(2500), '\u{1F600}'.repeat(2501)),
    fc.constantFrom(null, 0, 1, true, [], {}),
  );
  const good = {
    content: fc.string({ minLength: 1, maxLength: 200 }),
    uuid: fc.constantFrom(uuids[0]!, uuids[1]!, uuids[2]!, uuids[3]!),
    key: fc.stringMatching(/^[\x21-\x7e]{1,64}$/),
  };
  // Mostly plain frames, each field sometimes replaced by anything, extra keys sometimes added.
  const field = <T,>(ok: fc.Arbitrary<T>) => fc.oneof({ arbitrary: ok, weight: 6 }, { arbitrary: value, weight: 1 });
  const frame = fc
    .record(
      {
        type: fc.constantFrom('chat_message', 'chat_message', 'chat_message', 'typing_indicator', 'Chat_message'),
        content: field(good.content),
        target: fc.constantFrom('recipientId', 'conversationId', 'recipientId', 'conversationId', 'both', 'none'),
        recipientId: field(good.uuid),
        conversationId: field(good.uuid),
        clientMsgId: fc.option(field(good.key), { nil: undefined }),
        replyTo: fc.option(value, { freq: 8, nil: undefined }),
        extra: fc.option(value, { freq: 8, nil: undefined }),
        proto: fc.option(value, { freq: 8, nil: undefined }),
      },
      { requiredKeys: ['type', 'target', 'recipientId', 'conversationId'] },
    )
    .map(({ target, recipientId, conversationId, proto, ...rest }) => {
      const out: Record<string, unknown> = { ...rest };
      if (target === 'recipientId' || target === 'both') out.recipientId = recipientId;
      if (target === 'conversationId' || target === 'both') out.conversationId = conversationId;
      return proto === undefined ? out : { ...out, ['__proto__']: proto };
    });
  let accepted = 0;
  fc.assert(
    fc.property(frame, (raw) => {
      // As the wire delivers it: through JSON (own keys only, "__proto__" an ordinary key).
      const v = JSON.parse(JSON.stringify(raw)) as Record<string, unknown>;
      const fast = plainChatMessage(v);
      const schema = ClientFrame.safeParse(v);
      if (fast !== undefined) {
        accepted++;
        assert.ok(schema.success, `fast accepted what the schema refuses: ${JSON.stringify(v)}`);
        assert.deepEqual(fast, schema.data);
      } else if (schema.success && v.type === 'chat_message') {
        // Declining is always safe (the schema decides); it must only be for the shapes it leaves to the
        // schema, or content over the bound in UTF-16 units that zod (counting code points) still takes.
        const longInUnits = typeof v.content === 'string' && v.content.length > 5000;
        assert.ok('replyTo' in v || 'attachments' in v || longInUnits, `fast declined a plain frame: ${JSON.stringify(v).slice(0, 200)}`);
      }
    }),
    { numRuns: 20000, seed: 20261127 },
  );
  assert.ok(accepted > 100, `only ${accepted} frames took the plain path`);
});

test('a field that fails two checks alike is reported once (a position past 2^53 fails the maximum and the safe-integer check)', () => {
  const r = validateFrame({ type: 'ack', upTo: 2 ** 53 });
  assert.equal(r.ok, false);
  assert.deepEqual(r.ok === false && r.reason === 'validation_failed' ? r.details : [], [{ path: 'upTo', rule: 'too_big' }]);
});
