/**
 * The handshake gate gives back every place it took when it refuses: a query token whose lockout
 * check fails (Redis down) is refused 503 and its IP slot is released.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { runHandshakeGate, type HandshakeGateOptions } from '../../src/gate/handshake-gate.js';
import { compileOriginPolicy } from '../../src/gate/origin.js';
import type { ConnectionRegistry, Limiter } from '../../src/limits/limiter.js';

function gate(checkToken: HandshakeGateOptions['checkToken']): { options: HandshakeGateOptions; slots: () => number; reserved: () => number } {
  let slots = 0;
  let reserved = 0;
  const limiter = { consume: () => ({ allowed: true }), block: () => undefined, blockedFor: () => 0, close: async () => {} } as unknown as Limiter;
  const registry = {
    acquireIp: () => (slots++, true),
    releaseIp: () => void slots--,
  } as unknown as ConnectionRegistry;
  return {
    slots: () => slots,
    reserved: () => reserved,
    options: {
      limiter,
      registry,
      originPolicy: compileOriginPolicy([], true),
      attemptRule: { name: 'attempts', limit: 100, windowMs: 60_000 },
      maxConnectionsPerIP: 10,
      allowQueryToken: true,
      checkToken,
      lockoutKey: (ip) => `lock:${ip}`,
      capacity: () => 'ok',
      reserve: () => {
        reserved++;
        return () => void reserved--;
      },
    },
  };
}

const request = (url: string): IncomingMessage => ({ url, rawHeaders: [] }) as unknown as IncomingMessage;

test('a query token whose lockout cannot be read is refused 503, and the IP slot is given back', async () => {
  const g = gate(async () => {
    throw new Error('redis down');
  });
  const result = await runHandshakeGate(g.options, request('/ws?token=abc'), '192.0.2.1');
  assert.deepEqual(result, { ok: false, status: 503, event: 'backend_unavailable' });
  assert.equal(g.slots(), 0, 'IP slot released');
  assert.equal(g.reserved(), 0, 'node-wide place released');
});

test('a locked-out IP is refused 429 at its query token, holding nothing', async () => {
  const g = gate(async () => 'locked_out');
  const result = await runHandshakeGate(g.options, request('/ws?token=abc'), '192.0.2.1');
  assert.deepEqual(result, { ok: false, status: 429, event: 'auth_locked_out' });
  assert.equal(g.slots(), 0);
  assert.equal(g.reserved(), 0);
});
