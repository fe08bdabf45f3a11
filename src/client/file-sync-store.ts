/**
 * Node adapter: the sync state in a small JSON file, replaced atomically (write a temp file, then
 * rename) so a crash never leaves half a state behind. Node only: exported from `rampart/client/node`.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { readSyncState, type SyncState, type SyncStore } from './sync-store.js';

export class FileSyncStore implements SyncStore {
  constructor(private readonly path: string) {}

  /**
   * No file: no state. Any other read error (EMFILE, EACCES, EIO, …) throws, so the client
   * retries it instead of overwriting the device's position with a new device's; a file that is
   * not a state throws `IllFormedSyncStateError` (reported, then replaced by the next save).
   */
  load(): SyncState | undefined {
    let raw: string;
    try {
      raw = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as { code?: unknown } | null)?.code === 'ENOENT') return undefined;
      throw err;
    }
    return readSyncState(raw);
  }

  save(state: SyncState): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const temp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(state), { mode: 0o600 });
    renameSync(temp, this.path);
  }
}
