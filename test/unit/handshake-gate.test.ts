/**
 * The handshake gate gives back every place it took when it refuses: a query token whose lockout
 * check fails (Redis down) is refused 503 and its IP slot is released. A query-token handshake
 * whose client left while its check waited in its IP's line is neither verified nor reported as a
 * security event.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { runHandshakeGate, type HandshakeGateOptions } from '../../src/gate/handshake-gate.js';
import { compileOriginPolicy } from '../../src/gate/origin.js';
import type { ConnectionRegistry, Limiter } from '../../src/limits/limiter.js';
import { Duplex } from 'node:stream';
import { createUpgradeHandler, type UpgradeHandlerOptions } from '../../src/server/upgrade-handler.js';
import { createTokenChecks } from '../../src/pipeline/token-checks.js';
import type { VerifyResult } from '../../src/auth/token-verifier.js';

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
  assert.deepEqual(result, { ok: false, status: 503, event: 'backend_unavailable', retryAfterMs: 5000 });
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

test('an IP locked out while its query token waited in line: 429 with the lockout left as Retry-After', async () => {
  const g = gate(async () => 'locked_out');
  let reads = 0;
  // Not locked when the gate looks first; locked (250 s left) by the time the token's turn came.
  (g.options.limiter as unknown as { blockedFor: () => number }).blockedFor = () => (reads++ === 0 ? 0 : 250_000);
  const result = await runHandshakeGate(g.options, request('/ws?token=abc'), '192.0.2.1');
  assert.deepEqual(result, { ok: false, status: 429, event: 'auth_locked_out', retryAfterMs: 250_000 });
});

/** What a WebSocket upgrade request carries (src/gate/websocket-request.ts). */
const WS_HEADERS = { upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };

test('a query-token handshake abandoned while its check waited in line: not verified, no security event', async () => {
  let release!: () => void;
  const opened = new Promise<void>((r) => (release = r));
  let verified = 0;
  const verify = async (): Promise<VerifyResult> => {
    verified++;
    await opened;
    return { ok: false, reason: 'invalid_token' };
  };
  const limiter = { consume: () => ({ allowed: true }), block: () => undefined, blockedFor: () => 0, close: async () => {} } as unknown as Limiter;
  const g = gate(createTokenChecks({ limiter, verify, lockoutKey: (ip) => `lock:${ip}`, countFailure: async () => {} }));
  const security: string[] = [];
  const handler = createUpgradeHandler({
    wss: { on: () => undefined },
    gate: g.options,
    registry: g.options.registry,
    trustedProxies: new Set(),
    ipv6PrefixLength: 56,
    security: (event: string) => security.push(event),
    logger: { error: () => {}, warn: () => {}, info: () => {} },
    isClosing: () => false,
  } as unknown as UpgradeHandlerOptions);
  const socket = (): Duplex => {
    const s = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    (s as unknown as { remoteAddress: string }).remoteAddress = '192.0.2.7';
    return s;
  };
  const upgrade = (s: Duplex): void => handler({ method: 'GET', url: '/ws?token=abc', rawHeaders: [], headers: WS_HEADERS, socket: s } as unknown as IncomingMessage, s, Buffer.alloc(0));
  const first = socket();
  const second = socket();
  upgrade(first);
  upgrade(second);
  await new Promise((r) => setTimeout(r, 20));
  second.destroy(); // the client left while its check waited behind the first
  release();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(verified, 1, "the gone client's token was not verified");
  assert.deepEqual(security, ['query_token_invalid_token'], 'only the judged token is a security event');
  assert.equal(g.slots(), 0, 'both IP slots given back');
});
