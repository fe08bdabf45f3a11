/** Pure guards of the admin subsystem: the bearer check and control commands read off Redis. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { adminCredential, authenticateAdmin } from '../../src/admin/admin-auth.js';
import { parseControlCommand } from '../../src/admin/control-channel.js';
import { MemoryAccessPolicy } from '../../src/admin/access-policy.js';

const TOKEN = 'x'.repeat(40);

test('admin credential: off without a token; token and tokenSha256 are equivalent', () => {
  assert.equal(adminCredential({ name: 'a' }), undefined);
  const plain = adminCredential({ token: TOKEN, name: 'a' })!;
  const hashed = adminCredential({ tokenSha256: createHash('sha256').update(TOKEN).digest('hex').toUpperCase(), name: 'b' })!;
  assert.deepEqual(plain.sha256, hashed.sha256);
  assert.equal(authenticateAdmin(`Bearer ${TOKEN}`, hashed)?.name, 'b');
  // The scheme is case-insensitive (RFC 9110 §11.1); the token is compared exactly.
  assert.equal(authenticateAdmin(`bearer ${TOKEN}`, hashed)?.name, 'b');
  assert.equal(authenticateAdmin(`BEARER ${TOKEN}`, hashed)?.name, 'b');
});

test('admin bearer: anything but the exact token is refused', () => {
  const c = adminCredential({ token: TOKEN, name: 'a' })!;
  for (const h of [undefined, '', TOKEN, `Bearer  ${TOKEN}`, `Bearer ${TOKEN} `, `Bearer ${TOKEN}y`, `Bearer ${TOKEN.slice(1)}`, `Bearer ${TOKEN.toUpperCase()}`, `Bearer ${'x'.repeat(5000)}`]) {
    assert.equal(authenticateAdmin(h, c), undefined, String(h).slice(0, 20));
  }
});

test('control commands: only well-formed ones are applied', () => {
  assert.deepEqual(parseControlCommand('{"kind":"revoke","jti":"j"}'), { kind: 'revoke', jti: 'j' }, 'from a node older than tenant-scoped revocations');
  assert.deepEqual(parseControlCommand('{"kind":"revoke","jti":"j","tenantId":"acme"}'), { kind: 'revoke', jti: 'j', tenantId: 'acme' });
  assert.equal(parseControlCommand('{"kind":"revoke","jti":"j","tenantId":7}'), undefined);
  assert.deepEqual(parseControlCommand('{"kind":"close","cause":"banned","userKey":"default:u","until":5}'), { kind: 'close', cause: 'banned', userKey: 'default:u', until: 5 });
  assert.deepEqual(parseControlCommand('{"kind":"unban","userKey":"default:u"}'), { kind: 'unban', userKey: 'default:u' });
  for (const bad of ['', 'null', '[]', '{"kind":"close","cause":"other","userKey":"u"}', '{"kind":"close","cause":"admin"}', '{"kind":"revoke","jti":""}', `{"kind":"revoke","jti":"${'j'.repeat(300)}"}`, '{"kind":"close","cause":"admin","userKey":"u","sessionId":7}']) {
    assert.equal(parseControlCommand(bad), undefined, bad);
  }
});

test('memory access policy: bans and revocations expire; unban lifts', async () => {
  const p = new MemoryAccessPolicy();
  const id = { userId: 'u', tenantId: 'default', role: undefined, expiresAt: 0, jti: 'j1' };
  await p.ban('default:u', Date.now() + 60_000);
  assert.equal(await p.isDenied(id), 'banned');
  assert.equal(await p.unban('default:u'), true);
  assert.equal(await p.unban('default:u'), false);
  assert.equal(await p.isDenied(id), undefined);
  await p.revoke({ tenantId: 'default', jti: 'j1' }, Date.now() + 60_000);
  assert.equal(await p.isDenied(id), 'revoked');
  assert.equal(await p.isDenied({ ...id, jti: 'j2' }), undefined);
  assert.equal(await p.isDenied({ ...id, tenantId: 'acme' }), undefined, 'the same jti in another tenant is another token');
  await p.ban('default:u', Date.now() - 1);
  await p.revoke({ tenantId: 'default', jti: 'j2' }, Date.now() - 1);
  assert.equal(await p.isDenied({ ...id, jti: 'j2' }), undefined, 'expired entries do not count');
});
