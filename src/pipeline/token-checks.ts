/**
 * Token checks under the IP's auth lockout, one at a time per IP on this node. Checking the lock,
 * judging the token and counting a refusal are three steps with awaits between them (Redis, an
 * asynchronous verifier); run side by side, every socket of a burst passed the check before the
 * first refusal was counted, and an IP had as many tokens judged as it could open sockets instead
 * of `limits.maxAuthFailures`. Serialized per IP, the next check of an IP starts once the previous
 * refusal is counted. (Across nodes of a cluster, at most one check per IP per node runs at once.)
 */
import type { Limiter } from '../limits/limiter.js';
import type { TokenVerifier, VerifyResult } from '../auth/token-verifier.js';

export interface TokenChecksOptions {
  limiter: Limiter;
  verify: TokenVerifier;
  lockoutKey(ip: string): string;
  /** A judged refusal: count it towards the IP's lockout (countAuthFailure). */
  countFailure(ip: string): Promise<void>;
}

/**
 * The verifier's result; `locked_out` when the IP was locked out before its token was looked at;
 * `abandoned` when its socket was gone by its turn (nothing judged, nothing counted).
 */
export type TokenCheck = VerifyResult | 'locked_out' | 'abandoned';

/** `wanted`: asked when the check's turn comes; false skips it (a socket closed while it waited in line). */
export type TokenChecks = (ip: string, token: string, wanted?: () => boolean) => Promise<TokenCheck>;

export function createTokenChecks(o: TokenChecksOptions): TokenChecks {
  /** The last check of each IP still running. */
  const running = new Map<string, Promise<TokenCheck>>();

  async function check(ip: string, token: string, wanted: () => boolean): Promise<TokenCheck> {
    // A socket that closed while waiting (auth timeout) costs its IP's line nothing more.
    if (!wanted()) return 'abandoned';
    if ((await o.limiter.blockedFor(o.lockoutKey(ip))) > 0) return 'locked_out';
    const result = await o.verify(token);
    // The key set could not be read: nothing was judged, so nothing counts.
    if (!result.ok && result.reason !== 'unavailable') await o.countFailure(ip);
    return result;
  }

  return (ip, token, wanted = () => true) => {
    const before = running.get(ip);
    const run = (): Promise<TokenCheck> => check(ip, token, wanted);
    const tail = before === undefined ? run() : before.then(run, run);
    running.set(ip, tail);
    const forget = (): void => {
      if (running.get(ip) === tail) running.delete(ip);
    };
    tail.then(forget, forget);
    return tail;
  };
}
