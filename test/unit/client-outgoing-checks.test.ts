/**
 * The SDK's checks before sending (src/client/outgoing-checks.ts) against the server's own schemas
 * (src/protocol/client-frames.ts): a frame the SDK lets through must be accepted, and one it stops
 * must be one the server would refuse — refused there, it would be answered without its
 * `requestId` or `clientMsgId`, so the SDK could never match the answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientFrame } from '../../src/protocol/client-frames.js';
import { attachmentsProblem, clientMsgIdProblem, contentProblem, deviceIdProblem, requestProblem, targetProblem } from '../../src/client/outgoing-checks.js';
import { wireTarget } from '../../src/client/send-queue.js';

const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';
const CONV = '33333333-3333-4333-8333-333333333333';
const uuids = (n: number) => Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`);

/** [frame, whether the server accepts it]: each field at, inside and past its bounds. */
const REQUESTS: [Record<string, unknown>, boolean][] = [
  [{ type: 'history', conversationId: CONV }, true],
  [{ type: 'history', peerId: U1, beforeSeq: 0, limit: 1 }, true],
  [{ type: 'history', conversationId: CONV, beforeSeq: Number.MAX_SAFE_INTEGER, limit: 100 }, true],
  [{ type: 'history', conversationId: CONV, limit: 0 }, false],
  [{ type: 'history', conversationId: CONV, limit: 101 }, false],
  [{ type: 'history', conversationId: CONV, limit: 1.5 }, false],
  [{ type: 'history', conversationId: CONV, beforeSeq: -1 }, false],
  [{ type: 'history', conversationId: CONV, beforeSeq: 2 ** 53 }, false],
  [{ type: 'history', conversationId: 'c1' }, false],
  [{ type: 'history', conversationId: CONV, peerId: U1 }, false],
  [{ type: 'history' }, false],
  [{ type: 'list_conversations' }, true],
  [{ type: 'list_conversations', limit: 100, before: 'x'.repeat(200) }, true],
  [{ type: 'list_conversations', limit: 101 }, false],
  [{ type: 'list_conversations', limit: 0 }, false],
  [{ type: 'list_conversations', before: '' }, false],
  [{ type: 'list_conversations', before: 'x'.repeat(201) }, false],
  [{ type: 'read', conversationId: CONV, upToSeq: 0 }, true],
  [{ type: 'read', conversationId: CONV, upToSeq: 3, private: true }, true],
  [{ type: 'read', conversationId: CONV, upToSeq: -1 }, false],
  [{ type: 'read', conversationId: CONV, upToSeq: 1.5 }, false],
  [{ type: 'read', conversationId: 'nope', upToSeq: 1 }, false],
  [{ type: 'read', conversationId: CONV, upToSeq: 1, private: 'yes' }, false],
  [{ type: 'presence', conversationId: CONV }, true],
  [{ type: 'presence', conversationId: 'x' }, false],
  [{ type: 'set_presence', visible: false }, true],
  [{ type: 'set_presence', visible: 'no' }, false],
  [{ type: 'create_group', name: 'g', memberIds: [] }, true],
  [{ type: 'create_group', name: 'n'.repeat(100), memberIds: uuids(256) }, true],
  [{ type: 'create_group', name: '', memberIds: [U1] }, false],
  [{ type: 'create_group', name: 'n'.repeat(101), memberIds: [U1] }, false],
  [{ type: 'create_group', name: '\u{1F600}'.repeat(100), memberIds: [U1] }, true],
  [{ type: 'create_group', name: '\u{1F600}'.repeat(101), memberIds: [U1] }, false],
  [{ type: 'create_group', name: 'g', memberIds: uuids(257) }, false],
  [{ type: 'create_group', name: 'g', memberIds: [U1, 'bob'] }, false],
  [{ type: 'add_members', conversationId: CONV, userIds: [U1] }, true],
  [{ type: 'add_members', conversationId: CONV, userIds: [] }, false],
  [{ type: 'add_members', conversationId: CONV, userIds: uuids(257) }, false],
  [{ type: 'remove_members', conversationId: CONV, userIds: uuids(256) }, true],
  [{ type: 'remove_members', conversationId: CONV, userIds: ['u2'] }, false],
  [{ type: 'remove_members', conversationId: 'c', userIds: [U2] }, false],
  [{ type: 'leave_group', conversationId: CONV }, true],
  [{ type: 'leave_group', conversationId: '' }, false],
  [{ type: 'rename_group', conversationId: CONV, name: 'n'.repeat(100) }, true],
  [{ type: 'rename_group', conversationId: CONV, name: 'n'.repeat(101) }, false],
  [{ type: 'rename_group', conversationId: CONV, name: '' }, false],
  [{ type: 'set_role', conversationId: CONV, userId: U1, role: 'admin' }, true],
  [{ type: 'set_role', conversationId: CONV, userId: U1, role: 'owner' }, false],
  [{ type: 'set_role', conversationId: CONV, userId: 'u', role: 'member' }, false],
  [{ type: 'list_sessions' }, true],
  [{ type: 'end_session', sessionId: 'n1:42' }, true],
  [{ type: 'end_session', sessionId: 's'.repeat(128) }, true],
  [{ type: 'end_session', sessionId: 's'.repeat(129) }, false],
  [{ type: 'end_session', sessionId: 'n1 42' }, false],
  [{ type: 'end_session', sessionId: '' }, false],
];

test('requestProblem agrees with the server schema on every request the SDK sends, at and past each bound', () => {
  for (const [frame, accepted] of REQUESTS) {
    const wire = { ...frame, requestId: 'r1' };
    assert.equal(ClientFrame.safeParse(wire).success, accepted, `schema: ${JSON.stringify(frame).slice(0, 120)}`);
    const problem = requestProblem(wire);
    assert.equal(problem === undefined, accepted, `SDK: ${JSON.stringify(frame).slice(0, 120)} → ${problem}`);
  }
});

test('clientMsgIdProblem agrees with the server schema: 1..64 printable ASCII (0x21–0x7e)', () => {
  const ids: string[] = ['a', 'm-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', '!~', 'x'.repeat(64), '', 'x'.repeat(65), 'a b', 'tab\t', 'é', 'del\x7f', 'nl\n', '\u{1F600}'];
  for (const clientMsgId of ids) {
    const accepted = ClientFrame.safeParse({ type: 'chat_message', conversationId: CONV, content: 'x', clientMsgId }).success;
    assert.equal(clientMsgIdProblem(clientMsgId) === undefined, accepted, JSON.stringify(clientMsgId));
    // Edits and deletes carry the same key.
    assert.equal(ClientFrame.safeParse({ type: 'delete_message', messageId: U1, clientMsgId }).success, accepted);
  }
  assert.equal(clientMsgIdProblem(''), 'clientMsgId: 1..64 printable ASCII characters, no spaces');
  assert.equal(clientMsgIdProblem(42), 'clientMsgId: 1..64 printable ASCII characters, no spaces');
});

test('deviceIdProblem agrees with the auth frame schema: 1..64 printable ASCII (0x21–0x7e)', () => {
  const ids: string[] = ['a', 'dev-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', '!~', 'x'.repeat(64), '', 'x'.repeat(65), 'a b', 'tab\t', 'é', 'del\x7f', 'nl\n', '\u{1F600}'];
  for (const deviceId of ids) {
    const accepted = ClientFrame.safeParse({ type: 'auth', token: 't', deviceId }).success;
    assert.equal(deviceIdProblem(deviceId) === undefined, accepted, JSON.stringify(deviceId));
  }
  assert.equal(deviceIdProblem(''), 'deviceId: 1..64 printable ASCII characters, no spaces');
  assert.equal(deviceIdProblem(7), 'deviceId: 1..64 printable ASCII characters, no spaces');
});

test('targetProblem agrees with the server schema for typing indicators and messages: exactly one of the ids, a UUID', () => {
  const targets: unknown[] = [
    { conversationId: CONV },
    { recipientId: U1 },
    { conversationId: '00000000-0000-0000-0000-000000000000' },
    { conversationId: undefined, recipientId: U2 }, // undefined is dropped on the wire
    { conversationId: CONV, name: 'g', unreadCount: 3 }, // a conversation object: only its id is sent
    { conversationId: 'c1' },
    { recipientId: 'bob' },
    { recipientId: 42 },
    { conversationId: '' },
    { conversationId: CONV, recipientId: U1 },
    {},
    { conversationId: undefined },
  ];
  for (const target of targets) {
    const problem = targetProblem(target);
    // What the SDK would put on the wire, when it sends at all.
    const fields = problem === undefined ? wireTarget(target as never) : (target as object);
    for (const frame of [
      { type: 'typing_indicator', ...fields, isTyping: true },
      { type: 'chat_message', ...fields, content: 'x', clientMsgId: 'c1' },
    ]) {
      const accepted = ClientFrame.safeParse(JSON.parse(JSON.stringify(frame))).success;
      assert.equal(problem === undefined, accepted, `${JSON.stringify(frame)} → ${problem}`);
    }
  }
  for (const target of [null, undefined, 'c1', 42]) assert.equal(targetProblem(target), 'target: exactly one of conversationId and recipientId');
  assert.equal(targetProblem({ recipientId: 'bob' }), 'recipientId: a UUID');
});

test('contentProblem and attachmentsProblem count characters as the server schema does (an emoji is one, not two)', () => {
  const emoji = '\u{1F600}';
  const cases: [string, { name: string; url: string } | undefined][] = [
    ['x'.repeat(5000), undefined], ['x'.repeat(5001), undefined], [emoji.repeat(2500), undefined], [emoji.repeat(2501), undefined],
    [emoji.repeat(5000), undefined], [emoji.repeat(5001), undefined], ['\ud83d'.repeat(5000), undefined], ['\ud83d'.repeat(5001), undefined],
    ['hi', { name: emoji.repeat(255), url: 'https://example.com/a.png' }], ['hi', { name: emoji.repeat(256), url: 'https://example.com/a.png' }],
  ];
  for (const [content, attachment] of cases) {
    const frame = { type: 'chat_message', conversationId: CONV, content, ...(attachment ? { attachments: [{ type: 'image', ...attachment }] } : {}) };
    const accepted = ClientFrame.safeParse(frame).success;
    const problem = contentProblem(content) ?? attachmentsProblem(attachment ? [{ type: 'image', ...attachment }] : undefined);
    assert.equal(problem === undefined, accepted, `${content.length} units, attachment name ${attachment?.name.length ?? '-'} units → ${problem}`);
  }
});
