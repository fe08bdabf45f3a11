/** Prometheus metrics. One registry per server instance so tests can run several servers. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  connections: Gauge<'state'>;
  framesIn: Counter<'type'>;
  messagesDelivered: Counter;
  messagesStored: Counter;
  securityEvents: Counter<'reason'>;
  storeBatchSize: Histogram;
}

export function createMetrics(collectDefaults = true): Metrics {
  const registry = new Registry();
  if (collectDefaults) collectDefaultMetrics({ register: registry });
  return {
    registry,
    connections: new Gauge({ name: 'rampart_connections', help: 'Open sockets by session state', labelNames: ['state'], registers: [registry] }),
    framesIn: new Counter({ name: 'rampart_frames_in_total', help: 'Client frames accepted by type', labelNames: ['type'], registers: [registry] }),
    messagesDelivered: new Counter({ name: 'rampart_messages_delivered_total', help: 'Chat frames written to recipient sessions', registers: [registry] }),
    messagesStored: new Counter({ name: 'rampart_messages_stored_total', help: 'Chat messages durably stored', registers: [registry] }),
    securityEvents: new Counter({ name: 'rampart_security_events_total', help: 'Refusals by reason', labelNames: ['reason'], registers: [registry] }),
    storeBatchSize: new Histogram({ name: 'rampart_store_batch_size', help: 'Messages per group-commit transaction', buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], registers: [registry] }),
  };
}
