/**
 * The `rampart` command as a newcomer runs it: `serve` with no config in an empty directory,
 * `token`, a bad config file, SIGTERM. Runs `src/cli.ts` through tsx (dist/ may be stale).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { openClient, closeAll, within } from '../helpers/harness.js';
import { RawSocket } from '../helpers/raw-ws.js';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const children = new Set<ChildProcess>();
const dirs: string[] = [];

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAMPART_')) env[k] = v;
  return { ...env, ...extra };
}

interface Run {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when `pred` holds for the output so far. */
  waitOutput(pred: (r: Run) => boolean, ms?: number): Promise<void>;
}

function rampart(args: string[], cwd: string, env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const listeners: (() => void)[] = [];
  const run: Run = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
        for (const l of listeners) l();
      }),
    ),
    waitOutput(pred, ms = 15000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out; stdout=${run.stdout} stderr=${run.stderr}`)), ms);
        const check = (): void => {
          if (pred(run)) {
            clearTimeout(timer);
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            reject(new Error(`exited; stdout=${run.stdout} stderr=${run.stderr}`));
          }
        };
        listeners.push(check);
        check();
      });
    },
  };
  const notify = (): void => {
    for (const l of listeners) l();
  };
  child.stdout!.on('data', (d: Buffer) => {
    run.stdout += d.toString();
    notify();
  });
  child.stderr!.on('data', (d: Buffer) => {
    run.stderr += d.toString();
    notify();
  });
  return run;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-cli-'));
  dirs.push(dir);
  return dir;
}

function listeningPort(stdout: string): number | undefined {
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; port?: number };
    if (entry.msg === 'listening') return entry.port;
  }
  return undefined;
}

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

// The two groups run side by side (each spawns processes; their start-up dominates the runtime).
describe('rampart CLI', { concurrency: true }, () => {
describe('rampart serve with no config', { concurrency: 1 }, () => {
  let cwd: string;
  let server: Run;
  let port: number;

  before(async () => {
    cwd = tempDir();
    server = rampart(['serve'], cwd, { RAMPART_PORT: '0' });
    await server.waitOutput((r) => listeningPort(r.stdout) !== undefined && r.stderr.includes('run -s token'));
    port = listeningPort(server.stdout)!;
  });

  after(async () => {
    if (server.child.exitCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });

  test('listens on 127.0.0.1 and prints how to get a token', () => {
    const line = server.stdout.split('\n').find((l) => l.includes('"listening"'))!;
    assert.equal((JSON.parse(line) as { host: string }).host, '127.0.0.1');
    assert.ok(port > 0);
    assert.match(server.stderr, /npm run -s token -- --sub [0-9a-f-]{36}/);
    assert.match(server.stderr, /"type":"auth"/);
  });

  test('creates ./data/dev-signing-key (mode 600) and ./data/rampart.db', () => {
    const key = join(cwd, 'data', 'dev-signing-key');
    assert.ok(existsSync(key));
    assert.equal(statSync(key).mode & 0o777, 0o600);
    assert.ok(existsSync(join(cwd, 'data', 'rampart.db')));
    // The key never reaches the output.
    const secret = readFileSync(key, 'utf8').trim();
    assert.ok(secret.length >= 32);
    assert.ok(!server.stdout.includes(secret) && !server.stderr.includes(secret));
  });

  test('/healthz answers', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200);
  });

  test('rampart token --sub UUID prints a token the server accepts; without --sub or with a bad flag it exits non-zero', async () => {
    const sub = randomUUID();
    const tokenRun = rampart(['token', '--sub', sub], cwd);
    const missing = rampart(['token'], cwd);
    const unknown = rampart(['token', '--sub', randomUUID(), '--frobnicate'], cwd);
    const notUuid = rampart(['token', '--sub', 'alice'], cwd);
    const [good, noSub, badFlag, badSub] = await Promise.all([tokenRun.exited, missing.exited, unknown.exited, notUuid.exited]);
    assert.notEqual(badSub.code, 0);
    assert.match(notUuid.stderr, /--sub: must be a UUID/);
    assert.equal(notUuid.stdout, '');
    assert.equal(good.code, 0, tokenRun.stderr);
    assert.notEqual(noSub.code, 0);
    assert.match(missing.stderr, /--sub/);
    assert.notEqual(badFlag.code, 0);
    assert.equal(unknown.stdout, '');

    const token = tokenRun.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const client = openClient(`ws://127.0.0.1:${port}/ws`);
    await client.opened;
    client.send({ type: 'auth', token });
    const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
    assert.deepEqual(reply, { type: 'auth_success', userId: sub });
    await closeAll(client);
    // Neither the token nor its signature appears in the server's output.
    assert.ok(!server.stdout.includes(token.split('.')[2]!) && !server.stderr.includes(token.split('.')[2]!));
  });

  test('a malformed frame before auth does not crash the process', async () => {
    const raw = await RawSocket.open(port);
    assert.equal(await raw.upgrade('/ws'), 101);
    raw.sendText(Buffer.from([0xff, 0xfe, 0xfd]));
    assert.equal(await raw.closeCode(), 1007);
    await raw.destroy();
    const raw2 = await RawSocket.open(port);
    assert.equal(await raw2.upgrade('/ws'), 101);
    raw2.write(Buffer.from([0x81, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0]));
    assert.equal(await raw2.closeCode(), 1009);
    await raw2.destroy();
    assert.equal(server.child.exitCode, null);
    const client = openClient(`ws://127.0.0.1:${port}/ws`);
    await client.opened;
    await closeAll(client);
  });

  test('SIGTERM stops it with exit code 0 (even after the log reader went away), closing sockets with 1001', async () => {
    const client = openClient(`ws://127.0.0.1:${port}/ws`);
    await client.opened;
    // Close our ends of its stdout/stderr: its next log lines hit EPIPE.
    server.child.stdout!.destroy();
    server.child.stderr!.destroy();
    server.child.kill('SIGTERM');
    const [{ code }, closed] = await Promise.all([within(server.exited, 10000, 'exit after SIGTERM'), client.closed]);
    assert.equal(code, 0);
    assert.equal(closed.code, 1001);
  });
});

describe('a bad configuration exits non-zero naming the key', { concurrency: 1 }, () => {
  test('unknown key, bad value, bad origin, bad env override', async () => {
    const cwd = tempDir();
    const cases: { config?: unknown; env?: Record<string, string>; expect: RegExp; notEcho?: string }[] = [
      { config: { prot: 8080, rateLimit: { burstLimt: 3 } }, expect: /(?=[\s\S]*"prot")(?=[\s\S]*rateLimit: unknown key\(s\) "burstLimt")/ },
      { config: { port: 'eighty', jwt: { secret: 12345678 } }, expect: /(?=[\s\S]*port: )(?=[\s\S]*jwt\.secret: )/, notEcho: '12345678' },
      { config: { allowedOrigins: ['https://example.com/path'] }, expect: /allowedOrigins/ },
      { env: { RAMPART_MAX_CONNECTIONS_PER_IP: '0' }, expect: /maxConnectionsPerIP/ },
    ];
    await Promise.all(
      cases.map(async (c, i) => {
        const args = ['serve'];
        if (c.config !== undefined) {
          const file = join(cwd, `bad-${i}.json`);
          writeFileSync(file, JSON.stringify(c.config));
          args.push('--config', file);
        }
        // No RAMPART_PORT here: it would override (and so hide) a bad `port` in the file.
        const run = rampart(args, cwd, { RAMPART_HOST: '127.0.0.1', ...c.env });
        const guard = setTimeout(() => run.child.kill('SIGKILL'), 10000); // a config that wrongly starts a server
        const { code } = await run.exited;
        clearTimeout(guard);
        assert.notEqual(code, 0, JSON.stringify(c));
        assert.match(run.stderr, c.expect, run.stderr);
        assert.match(run.stderr, /invalid configuration/);
        if (c.notEcho) assert.ok(!run.stderr.includes(c.notEcho) && !run.stdout.includes(c.notEcho));
        assert.equal(listeningPort(run.stdout), undefined, 'never started');
      }),
    );
    assert.equal(existsSync(join(cwd, 'data', 'rampart.db')), false);
  });
});
});
