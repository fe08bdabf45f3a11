/**
 * Idle-connection holder (one of several processes, each ≤ ~5,000 sockets so no process nears the
 * fd limit). On `open {count}` it opens that many more authenticated connections (bounded
 * concurrency) and reports; it then just keeps them alive (answers pings) until `close`.
 */
import { Kind, authOnOpen, sioConnect, SIO_PONG, classify, mintTokens } from '../lib/proto.js';
import { RawConn } from '../lib/wire.js';
import { send, waitCmd, openMany, sourceAddress, cpuMs, startLoad, type TargetConfig } from '../lib/worker.js';

export interface IdleConfig extends TargetConfig {
  users: string[];
  sources: string[];
  concurrency: number;
  openTimeoutMs: number;
}

const { cfg, proto, path } = await startLoad<IdleConfig>();
const tokens = await mintTokens(cfg.secret, cfg.users);
const conns: RawConn[] = [];
const closes: Record<string, number> = {};
let lostAfterAuth = 0;
let opened = 0;
let authFailed = 0;

process.on('message', async (m: { cmd?: string; count?: number }) => {
  if (m.cmd === 'open') {
    const count = Math.min(m.count ?? 0, cfg.users.length - opened);
    const base = opened;
    opened += count;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const r = await openMany(count, cfg.concurrency, (j, settle) => {
      const i = base + j;
      const token = tokens[i]!;
      let authed = false;
      const c = new RawConn(
        { host: cfg.host, port: cfg.port, path, origin: cfg.origin, localAddress: sourceAddress(cfg.sources, i) },
        {
          onOpen(c) {
            const a = authOnOpen(proto, token, cfg.users[i]!);
            if (a !== null) c.sendText(a);
          },
          onText(c, buf, start, end) {
            const kind = classify(proto, buf, start, end);
            if (kind === Kind.SioPing) c.sendText(SIO_PONG);
            else if (kind === Kind.SioOpen) c.sendText(sioConnect(token));
            else if (!authed && kind === Kind.AuthOk) {
              authed = true;
              conns.push(c);
              settle(true);
            } else if (!authed && kind === Kind.AuthFail) {
              authFailed++;
              settle(false);
            }
          },
          onClose(c) {
            const k = c.httpStatus && c.httpStatus !== 101 ? `http_${c.httpStatus}` : String(c.closeCode || c.error || 'tcp');
            closes[k] = (closes[k] ?? 0) + 1;
            if (authed) lostAfterAuth++;
            settle(false);
          },
        },
      );
      return c;
    }, cfg.openTimeoutMs);
    const ms = performance.now() - t0;
    send({ ev: 'opened', ok: r.ok, failed: r.failed, timedOut: r.timedOut, ms: Math.round(ms), cpu: cpuMs(cpu0), open: conns.filter((c) => c.open).length, authFailed, closes: { ...closes } });
  } else if (m.cmd === 'status') {
    send({ ev: 'status', open: conns.filter((c) => c.open).length, lostAfterAuth, closes: { ...closes } });
  } else if (m.cmd === 'close') {
    for (const c of conns) c.close();
    setTimeout(() => {
      for (const c of conns) c.destroy();
      send({ ev: 'closed', lostAfterAuth, closes });
      setTimeout(() => process.exit(0), 100);
    }, 500);
  }
});
send({ ev: 'ready' });
