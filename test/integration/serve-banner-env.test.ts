/**
 * The start banner's token command carries the `RAMPART_*` variables that decide the development
 * key (here `RAMPART_DATA_DIR`): run in a shell without them, it used to read ./data, make a second
 * key there and sign a token the server refused.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openClient, closeAll, within, type TestClient } from '../helpers/harness.js';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const children: ChildProcess[] = [];
const clients: TestClient[] = [];
const dir = mkdtempSync(join(tmpdir(), 'rampart-banner-env-'));

after(async () => {
  await closeAll(...clients);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.on('exit', r)) : undefined)));
  rmSync(dir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAMPART_')) e[k] = v;
  return { ...e, ...extra };
}

test('banner token command signs with the key of a server whose dataDir came from RAMPART_DATA_DIR', async () => {
  const server = spawn(process.execPath, ['--import', TSX, CLI, 'serve'], {
    cwd: dir,
    env: env({ RAMPART_PORT: '0', RAMPART_DATA_DIR: join(dir, 'keys'), RAMPART_STORAGE: `sqlite:${join(dir, 'r.db')}`, RAMPART_LOG_LEVEL: 'silent' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(server);
  server.stdout!.resume();
  let stderr = '';
  const banner = within(
    new Promise<string>((resolve) => {
      server.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /Get a development token:\s+((?:RAMPART_\w+=\S+ )*)(?:npm run -s token --|node (?:--import tsx )?\S+ token) (.+)\n/.exec(stderr);
        if (m) resolve(`${m[1]!}\n${m[2]!}`);
      });
    }),
    30000,
    'banner',
  );
  const [assignments, rest] = (await banner).split('\n') as [string, string];
  const args = rest.trim().split(/\s+/);
  // The variables the banner printed before the command, as the shell would set them.
  const printed = Object.fromEntries(assignments.trim().split(/\s+/).filter(Boolean).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
  const port = Number(/127\.0\.0\.1:(\d+)\/ws/.exec(stderr)![1]);
  // The printed command, run where the server was started, in a shell without the variable.
  const tok = spawn(process.execPath, ['--import', TSX, CLI, 'token', ...args], { cwd: dir, env: env(printed), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(tok);
  let token = '';
  tok.stdout!.on('data', (d: Buffer) => (token += d.toString()));
  tok.stderr!.resume();
  assert.equal(await new Promise((resolve) => tok.on('close', resolve)), 0);
  const client = openClient(`ws://127.0.0.1:${port}/ws`);
  clients.push(client);
  await client.opened;
  client.send({ type: 'auth', token: token.trim(), deviceId: 'probe-1' });
  const frame = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  assert.equal(frame.type, 'auth_success', `banner args: ${args.join(' ')}; got ${JSON.stringify(frame)}`);
});
