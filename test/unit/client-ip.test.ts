import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeIp, resolveClientIp, ipLimitKey } from '../../src/gate/client-ip.js';

const PROXY = '10.0.0.1';
const trusted = new Set([PROXY, '10.0.0.2']);
const none = new Set<string>();

test('X-Forwarded-For from an untrusted peer is ignored', () => {
  assert.equal(resolveClientIp('203.0.113.9', '1.2.3.4', none), '203.0.113.9');
  assert.equal(resolveClientIp('203.0.113.9', '1.2.3.4', trusted), '203.0.113.9');
  assert.equal(resolveClientIp('203.0.113.9', ['1.2.3.4', '5.6.7.8'], trusted), '203.0.113.9');
});

test('X-Forwarded-For from a trusted proxy names the client', () => {
  assert.equal(resolveClientIp(PROXY, '1.2.3.4', trusted), '1.2.3.4');
  assert.equal(resolveClientIp(PROXY, ' 1.2.3.4 ', trusted), '1.2.3.4');
  assert.equal(resolveClientIp(PROXY, undefined, trusted), PROXY);
});

test('multi-hop: walk from the right past trusted hops only', () => {
  // client → 10.0.0.2 (trusted) → 10.0.0.1 (peer)
  assert.equal(resolveClientIp(PROXY, '1.2.3.4, 10.0.0.2', trusted), '1.2.3.4');
  // A client-supplied spoof on the left is never reached: the first untrusted hop from the right wins.
  assert.equal(resolveClientIp(PROXY, '6.6.6.6, 1.2.3.4, 10.0.0.2', trusted), '1.2.3.4');
  assert.equal(resolveClientIp(PROXY, '6.6.6.6, 1.2.3.4', trusted), '1.2.3.4');
  // Every hop trusted: the leftmost one.
  assert.equal(resolveClientIp(PROXY, '10.0.0.2, 10.0.0.1', trusted), '10.0.0.2');
  // Several header lines (array) are one list.
  assert.equal(resolveClientIp(PROXY, ['6.6.6.6', '1.2.3.4, 10.0.0.2'], trusted), '1.2.3.4');
});

test('garbage stops the walk at the last address that could be trusted', () => {
  assert.equal(resolveClientIp(PROXY, 'not-an-ip', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, '', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, '1.2.3.4, garbage', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, '1.2.3.4:', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, '1.2.3.4:port', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, '[2001:db8::1', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, '1.2.3.4,,', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, '999.1.1.1', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, '<script>', trusted), PROXY);
  assert.equal(resolveClientIp(PROXY, 'garbage, 1.2.3.4', trusted), '1.2.3.4');
  assert.equal(resolveClientIp(PROXY, 'garbage, 10.0.0.2', trusted), '10.0.0.2');
  assert.equal(resolveClientIp(undefined, '1.2.3.4', trusted), 'unknown');
});

test('a hop with the port a proxy appended is its address (not garbage: every client behind it would share one address)', () => {
  assert.equal(resolveClientIp(PROXY, '1.2.3.4:5555', trusted), '1.2.3.4');
  assert.equal(resolveClientIp(PROXY, '[2001:db8::7]:443', trusted), '2001:db8::7');
  assert.equal(resolveClientIp(PROXY, '[2001:db8::7]', trusted), '2001:db8::7');
  assert.equal(resolveClientIp(PROXY, '2001:db8::7', trusted), '2001:db8::7', 'a bare IPv6 address keeps its colons');
  assert.equal(resolveClientIp(PROXY, '6.6.6.6, 1.2.3.4:5555, 10.0.0.2:80', trusted), '1.2.3.4', 'the trust walk is the same');
});

test('IPv4-mapped IPv6 is the same client as plain IPv4', () => {
  assert.equal(normalizeIp('::ffff:1.2.3.4'), '1.2.3.4');
  assert.equal(normalizeIp('::FFFF:1.2.3.4'), '1.2.3.4');
  assert.equal(normalizeIp('::ffff:102:304'), '1.2.3.4');
  assert.equal(normalizeIp('0:0:0:0:0:ffff:1.2.3.4'), '1.2.3.4');
  assert.equal(normalizeIp('1.2.3.4'), '1.2.3.4');
  assert.equal(resolveClientIp('::ffff:203.0.113.9', undefined, none), '203.0.113.9');
  // A mapped peer address is recognised as the trusted proxy, and mapped hops are normalised.
  assert.equal(resolveClientIp('::ffff:10.0.0.1', '::ffff:1.2.3.4', trusted), '1.2.3.4');
  assert.equal(resolveClientIp(PROXY, '1.2.3.4, ::ffff:10.0.0.2', trusted), '1.2.3.4');
});

test('IPv6 spellings collapse to one, for the peer and for the trusted list', () => {
  assert.equal(normalizeIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(normalizeIp('::1'), '::1');
  const v6 = new Set(['2001:db8:0:0::1']);
  assert.equal(resolveClientIp('2001:db8::1', '1.2.3.4', v6), '1.2.3.4');
  assert.equal(resolveClientIp('2001:db8::2', '1.2.3.4', v6), '2001:db8::2');
});

test('ipLimitKey: IPv6 clients are counted by their /64 (configurable); IPv4 and odd inputs unchanged', () => {
  assert.equal(ipLimitKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64), '2001:db8:1:2::/64');
  assert.equal(ipLimitKey('2001:DB8:1:2::1', 64), '2001:db8:1:2::/64', 'any spelling, one key');
  assert.equal(ipLimitKey('2001:db8:1:2:ffff::', 64), ipLimitKey('2001:db8:1:2::ffff', 64), 'two addresses of one /64 share the key');
  assert.notEqual(ipLimitKey('2001:db8:1:2::1', 64), ipLimitKey('2001:db8:1:3::1', 64), 'the next /64 is another client');
  assert.equal(ipLimitKey('2001:db8:1:2:3:4:5:6', 56), '2001:db8:1::/56');
  assert.equal(ipLimitKey('2001:db8:1:2ff:3:4:5:6', 56), '2001:db8:1:200::/56', 'a prefix inside a group keeps its high bits');
  assert.equal(ipLimitKey('2001:db8::1', 128), '2001:db8::1', '128: by address');
  assert.equal(ipLimitKey('::1', 64), '::/64');
  assert.equal(ipLimitKey('203.0.113.7', 64), '203.0.113.7');
  assert.equal(ipLimitKey('::ffff:203.0.113.7', 64), '203.0.113.7', 'IPv4-mapped: the IPv4 address');
  assert.equal(ipLimitKey('unknown', 64), 'unknown');
  // A link-local peer (Node names it with its zone id) is counted by its /64 on that interface:
  // counted address by address, a neighbour could pick a new source address to dodge every limit.
  assert.equal(ipLimitKey('fe80::1%eth0', 64), 'fe80::/64%eth0');
  assert.equal(ipLimitKey('FE80::0:2%ETH0', 64), ipLimitKey('fe80::1%eth0', 64), 'two addresses of one /64, any spelling');
  assert.notEqual(ipLimitKey('fe80::1%eth1', 64), ipLimitKey('fe80::1%eth0', 64), 'another interface is another network');
  assert.equal(ipLimitKey('fe80::0:1%eth0', 128), 'fe80::1%eth0', '128: by address, one spelling');
  assert.equal(normalizeIp('FE80:0::1%Eth0'), 'fe80::1%eth0');
});
