/**
 * Disconnects and `end_session`s kept in Redis for a while (`admin.pendingCloseMs`). The control
 * channel (pub/sub) delivers a command at most once: a node cut from Redis when one passed would
 * never hear it. Kept as keys — `<prefix>admin:close:<session id>` or `…:close:user:<userKey>` —
 * they are read by a node once it is back, as bans are (session-control.ts `recheckAll`).
 */
import type { Redis } from 'ioredis';
import type { CloseCause, ControlCommand } from './control-channel.js';

/** A session to look up: its id, its user and when this node added it. */
export interface OpenSession {
  id: string;
  userKey: string;
  addedAt: number;
}

interface PendingClose {
  cause: CloseCause;
  userKey: string;
  at: number;
}

/** Sessions one MGET reads (two keys each). */
const CHUNK = 500;

export class PendingCloses {
  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly keepMs: number,
  ) {}

  async remember(command: ControlCommand & { kind: 'close' }): Promise<void> {
    const target = command.sessionId ?? `user:${command.userKey}`;
    const value: PendingClose = { cause: command.cause, userKey: command.userKey, at: Date.now() };
    await this.client.set(this.#key(target), JSON.stringify(value), 'PX', this.keepMs);
  }

  /**
   * The sessions a kept close applies to, with its cause: one of its user's, opened before it was
   * sent — not a later one, nor another user's that reuses the id (a node restarted under the
   * same nodeId counts its sessions from 1 again).
   */
  async due(sessions: readonly OpenSession[]): Promise<Map<string, CloseCause>> {
    const found = new Map<string, CloseCause>();
    for (let from = 0; from < sessions.length; from += CHUNK) {
      const chunk = sessions.slice(from, from + CHUNK);
      const values = await this.client.mget(...chunk.flatMap((s) => [this.#key(s.id), this.#key(`user:${s.userKey}`)]));
      chunk.forEach((s, i) => {
        const applies = (c: PendingClose | undefined): c is PendingClose => c !== undefined && c.userKey === s.userKey && c.at >= s.addedAt;
        const own = parse(values[2 * i]);
        const userWide = parse(values[2 * i + 1]);
        if (applies(own)) found.set(s.id, own.cause);
        else if (applies(userWide)) found.set(s.id, userWide.cause);
      });
    }
    return found;
  }

  #key(target: string): string {
    return `${this.prefix}admin:close:${target}`;
  }
}

/** A kept close, or undefined for none or a malformed one. */
function parse(raw: string | null | undefined): PendingClose | undefined {
  if (raw === null || raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as { cause?: unknown; userKey?: unknown; at?: unknown };
    if ((v.cause === 'admin' || v.cause === 'user') && typeof v.userKey === 'string' && typeof v.at === 'number') return { cause: v.cause, userKey: v.userKey, at: v.at };
  } catch {
    // malformed: ignored
  }
  return undefined;
}
