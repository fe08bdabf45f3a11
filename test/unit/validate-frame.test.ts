import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFrame } from '../../src/pipeline/validate-frame.js';

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

test('auth', () => {
  ok({ type: 'auth', token: 'a.b.c' });
  failed({ type: 'auth' }, ['token']);
  failed({ type: 'auth', token: '' }, ['token']);
  failed({ type: 'auth', token: 42 }, ['token']);
  failed({ type: 'auth', token: ['a'] }, ['token']);
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
  failed({ type: 'chat_message', content: 'hi' }, ['recipientId']);
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
});

test('ack', () => {
  ok({ type: 'ack', messageIds: [U1] });
  ok({ type: 'ack', messageIds: [U1, U2] });
  failed({ type: 'ack', messageIds: [] }, ['messageIds']);
  failed({ type: 'ack', messageIds: ['x'] }, ['messageIds.0']);
  failed({ type: 'ack', messageIds: U1 }, ['messageIds']);
  failed({ type: 'ack' }, ['messageIds']);
  failed({ type: 'ack', messageIds: Array.from({ length: 501 }, () => U1) }, ['messageIds']);
});

test('history', () => {
  ok({ type: 'history', peerId: U1 });
  ok({ type: 'history', peerId: U1, before: U2, limit: 100 });
  ok({ type: 'history', peerId: U1, limit: 1 });
  failed({ type: 'history' }, ['peerId']);
  failed({ type: 'history', peerId: U1, limit: 0 }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: 101 }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: 1.5 }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: '10' }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: Infinity }, ['limit']);
  failed({ type: 'history', peerId: U1, limit: NaN }, ['limit']);
  failed({ type: 'history', peerId: U1, before: 'yesterday' }, ['before']);
});

test('unknown keys are rejected in every frame type, and nested objects', () => {
  failed({ type: 'auth', token: 't', extra: 1 });
  failed({ type: 'chat_message', recipientId: U1, content: 'hi', senderId: U2 });
  failed({ type: 'typing_indicator', recipientId: U1, isTyping: true, x: 1 });
  failed({ type: 'ack', messageIds: [U1], x: 1 });
  failed({ type: 'history', peerId: U1, x: 1 });
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
    { type: 'ack', messageIds: [MARKER, MARKER], [`${MARKER}2`]: true },
    { type: 'history', peerId: MARKER, before: MARKER, limit: MARKER },
  ];
  for (const value of cases) {
    const details = failed(value);
    assert.ok(details.length > 0 && details.length <= 10);
    assert.ok(!JSON.stringify(details).includes(MARKER), JSON.stringify(details));
    assert.ok(!JSON.stringify(details).includes('javascript'), JSON.stringify(details));
  }
  // Many bad fields: the list is capped.
  const many: Record<string, unknown> = { type: 'ack', messageIds: Array.from({ length: 50 }, () => MARKER) };
  const details = failed(many);
  assert.equal(details.length, 10);
});
