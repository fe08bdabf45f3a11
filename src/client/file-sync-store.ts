/**
 * Node adapter: the sync state in a small JSON file, replaced atomically (write a temp file, then
 * rename) so a crash never leaves half a state behind. Node only: exported from `rampart/client/node`.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
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

  /**
   * The temp file is flushed to disk before the rename (else a power loss could leave the new name
   * on an empty file: a new device). Its name is random, not the pid: two containers sharing a
   * volume both run as pid 1.
   */
  save(state: SyncState): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const temp = `${this.path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      const fd = openSync(temp, 'w', 0o600);
      try {
        writeSync(fd, JSON.stringify(state));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.path);
    } catch (err) {
      rmSync(temp, { force: true }); // a failed save leaves no temp file behind
      throw err;
    }
  }
}
