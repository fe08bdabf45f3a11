/**
 * One Redis outage is a few log lines per connection, not one per reconnect attempt: the limits
 * client, session control's two connections (and presence, through the same helper,
 * `createRedisClient`) report the first error of each outage and again only after being `ready`,
 * as the bus does. Each `limits backend error` line names its operation (`op`).
 * Was wrong: every ioredis `error` was logged, one per retry (after 100, 200 … ms, then every
 * 2 s) for as long as the outage lasted; and the limits line dropped its operation.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { REDIS_URL, startRedisProxy, startServer, uniqueRedisPrefix, waitFor, type TestServer } from '../helpers/harness.js';

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

type Line = { msg: string; op?: string };

test('each Redis outage: a bounded number of error lines per connection, reported again after recovery', { timeout: 90_000 }, async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  after(() => proxy.close());
  const srv = await startServer({ redisUrl: proxy.url, redisKeyPrefix: uniqueRedisPrefix('outagelog') });
  servers.push(srv);
  assert.equal((await fetch(`${srv.httpUrl}/readyz`)).status, 200);

  const outage = async (): Promise<Line[]> => {
    const from = srv.logs.length;
    await proxy.stop();
    await new Promise((r) => setTimeout(r, 6000));
    const lines = srv.logs.slice(from).map((l) => JSON.parse(l) as Line);
    await proxy.start();
    await waitFor(async () => (await fetch(`${srv.httpUrl}/readyz`)).status === 200, 15_000, 'Redis back');
    return lines;
  };
  for (const round of [1, 2]) {
    const lines = await outage();
    const of = (msg: string): Line[] => lines.filter((l) => l.msg === msg);
    const byMsg = { bus: of('bus error').length, limits: of('limits backend error').length, control: of('session control error').length };
    assert.ok(byMsg.limits >= 1 && byMsg.limits <= 3, `outage ${round}, limits lines: ${JSON.stringify(byMsg)}`);
    assert.ok(byMsg.control >= 1 && byMsg.control <= 6, `outage ${round}, session control lines: ${JSON.stringify(byMsg)}`);
    for (const l of of('limits backend error')) assert.equal(typeof l.op, 'string', 'the operation is named');
  }
});
