/**
 * Cross-site WebSocket hijacking through the hybi-08 origin header. protocol.md §1 accepts
 * `Sec-WebSocket-Version` 13 (or 8); a version-8 browser sends its page's origin as
 * `Sec-WebSocket-Origin`, not `Origin` (ws reads it as the origin for version 8 too). The gate
 * read only `Origin`, so such a page counted as "a missing Origin (non-browser client)" and was
 * admitted by default; it must meet the same rules (§1 "Origin rules": 403). On version 13 the
 * header means nothing, as in ws.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startServer, type TestServer } from '../helpers/harness.js';

let srv: TestServer;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv.close();
});

function upgradeStatus(headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: srv.port,
      path: '/ws',
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('a version-8 upgrade whose Sec-WebSocket-Origin is a foreign page is refused 403 like a foreign Origin', async () => {
  // Control: the same foreign origin as `Origin` on version 13 is refused.
  assert.equal(await upgradeStatus({ 'Sec-WebSocket-Version': '13', Origin: 'https://evil.test' }), 403);
  const status = await upgradeStatus({ 'Sec-WebSocket-Version': '8', 'Sec-WebSocket-Origin': 'https://evil.test' });
  assert.equal(status, 403, `a hybi-08 browser page on https://evil.test was admitted (HTTP ${status})`);
});

// Version 13 has no Sec-WebSocket-Origin: a line of it is not an origin (as in ws).
test('a version-13 upgrade without Origin is a missing Origin, whatever Sec-WebSocket-Origin says', async () => {
  assert.equal(await upgradeStatus({ 'Sec-WebSocket-Version': '13' }), 101, 'control: no Origin is allowed by default');
  const status = await upgradeStatus({ 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Origin': 'https://other.test' });
  assert.equal(status, 101, `version 13: Sec-WebSocket-Origin is not an origin (protocol.md: "A version-8 upgrade's"), got ${status}`);
});

test('a version-13 upgrade with an allowed Origin is not refused for an extra Sec-WebSocket-Origin line', async () => {
  const own = 'http://localhost:3000'; // allowedOrigins in the test harness
  assert.equal(await upgradeStatus({ 'Sec-WebSocket-Version': '13', Origin: own }), 101, 'control');
  const status = await upgradeStatus({ 'Sec-WebSocket-Version': '13', Origin: own, 'Sec-WebSocket-Origin': own });
  assert.equal(status, 101, `got ${status}`);
});
