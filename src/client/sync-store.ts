/**
 * Where a client keeps its sync state: a stable `deviceId` and the last timeline `pos` the
 * application processed. Pluggable: memory (default), Web Storage (browsers), a file (Node,
 * `rampart/client/node`).
 */
export interface SyncState {
  deviceId: string;
  /** The last processed timeline position (0: nothing yet). */
  pos: number;
}

export interface SyncStore {
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

/** A stored state is used only when it is well-formed; anything else starts over. */
export function parseSyncState(value: unknown): SyncState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { deviceId, pos } = value as Record<string, unknown>;
  if (typeof deviceId !== 'string' || !DEVICE_ID.test(deviceId)) return undefined;
  if (typeof pos !== 'number' || !Number.isSafeInteger(pos) || pos < 0) return undefined;
  return { deviceId, pos };
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
  load(): SyncState | undefined {
    try {
      const raw = this.storage.getItem(this.key);
      return raw === null ? undefined : parseSyncState(JSON.parse(raw));
    } catch {
      return undefined;
    }
  }
  save(state: SyncState): void {
    this.storage.setItem(this.key, JSON.stringify(state));
  }
}
