/**
 * What a Redis test file opens — connections, peer watches, key prefixes — closed, stopped and
 * dropped once its tests are done (registered with node:test's `after` when called at file level).
 */
import { after } from 'node:test';
import { Redis } from 'ioredis';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix } from './harness.js';

export interface RedisScratch {
  /** A connected client, disconnected after the file's tests. */
  client(): Promise<Redis>;
  /** A fresh key prefix, its keys dropped after the file's tests. */
  prefix(tag: string): string;
  /** Stopped after the file's tests (a watch or anything with `stop()`). */
  stopAfter<T extends { stop(): void }>(thing: T): T;
}

export function redisScratch(): RedisScratch {
  const clients: Redis[] = [];
  const prefixes: string[] = [];
  const stoppable: { stop(): void }[] = [];
  after(async () => {
    for (const s of stoppable) s.stop();
    const admin = new Redis(REDIS_URL);
    try {
      for (const p of prefixes) await dropRedisPrefix(admin, p);
    } finally {
      admin.disconnect();
      for (const c of clients) c.disconnect();
    }
  });
  return {
    async client() {
      const c = new Redis(REDIS_URL, { lazyConnect: true });
      clients.push(c);
      await c.connect();
      return c;
    },
    prefix(tag) {
      const p = uniqueRedisPrefix(tag);
      prefixes.push(p);
      return p;
    },
    stopAfter(thing) {
      stoppable.push(thing);
      return thing;
    },
  };
}
