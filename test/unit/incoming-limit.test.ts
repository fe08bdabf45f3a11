/**
 * limitIncomingMessages leans on a ws internal (the Receiver's `_maxPayload`). These run against
 * the installed ws: an upgrade that renamed or moved it fails here, not silently in production.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { limitIncomingMessages } from '../../src/session/incoming-limit.js';

/** A ws server (maxPayload 4096) that applies `onConnection` to each socket, and one client. */
async function pair(onConnection: (ws: WebSocket) => void): Promise<{ client: WebSocket; received: Promise<Buffer>; closed: Promise<number>; stop: () => Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 4096 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  let gotMessage!: (data: Buffer) => void;
  const received = new Promise<Buffer>((resolve) => (gotMessage = resolve));
  wss.on('connection', (ws) => {
    onConnection(ws);
    ws.on('message', (data) => gotMessage(data as Buffer));
    ws.on('error', () => {});
  });
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  client.on('error', () => {});
  const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    client.once('open', () => resolve());
    client.once('error', reject);
  });
  const stop = async (): Promise<void> => {
    client.terminate();
    await closed;
    for (const ws of wss.clients) ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  };
  return { client, received, closed, stop };
}

test('the installed ws keeps the per-socket bound where limitIncomingMessages sets it', async () => {
  let applied: boolean | undefined;
  let internal: unknown;
  const p = await pair((ws) => {
    applied = limitIncomingMessages(ws, 16);
    internal = (ws as unknown as { _receiver: { _maxPayload: unknown } })._receiver._maxPayload;
  });
  try {
    // 'connection' came before the client's 'open': checked before anything could wait on a bound that is not there.
    assert.equal(applied, true);
    assert.equal(internal, 16);
    p.client.send('x'.repeat(17)); // under the server's maxPayload, over the socket's bound
    assert.equal(await p.closed, 1009);
  } finally {
    await p.stop();
  }
});

test('a lowered bound can be raised again for the same socket', async () => {
  const p = await pair((ws) => {
    limitIncomingMessages(ws, 16);
    limitIncomingMessages(ws, 4096);
  });
  try {
    p.client.send('y'.repeat(1000));
    assert.equal((await p.received).length, 1000);
  } finally {
    await p.stop();
  }
});

test('without the internal it changes nothing and says so', async () => {
  const warning = new Promise<Error>((resolve) => process.once('warning', resolve));
  assert.equal(limitIncomingMessages({ _receiver: null } as unknown as WebSocket, 16), false);
  assert.equal((await warning).name, 'RampartWarning');
  const receiver = {};
  assert.equal(limitIncomingMessages({ _receiver: receiver } as unknown as WebSocket, 16), false);
  assert.deepEqual(receiver, {});
});
