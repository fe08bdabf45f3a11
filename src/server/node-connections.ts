/**
 * Node-wide socket accounting: every open session of this process, the ones that have not
 * authenticated yet (node-wide and per IP), the capacity check the handshake gate asks, and the
 * connection gauges. The cluster-wide per-IP/per-user counts live in the connection registry.
 */
import type { Session } from '../session/session.js';
import type { Metrics } from '../observability/metrics.js';

export interface NodeConnectionLimits {
  /** Total open sockets on this node. */
  maxConnections: number;
  maxUnauthenticated: number;
  maxUnauthenticatedPerIP: number;
}

export type Capacity = 'ok' | 'connections' | 'unauthenticated' | 'unauthenticated_ip';

export interface NodeConnectionStats {
  open: number;
  unauthenticated: number;
  unauthenticatedIps: number;
}

export class NodeConnections {
  private readonly open = new Set<Session>();
  private readonly unauthenticated = new Set<Session>();
  private readonly unauthByIp = new Map<string, number>();
  /** Handshakes past the capacity check whose socket is not counted yet (see reserve). */
  private pending = 0;
  private readonly pendingByIp = new Map<string, number>();
  private gaugesPending = false;

  constructor(
    private readonly limits: NodeConnectionLimits,
    private readonly metrics: Metrics,
  ) {}

  /** A socket finished its upgrade; `authenticated` when the handshake carried a valid token. */
  add(session: Session, authenticated: boolean): void {
    this.open.add(session);
    if (!authenticated) {
      this.unauthenticated.add(session);
      this.unauthByIp.set(session.ip, (this.unauthByIp.get(session.ip) ?? 0) + 1);
    }
    this.updateGauges();
  }

  authenticated(session: Session): void {
    this.leaveUnauthenticated(session);
    this.updateGauges();
  }

  remove(session: Session): void {
    this.open.delete(session);
    this.leaveUnauthenticated(session);
    this.updateGauges();
  }

  /** Which node-wide cap, if any, a new handshake from `ip` would exceed (places reserved count as taken). */
  capacity(ip: string): Capacity {
    if (this.open.size + this.pending >= this.limits.maxConnections) return 'connections';
    if (this.unauthenticated.size + this.pending >= this.limits.maxUnauthenticated) return 'unauthenticated';
    if ((this.unauthByIp.get(ip) ?? 0) + (this.pendingByIp.get(ip) ?? 0) >= this.limits.maxUnauthenticatedPerIP) return 'unauthenticated_ip';
    return 'ok';
  }

  /**
   * Holds a place (an open, unauthenticated socket from `ip`) for a handshake between its
   * capacity check and `add`: the gate's Redis round trips lie in between, and every handshake
   * waiting on them would otherwise pass the same free place. Returns the release (idempotent).
   */
  reserve(ip: string): () => void {
    this.pending++;
    this.pendingByIp.set(ip, (this.pendingByIp.get(ip) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.pending--;
      const n = (this.pendingByIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.pendingByIp.delete(ip);
      else this.pendingByIp.set(ip, n);
    };
  }

  get size(): number {
    return this.open.size;
  }

  /** A snapshot, so callers may close sessions while iterating. */
  sessions(): Session[] {
    return [...this.open];
  }

  stats(): NodeConnectionStats {
    return { open: this.open.size, unauthenticated: this.unauthenticated.size, unauthenticatedIps: this.unauthByIp.size };
  }

  private leaveUnauthenticated(session: Session): void {
    if (!this.unauthenticated.delete(session)) return;
    const n = (this.unauthByIp.get(session.ip) ?? 1) - 1;
    if (n <= 0) this.unauthByIp.delete(session.ip);
    else this.unauthByIp.set(session.ip, n);
  }

  /** Once per event-loop turn, not per socket event: a burst of handshakes sets the gauges once. */
  private updateGauges(): void {
    if (this.gaugesPending) return;
    this.gaugesPending = true;
    setImmediate(this.setGauges);
  }

  private readonly setGauges = (): void => {
    this.gaugesPending = false;
    this.metrics.connections.set({ state: 'unauthenticated' }, this.unauthenticated.size);
    this.metrics.connections.set({ state: 'active' }, this.open.size - this.unauthenticated.size);
  };
}
