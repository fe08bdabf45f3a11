/**
 * Prometheus metrics. One registry per server instance so tests can run several servers.
 * Names follow Prometheus conventions: `_total` counters, `_seconds` durations, base units.
 * Process metrics (`process_*`, `nodejs_*`, including `nodejs_eventloop_lag_seconds` and its
 * percentiles from `monitorEventLoopDelay`) come from prom-client's default collectors.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  connections: Gauge<'state'>;
  /** Every WebSocket handshake: `result` accepted|refused, `reason` ok or the refusal's reason. */
  handshakes: Counter<'result' | 'reason'>;
  /** Every `auth` outcome (first auth, refresh, query token): `result` success|failure, `reason`. */
  authResults: Counter<'result' | 'reason'>;
  framesIn: Counter<'type'>;
  messagesDelivered: Counter;
  messagesStored: Counter;
  /**
   * The hot path's counts (every frame, every message): plain numbers, added to `framesIn`,
   * `messagesStored` and `messagesDelivered` when those are read (a scrape, or `get()`). A
   * prom-client `inc` hashes its labels into a new string and allocates on every call.
   */
  countFrame(type: string): void;
  countStored(n: number): void;
  countDelivered(): void;
  securityEvents: Counter<'reason'>;
  storeBatchSize: Histogram;
  /** Message received by this node → written to the last local recipient session. */
  deliveryLatency: Histogram;
  /** One group-commit transaction, `result` ok|error. */
  storeCommitDuration: Histogram<'result'>;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createMetrics(collectDefaults = true): Metrics {
  const registry = new Registry();
  if (collectDefaults) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const registers = [registry];
  // Pending hot-path counts, folded into their counters by each counter's collect().
  const framesByType = new Map<string, number>();
  let stored = 0;
  let delivered = 0;
  return {
    registry,
    connections: new Gauge({ name: 'rampart_connections', help: 'Open sockets by session state', labelNames: ['state'], registers }),
    handshakes: new Counter({ name: 'rampart_handshakes_total', help: 'WebSocket handshakes by result and refusal reason', labelNames: ['result', 'reason'], registers }),
    authResults: new Counter({ name: 'rampart_auth_results_total', help: 'Authentication outcomes by result and reason', labelNames: ['result', 'reason'], registers }),
    framesIn: new Counter({
      name: 'rampart_frames_in_total',
      help: 'Client frames accepted by type',
      labelNames: ['type'],
      registers,
      collect() {
        // Types are the protocol's (checked before counting): a bounded set of labels.
        for (const [type, n] of framesByType) if (n > 0) this.inc({ type }, n);
        framesByType.clear();
      },
    }),
    messagesDelivered: countedWhenRead(
      'rampart_messages_delivered_total',
      'Chat messages written live to at least one session of the recipient on this node',
      registers,
      () => {
        const n = delivered;
        delivered = 0;
        return n;
      },
    ),
    messagesStored: countedWhenRead('rampart_messages_stored_total', 'Chat messages durably stored', registers, () => {
      const n = stored;
      stored = 0;
      return n;
    }),
    countFrame(type) {
      framesByType.set(type, (framesByType.get(type) ?? 0) + 1);
    },
    countStored(n) {
      stored += n;
    },
    countDelivered() {
      delivered++;
    },
    securityEvents: new Counter({ name: 'rampart_security_events_total', help: 'Refusals by reason', labelNames: ['reason'], registers }),
    storeBatchSize: new Histogram({ name: 'rampart_store_batch_size', help: 'Messages per group-commit transaction', buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], registers }),
    deliveryLatency: new Histogram({
      name: 'rampart_delivery_latency_seconds',
      help: 'Chat message received by this node until written to the last local recipient session',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    storeCommitDuration: new Histogram({
      name: 'rampart_store_commit_duration_seconds',
      help: 'Duration of one group-commit transaction',
      labelNames: ['result'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
  };
}

/** A counter whose increments are kept elsewhere as a plain number: `take()` hands them over (and zeroes them) when it is read. */
function countedWhenRead(name: string, help: string, registers: Registry[], take: () => number): Counter {
  return new Counter({
    name,
    help,
    registers,
    collect() {
      const n = take();
      if (n > 0) this.inc(n);
    },
  });
}

/** What the scrape-time gauges read; each is called once per scrape. */
export interface HealthProbes {
  /** Unacknowledged events (see docs/operations.md: Metrics and alerts). */
  backlog(): number;
  /** Redis bus and limits reachable (always true without `redisUrl`). */
  busUp(): boolean;
  storageUp(): Promise<boolean>;
}

/** Gauges computed when scraped, so they are never stale and cost nothing between scrapes. */
export function registerHealthGauges(registry: Registry, probes: HealthProbes): void {
  new Gauge({
    name: 'rampart_backlog_events',
    help: 'Messages submitted to the group committer and not yet committed (queued and in flight)',
    registers: [registry],
    collect() {
      this.set(probes.backlog());
    },
  });
  new Gauge({
    name: 'rampart_bus_up',
    help: '1 when the message bus and shared limits (Redis) are reachable, else 0',
    registers: [registry],
    collect() {
      this.set(probes.busUp() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'rampart_storage_up',
    help: '1 when storage answered a ping at scrape time, else 0',
    registers: [registry],
    async collect() {
      this.set((await probes.storageUp()) ? 1 : 0);
    },
  });
}
