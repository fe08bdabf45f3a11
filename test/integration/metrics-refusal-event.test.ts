/**
 * protocol.md §11: every refusal by a check is one security line and counts in
 * `rampart_security_events_total{reason}`. A scrape of `/metrics` with a missing or wrong bearer is
 * `metrics_unauthorized` (with the client's address), as a wrong admin token is
 * `admin_unauthorized`; before, it was answered 401 and left no trace, so guessing the metrics
 * token went unseen. Both the main port and the dedicated metrics listener.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, waitFor, type TestServer } from '../helpers/harness.js';

const securityEvents = (srv: TestServer): Record<string, unknown>[] =>
  srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'security');

for (const where of ['main port', 'metrics listener'] as const) {
  test(`a /metrics scrape without the right bearer is a metrics_unauthorized security event (${where})`, async () => {
    const token = randomBytes(16).toString('hex');
    const srv = await startServer({ metrics: { token, ...(where === 'metrics listener' ? { port: 0 } : {}) } });
    try {
      const base = where === 'main port' ? srv.httpUrl : `http://127.0.0.1:${srv.server.metricsAddress()!.port}`;
      assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong-wrong-wrong-wrong' } })).status, 401);
      assert.equal((await fetch(`${base}/metrics`)).status, 401);
      await waitFor(() => securityEvents(srv).length >= 2, 5000, 'two security lines');
      const events = securityEvents(srv);
      assert.deepEqual(events.map((e) => [e.reason, e.code]), [['metrics_unauthorized', 401], ['metrics_unauthorized', 401]]);
      assert.equal(events[0]!.ip, '127.0.0.1');
      assert.ok(!JSON.stringify(events).includes('wrong-wrong'), 'the presented token is never logged');
      const body = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
      assert.match(body, /^rampart_security_events_total\{reason="metrics_unauthorized"\} 2$/m);
    } finally {
      await srv.close();
    }
  });
}
