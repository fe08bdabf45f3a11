/**
 * The graceful shutdown's order and time budget (`RampartServer.close`). Everything happens within
 * `graceMs`, because the process is killed at its end (`shutdown-signals.ts`, or the orchestrator):
 *
 * 1. sessions close with 1001 in batches while the listener stays open (load balancers see
 *    `/readyz` 503); sockets still open when a reserve of `min(1 s, graceMs / 4)` is left are
 *    destroyed, and so is any connection that never became a session;
 * 2. within half of the reserve, closed sockets give back their slots and run their presence check;
 * 3. storage is flushed (the group committer, then the receipts);
 * 4. presence says goodbye and the adapters close. A silent Redis would hold these for seconds
 *    (its commands wait out their timeouts): they get what is left of the grace and then are let
 *    go, so the shutdown still ends in time with what matters (step 3) done.
 */
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';
import { drainSessions, type DrainTarget } from './drain.js';

/**
 * Kept at the very end for the caller to exit cleanly before a hard timer of `graceMs` fires: a
 * tenth of the grace, 50–250 ms. A busy event loop fires timers late — 50 ms alone was overrun
 * by a loaded machine (the full suite on 2 cores) — and the hard timer then exits with code 1.
 */
const exitMargin = (graceMs: number): number => Math.min(250, Math.max(50, Math.floor(graceMs / 10)));

export interface ShutdownParts {
  graceMs: number;
  /** Sessions closed per batch and the pause between batches. */
  batchSize: number;
  batchIntervalMs: number;
  logger: Logger;
  sessions: DrainTarget;
  server: Server;
  /** Connections that are not (or not yet) sessions: dropped at the drain deadline. */
  connections: { destroyAll(): void };
  /** Slots being given back by closed sessions, each followed by the user's presence check. */
  releasing: ReadonlySet<Promise<void>>;
  /** Storage flushes, run in order: nothing acknowledged may be left unwritten. */
  flushes: ReadonlyArray<() => Promise<void>>;
  /** Presence's goodbye, before the adapters it publishes through close. */
  presence: () => Promise<void>;
  /** Store, bus, limits, listeners: closed together. */
  adapters: ReadonlyArray<() => Promise<void> | undefined>;
}

export async function shutDown(p: ShutdownParts): Promise<void> {
  const started = Date.now();
  const end = started + p.graceMs - exitMargin(p.graceMs);
  const reserve = Math.min(1000, Math.floor(p.graceMs / 4));
  const deadline = started + p.graceMs - reserve;

  await drainSessions(p.sessions, { batchSize: p.batchSize, batchIntervalMs: p.batchIntervalMs, deadline });
  const serverClosed = new Promise<void>((resolve) => p.server.close(() => resolve()));
  p.server.closeAllConnections?.();
  // Handshakes still in the gate get their answer (503) and close by themselves; what is still
  // open at the deadline — a socket that never became an HTTP connection, say — is dropped.
  let timer: NodeJS.Timeout | undefined;
  const dropLeftovers = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(100, deadline - Date.now()));
  }).then(() => p.connections.destroyAll());
  await Promise.race([serverClosed, dropLeftovers]);
  clearTimeout(timer);
  await serverClosed;

  // Sockets terminated at the deadline close a moment later; their users' slots and presence
  // checks must be in before presence stops, or they stay shown online — but within half the
  // reserve (a silent Redis must not push the flush past the end).
  const settleBy = deadline + Math.floor(reserve / 2);
  while (p.sessions.size > 0 && Date.now() < settleBy) await sleep(5);
  await Promise.race([Promise.allSettled([...p.releasing]), sleep(Math.max(0, settleBy - Date.now()))]);

  for (const flush of p.flushes) await flush();

  const rest = (async () => {
    await p.presence();
    await Promise.allSettled(p.adapters.map((close) => close()));
  })();
  let finished = false;
  const done = (): void => {
    finished = true;
  };
  rest.then(done, done);
  await Promise.race([rest, sleep(Math.max(0, end - Date.now()), undefined, { ref: false })]);
  if (!finished) p.logger.warn({ graceMs: p.graceMs }, 'adapters still closing at the end of the grace; not waiting for them');
}
