/**
 * What `rampart serve` prints on the development key: URLs that parse (an IPv6 host in brackets),
 * and a token command that signs with the same key — with the `--config` the server was started
 * with (it used to drop it, so the command read ./data, made a second key there and signed a token
 * this server refused) and, run from elsewhere than the package root, as `node <cli> token`. A demo
 * page served on [::1] is one of the server's own origins. The command carries the `RAMPART_*`
 * variables that decide the key (run in a shell without them it read ./data and signed with a
 * second key).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openClient, closeAll, within, startServer, type TestClient, type TestServer } from '../helpers/harness.js';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const children: ChildProcess[] = [];
const clients: TestClient[] = [];
const servers: TestServer[] = [];
const dir = mkdtempSync(join(tmpdir(), 'rampart-banner-'));

after(async () => {
  await closeAll(...clients);
  for (const s of servers) await s.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAMPART_')) e[k] = v;
  return { ...e, ...extra };
}

/**
 * Starts `serve` with `serveArgs` and `serverEnv`, runs the token command its banner prints — with
 * the `RAMPART_*` variables printed before it, in a shell without the server's — where the server
 * was started, and asserts the server accepts the token.
 */
async function bannerTokenAccepted(serveArgs: string[], serverEnv: Record<string, string> = {}): Promise<void> {
  const server = spawn(process.execPath, ['--import', TSX, CLI, 'serve', ...serveArgs], { cwd: dir, env: env(serverEnv), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(server);
  server.stdout!.resume();
  let stderr = '';
  const banner = within(
    new Promise<string>((resolve) => {
      server.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /Get a development token:\s+((?:RAMPART_\w+=\S+ )*)(?:npm run -s token --|node (?:--import \S+ )?\S+ token) (.+)\n/.exec(stderr);
        if (m) resolve(`${m[1]!}\n${m[2]!}`);
      });
    }),
    30000,
    'banner',
  );
  const [assignments, rest] = (await banner).split('\n') as [string, string];
  const args = rest.trim().split(/\s+/);
  const printed = Object.fromEntries(assignments.trim().split(/\s+/).filter(Boolean).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
  const port = Number(/127\.0\.0\.1:(\d+)\/ws/.exec(stderr)![1]);
  // npm run token = `rampart token ARGS`.
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
  assert.equal(frame.type, 'auth_success', `banner: ${assignments}${args.join(' ')}; got ${JSON.stringify(frame)}`);
}

test('the token command the serve banner prints yields a token that server accepts', async () => {
  // README: "`npm start` prints how to get a token". docs/protocol.md §9: jwt key "none in
  // development = a key generated once in `dataDir/dev-signing-key`" — the dataDir of the config
  // the server runs with.
  const file = join(dir, 'dev.json');
  writeFileSync(file, JSON.stringify({ port: 0, host: '127.0.0.1', dataDir: join(dir, 'keys'), storage: `sqlite:${join(dir, 'r.db')}` }));
  await bannerTokenAccepted(['--config', file]);
});

test('the banner\'s token command carries the RAMPART_* variables that decide the key (a dataDir from RAMPART_DATA_DIR)', async () => {
  await bannerTokenAccepted([], { RAMPART_PORT: '0', RAMPART_DATA_DIR: join(dir, 'env-keys'), RAMPART_STORAGE: `sqlite:${join(dir, 'env.db')}`, RAMPART_LOG_LEVEL: 'silent' });
});

test('served on [::1], the demo page (the server\'s own origin) may open the WebSocket', async () => {
  // protocol.md §9: allowedOrigins "[] (= own origins, on the bound port)"; client.md: the demo's
  // token endpoint answers peers that "name the server by a loopback host (127.0.0.1, localhost,
  // [::1])" from its own origin. Actual: ownOrigins() (src/gate/origin.ts) lists only localhost and
  // 127.0.0.1, so the page at http://[::1]:PORT/ gets its token and then a 403 on /ws.
  const server = await startServer({ host: '::1', allowedOrigins: [], jwt: {} });
  servers.push(server);
  const origin = `http://[::1]:${server.port}`;
  const page = await fetch(`${origin}/dev/token?name=alice`, { headers: { 'sec-fetch-site': 'same-origin' } });
  assert.equal(page.status, 200, 'the token endpoint serves the [::1] page');
  const client = openClient(`ws://[::1]:${server.port}/ws`, { origin });
  clients.push(client);
  await client.opened; // HttpRefusal 403 on the current code
});

test('serve on host ::1 prints URLs that parse (IPv6 literal in brackets)', async () => {
  // README: "`npm start` prints how to get a token"; the banner "Rampart is listening on
  // ws://HOST:PORT/ws (demo page: http://HOST:PORT/)" prints ws://::1:PORT/ws, which is no URL.
  const file = join(dir, 'v6.json');
  writeFileSync(file, JSON.stringify({ port: 0, host: '::1', dataDir: join(dir, 'keys6'), storage: `sqlite:${join(dir, 'r6.db')}` }));
  const server = spawn(process.execPath, ['--import', TSX, CLI, 'serve', '--config', file], { cwd: dir, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(server);
  server.stdout!.resume();
  let stderr = '';
  const url = await within(
    new Promise<string>((resolve) => {
      server.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /listening on (\S+) /.exec(stderr);
        if (m) resolve(m[1]!);
      });
    }),
    30000,
    'banner',
  );
  assert.equal(new URL(url).hostname, '[::1]', url); // throws "Invalid URL" on ws://::1:PORT/ws
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  await exited;
});
