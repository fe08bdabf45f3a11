/**
 * Group commit: every message submitted during one event-loop turn is stored by ONE
 * appendMessages call (one transaction, one fsync). At most one transaction is in flight; what
 * arrives meanwhile waits and goes next as a single batch, so batches grow with load instead of
 * transactions queueing up. A promise resolves only after its batch committed; if the batch
 * fails, every promise of it rejects: nothing is acknowledged that is not durable — unless the
 * error is one row's (row-errors.ts): then the batch is stored again in halves, down to that one
 * message, so one message the database refuses does not fail every other sender's in its batch.
 */
import type { AppendOptions, AppendOutcome, NewMessage, Store } from './store.js';
import { isRowError } from './row-errors.js';

export interface GroupCommitterOptions extends AppendOptions {
  /** Most messages per transaction; a longer queue is split over consecutive ones. Default 1000. */
  maxBatchSize?: number;
  /** Called with the size of every transaction (metrics). */
  onBatch?: (size: number) => void;
  /** Called after every transaction with its duration in seconds and whether it committed (metrics). */
  onCommit?: (seconds: number, ok: boolean) => void;
}

interface Entry {
  message: NewMessage;
  resolve: (outcome: AppendOutcome) => void;
  reject: (err: unknown) => void;
  /** Index of this entry's message in the batch sent to the store. */
  slot: number;
  /** True when an earlier entry of the same batch has the same (tenantId, senderId, clientMsgId). */
  repeat: boolean;
}

export class GroupCommitter {
  readonly #store: Pick<Store, 'appendMessages'>;
  readonly #appendOptions: AppendOptions;
  readonly #maxBatchSize: number;
  readonly #onBatch: ((size: number) => void) | undefined;
  readonly #onCommit: ((seconds: number, ok: boolean) => void) | undefined;
  #inFlightCount = 0;
  #queue: Entry[] = [];
  #scheduled = false;
  #inFlight: Promise<void> | undefined;
  #closed = false;

  constructor(store: Pick<Store, 'appendMessages'>, options: GroupCommitterOptions) {
    this.#store = store;
    this.#appendOptions = { maxInboxSize: options.maxInboxSize };
    this.#maxBatchSize = Math.max(1, Math.floor(options.maxBatchSize ?? 1000));
    this.#onBatch = options.onBatch;
    this.#onCommit = options.onCommit;
  }

  /** Messages waiting for a transaction (not counting the one in flight). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Messages submitted and not yet committed (or failed): queued plus the batch in flight. */
  get pending(): number {
    return this.#queue.length + this.#inFlightCount;
  }

  submit(message: NewMessage): Promise<AppendOutcome> {
    if (this.#closed) return Promise.reject(new Error('GroupCommitter is closed'));
    return new Promise<AppendOutcome>((resolve, reject) => {
      this.#queue.push({ message, resolve, reject, slot: 0, repeat: false });
      this.#schedule();
    });
  }

  /** Refuse new submits and resolve once everything already submitted is committed (or failed). */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#queue.length > 0 || this.#inFlight !== undefined) {
      if (this.#inFlight === undefined) this.#flush();
      await this.#inFlight;
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight !== undefined) return;
    this.#scheduled = true;
    // setImmediate runs after the current turn's I/O callbacks: everything they submit joins in.
    setImmediate(this.#onImmediate);
  }

  readonly #onImmediate = (): void => {
    this.#scheduled = false;
    this.#flush();
  };

  #flush(): void {
    if (this.#inFlight !== undefined || this.#queue.length === 0) return;
    let batch = this.#queue;
    if (batch.length > this.#maxBatchSize) {
      this.#queue = batch.slice(this.#maxBatchSize);
      batch = batch.slice(0, this.#maxBatchSize);
    } else {
      this.#queue = [];
    }
    this.#inFlightCount = batch.length;
    this.#inFlight = this.#commit(batch).then(() => {
      this.#inFlight = undefined;
      this.#inFlightCount = 0;
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  /**
   * Never rejects: the outcome of each entry goes to its own promise. `retries`: transactions the
   * halving of a failed batch may still spend — about 2·log2 n to find one refused message, that
   * much again for each one found, up to MAX_REFUSED of them; not 2n − 1 to try every message of a
   * batch the database refuses whole.
   */
  async #commit(batch: Entry[], retries?: RetryBudget): Promise<void> {
    const messages: NewMessage[] = [];
    let firstByKey: Map<string, number> | undefined;
    for (const entry of batch) {
      const m = entry.message;
      if (m.clientMsgId !== undefined) {
        firstByKey ??= new Map();
        const key = `${m.tenantId}\u0000${m.senderId}\u0000${m.clientMsgId}`;
        const first = firstByKey.get(key);
        if (first !== undefined) {
          entry.slot = first;
          entry.repeat = true;
          continue;
        }
        firstByKey.set(key, messages.length);
      }
      entry.slot = messages.length;
      messages.push(m);
    }

    const started = performance.now();
    let outcomes: AppendOutcome[];
    try {
      this.#onBatch?.(messages.length);
      outcomes = await this.#store.appendMessages(messages, this.#appendOptions);
      if (outcomes.length !== messages.length) {
        throw new Error(`store returned ${outcomes.length} outcomes for ${messages.length} messages`);
      }
    } catch (err) {
      this.#onCommit?.((performance.now() - started) / 1000, false);
      const budget = retries ?? newBudget(messages.length);
      // One message the database refuses on its own: found; the search may go on for another.
      if (messages.length === 1 && retries !== undefined && isRowError(err) && budget.refills > 0) {
        budget.refills--;
        budget.left += budget.perRefused;
      }
      if (messages.length > 1 && isRowError(err) && budget.left >= 2) {
        // The transaction rolled back whole: each half is stored on its own, repeats of a
        // clientMsgId staying with their first.
        budget.left -= 2;
        const [first, second] = halves(batch, messages.length);
        await this.#commit(first, budget);
        await this.#commit(second, budget);
        return;
      }
      for (const entry of batch) entry.reject(err);
      return;
    }
    this.#onCommit?.((performance.now() - started) / 1000, true);

    for (const entry of batch) {
      const outcome = outcomes[entry.slot]!;
      // A repeat of the same (tenant, sender, clientMsgId) in this batch gets the first one's
      // message as a duplicate when the first was stored or a duplicate, else the same refusal.
      if (entry.repeat && (outcome.status === 'stored' || outcome.status === 'duplicate')) {
        entry.resolve({ status: 'duplicate', message: outcome.message });
      } else {
        entry.resolve(outcome);
      }
    }
  }
}

/** Refused messages a failed batch's halving looks for before it gives up on the rest of the batch. */
const MAX_REFUSED = 8;

interface RetryBudget {
  left: number;
  /** Transactions added back each time a refused message is found. */
  perRefused: number;
  refills: number;
}

/** What finding one refused message among `messages` costs: a split per level, down to it. */
function newBudget(messages: number): RetryBudget {
  const perRefused = 2 * Math.ceil(Math.log2(messages));
  return { left: perRefused, perRefused, refills: MAX_REFUSED };
}

/** The entries of the first `messages / 2` distinct messages, and the rest (slots as #commit set them). */
function halves(batch: readonly Entry[], messages: number): [Entry[], Entry[]] {
  const cut = Math.floor(messages / 2);
  const first: Entry[] = [];
  const second: Entry[] = [];
  for (const entry of batch) (entry.slot < cut ? first : second).push(entry);
  return [first, second];
}
