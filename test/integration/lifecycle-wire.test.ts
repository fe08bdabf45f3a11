/**
 * End to end on SQLite and PostgreSQL: history paging with both cursors, and a delete
 * reaching a device of a member whose backlog is at chat.maxInboxSize.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, closeAll, newUserId, waitFor, type Frame, type TestClient, type TestServer } from '../helpers/harness.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { backends, type StorageBackend, type StorageLocation } from '../helpers/storage-backends.js';
import { createGroup, deviceClient, expectReply, said, waitEvent, lastPosOf, type DeviceClient, GENEROUS_BUDGETS } from '../helpers/timeline.js';

const T = { timeout: 30_000 };

function suite(backend: StorageBackend): void {
  describe(`lifecycle on the wire (${backend.name})`, () => {
    const servers: TestServer[] = [];
    const clients: TestClient[] = [];
    /** Each server's storage, to read the rows it wrote. */
    const locations = new Map<TestServer, StorageLocation>();

    async function start(overrides: RampartConfigInput = {}): Promise<TestServer> {
      const location = backend.allocate();
      const server = await startServer({ ...GENEROUS_BUDGETS, ...overrides, storage: location.storage, chat: { receiptCoalesceMs: 0, presenceDebounceMs: 0, ...overrides.chat } });
      servers.push(server);
      locations.set(server, location);
      return server;
    }

    async function user(server: TestServer, sub: string = newUserId(), deviceId?: string): Promise<DeviceClient> {
      const c = await deviceClient(server.url, sub, deviceId === undefined ? {} : { deviceId });
      clients.push(c);
      return c;
    }

    before(() => backend.setup());
    after(async () => {
      await closeAll(...clients);
      for (const s of servers) await s.close();
      await backend.teardown();
    });

    test('history with `before` and `beforeSeq` together: the page below both, full', T, async () => {
      const srv = await start();
      const a = await user(srv);
      const b = await user(srv);
      const sent: Frame[] = [];
      for (let i = 1; i <= 20; i++) sent.push(await said(a, b.userId, `n${i}`));
      const h = await expectReply(a, { type: 'history', peerId: b.userId, before: sent[19]!.id, beforeSeq: 6, limit: 3 }, 'history');
      assert.deepEqual((h.messages as Frame[]).map((m) => m.seq), [5, 4, 3]);
    });

    test('a delete reaches the device of a member whose backlog is full (it showed the content)', T, async () => {
      const srv = await start({ chat: { maxInboxSize: 3 } });
      const owner = await user(srv);
      const bSub = newUserId();
      const phone = await user(srv, bSub, 'phone');
      const gid = await createGroup(owner, [phone.userId]);
      const secret = `secret ${randomUUID()}`;
      const m = await said(owner, { conversationId: gid }, secret);
      const shown = await waitEvent(phone, String(m.id));
      assert.equal(shown.content, secret);
      const upTo = lastPosOf(phone);
      phone.send({ type: 'ack', upTo });
      // The chatter below must find the phone's backlog emptied by this ack (else it is refused at
      // maxInboxSize for a different reason): wait until the stored device position shows it.
      await waitFor(async () => (await locations.get(srv)!.sync(bSub)).devices.phone === upTo, 5_000, 'the phone\'s ack to be stored');
      phone.close();
      for (let i = 0; i < 3; i++) await said(owner, { conversationId: gid }, `chatter ${i}`);
      const del = await expectReply(owner, { type: 'delete_message', messageId: m.id }, 'message_changed');
      assert.equal(del.action, 'deleted');
      const back = await user(srv, bSub, 'phone');
      await said(back, { conversationId: gid }, 'marker from b');
      const deletes = back.frames.filter((f) => f.type === 'message_deleted' && f.messageId === m.id);
      assert.equal(deletes.length, 1, `the phone still shows "${secret}": its stream has ${back.frames.filter((f) => typeof f.pos === 'number').map((f) => f.type).join(', ')}`);
    });
  });
}

for (const backend of backends('lifecycle')) suite(backend);
