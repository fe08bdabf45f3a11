/**
 * `/readyz` hides which check failed; for storage the error log says it (docs/operations.md
 * "Health and readiness"). Guaranteed: when storage stops answering, one error line
 * `storage not answering: not ready` (with the cause, summarised), however often `/readyz` is
 * polled, and one info line `storage answering again` once it is back.
 * Was wrong: readiness turned every failed ping into `false` and dropped the error, and the
 * PostgreSQL pool's `error` events were discarded, so a node could go 503 with nothing logged.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, waitFor, type TestServer } from '../helpers/harness.js';
import { proxiedPgStorage } from '../helpers/storage-backends.js';

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

type Line = { level: number; msg: string; err?: string };

test('storage not answering: /readyz 503, one error line however often it is polled, one info line when back', { timeout: 60_000 }, async () => {
  const pgStorage = await proxiedPgStorage('rzlog');
  const { proxy } = pgStorage;
  after(() => pgStorage.close());
  const srv = await startServer({ storage: pgStorage.storage });
  servers.push(srv);
  assert.equal((await fetch(`${srv.httpUrl}/readyz`)).status, 200);
  const from = srv.logs.length;
  await proxy.stop();
  await waitFor(async () => (await fetch(`${srv.httpUrl}/readyz`)).status === 503, 10_000, '/readyz 503 with storage down');
  // Polled like a load balancer would, past the readiness cache: still one line.
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await fetch(`${srv.httpUrl}/readyz`)).status, 503);
  }
  const during = srv.logs.slice(from).map((l) => JSON.parse(l) as Line);
  const down = during.filter((l) => l.msg === 'storage not answering: not ready');
  assert.equal(down.length, 1, `one line per outage, not per probe; lines: ${srv.logs.slice(from).join('')}`);
  assert.ok(down[0]!.level >= 50, 'at error level');
  assert.equal(typeof down[0]!.err, 'string', 'with its cause');
  assert.ok(during.filter((l) => l.msg === 'storage connection error').length <= 1, 'pool errors are rate-limited');

  await proxy.start();
  await waitFor(async () => (await fetch(`${srv.httpUrl}/readyz`)).status === 200, 15_000, '/readyz 200 with storage back');
  const lines = srv.logs.slice(from).map((l) => JSON.parse(l) as Line);
  const back = lines.filter((l) => l.msg === 'storage answering again: ready as far as storage goes');
  assert.equal(back.length, 1);
  assert.equal(back[0]!.level, 30, 'at info level');
  assert.equal(lines.filter((l) => l.msg === 'storage not answering: not ready').length, 1);
});
