/**
 * `message_sent` is built as text by hand (src/chat/replies.ts): it must be exactly what
 * JSON.stringify gives for the same object, also for a clientMsgId holding `"` or `\`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messageSentFrame, withRequestId } from '../../src/chat/replies.js';

const stored = { id: '01890000-0000-7000-8000-000000000001', timestamp: 1_700_000_000_123, conversationId: '11111111-2222-4333-8444-555555555555', seq: 7 };

test('message_sent text equals JSON.stringify of the frame, with and without clientMsgId and pos', () => {
  const base = { type: 'message_sent', ...stored };
  assert.equal(messageSentFrame(stored, undefined), JSON.stringify(base));
  assert.equal(messageSentFrame(stored, undefined, 42), JSON.stringify({ ...base, pos: 42 }));
  for (const clientMsgId of ['m-0190', 'a"b', 'back\\slash', '"}],{"type":"x', '~!@#$%^&*()_+{}|:<>?']) {
    const text = messageSentFrame(stored, clientMsgId, 9);
    assert.equal(text, JSON.stringify({ ...base, clientMsgId, pos: 9 }));
    assert.equal((JSON.parse(text) as { clientMsgId: string }).clientMsgId, clientMsgId);
    assert.equal(messageSentFrame(stored, clientMsgId), JSON.stringify({ ...base, clientMsgId }));
  }
});

test('withRequestId adds the requestId only when the request carried one', () => {
  const frame = { type: 'pong' as const };
  assert.equal(withRequestId(frame, undefined), frame);
  assert.deepEqual(withRequestId(frame, 'r1'), { type: 'pong', requestId: 'r1' });
});
