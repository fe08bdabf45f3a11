/**
 * Graceful shutdown with a raw connection that never sends anything: on a TLS listener such a socket
 * never becomes an HTTP connection, and used to hold server.close() (and the storage flush after it)
 * until TLS's own handshake timeout, 120 s.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { startServer, within } from '../helpers/harness.js';
import { makeCa, makeLeaf } from '../helpers/tls-certs.js';
import { spawnServerProcess, writeServerConfig } from '../helpers/server-process.js';

const dir = mkdtempSync(join(tmpdir(), 'rampart-shutdown-idle-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function idleSocket(port: number) {
  const sock = connect(port, '127.0.0.1');
  sock.on('error', () => {});
  return new Promise<typeof sock>((resolve) => sock.once('connect', () => resolve(sock)));
}

for (const tls of [false, true]) {
  test(`close() drops a raw connection that never sent a byte (${tls ? 'TLS' : 'plain'} listener) and finishes`, { timeout: 30_000 }, async () => {
    const ca = makeCa(dir, `ca-${tls}`);
    const leaf = makeLeaf(dir, ca, `srv-${tls}`, 'server');
    const s = await startServer({ shutdownGraceMs: 2000, ...(tls ? { tls: { certFile: leaf.certFile, keyFile: leaf.keyFile } } : {}) });
    const sock = await idleSocket(s.port);
    const dropped = new Promise((resolve) => sock.once('close', resolve));
    try {
      await within(s.close(), 10_000, 'close() with an idle raw socket open');
      await within(dropped, 1000, 'the server to drop the idle socket');
    } finally {
      sock.destroy();
    }
  });
}

test('SIGTERM with a raw connection idle on the TLS port: the process flushes storage and exits 0', { timeout: 30_000 }, async () => {
  const ca = makeCa(dir, 'ca-p');
  const leaf = makeLeaf(dir, ca, 'srv-p', 'server');
  const file = writeServerConfig(dir, 'tls.json', {
    storage: `sqlite:${join(dir, 'p.db')}`,
    shutdownGraceMs: 2000,
    tls: { certFile: leaf.certFile, keyFile: leaf.keyFile },
  });
  const srv = await spawnServerProcess(file, children);
  const sock = await idleSocket(srv.port);
  const code = new Promise<number | null>((resolve) => srv.child.once('exit', (c) => resolve(c)));
  srv.child.kill('SIGTERM');
  const exitCode = await code;
  sock.destroy();
  assert.equal(exitCode, 0, `exit code ${exitCode}; stderr: ${srv.output.join('').slice(-500)}`);
});
