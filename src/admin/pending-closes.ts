/**
 * Disconnects and `end_session`s kept in Redis for a while (`admin.pendingCloseMs`). The control
 * channel (pub/sub) delivers a command at most once: a node cut from Redis when one passed would
 * never hear it. Kept as keys — `<prefix>admin:close:<session id>` or `…:close:user:<userKey>` —
 * they are read by a node once it is back, as bans are (session-control.ts `recheckAll`).
 */
import type { Redis } from 'ioredis';
import type { CloseCause, ControlCommand } from './control-channel.js';

/** A session to look up: its id, its user and when this node added it (this node's clock, ms). */
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

/**
 * Keeps a close stamped with Redis's clock (`at`, ms): the node that checks it later compares it
 * with its sessions' start, moved onto the same clock — never one node's clock against another's.
 */
const REMEMBER_LUA = `
local t = redis.call('TIME')
local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], cjson.encode({cause = ARGV[1], userKey = ARGV[2], at = at}), 'PX', ARGV[3])
return at
`;

interface RememberScript {
  rampartRememberClose(key: string, cause: string, userKey: string, keepMs: number): Promise<number>;
}

export class PendingCloses {
  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly keepMs: number,
    /** This node's clock (the one sessions' `addedAt` is on). */
    private readonly now: () => number = Date.now,
  ) {
    client.defineCommand('rampartRememberClose', { lua: REMEMBER_LUA, numberOfKeys: 1 });
  }

  async remember(command: ControlCommand & { kind: 'close' }): Promise<void> {
    const target = command.sessionId ?? `user:${command.userKey}`;
    await (this.client as unknown as RememberScript).rampartRememberClose(this.#key(target), command.cause, command.userKey, this.keepMs);
  }

  /** Redis's clock minus this node's (ms), to within half a round trip. */
  async #clockOffset(): Promise<number> {
    const before = this.now();
    const [sec, usec] = await this.client.time();
    const local = (before + this.now()) / 2;
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - local;
  }

  /**
   * The sessions a kept close applies to, with its cause: one of its user's, opened before it was
   * sent — not a later one, nor another user's that reuses the id (a node restarted under the
   * same nodeId counts its sessions from 1 again).
   */
  async due(sessions: readonly OpenSession[]): Promise<Map<string, CloseCause>> {
    const found = new Map<string, CloseCause>();
    if (sessions.length === 0) return found;
    // `addedAt` is this node's clock, a close's `at` Redis's: compared on Redis's.
    const offset = await this.#clockOffset();
    for (let from = 0; from < sessions.length; from += CHUNK) {
      const chunk = sessions.slice(from, from + CHUNK);
      const values = await this.client.mget(...chunk.flatMap((s) => [this.#key(s.id), this.#key(`user:${s.userKey}`)]));
      chunk.forEach((s, i) => {
        const applies = (c: PendingClose | undefined): c is PendingClose => c !== undefined && c.userKey === s.userKey && c.at >= s.addedAt + offset;
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
