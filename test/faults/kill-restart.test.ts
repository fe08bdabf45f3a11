/**
 * Nothing acknowledged is lost (issue #3): the server runs as its own process, a sender bursts
 * messages at an offline recipient, the process is SIGKILLed the moment enough `message_sent`
 * acks have arrived (others are still in flight), a new process starts on the same storage, and
 * the recipient must be replayed every acknowledged message — for SQLite and for PostgreSQL.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authedClient, closeAll, newUserId, openClient, token, type Frame, type TestClient } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.js';
import { backends, type StorageBackend } from '../helpers/storage-backends.js';

const BURST = 1000;
/** Kill as soon as this many acks arrived: later messages of the burst are still in flight. */
const KILL_AFTER_ACKS = 300;
/** Makes the burst span many socket reads, so several group commits are under way at the kill. */
const PADDING = 'x'.repeat(200);
const CHUNK = 20;


function killRestartSuite(backend: StorageBackend): void {
  describe(`kill -9 after acks, restart on the same storage (${backend.name})`, () => {
    const children: ChildProcess[] = [];
    const clients: TestClient[] = [];
    let dir: string;

    before(async () => {
      await backend.setup();
      dir = mkdtempSync(join(tmpdir(), 'rampart-kill-'));
    });

    after(async () => {
      await closeAll(...clients);
      await Promise.all(
        children.map((child) => {
          if (child.exitCode !== null || child.signalCode !== null) return undefined;
          const gone = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGKILL');
          return gone;
        }),
      );
      await backend.teardown();
      rmSync(dir, { recursive: true, force: true });
    });

    test('every acknowledged message is in the recipient inbox after SIGKILL and restart', { timeout: 30_000 }, async (t) => {
      const location = backend.allocate();
      const configFile = writeServerConfig(dir, `rampart-${backend.name}.json`, {
        storage: location.storage,
        rateLimit: { messagesPerMinute: 100_000, messagesPerHour: 1_000_000, burstLimit: 100_000, burstWindow: 1000 },
        limits: { frames: { limit: 100_000, windowMs: 1000 } },
      });

      // ── first life: burst, then SIGKILL right after the acks ──
      const first = await spawnServerProcess(configFile, children);
      const senderId = newUserId();
      const recipientId = newUserId();
      const sender = await authedClient(first.url, senderId);
      clients.push(sender);
      const acked: string[] = [];
      const ackedContent = new Map<string, string>();
      const contentByCid = new Map<string, string>();
      let killed = false;
      sender.ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as Frame;
        if (f.type !== 'message_sent') return;
        acked.push(String(f.id));
        ackedContent.set(String(f.id), contentByCid.get(String(f.clientMsgId))!);
        if (!killed && acked.length >= KILL_AFTER_ACKS) {
          killed = true;
          first.child.kill('SIGKILL');
        }
      });
      // As fast as the client can: a chunk per event-loop turn, so frames keep arriving while
      // earlier batches commit, and the kill lands with transactions and acks in flight.
      let next = 0;
      const pump = (): void => {
        for (let n = 0; n < CHUNK && next < BURST && !killed; n++, next++) {
          const clientMsgId = `burst-${next}`;
          const content = `burst message ${next} ${PADDING}`;
          contentByCid.set(clientMsgId, content);
          sender.send({ type: 'chat_message', recipientId, content, clientMsgId });
        }
        if (next < BURST && !killed) setImmediate(pump);
      };
      pump();
      await first.exited;
      await sender.closed;
      assert.equal(first.child.signalCode, 'SIGKILL');
      assert.ok(acked.length >= KILL_AFTER_ACKS, `acks before the kill: ${acked.length}`);
      const errors = sender.frames.filter((f) => f.type === 'error' || f.type === 'rate_limited');
      assert.deepEqual(errors, [], 'the burst was accepted');

      // ── second life on the same storage ──
      const second = await spawnServerProcess(configFile, children);
      const sender2 = await authedClient(second.url, senderId);
      clients.push(sender2);
      const recipient = openClient(second.url) as TestClient;
      clients.push(recipient);
      let markerAck: Promise<Frame> | undefined;
      recipient.ws.on('message', (data) => {
        // A live message right after auth: it must come after the whole replay.
        if (markerAck === undefined && (JSON.parse(data.toString()) as Frame).type === 'auth_success') {
          markerAck = sender2.next((f) => f.type === 'message_sent' && f.clientMsgId === 'marker', true);
          sender2.send({ type: 'chat_message', recipientId, content: 'after restart', clientMsgId: 'marker' });
        }
      });
      await recipient.opened;
      recipient.send({ type: 'auth', token: await token({ sub: recipientId }) });
      assert.equal((await recipient.next((f) => f.type === 'auth_success' || f.type === 'auth_failure')).type, 'auth_success');
      const marker = await markerAck!;
      assert.equal(marker.type, 'message_sent');
      await recipient.next((f) => f.type === 'chat_message' && f.id === marker.id);

      const replay = recipient.frames.filter((f) => f.type === 'chat_message' && f.id !== marker.id);
      const replayIds = replay.map((f) => String(f.id));
      assert.equal(new Set(replayIds).size, replayIds.length, 'no message replayed twice');
      const replayed = new Set(replayIds);
      const lost = acked.filter((id) => !replayed.has(id));
      assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged messages were lost`);
      // Oldest first: the acknowledged ones come back in the order they were acknowledged.
      assert.deepEqual(replayIds.filter((id) => ackedContent.has(id)), acked);
      for (const f of replay) {
        assert.equal(f.senderId, senderId);
        if (ackedContent.has(String(f.id))) assert.equal(f.content, ackedContent.get(String(f.id)));
      }
      t.diagnostic(`sent before the kill: ${next}; acked: ${acked.length}; replayed after restart: ${replay.length}`);
      assert.ok(replay.length <= BURST, 'extras are only stored-but-unacked messages of the burst');
      // The database agrees: every acked id is a stored row for this recipient.
      const rows = await location.rows({ recipientId });
      const stored = new Set(rows.map((r) => String(r.id)));
      assert.ok(acked.every((id) => stored.has(id)));
    });
  });
}

for (const backend of backends('kill')) killRestartSuite(backend);
