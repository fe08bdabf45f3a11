/**
 * `rampart_frames_in_total{type="auth"}` counts every accepted `auth` frame (docs/protocol.md §10):
 * first authentications as well as token refreshes. It used to count refreshes only — the first
 * `auth` frame went to the authenticator before any count.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeAll, newUserId, openClient, startServer, token, type TestServer } from '../helpers/harness.js';

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function framesIn(srv: TestServer, type: string): Promise<number> {
  const json = await srv.server.metrics.registry.getMetricsAsJSON();
  const metric = json.find((m) => m.name === 'rampart_frames_in_total');
  const values = (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values.find((v) => v.labels.type === type)?.value ?? 0;
}

test('the first auth frame is counted in rampart_frames_in_total{type="auth"}', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  servers.push(srv);
  const before = await framesIn(srv, 'auth');
  const sub = newUserId();
  const c = openClient(srv.url);
  await c.opened;
  c.send({ type: 'auth', token: await token({ sub }) });
  await c.nextOfType('auth_success');
  c.send({ type: 'auth', token: await token({ sub, jti: 'refresh-1' }) });
  await c.nthOfType('auth_success', 2);
  assert.equal((await framesIn(srv, 'auth')) - before, 2, 'one accepted first auth and one refresh');
  await closeAll(c);
});
