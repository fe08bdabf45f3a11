/**
 * Turns a results object into the generated part of docs/benchmarks.md (between the markers; the
 * prose above them is kept) and an SVG chart, bench/results/benchmarks.svg. Nothing here is typed
 * by hand: every figure comes from the results object.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const START = '<!-- bench:generated:start — written by `npm run bench`; do not edit by hand -->';
export const END = '<!-- bench:generated:end -->';

type Spread = { median: number | null; min: number | null; max: number | null; runs: (number | null)[] };

const LABELS: Record<string, string> = {
  ws_plain: 'ws bare relay',
  ws_cork: 'ws relay, corked per turn',
  ws_jwt: 'ws + Origin + jose JWT',
  socketio: 'Socket.IO + jose io.use',
  rampart: 'Rampart',
};
const COLORS: Record<string, string> = {
  ws_plain: '#8c8c8c',
  ws_cork: '#5f6b7a',
  ws_jwt: '#b08d57',
  socketio: '#3f7fbf',
  rampart: '#c0392b',
};

function label(key: string, out: any): string {
  const [t, v] = key.split(':');
  let l = LABELS[t!] ?? t!;
  if (t === 'rampart' && out.meta.rampart.mode === 'mock') l = 'Rampart MOCK (not Rampart)';
  return v ? `${l} — ${v}` : l;
}

function n(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(Math.max(0, digits - 2));
  if (a >= 1) return x.toFixed(Math.max(0, digits - 1));
  return x.toPrecision(digits);
}
function sp(s: Spread | undefined, f: (x: number | null) => string = (x) => n(x)): string {
  if (!s || s.median === null) return 'n/a';
  if (s.runs.filter((r) => r !== null).length <= 1) return f(s.median);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}
const kb = (x: number | null) => (x === null ? 'n/a' : n(x / 1024));
const mb = (x: number | null) => (x === null ? 'n/a' : n(x / 2 ** 20));

function status(runs: any[]): string | null {
  const skipped = runs.find((r) => r.skipped);
  if (skipped) return `not run: ${skipped.skipped}`;
  const errs = runs.filter((r) => r.error);
  if (errs.length === runs.length) return `failed: ${errs[0].error}`;
  return null;
}

/** A mark on generator figures when the generator itself neared a full core in any repeat. */
function genBound(s: any): string {
  const mx = s?.cpuPct?.max;
  return typeof mx === 'number' && mx >= 90 ? ' ⚠ generator ≥ 90 % of its core' : '';
}
const OTHER_NOTE =
  '_Other processes CPU %: the machine\'s busy time over the measured window (/proc/stat, both cores) minus the server\'s and the load processes\' own; anything well above zero means something else ran on the machine during the measurement and the figures of that run are suspect._';

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

// ------------------------------------------------------------------ SVG
interface Bar {
  label: string;
  value: number | null;
  min: number | null;
  max: number | null;
  color: string;
  note?: string;
}
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
/** A round tick step giving about four intervals up to `x`. */
function niceStep(x: number): number {
  if (x <= 0) return 1;
  const raw = x / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
/** One horizontal bar panel (median bar, min–max whisker) at vertical offset y; returns [svg, height]. */
function panel(title: string, unit: string, bars: Bar[], y: number, width: number): [string, number] {
  const labelW = 230;
  const right = 90;
  const barH = 18;
  const gap = 8;
  const top = 28;
  const plotW = width - labelW - right;
  const dmax = Math.max(...bars.map((b) => Math.max(b.value ?? 0, b.max ?? 0)), 0);
  const step = niceStep(dmax);
  const ticks = Math.max(1, Math.ceil(dmax / step));
  const vmax = step * ticks;
  const h = top + bars.length * (barH + gap) + 24;
  const x = (v: number) => labelW + (v / vmax) * plotW;
  let s = `<g transform="translate(0,${y})">`;
  s += `<text x="10" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`;
  for (let i = 0; i <= ticks; i++) {
    const v = step * i;
    const gx = x(v);
    s += `<line x1="${gx.toFixed(1)}" y1="${top - 4}" x2="${gx.toFixed(1)}" y2="${h - 20}" stroke="#e3e3e3"/>`;
    s += `<text x="${gx.toFixed(1)}" y="${h - 6}" font-size="10" text-anchor="middle" fill="#666">${esc(n(v))}</text>`;
  }
  bars.forEach((b, i) => {
    const by = top + i * (barH + gap);
    s += `<text x="${labelW - 8}" y="${by + barH - 5}" font-size="12" text-anchor="end">${esc(b.label)}</text>`;
    if (b.value === null) {
      s += `<text x="${labelW + 4}" y="${by + barH - 5}" font-size="11" fill="#999">${esc(b.note ?? 'not run')}</text>`;
      return;
    }
    s += `<rect x="${labelW}" y="${by}" width="${Math.max(1, x(b.value) - labelW).toFixed(1)}" height="${barH}" fill="${b.color}"/>`;
    if (b.min !== null && b.max !== null && b.max > b.min) {
      const cy = by + barH / 2;
      s += `<line x1="${x(b.min).toFixed(1)}" y1="${cy}" x2="${x(b.max).toFixed(1)}" y2="${cy}" stroke="#000" stroke-width="1.2"/>`;
      s += `<line x1="${x(b.min).toFixed(1)}" y1="${cy - 5}" x2="${x(b.min).toFixed(1)}" y2="${cy + 5}" stroke="#000"/>`;
      s += `<line x1="${x(b.max).toFixed(1)}" y1="${cy - 5}" x2="${x(b.max).toFixed(1)}" y2="${cy + 5}" stroke="#000"/>`;
    }
    s += `<text x="${(x(Math.max(b.value, b.max ?? 0)) + 6).toFixed(1)}" y="${by + barH - 5}" font-size="11">${esc(n(b.value))} ${esc(unit)}</text>`;
  });
  s += '</g>';
  return [s, h];
}

function chart(out: any): string {
  const width = 820;
  const panels: [string, string, Bar[]][] = [];
  const S = out.summary ?? {};
  const bar = (scn: string, key: string, p: string, scale = 1): Bar => {
    const s: Spread | undefined = S[scn]?.[key]?.[p];
    const st = status(out.runs?.[scn]?.[key] ?? []);
    const f = (x: number | null | undefined) => (x === null || x === undefined ? null : x * scale);
    return { label: label(key, out), value: f(s?.median), min: f(s?.min), max: f(s?.max), color: COLORS[key.split(':')[0]!] ?? '#777', note: st ?? undefined };
  };
  if (S.relay) {
    const keys = Object.keys(S.relay);
    panels.push(['Relay throughput — delivered messages per second (median, min–max)', 'msg/s', keys.map((k) => bar('relay', k, 'rate'))]);
    panels.push(['Relay latency — p99 (ms, lower is better)', 'ms', keys.map((k) => bar('relay', k, 'latency.p99_ms'))]);
  }
  if (S.handshake) {
    panels.push(['Handshake + auth — connections per second', 'conn/s', Object.keys(S.handshake).map((k) => bar('handshake', k, 'rate'))]);
  }
  if (S.idle) {
    const sizes: number[] = out.knobs.idle.sizes;
    const nmax = Math.max(...sizes);
    panels.push([
      `Idle authenticated connections — server RSS per connection at ${nmax.toLocaleString('en-US')} (KB, lower is better)`,
      'KB',
      Object.keys(S.idle).map((k) => {
        const s: Spread | undefined = S.idle[k]?.[String(nmax)]?.rssPerConn;
        const st = status(out.runs?.idle?.[k] ?? []);
        const f = (x: number | null | undefined) => (x === null || x === undefined ? null : x / 1024);
        return { label: label(k, out), value: f(s?.median), min: f(s?.min), max: f(s?.max), color: COLORS[k] ?? '#777', note: st ?? undefined };
      }),
    ]);
  }
  if (S.attack) {
    panels.push(['Under attack — good clients p99 latency, calm vs attack (ms)', 'ms', Object.keys(S.attack).map((k) => bar('attack', k, 'latency.p99_ms'))]);
  }
  let y = 40;
  let body = '';
  for (const [title, unit, bars] of panels) {
    const [s, h] = panel(title, unit, bars, y, width);
    body += s;
    y += h + 10;
  }
  const m = out.meta;
  const head =
    `<text x="10" y="22" font-size="15" font-weight="bold">Rampart benchmarks — ${esc(m.mode)} run, ${esc(m.date.slice(0, 10))}</text>` +
    `<text x="10" y="${y + 6}" font-size="10" fill="#666">${esc(`${m.cpus} × ${m.cpuModel}, Node ${m.node}, ${m.pinning ? `server pinned to ${m.pinning.server}, load to ${m.pinning.load}` : 'unpinned'}; bars: median of ${out.knobs.repeats} run(s), whiskers: min–max`)}</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 16}" viewBox="0 0 ${width} ${y + 16}" font-family="Helvetica, Arial, sans-serif"><rect width="100%" height="100%" fill="#fff"/>${head}${body}</svg>\n`;
}

// ------------------------------------------------------------------ Markdown
function section(out: any, jsonRel: string, svgRel: string): string {
  const m = out.meta;
  const k = out.knobs;
  const S = out.summary ?? {};
  const R = out.runs ?? {};
  const L: string[] = [];
  L.push(`_Generated ${m.date} by \`npm run bench\` (${m.mode} mode, ${k.repeats} repeat(s), ${m.durationSec} s in all). Raw figures: [\`${jsonRel}\`](../${jsonRel})._`);
  const disturbed = Object.values(R).flatMap((runs: any) => Object.values(runs).flat()).filter((r: any) => typeof r?.otherCpuPct === 'number' && r.otherCpuPct > (k.disturbedPct ?? 50)).length;
  if (disturbed) {
    L.push('');
    L.push(`> **${disturbed} run(s) kept in this result were disturbed** (other processes used more than ${k.disturbedPct ?? 50} % of a core while they were measured); see the "other processes CPU %" columns and treat their figures with care.`);
  }
  L.push('');
  L.push(
    table(
      ['machine', 'value'],
      [
        ['CPU', `${m.cpus} × ${m.cpuModel} (${m.arch})`],
        ['memory', `${m.memoryGiB} GiB`],
        ['kernel', m.kernel],
        ['Node', `${m.node} (V8 ${m.v8})`],
        ['pinning', m.pinning ? `server \`taskset -c\` ${m.pinning.server}; load generators ${m.pinning.load}` : 'none (taskset missing or < 2 cores)'],
        ['fd limit', `soft ${m.nofile.soft}, hard ${m.nofile.hard}`],
        ['libraries', Object.entries(m.deps).map(([d, v]) => `${d} ${v}`).join(', ')],
        ['Rampart', m.rampart.available ? `${m.rampart.label} (ws path \`${m.rampart.path}\`, logLevel ${m.rampart.logLevel})` : `not run — ${m.rampart.why}`],
      ],
    ),
  );
  L.push('');
  L.push(`![Benchmark chart](../${svgRel})`);
  L.push('');
  if (out.store) {
    const st = out.store;
    // Older result files have no page counts.
    const pagesOf = (k: keyof typeof st.us_per_message): string => String(st.wal_pages_per_message?.[k] ?? '—');
    // Older result files have no floor workloads.
    const floorRow = (k: 'floor_event' | 'floor_timeline' | 'floor_indexed', what: string): string[] => [
      what,
      String(st.us_per_message[k] ?? '—'),
      String(st.ratios[`${k}_vs_append`] ?? '—'),
      pagesOf(k),
    ];
    L.push('### Storage: µs per stored message (SQLite adapter vs a bare append, same disk, same run)');
    L.push('');
    L.push(
      table(
        ['workload (batches of 100)', 'µs / message', 'vs bare append', 'WAL pages / message'],
        [
          ['bare append-only table (one row per message)', String(st.us_per_message.bare), '1', pagesOf('bare')],
          ['direct message (event + 2 timeline entries + counters)', String(st.us_per_message.direct), String(st.ratios.store_dm_vs_append), pagesOf('direct')],
          ['… with a clientMsgId (dedupe key; the SDK always sends one)', String(st.us_per_message.direct_idempotent ?? '—'), String(st.ratios.store_dm_idempotent_vs_append ?? '—'), pagesOf('direct_idempotent')],
          ['100-member group message', String(st.us_per_message.group100), '—', pagesOf('group100')],
          ['… per recipient', String(st.group100_us_per_recipient), String(st.ratios.store_group100_per_recipient_vs_append), '—'],
          floorRow('floor_event', "model floor: one integer-keyed event row (bare statements, no adapter)"),
          floorRow('floor_timeline', '… plus the two per-user timeline entries a direct message needs'),
          floorRow('floor_indexed', '… plus the (conv, seq) index history and timeline reads need'),
        ],
      ),
    );
    L.push('');
  }
  L.push('### Headline ratios (median of the paired runs; min–max over the pairs)');
  L.push('');
  const rd = out.ratio_detail;
  const rr = (x: any) => (x?.median === null || x?.median === undefined ? 'n/a' : x.pairs.filter((p: any) => p !== null).length > 1 ? `${n(x.median)} (${n(x.min)}–${n(x.max)})` : n(x.median));
  L.push(
    table(
      ['key', 'meaning', 'value'],
      [
        ['`rampart_vs_ws_plain`', 'relay msg/s, Rampart ÷ bare ws relay', rr(rd.rampart_vs_ws_plain)],
        ['`rampart_vs_socketio`', 'relay msg/s, Rampart ÷ Socket.IO', rr(rd.rampart_vs_socketio)],
        ['`memory_vs_ws`', `RSS per idle authenticated connection at ${rd.memory_vs_ws.connections ?? 'n/a'}, Rampart ÷ bare ws`, rr(rd.memory_vs_ws)],
        ['`handshake_vs_ws`', 'connections + auth per second, Rampart ÷ bare ws', rr(rd.handshake_vs_ws)],
        ['`attack_p99_vs_calm`', "good clients' p99 under attack ÷ without attacker (Rampart)", rr(rd.attack_p99_vs_calm)],
        ...(rd.cluster_vs_single
          ? [['`cluster_vs_single`', `relay msg/s, two nodes (senders on one, recipients on the other; shared Redis + PostgreSQL) ÷ one PostgreSQL node: ${n(rd.cluster_vs_single.cross_node?.msgs_per_s)} vs ${n(rd.cluster_vs_single.single_pg?.msgs_per_s)} msg/s, p99 ${n(rd.cluster_vs_single.cross_node?.p99_ms)} vs ${n(rd.cluster_vs_single.single_pg?.p99_ms)} ms`, rr(rd.cluster_vs_single)]]
          : []),
        ...(rd.group100_msgs_per_s
          ? [['`group100_msgs_per_s`', `messages/s into one ${rd.group100_msgs_per_s.members}-member group (${rd.group100_msgs_per_s.senders} senders): ${n(rd.group100_msgs_per_s.deliveries_per_s)} deliveries/s, per-recipient p99 ${n(rd.group100_msgs_per_s.per_recipient_p99_ms)} ms`, n(rd.group100_msgs_per_s.median)]]
          : []),
        ...(rd.storm_recovery_s
          ? [['`storm_recovery_s`', `seconds until ${n(rd.storm_recovery_s.clients)} dropped clients are all authenticated again (backoff ${rd.storm_recovery_s.backoff?.baseMs} ms × 2^k, cap ${rd.storm_recovery_s.backoff?.capMs} ms, full jitter): ${n(rd.storm_recovery_s.attempts)} attempts, ${n(rd.storm_recovery_s.storage_transactions)} PostgreSQL transactions (${n(rd.storm_recovery_s.storage_per_reconnect)} per reconnect, peak ${n(rd.storm_recovery_s.storage_peak_per_s)}/s)`, n(rd.storm_recovery_s.median)]]
          : []),
      ],
    ),
  );
  L.push('');
  if (out.cpu_us_per_message && Object.keys(out.cpu_us_per_message).length) {
    L.push('### Per-message pipeline cost: server CPU µs per relayed message (median over the repeats)');
    L.push('');
    L.push(table(['server', 'server CPU µs / message'], Object.entries(out.cpu_us_per_message as Record<string, number | null>).map(([key, v]) => [S.relay?.[key] ? label(key, out) : key, n(v)])));
    L.push('');
    L.push('_The gap between Rampart on SQLite (file, WAL) and Rampart on SQLite in memory is the storage I/O share; what remains above the ws relays is the pipeline (parse, schema, authorization, sanitizing, timeline fan-out, serialization). The two-node figure counts both nodes\' CPU._');
    L.push('');
  }
  L.push(table(['metric', 'Rampart ÷ bare ws', 'Rampart ÷ Socket.IO'], out.comparisons.map((c: any) => [`${c.metric} (${c.higherIsBetter ? 'higher' : 'lower'} is better)`, n(c.vs_ws_plain), n(c.vs_socketio)])));
  L.push('');

  if (S.relay) {
    const r = k.relay;
    L.push('### 1. Relay throughput and latency');
    L.push('');
    L.push(`${r.pairs} sender → recipient pairs, window ${r.window} messages in flight per sender (sent, not yet delivered), ${r.contentBytes}-byte content; ${r.warmupMs} ms warm-up, ${r.measureMs} ms measured. Latency is send → delivery at the recipient, both ends in the generator. Figures: median (min–max) over the repeats.`);
    L.push('');
    const rows = Object.keys(S.relay).map((key) => {
      const s = S.relay[key];
      const st = status(R.relay[key]);
      if (st) return [label(key, out), st, '', '', '', '', '', '', ''];
      return [
        label(key, out),
        sp(s.rate),
        sp(s['latency.p50_ms']),
        sp(s['latency.p99_ms']),
        sp(s['latency.p999_ms']),
        `${sp(s['server.cpuPct'])} % · ${sp(s['server.usPerMessage'])} µs`,
        `${sp(s['cpuPct'])} % · ${sp(s['usPerMessage'])} µs${genBound(s)}`,
        sp(s.otherCpuPct),
        s['storeLatency.p50_ms']?.median !== null && s['storeLatency.p50_ms']?.median !== undefined ? `${sp(s['storeLatency.p50_ms'])} / ${sp(s['storeLatency.p99_ms'])}` : '—',
      ];
    });
    L.push(table(['server', 'delivered msg/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'server CPU · per msg', 'generator CPU · per msg', 'other processes CPU %', 'send → message_sent p50 / p99 ms'], rows));
    L.push('');
    L.push(OTHER_NOTE);
    L.push('');
  }
  if (S.idle) {
    L.push('### 2. Idle authenticated connections');
    L.push('');
    L.push(`Connections opened by ${Math.max(1, Math.ceil(Math.max(...k.idle.sizes) / k.idle.perWorker))} load processes (≤ ${k.idle.perWorker} sockets each), authenticated, then left idle. Per connection = (server RSS with N open − RSS before any) ÷ N, both after a forced full GC in the server (\`--expose-gc\` + SIGUSR2 probe); RSS from /proc/<pid>/status (VmRSS), heap from \`process.memoryUsage().heapUsed\`${m.rampart.available && m.rampart.mode !== 'mock' ? '; Rampart also by /metrics `nodejs_heap_size_used_bytes`' : ''}.`);
    L.push('');
    const rows: string[][] = [];
    for (const key of Object.keys(S.idle)) {
      const st = status(R.idle[key]);
      if (st) {
        rows.push([label(key, out), '', st, '', '', '']);
        continue;
      }
      for (const size of k.idle.sizes) {
        const s = S.idle[key][String(size)];
        rows.push([
          label(key, out),
          `${n(size)} (open: ${sp(s.open)})`,
          sp(s.rssPerConn, kb),
          sp(s.heapPerConn, kb),
          s.metricsHeapPerConn?.median !== null && s.metricsHeapPerConn?.median !== undefined ? sp(s.metricsHeapPerConn, kb) : '—',
          sp(s.rss, mb),
        ]);
      }
    }
    L.push(table(['server', 'connections', 'RSS per conn, KB', 'heap per conn, KB', '/metrics heap per conn, KB', 'server RSS, MB'], rows));
    L.push('');
  }
  if (S.handshake) {
    const h = k.handshake;
    L.push('### 3. Handshake + auth rate');
    L.push('');
    L.push(`${h.concurrency} lifecycles in flight: TCP connect → HTTP upgrade (Origin checked where the server checks it) → auth frame (JWT verified where the server verifies it) → auth_success → close handshake. ${h.users} distinct users' tokens, minted before the run; ${h.warmupMs} ms warm-up, ${h.measureMs} ms measured.`);
    L.push('');
    const rows = Object.keys(S.handshake).map((key) => {
      const s = S.handshake[key];
      const st = status(R.handshake[key]);
      if (st) return [label(key, out), st, '', '', '', '', '', ''];
      return [label(key, out), sp(s.rate), sp(s['authLatency.p50_ms']), sp(s['authLatency.p99_ms']), `${sp(s['server.cpuPct'])} % · ${sp(s['server.usPerConnection'])} µs`, `${sp(s['cpuPct'])} % · ${sp(s['usPerConnection'])} µs${genBound(s)}`, sp(s.otherCpuPct), sp(s.failed)];
    });
    L.push(table(['server', 'connections/s', 'connect → auth_success p50 ms', 'p99 ms', 'server CPU · per conn', 'generator CPU · per conn', 'other processes CPU %', 'failed'], rows));
    L.push('');
  }
  if (S.attack) {
    const a = k.attack;
    L.push('### 4. Under attack');
    L.push('');
    L.push(`${a.pairs * 2} good clients (${a.pairs} pairs), each sender paced at ${a.ratePerSender} msg/s (Rampart runs on its default limits here, which good clients respect), ${a.measureMs} ms measured. The attacker (one user, its own source address) offers ${a.framesPerSec} frames/s of a cycle of garbage JSON, 5,000-char nested \`<b>\` bombs to the good recipients, typing spam and one ${n(a.oversizeBytes / 1024)} KB oversized frame per 200, and reconnects when closed (≤ ${a.maxReconnectsPerSec}/s).`);
    L.push('');
    const rows = Object.keys(S.attack).map((key) => {
      const s = S.attack[key];
      const st = status(R.attack[key]);
      if (st) return [label(key, out), st, '', '', '', '', '', '', ''];
      const runs = R.attack[key].filter((r: any) => r.attacker);
      const att = runs.length ? runs[0].attacker : null;
      return [
        label(key, out),
        `${sp(s.rate)} / ${sp(s.offeredRate)}`,
        sp(s['latency.p50_ms']),
        sp(s['latency.p99_ms']),
        sp(s['server.cpuPct']),
        sp(s.otherCpuPct),
        sp(s.lost),
        sp(s.foreign),
        att ? `${sp(s['attacker.framesPerSec'])} frames/s, ${sp(s['attacker.connects'])} connects; closes ${esc(JSON.stringify(att.closes))}, refused ${esc(JSON.stringify(att.refusedHttp))} (run 1)` : '—',
      ];
    });
    L.push(table(['server — run', 'good delivered / offered msg/s', 'p50 ms', 'p99 ms', 'server CPU %', 'other processes CPU %', 'good msgs lost', 'attack frames delivered to good clients', 'attacker'], rows));
    L.push('');
  }
  const relayLike = (s: any): string[] => [sp(s.rate, (x) => n(x, 0)), sp(s['latency.p50_ms']), sp(s['latency.p99_ms']), `${sp(s['server.cpuPct'])} % · ${sp(s['server.usPerMessage'])} µs`, sp(s.otherCpuPct), sp(s.lost)];
  if (S.cluster) {
    const c = k.cluster;
    L.push('### 5. Two-node cluster');
    L.push('');
    L.push(`${c.pairs} pairs, window ${c.window}; senders connect to node A, recipients to node B; both nodes share one Redis and one PostgreSQL database (created for the run), and both run on the server core. The single-node row is the same load on one PostgreSQL node without Redis. Server CPU is both nodes together; PostgreSQL's and Redis's own CPU (all their processes) is its own column, not counted as other processes'.`);
    L.push('');
    L.push(table(['setup', 'delivered msg/s', 'p50 ms', 'p99 ms', 'server CPU · per msg', 'PostgreSQL + Redis CPU %', 'other processes CPU %', 'lost'], Object.keys(S.cluster).map((key) => {
      const cells = relayLike(S.cluster[key]);
      return [key.endsWith('cross_node') ? 'two nodes, cross-node' : 'one node, PostgreSQL', ...cells.slice(0, 4), sp(S.cluster[key].servicesCpuPct), ...cells.slice(4)];
    })));
    L.push('');
  }
  if (S.group) {
    const g = k.group;
    L.push('### 6. One 100-member group');
    L.push('');
    L.push(`${g.members} authenticated members of one group (SQLite, one node); ${g.senders} of them send closed-loop, at most ${g.window} messages in flight each (in flight: not yet received by every other member). A message counts when all ${g.members - 1} other members have it; every delivery is one latency sample.`);
    L.push('');
    L.push(table(['server', 'messages/s', 'deliveries/s', 'per-recipient p50 ms', 'p99 ms', 'server CPU · per message · per delivery', 'other processes CPU %'], Object.keys(S.group).map((key) => {
      const s = S.group[key];
      return [label(key, out), sp(s.rate, (x) => n(x, 0)), sp(s.deliveriesPerSec, (x) => n(x, 0)), sp(s['latency.p50_ms']), sp(s['latency.p99_ms']), `${sp(s['server.cpuPct'])} % · ${sp(s['server.usPerMessage'])} µs · ${sp(s['server.usPerDelivery'])} µs`, sp(s.otherCpuPct)];
    })));
    L.push('');
  }
  if (S.storm) {
    const st = k.storm;
    L.push('### 7. Reconnect storm');
    L.push('');
    L.push(`${st.clients} clients, each with its own user and device, authenticated on one node (PostgreSQL, its own database), then all dropped at once; each reconnects after uniform[0, min(${st.backoffCapMs}, ${st.backoffBaseMs}·2^k)] ms (attempt k, full jitter) and authenticates again. Storage load from pg_stat_database (commits + rollbacks of that database), sampled every second.`);
    L.push('');
    L.push(table(['server', 'back', 'time until all back, s', 'attempts', 'storage transactions', '… per reconnect', 'mean / peak per s', 'server CPU per reconnect µs'], Object.keys(S.storm).map((key) => {
      const s = S.storm[key];
      return [label(key, out), sp(s.back, (x) => n(x, 0)), sp(s.recoveryS), sp(s.attempts, (x) => n(x, 0)), sp(s['storage.transactions'], (x) => n(x, 0)), sp(s['storage.perReconnect']), `${sp(s['storage.meanPerSec'], (x) => n(x, 0))} / ${sp(s['storage.peakPerSec'], (x) => n(x, 0))}`, sp(s['server.usPerReconnect'], (x) => n(x, 0))];
    })));
    L.push('');
  }
  if (out.errors?.length) {
    L.push('### Errors in this run');
    L.push('');
    for (const e of out.errors) L.push(`- ${e.scenario} / ${e.target} / run ${e.rep + 1}: \`${e.error.split('\n')[0].replace(/`/g, "'")}\``);
    L.push('');
  }
  return L.join('\n');
}

const INTRO = `# Benchmarks

How fast Rampart relays messages, how much memory an idle connection costs, how many connections
it can authenticate per second and how well it keeps good clients served while one client attacks
it — each beside baselines measured in the same run on the same machine: a bare \`ws\` relay (parse
and forward, nothing else), the same relay write-batched per event-loop turn (the ceiling of a Node
relay), a \`ws\` server that checks Origin and verifies the JWT with jose (handshake only), and
Socket.IO with an equivalent jose auth middleware.

## Method

- **Processes.** \`npm run bench\` (\`bench/run.mjs\` → \`bench/main.ts\`) starts every server under test
  and every load generator as separate processes on loopback (127.0.0.0/8 only). With \`taskset\` and
  two or more cores, the server is pinned to CPU 0 and the load processes to CPU 1. Each scenario is
  repeated (3 times in a full run), the servers interleaved within each repeat; tables give the
  median and the min–max, and each ratio is the median of per-repeat (paired) ratios.
- **Load generator.** A raw-TCP WebSocket client (\`bench/lib/wire.ts\`): it does the HTTP upgrade
  itself, sends pre-built frames masked once with a fixed per-connection key (only the timestamp and
  sequence digits are rewritten per message), writes everything one event-loop turn allows in one
  write per socket, and parses server frames minimally (text frames split across TCP chunks,
  fragments, ping/pong, close). Its CPU time (\`process.cpuUsage\`) is reported beside the server's
  (utime + stime from \`/proc/<pid>/stat\`, all threads) over the same measured window, so a
  generator-bound run shows.
- **Relay.** N sender → recipient pairs; each sender keeps at most W messages in flight, where in
  flight means sent and not yet seen by its recipient — the generator holds both ends, so no server
  acknowledgement is needed and all servers are driven identically. The send time travels in the
  message content; latency is measured at the recipient. Rampart recipients ack delivered ids in
  batches, as a real client would; Rampart's \`message_sent\` time is reported separately.
  Rampart runs here with every rate and connection limit raised out of the way.
- **Idle connections.** Authenticated connections held open by several load processes (≤ ~5,000
  sockets each, under the 20,000 open-file limit). Every server process is started with
  \`node --expose-gc --import bench/servers/probe.mjs\`: on SIGUSR2 the probe runs a full GC and
  writes \`process.memoryUsage()\` to a file — the same measurement for Rampart and the baselines,
  with no change to their code.
- **Handshake.** A bounded number of connection lifecycles in flight (connect, upgrade, auth frame,
  auth_success, close handshake); connections rotate over loopback source addresses so ephemeral
  ports never run out.
- **Under attack.** Good clients chat at a paced rate that stays within Rampart's default limits,
  with and without one attacker; Rampart runs on its default limits, so the attacker is limited and
  closed while the good clients are not. The bare relay is shown as the unprotected contrast.
- **Bounded.** Every loop has a count and a deadline; every worker and server exits by itself if the
  orchestrator dies (parent-pid watchdog) or after a hard time limit.

## Running it

\`\`\`sh
npm run bench                 # full run (3 repeats), rewrites bench/results/latest.json, the chart and the section below
BENCH_QUICK=1 npm run bench   # smoke test: 1 repeat, short windows, 1,000/2,000 idle connections → bench/results/quick.json
\`\`\`

Useful knobs: \`BENCH_SCENARIOS=relay,idle,handshake,attack\`, \`BENCH_TARGETS=ws_plain,ws_cork,ws_jwt,socketio,rampart\`,
\`BENCH_REPEATS\`, \`BENCH_PAIRS\`, \`BENCH_WINDOW\`, \`BENCH_RELAY_MS\`, \`BENCH_IDLE_SIZES\`, \`BENCH_HS_CONCURRENCY\`,
\`BENCH_ATTACK_FPS\`, \`BENCH_ATTACK_TARGETS\`; \`BENCH_RAMPART=auto|mock|off\` (\`mock\` runs a stand-in that only speaks
Rampart's protocol, to test the harness), \`BENCH_RAMPART_CMD\` (a command with \`{config}\`), \`BENCH_RAMPART_PATH\` (WebSocket
path), \`BENCH_RAMPART_CONFIG\` (JSON deep-merged over the generated config: \`{"all": {…}, "relay": {…}, …}\`),
\`BENCH_BUILD=auto|0|1\`, \`BENCH_DOCS=0|1\`, \`BENCH_KEEP=1\` (keep server logs and configs), \`BENCH_LOAD_NODE_ARGS\`
(e.g. \`--cpu-prof\` for the generators). \`node --import tsx bench/lib/wire-selftest.ts\` checks the raw client's frame parser.

The machine is shared: before each run the bench waits (up to \`BENCH_QUIET_MAX_WAIT_MS\`) for both cores to be
under \`BENCH_QUIET_BUSY_PCT\` % busy, and a run during which other processes used more than \`BENCH_DISTURBED_PCT\` % of
a core is run once more (at most \`BENCH_MAX_RETRIES\` times per bench), keeping the less disturbed of the two. A full
run takes about ten minutes on the 2-core machine, more when it has to wait; the last run's duration is in the
section below.

## Results

`;

export function writeReport(out: any, root: string, jsonRel: string): string[] {
  const svgRel = 'bench/results/benchmarks.svg';
  writeFileSync(path.join(root, svgRel), chart(out));
  const docFile = path.join(root, 'docs/benchmarks.md');
  let doc = existsSync(docFile) ? readFileSync(docFile, 'utf8') : '';
  const gen = `${START}\n${section(out, jsonRel, svgRel)}\n${END}`;
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  if (a >= 0 && b > a) doc = doc.slice(0, a) + gen + doc.slice(b + END.length);
  else if (doc.trim()) doc = `${doc.trimEnd()}\n\n## Results\n\n${gen}\n`;
  else doc = `${INTRO}${gen}\n`;
  writeFileSync(docFile, doc);
  return [svgRel, 'docs/benchmarks.md'];
}
