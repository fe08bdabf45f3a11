import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, applyEnvOverrides, envNameToPath, loadConfig, parseConfig, readConfigInput } from '../../src/config/load-config.js';
import { grade, runChecks, findingsOf, type CheckContext } from '../../src/config/production-checks.js';
import { DEFAULT_TLS_CIPHERS } from '../../src/config/schema.js';
import { devKeyPath } from '../../src/config/dev-key.js';
import { makeCa, makeLeaf } from '../helpers/tls-certs.js';

const STRONG = 'a-strong-production-secret-of-at-least-32-bytes!';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

test("defaults are design.md's", () => {
  const c = parseConfig({});
  assert.equal(c.port, 8080);
  assert.equal(c.host, '127.0.0.1');
  assert.deepEqual(c.allowedOrigins, []);
  assert.equal(c.allowMissingOrigin, true);
  assert.equal(c.maxMessageSize, 65536);
  assert.equal(c.authTimeout, 10000);
  assert.deepEqual(c.rateLimit, { messagesPerMinute: 60, messagesPerHour: 1000, burstLimit: 10, burstWindow: 1000 });
  assert.equal(c.maxConnectionsPerUser, 5);
  assert.equal(c.maxConnectionsPerIP, 100);
  assert.equal(c.listenBacklog, 4096);
  assert.equal(c.heartbeatInterval, 30000);
  assert.equal(c.heartbeatTimeout, 60000);
  assert.equal(c.allowQueryToken, false);
  assert.equal(c.tls, undefined);
  assert.equal(c.storage, 'sqlite:./data/rampart.db');
  for (const storage of ['sqlite::memory:', 'sqlite:///var/lib/rampart.db', 'postgres://u@h/db', 'postgresql://u@h:5432/db?schema=x']) {
    assert.equal(parseConfig({ storage }).storage, storage);
  }
  assert.equal(c.redisUrl, undefined);
  assert.equal(c.mode, 'development');
  assert.deepEqual(c.behindProxy, []);
  assert.equal(c.jwt.secret, undefined);
  assert.equal(c.jwt.algorithms, undefined);
  assert.equal(c.chat.maxDevicesPerUser, 100);
  assert.throws(() => parseConfig({ chat: { maxDevicesPerUser: 0 } }), /chat\.maxDevicesPerUser/);
  // A partial section keeps the other defaults.
  assert.deepEqual(parseConfig({ rateLimit: { burstLimit: 3 } }).rateLimit, { messagesPerMinute: 60, messagesPerHour: 1000, burstLimit: 3, burstWindow: 1000 });
  const tls = parseConfig({ tls: { certFile: 'c.pem', keyFile: 'k.pem' } }).tls;
  assert.equal(tls?.minVersion, 'TLSv1.2');
});

test('an unknown key is an error naming it, at any depth', () => {
  let err = configError(() => parseConfig({ prot: 8080 }));
  assert.match(err.message, /prot/);
  assert.match(err.message, /unknown key/);
  err = configError(() => parseConfig({ rateLimit: { burstLimt: 5 } }));
  assert.match(err.message, /rateLimit/);
  assert.match(err.message, /burstLimt/);
  err = configError(() => parseConfig({ jwt: { secret: STRONG, algorithm: 'HS256' } }));
  assert.match(err.message, /jwt/);
  assert.match(err.message, /"algorithm"/);
  err = configError(() => parseConfig({ limits: { frames: { limit: 1, windowMs: 1, x: 1 } } }));
  assert.match(err.message, /limits\.frames/);
});

test('a bad value is an error naming the key and the rule, never echoing the value', () => {
  const cases: [unknown, RegExp, string][] = [
    [{ port: 70000 }, /port: .*(65535|big)/i, '70000'],
    [{ port: '8080x' }, /port: .*number/i, '8080x'],
    [{ maxMessageSize: 0 }, /maxMessageSize: .*(>=1|small)/i, 'never'],
    [{ listenBacklog: 0 }, /listenBacklog: .*(>=1|small)/i, 'never'],
    [{ listenBacklog: 70001 }, /listenBacklog: .*(65535|big)/i, '70001'],
    [{ authTimeout: -5 }, /authTimeout/, 'never'],
    [{ rateLimit: { burstLimit: 1.5 } }, /rateLimit\.burstLimit: .*int/i, '1.5'],
    [{ allowQueryToken: 'yes-please' }, /allowQueryToken: .*boolean/i, 'yes-please'],
    [{ tls: { certFile: 'c', keyFile: 'k', minVersion: 'TLSv1.0-marker' } }, /tls\.minVersion/, 'TLSv1.0-marker'],
    [{ jwt: { secret: 123456789 } }, /jwt\.secret: .*string/i, '123456789'],
    [{ jwt: { jwksUrl: 'not a url marker-xyz' } }, /jwt\.jwksUrl/, 'marker-xyz'],
    [{ jwt: { algorithms: ['none'] } }, /jwt\.algorithms/, 'never'],
    [{ redisUrl: 'http://secret-host-marker:6379' }, /redisUrl: must be a redis/, 'secret-host-marker'],
    [{ behindProxy: ['proxy-marker.example'] }, /behindProxy/, 'proxy-marker'],
    [{ logLevel: 'loud-marker' }, /logLevel/, 'loud-marker'],
    [{ storage: '' }, /storage/, 'never'],
    [{ storage: 'mysql://root:hunter2@db/chat' }, /storage: must be sqlite:PATH or a postgres:\/\/ URL/, 'hunter2'],
    [{ storage: 'sqlite:' }, /storage/, 'never'],
  ];
  for (const [input, pattern, secret] of cases) {
    const err = configError(() => parseConfig(input));
    assert.match(err.message, pattern, JSON.stringify(input));
    assert.ok(!err.message.includes(secret), `${err.message} echoes ${secret}`);
  }
});

test('jwt.secret is never echoed, whatever is wrong with it', () => {
  const secret = 'weak-MARKER-secret';
  for (const input of [
    { mode: 'production', jwt: { secret }, allowedOrigins: ['https://a.example.com'], behindProxy: ['10.0.0.1'] },
    { jwt: { secret, publicKeyFile: '/k.pem' } },
    { jwt: { secret, clockTolerance: 'x' } },
  ]) {
    const err = configError(() => parseConfig(input));
    assert.ok(!err.message.includes('MARKER'), err.message);
    assert.ok(!err.problems.join().includes('MARKER'));
  }
});

test('cross-key rules', () => {
  assert.match(configError(() => parseConfig({ jwt: { secret: STRONG, jwksUrl: 'https://id.example.com/jwks' } })).message, /jwt: set only one/);
  assert.match(configError(() => parseConfig({ heartbeatInterval: 1000, heartbeatTimeout: 500 })).message, /heartbeatTimeout/);
  assert.match(configError(() => parseConfig({ maxMessageSize: 1000, maxPreAuthMessageSize: 2000 })).message, /maxPreAuthMessageSize/);
});

test('allowedOrigins entries are validated at start-up, naming the key', () => {
  for (const bad of ['*', 'https://*', 'https://example.com/', 'example.com', 'https://*.com']) {
    const err = configError(() => parseConfig({ allowedOrigins: ['https://ok.example.com', bad] }));
    assert.match(err.message, /allowedOrigins/, bad);
  }
  parseConfig({ allowedOrigins: ['https://ok.example.com', 'https://*.example.com', 'http://localhost:3000'] });
});

test('envNameToPath maps RAMPART_* names to camelCase paths', () => {
  assert.deepEqual(envNameToPath('RAMPART_PORT'), ['port']);
  assert.deepEqual(envNameToPath('RAMPART_MAX_CONNECTIONS_PER_IP'), ['maxConnectionsPerIP']);
  assert.deepEqual(envNameToPath('RAMPART_MAX_PRE_AUTH_MESSAGE_SIZE'), ['maxPreAuthMessageSize']);
  assert.deepEqual(envNameToPath('RAMPART_LIMITS__MAX_UNAUTHENTICATED_PER_IP'), ['limits', 'maxUnauthenticatedPerIP']);
  assert.deepEqual(envNameToPath('RAMPART_TLS__MIN_VERSION'), ['tls', 'minVersion']);
  assert.deepEqual(envNameToPath('RAMPART_NO_SUCH_KEY'), ['noSuchKey']);
  assert.deepEqual(envNameToPath('RAMPART_RATE_LIMIT__BURST_LIMIT'), ['rateLimit', 'burstLimit']);
  assert.deepEqual(envNameToPath('RAMPART_JWT__SECRET'), ['jwt', 'secret']);
});

test('RAMPART_* environment variables override the file, nested keys and JSON values included', () => {
  const env = {
    RAMPART_PORT: '9000',
    RAMPART_HOST: '0.0.0.0',
    RAMPART_RATE_LIMIT__BURST_LIMIT: '20',
    RAMPART_ALLOWED_ORIGINS: '["https://chat.example.com","https://*.example.com"]',
    RAMPART_ALLOW_QUERY_TOKEN: 'true',
    RAMPART_JWT__SECRET: STRONG,
    RAMPART_MAX_CONNECTIONS_PER_USER: '7',
    RAMPART_MAX_CONNECTIONS_PER_IP: '42',
    RAMPART_LIMITS__FRAMES: '{"limit":5,"windowMs":100}',
    RAMPART_TEST_PG_URL: 'postgres://ignored',
    NOT_RAMPART_PORT: '1',
  };
  const c = parseConfig(applyEnvOverrides({ port: 1234, rateLimit: { messagesPerMinute: 30 } }, env));
  assert.equal(c.port, 9000);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.rateLimit.burstLimit, 20);
  assert.equal(c.rateLimit.messagesPerMinute, 30); // the file's sibling key survives
  assert.deepEqual(c.allowedOrigins, ['https://chat.example.com', 'https://*.example.com']);
  assert.equal(c.allowQueryToken, true);
  assert.equal(c.jwt.secret, STRONG);
  assert.equal(c.maxConnectionsPerUser, 7);
  assert.equal(c.maxConnectionsPerIP, 42);
  assert.deepEqual(c.limits.frames, { limit: 5, windowMs: 100 });
});

test('the base object is not modified by overrides', () => {
  const base = { rateLimit: { burstLimit: 1 } };
  applyEnvOverrides(base, { RAMPART_RATE_LIMIT__BURST_LIMIT: '20' });
  assert.deepEqual(base, { rateLimit: { burstLimit: 1 } });
});

test('an unknown environment variable is reported by name; a bad value for a known one is an error naming it', () => {
  const unknown: string[] = [];
  assert.deepEqual(applyEnvOverrides({}, { RAMPART_PROT: '1' }, (name) => unknown.push(name)), {});
  assert.deepEqual(unknown, ['RAMPART_PROT']);
  let err = configError(() => parseConfig(applyEnvOverrides({}, { RAMPART_RATE_LIMIT__BURST_LIMIT: 'many' })));
  assert.match(err.message, /rateLimit\.burstLimit/);
  assert.ok(!err.message.includes('many'));
  // A part below a scalar key names no key either: warned and skipped, the file's value kept.
  const below: string[] = [];
  assert.deepEqual(applyEnvOverrides({ port: 1 }, { RAMPART_PORT__X: '1', RAMPART_LOG_LEVEL__FORMAT: 'json' }, (name) => below.push(name)), { port: 1 });
  assert.deepEqual(below.sort(), ['RAMPART_LOG_LEVEL__FORMAT', 'RAMPART_PORT__X']);
});

test('environment names cannot reach prototypes', () => {
  const unknown: string[] = [];
  const out = applyEnvOverrides({}, { RAMPART_CONSTRUCTOR__PROTOTYPE__POLLUTED: '1', RAMPART_PROTO: '1' }, (name) => unknown.push(name));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(out, {});
  assert.deepEqual(unknown.sort(), ['RAMPART_CONSTRUCTOR__PROTOTYPE__POLLUTED', 'RAMPART_PROTO']);
});

test('an unknown RAMPART_* variable is a warning naming it (skipped); a known one with a bad value and unknown file keys stay fatal', () => {
  const unknown: string[] = [];
  const c = loadConfig(undefined, { RAMPART_DEPLOY_ID: 'secret-MARKER', RAMPART_RATE_LIMIT__BURST_LIMT: '3', RAMPART_PORT: '9000' }, { onUnknownEnv: (n) => unknown.push(n) });
  assert.equal(c.port, 9000);
  assert.deepEqual(unknown.sort(), ['RAMPART_DEPLOY_ID', 'RAMPART_RATE_LIMIT__BURST_LIMT']);
  // Below a record any name is a key.
  const roles = loadConfig(undefined, { RAMPART_CHAT__ROLES__MOD: '{"send":true,"read":true}', RAMPART_CHAT__DEFAULT_ROLE: 'mod' }, { onUnknownEnv: () => assert.fail('known') });
  assert.deepEqual(roles.chat.roles, { mod: { send: true, read: true, createGroup: false } }, 'read in camelCase (docs/protocol.md §9)');
  assert.match(configError(() => loadConfig(undefined, { RAMPART_MAX_CONNECTIONS_PER_IP: '0' })).message, /maxConnectionsPerIP/);
  assert.match(configError(() => parseConfig({ deployId: 'x' })).message, /deployId/);
});

test('NODE_ENV=production means production mode unless the mode is set explicitly', () => {
  assert.equal(readConfigInput(undefined, { NODE_ENV: 'production' }).mode, 'production');
  assert.match(configError(() => loadConfig(undefined, { NODE_ENV: 'production' })).message, /production/);
  assert.equal(loadConfig(undefined, { NODE_ENV: 'production', RAMPART_MODE: 'development' }).mode, 'development');
  assert.equal(loadConfig(undefined, { NODE_ENV: 'development' }).mode, 'development');
});

/** A real certificate/key pair: check-config parses tls.certFile and tls.keyFile and matches them. */
const tlsPair = (() => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-config-pem-'));
  try {
    const leaf = makeLeaf(dir, makeCa(dir, 'ca'), 'server', 'server');
    return { cert: leaf.cert.toString(), key: leaf.key.toString() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();
/** Every file readable (empty; a TLS certificate or key path `…c.pem`/`…k.pem` reads as a matching pair), no development key on disk. */
const noFiles: CheckContext = { readFile: (path) => (path.endsWith('/c.pem') || path === 'c.pem' ? tlsPair.cert : path.endsWith('/k.pem') || path === 'k.pem' ? tlsPair.key : '') };
const PROD = {
  mode: 'production',
  jwt: { secret: STRONG, issuer: 'https://id.example.com', audience: 'chat' },
  allowedOrigins: ['https://chat.example.com', 'https://*.example.com'],
  behindProxy: ['10.0.0.1'],
  metrics: { port: 9464 },
  storage: 'postgres://rampart@db/rampart',
};
const errorsOf = (input: unknown, ctx: CheckContext = noFiles): string[] => {
  try {
    parseConfig(input, ctx);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
};

test('production refuses: the development key, a query token without acknowledgement, no iss/aud, http:// origins, a public /metrics, a plaintext JWKS', () => {
  assert.deepEqual(errorsOf(PROD), []);
  // The development key, copied into the config.
  const devKey = 'D'.repeat(64);
  const withDevKey: CheckContext = { readFile: (path) => (path === devKeyPath('./data') ? `${devKey}\n` : '') };
  assert.match(errorsOf({ ...PROD, jwt: { ...PROD.jwt, secret: devKey } }, withDevKey).join(), /jwt\.secret: is the development key/);
  assert.match(errorsOf({ ...PROD, jwt: { ...PROD.jwt, secret: undefined, publicKeyFile: './data/dev-signing-key' } }).join(), /jwt\.publicKeyFile: is the development key file/);
  assert.match(errorsOf({ ...PROD, jwt: { issuer: 'x', audience: 'y' } }).join(), /jwt: production needs/);
  // Query tokens need the acknowledgement key, and are then a warning.
  assert.match(errorsOf({ ...PROD, allowQueryToken: true }).join(), /allowQueryToken: .*allowQueryTokenInProduction/);
  assert.deepEqual(errorsOf({ ...PROD, allowQueryToken: true, allowQueryTokenInProduction: true }), []);
  // iss and aud, for the top-level key and for each issuer (whose audience defaults to jwt.audience).
  assert.match(errorsOf({ ...PROD, jwt: { secret: STRONG, audience: 'chat' } }).join(), /jwt\.issuer/);
  assert.match(errorsOf({ ...PROD, jwt: { secret: STRONG, issuer: 'i' } }).join(), /jwt\.audience/);
  assert.deepEqual(errorsOf({ ...PROD, jwt: { audience: 'chat', issuers: [{ issuer: 'https://a', jwksUrl: 'https://a/jwks' }] } }), []);
  assert.match(errorsOf({ ...PROD, jwt: { issuers: [{ issuer: 'https://a', jwksUrl: 'https://a/jwks' }] } }).join(), /jwt\.issuers\.0\.audience/);
  assert.match(errorsOf({ ...PROD, jwt: { ...PROD.jwt, secret: undefined, jwksUrl: 'http://id.example.com/jwks' } }).join(), /jwt\.jwksUrl: must be https/);
  assert.deepEqual(errorsOf({ ...PROD, jwt: { ...PROD.jwt, secret: undefined, jwksUrl: 'http://127.0.0.1:8081/jwks' } }), []);
  assert.match(errorsOf({ ...PROD, allowedOrigins: ['https://chat.example.com', 'http://chat.example.com'] }).join(), /allowedOrigins\.1: an http:\/\/ origin/);
  // /metrics: on a public host without a token is refused; not configured at all, it is not served (no error).
  assert.ok(!errorsOf({ ...PROD, metrics: undefined }).join().includes('metrics'));
  assert.match(errorsOf({ ...PROD, metrics: { port: 9464, host: '0.0.0.0' } }).join(), /metrics\.host/);
  assert.deepEqual(errorsOf({ ...PROD, metrics: { port: 9464, host: '0.0.0.0', token: STRONG } }), []);
  assert.deepEqual(errorsOf({ ...PROD, metrics: { token: STRONG } }), []);
  // The admin API on its own (plain HTTP) port: refused on a public host, fine on loopback or under /admin/ on the main port.
  assert.match(errorsOf({ ...PROD, admin: { token: STRONG, port: 9000, host: '0.0.0.0' } }).join(), /admin\.host/);
  assert.deepEqual(errorsOf({ ...PROD, admin: { token: STRONG, port: 9000 } }), []);
  assert.deepEqual(errorsOf({ ...PROD, admin: { token: STRONG } }), []);
  assert.deepEqual(errorsOf({ ...PROD, admin: { port: 9000, host: '0.0.0.0' } }), [], 'no credential: the API is off');
  // A private network (docs/operations.md) or a host name: a warning, not a refusal.
  for (const host of ['10.0.0.5', '172.20.1.1', '192.168.1.9', 'fd12::1', 'admin.internal']) {
    const findings = findingsOf(runChecks(parseConfig({ ...PROD, admin: { token: STRONG, port: 9000, host } }, noFiles), noFiles)).filter((f) => f.key === 'admin.host');
    assert.deepEqual(findings.map((f) => f.severity), ['warn'], host);
  }
  for (const host of ['203.0.113.7', '0.0.0.0', '::', '0', '0x0', '0.0']) assert.match(errorsOf({ ...PROD, admin: { token: STRONG, port: 9000, host } }).join(), /admin\.host/, host);
  // Unreadable TLS files are errors; readable ones pass.
  const tls = { certFile: '/nonexistent/c.pem', keyFile: '/nonexistent/k.pem' };
  assert.deepEqual(errorsOf({ ...PROD, behindProxy: [], tls }, { readFile: () => undefined }).sort(), ['tls.certFile: file cannot be read', 'tls.keyFile: file cannot be read']);
  assert.deepEqual(errorsOf({ ...PROD, behindProxy: [], tls }), []);
  // A CA bundle that reads but holds no certificate: serve would refuse it (OpenSSL would take it and refuse every client).
  const withCa = { ...tls, caFile: '/nonexistent/ca.pem', requireClientCert: true };
  assert.deepEqual(errorsOf({ ...PROD, behindProxy: [], tls: withCa }), ['tls.caFile: file holds no PEM certificate']);
  const garbled = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  assert.deepEqual(errorsOf({ ...PROD, behindProxy: [], tls: withCa }, { readFile: (p) => (p === withCa.caFile ? garbled : noFiles.readFile(p)) }), ['tls.caFile: file holds a certificate that does not parse']);
});

test('check results: OK rules, warnings and the grade', () => {
  const results = runChecks(parseConfig(PROD, noFiles), noFiles);
  assert.ok(results.length >= 8 && results.every((r) => r.findings.length === 0));
  assert.equal(grade(findingsOf(results)), 'A');
  const sqlite = findingsOf(runChecks(parseConfig({ ...PROD, storage: 'sqlite:./x.db', logLevel: 'debug' }, noFiles), noFiles));
  assert.deepEqual(sqlite.map((f) => `${f.severity} ${f.key}`), ['warn storage', 'warn logLevel']);
  assert.equal(grade(sqlite), 'C');
  assert.equal(grade([{ severity: 'error', key: 'x', message: 'y' }]), 'F');
  // Several issuers: each without a tenant list is a warning (it can act for every tenant).
  const twoIssuers = { ...PROD, jwt: { ...PROD.jwt, issuers: [{ issuer: 'https://partner.example.com', jwksUrl: 'https://partner.example.com/jwks', audience: 'chat' }] } };
  const noLists = findingsOf(runChecks(parseConfig(twoIssuers, noFiles), noFiles)).filter((f) => f.key.endsWith('.tenants'));
  assert.deepEqual(noLists.map((f) => `${f.severity} ${f.key}`), ['warn jwt.tenants', 'warn jwt.issuers.0.tenants']);
  const listed = { ...twoIssuers, jwt: { ...twoIssuers.jwt, tenants: ['acme'], issuers: [{ ...twoIssuers.jwt.issuers[0]!, tenants: ['partner'] }] } };
  assert.deepEqual(findingsOf(runChecks(parseConfig(listed, noFiles), noFiles)).filter((f) => f.key.endsWith('.tenants')), []);
  // Development runs only the mode-independent rules.
  assert.deepEqual(runChecks(parseConfig({}), noFiles).map((r) => r.rule), ['files are readable', 'tokens fit the auth frame', 'the default role reads']);
});

test('a default role without read is a warning in every mode: every token without a role claim is refused at auth', () => {
  const findings = (input: Record<string, unknown>): string[] => findingsOf(runChecks(parseConfig(input), noFiles)).map((f) => `${f.severity} ${f.key}`);
  assert.deepEqual(findings({}), []);
  assert.deepEqual(findings({ chat: { roles: { poster: { send: true } }, defaultRole: 'poster' } }), ['warn chat.defaultRole']);
  assert.deepEqual(findings({ chat: { roles: { poster: { send: true }, reader: { read: true } }, defaultRole: 'reader' } }), []);
});

test('a token near jwt.maxTokenLength must fit the pre-auth frame cap (warning in every mode)', () => {
  const fits = (input: Record<string, unknown>): string[] => findingsOf(runChecks(parseConfig(input), noFiles)).map((f) => `${f.severity} ${f.key}`);
  assert.deepEqual(fits({}), [], 'the defaults (4096 + 256 ≤ 8192) fit');
  assert.deepEqual(fits({ maxPreAuthMessageSize: 4096 }), ['warn maxPreAuthMessageSize']);
  assert.deepEqual(fits({ maxPreAuthMessageSize: 1024, jwt: { secret: STRONG, maxTokenLength: 768 } }), []);
  assert.deepEqual(fits({ maxPreAuthMessageSize: 8192, jwt: { secret: STRONG, maxTokenLength: 16384 } }), ['warn maxPreAuthMessageSize']);
});

test('tls and jwt.issuers rules', () => {
  const tls = parseConfig({ tls: { certFile: 'c.pem', keyFile: 'k.pem' } }).tls!;
  assert.equal(tls.ciphers, DEFAULT_TLS_CIPHERS);
  for (const suite of DEFAULT_TLS_CIPHERS.split(':')) assert.match(suite, /^(TLS_(AES_\d+_GCM|CHACHA20_POLY1305)_SHA\d+|ECDHE-(RSA|ECDSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305))$/, suite);
  assert.deepEqual([tls.minVersion, tls.maxVersion, tls.honorCipherOrder, tls.requestClientCert, tls.requireClientCert, tls.hstsMaxAge], ['TLSv1.2', 'TLSv1.3', true, false, false, 31536000]);
  assert.match(configError(() => parseConfig({ tls: { certFile: 'c', keyFile: 'k', requireClientCert: true } })).message, /tls\.caFile: required/);
  assert.match(configError(() => parseConfig({ tls: { certFile: 'c', keyFile: 'k', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' } })).message, /tls\.maxVersion/);
  assert.match(configError(() => parseConfig({ tls: { certFile: 'c', keyFile: 'k', minVersion: 'TLSv1.1' } })).message, /tls\.minVersion/);
  const jwt = parseConfig({}).jwt;
  assert.deepEqual([jwt.types, jwt.requireType, jwt.jwksRefetchIntervalMs, jwt.issuers], [['JWT', 'at+jwt'], false, 30000, []]);
  assert.match(configError(() => parseConfig({ jwt: { issuers: [{ issuer: 'https://a' }] } })).message, /jwt\.issuers\.0: set exactly one/);
  assert.match(configError(() => parseConfig({ jwt: { issuers: [{ issuer: 'https://a', secret: STRONG, jwksUrl: 'https://a/j' }] } })).message, /jwt\.issuers\.0: set exactly one/);
  assert.match(configError(() => parseConfig({ jwt: { issuers: [{ issuer: 'https://a', secret: STRONG }, { issuer: 'https://a', secret: STRONG }] } })).message, /jwt\.issuers\.1\.issuer: configured twice/);
  assert.match(configError(() => parseConfig({ jwt: { issuers: [{ issuer: 'https://a', jwksUrl: 'https://a/j', algorithms: ['HS256'] }] } })).message, /jwt\.issuers\.0\.algorithms/);
  assert.match(configError(() => parseConfig({ jwt: { issuers: [{ issuer: 'https://a', jwksUrl: 'https://a/j', jku: 'x' }] } })).message, /"jku"/);
});

test('production refuses a weak or missing secret, a wildcard origin and plaintext without behindProxy', () => {
  const good = PROD;
  parseConfig(good, noFiles);
  parseConfig({ ...good, behindProxy: [], tls: { certFile: 'c.pem', keyFile: 'k.pem' } }, noFiles);
  parseConfig({ ...good, jwt: { ...good.jwt, secret: undefined, jwksUrl: 'https://id.example.com/jwks' } }, noFiles);
  assert.match(configError(() => parseConfig({ ...good, jwt: { secret: 'short' } })).message, /jwt\.secret: must be at least 32 bytes/);
  assert.match(configError(() => parseConfig({ ...good, jwt: {} })).message, /jwt: production needs/);
  assert.match(configError(() => parseConfig({ ...good, allowedOrigins: ['*'] })).message, /allowedOrigins/);
  assert.match(configError(() => parseConfig({ ...good, allowedOrigins: ['https://*'] })).message, /allowedOrigins/);
  assert.match(configError(() => parseConfig({ ...good, allowedOrigins: [] })).message, /allowedOrigins: production needs/);
  assert.match(configError(() => parseConfig({ ...good, behindProxy: [] })).message, /tls: production needs/);
  // Development accepts what production refuses.
  parseConfig({ jwt: { secret: 'short' }, allowedOrigins: [] });
});

test('loadConfig reads a file, applies env, and reports file problems without echoing content', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-config-'));
  try {
    const file = join(dir, 'rampart.json');
    writeFileSync(file, JSON.stringify({ port: 1234, rateLimit: { burstLimit: 3 } }));
    const c = loadConfig(file, { RAMPART_PORT: '4321' });
    assert.equal(c.port, 4321);
    assert.equal(c.rateLimit.burstLimit, 3);
    assert.equal(loadConfig(undefined, {}).port, 8080);

    writeFileSync(file, '{"jwt":{"secret":"MARKER-in-broken-json"');
    let err = configError(() => loadConfig(file, {}));
    assert.match(err.message, /not valid JSON/);
    assert.ok(!err.message.includes('MARKER'));
    writeFileSync(file, '["MARKER"]');
    assert.match(configError(() => loadConfig(file, {})).message, /JSON object/);
    writeFileSync(file, JSON.stringify({ heartbeatIntervall: 5 }));
    assert.match(configError(() => loadConfig(file, {})).message, /heartbeatIntervall/);
    err = configError(() => loadConfig(join(dir, 'missing.json'), {}));
    assert.match(err.message, /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('jwt.algorithms must fit the key kind (no HS/RS mix)', () => {
  parseConfig({ jwt: { secret: STRONG, algorithms: ['HS256', 'HS512'] } });
  parseConfig({ jwt: { publicKeyFile: '/k.pem', algorithms: ['RS256', 'ES256'] } });
  assert.match(configError(() => parseConfig({ jwt: { secret: STRONG, algorithms: ['HS256', 'RS256'] } })).message, /jwt\.algorithms/);
  assert.match(configError(() => parseConfig({ jwt: { publicKeyFile: '/k.pem', algorithms: ['RS256', 'HS256'] } })).message, /jwt\.algorithms/);
  assert.match(configError(() => parseConfig({ jwt: { jwksUrl: 'https://id.example.com/jwks', algorithms: ['HS256'] } })).message, /jwt\.algorithms/);
  assert.match(configError(() => parseConfig({ jwt: { algorithms: ['RS256'] } })).message, /jwt\.algorithms/);
});

test('the development signing key: created once (mode 600), reused, a truncated one refused', async () => {
  const { loadOrCreateDevSecret, devKeyPath } = await import('../../src/config/dev-key.js');
  const { chmodSync, statSync, readdirSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'rampart-devkey-'));
  try {
    const dataDir = join(dir, 'data');
    const first = loadOrCreateDevSecret(dataDir);
    assert.equal(first.created, true);
    assert.ok(first.secret.length >= 32);
    assert.equal(statSync(devKeyPath(dataDir)).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dataDir), ['dev-signing-key']); // no temp file left behind
    const again = loadOrCreateDevSecret(dataDir);
    assert.deepEqual(again, { secret: first.secret, created: false, exposed: false });
    // Someone widened the file's mode: still used, and reported (the server warns).
    chmodSync(devKeyPath(dataDir), 0o644);
    assert.deepEqual(loadOrCreateDevSecret(dataDir), { secret: first.secret, created: false, exposed: true });
    chmodSync(devKeyPath(dataDir), 0o600);
    // Every later use (another process, the `token` command) gets the same key.
    const other = join(dir, 'other');
    const secrets = new Set(Array.from({ length: 20 }, () => loadOrCreateDevSecret(other).secret));
    assert.equal(secrets.size, 1);
    writeFileSync(devKeyPath(dataDir), 'short\n');
    assert.throws(() => loadOrCreateDevSecret(dataDir), /too short/);
    writeFileSync(devKeyPath(dataDir), '');
    assert.throws(() => loadOrCreateDevSecret(dataDir), /too short/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a rate budget given one field keeps the other at its documented default (file and environment)', () => {
  assert.deepEqual(parseConfig({ limits: { frames: { limit: 60 } } }).limits.frames, { limit: 60, windowMs: 1000 });
  assert.deepEqual(parseConfig({ limits: { groupCreates: { windowMs: 30000 } } }).limits.groupCreates, { limit: 10, windowMs: 30000 });
  assert.deepEqual(parseConfig(applyEnvOverrides({}, { RAMPART_LIMITS__TYPING__LIMIT: '10' })).limits.typing, { limit: 10, windowMs: 1000 });
  const defaults = parseConfig({}).limits;
  assert.deepEqual(
    [defaults.frames, defaults.typing, defaults.requests, defaults.groupCreates, defaults.membershipChanges],
    [{ limit: 30, windowMs: 1000 }, { limit: 5, windowMs: 1000 }, { limit: 20, windowMs: 1000 }, { limit: 10, windowMs: 60000 }, { limit: 30, windowMs: 60000 }],
  );
  assert.match(errorsOf({ limits: { frames: { limit: 0 } } }).join(), /limits\.frames\.limit/);
});

test('storage: a statement_timeout PostgreSQL would refuse is a config error (serve and check-config alike), never echoing the value', () => {
  for (const bad of ['abc', '-1', '2147483648', '1.5', '']) {
    const problems = errorsOf({ storage: `postgres://u@db/x?statement_timeout=${bad}` });
    assert.deepEqual(problems, ['storage: the "statement_timeout" parameter must be a whole number of ms from 0 to 2147483647'], bad);
  }
  for (const good of ['0', '5000', '2147483647']) assert.deepEqual(errorsOf({ storage: `postgres://u@db/x?schema=s&statement_timeout=${good}` }), [], good);
});

test('jwt.algorithms restricts the top-level key: with only jwt.issuers it applies to nothing and is refused, whatever the algorithms', () => {
  const issuers = [{ issuer: 'https://id.example.com', jwksUrl: 'https://id.example.com/jwks.json' }];
  for (const algorithms of [['RS256'], ['HS256']]) {
    assert.deepEqual(errorsOf({ jwt: { algorithms, issuers } }), ['jwt.algorithms: restricts the top-level key, and none is configured (set jwt.issuers[].algorithms)'], algorithms[0]);
  }
  assert.deepEqual(errorsOf({ jwt: { issuers: [{ ...issuers[0], algorithms: ['RS256'] }] } }), []);
  assert.deepEqual(errorsOf({ jwt: { algorithms: ['HS512'] } }), [], 'no key at all: the development key, HMAC');
});

test('RAMPART_* values for keys that take text stay text: an all-digit token or key id is not turned into a number', () => {
  const digits = '1234567890123456789012345'; // past 2^53: as a number it would lose digits too
  const c = parseConfig(
    applyEnvOverrides({}, {
      RAMPART_METRICS__TOKEN: digits,
      RAMPART_ENCRYPTION__ACTIVE_KEY_ID: '2024',
      RAMPART_ENCRYPTION__KEYS__2024: Buffer.alloc(32, 7).toString('base64'),
      RAMPART_PORT: '9000',
      RAMPART_LOG_LEVEL: 'warn',
    }),
  );
  assert.deepEqual([c.metrics.token, c.encryption?.activeKeyId, c.port, c.logLevel], [digits, '2024', 9000, 'warn']);
});

test('chat.roles: a permission left out is not given, and the default role must be one of the roles configured', () => {
  assert.deepEqual(parseConfig({ chat: { roles: { user: { send: true, read: true }, reader: { read: true } } } }).chat.roles.reader, { send: false, read: true, createGroup: false });
  assert.deepEqual(errorsOf({ chat: { roles: { moderator: { send: true, read: true } } } }), [
    'chat.defaultRole: must name a role of chat.roles (a chat.roles given replaces the default roles: list the default role in it too)',
  ]);
  assert.deepEqual(errorsOf({ chat: { roles: { moderator: { send: true, read: true } }, defaultRole: 'moderator' } }), []);
});
