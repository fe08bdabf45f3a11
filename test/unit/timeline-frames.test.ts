/**
 * Serialization of timeline events (src/chat/timeline-frames.ts): one body per event, one
 * `{"pos":N,` prefix per timeline, and `framePos` reading the position back without a parse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { eventBody, framePos, isSendersCopy, timelineFrame, toHistoryItem, toWireMessage, toWireMembership } from '../../src/chat/timeline-frames.js';
import type { MembershipEvent, StoredMessage } from '../../src/store/store.js';
import { printedSeed } from '../helpers/seed.js';

const A = '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10';
const B = '0b8a3b1e-6d7c-4f2a-8e1b-3c4d5e6f7a8b';
const CONV = '11111111-2222-4333-8444-555555555555';

const message: StoredMessage = {
  kind: 'message',
  id: '01890000-0000-7000-8000-000000000001',
  tenantId: 'acme',
  conversationId: CONV,
  conversationKind: 'direct',
  seq: 7,
  senderId: A,
  recipientId: B,
  content: 'he said "hi" \\ <b>there</b>\n{"pos":1,}',
  mentions: ['bob'],
  hashtags: [],
  links: [{ url: 'https://example.com', safe: true }],
  timestamp: 1_700_000_000_123,
  clientMsgId: 'secret-client-id',
};

const membership: MembershipEvent = {
  kind: 'membership',
  id: '01890000-0000-7000-8000-000000000002',
  tenantId: 'acme',
  conversationId: CONV,
  seq: 8,
  action: 'left',
  actorId: A,
  userIds: [A],
  newOwnerId: B,
  timestamp: 1_700_000_000_456,
};

test('a message frame is the wire message with type and pos, and nothing server-internal', () => {
  const frame = timelineFrame(42, eventBody(message));
  assert.ok(frame.startsWith('{"pos":42,'));
  const parsed = JSON.parse(frame) as Record<string, unknown>;
  assert.deepEqual(parsed, {
    pos: 42,
    type: 'chat_message',
    id: message.id,
    conversationId: CONV,
    seq: 7,
    senderId: A,
    recipientId: B,
    content: message.content,
    mentions: ['bob'],
    hashtags: [],
    links: [{ url: 'https://example.com', safe: true }],
    timestamp: message.timestamp,
  });
  // tenantId, kind, conversationKind and clientMsgId stay on the server.
  for (const key of ['tenantId', 'kind', 'conversationKind', 'clientMsgId']) assert.equal(key in parsed, false, key);
});

test('optional fields are absent, never undefined-valued or null', () => {
  const group: StoredMessage = { ...message, conversationKind: 'group' };
  delete group.recipientId;
  const wire = toWireMessage(group);
  assert.equal('type' in wire, false);
  assert.equal('recipientId' in wire, false);
  assert.equal('replyTo' in wire, false);
  assert.equal('attachments' in wire, false);
  const withReply = toWireMessage({ ...message, replyTo: B, attachments: [{ type: 'file', url: 'https://x.example/f', name: 'f' }] });
  assert.equal(withReply.replyTo, B);
  assert.deepEqual(withReply.attachments, [{ type: 'file', url: 'https://x.example/f', name: 'f' }]);
  const m = toWireMembership(membership);
  assert.equal('name' in m, false);
  assert.equal('role' in m, false);
  assert.equal(m.newOwnerId, B);
});

test('a membership frame carries type membership and its fields', () => {
  const parsed = JSON.parse(timelineFrame(3, eventBody(membership))) as Record<string, unknown>;
  assert.deepEqual(parsed, {
    pos: 3,
    type: 'membership',
    id: membership.id,
    conversationId: CONV,
    seq: 8,
    action: 'left',
    actorId: A,
    userIds: [A],
    newOwnerId: B,
    timestamp: membership.timestamp,
  });
  const renamed = JSON.parse(timelineFrame(4, eventBody({ ...membership, action: 'renamed', userIds: [], name: 'n</script>' }))) as Record<string, unknown>;
  assert.equal(renamed.name, 'n</script>');
});

test('history items are the same objects as the timeline frames, without pos', () => {
  const item = toHistoryItem(message);
  const frame = JSON.parse(timelineFrame(9, eventBody(message))) as Record<string, unknown>;
  delete frame.pos;
  assert.deepEqual(item, frame);
  assert.equal(toHistoryItem(membership).type, 'membership');
});

test('one body serves every timeline: frames differ only in their prefix', () => {
  const body = eventBody(message);
  assert.ok(!body.startsWith('{'));
  const frames = [1, 20, 300, Number.MAX_SAFE_INTEGER].map((pos) => timelineFrame(pos, body));
  for (const f of frames) assert.ok(f.endsWith(body));
  assert.deepEqual(frames.map((f) => (JSON.parse(f) as { pos: number }).pos), [1, 20, 300, Number.MAX_SAFE_INTEGER]);
});

test('framePos reads back the position of every timeline frame', () => {
  for (const pos of [0, 1, 9, 10, 12345, Number.MAX_SAFE_INTEGER]) {
    assert.equal(framePos(timelineFrame(pos, eventBody(message))), pos);
    assert.equal(framePos(timelineFrame(pos, eventBody(membership))), pos);
  }
});

test('framePos is undefined for every other frame, and for malformed prefixes', () => {
  const others = [
    '{"type":"typing_indicator","senderId":"x","isTyping":true}',
    '{"type":"message_sent","id":"x","pos":3}',
    '{"type":"timeline_pruned","after":1,"firstPos":5}',
    '{"pos":',
    '{"pos":12',
    '{"pos":,"type":"x"}',
    '{"pos":-1,"type":"x"}',
    '{"pos":1.5,"type":"x"}',
    '{"pos":"1","type":"x"}',
    '{"pos":1e3,"type":"x"}',
    '{"pos":1 ,"type":"x"}',
    '{ "pos":1,"type":"x"}',
    '',
    'p',
  ];
  for (const f of others) assert.equal(framePos(f), undefined, f);
});

test('content that looks like a prefix cannot change the position', () => {
  const tricky = { ...message, content: '{"pos":999,' };
  assert.equal(framePos(timelineFrame(5, eventBody(tricky))), 5);
});

test('a message body is exactly JSON.stringify of its history item, whatever optional fields and characters it has (seeded generator)', (t) => {
  const seed = printedSeed(t);
  fc.assert(
    fc.property(
      fc.record({
        id: fc.uuid(),
        conversationId: fc.uuid(),
        senderId: fc.uuid(),
        content: fc.string({ unit: 'binary', maxLength: 60 }),
        mentions: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
        hashtags: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
        links: fc.array(fc.record({ url: fc.string({ maxLength: 20 }), safe: fc.boolean() }), { maxLength: 2 }),
        seq: fc.nat(),
        timestamp: fc.nat(),
        recipientId: fc.option(fc.uuid(), { nil: undefined }),
        replyTo: fc.option(fc.uuid(), { nil: undefined }),
        attachments: fc.option(fc.array(fc.record({ type: fc.constantFrom('image', 'file'), url: fc.string({ maxLength: 20 }), name: fc.string({ maxLength: 10 }) }), { maxLength: 2 }), { nil: undefined }),
        editedAt: fc.option(fc.nat(), { nil: undefined }),
        deletedAt: fc.option(fc.nat(), { nil: undefined }),
        deletedBy: fc.option(fc.uuid(), { nil: undefined }),
      }),
      (v) => {
        const m: StoredMessage = { ...message, ...v };
        for (const k of Object.keys(v) as (keyof typeof v)[]) if (v[k] === undefined) delete (m as unknown as Record<string, unknown>)[k];
        assert.equal(eventBody(m), JSON.stringify(toHistoryItem(m)).slice(1));
      },
    ),
    { seed, numRuns: 300 },
  );
});

test('isSendersCopy: a chat message on its sender\'s own timeline (the user part of the key; case aside); nothing else', () => {
  const frame = timelineFrame(9, eventBody(message));
  assert.equal(isSendersCopy(`acme:${A}`, frame), true);
  assert.equal(isSendersCopy(`acme:${A}`, frame.replace(A, A.toUpperCase())), true, 'an upper-case sender id is the same user');
  assert.equal(isSendersCopy(`acme:${B}`, frame), false, 'the recipient');
  assert.equal(isSendersCopy(`acme:x${A}`, frame), false, 'an id that only ends like it');
  assert.equal(isSendersCopy(A, frame), false, 'a key without its tenant');
  const forged = timelineFrame(9, eventBody({ ...message, senderId: B, content: `"senderId":"${A}"` }));
  assert.equal(isSendersCopy(`acme:${A}`, forged), false, 'content naming a sender does not count');
  assert.equal(isSendersCopy(`acme:${A}`, timelineFrame(10, eventBody(membership))), false, 'not a message');
  assert.equal(isSendersCopy(`acme:${A}`, JSON.stringify({ type: 'chat_message', senderId: A })), false, 'not a timeline frame');
});
