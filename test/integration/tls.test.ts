/**
 * wss:// as the article asks: TLS 1.2–1.3 with forward-secret AEAD suites only, a verifying client
 * with a custom CA, optional and required client certificates, HSTS, and a certificate reload
 * (SIGHUP) that keeps open sessions and shows new handshakes the new certificate. Certificates
 * are made by `openssl` for each run. Each refusal is paired with a control that shows the same
 * client succeeding against a permissive server, so "refused" means the server refused.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions, type Server as TlsServer } from 'node:tls';
import { get as httpsGet, type RequestOptions } from 'node:https';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startServer, authedClient, closeAll, newUserId, within, type TestServer } from '../helpers/harness.js';
import { makeCa, makeLeaf, type Pem } from '../helpers/tls-certs.js';
import { spawnServerProcess, writeServerConfig } from '../helpers/server-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
let caA: Pem;
let caB: Pem;
let server1: Pem;
let server2: Pem;
let clientA: Pem;
let clientB: Pem;
/** The files the server reads; tests overwrite them to simulate a renewal. */
let live: { certFile: string; keyFile: string };

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rampart-tls-'));
  caA = makeCa(dir, 'ca-a');
  caB = makeCa(dir, 'ca-b');
  server1 = makeLeaf(dir, caA, 'server-1', 'server');
  server2 = makeLeaf(dir, caA, 'server-2', 'server');
  clientA = makeLeaf(dir, caA, 'client-a', 'client');
  clientB = makeLeaf(dir, caB, 'client-b', 'client');
  live = { certFile: join(dir, 'live.crt'), keyFile: join(dir, 'live.key') };
});
after(() => rmSync(dir, { recursive: true, force: true }));

type Handshake = { ok: true; protocol: string; cipher: string; fingerprint: string } | { ok: false; error: string };

/** One TLS handshake to 127.0.0.1:port; what was negotiated, or the error. */
function handshake(port: number, options: ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
      const raw = socket.getPeerCertificate().raw;
      resolve({ ok: true, protocol: socket.getProtocol() ?? '', cipher: socket.getCipher().name, fingerprint: new X509Certificate(raw).fingerprint256 });
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      resolve({ ok: false, error: err.code ?? err.message });
      socket.destroy();
    });
  });
}

/** GET /healthz over HTTPS: the status and HSTS header, or the error (client certificates are checked after a TLS 1.3 handshake). */
function getHealth(port: number, options: RequestOptions = {}): Promise<{ status: number; hsts: string | undefined } | { error: string }> {
  return new Promise((resolve) => {
    const req = httpsGet({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, agent: false, ...options }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'] as string | undefined }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** A plain TLS server that accepts anything the client offers: the control for every refusal. */
async function permissiveServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server: TlsServer = createTlsServer({ cert: server1.cert, key: server1.key, minVersion: 'TLSv1', ciphers: 'ALL@SECLEVEL=0' }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const OLD_CLIENT = { ciphers: 'ALL@SECLEVEL=0' };

describe('wss:// with the default TLS settings', { concurrency: 1 }, () => {
  let ts: TestServer;
  let control: Awaited<ReturnType<typeof permissiveServer>>;

  before(async () => {
    copyFileSync(server1.certFile, live.certFile);
    copyFileSync(server1.keyFile, live.keyFile);
    ts = await startServer({ tls: { ...live } });
    control = await permissiveServer();
  });
  after(async () => {
    await ts.close();
    await control.close();
  });

  test('TLS 1.0 and 1.1 are refused; 1.2 and 1.3 are accepted', async () => {
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      const options = { minVersion: version, maxVersion: version, ...OLD_CLIENT };
      assert.equal((await handshake(control.port, options)).ok, true, `control: the client can speak ${version}`);
      const refused = await handshake(ts.port, options);
      assert.equal(refused.ok, false, version);
    }
    const v12 = await handshake(ts.port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    assert.ok(v12.ok && v12.protocol === 'TLSv1.2', JSON.stringify(v12));
    const v13 = await handshake(ts.port, { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
    assert.ok(v13.ok && v13.protocol === 'TLSv1.3', JSON.stringify(v13));
    // A modern client with no preferences gets TLS 1.3.
    const any = await handshake(ts.port);
    assert.ok(any.ok && any.protocol === 'TLSv1.3');
  });

  test('TLS 1.2: static-RSA (no forward secrecy) and CBC suites are refused; ECDHE with AES-GCM or ChaCha20 is accepted', async () => {
    for (const cipher of ['AES128-SHA', 'AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384']) {
      const options = { maxVersion: 'TLSv1.2' as const, ciphers: `${cipher}@SECLEVEL=0` };
      const control1 = await handshake(control.port, options);
      assert.ok(control1.ok && control1.cipher === cipher, `control: the client can negotiate ${cipher}`);
      assert.equal((await handshake(ts.port, options)).ok, false, cipher);
    }
    for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      const result = await handshake(ts.port, { maxVersion: 'TLSv1.2', ciphers: cipher });
      assert.ok(result.ok && result.cipher === cipher, `${cipher}: ${JSON.stringify(result)}`);
    }
    // The server's order wins: a client preferring AES-128 still gets the server's first choice.
    const ordered = await handshake(ts.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384' });
    assert.ok(ordered.ok && ordered.cipher === 'ECDHE-RSA-AES256-GCM-SHA384', JSON.stringify(ordered));
  });

  test('a verifying client with the custom CA connects and authenticates; a client trusting another CA is refused', async () => {
    const url = `wss://127.0.0.1:${ts.port}/ws`;
    const client = await authedClient(url, newUserId(), {}, { ca: caA.cert, rejectUnauthorized: true });
    await closeAll(client);
    const other = await handshake(ts.port, { ca: caB.cert, rejectUnauthorized: true });
    assert.ok(!other.ok && /UNABLE_TO_VERIFY|SELF_SIGNED|unable to verify/i.test(other.error), JSON.stringify(other));
    // Nor does the system trust store know it.
    assert.equal((await handshake(ts.port, { rejectUnauthorized: true })).ok, false);
  });

  test('HTTPS responses carry Strict-Transport-Security (one year by default)', async () => {
    const res = await getHealth(ts.port, { ca: caA.cert, rejectUnauthorized: true });
    assert.deepEqual(res, { status: 200, hsts: 'max-age=31536000' });
  });

  test('reload: an open session stays up, new handshakes get the new certificate; a bad one keeps the old', async () => {
    const before1 = await handshake(ts.port);
    assert.ok(before1.ok && before1.fingerprint === server1.fingerprint);
    const client = await authedClient(`wss://127.0.0.1:${ts.port}/ws`, newUserId(), {}, { ca: caA.cert });

    copyFileSync(server2.certFile, live.certFile);
    copyFileSync(server2.keyFile, live.keyFile);
    const reloaded = ts.server.reloadTls();
    assert.deepEqual(reloaded, { ok: true, fingerprint: server2.fingerprint });
    const after2 = await handshake(ts.port, { ca: caA.cert, rejectUnauthorized: true });
    assert.ok(after2.ok && after2.fingerprint === server2.fingerprint, JSON.stringify(after2));

    // The session opened before the reload still answers.
    const peerId = newUserId();
    client.send({ type: 'history', peerId });
    assert.equal((await within(client.next((f) => f.type === 'history'), 5000, 'history after reload')).peerId, peerId);
    assert.equal(client.closeCode, undefined);

    // A certificate that does not parse, and a key that does not match: both keep server-2.
    writeFileSync(live.certFile, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    const bad = ts.server.reloadTls();
    assert.equal(bad.ok, false);
    copyFileSync(server1.certFile, live.certFile); // server-1's certificate with server-2's key
    assert.equal(ts.server.reloadTls().ok, false);
    const still = await handshake(ts.port);
    assert.ok(still.ok && still.fingerprint === server2.fingerprint);
    assert.ok(ts.logs.some((l) => l.includes('tls reload failed')));
    assert.ok(!ts.logs.some((l) => l.includes('PRIVATE KEY')), 'no key material in the logs');
    await closeAll(client);
  });
});

describe('client certificates', { concurrency: 1 }, () => {
  test('required: no certificate or one from another CA is refused; one signed by tls.caFile works', async () => {
    const ts = await startServer({ tls: { certFile: server1.certFile, keyFile: server1.keyFile, caFile: caA.certFile, requireClientCert: true, hstsMaxAge: 0 } });
    try {
      const none = await getHealth(ts.port);
      assert.ok('error' in none, JSON.stringify(none));
      const foreign = await getHealth(ts.port, { cert: clientB.cert, key: clientB.key });
      assert.ok('error' in foreign, JSON.stringify(foreign));
      const good = await getHealth(ts.port, { cert: clientA.cert, key: clientA.key, ca: caA.cert, rejectUnauthorized: true });
      // hstsMaxAge 0 sends no header.
      assert.deepEqual(good, { status: 200, hsts: undefined });
    } finally {
      await ts.close();
    }
  });

  test('requested: no certificate is fine, a valid one is fine, an unverifiable one is refused', async () => {
    const ts = await startServer({ tls: { certFile: server1.certFile, keyFile: server1.keyFile, caFile: caA.certFile, requestClientCert: true } });
    try {
      assert.deepEqual(await getHealth(ts.port), { status: 200, hsts: 'max-age=31536000' });
      assert.deepEqual(await getHealth(ts.port, { cert: clientA.cert, key: clientA.key }), { status: 200, hsts: 'max-age=31536000' });
      const foreign = await getHealth(ts.port, { cert: clientB.cert, key: clientB.key });
      assert.ok('error' in foreign, JSON.stringify(foreign));
    } finally {
      await ts.close();
    }
  });
  test('a CA bundle in OpenSSL\'s trusted form (BEGIN TRUSTED CERTIFICATE, as `openssl x509 -addtrust` writes) is accepted and verifies clients', async () => {
    const caFile = join(dir, 'trusted-ca.pem');
    execFileSync('openssl', ['x509', '-in', caA.certFile, '-addtrust', 'clientAuth', '-out', caFile], { stdio: 'ignore' });
    const ts = await startServer({ tls: { certFile: server1.certFile, keyFile: server1.keyFile, caFile, requireClientCert: true, hstsMaxAge: 0 } });
    try {
      assert.deepEqual(await getHealth(ts.port, { cert: clientA.cert, key: clientA.key, ca: caA.cert, rejectUnauthorized: true }), { status: 200, hsts: undefined });
      assert.ok('error' in (await getHealth(ts.port, { cert: clientB.cert, key: clientB.key })), 'a client of another CA is still refused');
    } finally {
      await ts.close();
    }
  });

  test('a CA bundle holding no certificate (truncated by a renewal, not PEM) is refused: a reload keeps the old one, a start fails', async () => {
    const caFile = join(dir, 'live-ca.crt');
    copyFileSync(caA.certFile, caFile);
    const ts = await startServer({ tls: { certFile: server1.certFile, keyFile: server1.keyFile, caFile, requireClientCert: true, hstsMaxAge: 0 } });
    const good = { cert: clientA.cert, key: clientA.key, ca: caA.cert, rejectUnauthorized: true };
    try {
      assert.deepEqual(await getHealth(ts.port, good), { status: 200, hsts: undefined });
      for (const content of ['', 'not a certificate\n', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n']) {
        writeFileSync(caFile, content);
        const result = ts.server.reloadTls();
        assert.equal(result.ok, false, JSON.stringify(content));
        assert.deepEqual(await getHealth(ts.port, good), { status: 200, hsts: undefined }, 'the previous CA still verifies clients');
        await assert.rejects(
          startServer({ tls: { certFile: server1.certFile, keyFile: server1.keyFile, caFile, requireClientCert: true } }),
          /tls\.caFile: .* (holds no PEM certificate|does not parse)/,
        );
      }
    } finally {
      await ts.close();
    }
  });
});

describe('rampart serve reloads its certificate on SIGHUP', { concurrency: 1 }, () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const child of children) child.kill('SIGKILL');
  });

  test('SIGHUP: the process stays up, the open session too, and new handshakes see the new certificate', async () => {
    const certFile = join(dir, 'hup.crt');
    const keyFile = join(dir, 'hup.key');
    copyFileSync(server1.certFile, certFile);
    copyFileSync(server1.keyFile, keyFile);
    const config = writeServerConfig(dir, 'hup.json', { tls: { certFile, keyFile }, storage: `sqlite:${join(dir, 'hup.db')}` });
    const proc = await spawnServerProcess(config, children);
    const first = await handshake(proc.port);
    assert.ok(first.ok && first.fingerprint === server1.fingerprint);
    const client = await authedClient(`wss://127.0.0.1:${proc.port}/ws`, newUserId(), {}, { ca: caA.cert });

    copyFileSync(server2.certFile, certFile);
    copyFileSync(server2.keyFile, keyFile);
    let stdout = '';
    const reloaded = new Promise<void>((resolve) =>
      proc.child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('tls certificate reloaded')) resolve();
      }),
    );
    proc.child.kill('SIGHUP');
    await within(reloaded, 10000, 'reload log line');
    const second = await handshake(proc.port);
    assert.ok(second.ok && second.fingerprint === server2.fingerprint, JSON.stringify(second));
    assert.equal(proc.child.exitCode, null);
    const peerId = newUserId();
    client.send({ type: 'history', peerId });
    assert.equal((await within(client.next((f) => f.type === 'history'), 5000, 'history after SIGHUP')).peerId, peerId);
    await closeAll(client);
    proc.child.kill('SIGTERM');
    await within(proc.exited, 10000, 'exit after SIGTERM');
  });

  test('a SIGHUP while the server is still starting does not end the process; the reload is applied once it listens', async () => {
    // No signing key: the development key is announced early in start-up, before storage opens.
    const config = join(dir, 'hup-early.json');
    writeFileSync(config, JSON.stringify({ port: 0, host: '127.0.0.1', dataDir: dir, storage: `sqlite:${join(dir, 'hup-early.db')}`, tls: { certFile: server1.certFile, keyFile: server1.keyFile } }));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAMPART_')) env[k] = v;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', config], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    child.stderr!.resume();
    const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`exited: code ${code}, signal ${signal}`)));
    const seen: string[] = [];
    const reloaded = new Promise<string>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let msg: unknown;
        try {
          msg = (JSON.parse(line) as { msg?: unknown }).msg;
        } catch {
          return;
        }
        if (typeof msg !== 'string') return;
        seen.push(msg);
        if (msg.startsWith('using the development signing key')) child.kill('SIGHUP');
        if (msg === 'tls certificate reloaded') resolve('reloaded');
      });
      void exited.then(resolve);
    });
    assert.equal(await within(reloaded, 20000, 'reload or exit'), 'reloaded');
    assert.ok(seen.indexOf('listening') < seen.indexOf('tls certificate reloaded'), JSON.stringify(seen));
    child.kill('SIGTERM');
    await within(exited, 10000, 'exit after SIGTERM');
  });
});
