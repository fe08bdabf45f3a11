/**
 * Reconnect storm (one of several processes, ≤ ~5,000 sockets each). `open {count}`: opens and
 * authenticates that many clients (each names a device, as an app would). `drop`: destroys every
 * socket at once (a network blip), then each client reconnects the way a client library does —
 * exponential backoff with full jitter (attempt k waits uniform[0, min(capMs, baseMs·2^k)]) — and
 * authenticates again with its device. Reports when the last one is back, how many attempts and
 * refusals it took, and how many were back at each `sampleMs`.
 */
import { Kind, authOnOpen, classify, mintTokens } from '../lib/proto.js';
import { RawConn } from '../lib/wire.js';
import { send, cpuMs, openMany, sourceAddress, startLoad, type TargetConfig } from '../lib/worker.js';

export interface StormConfig extends TargetConfig {
  users: string[];
  sources: string[];
  concurrency: number;
  openTimeoutMs: number;
  backoff: { baseMs: number; capMs: number };
  /** Give up waiting for everyone after this long. */
  recoverTimeoutMs: number;
  sampleMs: number;
}

const { cfg, proto, path } = await startLoad<StormConfig>();
const tokens = await mintTokens(cfg.secret, cfg.users);
const conns: (RawConn | null)[] = cfg.users.map(() => null);
const authText = (i: number): string => {
  const a = JSON.parse(authOnOpen(proto, tokens[i]!, cfg.users[i]!)!) as Record<string, unknown>;
  return JSON.stringify({ ...a, deviceId: `d${i}` });
};

/** One connect + auth; resolves true once authenticated, false on any refusal or close. */
function connectOnce(i: number, onAuthed: (c: RawConn) => void, refused: (why: string) => void): RawConn {
  let authed = false;
  return new RawConn(
    { host: cfg.host, port: cfg.port, path, origin: cfg.origin, localAddress: sourceAddress(cfg.sources, i) },
    {
      onOpen(c) {
        c.sendText(authText(i));
      },
      onText(c, buf, s, e) {
        if (authed) return;
        const kind = classify(proto, buf, s, e);
        if (kind === Kind.AuthOk) {
          authed = true;
          onAuthed(c);
        } else if (kind === Kind.AuthFail) {
          refused('auth_failure');
          c.destroy();
        }
      },
      onClose(c) {
        if (!authed) refused(c.httpStatus && c.httpStatus !== 101 ? `http_${c.httpStatus}` : String(c.closeCode || c.error || 'tcp'));
      },
    },
  );
}

process.on('message', async (m: { cmd?: string }) => {
  if (m.cmd === 'open') {
    const t0 = performance.now();
    const r = await openMany(cfg.users.length, cfg.concurrency, (i, settle) => {
      let done = false;
      return connectOnce(i, (c) => ((conns[i] = c), (done = true), settle(true)), () => !done && settle(false));
    }, cfg.openTimeoutMs);
    send({ ev: 'opened', ok: r.ok, failed: r.failed, ms: Math.round(performance.now() - t0) });
  } else if (m.cmd === 'drop') {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const c of conns) c?.destroy();
    const total = conns.filter((c) => c !== null).length;
    const refusals: Record<string, number> = {};
    let back = 0;
    let attempts = 0;
    let lastBackMs = 0;
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(back), cfg.sampleMs);
    await new Promise<void>((resolve) => {
      const giveUp = setTimeout(resolve, cfg.recoverTimeoutMs);
      const attempt = (i: number, k: number): void => {
        const delay = Math.random() * Math.min(cfg.backoff.capMs, cfg.backoff.baseMs * 2 ** k);
        setTimeout(() => {
          attempts++;
          let settled = false;
          connectOnce(
            i,
            (c) => {
              settled = true;
              conns[i] = c;
              back++;
              lastBackMs = performance.now() - t0;
              if (back === total) {
                clearTimeout(giveUp);
                resolve();
              }
            },
            (why) => {
              if (settled) return;
              settled = true;
              refusals[why] = (refusals[why] ?? 0) + 1;
              attempt(i, k + 1);
            },
          );
        }, delay);
      };
      conns.forEach((c, i) => {
        if (c !== null) attempt(i, 0);
      });
    });
    clearInterval(sampler);
    samples.push(back);
    send({ ev: 'recovered', total, back, attempts, refusals, recoveryMs: Math.round(lastBackMs), sampleMs: cfg.sampleMs, samples, cpu: cpuMs(cpu0) });
  } else if (m.cmd === 'close') {
    for (const c of conns) c?.close();
    setTimeout(() => {
      for (const c of conns) c?.destroy();
      send({ ev: 'closed' });
      setTimeout(() => process.exit(0), 100);
    }, 300);
  }
});
send({ ev: 'ready' });
