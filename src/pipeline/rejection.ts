/**
 * A rejection is what any pipeline step returns instead of a message. It says what the client
 * gets — one reply frame, a close, or nothing — and the security-event reason it is logged under.
 * Turning it into bytes on the wire happens in one place: `Session.reject`.
 */
import type { ServerFrame } from '../protocol/server-frames.js';

export type RejectAction =
  /** Reply and keep the connection. `strike`: counts towards the abuse threshold. */
  | { kind: 'reply'; frame: ServerFrame; strike: boolean }
  /** Optionally reply, then close with `code`. */
  | { kind: 'close'; code: number; frame?: ServerFrame }
  /** Say nothing (typing excess). */
  | { kind: 'drop' };

export class Rejection {
  constructor(
    /** Security-event reason: a stable snake_case name. */
    readonly event: string,
    readonly action: RejectAction,
    /** Rule or path names (never values) for the log line. */
    readonly detail?: string,
  ) {}
}

export const reply = (event: string, frame: ServerFrame, strike = true, detail?: string): Rejection =>
  new Rejection(event, { kind: 'reply', frame, strike }, detail);

export const closeWith = (event: string, code: number, frame?: ServerFrame, detail?: string): Rejection =>
  new Rejection(event, frame ? { kind: 'close', code, frame } : { kind: 'close', code }, detail);

export const drop = (event: string): Rejection => new Rejection(event, { kind: 'drop' });
