/**
 * An unreadable TLS certificate fails start-up before anything is opened.
 *
 * docs/operations.md "TLS": a certificate problem is a clear start-up error. The rejection names the
 * file, and nothing stays open (storage, Redis clients, timers): a child process that only calls
 * createRampartServer and catches the error exits on its own. The files used to be read after
 * every adapter had opened, outside the cleanup that closes them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = process.env.TLS_STARTUP_CHILD;

if (CHILD !== undefined) {
  // Child: try to start with a missing certificate; report the error; then simply return.
  const { parseConfig } = await import('../../src/config/load-config.js');
  const { createRampartServer } = await import('../../src/server/rampart-server.js');
  const { REDIS_URL, TEST_SECRET, uniqueRedisPrefix } = await import('../helpers/harness.js');
  const { Writable } = await import('node:stream');
  const config = parseConfig({
    port: 0,
    host: '127.0.0.1',
    storage: `sqlite:${join(CHILD, 'test.db')}`,
    dataDir: CHILD,
    jwt: { secret: TEST_SECRET },
    redisUrl: REDIS_URL,
    redisKeyPrefix: uniqueRedisPrefix('tlsstart'),
    tls: { certFile: join(CHILD, 'missing-cert.pem'), keyFile: join(CHILD, 'missing-key.pem') },
  });
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  try {
    await createRampartServer({ config, logDestination: sink });
    process.stdout.write('STARTED\n');
  } catch (err) {
    process.stdout.write(`ERROR ${err instanceof Error ? err.message : String(err)}\n`);
  }
} else {
  test('an unreadable tls.certFile rejects start-up, naming the file, and leaves nothing open', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-tls-start-'));
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
      env: { ...process.env, TLS_STARTUP_CHILD: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // The child reports the start-up error, then has nothing left to do.
    const reported = new Promise<void>((resolve) => {
      const check = () => (out.includes('\n') ? resolve() : undefined);
      child.stdout.on('data', check);
    });
    await Promise.race([reported, exited]);
    // After reporting, a child with nothing open exits at once; give it 5 s (a generous bound, not a sleep for timing).
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<'stuck'>((resolve) => (timer = setTimeout(() => resolve('stuck'), 5000)));
    const outcome = await Promise.race([exited.then(() => 'exited' as const), stuck]);
    clearTimeout(timer);
    if (outcome === 'stuck') {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    assert.match(out, /^ERROR .*missing-cert\.pem/m, 'the start-up error names the certificate file');
    assert.equal(outcome, 'exited', 'after createRampartServer rejected, nothing it opened may keep the process alive (Redis clients, timers, store)');
  });
}
