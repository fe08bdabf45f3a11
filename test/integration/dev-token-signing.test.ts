/**
 * Development tokens (`rampart token`, `GET /dev/token`) are signed with what the server's `jwt`
 * config accepts: the first HMAC algorithm of `jwt.algorithms` and the first of `jwt.types`. They
 * were always HS256, so with `jwt.algorithms: ["HS512"]` (a valid config) the newcomer got a token
 * the same server refused.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { startServer, openClient, closeAll, TEST_SECRET, type TestServer, type TestClient } from '../helpers/harness.js';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const servers: TestServer[] = [];
const clients: TestClient[] = [];
after(async () => {
  await closeAll(...clients);
  for (const s of servers) await s.close();
});

async function authResult(url: string, token: string): Promise<string> {
  const client = openClient(url);
  clients.push(client);
  await client.opened;
  client.send({ type: 'auth', token, deviceId: 'probe-1' });
  const frame = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  return `${String(frame.type)} ${String((frame as { reason?: unknown }).reason ?? '')}`.trim();
}

test('rampart token --config (jwt.secret, jwt.algorithms ["HS512"]) prints a token that server accepts', async () => {
  // src/cli/token.ts help: "Prints a token signed with jwt.secret"; docs/operations.md CLI:
  // "print a development token (HS256 setups; ...)" — and the command refuses outright where no
  // server would accept its token (jwt.issuers, production). Here it prints one the server refuses.
  const server = await startServer({ jwt: { secret: TEST_SECRET, algorithms: ['HS512'] } });
  servers.push(server);
  const file = join(server.dir, 'rampart.json');
  writeFileSync(file, JSON.stringify({ jwt: { secret: TEST_SECRET, algorithms: ['HS512'] }, dataDir: server.dir }));
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAMPART_')) env[k] = v;
  const run = spawn(process.execPath, ['--import', TSX, CLI, 'token', '--sub', randomUUID(), '--config', file], { cwd: server.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  run.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  run.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => run.on('close', resolve));
  // Either refuse clearly (non-zero) or print a token the server accepts; never a dud.
  if (code !== 0) return assert.match(stderr, /algorithm/);
  assert.equal(await authResult(server.url, stdout.trim()), 'auth_success');
});

test('the demo endpoint /dev/token (development key, jwt.algorithms ["HS512"]) signs a token that server accepts', async () => {
  // protocol.md §10: "GET /dev/token?name=NAME → {token, userId, expiresAt}" served when the server
  // signs with its development key; jwt.algorithms ["HS512"] with no key is a valid config
  // (schema: "No key configured means the development secret: HMAC"), so the demo must work.
  const server = await startServer({ jwt: { algorithms: ['HS512'] } });
  servers.push(server);
  const res = await fetch(`${server.httpUrl}/dev/token?name=alice`);
  assert.equal(res.status, 200);
  const { token } = (await res.json()) as { token: string };
  assert.equal(await authResult(server.url, token), 'auth_success');
});
