/**
 * The largest message one socket may send, changed while it is open: an unauthenticated socket
 * gets `maxPreAuthMessageSize`, an active session `maxMessageSize`.
 *
 * ws has no public per-socket setting for this: `maxPayload` is fixed per server. Its Receiver
 * (ws/lib/receiver.js, ws 8) keeps the bound in `_maxPayload` and checks every frame header
 * against it (summed over a message's fragments), closing 1009 before any payload is buffered.
 * Only that check refuses an oversize frame from its header; checking a complete message would let
 * a header declaring megabytes hold the socket's buffer until `authTimeout`. This file is the
 * only place that touches the internal (test/unit/incoming-limit.test.ts fails if ws changes it).
 */
import type { WebSocket } from 'ws';

type ReceiverInternals = { _maxPayload?: unknown };

let warned = false;

/**
 * Sets the bound; false when this ws has no such internal. Then ws keeps its server-wide
 * `maxPayload` (maxMessageSize) and the session's own check of each complete message still
 * refuses a pre-auth one above its cap — later, after buffering it.
 */
export function limitIncomingMessages(ws: WebSocket, maxBytes: number): boolean {
  const receiver = (ws as unknown as { _receiver?: ReceiverInternals | null })._receiver;
  if (receiver === null || receiver === undefined || typeof receiver._maxPayload !== 'number') {
    if (!warned) {
      warned = true;
      process.emitWarning('ws Receiver has no _maxPayload: the pre-auth frame cap is checked on complete messages only', 'RampartWarning');
    }
    return false;
  }
  receiver._maxPayload = maxBytes;
  return true;
}
