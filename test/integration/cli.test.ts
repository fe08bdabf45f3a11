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
import { openClient, closeAll, within, startServer, TEST_SECRET } from '../helpers/harness.js';
import { RawSocket } from '../helpers/raw-ws.js';
import { makeCa, makeLeaf } from '../helpers/tls-certs.js';

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

/** Runs the commands a few at a time (each is a tsx start-up on a shared machine); resolves when all exited. */
async function runBatched(specs: { args: string[]; env?: Record<string, string> }[], cwd: string, batch = 3): Promise<Run[]> {
  const runs: Run[] = [];
  for (let i = 0; i < specs.length; i += batch) {
    const group = specs.slice(i, i + batch).map((spec) => rampart(spec.args, cwd, spec.env));
    await Promise.all(group.map((r) => r.exited));
    runs.push(...group);
  }
  return runs;
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
    // A deploy tool's own RAMPART_* variable: a warning naming it, not a fatal error.
    server = rampart(['serve'], cwd, { RAMPART_PORT: '0', RAMPART_DEPLOY_TAG: 'v1-MARKER' });
    await server.waitOutput((r) => listeningPort(r.stdout) !== undefined && r.stderr.includes(' token --sub '));
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
    // Run outside the package root: the command names the CLI itself (npm run would use another directory).
    assert.match(server.stderr, /node (--import \S+ )?\S+cli\.ts token --sub [0-9a-f-]{36}/);
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

  test('an unknown RAMPART_* variable is logged as a warning naming it (not its value)', () => {
    const line = server.stdout.split('\n').find((l) => l.includes('RAMPART_DEPLOY_TAG'));
    assert.ok(line, server.stdout);
    assert.match(line, /"level":40/);
    assert.ok(!server.stdout.includes('v1-MARKER') && !server.stderr.includes('v1-MARKER'));
  });

  test('/healthz answers', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200);
  });

  test('rampart token refuses to sign with the development key where no server would accept it: jwt.issuers configured, or production', async () => {
    const issuersFile = join(cwd, 'issuers.json');
    writeFileSync(issuersFile, JSON.stringify({ jwt: { issuers: [{ issuer: 'https://idp.example.com', jwksUrl: 'https://idp.example.com/jwks' }] } }));
    const withIssuers = rampart(['token', '--sub', randomUUID(), '--config', issuersFile], cwd);
    const inProduction = rampart(['token', '--sub', randomUUID()], cwd, { NODE_ENV: 'production' });
    const [a, b] = await Promise.all([withIssuers.exited, inProduction.exited]);
    assert.notEqual(a.code, 0);
    assert.match(withIssuers.stderr, /jwt\.issuers: tokens come from those issuers/);
    assert.notEqual(b.code, 0);
    assert.match(inProduction.stderr, /jwt: production needs/);
    assert.equal(withIssuers.stdout + inProduction.stdout, '', 'no token printed');
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
    assert.deepEqual(reply, { type: 'auth_success', userId: sub, resumeAfter: 0, lastPos: 0 });
    await closeAll(client);
    // Neither the token nor its signature appears in the server's output.
    assert.ok(!server.stdout.includes(token.split('.')[2]!) && !server.stderr.includes(token.split('.')[2]!));
  });

  test('rampart token --ttl takes seconds (3600) or a duration (90s), as its --help says', async () => {
    const runs = [rampart(['token', '--sub', randomUUID(), '--ttl', '3600'], cwd), rampart(['token', '--sub', randomUUID(), '--ttl', '90s'], cwd)];
    const lifetimes = [];
    for (const run of runs) {
      assert.equal((await run.exited).code, 0, run.stderr);
      const payload = JSON.parse(Buffer.from(run.stdout.trim().split('.')[1]!, 'base64url').toString()) as { iat: number; exp: number };
      lifetimes.push(payload.exp - payload.iat);
    }
    assert.deepEqual(lifetimes, [3600, 90]);
    // Longer than jwt.maxTokenLifetimeMs (365 days): a token the server would refuse is not printed.
    const tooLong = rampart(['token', '--sub', randomUUID(), '--ttl', '400d'], cwd);
    assert.equal((await tooLong.exited).code, 2);
    assert.equal(tooLong.stdout, '');
    assert.match(tooLong.stderr, /maxTokenLifetimeMs/);
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
      // Production refuses to start on any error check-config reports.
      {
        config: { mode: 'production', jwt: { secret: 'MARKER-' + TEST_SECRET }, allowedOrigins: ['http://chat.example.com'], behindProxy: ['10.0.0.1'], allowQueryToken: true },
        expect: /(?=[\s\S]*allowedOrigins\.0: an http:\/\/ origin)(?=[\s\S]*allowQueryToken)(?=[\s\S]*jwt\.issuer)(?=[\s\S]*jwt\.audience)/,
        notEcho: 'MARKER',
      },
      // NODE_ENV=production is production mode: the development key is refused.
      { env: { NODE_ENV: 'production' }, expect: /jwt: production needs/ },
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

// Run after the groups above (which start servers), a few processes at a time: each is a tsx start-up.
describe('help, version and check-config', { concurrency: 1 }, () => {
  test('--help on rampart and on every command prints usage and exits 0 (serve --help starts nothing)', async () => {
    const cwd = tempDir();
    const helps = [['--help'], ['serve', '--help'], ['token', '--help'], ['check-config', '--help'], ['version', '-h']];
    // A value pasted where no argument goes (a key without its flag) is never printed back.
    const pasted = 'k7Qx-not-a-flag-9f3b2c1d0e';
    const runs = await runBatched([...helps, ['version'], ['frobnicate'], ['serve', pasted], [pasted]].map((args) => ({ args })), cwd);
    helps.forEach((args, i) => {
      assert.equal(runs[i]!.child.exitCode, 0, `${args.join(' ')}: ${runs[i]!.stderr}`);
      assert.match(runs[i]!.stdout, /^usage: rampart/, args.join(' '));
    });
    assert.match(runs[0]!.stdout, /serve[\s\S]*token[\s\S]*check-config[\s\S]*version/);
    assert.match(runs[1]!.stdout, /SIGHUP/);
    assert.equal(listeningPort(runs[1]!.stdout), undefined);
    assert.equal(existsSync(join(cwd, 'data')), false, 'serve --help created nothing');
    const [version, unknown, stray, pastedCommand] = runs.slice(helps.length) as [Run, Run, Run, Run];
    assert.equal(version.child.exitCode, 0);
    assert.match(version.stdout, /^rampart \d+\.\d+\.\d+/);
    assert.equal(unknown.child.exitCode, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/, 'a mistyped command is named');
    assert.equal(stray.child.exitCode, 2);
    assert.match(stray.stderr, /unexpected argument/);
    assert.equal(pastedCommand.child.exitCode, 2);
    assert.match(pastedCommand.stderr, /unknown command\n/);
    for (const run of [stray, pastedCommand]) assert.ok(!run.stderr.includes(pasted), `printed back: ${run.stderr.split('\n')[0]}`);
  });

  test("check-config: the README's production example has no error; a bad one lists every finding, grade F, exit 1", async () => {
    const cwd = tempDir();
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const example = /A production example:\s*```json\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(example, 'the README has a production example');
    const config = JSON.parse(example) as { tls: { certFile: string; keyFile: string } };
    // The certificate paths are the operator's; here they point at a real pair (check-config parses and matches them).
    const leaf = makeLeaf(cwd, makeCa(cwd, 'ca'), 'server', 'server');
    writeFileSync(join(cwd, 'key.pem'), 'key');
    config.tls = { ...config.tls, certFile: leaf.certFile, keyFile: leaf.keyFile };
    writeFileSync(join(cwd, 'prod.json'), JSON.stringify(config));
    writeFileSync(join(cwd, 'readme-as-is.json'), example);
    const bad = {
      mode: 'production',
      jwt: { secret: 'short-MARKER' },
      allowedOrigins: ['https://chat.example.com', 'http://chat.example.com'],
      allowQueryToken: true,
      tls: { certFile: join(cwd, 'missing.pem'), keyFile: join(cwd, 'key.pem') },
    };
    writeFileSync(join(cwd, 'bad.json'), JSON.stringify(bad));
    writeFileSync(join(cwd, 'dev.json'), JSON.stringify({ port: 9000 }));
    writeFileSync(join(cwd, 'typo.json'), JSON.stringify({ prot: 9000 }));
    const [good, asIs, worse, dev, forced, typo] = (await runBatched(
      [
        { args: ['check-config', join(cwd, 'prod.json')] },
        { args: ['check-config', join(cwd, 'readme-as-is.json')] },
        { args: ['check-config', join(cwd, 'bad.json')] },
        { args: ['check-config', join(cwd, 'dev.json')], env: { RAMPART_BUILD_SHA: 'abc' } },
        { args: ['check-config', join(cwd, 'dev.json'), '--production'] },
        { args: ['check-config', join(cwd, 'typo.json')] },
      ],
      cwd,
    )) as [Run, Run, Run, Run, Run, Run];
    assert.equal((await good.exited).code, 0, good.stdout + good.stderr);
    assert.doesNotMatch(good.stdout, /ERROR/);
    assert.match(good.stdout, /^OK {4}/m);
    assert.match(good.stdout, /grade: [A-D] \(0 errors/);
    // Verbatim (the README's example as printed): no error; the certificate files, missing on this
    // machine, are warnings naming them (serve itself refuses to start without them).
    assert.equal((await asIs.exited).code, 0, asIs.stdout);
    assert.doesNotMatch(asIs.stdout, /^ERROR/m);
    assert.match(asIs.stdout, /WARN +tls\.certFile: file cannot be read here/);
    assert.match(asIs.stdout, /WARN +tls\.keyFile: file cannot be read here/);

    assert.equal((await worse.exited).code, 1);
    for (const finding of [/WARN +tls\.certFile: file cannot be read here/, /ERROR +jwt\.secret: must be at least 32 bytes/, /ERROR +jwt\.issuer/, /ERROR +jwt\.audience/, /ERROR +allowedOrigins\.1: an http/, /ERROR +allowQueryToken/, /WARN +metrics/, /WARN +storage/, /grade: F/]) {
      assert.match(worse.stdout, finding);
    }
    assert.ok(!worse.stdout.includes('MARKER') && !worse.stderr.includes('MARKER'));

    assert.equal((await dev.exited).code, 0);
    assert.match(dev.stdout, /WARN +RAMPART_BUILD_SHA: unknown/);
    assert.match(dev.stdout, /mode is development/);
    assert.equal((await forced.exited).code, 1);
    assert.match(forced.stdout, /ERROR +jwt: production needs/);
    assert.equal((await typo.exited).code, 1);
    assert.match(typo.stdout, /ERROR +\(root\): unknown key\(s\) "prot"/);
    assert.match(typo.stdout, /grade: F/);
  });

  test('production mode serves no demo page', async () => {
    const ts = await startServer({
      mode: 'production',
      jwt: { secret: TEST_SECRET, issuer: 'https://id.example.com', audience: 'chat' },
      allowedOrigins: ['https://chat.example.com'],
      behindProxy: ['127.0.0.1'],
      metrics: { port: 0 },
    });
    try {
      assert.equal((await fetch(`${ts.httpUrl}/`)).status, 404);
      assert.equal((await fetch(`${ts.httpUrl}/demo`)).status, 404);
      assert.equal((await fetch(`${ts.httpUrl}/healthz`)).status, 200);
    } finally {
      await ts.close();
    }
  });
});
