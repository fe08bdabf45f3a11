/**
 * Node adapter: the sync state in a small JSON file, replaced atomically (write a temp file, then
 * rename) so a crash never leaves half a state behind. Node only: exported from `rampart/client/node`.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseSyncState, type SyncState, type SyncStore } from './sync-store.js';

export class FileSyncStore implements SyncStore {
  constructor(private readonly path: string) {}

  load(): SyncState | undefined {
    try {
      return parseSyncState(JSON.parse(readFileSync(this.path, 'utf8')));
    } catch {
      return undefined;
    }
  }

  save(state: SyncState): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const temp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(state), { mode: 0o600 });
    renameSync(temp, this.path);
  }
}
