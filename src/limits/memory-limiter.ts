/**
 * In-process `Limiter`: one entry per key holding a sliding window per rule plus a penalty-box
 * deadline. This is the hot path (every inbound frame), so a call allocates nothing on the
 * admitted path: windows are created once per (key, rule) and reused, and the "allowed" answer is
 * a shared frozen object.
 */
import type { Limiter, RateDecision, RateRule } from './limiter.js';
import { advance, createWindow, DEFAULT_BUCKETS, isIdle, record, retryAfter, type WindowState } from './sliding-window.js';

export interface MemoryLimiterOptions {
  /** Sub-buckets per window (default 10): more = closer to exact, more memory. */
  buckets?: number;
  /** How often idle keys are swept (default 60 s; 0 disables the timer, call `sweep()` yourself). */
  sweepIntervalMs?: number;
}

interface RuleWindow {
  name: string;
  state: WindowState;
}

interface Entry {
  windows: RuleWindow[];
  /** Epoch ms the penalty box ends (0 = not blocked). */
  blockedUntil: number;
}

export const ALLOWED: RateDecision = Object.freeze({ allowed: true });

export class MemoryLimiter implements Limiter {
  private readonly entries = new Map<string, Entry>();
  private readonly buckets: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryLimiterOptions = {}) {
    this.buckets = options.buckets ?? DEFAULT_BUCKETS;
    const every = options.sweepIntervalMs ?? 60_000;
    if (every > 0) {
      this.timer = setInterval(() => this.sweep(), every);
      // The sweep is housekeeping: it must never keep the process alive.
      this.timer.unref();
    }
  }

  consume(key: string, rules: readonly RateRule[], now: number = Date.now()): RateDecision {
    const entry = this.entry(key);
    // Pass 1: check every rule without counting, so a refusal counts in none (atomic). A refusal
    // names the rule with the longest wait: a client retrying after `retryAfter` must pass them all.
    let refused = -1;
    let longest = 0;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      const state = this.window(entry, i, rule);
      advance(state, now);
      const wait = retryAfter(state, rule.limit, now);
      if (wait > longest) {
        longest = wait;
        refused = i;
      }
    }
    if (refused >= 0) return { allowed: false, rule: rules[refused]!.name, retryAfter: longest };
    // Pass 2: all admit; count in all.
    for (let i = 0; i < rules.length; i++) record(this.window(entry, i, rules[i]!));
    return ALLOWED;
  }

  block(key: string, ms: number, now: number = Date.now()): void {
    if (!(ms > 0)) return;
    const entry = this.entry(key);
    // A shorter block never shortens a longer one already running.
    entry.blockedUntil = Math.max(entry.blockedUntil, now + ms);
  }

  blockedFor(key: string, now: number = Date.now()): number {
    const entry = this.entries.get(key);
    if (entry === undefined) return 0;
    return Math.max(0, entry.blockedUntil - now);
  }

  /** Drop keys whose every window has aged out and whose block has ended. */
  sweep(now: number = Date.now()): void {
    for (const [key, entry] of this.entries) {
      if (entry.blockedUntil > now) continue;
      let idle = true;
      for (const w of entry.windows) {
        if (!isIdle(w.state, now)) {
          idle = false;
          break;
        }
      }
      if (idle) this.entries.delete(key);
    }
  }

  /** Number of keys held (tests and metrics). */
  size(): number {
    return this.entries.size;
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.entries.clear();
  }

  private entry(key: string): Entry {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { windows: [], blockedUntil: 0 };
      this.entries.set(key, entry);
    }
    return entry;
  }

  /**
   * The window for `rule`. Fast path: callers pass the same rule list every time, so position i
   * usually holds it; otherwise scan (a key has a handful of rules). A rule whose window length
   * changed gets a fresh window (old counts are meaningless under a new geometry).
   */
  private window(entry: Entry, i: number, rule: RateRule): WindowState {
    const ws = entry.windows;
    let found = ws[i];
    if (found === undefined || found.name !== rule.name) {
      found = undefined;
      for (const w of ws) {
        if (w.name === rule.name) {
          found = w;
          break;
        }
      }
    }
    if (found === undefined) {
      found = { name: rule.name, state: createWindow(rule.windowMs, this.buckets) };
      ws.push(found);
    } else if (found.state.windowMs !== rule.windowMs) {
      found.state = createWindow(rule.windowMs, this.buckets);
    }
    return found.state;
  }
}
