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
  if (state === undefined) throw new IllFormedSyncStateError('deviceId: 1..64 printable ASCII characters, pos: an integer ≥ 0, userId: absent or 1..256 characters');
  return state;
}

/** A stored state is used only when it is well-formed; anything else starts over. */
export function parseSyncState(value: unknown): SyncState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { deviceId, pos, userId } = value as Record<string, unknown>;
  if (typeof deviceId !== 'string' || !DEVICE_ID.test(deviceId)) return undefined;
  if (typeof pos !== 'number' || !Number.isSafeInteger(pos) || pos < 0) return undefined;
  if (userId === undefined) return { deviceId, pos };
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID) return undefined;
  return { deviceId, pos, userId };
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
