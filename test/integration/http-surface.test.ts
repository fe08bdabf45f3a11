/**
 * The HTTP surface before and beside the WebSocket: slow and idle sockets are cut, HTTP/1.0 and
 * pipelining, 405 with Allow on every route, encoded and traversal paths on the demo assets 404,
 * no version in headers; an upgrade on another path is 404, and one ws would refuse (a method other
 * than GET, a bad Sec-WebSocket-Version) is refused before the gate and counted.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startServer, within, waitFor, type TestServer } from '../helpers/harness.js';
import { RawSocket } from '../helpers/raw-ws.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
let srv: TestServer;

before(async () => {
  srv = await startServer({ limits: { headersTimeout: 300, maxHeaderSize: 4096 }, metrics: { token: METRICS_TOKEN } });
});
after(async () => {
  await srv.close();
});

/** Writes raw bytes, reads until the server closes (or `limitMs`), returns everything read. */
function rawExchange(bytes: string, limitMs = 5000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(srv.port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false });
    }, limitMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true });
    });
  });
}

const statuses = (text: string): number[] => [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));

async function handshakeCount(): Promise<number> {
  const res = await fetch(`${srv.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  const body = await res.text();
  let n = 0;
  for (const m of body.matchAll(/^rampart_handshakes_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

describe('slow and idle sockets', { timeout: 20_000 }, () => {
  test('a TCP connection that never sends a byte is cut (headersTimeout)', async () => {
    const raw = await RawSocket.open(srv.port);
    raw.socket.resume();
    await within(raw.closed, 6000, 'idle connection never closed');
  });

  test('keep-alive: a second request half-sent after a first answer is cut', async () => {
    const raw = await RawSocket.open(srv.port);
    raw.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await raw.until(() => raw.status !== undefined);
    assert.equal(raw.status, 200);
    raw.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    await within(raw.closed, 6000, 'half-sent second request never cut');
  });
});

describe('HTTP/1.0, pipelining, methods, paths', { timeout: 20_000 }, () => {
  test('HTTP/1.0 without Host: /healthz answers 200 and the connection closes', async () => {
    const r = await rawExchange('GET /healthz HTTP/1.0\r\n\r\n');
    assert.deepEqual(statuses(r.text), [200]);
    assert.ok(r.closed);
  });

  test('pipelined requests are answered in order', async () => {
    const r = await rawExchange(
      'GET /readyz HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    assert.deepEqual(statuses(r.text), [200, 200, 404]);
  });

  test('methods other than GET/HEAD: 405 with Allow, on every route', async () => {
    for (const [method, path] of [
      ['OPTIONS', '/healthz'],
      ['POST', '/client/index.js'],
      ['PUT', '/'],
      ['DELETE', '/readyz'],
      ['POST', '/dev/token?name=a'],
    ] as const) {
      const res = await fetch(`${srv.httpUrl}${path}`, { method });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), 'GET, HEAD');
    }
    const head = await fetch(`${srv.httpUrl}/client/index.js`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('x-content-type-options'), 'nosniff');
  });

  test('encoded / traversal paths on the demo assets are 404', async () => {
    for (const path of [
      '/client/..%2f..%2fpackage.json',
      '/client/%2e%2e/%2e%2e/package.json',
      '/client/..%252f..%252fpackage.json',
      '/client/..\\..\\package.json',
      '/client/index.js%00.html',
      '/client/../../package.json',
      '//client/index.js',
      '/client/index.js/',
      '/protocol/client-frames.js',
      '/client/node.js',
    ]) {
      const r = await rawExchange(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      const st = statuses(r.text)[0];
      assert.ok(st === 404 || st === 400, `${path} → ${st}`);
      assert.ok(!r.text.includes('"dependencies"'), path);
    }
  });

  test('no Server / X-Powered-By header reveals a version', async () => {
    const res = await fetch(`${srv.httpUrl}/healthz`);
    assert.equal(res.headers.get('server'), null);
    assert.equal(res.headers.get('x-powered-by'), null);
  });
});

describe('upgrade requests', { timeout: 20_000 }, () => {
  test('an upgrade on a non-WebSocket path: 404', async () => {
    const raw = await RawSocket.open(srv.port);
    assert.equal(await raw.upgrade('/healthz'), 404);
    await raw.destroy();
  });

  test('a handshake refused by ws (bad Sec-WebSocket-Version) is counted in rampart_handshakes_total and releases its IP slot', async () => {
    const before = await handshakeCount();
    const raw = await RawSocket.open(srv.port);
    const lines = ['GET /ws HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 99'];
    raw.write(lines.join('\r\n') + '\r\n\r\n');
    await raw.until(() => raw.status !== undefined || raw.ended).catch(() => {});
    assert.notEqual(raw.status, 101);
    await raw.closed;
    await waitFor(async () => (await srv.server.limits.registry.countIp('127.0.0.1')) === 0, 3000, 'IP slot released');
    const after = await handshakeCount();
    assert.equal(after - before, 1, 'every upgrade is counted (protocol.md §10: rampart_handshakes_total)');
  });

  test('a POST upgrade on /ws is refused and counted', async () => {
    const before = await handshakeCount();
    const r = await rawExchange(
      'POST /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    assert.notEqual(statuses(r.text)[0], 101);
    const after = await handshakeCount();
    assert.equal(after - before, 1);
  });
});
