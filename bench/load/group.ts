/**
 * Group load generator (one process): `members` authenticated clients, one group holding all of
 * them (created by member 0 with `create_group`), and `senders` of them sending closed-loop into
 * it. A message is in flight until every other member received it; each sender keeps at most
 * `window` in flight. Every delivery is one latency sample (per-recipient delivery latency), and
 * a message counts once all its deliveries arrived. Members ack their timeline position as a real
 * client would (cumulative `upTo`, every `ackFlushMs`).
 */
import { Kind, authOnOpen, classify, ackText, mintTokens } from '../lib/proto.js';
import { FrameTemplate, RawConn, buildFrame, fieldStart, readDigits } from '../lib/wire.js';
import { Samples, summarize } from '../lib/stats.js';
import { send, waitCmd, measureWindow, openMany, sourceAddress, startLoad, type TargetConfig } from '../lib/worker.js';

export interface GroupConfig extends TargetConfig {
  members: string[];
  senders: number;
  window: number;
  warmupMs: number;
  measureMs: number;
  drainMs: number;
  contentBytes: number;
  ackFlushMs: number;
  sources: string[];
  connectConcurrency: number;
  stallMs: number;
}

const TS = '################'; // 16 digits: send time, µs
const SEQ = '##########';
const RING = 4096;
const CONTENT = Buffer.from('"content":"Q');
const POS = Buffer.from('{"pos":');

const { cfg, proto, path } = await startLoad<GroupConfig>();
const now = () => performance.now();
const tokens = await mintTokens(cfg.secret, cfg.members);
const n = cfg.members.length;
const others = n - 1;

interface Member {
  i: number;
  conn: RawConn | null;
  maxPos: number;
  ackedPos: number;
}
interface Sender {
  m: Member;
  tpl: FrameTemplate | null;
  seq: number;
  inflight: number;
  ready: boolean;
  lastProgress: number;
  /** Deliveries still expected, and the send time, per seq (ring). */
  remaining: Int32Array;
  sentAt: Float64Array;
}

const members: Member[] = cfg.members.map((_, i) => ({ i, conn: null, maxPos: 0, ackedPos: 0 }));
const senders: Sender[] = members.slice(0, cfg.senders).map((m) => ({
  m, tpl: null, seq: 0, inflight: 0, ready: false, lastProgress: 0, remaining: new Int32Array(RING), sentAt: new Float64Array(RING),
}));
const lat = new Samples();
let phase = -1;
let completedMeasured = 0;
let deliveredMeasured = 0;
let sentMeasured = 0;
let lost = 0;
let foreign = 0;
let authFailed = 0;
const refused: Record<string, number> = {};
let conversationId = '';
let groupReply: ((id: string) => void) | null = null;

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

function onText(m: Member, buf: Buffer, start: number, end: number): void {
  const pos = readPos(buf, start, end);
  if (pos > m.maxPos) m.maxPos = pos;
  const kind = classify(proto, buf, start, end);
  if (kind === Kind.Chat) {
    const c = fieldStart(buf, CONTENT, start, end);
    const ts = c > 0 ? readDigits(buf, c, 16) : NaN;
    const seq = c > 0 ? readDigits(buf, c + 17, 10) : NaN;
    const from = c > 0 ? readDigits(buf, c + 28, 3) : NaN;
    const s = senders[from];
    if (Number.isNaN(ts) || Number.isNaN(seq) || s === undefined || from === m.i) {
      foreign++;
      return;
    }
    const t = now();
    if (phase === 1) {
      deliveredMeasured++;
      lat.add(Math.round(t * 1000) - ts);
    }
    const slot = seq % RING;
    if (s.seq - seq < RING && s.remaining[slot]! > 0 && --s.remaining[slot]! === 0) {
      s.inflight--;
      s.lastProgress = t;
      if (phase === 1) completedMeasured++;
      if (!s.ready) {
        s.ready = true;
        schedulePump();
      }
    }
    return;
  }
  if (kind === Kind.Error || kind === Kind.RateLimited) {
    refused[kind === Kind.Error ? 'error' : 'rate_limited'] = (refused[kind === Kind.Error ? 'error' : 'rate_limited'] ?? 0) + 1;
    return;
  }
  if (kind === Kind.Other && groupReply !== null) {
    const f = JSON.parse(buf.toString('utf8', start, end)) as { type?: string; conversationId?: string; requestId?: string };
    if (f.type === 'group_updated' && f.requestId === 'g' && f.conversationId) groupReply(f.conversationId);
  }
}

let pumpScheduled = false;
function schedulePump(): void {
  if (!pumpScheduled) {
    pumpScheduled = true;
    setImmediate(pump);
  }
}
function pump(): void {
  pumpScheduled = false;
  if (phase < 0 || phase > 1) return;
  const t = now();
  for (const s of senders) {
    if (!s.ready || !s.m.conn?.open) continue;
    s.ready = false;
    const k = cfg.window - s.inflight;
    if (k <= 0) continue;
    const tpl = s.tpl!;
    const out = Buffer.allocUnsafe(k * tpl.length);
    let off = 0;
    const ts = Math.round(t * 1000);
    for (let j = 0; j < k; j++) {
      const seq = ++s.seq;
      off = tpl.fill(out, off, ts, seq, seq);
      s.remaining[seq % RING] = others;
      s.sentAt[seq % RING] = t;
    }
    if (s.inflight === 0) s.lastProgress = t;
    s.inflight += k;
    if (phase === 1) sentMeasured += k;
    s.m.conn.write(out);
  }
}

function flushAcks(): void {
  for (const m of members) {
    if (m.maxPos > m.ackedPos && m.conn?.open) {
      m.ackedPos = m.maxPos;
      m.conn.write(buildFrame(ackText(m.maxPos), m.conn.key));
    }
  }
}

// ---- connect everyone
const opened = await openMany(n, cfg.connectConcurrency, (i, settle) => {
  const m = members[i]!;
  let authed = false;
  return new RawConn(
    { host: cfg.host, port: cfg.port, path, origin: cfg.origin, localAddress: sourceAddress(cfg.sources, i) },
    {
      onOpen(c) {
        c.sendText(authOnOpen(proto, tokens[i]!, cfg.members[i]!)!);
      },
      onText(c, buf, s, e) {
        if (authed) return onText(m, buf, s, e);
        const kind = classify(proto, buf, s, e);
        if (kind === Kind.AuthOk) {
          authed = true;
          m.conn = c;
          settle(true);
        } else if (kind === Kind.AuthFail) {
          authFailed++;
          settle(false);
        }
      },
      onClose() {
        settle(false);
      },
    },
  );
}, 60_000);

// ---- the group
const owner = members[0]!.conn;
if (owner) {
  const got = new Promise<string>((resolve) => (groupReply = resolve));
  owner.sendText(JSON.stringify({ type: 'create_group', name: 'bench', memberIds: cfg.members.slice(1), requestId: 'g' }));
  conversationId = await Promise.race([got, new Promise<string>((r) => setTimeout(() => r(''), 15_000))]);
  groupReply = null;
}
const pad = Math.max(0, cfg.contentBytes - 1 - TS.length - 1 - SEQ.length - 4);
for (const s of senders) {
  if (!s.m.conn || !conversationId) continue;
  const content = `Q${TS}S${SEQ}P${String(s.m.i).padStart(3, '0')}${'a'.repeat(pad)}`;
  s.tpl = new FrameTemplate(JSON.stringify({ type: 'chat_message', conversationId, content, clientMsgId: `m${SEQ}` }), [TS, SEQ, SEQ], s.m.conn.key);
}
send({ ev: 'ready', members: opened, conversationId });
await waitCmd('go');

const t0 = now();
phase = 0;
const ackTimer = setInterval(flushAcks, cfg.ackFlushMs);
const stallTimer = setInterval(() => {
  const t = now();
  for (const s of senders) {
    if (s.inflight > 0 && t - s.lastProgress > cfg.stallMs) {
      lost += s.inflight;
      s.inflight = 0;
      s.remaining.fill(0);
      s.lastProgress = t;
      s.ready = true;
    }
  }
  schedulePump();
}, 250);
for (const s of senders) s.ready = true;
schedulePump();

const { measuredMs, cpu } = await measureWindow(cfg, (p) => (phase = p));
const drainEnd = now() + cfg.drainMs;
while (now() < drainEnd && senders.some((s) => s.inflight > 0)) await sleep(20);
flushAcks();
clearInterval(ackTimer);
clearInterval(stallTimer);

send({
  ev: 'result',
  result: {
    ok: opened.ok === n && conversationId !== '',
    members: n,
    senders: senders.length,
    window: cfg.window,
    connected: opened.ok,
    authFailed,
    measuredMs: Math.round(measuredMs),
    sent: sentMeasured,
    completed: completedMeasured,
    delivered: deliveredMeasured,
    rate: (completedMeasured * 1000) / measuredMs,
    deliveriesPerSec: (deliveredMeasured * 1000) / measuredMs,
    latency: summarize(lat),
    lost,
    foreign,
    refused,
    inflightLeft: senders.reduce((a, s) => a + s.inflight, 0),
    cpu,
    cpuPct: (cpu.total / measuredMs) * 100,
    elapsedMs: Math.round(now() - t0),
  },
});
for (const m of members) m.conn?.close();
await sleep(200);
process.exit(0);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
