/**
 * What serves the SDK demo: the asset allowlist, the development-only token endpoint and its
 * request guard, and the rule that keeps the SDK loadable in a browser (no Node built-ins, no zod).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHttpRoutes } from '../../src/server/http-routes.js';
import { demoAssets, DEMO_CSP } from '../../src/server/demo-assets.js';
import { createDevTokens, demoUserId, devRequestAllowed, devTokensFor } from '../../src/server/dev-tokens.js';
import { isUserId } from '../../src/auth/token-verifier.js';
import type { RampartConfig } from '../../src/config/schema.js';
import { parseConfig } from '../../src/config/load-config.js';

async function statuses(routes: ReturnType<typeof createHttpRoutes>, paths: string[]): Promise<number[]> {
  const server = createServer(routes);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    return await Promise.all(paths.map(async (p) => (await fetch(`http://127.0.0.1:${port}${p}`)).status));
  } finally {
    await new Promise((r) => server.close(r));
  }
}

test('without the demo (production): no page, no SDK files, no token endpoint', async () => {
  const routes = createHttpRoutes({ ready: async () => true });
  assert.deepEqual(await statuses(routes, ['/', '/demo.js', '/client/index.js', '/protocol/reasons.js', '/dev/token?name=a', '/dev/user?name=a']), [404, 404, 404, 404, 404, 404]);
  const production = { mode: 'production', jwt: { secret: 'x'.repeat(40) }, dataDir: '/nonexistent' } as unknown as RampartConfig;
  assert.equal(devTokensFor(production), undefined);
});

test('the token endpoint exists only with the development key: never with a configured key, never behind a proxy', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rampart-devkey-'));
  try {
    const dev = (extra: Record<string, unknown>): RampartConfig => parseConfig({ dataDir, storage: `sqlite:${join(dataDir, 'x.db')}`, ...extra });
    assert.equal(devTokensFor(dev({ jwt: { secret: 'x'.repeat(40) } })), undefined, 'a configured secret signs real credentials');
    assert.equal(devTokensFor(dev({ jwt: { publicKeyFile: '/k.pem' } })), undefined, 'no secret to sign with');
    assert.equal(devTokensFor(dev({ jwt: { jwksUrl: 'https://id.example.com/jwks' } })), undefined);
    assert.equal(devTokensFor(dev({ behindProxy: ['127.0.0.1'] })), undefined, 'a proxy makes every peer look local');
    const tokens = devTokensFor(dev({}));
    assert.ok(tokens, 'development key, no proxy: the demo gets its tokens');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('with the demo: the allowlisted files only, each under the strict CSP', async () => {
  const page = fileURLToPath(new URL('../../public/index.html', import.meta.url));
  const routes = createHttpRoutes({ ready: async () => true, demoPage: page, devTokens: createDevTokens({ secret: 's'.repeat(40) }) });
  assert.deepEqual(await statuses(routes, ['/', '/demo.js', '/demo.css', '/client/../server/http-routes.js', '/client/node.js', '/client/file-sync-store.js', '/protocol/client-frames.js', '/public/index.html']), [200, 200, 200, 404, 404, 404, 404, 404]);
  const assets = demoAssets('/pub', '/dist');
  for (const path of assets.keys()) assert.match(path, /^\/(demo(\.js|\.css|-render\.js)?|client\/[a-z-]+\.js|protocol\/[a-z-]+\.js)?$/);
  assert.doesNotMatch(DEMO_CSP, /unsafe/);
  assert.match(DEMO_CSP, /require-trusted-types-for 'script'/);
  assert.match(DEMO_CSP, /script-src 'self';/);
});

test('demo user ids are stable UUIDs; tokens carry them', async () => {
  assert.equal(demoUserId('Alice'), demoUserId('alice'));
  assert.notEqual(demoUserId('alice'), demoUserId('bob'));
  assert.ok(isUserId(demoUserId('alice')));
  const issued = await createDevTokens({ secret: 's'.repeat(40) }).issue('alice');
  assert.equal(issued.userId, demoUserId('alice'));
  const payload = JSON.parse(Buffer.from(issued.token.split('.')[1]!, 'base64url').toString()) as { sub: string; exp: number };
  assert.equal(payload.sub, issued.userId);
  assert.ok(payload.exp * 1000 <= Date.now() + 600_000 + 1000);
});

test('the token endpoint answers loopback clients of our own origin only', () => {
  const req = (remoteAddress: string, headers: Record<string, string>) => ({ socket: { remoteAddress }, headers }) as unknown as IncomingMessage;
  assert.equal(devRequestAllowed(req('127.0.0.1', { host: '127.0.0.1:8080' })), true);
  assert.equal(devRequestAllowed(req('::1', { host: 'localhost:8080', 'sec-fetch-site': 'same-origin', origin: 'http://localhost:8080' })), true);
  assert.equal(devRequestAllowed(req('10.0.0.5', { host: '127.0.0.1:8080' })), false, 'not loopback');
  assert.equal(devRequestAllowed(req('127.0.0.1', { host: 'attacker.example:8080' })), false, 'DNS rebinding');
  assert.equal(devRequestAllowed(req('127.0.0.1', { host: '127.0.0.1:8080', 'sec-fetch-site': 'same-site' })), false, 'another port of this host');
  assert.equal(devRequestAllowed(req('127.0.0.1', { host: '127.0.0.1:8080', 'sec-fetch-site': 'cross-site' })), false);
  assert.equal(devRequestAllowed(req('127.0.0.1', { host: '127.0.0.1:8080', origin: 'http://127.0.0.1:9999' })), false);
});

test('the browser part of the SDK imports nothing but itself and the runtime-light protocol modules, all of it served', () => {
  const dir = fileURLToPath(new URL('../../src/client/', import.meta.url));
  const nodeOnly = new Set(['node.ts', 'file-sync-store.ts']);
  const served = demoAssets('/pub', '/dist');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && !nodeOnly.has(f))) {
    // A module the demo page cannot load stops the whole page (its imports fail).
    assert.ok(served.has(`/client/${file.replace(/\.ts$/, '.js')}`), `${file} is in the demo's allowlist`);
    const source = readFileSync(dir + file, 'utf8');
    for (const m of source.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)) {
      const [, , typeOnly, spec] = m;
      if (typeOnly) continue; // erased at compile time
      assert.match(spec!, /^(\.\/[a-z-]+\.js|\.\.\/protocol\/(bounds|close-codes|reasons|url)\.js)$/, `${file} imports ${spec}`);
      const protocolModule = /^\.\.\/protocol\/([a-z-]+)\.js$/.exec(spec!)?.[1];
      if (protocolModule !== undefined) assert.ok(served.has(`/protocol/${protocolModule}.js`), `${file}'s import ${spec} is served`);
    }
  }
});
