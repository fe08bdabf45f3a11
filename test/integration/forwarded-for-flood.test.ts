/**
 * Behind a trusted proxy, a client that sends 2,000 header lines cannot push the proxy's own
 * X-Forwarded-For line past Node's header count and have its forged one believed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../helpers/harness.js';
import { RawSocket } from '../helpers/raw-ws.js';

let srv: TestServer;
before(async () => {
  srv = await startServer({ behindProxy: ['127.0.0.1'] });
});
after(async () => {
  await srv.close();
});

test('the client IP is the right-most X-Forwarded-For entry even after 2000 other header lines', { timeout: 15_000 }, async () => {
  const junk: [string, string][] = [];
  for (let i = 0; i < 2000; i++) junk.push(['a', '1']); // 12 KB: fits the default maxHeaderSize (16384)
  const raw = await RawSocket.open(srv.port);
  // forged line first (client), flood, then the line the proxy appended (the real client 203.0.113.9)
  const status = await raw.upgrade('/ws', [['X-Forwarded-For', '198.51.100.66'], ...junk, ['X-Forwarded-For', '203.0.113.9']]);
  assert.equal(status, 101);
  const real = await srv.server.limits.registry.countIp('203.0.113.9');
  const forged = await srv.server.limits.registry.countIp('198.51.100.66');
  await raw.destroy();
  assert.deepEqual({ real, forged }, { real: 1, forged: 0 }, 'the IP slot must be counted for the proxy-supplied client, not the forged one');
});
