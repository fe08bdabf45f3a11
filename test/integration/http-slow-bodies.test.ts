/** Request bodies that never come (fixed-length or chunked): answered 405, then cut by requestTimeout. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, within, type TestServer } from '../helpers/harness.js';
import { RawSocket } from '../helpers/raw-ws.js';

let srv: TestServer;
before(async () => {
  srv = await startServer({ limits: { headersTimeout: 300 } });
});
after(async () => {
  await srv.close();
});

test('POST with a body that never comes: 405, then the connection is cut (requestTimeout)', { timeout: 15_000 }, async () => {
  const raw = await RawSocket.open(srv.port);
  raw.write('POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nabc');
  await raw.until(() => raw.status !== undefined);
  assert.equal(raw.status, 405);
  await within(raw.closed, 8000, 'slow body never cut');
});

test('chunked body that never ends: cut', { timeout: 15_000 }, async () => {
  const raw = await RawSocket.open(srv.port);
  raw.write('POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
  await raw.until(() => raw.status !== undefined);
  assert.equal(raw.status, 405);
  await within(raw.closed, 8000, 'slow chunked body never cut');
});

