/**
 * Limits: rate limiters, penalty box and connection registries, in memory (one node) or on Redis
 * (cluster). `createLimits` picks the adapters and wraps the Redis ones in the failure policy of
 * `redis-health.ts` (new connections fail closed, chat fails open to per-node limits).
 */
import type { RedisOptions } from 'ioredis';
import { watchLiveness } from '../redis/liveness.js';
import type { ConnectionRegistry, Limiter } from './limiter.js';
import { quitRedis } from '../redis/quit.js';
import { MemoryLimiter } from './memory-limiter.js';
import { MemoryConnectionRegistry } from './memory-registry.js';
import { RedisLimiter } from './redis-limiter.js';
import { RedisConnectionRegistry } from './redis-registry.js';
import {
  createRedisClient,
  FailClosedRegistry,
  FailoverLimiter,
  isReady,
  type BackendErrorHandler,
} from './redis-health.js';

export type { ConnectionRegistry, Limiter, RateDecision, RateRule } from './limiter.js';
export { MemoryLimiter, type MemoryLimiterOptions } from './memory-limiter.js';
export { MemoryConnectionRegistry } from './memory-registry.js';
export { RedisLimiter, type RedisLimiterOptions } from './redis-limiter.js';
export { RedisConnectionRegistry, type RedisRegistryOptions } from './redis-registry.js';
export {
  BackendUnavailableError,
  createRedisClient,
  FAIL_FAST_REDIS_OPTIONS,
  FailClosedRegistry,
  FailoverLimiter,
  type BackendErrorHandler,
} from './redis-health.js';
export { DEFAULT_BUCKETS } from './sliding-window.js';

export interface LimitsOptions {
  /** Set to share limits across a cluster; omit for in-memory, single-node limits. */
  redisUrl?: string;
  /** Namespace for every Redis key (e.g. "rampart"). */
  keyPrefix: string;
  /** Unique id of this process in the cluster. */
  nodeId: string;
  /** Sub-buckets per rate window (default 10); must be equal on every node. */
  buckets?: number;
  /** Registry liveness TTL / refresh period (defaults 15 000 / 5 000 ms). */
  livenessMs?: number;
  heartbeatMs?: number;
  /** Overrides on top of `FAIL_FAST_REDIS_OPTIONS`. */
  redisOptions?: RedisOptions;
  /** Redis errors (connection, command, heartbeat), for logs and metrics. */
  onBackendError?: BackendErrorHandler;
  /** Liveness PINGs on the client (redis/liveness.ts). Default 1000 / 3000 ms; interval 0: none. */
  ping?: { intervalMs: number; timeoutMs: number };
}

export interface Limits {
  readonly backend: 'memory' | 'redis';
  limiter: Limiter;
  /**
   * Always in memory, for per-connection budgets (frames per socket): a socket lives on one node,
   * so its budget needs no cluster-wide count — and keeping it local costs no Redis round trip per
   * frame and cannot collide with another node's connection ids.
   */
  connectionLimiter: MemoryLimiter;
  registry: ConnectionRegistry;
  /**
   * Resolves true once the backend can take new connections, false after `timeoutMs` (the server
   * may still start: acquires then throw `BackendUnavailableError` until Redis is reachable).
   */
  ready(timeoutMs?: number): Promise<boolean>;
  /** True while the backend can take new connections now (always true in memory). */
  healthy(): boolean;
  /** Stops timers and closes the Redis client; the process can then exit. */
  close(): Promise<void>;
}

export function createLimits(options: LimitsOptions): Limits {
  if (options.redisUrl === undefined || options.redisUrl === '') {
    const limiter = new MemoryLimiter({ buckets: options.buckets });
    const connectionLimiter = new MemoryLimiter({ buckets: options.buckets });
    const registry = new MemoryConnectionRegistry();
    return {
      backend: 'memory',
      limiter,
      connectionLimiter,
      registry,
      ready: async () => true,
      healthy: () => true,
      close: async () => {
        await Promise.all([limiter.close(), connectionLimiter.close(), registry.close()]);
      },
    };
  }

  const onError = options.onBackendError;
  const client = createRedisClient(options.redisUrl, options.redisOptions, onError);
  // Commands time out on a silently dead path, but the connection would stay (and new sockets be
  // refused) until TCP keepalive gave up: the liveness check drops it and ioredis reconnects.
  const liveness = watchLiveness(client, 'limits', options.ping, (err) => onError?.(err, 'connection'));
  const up = (): boolean => isReady(client) && liveness.alive;
  const redisRegistry = new RedisConnectionRegistry({
    client,
    keyPrefix: options.keyPrefix,
    nodeId: options.nodeId,
    livenessMs: options.livenessMs,
    heartbeatMs: options.heartbeatMs,
    onError,
  });
  const limiter = new FailoverLimiter(
    new RedisLimiter({ client, keyPrefix: options.keyPrefix, buckets: options.buckets }),
    new MemoryLimiter({ buckets: options.buckets }),
    up,
    onError,
  );
  const registry = new FailClosedRegistry(redisRegistry, up, onError);
  const connectionLimiter = new MemoryLimiter({ buckets: options.buckets });
  return {
    backend: 'redis',
    limiter,
    connectionLimiter,
    registry,
    ready: (timeoutMs?: number) => redisRegistry.ready(timeoutMs),
    healthy: up,
    close: async () => {
      liveness.stop();
      await Promise.all([limiter.close(), connectionLimiter.close(), registry.close()]);
      await quitRedis(client);
    },
  };
}
