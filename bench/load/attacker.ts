/**
 * One hostile client (its own user, its own loopback source address). Once authenticated it floods
 * at a bounded offered rate a pre-built cycle of frames: garbage JSON, oversized frames, 5,000-char
 * nested `<b>` bombs addressed to the good recipients, and typing-indicator spam. When the server
 * closes it, it reconnects (bounded: at most `maxReconnectsPerSec`), as a persistent attacker would.
 * Everything is pre-masked; a tick writes slices of one big buffer, so the attacker is cheap.
 */
import { Kind, authOnOpen, sioConnect, SIO_PONG, classify, chatText, typingText, mintToken } from '../lib/proto.js';
import { RawConn, buildFrame } from '../lib/wire.js';
import { send, waitCmd, cpuMs, startLoad, type TargetConfig } from '../lib/worker.js';

export interface AttackConfig extends TargetConfig {
  attackerId: string;
  victims: string[];
  source: string;
  durationMs: number;
  framesPerSec: number;
  oversizeBytes: number;
  bombChars: number;
  maxReconnectsPerSec: number;
  maxBufferedBytes: number;
}

const { cfg, proto, path } = await startLoad<AttackConfig>();
const token = await mintToken(cfg.secret, cfg.attackerId);
const KEY = Buffer.from([0x5a, 0x17, 0xc3, 0x88]);

// ---- the cycle: 200 frames, built once
const sio = proto === 'socketio';
const garbage = sio
  ? ['42[garbage', '42{"a":', '4', '42["chat_message",{"recipientId":', '9999', '42["__proto__",{"polluted":true}]']
  : ['{"type":"chat_message","recipientId":', 'not json at all', '{"__proto__":{"admin":true},"type":"auth"}', '[1,2,3]', '{"type":"nope"}', '\u0000\u0001\u0002'];
const bomb = '<b>'.repeat(Math.floor(cfg.bombChars / 3)) + 'x'.repeat(cfg.bombChars % 3);
const kinds: { kind: string; frame: Buffer }[] = [];
for (let i = 0; i < 200; i++) {
  const victim = cfg.victims[i % cfg.victims.length]!;
  let kind: string;
  let text: string;
  if (i === 199) {
    kind = 'oversized';
    const big = 'A'.repeat(cfg.oversizeBytes);
    text = chatText(proto, victim, big);
  } else if (i % 5 === 0 || i % 5 === 3) {
    kind = 'garbage';
    text = garbage[i % garbage.length]!;
  } else if (i % 5 === 1) {
    kind = 'bomb';
    text = chatText(proto, victim, bomb, `atk${i}`);
  } else {
    kind = 'typing';
    text = typingText(proto, victim);
  }
  kinds.push({ kind, frame: buildFrame(text, KEY) });
}
const cycle = Buffer.concat(kinds.map((k) => k.frame));
const bounds: number[] = [0];
for (const k of kinds) bounds.push(bounds[bounds.length - 1]! + k.frame.length);

// ---- state
const stats = {
  connects: 0,
  refusedHttp: {} as Record<string, number>,
  authOk: 0,
  authFail: 0,
  closes: {} as Record<string, number>,
  framesSent: 0,
  bytesSent: 0,
  sentByKind: {} as Record<string, number>,
  serverFrames: {} as Record<string, number>,
  ticksSkippedBackpressure: 0,
  reconnectsThrottled: 0,
};
let conn: RawConn | null = null;
let authed = false;
let pos = 0; // index into the cycle
let stopping = false;
let lastConnect = 0;
const minGap = 1000 / cfg.maxReconnectsPerSec;

function connect(): void {
  if (stopping) return;
  const t = performance.now();
  const wait = lastConnect + minGap - t;
  if (wait > 0) {
    stats.reconnectsThrottled++;
    setTimeout(connect, wait);
    return;
  }
  lastConnect = t;
  stats.connects++;
  authed = false;
  conn = new RawConn(
      { host: cfg.host, port: cfg.port, path, origin: cfg.origin, localAddress: cfg.source },
      {
        onOpen(c) {
          const a = authOnOpen(proto, token, cfg.attackerId);
          if (a !== null) c.sendText(a);
        },
        onText(c, buf, s, e) {
          const kind = classify(proto, buf, s, e);
          if (kind === Kind.SioOpen) c.sendText(sioConnect(token));
          else if (kind === Kind.SioPing) c.sendText(SIO_PONG);
          else if (kind === Kind.AuthOk && !authed) {
            authed = true;
            stats.authOk++;
          } else if (kind === Kind.AuthFail) stats.authFail++;
          else {
            const k = ['other', 'auth_ok', 'auth_fail', 'chat', 'sent', 'error', 'rate_limited', 'sio_open', 'sio_ping', 'typing'][kind] ?? 'other';
            stats.serverFrames[k] = (stats.serverFrames[k] ?? 0) + 1;
          }
        },
        onClose(c) {
          if (c.httpStatus && c.httpStatus !== 101) stats.refusedHttp[c.httpStatus] = (stats.refusedHttp[c.httpStatus] ?? 0) + 1;
          else {
            const k = String(c.closeCode || c.error || 'tcp');
            stats.closes[k] = (stats.closes[k] ?? 0) + 1;
          }
          conn = null;
          authed = false;
          setImmediate(connect);
        },
      },
  );
}

const perTick = Math.max(1, Math.round(cfg.framesPerSec / 100));
function tick(): void {
  const c = conn;
  if (!c || !c.open || !authed) return;
  if (c.sock.writableLength > cfg.maxBufferedBytes) {
    stats.ticksSkippedBackpressure++;
    return;
  }
  let left = perTick;
  while (left > 0) {
    const k = Math.min(left, kinds.length - pos);
    c.write(cycle.subarray(bounds[pos]!, bounds[pos + k]!));
    stats.bytesSent += bounds[pos + k]! - bounds[pos]!;
    for (let j = pos; j < pos + k; j++) {
      const kind = kinds[j]!.kind;
      stats.sentByKind[kind] = (stats.sentByKind[kind] ?? 0) + 1;
    }
    stats.framesSent += k;
    left -= k;
    pos = (pos + k) % kinds.length;
  }
}

send({ ev: 'ready' });
await waitCmd('go');
const cpu0 = process.cpuUsage();
const t0 = performance.now();
connect();
const timer = setInterval(tick, 10);
await new Promise((r) => setTimeout(r, cfg.durationMs));
stopping = true;
clearInterval(timer);
const cpu = cpuMs(cpu0);
const elapsed = performance.now() - t0;
(conn as RawConn | null)?.destroy();
send({
  ev: 'result',
  result: { ...stats, elapsedMs: Math.round(elapsed), offeredFramesPerSec: cfg.framesPerSec, framesPerSec: (stats.framesSent * 1000) / elapsed, cpu, cpuPct: (cpu.total / elapsed) * 100 },
});
setTimeout(() => process.exit(0), 100);
