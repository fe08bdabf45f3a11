/**
 * The raw-connection sweep of a listener (http-limits.ts trackConnections): every TCP connection
 * is tracked until it closes or is handed over (an upgraded WebSocket, closed by the session
 * drain), and `destroyAll()` drops exactly what is still tracked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackConnections } from '../../src/server/http-limits.js';
import { makeCa, makeLeaf } from '../helpers/tls-certs.js';

test('destroyAll drops the tracked connections; a handed-over one stays open; a closed one is forgotten', async () => {
  const server = createServer();
  const tracked = trackConnections(server);
  const accepted: Socket[] = [];
  server.on('connection', (s: Socket) => accepted.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const clients = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
  try {
    await Promise.all(clients.map((c) => once(c, 'connect')));
    while (accepted.length < 3) await once(server, 'connection');
    const [kept, dropped, closed] = accepted as [Socket, Socket, Socket];
    tracked.untrack(kept); // as the upgrade handler does once the socket is a session
    closed.destroy();
    await once(closed, 'close');
    tracked.destroyAll();
    assert.equal(dropped.destroyed, true);
    assert.equal(kept.destroyed, false);
  } finally {
    for (const c of clients) c.destroy();
    for (const s of accepted) s.destroy();
    server.close();
    await once(server, 'close');
  }
});

test('on a TLS listener, handing over the TLS socket untracks the TCP socket under it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-track-'));
  const ca = makeCa(dir, 'ca');
  const leaf = makeLeaf(dir, ca, 'server', 'server');
  const server = createHttpsServer({ key: leaf.key, cert: leaf.cert });
  const tracked = trackConnections(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const client = tlsConnect({ port, host: '127.0.0.1', ca: ca.cert });
  try {
    const [secured] = (await once(server, 'secureConnection')) as [TLSSocket];
    tracked.untrack(secured); // what the upgrade handler has: the TLS socket
    tracked.destroyAll();
    assert.equal(secured.destroyed, false, 'the session\'s socket is left to the session drain');
  } finally {
    client.destroy();
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
