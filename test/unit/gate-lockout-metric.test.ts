/**
 * A query token refused because its IP is locked out is an authentication outcome, counted in
 * `rampart_auth_results_total` as `locked_out` — also when the gate's first look finds the lockout
 * (before the token's check), not only when the check does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { runHandshakeGate, type HandshakeGateOptions } from '../../src/gate/handshake-gate.js';
import { compileOriginPolicy } from '../../src/gate/origin.js';
import type { ConnectionRegistry, Limiter } from '../../src/limits/limiter.js';

test('a query token refused at an IP already locked out is counted as locked_out', async () => {
  const results: string[] = [];
  const limiter = { consume: () => ({ allowed: true }), block: () => undefined, blockedFor: () => 250_000, close: async () => {} } as unknown as Limiter;
  const registry = { acquireIp: () => true, releaseIp: () => undefined } as unknown as ConnectionRegistry;
  const options: HandshakeGateOptions = {
    limiter,
    registry,
    originPolicy: compileOriginPolicy([], true),
    attemptRule: { name: 'attempts', limit: 100, windowMs: 60_000 },
    maxConnectionsPerIP: 10,
    allowQueryToken: true,
    checkToken: async () => 'locked_out',
    lockoutKey: (ip) => `lock:${ip}`,
    capacity: () => 'ok',
    reserve: () => () => undefined,
    onAuthResult: (r) => results.push(r),
  };
  const req = { url: '/ws?token=abc', rawHeaders: [] } as unknown as IncomingMessage;
  const result = await runHandshakeGate(options, req, '192.0.2.1');
  assert.deepEqual(result, { ok: false, status: 429, event: 'auth_locked_out', retryAfterMs: 250_000 });
  assert.deepEqual(results, ['locked_out'], 'the refused query token is counted');
});
