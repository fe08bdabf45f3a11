/**
 * The outcomes both adapters return without data, frozen once and shared: a refusal is the same
 * object on SQLite and PostgreSQL, so neither allocates one per refused row.
 */
import type { AppendOutcome, GroupChangeOutcome, MessageChangeOutcome } from './store.js';

export const APPEND_INBOX_FULL: AppendOutcome = Object.freeze({ status: 'inbox_full' });
export const APPEND_FORBIDDEN: AppendOutcome = Object.freeze({ status: 'forbidden' });
export const GROUP_FORBIDDEN: GroupChangeOutcome = Object.freeze({ status: 'forbidden' });
export const GROUP_UNCHANGED: GroupChangeOutcome = Object.freeze({ status: 'unchanged' });
export const GROUP_TOO_MANY_MEMBERS: GroupChangeOutcome = Object.freeze({ status: 'too_many_members' });
export const GROUP_TOO_MANY_GROUPS: GroupChangeOutcome = Object.freeze({ status: 'too_many_groups' });
export const MESSAGE_FORBIDDEN: MessageChangeOutcome = Object.freeze({ status: 'forbidden' });
