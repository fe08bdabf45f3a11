/**
 * Sending a long run of frames (a replay) without tripping the slow-consumer bound: after each
 * frame, wait while the socket holds more than a threshold of unsent bytes. (Pacing by frame
 * count is not enough: 100 maximal messages are ~6 MB.)
 */

/** What pacing needs from a session: sending, and the socket's unsent bytes. */
export interface PacedOutlet {
  send(frame: string): void;
  readonly isOpen: boolean;
  bufferedBytes(): number;
  /** Resolves when the unsent bytes are at most `bytes` (or the socket closed). */
  waitForDrain(bytes: number): Promise<void>;
}

/** Above net.Socket's default high-water mark (16 KiB), so a wait always ends with 'drain'. */
const MIN_DRAIN_THRESHOLD = 64 * 1024;

/**
 * Send `frame`, then, if the socket holds more than `drainBelow` unsent bytes, wait until it
 * drained below that. Never waits below MIN_DRAIN_THRESHOLD: a socket emits 'drain' only once
 * its buffer went past the stream's high-water mark.
 */
export function sendPaced(outlet: PacedOutlet, frame: string, drainBelow: number): Promise<void> | undefined {
  outlet.send(frame);
  const threshold = Math.max(drainBelow, MIN_DRAIN_THRESHOLD);
  // No promise (and no microtask) per frame unless there is something to wait for.
  return outlet.bufferedBytes() > threshold ? outlet.waitForDrain(threshold) : undefined;
}
