/**
 * The newcomer path and the CLI's exit-code contract: `npm start` stops on the SIGTERM an
 * orchestrator sends to npm (its script runs the server with `exec`, so no shell sits between
 * them and swallows the signal), and `check-config` reports a file it cannot read or parse with a
 * grade and exit 1, as its help says (it exited 2 with a usage error).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const groups: number[] = [];
const dirs: string[] = [];

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAMPART_') && !k.startsWith('npm_')) env[k] = v;
  return { ...env, ...extra };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-newcomer-'));
  dirs.push(dir);
  return dir;
}

after(() => {
  // Kill whatever is left of the process groups this file started (an orphaned server included).
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Rejects after `ms` (a bound, not a sleep); the timer is cleared when `p` settles. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    }),
  ]);
}

test('npm start: SIGTERM to npm (what `docker stop` / systemd send to `npm start`) stops the server', async () => {
  // README: "npm install && npm start"; docs/operations.md "Shutdown": "On SIGTERM (or SIGINT)
  // `rampart serve` ... the process exits 0", and "Whatever hangs, the process exits within
  // shutdownGraceMs". `npm start` runs `sh -c "node dist/cli.js serve"`; npm forwards SIGTERM to
  // that sh (dash), which dies without passing it on, so the server is orphaned and keeps its port
  // and its SQLite file. Expected: every process that holds npm's stdout exits within the grace.
  const dir = tempDir();
  const child: ChildProcess = spawn('npm', ['start'], {
    cwd: ROOT,
    detached: true, // its own process group, so `after` can kill an orphan
    env: cleanEnv({ RAMPART_PORT: '0', RAMPART_DATA_DIR: dir, RAMPART_STORAGE: `sqlite:${join(dir, 'r.db')}`, RAMPART_SHUTDOWN_GRACE_MS: '2000' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  groups.push(child.pid!);
  child.stderr!.resume();
  const stdoutClosed = new Promise<void>((resolve) => child.stdout!.once('close', () => resolve()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await within(
    new Promise<void>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.includes('"msg":"listening"')) resolve();
      });
    }),
    30000,
    'npm start listening',
  );
  child.kill('SIGTERM');
  await within(exited, 10000, 'npm exit');
  // stdout closes only when the last process writing to it (the server) is gone.
  await within(stdoutClosed, 6000, 'the server started by `npm start` to exit after SIGTERM (it is orphaned and still running)');
});

function rampart(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { cwd, env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('check-config on a file that is not JSON (or missing) reports it with a grade and exits 1, as its help says', async () => {
  // `rampart check-config --help`: "prints every finding ... then a grade (A ... F: an error).
  // Exits 1 when there is an error." docs/operations.md: "the exit code is 1 when there is an error".
  // Actual: an unreadable or non-JSON file is thrown as a ConfigError to cli.ts, which prints
  // "rampart: invalid configuration" with no grade and exits 2 (the usage-error code).
  const dir = tempDir();
  const bad = join(dir, 'rampart.json');
  writeFileSync(bad, '{ "port": 8080, }'); // a trailing comma: the commonest hand-edit mistake
  const [notJson, missing] = await Promise.all([rampart(['check-config', bad], dir), rampart(['check-config', join(dir, 'nope.json')], dir)]);
  for (const run of [notJson, missing]) {
    assert.equal(run.code, 1, `exit code (stderr: ${run.stderr.trim()})`);
    assert.match(run.stdout, /grade: F/, 'a grade line');
  }
});
