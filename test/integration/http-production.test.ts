/**
 * Production mode serves no development route (/, /demo*, /client/*, /protocol/*, /dev/*), and a
 * request target in absolute form (RFC 9112 §3.2.2) is routed by its path.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startServer, TEST_SECRET, type TestServer } from '../helpers/harness.js';

let srv: TestServer;
before(async () => {
  srv = await startServer({
    mode: 'production',
    jwt: { secret: TEST_SECRET, issuer: 'https://issuer.example.com', audience: 'rampart' },
    allowedOrigins: ['https://app.example.com'],
    behindProxy: ['10.0.0.1'],
  });
});
after(async () => {
  await srv.close();
});

function rawStatus(port: number, bytes: string): Promise<number> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(Buffer.concat(chunks).toString('latin1'))?.[1] ?? 0)));
    setTimeout(() => s.destroy(), 5000).unref();
  });
}

test('production: /, /demo, /client/*, /protocol/*, /dev/token, /dev/user are 404', async () => {
  for (const path of ['/', '/demo', '/demo.js', '/client/index.js', '/protocol/bounds.js', '/dev/token?name=a', '/dev/user?name=a']) {
    const res = await fetch(`${srv.httpUrl}${path}`);
    assert.equal(res.status, 404, path);
  }
});

test('absolute-form request target (RFC 9112 §3.2.2: a server MUST accept it): /healthz answers 200', async () => {
  assert.equal(await rawStatus(srv.port, `GET http://127.0.0.1:${srv.port}/healthz HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nConnection: close\r\n\r\n`), 200);
});
