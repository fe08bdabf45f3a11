/**
 * SIGTERM on a real `rampart serve` process: /readyz turns 503 and new handshakes are refused
 * while sessions are closed with 1001 in batches; pending writes are flushed; exit code 0 within
 * `shutdownGraceMs`.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { WebSocket } from 'ws';
import { authedClient, handshakeStatus, startServer, waitFor, type TestClient } from '../helpers/harness.js';
import { spawnServerProcess, writeServerConfig } from '../helpers/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'rampart-shutdown-'));
const children: ChildProcess[] = [];
after(async () => {
  await Promise.all(
    children.map((child) => {
      if (child.exitCode !== null || child.signalCode !== null) return undefined;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      return gone;
    }),
  );
  rmSync(dir, { recursive: true, force: true });
});

const N = 6;
const BATCH = 2;
const GRACE_MS = 8000;

test('SIGTERM: readyz 503, handshakes 503, every client sees 1001 in batches, pending message stored, exit 0 within the grace', { timeout: 30_000 }, async () => {
  const configFile = writeServerConfig(dir, 'rampart.json', {
    storage: `sqlite:${join(dir, 'rampart.db')}`,
    shutdownGraceMs: GRACE_MS,
    // Long enough between batches that one batch's closes all arrive before the next batch starts.
    shutdown: { batchSize: BATCH, batchIntervalMs: 400 },
  });
  const srv = await spawnServerProcess(configFile, children);
  const httpUrl = `http://127.0.0.1:${srv.port}`;
  const clients: (TestClient & { userId: string })[] = [];
  for (let i = 0; i < N; i++) clients.push(await authedClient(srv.url));
  assert.equal((await fetch(`${httpUrl}/readyz`)).status, 200);

  // At each client's close (in order of arrival): how many clients had been told to close by then
  // (close frame received or socket closed).
  const toldAtClose: number[] = [];
  const codes = clients.map((c) =>
    c.closed.then(({ code }) => {
      toldAtClose.push(clients.filter((o) => o.ws.readyState !== WebSocket.OPEN).length);
      return code;
    }),
  );

  // A message right before the signal: acknowledged → durable, and delivered before the drain closes the recipient.
  clients[0]!.send({ type: 'chat_message', recipientId: clients[1]!.userId, content: 'last words' });
  await clients[0]!.nextOfType('message_sent');

  const signalledAt = Date.now();
  srv.child.kill('SIGTERM');
  await waitFor(async () => (await fetch(`${httpUrl}/readyz`)).status === 503, 2000, '/readyz 503 while draining');
  assert.equal(await handshakeStatus(srv.url), 503, 'new handshakes are refused while draining');

  assert.deepEqual(await Promise.all(codes), new Array(N).fill(1001));
  await srv.exited;
  assert.equal(srv.child.exitCode, 0, srv.output.join('\n'));
  assert.ok(Date.now() - signalledAt < GRACE_MS, 'exited within shutdownGraceMs');

  // Batching: when the k-th close arrived, no more than the batches up to its own had been told
  // to close — the first batch's closes came while the other sessions were still open.
  assert.equal(toldAtClose.length, N);
  toldAtClose.forEach((told, k) => assert.ok(told <= (Math.floor(k / BATCH) + 1) * BATCH, `close #${k + 1}: ${told} sessions already told (${toldAtClose.join(',')})`));
  const lines = srv.output.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; sessions?: number; nodeId?: string });
  assert.ok(lines.every((l) => l.nodeId === srv.nodeId), 'every log line carries the node id');
  assert.equal(lines.find((l) => l.msg === 'draining')?.sessions, N);
  assert.ok(lines.some((l) => l.msg === 'closed'), 'shutdown completed (storage flushed and closed)');
  assert.deepEqual(clients[1]!.frames.filter((f) => f.type === 'chat_message').map((f) => f.content), ['last words']);
});

test('close() called again: every caller gets the one shutdown, settled once it finished', { timeout: 30_000 }, async () => {
  const ts = await startServer({ shutdownGraceMs: 3000 });
  const client = await authedClient(ts.url);
  const first = ts.server.close();
  try {
    const second = ts.server.close();
    assert.equal(second, first, 'the same promise');
    await second;
    const messages = ts.logs.map((l) => (JSON.parse(l) as { msg?: string }).msg);
    assert.ok(messages.includes('closed'), 'storage flushed and adapters closed before the second caller went on');
    assert.equal((await client.closed).code, 1001);
    assert.equal(ts.server.close(), first, 'a call after the shutdown gets it too');
  } finally {
    await first;
    await ts.close();
  }
});
