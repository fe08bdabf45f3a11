/**
 * Cluster timings derived from `limits.nodeLivenessMs`, the lifetime of a node's liveness key in
 * the connection registry: how often a node refreshes it (and sweeps presence), and how long
 * presence holds an offline flip back after Redis lost its states. Derived in one place so they
 * stay in step when the liveness period changes.
 */

/** Three refreshes per liveness period (a late one does not lapse the key), never under 100 ms. */
export function registryHeartbeatMs(nodeLivenessMs: number): number {
  return Math.max(100, Math.floor(nodeLivenessMs / 3));
}

/**
 * Margins over the periods below: a heartbeat or sweep counted from its tick lands later by its
 * own Redis round trip and the timer's lateness.
 */
const SETTLE_MARGIN_MS = 500;
const RECOVER_MARGIN_MS = 1000;

/**
 * `settleMs`: one registry heartbeat (every node has written its session counts back) and a
 * margin. `recoverMs`: one liveness period (every node's sweep has re-checked its users) and a
 * margin. See RedisPresenceOptions.
 */
export function presenceLossTimings(nodeLivenessMs: number): { settleMs: number; recoverMs: number } {
  return {
    settleMs: registryHeartbeatMs(nodeLivenessMs) + SETTLE_MARGIN_MS,
    recoverMs: nodeLivenessMs + RECOVER_MARGIN_MS,
  };
}
