/**
 * The SQLite store's timeline writer: the entries a write transaction queues are written at its
 * end, into the small timeline_recent or, for a large batch, straight into `timeline`; the recent
 * ones move into `timeline` in one sorted batch (schema 5).
 */
import type { Statements } from './sqlite-statements.js';

/**
 * `recent`: entries kept in timeline_recent before they move into `timeline` in one sorted batch
 * (schema 5). A few hundred KiB of tree: small enough that a commit dirties few of its pages, large
 * enough that the move dirties each active user's page of `timeline` once per many commits.
 * `direct`: a transaction writing at least this many entries (a batch of group messages: one per
 * member per message) writes them straight into `timeline`: they fill whole pages per user
 * anyway, and going through timeline_recent would write them twice.
 */
const TIMELINE_BATCH = { recent: 4096, direct: 1024 } as const;

/** One per store; used only inside its write transactions (SqliteStore #write). */
export class TimelineWriter {
  readonly #batch: { recent: number; direct: number } | undefined;
  /** Rows in timeline_recent (an estimate: it only decides when to settle them). */
  #recentRows = 0;
  /** Timeline entries of the running transaction, flat (user, pos, conv, seq), written at its end. */
  readonly #rows: number[] = [];

  /** `batch`: SqliteStoreOptions.timelineBatch (default TIMELINE_BATCH). */
  constructor(batch: { recent: number; direct: number } | undefined) {
    this.#batch = batch;
  }

  /** Queue a timeline entry of the running transaction (written by write() before COMMIT). */
  queue(user: number, pos: number, conv: number, seq: number): void {
    this.#rows.push(user, pos, conv, seq);
  }

  /** Drop the entries not written (the transaction ended, written or rolled back). */
  discard(): void {
    this.#rows.length = 0;
  }

  /** Count timeline_recent's rows again (another connection may have written, or a rollback undone a settle). */
  recount(s: Statements): void {
    this.#recentRows = s.countRecentTimeline.get()!;
  }

  /**
   * Write the transaction's timeline entries: a few go to timeline_recent (settled into `timeline`
   * once it holds `timelineBatch.recent`); a large batch settles the recent ones first, then goes
   * straight into `timeline`. Either way, every user's recent positions stay
   * above their settled ones.
   */
  write(s: Statements): void {
    const rows = this.#rows;
    const n = rows.length / 4;
    const batch = this.#batch ?? TIMELINE_BATCH;
    if (n >= batch.direct) {
      // Unconditionally: these rows must land above whatever timeline_recent holds (two cheap
      // statements when it is empty), whatever the count says.
      this.#settle(s, true);
      s.insertSettledTimelineRows.run(rows);
    } else {
      s.insertTimelineRows.run(rows);
      this.#recentRows += n;
      if (this.#recentRows >= batch.recent) this.#settle(s);
    }
    rows.length = 0;
  }

  #settle(s: Statements, always = false): void {
    if (this.#recentRows === 0 && !always) return;
    s.settleTimeline.run();
    s.clearRecentTimeline.run();
    this.#recentRows = 0;
  }
}
