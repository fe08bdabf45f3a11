/**
 * The security-event stream: one structured log line per refusal, with its reason, and a counter
 * per reason. Fields are restricted to this shape so nothing sensitive can be attached.
 *
 * The lines of one reason are bounded per second (`logLinesPerSecond`): refusals are what an
 * attacker makes (a handshake flood is thousands of 429s a second), and a line each would let them
 * fill the disk or drown the log pipeline. The counter counts every refusal; at the end of a second
 * that held lines back, one line per reason says how many (`suppressed`), so nothing goes
 * unaccounted in the log either.
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

/** The sink, and `close()`: logs what is still held back and stops its timers (at shutdown). */
export type ClosableSecurityEventSink = SecurityEventSink & { close(): void };

export interface SecurityEventOptions {
  /** Log lines per reason per second; past it, refusals are only counted (default 20). */
  logLinesPerSecond?: number;
  /** Milliseconds since the epoch (tests pass their own). */
  now?: () => number;
}

/** One reason's log budget in the current second. Reasons are a fixed set (metric labels too). */
interface ReasonWindow {
  second: number;
  lines: number;
  suppressed: number;
  /** Set while lines are held back: reports them when the second ends. */
  report: ReturnType<typeof setTimeout> | undefined;
}

export function createSecurityEventSink(logger: Logger, metrics: Metrics, options: SecurityEventOptions = {}): ClosableSecurityEventSink {
  const perSecond = options.logLinesPerSecond ?? 20;
  const now = options.now ?? Date.now;
  const windows = new Map<string, ReasonWindow>();
  const report = (reason: string, w: ReasonWindow): void => {
    if (w.report !== undefined) clearTimeout(w.report);
    w.report = undefined;
    if (w.suppressed === 0) return;
    logger.warn({ event: 'security', reason, suppressed: w.suppressed }, 'refused lines held back');
    w.suppressed = 0;
  };
  const sink = (reason: string, fields: SecurityEventFields): void => {
    metrics.securityEvents.inc({ reason });
    const t = now();
    const second = Math.floor(t / 1000);
    let w = windows.get(reason);
    if (w === undefined) {
      w = { second, lines: 0, suppressed: 0, report: undefined };
      windows.set(reason, w);
    } else if (w.second !== second) {
      report(reason, w); // the timer may not have run yet: the count goes out before this line
      w.second = second;
      w.lines = 0;
    }
    if (w.lines >= perSecond) {
      w.suppressed++;
      if (w.report === undefined) {
        const held = w;
        held.report = setTimeout(() => report(reason, held), 1000 - (t % 1000));
        held.report.unref();
      }
      return;
    }
    w.lines++;
    logger.warn({ event: 'security', reason, ...fields }, 'refused');
  };
  return Object.assign(sink, {
    close(): void {
      for (const [reason, w] of windows) report(reason, w);
    },
  });
}
