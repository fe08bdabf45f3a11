/**
 * A server refusal's `details` (`[{path, rule}]`, validation_failed) reach the app: a request's
 * `RequestError.detail` and a send's `SendError.detail` name the field and the rule (never a value),
 * as docs/client.md says of the refusals the SDK finds itself. They used to be dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RampartClient } from '../../src/client/rampart-client.js';
import { RequestError } from '../../src/client/requests.js';
import { SendError } from '../../src/client/send-queue.js';
import { detailOf } from '../../src/client/refusals.js';
import { FakeClock, FakeSocket, fakeJwt, settle } from '../helpers/fake-client-env.js';

const ME = '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10';
const CONV = '3d2b1a4c-5e6f-4a7b-8c9d-0e1f2a3b4c5d';

test('detailOf: path and rule, joined; nothing without details', () => {
  assert.equal(detailOf([{ path: 'name', rule: 'too_long' }, { path: 'memberIds.0', rule: 'invalid_format' }]), 'name: too_long; memberIds.0: invalid_format');
  assert.equal(detailOf(undefined), undefined);
  assert.equal(detailOf([]), undefined);
});

test('a request and a send refused validation_failed carry the server details as detail', async () => {
  const clock = new FakeClock();
  let socket!: FakeSocket;
  const client = new RampartClient({
    url: 'ws://rampart.test/ws',
    token: () => fakeJwt(clock.now() + 3_600_000, ME),
    createSocket: (url) => (socket = new FakeSocket(url)),
    clock,
    pingIntervalMs: 0,
  });
  try {
    void client.connect();
    await settle();
    socket.open();
    await settle();
    socket.receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
    await settle();

    const renamed = client.renameGroup(CONV, 'a name').catch((e: unknown) => e);
    await settle();
    const rename = socket.framesOf('rename_group').at(-1)!;
    socket.receive({ type: 'error', reason: 'validation_failed', requestId: rename.requestId, details: [{ path: 'name', rule: 'invalid_format' }] });
    const err = await renamed;
    assert.ok(err instanceof RequestError);
    assert.equal(err.reason, 'validation_failed');
    assert.equal(err.detail, 'name: invalid_format');

    const sent = client.sendMessage({ conversationId: CONV }, 'hello').catch((e: unknown) => e);
    await clock.advance(1000); // past any pacing of the client's own
    await settle();
    const msg = socket.framesOf('chat_message').at(-1);
    assert.ok(msg, JSON.stringify(socket.sent.map((f) => f.type)));
    socket.receive({ type: 'error', reason: 'validation_failed', clientMsgId: msg.clientMsgId, details: [{ path: 'content', rule: 'too_long' }] });
    const sendErr = await sent;
    assert.ok(sendErr instanceof SendError);
    assert.equal(sendErr.detail, 'content: too_long');
  } finally {
    client.close();
  }
});
