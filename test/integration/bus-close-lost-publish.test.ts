/**
 * A graceful close of a Redis bus whose frames were lost (a PUBLISH answered with an error, the
 * connection still up): leaving the cluster membership says nothing was left unpublished, so
 * close() waits for Redis' answer to its last batch and announces a resync first, or stays a member
 * (its lapse then makes another node announce one). docs/protocol.md §6: a PUBLISH answered with
 * an error is followed by a resync announcement; close() used to drop it and leave.
 *
 * A PUBLISH answered with an error while the connection stays up is made with a Redis ACL user
 * that may publish only on the cluster's control channels (NOPERM on the user channel).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix, waitFor, within } from '../helpers/harness.js';

const users: string[] = [];
const prefixes: string[] = [];
const conns: Redis[] = [];

after(async () => {
  const admin = new Redis(REDIS_URL);
  for (const u of users) await admin.acl('DELUSER', u);
  for (const c of conns) c.disconnect();
  for (const p of prefixes) {
    const r = new Redis(REDIS_URL, { lazyConnect: true });
    await r.connect();
    await dropRedisPrefix(r, p); // quits it
  }
  await admin.quit();
});

async function setup(): Promise<{ prefix: string; bus: RedisBus; admin: Redis; announcements: () => number; fence: () => Promise<void>; publishError: Promise<void> }> {
  const prefix = uniqueRedisPrefix('busleave');
  prefixes.push(prefix);
  const user = `rampart-test-acl-${randomUUID().slice(0, 8)}`;
  users.push(user);
  const admin = new Redis(REDIS_URL);
  conns.push(admin);
  await admin.acl('SETUSER', user, 'on', 'nopass', '~*', '&*', '+@all');
  const url = new URL(REDIS_URL);
  url.username = user;
  url.password = 'x';
  let failed!: () => void;
  const publishError = new Promise<void>((resolve) => (failed = resolve));
  const bus = await RedisBus.connect({
    redisUrl: url.toString(),
    channelPrefix: prefix,
    nodeId: 'node-a',
    peerLivenessMs: 600_000, // timers never run during the test
    ping: { intervalMs: 0, timeoutMs: 3000 },
    onError: (_err, source) => {
      if (source === 'publish') failed();
    },
  });
  assert.notEqual(await admin.zscore(`${prefix}ctl:nodes`, 'node-a'), null, 'joined the membership at connect');
  // Only the control channels (resync) may be published on from now on.
  await admin.acl('SETUSER', user, 'resetchannels', `&${prefix}ctl:*`);
  const sub = new Redis(REDIS_URL);
  conns.push(sub);
  let count = 0;
  let fenced: (() => void) | undefined;
  sub.on('message', (ch: string) => {
    if (ch === `${prefix}ctl:resync`) count++;
    if (ch === `${prefix}fence`) fenced?.();
  });
  await sub.subscribe(`${prefix}ctl:resync`, `${prefix}fence`);
  return {
    prefix,
    bus,
    admin,
    announcements: () => count,
    fence: () =>
      within(
        new Promise<void>((resolve) => {
          fenced = resolve;
          void admin.publish(`${prefix}fence`, '1');
        }),
        5000,
        'fence',
      ),
    publishError,
  };
}

test('a graceful close after a PUBLISH answered with an error still gets the lost frames resynced', async () => {
  const s = await setup();
  s.bus.publish(randomUUID(), '{"type":"chat_message"}'); // refused by Redis: NOPERM
  await within(s.publishError, 5000, 'publish error');
  await s.bus.close(); // before the 250 ms retry of the announcement
  await s.fence();
  const member = await s.admin.zscore(`${s.prefix}ctl:nodes`, 'node-a');
  assert.ok(
    s.announcements() > 0 || member !== null,
    `frames were lost (lostPublishes) but close() announced no resync (${s.announcements()}) and left the membership (${member}): nobody will ever resync`,
  );
});

test('a graceful close whose last batch is refused still gets the lost frames resynced', async () => {
  const s = await setup();
  s.bus.publish(randomUUID(), '{"type":"chat_message"}'); // in the batch close() flushes
  await s.bus.close();
  // (close() silences onError, so the failure is read from the counters)
  await waitFor(() => s.bus.stats().publishFailures > 0, 5000, 'the final batch refused');
  await s.fence();
  const member = await s.admin.zscore(`${s.prefix}ctl:nodes`, 'node-a');
  assert.ok(
    s.announcements() > 0 || member !== null,
    `the final batch failed but close() announced no resync (${s.announcements()}) and left the membership (${member})`,
  );
});
