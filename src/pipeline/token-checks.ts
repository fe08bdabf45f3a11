/**
 * Token checks under the IP's auth lockout, one at a time per IP on this node. Checking the lock,
 * judging the token and counting a refusal are three steps with awaits between them (Redis, an
 * asynchronous verifier); run side by side, every socket of a burst passed the check before the
 * first refusal was counted, and an IP had as many tokens judged as it could open sockets instead
 * of `limits.maxAuthFailures`. Serialized per IP, the next check of an IP starts once the previous
 * refusal is counted. (Across nodes of a cluster, at most one check per IP per node runs at once.)
 */
import type { Limiter, RateRule } from '../limits/limiter.js';
import type { TokenVerifier, VerifyResult } from '../auth/token-verifier.js';

/**
 * The rule that counts an IP's refused tokens (countAuthFailure). It refuses the
 * `maxAuthFailures`-th failure, and a refusal is what locks the IP out: hence one less.
 */
export function authFailureRule(limits: { maxAuthFailures: number; authFailureWindowMs: number }): RateRule {
  return { name: 'auth_failures', limit: limits.maxAuthFailures - 1, windowMs: limits.authFailureWindowMs };
}

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

/**
 * A token refresh's check: judged even while the IP is locked out (`lockedOut` says so), because
 * the session proved itself already and another socket of its IP (a shared NAT) may have caused
 * the lockout; the caller must then accept only the session's own identity and answer anything
 * else exactly as a lockout, so a locked-out IP learns nothing about the tokens it tries.
 */
export type RefreshCheck = { result: VerifyResult; lockedOut: boolean } | 'abandoned';

/** `wanted`: asked when the check's turn comes; false skips it (a socket closed while it waited in line). */
export type TokenCheckFn = (ip: string, token: string, wanted?: () => boolean) => Promise<TokenCheck>;

export interface TokenChecks extends TokenCheckFn {
  /** The same line for a token refresh (see RefreshCheck). */
  refresh(ip: string, token: string, wanted?: () => boolean): Promise<RefreshCheck>;
}

export function createTokenChecks(o: TokenChecksOptions): TokenChecks {
  /** The last check of each IP still running. */
  const running = new Map<string, Promise<unknown>>();

  async function check(ip: string, token: string, wanted: () => boolean, judgeLockedOut: boolean): Promise<RefreshCheck | 'locked_out'> {
    // A socket that closed while waiting (auth timeout) costs its IP's line nothing more.
    if (!wanted()) return 'abandoned';
    const lockedOut = (await o.limiter.blockedFor(o.lockoutKey(ip))) > 0;
    if (lockedOut && !judgeLockedOut) return 'locked_out';
    const result = await o.verify(token);
    // The key set could not be read: nothing was judged, so nothing counts.
    if (!result.ok && result.reason !== 'unavailable') await o.countFailure(ip);
    return { result, lockedOut };
  }

  /** One check of `ip` at a time, in arrival order. */
  function inLine<T>(ip: string, run: () => Promise<T>): Promise<T> {
    const before = running.get(ip);
    const tail = before === undefined ? run() : before.then(run, run);
    running.set(ip, tail);
    const forget = (): void => {
      if (running.get(ip) === tail) running.delete(ip);
    };
    tail.then(forget, forget);
    return tail;
  }

  const checks = (ip: string, token: string, wanted: () => boolean = () => true): Promise<TokenCheck> =>
    inLine(ip, async () => {
      const c = await check(ip, token, wanted, false);
      return typeof c === 'string' ? c : c.result;
    });
  checks.refresh = (ip: string, token: string, wanted: () => boolean = () => true): Promise<RefreshCheck> =>
    inLine(ip, async () => {
      const c = await check(ip, token, wanted, true);
      return c === 'locked_out' ? 'abandoned' : c; // never: a refresh is judged when locked out
    });
  return checks;
}
