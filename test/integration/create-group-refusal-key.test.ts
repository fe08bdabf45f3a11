/**
 * A refused create_group that passed schema validation names its clientMsgId, as a refused message,
 * edit or delete does (docs/protocol.md §3 "Which refusals name the frame": `clientMsgId` and
 * `requestId` are echoed when the refused frame passed schema validation and carried them) — so a
 * client can tell which keyed create was refused. The group path used to echo the requestId only.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { newUserId } from '../helpers/harness.js';
import { ask, usersOnServer, GENEROUS_BUDGETS } from '../helpers/timeline.js';

const T = { timeout: 30_000 };

describe('create_group refusals echo clientMsgId', () => {
  const { user } = usersOnServer(() => ({
    ...GENEROUS_BUDGETS,
    chat: {
      maxGroupsPerUser: 1,
      maxGroupMembers: 2,
      roles: { user: { send: true, read: true, createGroup: true }, basic: { send: true, read: true } },
    },
  }));

  test('too_many_groups (store refusal) carries the clientMsgId', T, async () => {
    const o = await user();
    const first = await ask(o, { type: 'create_group', name: 'one', memberIds: [], clientMsgId: 'k-one' });
    assert.equal(first.type, 'group_updated');
    const r = await ask(o, { type: 'create_group', name: 'two', memberIds: [], clientMsgId: 'k-two' });
    assert.equal(r.reason, 'too_many_groups', JSON.stringify(r));
    assert.equal(r.clientMsgId, 'k-two', `refusal does not name the keyed create: ${JSON.stringify(r)}`);
  });

  test('too_many_members carries the clientMsgId', T, async () => {
    const o = await user();
    const r = await ask(o, { type: 'create_group', name: 'big', memberIds: [newUserId(), newUserId()], clientMsgId: 'k-big' });
    assert.equal(r.reason, 'too_many_members', JSON.stringify(r));
    assert.equal(r.clientMsgId, 'k-big', `refusal does not name the keyed create: ${JSON.stringify(r)}`);
  });

  test('forbidden for a role without createGroup carries the clientMsgId', T, async () => {
    const b = await user(newUserId(), { claims: { role: 'basic' } });
    const r = await ask(b, { type: 'create_group', name: 'x', memberIds: [], clientMsgId: 'k-basic' });
    assert.equal(r.reason, 'forbidden', JSON.stringify(r));
    assert.equal(r.clientMsgId, 'k-basic', `refusal does not name the keyed create: ${JSON.stringify(r)}`);
  });

  test('invalid_content for the name carries the clientMsgId', T, async () => {
    const o = await user();
    const r = await ask(o, { type: 'create_group', name: 'bad\u202Ename', memberIds: [], clientMsgId: 'k-bidi' });
    assert.equal(r.reason, 'invalid_content', JSON.stringify(r));
    assert.equal(r.clientMsgId, 'k-bidi', `refusal does not name the keyed create: ${JSON.stringify(r)}`);
  });
});
