/**
 * A group change refused once its transaction had begun (a plain member adding, a limit reached,
 * nothing to change) must store nothing — not even the `users` rows of the ids it named, which
 * resolving them creates: any member could otherwise fill the table with refused `add_members`.
 * The adapters throw this inside the transaction to roll it back, and return its outcome.
 */
import type { GroupChangeOutcome } from './store.js';

export class RefusedChange extends Error {
  constructor(readonly outcome: GroupChangeOutcome) {
    super(`group change refused: ${outcome.status}`);
  }
}

/** Whether a group change's outcome stores nothing (so its transaction is rolled back). */
export function isRefusedChange(outcome: GroupChangeOutcome): boolean {
  return outcome.status !== 'ok' && outcome.status !== 'duplicate';
}
