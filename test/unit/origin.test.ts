import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkOrigin, compileOriginPolicy, ownOrigins, parseCanonicalOrigin, declaredOrigins, serverOriginPolicy } from '../../src/gate/origin.js';

const policy = compileOriginPolicy(['http://localhost:3000', 'https://chat.example.org', 'https://*.example.com'], true);
const verdict = (origin: string, p = policy) => checkOrigin(p, [origin]);

test('exact entries match exactly (scheme, host and port)', () => {
  assert.equal(verdict('http://localhost:3000'), 'allowed');
  assert.equal(verdict('https://chat.example.org'), 'allowed');
  assert.equal(verdict('http://localhost:3001'), 'not_allowed');
  assert.equal(verdict('https://localhost:3000'), 'not_allowed');
  assert.equal(verdict('http://chat.example.org'), 'not_allowed');
  assert.equal(verdict('https://evil.chat.example.org'), 'not_allowed');
  assert.equal(verdict('https://chat.example.org.evil.com'), 'not_allowed');
  assert.equal(verdict('http://localhost'), 'not_allowed');
});

test('a pattern matches subdomains at a dot boundary only', () => {
  assert.equal(verdict('https://a.example.com'), 'allowed');
  assert.equal(verdict('https://a.b.example.com'), 'allowed');
  assert.equal(verdict('https://1-x.example.com'), 'allowed');
  for (const refused of [
    'https://example.com',
    'https://evilexample.com',
    'https://a.evilexample.com',
    'https://a.example.com.evil.com',
    'https://example.com.evil.com',
    'http://a.example.com',
    'https://a.example.com:8443',
    'wss://a.example.com',
  ]) assert.notEqual(verdict(refused), 'allowed', refused);
});

test('empty labels never match a pattern', () => {
  for (const refused of ['https://.example.com', 'https://..example.com', 'https://a..example.com', 'https://a.b..example.com']) {
    assert.notEqual(verdict(refused), 'allowed', refused);
  }
});

test('a pattern with a port matches that port only', () => {
  const p = compileOriginPolicy(['https://*.example.com:8443'], true);
  assert.equal(verdict('https://a.example.com:8443', p), 'allowed');
  assert.equal(verdict('https://a.example.com', p), 'not_allowed');
  assert.equal(verdict('https://a.example.com:9443', p), 'not_allowed');
});

test('null, userinfo, trailing dot, other schemes, uppercase, path and default port are refused', () => {
  for (const refused of [
    'null',
    'https://user@a.example.com',
    'https://user:pw@a.example.com',
    'https://a.example.com.',
    'http://localhost.:3000',
    'file://',
    'file:///etc/passwd',
    'chrome-extension://x',
    'moz-extension://abcdef',
    'javascript:alert(1)',
    'data:text/html,x',
    'HTTPS://a.example.com',
    'https://A.example.com',
    'http://LOCALHOST:3000',
    'https://a.example.com/',
    'https://a.example.com/path',
    'http://localhost:3000/',
    'https://a.example.com?x',
    'https://a.example.com#x',
    'https://a.example.com:443',
    'https://a%2eexample.com',
    'https://a.example.com ',
    ' https://a.example.com',
    'https:a.example.com',
    'https://a.example.com\t',
    '',
    '*',
  ]) {
    assert.notEqual(verdict(refused), 'allowed', JSON.stringify(refused));
    assert.notEqual(verdict(refused), 'missing_allowed', JSON.stringify(refused));
  }
  assert.equal(verdict('null'), 'malformed');
  assert.equal(verdict('https://user@a.example.com'), 'malformed');
  assert.equal(verdict('https://a.example.com.'), 'malformed');
});

test('two Origin headers are refused even when both are allowed', () => {
  assert.equal(checkOrigin(policy, ['https://a.example.com', 'https://a.example.com']), 'duplicate');
  assert.equal(checkOrigin(policy, ['https://a.example.com', 'https://evil.com']), 'duplicate');
  // A comma-joined value (what a naive header merge produces) is not an origin either.
  assert.equal(verdict('https://a.example.com, https://evil.com'), 'malformed');
});

test('declaredOrigins sees every Origin line, whatever its case, and the version-8 Sec-WebSocket-Origin', () => {
  assert.deepEqual(declaredOrigins(['Host', 'x', 'Origin', 'https://a.example.com', 'origin', 'https://b.example.com', 'ORIGIN', 'null']), [
    'https://a.example.com',
    'https://b.example.com',
    'null',
  ]);
  assert.deepEqual(declaredOrigins(['Host', 'x']), []);
  // hybi-07..12 browsers (version 8) put the page's origin here; with an Origin line too it is a duplicate.
  assert.deepEqual(declaredOrigins(['Sec-WebSocket-Version', '8', 'Sec-WebSocket-Origin', 'https://evil.test']), ['https://evil.test']);
  assert.equal(checkOrigin(policy, declaredOrigins(['Sec-WebSocket-Origin', 'https://evil.test', 'Sec-WebSocket-Version', '8'])), 'not_allowed');
  assert.equal(checkOrigin(policy, declaredOrigins(['Sec-WebSocket-Version', '8', 'Origin', 'https://chat.example.org', 'sec-websocket-origin', 'https://chat.example.org'])), 'duplicate');
  // Version 13 has no such header: a line of it is not an origin (as in ws).
  assert.deepEqual(declaredOrigins(['Sec-WebSocket-Version', '13', 'Sec-WebSocket-Origin', 'https://evil.test', 'Origin', 'https://chat.example.org']), ['https://chat.example.org']);
});

test('a missing Origin is allowed or refused by config', () => {
  assert.equal(checkOrigin(policy, []), 'missing_allowed');
  const strict = compileOriginPolicy(['https://*.example.com'], false);
  assert.equal(checkOrigin(strict, []), 'missing');
});

test('parseCanonicalOrigin accepts only what browsers serialize', () => {
  assert.equal(parseCanonicalOrigin('https://a.example.com')?.hostname, 'a.example.com');
  assert.equal(parseCanonicalOrigin('http://[::1]:3000')?.port, '3000');
  assert.equal(parseCanonicalOrigin('https://a.example.com.'), undefined);
  assert.equal(parseCanonicalOrigin('https://a..example.com'), undefined);
  assert.equal(parseCanonicalOrigin('ws://a.example.com'), undefined);
});

test('bad config entries throw at compile time, naming the entry', () => {
  for (const bad of [
    '*',
    'https://*',
    'https://*.com',
    'https://*.*.com',
    'https://a.*.example.com',
    'https://*example.com',
    'https://*.example.com/',
    'https://*.example.com:443',
    'https://*.EXAMPLE.com',
    'https://*.example.com.',
    'https://example.com/',
    'https://example.com/path',
    'HTTPS://example.com',
    'https://user@example.com',
    'https://example.com:443',
    'https://example.com.',
    'file://',
    'chrome-extension://x',
    'null',
    'example.com',
    '',
  ]) {
    assert.throws(() => compileOriginPolicy([bad], true), (err: Error) => err.message.includes('allowedOrigins'), JSON.stringify(bad));
  }
  // Good entries compile.
  compileOriginPolicy(['https://example.com', 'http://localhost:3000', 'http://127.0.0.1:8080', 'http://[::1]:8080', 'https://*.example.com', 'http://*.test.local:8080'], true);
});

test('own origins (empty allowedOrigins) are canonical: a default port is left out, as browsers send it', () => {
  assert.deepEqual(ownOrigins(false, 8080), ['http://localhost:8080', 'http://127.0.0.1:8080', 'http://[::1]:8080']);
  assert.deepEqual(ownOrigins(false, 80), ['http://localhost', 'http://127.0.0.1', 'http://[::1]']);
  assert.deepEqual(ownOrigins(true, 443), ['https://localhost', 'https://127.0.0.1', 'https://[::1]']);
  assert.deepEqual(ownOrigins(true, 80), ['https://localhost:80', 'https://127.0.0.1:80', 'https://[::1]:80']);
  const own = serverOriginPolicy([], true, { secure: false, port: 80 });
  assert.equal(verdict('http://localhost', own), 'allowed');
  assert.equal(verdict('http://127.0.0.1', own), 'allowed');
  assert.equal(verdict('https://localhost', own), 'not_allowed');
  // Configured entries win; the own origins are only the default.
  const configured = serverOriginPolicy(['https://chat.example.org'], true, { secure: false, port: 80 });
  assert.equal(verdict('https://chat.example.org', configured), 'allowed');
  assert.equal(verdict('http://localhost', configured), 'not_allowed');
});
