/**
 * A security log line names the user's tenant beside the user id: a user id is unique only within
 * its tenant, and the admin API asks for both. The same `sub` in two tenants sending an unknown
 * frame type gave two identical lines; an operator acting on one could ban the other tenant's user.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, closeAll, newUserId, type TestClient, type TestServer } from '../helpers/harness.js';
import { deviceClient } from '../helpers/timeline.js';

let srv: TestServer | undefined;
const clients: TestClient[] = [];
after(async () => {
  await closeAll(...clients);
  await srv?.close();
});

test('security events of two tenants\' users with the same id can be told apart', async () => {
  srv = await startServer();
  const x = newUserId();
  const xa = await deviceClient(srv.url, x, { claims: { tid: 'acme' } });
  const xb = await deviceClient(srv.url, x, { claims: { tid: 'globex' } });
  clients.push(xa, xb);
  for (const c of [xa, xb]) {
    c.send({ type: 'no_such_frame' });
    await c.next((f) => f.type === 'error');
  }
  const lines = srv.logs
    .flatMap((l) => l.split('\n'))
    .filter((l) => l.includes('"event":"security"') && l.includes(x))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 2, `two security lines for ${x}: ${JSON.stringify(lines)}`);
  const strip = (r: Record<string, unknown>) => {
    const { time: _t, sessionId: _s, pid: _p, hostname: _h, ...rest } = r;
    return rest;
  };
  assert.notDeepEqual(strip(lines[0]!), strip(lines[1]!), `the lines name no tenant: ${JSON.stringify(lines.map(strip))}`);
});
