/**
 * Relay load generator (one process): N sender → recipient pairs of authenticated raw clients.
 *
 * Closed loop (default): each sender keeps at most `window` messages in flight, "in flight" meaning
 * sent and not yet seen by its recipient (the generator sees both ends, so no server ack is
 * needed and every server is driven the same way). Paced (`pacedRate`): each sender offers that
 * many messages per second (still capped by the window) — used for the good clients of the
 * attack scenario, which must stay within Rampart's default rate limits.
 *
 * Each message carries its send time (µs, this process's clock) and a sequence number in fixed-width
 * digit slots of a pre-masked frame template; the recipient reads the time back from the delivered
 * frame and records the latency. Senders write all the frames one event-loop turn allows in one
 * write. Rampart recipients ack delivered ids in batches, as a real client would.
 */
import { Kind, authOnOpen, sioConnect, SIO_PONG, chatText, classify, ackText, mintTokens } from '../lib/proto.js';
import { FrameTemplate, RawConn, buildFrame, fieldStart, readDigits } from '../lib/wire.js';
import { Samples, summarize } from '../lib/stats.js';
import { send, waitCmd, measureWindow, openMany, sourceAddress, startLoad, type TargetConfig } from '../lib/worker.js';

export interface RelayConfig extends TargetConfig {
  pairs: { s: string; r: string }[];
  window: number;
  warmupMs: number;
  measureMs: number;
  drainMs: number;
  contentBytes: number;
  pacedRate?: number;
  ackBatch: number;
  ackFlushMs: number;
  sources: string[];
  connectConcurrency: number;
  stallMs: number;
  /** Recipients connect here (another node of a cluster); senders to `port`. Default: `port`. */
  recipientPort?: number;
}

const TS = '################'; // 16 digits: send time, µs
const SEQ = '##########'; // 10 digits
const CONTENT = Buffer.from('"content":"Q');
const POS = Buffer.from('{"pos":');

/** The `pos` a v2 timeline frame starts with (`{"pos":N,`), or 0. */
function readPos(buf: Buffer, start: number, end: number): number {
  if (end - start < POS.length + 2 || buf.compare(POS, 0, POS.length, start, start + POS.length) !== 0) return 0;
  let pos = 0;
  for (let i = start + POS.length; i < end; i++) {
    const c = buf[i]! - 48;
    if (c < 0 || c > 9) break;
    pos = pos * 10 + c;
  }
  return pos;
}
const CMID = Buffer.from('"clientMsgId":"m');
const RING = 4096;

interface Sender {
  i: number;
  conn: RawConn | null;
  tpl: FrameTemplate | null;
  inflight: number;
  seq: number;
  issued: number;
  ready: boolean;
  lastProgress: number;
  phase0: number;
  sentAt: Float64Array;
}
interface Recipient {
  conn: RawConn | null;
  sender: Sender;
  /** Timeline positions received and not yet acknowledged (acks are cumulative: `upTo` the highest). */
  acks: number[];
}

const { cfg, proto, path } = await startLoad<RelayConfig>();

const now = () => performance.now();

// ---- tokens
const allIds = cfg.pairs.flatMap((p) => [p.s, p.r]);
const tokens = await mintTokens(cfg.secret, allIds);

// ---- state
const senders: Sender[] = cfg.pairs.map((_, i) => ({
  i, conn: null, tpl: null, inflight: 0, seq: 0, issued: 0, ready: false, lastProgress: 0, phase0: 0,
  sentAt: new Float64Array(RING),
}));
const recipients: Recipient[] = cfg.pairs.map((_, i) => ({ conn: null, sender: senders[i]!, acks: [] }));
const lat = new Samples();
const storeLat = new Samples();
let phase = -1; // -1 connecting, 0 warmup, 1 measuring, 2 draining
let sentMeasured = 0;
let deliveredMeasured = 0;
let deliveredTotal = 0;
let sentTotal = 0;
let foreign = 0;
let lost = 0;
let acksSent = 0;
const serverFrames: Record<string, number> = {};
const closes: Record<string, number> = {};
let authFailed = 0;

function count(map: Record<string, number>, k: string | number): void {
  map[k] = (map[k] ?? 0) + 1;
}

const pad = Math.max(0, cfg.contentBytes - 1 - TS.length - 1 - SEQ.length);
const contentTpl = `Q${TS}S${SEQ}${'a'.repeat(pad)}`;

// ---- pump: once per event-loop turn, every ready sender writes what its window allows
let pumpScheduled = false;
function schedulePump(): void {
  if (!pumpScheduled) {
    pumpScheduled = true;
    setImmediate(pump);
  }
}
function sendBatch(s: Sender, k: number, t: number): void {
  const tpl = s.tpl!;
  const out = Buffer.allocUnsafe(k * tpl.length);
  let off = 0;
  const ts = Math.round(t * 1000);
  for (let j = 0; j < k; j++) {
    const seq = ++s.seq;
    off = tpl.fill(out, off, ts, seq, seq);
    s.sentAt[seq % RING] = t;
  }
  if (s.inflight === 0) s.lastProgress = t;
  s.inflight += k;
  s.issued += k;
  sentTotal += k;
  if (phase === 1) sentMeasured += k;
  s.conn!.write(out);
}
function pump(): void {
  pumpScheduled = false;
  if (phase < 0 || phase > 1 || cfg.pacedRate) return;
  const t = now();
  for (const s of senders) {
    if (!s.ready) continue;
    s.ready = false;
    const k = cfg.window - s.inflight;
    if (k > 0 && s.conn?.open) sendBatch(s, k, t);
  }
}
function pacedTick(): void {
  if (phase < 0 || phase > 1) return;
  const t = now();
  const rate = cfg.pacedRate!;
  for (const s of senders) {
    if (!s.conn?.open || t < s.phase0) continue;
    const due = Math.floor(((t - s.phase0) * rate) / 1000) + 1 - s.issued;
    const k = Math.min(due, cfg.window - s.inflight);
    if (k > 0) sendBatch(s, k, t);
  }
}

function flushAcks(min: number): void {
  for (const r of recipients) {
    if (r.acks.length >= min && r.acks.length > 0 && r.conn?.open) {
      const upTo = Math.max(...r.acks);
      r.acks.length = 0;
      r.conn.write(buildFrame(ackText(upTo), r.conn.key));
      acksSent++;
    }
  }
}

// ---- receive paths
function onRecipientText(r: Recipient, buf: Buffer, start: number, end: number): void {
  const kind = classify(proto, buf, start, end);
  if (kind === Kind.Chat) {
    if (proto === 'rampart') {
      const pos = readPos(buf, start, end);
      if (pos > 0) {
        r.acks.push(pos);
        if (r.acks.length >= cfg.ackBatch) schedulePump2();
      }
    }
    const c = fieldStart(buf, CONTENT, start, end);
    const ts = c > 0 ? readDigits(buf, c, 16) : NaN;
    if (Number.isNaN(ts)) {
      foreign++;
      return;
    }
    deliveredTotal++;
    const s = r.sender;
    if (s.inflight > 0) s.inflight--;
    const t = now();
    s.lastProgress = t;
    if (phase === 1) {
      deliveredMeasured++;
      lat.add(Math.round(t * 1000) - ts);
    }
    if (!s.ready && !cfg.pacedRate) {
      s.ready = true;
      schedulePump();
    }
    return;
  }
  if (kind === Kind.SioPing) {
    r.conn?.sendText(SIO_PONG);
    return;
  }
  count(serverFrames, `recipient_${kindName(kind)}`);
}
let ackPumpScheduled = false;
function schedulePump2(): void {
  if (!ackPumpScheduled) {
    ackPumpScheduled = true;
    setImmediate(() => {
      ackPumpScheduled = false;
      flushAcks(cfg.ackBatch);
    });
  }
}

function onSenderText(s: Sender, buf: Buffer, start: number, end: number): void {
  const kind = classify(proto, buf, start, end);
  if (kind === Kind.Sent) {
    if (phase === 1) {
      const at = fieldStart(buf, CMID, start, end);
      if (at > 0) {
        const seq = readDigits(buf, at, 10);
        if (!Number.isNaN(seq) && s.seq - seq < RING) storeLat.add(Math.round((now() - s.sentAt[seq % RING]!) * 1000));
      }
    }
    return;
  }
  if (kind === Kind.SioPing) {
    s.conn?.sendText(SIO_PONG);
    return;
  }
  count(serverFrames, `sender_${kindName(kind)}`);
  if (kind === Kind.Error || kind === Kind.RateLimited) {
    // the message was refused: it will never be delivered, free its window slot
    if (s.inflight > 0) s.inflight--;
    lost++;
    if (!s.ready && !cfg.pacedRate) {
      s.ready = true;
      schedulePump();
    }
  }
}
function kindName(k: number): string {
  return ['other', 'auth_ok', 'auth_fail', 'chat', 'sent', 'error', 'rate_limited', 'sio_open', 'sio_ping', 'typing'][k] ?? 'other';
}

// ---- connect everyone (recipients first, so no message is sent to an absent user)
function connect(idx: number, token: string, userId: string, onReady: (c: RawConn) => void, onText: (c: RawConn, b: Buffer, s: number, e: number) => void, settle: (ok: boolean) => void, port = cfg.port): RawConn {
  let authed = false;
  return new RawConn(
    { host: cfg.host, port, path, origin: cfg.origin, localAddress: sourceAddress(cfg.sources, idx) },
    {
      onOpen(c) {
        const a = authOnOpen(proto, token, userId);
        if (a !== null) c.sendText(a);
      },
      onText(c, buf, start, end) {
        if (authed) return onText(c, buf, start, end);
        const kind = classify(proto, buf, start, end);
        if (kind === Kind.SioOpen) c.sendText(sioConnect(token));
        else if (kind === Kind.SioPing) c.sendText(SIO_PONG);
        else if (kind === Kind.AuthOk) {
          authed = true;
          onReady(c);
          settle(true);
        } else if (kind === Kind.AuthFail) {
          authFailed++;
          settle(false);
          c.close();
        }
      },
      onClose(c) {
        count(closes, c.httpStatus && c.httpStatus !== 101 ? `http_${c.httpStatus}` : c.closeCode || c.error || 'tcp');
        settle(false);
      },
    },
  );
}

const n = cfg.pairs.length;
const r1 = await openMany(n, cfg.connectConcurrency, (i, settle) => {
  const r = recipients[i]!;
  return connect(2 * i + 1, tokens[2 * i + 1]!, cfg.pairs[i]!.r, (c) => (r.conn = c), (_c, b, s, e) => onRecipientText(r, b, s, e), settle, cfg.recipientPort ?? cfg.port);
}, 30000);
const s1 = await openMany(n, cfg.connectConcurrency, (i, settle) => {
  const s = senders[i]!;
  return connect(2 * i, tokens[2 * i]!, cfg.pairs[i]!.s, (c) => {
    s.conn = c;
    s.tpl = new FrameTemplate(chatText(proto, cfg.pairs[i]!.r, contentTpl, `m${SEQ}`), proto === 'rampart' ? [TS, SEQ, SEQ] : [TS, SEQ], c.key);
  }, (_c, b, st, e) => onSenderText(s, b, st, e), settle);
}, 30000);

send({ ev: 'ready', recipients: r1, senders: s1 });
await waitCmd('go');

// ---- run
const t0 = now();
phase = 0;
const ackTimer = setInterval(() => flushAcks(1), cfg.ackFlushMs);
const stallTimer = setInterval(() => {
  const t = now();
  for (const s of senders) {
    if (s.inflight > 0 && t - s.lastProgress > cfg.stallMs) {
      lost += s.inflight;
      s.inflight = 0;
      s.lastProgress = t;
      if (!cfg.pacedRate) s.ready = true;
    }
  }
  schedulePump();
}, 250);
let pacedTimer: NodeJS.Timeout | null = null;
if (cfg.pacedRate) {
  const period = 1000 / cfg.pacedRate;
  for (const s of senders) s.phase0 = t0 + Math.random() * period;
  pacedTimer = setInterval(pacedTick, 5);
} else {
  for (const s of senders) s.ready = true;
  schedulePump();
}

const { measuredMs, cpu } = await measureWindow(cfg, (p) => (phase = p));

// ---- drain: stop sending, wait for what is in flight
const drainEnd = now() + cfg.drainMs;
while (now() < drainEnd && senders.some((s) => s.inflight > 0)) await sleep(20);
const inflightLeft = senders.reduce((a, s) => a + s.inflight, 0);
flushAcks(1);
clearInterval(ackTimer);
clearInterval(stallTimer);
if (pacedTimer) clearInterval(pacedTimer);

const result = {
  ok: r1.ok === n && s1.ok === n,
  pairs: n,
  connected: { recipients: r1.ok, senders: s1.ok },
  authFailed,
  measuredMs: Math.round(measuredMs),
  sent: sentMeasured,
  delivered: deliveredMeasured,
  rate: (deliveredMeasured * 1000) / measuredMs,
  offeredRate: (sentMeasured * 1000) / measuredMs,
  latency: summarize(lat),
  storeLatency: proto === 'rampart' ? summarize(storeLat) : null,
  sentTotal,
  deliveredTotal,
  lost,
  inflightLeft,
  foreign,
  acksSent,
  serverFrames,
  closes,
  cpu,
  cpuPct: (cpu.total / measuredMs) * 100,
  usPerMessage: deliveredMeasured ? (cpu.total * 1000) / deliveredMeasured : null,
  warmupMs: cfg.warmupMs,
  elapsedMs: Math.round(now() - t0),
};
send({ ev: 'result', result });
for (const s of senders) s.conn?.close();
for (const r of recipients) r.conn?.close();
await sleep(200);
process.exit(0);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
