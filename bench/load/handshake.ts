/**
 * Handshake + auth rate: keeps `concurrency` connection lifecycles in flight — TCP connect, HTTP
 * upgrade (Origin checked by the server), auth frame (JWT verified by the server), auth_success,
 * close handshake — and counts lifecycles completed per second in the measurement window.
 * Tokens are distinct users minted before the run; connections rotate over loopback source
 * addresses so ephemeral ports never run out.
 */
import { Kind, authOnOpen, sioConnect, SIO_PONG, classify, mintTokens } from '../lib/proto.js';
import { RawConn } from '../lib/wire.js';
import { Samples, summarize } from '../lib/stats.js';
import { send, waitCmd, sourceAddress, measureWindow, startLoad, type TargetConfig } from '../lib/worker.js';

export interface HandshakeConfig extends TargetConfig {
  users: string[];
  sources: string[];
  concurrency: number;
  warmupMs: number;
  measureMs: number;
}

const { cfg, proto, path } = await startLoad<HandshakeConfig>();
const tokens = await mintTokens(cfg.secret, cfg.users);
send({ ev: 'ready' });
await waitCmd('go');

const authLat = new Samples();
const failures: Record<string, number> = {};
let phase = 0; // 0 warmup, 1 measuring, 2 stopping
let next = 0;
let inflight = 0;
let completed = 0;
let failed = 0;
let total = 0;

function start(): void {
  while (phase < 2 && inflight < cfg.concurrency) {
    const i = next++;
    const u = i % cfg.users.length;
    const token = tokens[u]!;
    const startedIn = phase;
    const t0 = performance.now();
    let authed = false;
    inflight++;
    total++;
    new RawConn(
      { host: cfg.host, port: cfg.port, path, origin: cfg.origin, localAddress: sourceAddress(cfg.sources, i) },
      {
        onOpen(c) {
          const a = authOnOpen(proto, token, cfg.users[u]!);
          if (a !== null) c.sendText(a);
        },
        onText(c, buf, s, e) {
          const kind = classify(proto, buf, s, e);
          if (kind === Kind.SioOpen) c.sendText(sioConnect(token));
          else if (kind === Kind.SioPing) c.sendText(SIO_PONG);
          else if (kind === Kind.AuthOk && !authed) {
            authed = true;
            if (phase === 1 && startedIn === 1) authLat.add(Math.round((performance.now() - t0) * 1000));
            c.close(1000);
          } else if (kind === Kind.AuthFail) {
            c.close(1000);
          }
        },
        onClose(c) {
          inflight--;
          if (authed) {
            if (phase === 1) completed++;
          } else {
            failed++;
            const k = c.httpStatus && c.httpStatus !== 101 ? `http_${c.httpStatus}` : String(c.closeCode || c.error || 'tcp');
            failures[k] = (failures[k] ?? 0) + 1;
          }
          if (phase < 2) setImmediate(start);
        },
      },
    );
  }
}

const t0 = performance.now();
start();
const { measuredMs: ms, cpu } = await measureWindow(cfg, (p) => (phase = p));
const done = completed;
const stopBy = performance.now() + 5000;
while (inflight > 0 && performance.now() < stopBy) await sleep(20);

send({
  ev: 'result',
  result: {
    ok: done > 0,
    concurrency: cfg.concurrency,
    measuredMs: Math.round(ms),
    completed: done,
    rate: (done * 1000) / ms,
    failed,
    failures,
    attempted: total,
    stuck: inflight,
    authLatency: summarize(authLat),
    cpu,
    cpuPct: (cpu.total / ms) * 100,
    usPerConnection: done ? (cpu.total * 1000) / done : null,
    elapsedMs: Math.round(performance.now() - t0),
  },
});
setTimeout(() => process.exit(0), 100);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
