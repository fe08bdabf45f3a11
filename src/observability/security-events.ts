/**
 * The security-event stream: one structured log line per refusal, with its reason, and a counter
 * per reason. Fields are restricted to this shape so nothing sensitive can be attached.
 *
 * The lines of one reason are bounded per second (`logLinesPerSecond`): refusals are what an
 * attacker makes (a handshake flood is thousands of 429s a second), and a line each would let them
 * fill the disk or drown the log pipeline. The counter counts every refusal; the next line of a
 * reason that was held back says how many were (`suppressed`), so nothing goes unaccounted.
 */
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface SecurityEventFields {
  ip?: string;
  userId?: string;
  /** With `userId`: a user id is unique only within its tenant (what the admin API asks for). */
  tenantId?: string;
  sessionId?: string;
  /** A close code or HTTP status, when the refusal has one. */
  code?: number;
  /** Names of rules/paths, never values. */
  detail?: string;
}

export type SecurityEventSink = (reason: string, fields: SecurityEventFields) => void;

export interface SecurityEventOptions {
  /** Log lines per reason per second; past it, refusals are only counted (default 20). */
  logLinesPerSecond?: number;
  /** Milliseconds since some fixed point (tests pass their own). */
  now?: () => number;
}

/** One reason's log budget in the current second. Reasons are a fixed set (metric labels too). */
interface ReasonWindow {
  second: number;
  lines: number;
  suppressed: number;
}

export function createSecurityEventSink(logger: Logger, metrics: Metrics, options: SecurityEventOptions = {}): SecurityEventSink {
  const perSecond = options.logLinesPerSecond ?? 20;
  const now = options.now ?? Date.now;
  const windows = new Map<string, ReasonWindow>();
  return (reason, fields) => {
    metrics.securityEvents.inc({ reason });
    const second = Math.floor(now() / 1000);
    let w = windows.get(reason);
    if (w === undefined) {
      w = { second, lines: 0, suppressed: 0 };
      windows.set(reason, w);
    } else if (w.second !== second) {
      w.second = second;
      w.lines = 0;
    }
    if (w.lines >= perSecond) {
      w.suppressed++;
      return;
    }
    w.lines++;
    if (w.suppressed === 0) logger.warn({ event: 'security', reason, ...fields }, 'refused');
    else {
      logger.warn({ event: 'security', reason, ...fields, suppressed: w.suppressed }, 'refused');
      w.suppressed = 0;
    }
  };
}
