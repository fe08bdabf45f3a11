/**
 * Whose the client's position and pending work are: the position is resumed from only by the
 * identity it was saved for, and what one user's connection left unsent never goes out as another
 * (a token provider that changed users, a shared browser or machine).
 */
import type { SyncState } from './sync-store.js';
import { tokenIdentity, tokenSubject } from './token-source.js';

/** What the identity checks call back into the client. */
export interface IdentityContext {
  /** The position is another user's: it is not known to be saved any more. */
  positionDropped(): void;
  /** Signed in as another user than the last connection's: what was made as that user fails. */
  userChanged(): void;
}

export class IdentityTracker {
  /** True once the client has a position of its own (stored, or from an `auth_success`). */
  private hasPosition = false;
  /** Whose timeline the position is in (a `userId` of `auth_success`, or the stored state's). */
  private owner: string | undefined;
  /** … and the identity of the token it was named for (`tokenIdentity`: `sub` and tenant). */
  private ownerIdentity: string | undefined;
  /**
   * Who the last authenticated connection was (`auth_success`'s `userId`, the identity of its
   * token): sends and requests made since were made as them, and go out only as them.
   */
  private session: { userId: string | undefined; identity: string | undefined } | undefined;
  /** The token of the connection being made names the position's owner: `auth` resumes from it (`after`). */
  private resumeFromPosition = false;

  constructor(private readonly ctx: IdentityContext) {}

  get positioned(): boolean {
    return this.hasPosition;
  }

  /** `auth` resumes from the position (`after`): it is the client's own, and the token names its owner. */
  get resumes(): boolean {
    return this.hasPosition && this.resumeFromPosition;
  }

  /** Whose the stored position is (the state said, with the identity that tells tenants apart). */
  restore(userId: string, identity: string): void {
    this.hasPosition = true;
    this.owner = userId;
    this.ownerIdentity = identity;
  }

  /** Whose the position is, as a state to save says it; undefined while the client has no position of its own. */
  saveable(): Pick<SyncState, 'userId' | 'identity'> | undefined {
    if (!this.hasPosition || this.owner === undefined) return undefined;
    return { userId: this.owner, ...(this.ownerIdentity !== undefined ? { identity: this.ownerIdentity } : {}) };
  }

  /**
   * The token for the next connection is read (unverified): a position is resumed from only by the
   * identity it was saved for (one that cannot be read is not trusted), and what the last
   * connection's user left unsent must not go out as someone else.
   */
  checkToken(token: string): void {
    const identity = tokenIdentity(token);
    // Not another user's position to resume from; kept until another user's auth_success (this
    // attempt may never authenticate, and the next token may be the owner's again).
    this.resumeFromPosition = identity !== undefined && identity === this.ownerIdentity;
    if (identity === undefined) return; // a token that cannot be read: found out at auth_success
    const userId = tokenSubject(token);
    const s = this.session;
    const other = s !== undefined && (s.identity !== undefined ? identity !== s.identity : userId !== s.userId);
    if (other) this.ctx.userChanged();
    // What the app does from now on is this user's (the token's `sub` is the server's `userId`): not
    // failed again at their auth_success or a later attempt of theirs, but failed if another user
    // — even one whose token cannot be read — authenticates instead.
    if (s === undefined || other) this.session = { userId, identity };
  }

  /** `auth_success` as `userId`, with a token of `identity`: the position is dropped unless it is theirs. */
  authenticated(userId: string, identity: string | undefined): void {
    // Another user (a token whose user could not be read counts as one): the position is not theirs.
    if (userId !== this.owner || identity === undefined || identity !== this.ownerIdentity) this.dropPosition();
    // Found out only now (a token that could not be read): what was made as the last user fails.
    if (this.session?.userId !== undefined && userId !== this.session.userId) this.ctx.userChanged();
    this.session = { userId, identity };
    this.ownerIdentity = identity;
  }

  /** The position (reset to the server's, or kept) is now `userId`'s own. */
  own(userId: string): void {
    this.hasPosition = true;
    this.owner = userId;
  }

  /**
   * The position is another user's (a store left by the last user of this browser or machine, a
   * token provider that changed users): resuming from it would drop that many of this user's
   * events as replays, and acknowledge them. The server's record of the device decides instead
   * (`auth` without `after`), and the position starts at its `resumeAfter`.
   */
  private dropPosition(): void {
    if (!this.hasPosition) return;
    this.hasPosition = false;
    this.owner = undefined;
    this.ownerIdentity = undefined;
    this.ctx.positionDropped();
  }
}
