/**
 * Graceful drain: close sessions with 1001 in batches of `batchSize`, `batchIntervalMs` apart,
 * so a node's clients do not all reconnect to the rest of the cluster in the same second; then
 * wait for the sockets to close until `deadline`, and terminate whatever is left.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Session } from '../session/session.js';
import { CloseCode } from '../protocol/close-codes.js';

export interface DrainOptions {
  batchSize: number;
  batchIntervalMs: number;
  /** Epoch ms after which remaining sockets are destroyed without waiting. */
  deadline: number;
}

export interface DrainTarget {
  sessions(): Session[];
  readonly size: number;
}

export async function drainSessions(target: DrainTarget, o: DrainOptions): Promise<void> {
  const all = target.sessions();
  for (let i = 0; i < all.length; i += o.batchSize) {
    if (i > 0) {
      const wait = Math.min(o.batchIntervalMs, o.deadline - Date.now());
      if (wait > 0) await sleep(wait);
    }
    for (const session of all.slice(i, i + o.batchSize)) session.close(CloseCode.GOING_AWAY, 'server shutting down');
  }
  // Sockets whose upgrade was already past the gate when the drain began.
  for (const session of target.sessions()) if (session.isOpen) session.close(CloseCode.GOING_AWAY, 'server shutting down');
  while (target.size > 0 && Date.now() < o.deadline) await sleep(Math.min(20, Math.max(1, o.deadline - Date.now())));
  for (const session of target.sessions()) session.terminate();
}
