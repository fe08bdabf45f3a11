/**
 * Store.membersIfMember(…, {formerToo: true}) (store.ts): current member ids if the user is or was
 * a member. A group closed by its last member leaving has no current members: a former member is
 * answered [] — not undefined, the stranger's answer — on SQLite and PostgreSQL alike.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { storeBackends } from '../helpers/store-backends.js';
import { GL, T, change, ok } from '../helpers/store-builders.js';

for (const be of storeBackends('closed-group-former')) describe(be.name, () => {
  after(() => be.teardown());

  test(`${be.name}: every former member of a closed group gets [] with formerToo; strangers and the plain question get undefined`, async () => {
    const s = await be.open();
    try {
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      const g = randomUUID();
      ok(await s.createGroup({ ...change(a, g), name: 'g', memberIds: [b, c] }, GL));
      ok(await s.removeMembers({ ...change(a, g), userIds: [c] })); // c: removed, a former member
      ok(await s.leaveGroup(change(b, g)));
      assert.deepEqual(await s.membersIfMember(T, g, b, { formerToo: true }), [a], 'open group: the current members');
      ok(await s.leaveGroup(change(a, g))); // the last member: the group is closed

      for (const former of [a, b, c]) {
        assert.deepEqual(await s.membersIfMember(T, g, former, { formerToo: true }), [], 'a former member of a closed group');
        assert.equal(await s.membersIfMember(T, g, former), undefined, 'not a current member');
        assert.equal(await s.audienceOf(T, g, former), undefined);
      }
      // No oracle: a stranger, another tenant's user of the same id, an unknown group.
      assert.equal(await s.membersIfMember(T, g, randomUUID(), { formerToo: true }), undefined);
      assert.equal(await s.membersIfMember('other', g, a, { formerToo: true }), undefined);
      assert.equal(await s.membersIfMember(T, randomUUID(), a, { formerToo: true }), undefined);
      assert.equal(await s.membersIfMember(T, 'not-a-uuid', a, { formerToo: true }), undefined);
    } finally {
      await s.close();
    }
  });
});
