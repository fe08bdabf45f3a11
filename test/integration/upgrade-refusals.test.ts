/**
 * Upgrade requests ws refuses: a refused version is answered with the versions spoken (RFC 6455
 * §4.4), and what the pre-check does not foresee (a malformed Sec-WebSocket-Protocol) is still
 * answered by the server and counted.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startServer, type TestServer } from '../helpers/harness.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
let srv: TestServer;
before(async () => {
  srv = await startServer({ metrics: { token: METRICS_TOKEN } });
});
after(async () => {
  await srv.close();
});

/** Writes the request, reads until the server closes the socket. */
function exchange(bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(srv.port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

async function handshakes(): Promise<number> {
  const body = await (await fetch(`${srv.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  let n = 0;
  for (const m of body.matchAll(/^rampart_handshakes_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

const upgrade = (extra: string[], version = '13'): string =>
  [
    'GET /ws HTTP/1.1',
    'Host: 127.0.0.1',
    'Origin: http://localhost:3000',
    'Upgrade: websocket',
    'Connection: Upgrade, close',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    `Sec-WebSocket-Version: ${version}`,
    ...extra,
  ].join('\r\n') + '\r\n\r\n';

test('an unsupported Sec-WebSocket-Version is answered with the versions the server speaks (RFC 6455 §4.4; ws did)', async () => {
  const text = await exchange(upgrade([], '12'));
  assert.match(text, /^HTTP\/1\.1 400/);
  assert.match(text, /\r\nSec-WebSocket-Version: 13/i, 'the refusal names no supported version');
});

test('a malformed Sec-WebSocket-Protocol is refused before the gate and counted, like the other requests ws refuses', async () => {
  const before = await handshakes();
  const text = await exchange(upgrade(['Sec-WebSocket-Protocol: a b']));
  assert.match(text, /^HTTP\/1\.1 400/);
  assert.equal((await handshakes()) - before, 1, 'ws refused it after the gate admitted it: counted nowhere');
});
