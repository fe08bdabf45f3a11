/**
 * A query-token handshake whose client left while its token check waited in its IP's line is
 * neither verified nor reported as a security event (the upgrade handler treats a client gone
 * during the gate the same way).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { createUpgradeHandler, type UpgradeHandlerOptions } from '../../src/server/upgrade-handler.js';
import type { HandshakeGateOptions } from '../../src/gate/handshake-gate.js';
import { compileOriginPolicy } from '../../src/gate/origin.js';
import { createTokenChecks } from '../../src/pipeline/token-checks.js';
import type { ConnectionRegistry, Limiter } from '../../src/limits/limiter.js';
import type { VerifyResult } from '../../src/auth/token-verifier.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a query-token handshake abandoned while its check waited in line: no security event', async () => {
  let release!: () => void;
  const gateOpen = new Promise<void>((r) => (release = r));
  let verified = 0;
  const verify = async (): Promise<VerifyResult> => {
    verified++;
    await gateOpen;
    return { ok: false, reason: 'invalid_token' };
  };
  const limiter = { consume: async () => ({ allowed: true }), block: async () => undefined, blockedFor: async () => 0, close: async () => {} } as unknown as Limiter;
  const registry = { acquireIp: async () => true, releaseIp: async () => {} } as unknown as ConnectionRegistry;
  const checkToken = createTokenChecks({ limiter, verify, lockoutKey: (ip) => `lock:${ip}`, countFailure: async () => {} });
  const gate: HandshakeGateOptions = {
    limiter,
    registry,
    originPolicy: compileOriginPolicy([], true),
    attemptRule: { name: 'attempts', limit: 100, windowMs: 60_000 },
    maxConnectionsPerIP: 10,
    allowQueryToken: true,
    checkToken,
    lockoutKey: (ip) => `lock:${ip}`,
    capacity: () => 'ok',
    reserve: () => () => {},
  };
  const security: string[] = [];
  const outcomes: string[] = [];
  const handler = createUpgradeHandler({
    gate,
    registry,
    trustedProxies: new Set(),
    ipv6PrefixLength: 56,
    security: (event: string) => security.push(event),
    logger: { error: () => {}, warn: () => {}, info: () => {} },
    isClosing: () => false,
    onHandshake: (result: string, reason: string) => outcomes.push(`${result}:${reason}`),
  } as unknown as UpgradeHandlerOptions);
  const socket = (): Duplex => {
    const s = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    (s as unknown as { remoteAddress: string }).remoteAddress = '192.0.2.7';
    return s;
  };
  const request = (s: Duplex): IncomingMessage => ({ url: '/ws?token=abc', rawHeaders: [], headers: {}, socket: s }) as unknown as IncomingMessage;
  const first = socket();
  const second = socket();
  handler(request(first), first, Buffer.alloc(0));
  handler(request(second), second, Buffer.alloc(0));
  await sleep(20);
  second.destroy(); // the client left while its check waited behind the first
  release();
  await sleep(50);
  assert.equal(verified, 1, 'the gone client\'s token was not verified');
  assert.deepEqual(security, ['query_token_invalid_token'], `only the judged token is a security event; got ${JSON.stringify(security)} (outcomes ${JSON.stringify(outcomes)})`);
});
