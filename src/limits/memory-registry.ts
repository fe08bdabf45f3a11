/**
 * In-process `ConnectionRegistry` for a single node. A counter is deleted the moment it reaches
 * zero, so the maps only ever hold IPs and users with live connections.
 */
import type { ConnectionRegistry } from './limiter.js';

export class MemoryConnectionRegistry implements ConnectionRegistry {
  private readonly ips = new Map<string, number>();
  private readonly users = new Map<string, number>();

  acquireIp(ip: string, max: number): boolean {
    return acquire(this.ips, ip, max);
  }

  releaseIp(ip: string): void {
    release(this.ips, ip);
  }

  acquireUser(userId: string, max: number): boolean {
    return acquire(this.users, userId, max);
  }

  releaseUser(userId: string): void {
    release(this.users, userId);
  }

  countIp(ip: string): number {
    return this.ips.get(ip) ?? 0;
  }

  countUser(userId: string): number {
    return this.users.get(userId) ?? 0;
  }

  /** Number of IPs plus users with at least one slot held (0 when everything was released). */
  size(): number {
    return this.ips.size + this.users.size;
  }

  async close(): Promise<void> {
    this.ips.clear();
    this.users.clear();
  }
}

function acquire(map: Map<string, number>, key: string, max: number): boolean {
  const n = map.get(key) ?? 0;
  if (n >= max) return false;
  map.set(key, n + 1);
  return true;
}

/** An unmatched release is ignored rather than driving the count negative. */
function release(map: Map<string, number>, key: string): void {
  const n = map.get(key);
  if (n === undefined) return;
  if (n <= 1) map.delete(key);
  else map.set(key, n - 1);
}
