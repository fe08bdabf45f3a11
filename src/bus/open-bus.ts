import type { Bus } from './bus.js';
import { LocalBus } from './local-bus.js';
import { RedisBus, type BusErrorHandler } from './redis-bus.js';

export type { BusErrorHandler, BusErrorSource } from './redis-bus.js';

export interface OpenBusOptions {
  /** Unset: single node, in-process bus. Set: join the cluster through Redis pub/sub. */
  redisUrl?: string;
  channelPrefix: string;
  nodeId: string;
  onError?: BusErrorHandler;
  /** Redis only: how long to wait for both connections. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Redis only: liveness PINGs (RedisBusOptions.ping). */
  ping?: { intervalMs: number; timeoutMs: number };
  /** Redis only: RedisBusOptions.peerLivenessMs. */
  peerLivenessMs?: number;
  onPeersLost?: (count: number, nodes: string[]) => unknown;
}

/** Picks the adapter from config; a Redis bus is returned only once it is connected. */
export async function openBus(options: OpenBusOptions): Promise<Bus> {
  if (options.redisUrl === undefined || options.redisUrl === '') return new LocalBus();
  return RedisBus.connect({ ...options, redisUrl: options.redisUrl });
}
