/**
 * Metrics and health, end to end: `/metrics` is never public by default, values move with scripted
 * traffic, `/readyz` follows Redis and storage (real services behind cuttable TCP proxies).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  authedClient,
  closeAll,
  handshakeStatus,
  openClient,
  REDIS_URL,
  startRedisProxy,
  startServer,
  token,
  newUserId,
  uniqueRedisPrefix,
  waitFor,
  type TestServer,
} from '../helpers/harness.js';
import { proxiedPgStorage } from '../helpers/storage-backends.js';

const METRICS_TOKEN = 'scrape-token-0123456789abcdef';

type Samples = Map<string, number>;

/** Prometheus text format → `name{a="x",b="y"}` (labels sorted) → value. */
function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = m[2] ? [...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort().join(',') : '';
    out.set(labels ? `${m[1]}{${labels}}` : m[1]!, Number(m[3]));
  }
  return out;
}

function key(name: string, labels: Record<string, string> = {}): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  return l ? `${name}{${l}}` : name;
}

const value = (s: Samples, name: string, labels: Record<string, string> = {}): number => s.get(key(name, labels)) ?? 0;

async function scrape(url: string, bearer?: string): Promise<Samples> {
  const res = await fetch(url, bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {});
  assert.equal(res.status, 200, `GET ${url}`);
  return parseMetrics(await res.text());
}

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function server(overrides: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const srv = await startServer(overrides);
  servers.push(srv);
  return srv;
}

describe('/metrics access', () => {
  test('neither metrics.port nor metrics.token: /metrics is 404 on the main port', async () => {
    const srv = await server();
    assert.equal((await fetch(`${srv.httpUrl}/metrics`)).status, 404);
    assert.equal(srv.server.metricsAddress(), undefined);
  });

  test('metrics.token: 401 without or with a wrong bearer token, 200 with the right one', async () => {
    const srv = await server({ metrics: { token: METRICS_TOKEN } });
    const none = await fetch(`${srv.httpUrl}/metrics`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await fetch(`${srv.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } })).status, 401);
    assert.equal((await fetch(`${srv.httpUrl}/metrics`, { headers: { authorization: `Basic ${METRICS_TOKEN}` } })).status, 401);
    const ok = await fetch(`${srv.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /rampart_connections/);
  });

  test('metrics.port: served on its own loopback listener only; the main port answers 404', async () => {
    const srv = await server({ metrics: { port: 0 } });
    const address = srv.server.metricsAddress();
    assert.ok(address);
    assert.equal(address.address, '127.0.0.1');
    assert.equal((await fetch(`${srv.httpUrl}/metrics`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${address.port}/metrics`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${address.port}/readyz`)).status, 404);
  });

  test('metrics.port with metrics.token: the dedicated listener wants the token too', async () => {
    const srv = await server({ metrics: { port: 0, token: METRICS_TOKEN } });
    const url = `http://127.0.0.1:${srv.server.metricsAddress()!.port}/metrics`;
    assert.equal((await fetch(url)).status, 401);
    await scrape(url, METRICS_TOKEN);
    assert.equal((await fetch(`${srv.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status, 404);
  });
});

describe('/metrics values after scripted traffic', () => {
  test('origin refusals, handshakes, auth results, stored/delivered, latency and commit histograms, gauges', async () => {
    const srv = await server({ metrics: { port: 0 } });
    const url = `http://127.0.0.1:${srv.server.metricsAddress()!.port}/metrics`;
    const before = await scrape(url);

    for (let i = 0; i < 3; i++) assert.equal(await handshakeStatus(srv.url, { origin: 'https://evil.test' }), 403);
    const a = await authedClient(srv.url);
    const b = await authedClient(srv.url);
    const bad = openClient(srv.url);
    await bad.opened;
    bad.send({ type: 'auth', token: await token({ sub: newUserId() }, 'another-secret-another-secret-another-secret') });
    assert.equal((await bad.nextOfType('auth_failure')).reason, 'invalid_token');
    await bad.closed;

    a.send({ type: 'chat_message', recipientId: b.userId, content: 'hello' });
    await a.nextOfType('message_sent');
    await b.nextOfType('chat_message');
    const s = await scrape(url);
    const delta = (name: string, labels: Record<string, string> = {}): number => value(s, name, labels) - value(before, name, labels);

    assert.equal(delta('rampart_security_events_total', { reason: 'origin_not_allowed' }), 3);
    assert.equal(delta('rampart_handshakes_total', { result: 'refused', reason: 'origin_not_allowed' }), 3);
    assert.equal(delta('rampart_handshakes_total', { result: 'accepted', reason: 'ok' }), 3);
    assert.equal(delta('rampart_auth_results_total', { result: 'success', reason: 'ok' }), 2);
    assert.equal(delta('rampart_auth_results_total', { result: 'failure', reason: 'invalid_token' }), 1);
    assert.equal(delta('rampart_frames_in_total', { type: 'chat_message' }), 1);
    assert.equal(delta('rampart_messages_stored_total'), 1);
    // The recipient's copy; the sender's own (for its other devices) is not a delivery (protocol.md §10).
    assert.equal(delta('rampart_messages_delivered_total'), 1);
    assert.equal(delta('rampart_delivery_latency_seconds_count'), 1);
    assert.ok(value(s, 'rampart_delivery_latency_seconds_sum') > 0);
    assert.equal(delta('rampart_store_commit_duration_seconds_count', { result: 'ok' }), 1);
    assert.equal(delta('rampart_store_batch_size_count'), 1);
    assert.equal(value(s, 'rampart_connections', { state: 'active' }), 2);
    assert.equal(value(s, 'rampart_connections', { state: 'unauthenticated' }), 0);
    assert.equal(value(s, 'rampart_backlog_events'), 0);
    assert.equal(value(s, 'rampart_bus_up'), 1);
    assert.equal(value(s, 'rampart_storage_up'), 1);
    assert.ok(s.has('nodejs_eventloop_lag_seconds'), 'event-loop lag is exported');
    assert.ok(s.has('nodejs_eventloop_lag_p99_seconds'));

    // An offline recipient: stored, but written to no session of the recipient: neither delivered nor timed.
    await closeAll(b);
    await waitFor(() => srv.server.stats().users === 1, 2000, "the server saw b's socket close");
    a.send({ type: 'chat_message', recipientId: b.userId, content: 'later' });
    await a.nthOfType('message_sent', 2);
    const s2 = await scrape(url);
    assert.equal(value(s2, 'rampart_messages_stored_total') - value(s, 'rampart_messages_stored_total'), 1);
    assert.equal(value(s2, 'rampart_messages_delivered_total') - value(s, 'rampart_messages_delivered_total'), 0);
    assert.equal(value(s2, 'rampart_delivery_latency_seconds_count') - value(s, 'rampart_delivery_latency_seconds_count'), 0);
    await closeAll(a);
  });

  test('every log line carries the node id', async () => {
    const srv = await startServer({}, { nodeId: 'node-metrics-1' });
    servers.push(srv);
    const a = await authedClient(srv.url);
    await closeAll(a);
    assert.ok(srv.logs.length > 0);
    for (const line of srv.logs) assert.equal((JSON.parse(line) as { nodeId?: string }).nodeId, 'node-metrics-1', line);
  });
});

describe('/readyz', () => {
  test('503 while Redis is configured and unreachable, 200 again once it is back; rampart_bus_up follows', async () => {
    const proxy = await startRedisProxy(REDIS_URL);
    after(() => proxy.close());
    const srv = await server({ redisUrl: proxy.url, redisKeyPrefix: uniqueRedisPrefix('rz'), metrics: { port: 0 } });
    const metricsUrl = `http://127.0.0.1:${srv.server.metricsAddress()!.port}/metrics`;
    assert.equal((await fetch(`${srv.httpUrl}/readyz`)).status, 200);
    await proxy.stop();
    await waitFor(async () => (await fetch(`${srv.httpUrl}/readyz`)).status === 503, 5000, '/readyz 503 with Redis down');
    assert.equal(value(await scrape(metricsUrl), 'rampart_bus_up'), 0);
    assert.equal((await fetch(`${srv.httpUrl}/healthz`)).status, 200, 'liveness is not readiness');
    await proxy.start();
    await waitFor(async () => (await fetch(`${srv.httpUrl}/readyz`)).status === 200, 10000, '/readyz 200 with Redis back');
    assert.equal(value(await scrape(metricsUrl), 'rampart_bus_up'), 1);
  });

  test('503 while storage (PostgreSQL) does not answer, 200 again once it does; rampart_storage_up follows', async () => {
    const pgStorage = await proxiedPgStorage('rz');
    const { proxy } = pgStorage;
    after(() => pgStorage.close());
    const srv = await server({ storage: pgStorage.storage, metrics: { port: 0 } });
    const metricsUrl = `http://127.0.0.1:${srv.server.metricsAddress()!.port}/metrics`;
    assert.equal((await fetch(`${srv.httpUrl}/readyz`)).status, 200);
    await proxy.stop();
    await waitFor(async () => (await fetch(`${srv.httpUrl}/readyz`)).status === 503, 5000, '/readyz 503 with storage down');
    assert.equal(value(await scrape(metricsUrl), 'rampart_storage_up'), 0);
    await proxy.start();
    await waitFor(async () => (await fetch(`${srv.httpUrl}/readyz`)).status === 200, 5000, '/readyz 200 with storage back');
    assert.equal(value(await scrape(metricsUrl), 'rampart_storage_up'), 1);
  });
});
