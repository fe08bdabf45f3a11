/**
 * A refused query token is an authentication outcome too. docs/protocol.md (metrics):
 * `rampart_auth_results_total` counts every authentication (first `auth`, query token, refresh),
 * `ok` or the `auth_failure` reason. The handshake gate judged the query token and refused it with
 * 401, but nothing counted it: a credential-stuffing run against `?token=` never showed up.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, handshakeStatus, token, newUserId, type TestServer } from '../helpers/harness.js';

let srv: TestServer | undefined;
after(async () => {
  await srv?.close();
});

async function failures(url: string, reason: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith('rampart_auth_results_total{') && l.includes('result="failure"') && l.includes(`reason="${reason}"`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

test('a refused query token (401) is counted in rampart_auth_results_total as a failure with its reason', { timeout: 15_000 }, async () => {
  srv = await startServer({ allowQueryToken: true, metrics: { port: 0 }, limits: { maxAuthFailures: 1000 } });
  const metricsUrl = `http://127.0.0.1:${srv.server.metricsAddress()!.port}/metrics`;
  const before = await failures(metricsUrl, 'invalid_token');
  const forged = await token({ sub: newUserId() }, 'another-secret-another-secret-another-secret');
  assert.equal(await handshakeStatus(`${srv.url}?token=${forged}`), 401);
  assert.equal(await handshakeStatus(`${srv.url}?token=${forged}`), 401);
  const after = await failures(metricsUrl, 'invalid_token');
  assert.equal(after - before, 2, 'two refused query tokens: failure/invalid_token should grow by 2');
});
