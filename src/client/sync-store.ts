/**
 * Where a client keeps its sync state: a stable `deviceId` and the last timeline `pos` the
 * application processed. Pluggable: memory (default), Web Storage (browsers), a file (Node,
 * `rampart/client/node`).
 */
export interface SyncState {
  deviceId: string;
  /** The last processed timeline position (0: nothing yet). */
  pos: number;
  /**
   * Whose timeline `pos` is in (the `userId` of `auth_success`: the token's `sub`, lowercased).
   * The position is used only by a client that authenticates as this user: on a shared browser
   * or machine another user's position would make the client drop that many of the next user's
   * events as replays. Absent in states an older SDK wrote: their position is not used (the
   * server's record of the device decides where it resumes), their `deviceId` is.
   */
  userId?: string;
  /**
   * Whose timeline it is, as the token tells (token-source.ts `tokenIdentity`: `sub` and tenant).
   * The server's user is tenant + `sub`: the same `sub` in another tenant is another user, whom
   * `userId` alone cannot tell apart. The position is used only when the next token names this
   * identity (and `auth_success` this `userId`); a state without it (an older SDK's, `userId`
   * only or nothing) keeps only its `deviceId`: whose it is cannot be told.
   */
  identity?: string;
}

export interface SyncStore {
  /**
   * The saved state; undefined only when nothing was saved yet. A read that fails throws (the
   * client retries it, see `storeLoadAttempts`); stored data that is not a state throws
   * `IllFormedSyncStateError` (or is returned as read: the client checks it either way).
   */
  load(): SyncState | undefined | Promise<SyncState | undefined>;
  save(state: SyncState): void | Promise<void>;
}

/** A random device id (printable ASCII, as the protocol requires). */
export function newDeviceId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return `dev-${c.randomUUID()}`;
  return `dev-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

const DEVICE_ID = /^[\x21-\x7e]{1,64}$/;
/** A stored `userId` longer than this is not one the server gave (its ids are UUIDs). */
const MAX_USER_ID = 256;
/** A stored `identity` longer than this is not one the SDK wrote (a `sub` and a `tid` are short). */
const MAX_IDENTITY = 512;

/** What a well-formed state is (the text of `IllFormedSyncStateError` and of the client's report). */
export const STATE_BOUNDS = 'deviceId: 1..64 printable ASCII characters, pos: an integer ≥ 0, userId: absent or 1..256 characters, identity: absent or 1..512 characters';

/**
 * Thrown by a store's `load` when what it holds is not a sync state (not JSON, fields out of
 * bounds). The client reports it as `store_failed` and goes on as a new device at once: reading
 * again would read the same. Any other error from `load` is taken as a failed read and retried.
 */
export class IllFormedSyncStateError extends Error {
  constructor(detail: string) {
    super(`ill-formed sync state: ${detail}`);
    this.name = 'IllFormedSyncStateError';
  }
}

/**
 * Reads a stored text (for stores that keep JSON): anything that is not a well-formed state — an
 * empty or truncated file included — throws `IllFormedSyncStateError`, so the client reports it
 * instead of silently starting over as a new device.
 */
export function readSyncState(raw: string): SyncState {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new IllFormedSyncStateError('not JSON');
  }
  const state = parseSyncState(value);
  if (state === undefined) throw new IllFormedSyncStateError(STATE_BOUNDS);
  return state;
}

/** An optional string field: absent, or 1..`max` characters; `false` when out of bounds. */
function optionalText(value: unknown, max: number): string | undefined | false {
  if (value === undefined) return undefined;
  return typeof value === 'string' && value.length > 0 && value.length <= max ? value : false;
}

/** A stored state is used only when it is well-formed; anything else starts over. */
export function parseSyncState(value: unknown): SyncState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const fields = value as Record<string, unknown>;
  const { deviceId, pos } = fields;
  if (typeof deviceId !== 'string' || !DEVICE_ID.test(deviceId)) return undefined;
  if (typeof pos !== 'number' || !Number.isSafeInteger(pos) || pos < 0) return undefined;
  const userId = optionalText(fields.userId, MAX_USER_ID);
  const identity = optionalText(fields.identity, MAX_IDENTITY);
  if (userId === false || identity === false) return undefined;
  return { deviceId, pos, ...(userId !== undefined ? { userId } : {}), ...(identity !== undefined ? { identity } : {}) };
}

export class MemorySyncStore implements SyncStore {
  constructor(private state?: SyncState) {}
  load(): SyncState | undefined {
    return this.state ? { ...this.state } : undefined;
  }
  save(state: SyncState): void {
    this.state = { ...state };
  }
}

/** The part of the Web Storage API the adapter needs (`localStorage`, `sessionStorage`). */
export interface WebStorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * Web Storage adapter. `localStorage` keeps one device per browser profile; `sessionStorage`
 * keeps one per tab (two tabs of one user are then two devices, each with its own position).
 */
export class WebStorageSyncStore implements SyncStore {
  constructor(
    private readonly storage: WebStorageLike,
    private readonly key = 'rampart:sync',
  ) {}
  /**
   * No key: no state. A failing `getItem` (storage disabled, a SecurityError) throws, so the
   * client retries and reports `store_failed` instead of overwriting the device's position.
   */
  load(): SyncState | undefined {
    const raw = this.storage.getItem(this.key);
    return raw === null ? undefined : readSyncState(raw);
  }
  save(state: SyncState): void {
    this.storage.setItem(this.key, JSON.stringify(state));
  }
}
