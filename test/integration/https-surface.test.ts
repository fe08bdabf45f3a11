/**
 * Over HTTPS every answer carries HSTS — the routes' and those written to the socket directly (a
 * handshake refusal, a 431) — and a connection that never starts TLS, or never sends a request, is cut.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, within, type TestServer } from '../helpers/harness.js';
import { makeCa, makeLeaf } from '../helpers/tls-certs.js';

let dir: string;
let srv: TestServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rampart-review-tls-'));
  const ca = makeCa(dir, 'ca');
  const leaf = makeLeaf(dir, ca, 'srv', 'server');
  srv = await startServer({ limits: { headersTimeout: 300, maxHeaderSize: 4096 }, tls: { certFile: leaf.certFile, keyFile: leaf.keyFile } });
});
after(async () => {
  await srv.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `bytes` over TLS, reads until close (or limit), returns the head of the answer. */
function tlsExchange(bytes: string, limitMs = 5000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = tlsConnect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false }, () => s.write(bytes));
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

const head = (text: string): string => text.split('\r\n\r\n')[0] ?? '';
const hasHsts = (text: string): boolean => /^strict-transport-security: max-age=31536000$/im.test(head(text));

describe('HTTPS surface', { timeout: 30_000 }, () => {
  test('control: /healthz and a 405 over HTTPS carry HSTS', async () => {
    const a = await tlsExchange('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.match(a.text, /^HTTP\/1\.1 200/);
    assert.ok(hasHsts(a.text), head(a.text));
    const b = await tlsExchange('OPTIONS /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.match(b.text, /^HTTP\/1\.1 405/);
    assert.ok(hasHsts(b.text), head(b.text));
  });

  test('request headers over maxHeaderSize over TLS: the 431 arrives', async () => {
    const r = await tlsExchange(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'p'.repeat(6000)}\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 431/, JSON.stringify(r.text.slice(0, 80)));
  });

  test('an upgrade refusal (404, wrong path) over HTTPS carries HSTS (operations.md: every HTTPS response)', async () => {
    const r = await tlsExchange(
      'GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    assert.match(r.text, /^HTTP\/1\.1 404/);
    assert.ok(hasHsts(r.text), head(r.text));
  });

  test('a 431 over HTTPS carries HSTS (operations.md: every HTTPS response)', async () => {
    const r = await tlsExchange(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'p'.repeat(6000)}\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 431/);
    assert.ok(hasHsts(r.text), head(r.text));
  });

  test('a TCP connection that never starts TLS is cut (handshakeTimeout)', async () => {
    const s = connect(srv.port, '127.0.0.1');
    s.on('error', () => {});
    s.resume();
    await within(new Promise<void>((resolve) => s.on('close', () => resolve())), 6000, 'pre-TLS idle socket never cut');
  });

  test('a TLS connection that never sends a request is cut (headersTimeout)', async () => {
    const r = await tlsExchange('', 6000);
    assert.ok(r.closed, 'post-handshake idle TLS socket never cut');
  });
});
