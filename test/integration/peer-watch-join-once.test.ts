/**
 * The joining heartbeat is said once per life (src/bus/peer-watch.ts): when the first one ran on
 * Redis but its reply was lost, the next heartbeat joined again, found the member the first had
 * written, and named this running node among the dead — its live directory entries dropped and a
 * needless resync announced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { PeerWatch } from '../../src/bus/peer-watch.js';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix } from '../helpers/harness.js';

test('a lost reply to the joining heartbeat does not make the node report itself dead', { timeout: 10_000 }, async () => {
  const prefix = uniqueRedisPrefix('w1-join');
  const client = new Redis(REDIS_URL);
  const admin = new Redis(REDIS_URL);
  const lapsed: string[][] = [];
  const watch = new PeerWatch({
    client,
    key: `${prefix}ctl:nodes`,
    nodeId: 'n1',
    resyncChannel: `${prefix}ctl:resync`,
    livenessMs: 600_000, // the timer never runs during the test: refresh() is called by hand
    onLapsed: (_count, nodes) => lapsed.push(nodes),
    onError: () => {},
  });
  try {
    await client.ping();
    const scripts = client as unknown as { rampartPeerHeartbeat: (...a: unknown[]) => Promise<unknown> };
    const real = scripts.rampartPeerHeartbeat.bind(client);
    let calls = 0;
    scripts.rampartPeerHeartbeat = async (...a: unknown[]) => {
      const r = await real(...a);
      if (++calls === 1) throw new Error('Connection is closed.'); // ran on Redis, reply lost
      return r;
    };
    await watch.refresh();
    await watch.refresh();
    assert.deepEqual(lapsed, [], `the running node named itself dead: ${JSON.stringify(lapsed)}`);
  } finally {
    watch.stop();
    await dropRedisPrefix(admin, prefix);
    client.disconnect();
  }
});
