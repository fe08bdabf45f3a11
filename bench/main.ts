/**
 * `npm run bench` — the orchestrator. Starts each server under test and the load generators as
 * separate processes on loopback (server pinned to core 0, load to core 1 when taskset exists),
 * runs the bounded scenarios (relay, idle, handshake, attack) `repeats` times, interleaving the
 * servers within each repeat, and writes bench/results/latest.json, bench/results/benchmarks.svg and
 * the generated section of docs/benchmarks.md. Every figure in those files comes from this run.
 *
 * Knobs (environment): see docs/benchmarks.md § "Running it" and `knobs` below.
 */
import { runStoreBench, type StoreBenchResult } from './store-append.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, statSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import type { Proto } from './lib/proto.js';
import { spread, median, sig } from './lib/stats.js';
import { Worker, freePort, hasTaskset, httpGet, logTail, nofileHard, nofileSoft, procCpuMs, procRss, sleep, spawnPinned, stopChild, servicesCpuMs, systemBusyMs, waitHealthy } from './lib/proc.js';
import { writeReport } from './lib/report.js';
import type { RelayConfig } from './load/relay.js';
import type { IdleConfig } from './load/idle.js';
import type { HandshakeConfig } from './load/handshake.js';
import type { AttackConfig } from './load/attacker.js';
import type { GroupConfig } from './load/group.js';
import type { StormConfig } from './load/storm.js';
import pg from 'pg';
import { Redis } from 'ioredis';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);
const T_START = Date.now();

// ---------------------------------------------------------------- knobs
const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const num = (k: string, d: number) => (env[k] !== undefined && env[k] !== '' ? Number(env[k]) : d);
const list = (k: string, d: string[]) => (env[k] ? env[k]!.split(',').map((s) => s.trim()).filter(Boolean) : d);

const knobs = {
  quick: QUICK,
  repeats: num('BENCH_REPEATS', QUICK ? 1 : 3),
  scenarios: list('BENCH_SCENARIOS', ['relay', 'relay_sqlite_memory', 'idle', 'handshake', 'attack', 'cluster', 'group', 'storm']),
  /** PostgreSQL server and Redis for the cluster and storm scenarios (a database is created per run and dropped). */
  pgUrl: env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl: env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
  targets: list('BENCH_TARGETS', ['ws_plain', 'ws_cork', 'ws_jwt', 'socketio', 'rampart']),
  rampart: env.BENCH_RAMPART ?? 'auto', // auto | mock | off
  rampartCmd: env.BENCH_RAMPART_CMD ?? '', // e.g. "node dist/cli.js serve --config {config}"
  /** A second Rampart build as target `rampart_b` (A/B within one run), e.g. "node /other/tree/dist/cli.js serve --config {config}". */
  rampartBCmd: env.BENCH_RAMPART_B_CMD ?? '',
  rampartPath: env.BENCH_RAMPART_PATH ?? '/ws',
  rampartConfigOverride: env.BENCH_RAMPART_CONFIG ?? '', // JSON file deep-merged over the generated config
  rampartLogLevel: env.BENCH_RAMPART_LOG_LEVEL ?? 'warn',
  build: env.BENCH_BUILD ?? 'auto',
  /** Before each run, wait (at most this long) for the machine to be quiet: other processes skew every figure. */
  quietMaxWaitMs: num('BENCH_QUIET_MAX_WAIT_MS', QUICK ? 3000 : 10000),
  quietBusyPct: num('BENCH_QUIET_BUSY_PCT', 25),
  /** A run during which other processes used more than this much CPU (% of one core) is run again, once. */
  disturbedPct: num('BENCH_DISTURBED_PCT', 50),
  maxRetries: num('BENCH_MAX_RETRIES', QUICK ? 2 : 8), // auto: `npm run build` when src/ is newer than dist/cli.js; 0: never; 1: always
  relay: {
    pairs: num('BENCH_PAIRS', QUICK ? 20 : 50),
    window: num('BENCH_WINDOW', QUICK ? 16 : 20),
    warmupMs: num('BENCH_RELAY_WARMUP_MS', QUICK ? 500 : 1500),
    measureMs: num('BENCH_RELAY_MS', QUICK ? 2000 : 6000),
    contentBytes: num('BENCH_CONTENT_BYTES', 100),
    targets: list('BENCH_RELAY_TARGETS', ['ws_plain', 'ws_cork', 'socketio', 'rampart']),
  },
  idle: {
    sizes: list('BENCH_IDLE_SIZES', QUICK ? ['1000', '2000'] : ['10000', '19000']).map(Number),
    perWorker: num('BENCH_IDLE_PER_WORKER', 5000),
    concurrency: num('BENCH_IDLE_CONCURRENCY', 100),
    targets: list('BENCH_IDLE_TARGETS', ['ws_plain', 'socketio', 'rampart']),
  },
  handshake: {
    concurrency: num('BENCH_HS_CONCURRENCY', 32),
    warmupMs: num('BENCH_HS_WARMUP_MS', QUICK ? 300 : 1000),
    measureMs: num('BENCH_HS_MS', QUICK ? 1500 : 4000),
    users: num('BENCH_HS_USERS', QUICK ? 2000 : 5000),
    targets: list('BENCH_HS_TARGETS', ['ws_plain', 'ws_jwt', 'socketio', 'rampart']),
  },
  attack: {
    pairs: num('BENCH_ATTACK_PAIRS', 50),
    ratePerSender: num('BENCH_ATTACK_RATE', 4),
    window: num('BENCH_ATTACK_WINDOW', 10),
    warmupMs: num('BENCH_ATTACK_WARMUP_MS', QUICK ? 500 : 1000),
    measureMs: num('BENCH_ATTACK_MS', QUICK ? 2500 : 6000),
    framesPerSec: num('BENCH_ATTACK_FPS', 20000),
    oversizeBytes: num('BENCH_ATTACK_OVERSIZE', 128 * 1024),
    bombChars: 5000,
    maxReconnectsPerSec: num('BENCH_ATTACK_RECONNECTS', 20),
    targets: list('BENCH_ATTACK_TARGETS', ['rampart', 'ws_plain']),
  },
  cluster: {
    pairs: num('BENCH_CLUSTER_PAIRS', QUICK ? 20 : 50),
    window: num('BENCH_CLUSTER_WINDOW', QUICK ? 16 : 20),
    warmupMs: num('BENCH_CLUSTER_WARMUP_MS', QUICK ? 500 : 1500),
    measureMs: num('BENCH_CLUSTER_MS', QUICK ? 2000 : 6000),
  },
  group: {
    members: num('BENCH_GROUP_MEMBERS', 100),
    senders: num('BENCH_GROUP_SENDERS', 4),
    window: num('BENCH_GROUP_WINDOW', 8),
    warmupMs: num('BENCH_GROUP_WARMUP_MS', QUICK ? 500 : 1500),
    measureMs: num('BENCH_GROUP_MS', QUICK ? 2000 : 6000),
  },
  storm: {
    clients: num('BENCH_STORM_CLIENTS', QUICK ? 2000 : 10000),
    perWorker: num('BENCH_STORM_PER_WORKER', 5000),
    backoffBaseMs: num('BENCH_STORM_BACKOFF_MS', 1000),
    backoffCapMs: num('BENCH_STORM_BACKOFF_CAP_MS', 30000),
    sampleMs: 250,
  },
};

const SERVER_CORE = hasTaskset && os.cpus().length >= 2 ? 0 : null;
const LOAD_CORE = hasTaskset && os.cpus().length >= 2 ? 1 : null;
const ORIGIN = 'http://bench.local';
const SECRET = randomBytes(32).toString('hex');
const WORK = mkdtempSync(path.join(os.tmpdir(), 'rampart-bench-'));
const PROBE = pathToFileURL(path.join(ROOT, 'bench/servers/probe.mjs')).href;
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => `127.0.0.${a + i}`);
const log = (...a: unknown[]) => console.log(`[bench ${((Date.now() - T_START) / 1000).toFixed(0).padStart(4)}s]`, ...a);

// ---------------------------------------------------------------- targets
type TargetName = 'ws_plain' | 'ws_cork' | 'ws_jwt' | 'socketio' | 'rampart' | 'rampart_b';
interface Target {
  name: TargetName;
  label: string;
  proto: Proto;
  available: boolean;
  why?: string;
}
type Scenario = 'relay' | 'relay_sqlite_memory' | 'idle' | 'handshake' | 'attack' | 'cluster' | 'group' | 'storm';

function resolveRampart(): Target {
  const t: Target = { name: 'rampart', label: 'Rampart', proto: 'rampart', available: false };
  if (knobs.rampart === 'off') return { ...t, why: 'BENCH_RAMPART=off' };
  if (knobs.rampart === 'mock') return { ...t, label: 'Rampart MOCK (ws-relay rampart-mock, not Rampart)', available: true };
  if (knobs.rampartCmd) return { ...t, available: true };
  const cli = path.join(ROOT, 'dist/cli.js');
  const needBuild = knobs.build === '1' || (knobs.build === 'auto' && existsSync(path.join(ROOT, 'src/cli.ts')) && (!existsSync(cli) || newest(path.join(ROOT, 'src')) > statSync(cli).mtimeMs));
  if (needBuild) {
    log('building Rampart (npm run build) …');
    const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) return { ...t, why: `npm run build failed: ${(r.stdout + r.stderr).split('\n').slice(-8).join(' | ')}` };
  }
  if (!existsSync(cli)) return { ...t, why: 'dist/cli.js not found (Rampart not built yet)' };
  return { ...t, available: true };
}
function newest(dir: string): number {
  let m = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    m = Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return m;
}

const ALL_TARGETS: Target[] = [
  { name: 'ws_plain', label: 'ws bare relay', proto: 'bare', available: true },
  { name: 'ws_cork', label: 'ws relay, corked per turn', proto: 'bare', available: true },
  { name: 'ws_jwt', label: 'ws + Origin + jose JWT', proto: 'rampart', available: true },
  { name: 'socketio', label: 'Socket.IO + jose io.use', proto: 'socketio', available: true },
  { name: 'rampart_b', label: 'Rampart B (BENCH_RAMPART_B_CMD)', proto: 'rampart', available: Boolean(knobs.rampartBCmd), why: 'BENCH_RAMPART_B_CMD not set' },
];

// ---------------------------------------------------------------- servers
interface Mem {
  rss: number | null;
  heapUsed: number | null;
  heapTotal: number | null;
  external: number | null;
  arrayBuffers: number | null;
  gc: boolean;
  metricsHeapUsed: number | null;
}
interface Server {
  port: number;
  pid: number;
  child: ChildProcess;
  logFile: string;
  cpu(): number | null;
  memory(): Promise<Mem>;
  stop(): Promise<void>;
}

function deepMerge(a: any, b: any): any {
  if (b === null || typeof b !== 'object' || Array.isArray(b)) return b;
  const out: any = { ...(a && typeof a === 'object' ? a : {}) };
  for (const [k, v] of Object.entries(b)) out[k] = deepMerge(out[k], v);
  return out;
}

/** Rampart's config for a scenario: limits out of the way, except in `attack` where defaults apply. */
function rampartConfig(scn: Scenario, port: number, dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    port,
    host: '127.0.0.1',
    allowedOrigins: [ORIGIN],
    jwt: { secret: SECRET, algorithms: ['HS256'] },
    // The bench runs the server with NODE_ENV=production (for Node's own settings), not as a production deployment.
    mode: 'development',
    storage: `sqlite:${path.join(dir, 'bench.db')}`,
    dataDir: dir,
    logLevel: knobs.rampartLogLevel,
  };
  const BIG = 1_000_000_000;
  const open = {
    ...base,
    rateLimit: { messagesPerMinute: BIG, messagesPerHour: BIG, burstLimit: BIG, burstWindow: 1000 },
    maxConnectionsPerUser: 1000,
    maxConnectionsPerIP: 1_000_000,
    heartbeatInterval: 600_000,
    heartbeatTimeout: 1_200_000,
    limits: {
      frames: { limit: BIG, windowMs: 1000 },
      typing: { limit: BIG, windowMs: 1000 },
      requests: { limit: BIG, windowMs: 1000 },
      maxViolations: BIG,
      connectionAttemptsPerMinute: BIG,
      maxUnauthenticated: 1_000_000,
      maxUnauthenticatedPerIP: 1_000_000,
      maxAuthFailures: BIG,
      maxBufferedBytes: 64 * 1024 * 1024,
      maxConnections: 1_000_000,
    },
    chat: { maxInboxSize: 1_000_000 },
  };
  let cfg: Record<string, unknown> = deepMerge(scn === 'attack' ? base : open, extra);
  if (knobs.rampartConfigOverride) {
    const o = JSON.parse(readFileSync(knobs.rampartConfigOverride, 'utf8'));
    cfg = deepMerge(cfg, o.all ?? {});
    cfg = deepMerge(cfg, o[scn] ?? {});
  }
  return cfg;
}

let serverSeq = 0;
async function startServer(t: Target, scn: Scenario, extra?: Record<string, unknown>): Promise<Server> {
  const port = await freePort();
  const id = `${scn}-${t.name}-${++serverSeq}`;
  const dir = path.join(WORK, id);
  mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'server.log');
  const probeFile = path.join(dir, 'probe.json');
  // BENCH_SERVER_NODE_ARGS: extra node flags for every server process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const node = [process.execPath, ...(env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean), '--expose-gc', '--import', PROBE];
  let argv: string[];
  const common = ['--port', String(port), '--secret', SECRET, '--origin', ORIGIN];
  if (t.name === 'ws_plain') argv = [...node, 'bench/servers/ws-relay.mjs', ...common, '--mode', 'plain'];
  else if (t.name === 'ws_cork') argv = [...node, 'bench/servers/ws-relay.mjs', ...common, '--mode', 'cork'];
  else if (t.name === 'ws_jwt') argv = [...node, 'bench/servers/ws-relay.mjs', ...common, '--mode', 'jwt'];
  else if (t.name === 'socketio') argv = [...node, 'bench/servers/socketio-relay.mjs', ...common];
  else if (knobs.rampart === 'mock' && t.name === 'rampart') argv = [...node, 'bench/servers/ws-relay.mjs', ...common, '--mode', 'rampart-mock'];
  else {
    const cfgFile = path.join(dir, 'rampart.json');
    writeFileSync(cfgFile, JSON.stringify(rampartConfig(scn, port, dir, extra), null, 2));
    const cmd = t.name === 'rampart_b' ? knobs.rampartBCmd : knobs.rampartCmd;
    if (cmd) {
      const parts = cmd.split(/\s+/).filter(Boolean).map((p) => p.replace('{config}', cfgFile));
      argv = parts[0] === 'node' ? [...node, ...parts.slice(1)] : parts;
    } else argv = [...node, 'dist/cli.js', 'serve', '--config', cfgFile];
  }
  const child = spawnPinned(argv, {
    core: SERVER_CORE,
    logFile,
    nofile: 20000,
    env: { BENCH_PROBE_FILE: probeFile, BENCH_PARENT_PID: String(process.pid), BENCH_MAX_LIFETIME_MS: String(15 * 60_000), NODE_ENV: 'production' },
  });
  child.on('error', () => {});
  try {
    await waitHealthy(child, port, 30_000);
  } catch (e) {
    await stopChild(child, 1000);
    throw new Error(`${t.name}: ${(e as Error).message}\n--- ${logFile}\n${logTail(logFile, 20)}`);
  }
  const pid = child.pid!;
  let probeSeq = 0;
  return {
    port,
    pid,
    child,
    logFile,
    cpu: () => procCpuMs(pid),
    async memory(): Promise<Mem> {
      process.kill(pid, 'SIGUSR2');
      const end = Date.now() + 20_000;
      let m: any = null;
      while (Date.now() < end) {
        try {
          const j = JSON.parse(readFileSync(probeFile, 'utf8'));
          if (j.seq > probeSeq) {
            probeSeq = j.seq;
            m = j;
            break;
          }
        } catch {
          /* not written yet */
        }
        await sleep(50);
      }
      let metricsHeapUsed: number | null = null;
      if ((t.name === 'rampart' || t.name === 'rampart_b') && knobs.rampart !== 'mock') {
        try {
          const r = await httpGet(port, '/metrics', 3000);
          const mm = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})?\s+([0-9.e+]+)/m.exec(r.body);
          if (r.status === 200 && mm) metricsHeapUsed = Number(mm[1]);
        } catch {
          /* no /metrics */
        }
      }
      return {
        rss: procRss(pid),
        heapUsed: m?.heapUsed ?? null,
        heapTotal: m?.heapTotal ?? null,
        external: m?.external ?? null,
        arrayBuffers: m?.arrayBuffers ?? null,
        gc: Boolean(m?.gc),
        metricsHeapUsed,
      };
    },
    stop: () => stopChild(child, 5000),
  };
}

// ---------------------------------------------------------------- scenarios
/**
 * Server CPU and whole-machine busy CPU over the generator's measured window. `services`: the
 * scenario uses PostgreSQL and Redis, whose CPU is then reported apart instead of counting as
 * other processes' (which would flag every such run as disturbed).
 */
function cpuWindow(w: Worker, srv: Server, services = false) {
  let c0: number | null = null;
  let c1: number | null = null;
  let b0: number | null = null;
  let b1: number | null = null;
  let s0: number | null = null;
  let s1: number | null = null;
  w.on('measure_start', () => ((c0 = srv.cpu()), (b0 = systemBusyMs()), (s0 = services ? servicesCpuMs() : null)));
  w.on('measure_end', () => ((c1 = srv.cpu()), (b1 = systemBusyMs()), (s1 = services ? servicesCpuMs() : null)));
  /** `loadCpuMs`: CPU of the load processes over the window; what is left of the machine's busy time is someone else's. */
  return (measuredMs: number, count: number, loadCpuMs: number) => {
    const cpuMs = c0 !== null && c1 !== null ? c1 - c0 : null;
    const busy = b0 !== null && b1 !== null ? b1 - b0 : null;
    const servicesMs = s0 !== null && s1 !== null ? s1 - s0 : null;
    const other = busy !== null && cpuMs !== null ? Math.max(0, busy - cpuMs - loadCpuMs - (servicesMs ?? 0)) : null;
    return {
      cpuMs,
      cpuPct: cpuMs !== null ? (cpuMs / measuredMs) * 100 : null,
      usPerOp: cpuMs !== null && count ? (cpuMs * 1000) / count : null,
      otherCpuPct: other !== null ? (other / measuredMs) * 100 : null,
      servicesCpuPct: servicesMs !== null ? (servicesMs / measuredMs) * 100 : null,
    };
  };
}

function workerLog(name: string): string {
  return path.join(WORK, `${name}-${++serverSeq}.log`);
}

async function runRelay(t: Target, extra?: Record<string, unknown>): Promise<any> {
  const srv = await startServer(t, 'relay', extra);
  const k = knobs.relay;
  const w = new Worker('relay-gen', 'bench/load/relay.ts', workerLog('relay-gen'), LOAD_CORE);
  try {
    const cfg: RelayConfig = {
      proto: t.proto, host: '127.0.0.1', port: srv.port, rampartPath: knobs.rampartPath, origin: ORIGIN, secret: SECRET,
      pairs: Array.from({ length: k.pairs }, () => ({ s: randomUUID(), r: randomUUID() })),
      window: k.window, warmupMs: k.warmupMs, measureMs: k.measureMs, drainMs: 3000, contentBytes: k.contentBytes,
      ackBatch: 50, ackFlushMs: 50, sources: [], connectConcurrency: 50, stallMs: 2000,
      maxMs: k.warmupMs + k.measureMs + 120_000,
    };
    w.send({ cmd: 'start', cfg });
    const ready = await w.next('ready', 60_000);
    if (ready.recipients.ok !== k.pairs || ready.senders.ok !== k.pairs) throw new Error(`relay: connected ${JSON.stringify(ready)}`);
    const win = cpuWindow(w, srv);
    w.send({ cmd: 'go' });
    const r = (await w.next('result', k.warmupMs + k.measureMs + 60_000)).result;
    const c = win(r.measuredMs, r.delivered, r.cpu.total);
    return { ...r, server: { cpuMs: c.cpuMs, cpuPct: c.cpuPct, usPerMessage: c.usPerOp }, otherCpuPct: c.otherCpuPct };
  } finally {
    await w.stop();
    await srv.stop();
  }
}

async function runIdle(t: Target): Promise<any> {
  const k = knobs.idle;
  const sizes = [...k.sizes].sort((a, b) => a - b);
  const maxN = sizes[sizes.length - 1]!;
  const nWorkers = Math.max(1, Math.ceil(maxN / k.perWorker));
  const srv = await startServer(t, 'idle');
  const workers: Worker[] = [];
  try {
    await sleep(500);
    const base = await srv.memory();
    const per = Math.ceil(maxN / nWorkers);
    const sources = range(2, 9);
    for (let i = 0; i < nWorkers; i++) {
      const w = new Worker(`idle-${i}`, 'bench/load/idle.ts', workerLog(`idle-${i}`), LOAD_CORE, per + 200);
      const cfg: IdleConfig = {
        proto: t.proto, host: '127.0.0.1', port: srv.port, rampartPath: knobs.rampartPath, origin: ORIGIN, secret: SECRET,
        users: Array.from({ length: per }, () => randomUUID()),
        sources: sources.slice(i % sources.length).concat(sources.slice(0, i % sources.length)),
        concurrency: k.concurrency, openTimeoutMs: 120_000, maxMs: 20 * 60_000,
      };
      w.send({ cmd: 'start', cfg });
      workers.push(w);
    }
    for (const w of workers) await w.next('ready', 60_000);
    const points: any[] = [];
    let opened = 0;
    for (const n of sizes) {
      const delta = n - opened;
      const shares = workers.map((_, i) => Math.floor(delta / nWorkers) + (i < delta % nWorkers ? 1 : 0));
      const t0 = Date.now();
      workers.forEach((w, i) => w.send({ cmd: 'open', count: shares[i] }));
      const res = await Promise.all(workers.map((w) => w.next('opened', 180_000)));
      const openMs = Date.now() - t0;
      opened = n;
      await sleep(1000);
      const mem = await srv.memory();
      workers.forEach((w) => w.send({ cmd: 'status' }));
      const st = await Promise.all(workers.map((w) => w.next('status', 10_000)));
      const open = st.reduce((a, s) => a + s.open, 0);
      const failed = res.reduce((a, r) => a + r.failed, 0);
      const closes: Record<string, number> = {};
      for (const s of st) for (const [c, v] of Object.entries(s.closes as Record<string, number>)) closes[c] = (closes[c] ?? 0) + v;
      const per = (x: number | null, b: number | null) => (x !== null && b !== null && open > 0 ? (x - b) / open : null);
      points.push({
        target: n,
        open,
        failed,
        closes,
        openMs,
        openRate: (n - (points.length ? points[points.length - 1].target : 0)) / (openMs / 1000),
        mem,
        rssPerConn: per(mem.rss, base.rss),
        heapPerConn: per(mem.heapUsed, base.heapUsed),
        metricsHeapPerConn: per(mem.metricsHeapUsed, base.metricsHeapUsed),
      });
      log(`  ${t.name} idle ${n}: open=${open} failed=${failed} rss/conn=${fmtB(points[points.length - 1].rssPerConn)} heap/conn=${fmtB(points[points.length - 1].heapPerConn)}`);
    }
    workers.forEach((w) => w.send({ cmd: 'close' }));
    await Promise.all(workers.map((w) => w.next('closed', 15_000).catch(() => null)));
    return { ok: points.every((p) => p.open === p.target), base, points, workers: nWorkers };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await srv.stop();
  }
}

async function runHandshake(t: Target): Promise<any> {
  const k = knobs.handshake;
  const srv = await startServer(t, 'handshake');
  const w = new Worker('hs-gen', 'bench/load/handshake.ts', workerLog('hs-gen'), LOAD_CORE);
  try {
    const cfg: HandshakeConfig = {
      proto: t.proto, host: '127.0.0.1', port: srv.port, rampartPath: knobs.rampartPath, origin: ORIGIN, secret: SECRET,
      users: Array.from({ length: k.users }, () => randomUUID()),
      sources: range(10, 41), concurrency: k.concurrency, warmupMs: k.warmupMs, measureMs: k.measureMs,
      maxMs: k.warmupMs + k.measureMs + 120_000,
    };
    w.send({ cmd: 'start', cfg });
    await w.next('ready', 60_000);
    const win = cpuWindow(w, srv);
    w.send({ cmd: 'go' });
    const r = (await w.next('result', k.warmupMs + k.measureMs + 60_000)).result;
    const c = win(r.measuredMs, r.completed, r.cpu.total);
    return { ...r, server: { cpuMs: c.cpuMs, cpuPct: c.cpuPct, usPerConnection: c.usPerOp }, otherCpuPct: c.otherCpuPct };
  } finally {
    await w.stop();
    await srv.stop();
  }
}

async function runAttack(t: Target, withAttacker: boolean): Promise<any> {
  const k = knobs.attack;
  const srv = await startServer(t, 'attack');
  const g = new Worker('good-gen', 'bench/load/relay.ts', workerLog('good-gen'), LOAD_CORE);
  const a = withAttacker ? new Worker('attacker', 'bench/load/attacker.ts', workerLog('attacker'), LOAD_CORE) : null;
  try {
    const pairs = Array.from({ length: k.pairs }, () => ({ s: randomUUID(), r: randomUUID() }));
    const cfg: RelayConfig = {
      proto: t.proto, host: '127.0.0.1', port: srv.port, rampartPath: knobs.rampartPath, origin: ORIGIN, secret: SECRET,
      pairs, window: k.window, warmupMs: k.warmupMs, measureMs: k.measureMs, drainMs: 3000, contentBytes: 100,
      pacedRate: k.ratePerSender, ackBatch: 50, ackFlushMs: 100, sources: range(2, 5), connectConcurrency: 20, stallMs: 3000,
      maxMs: k.warmupMs + k.measureMs + 120_000,
    };
    g.send({ cmd: 'start', cfg });
    if (a) {
      const acfg: AttackConfig = {
        proto: t.proto, host: '127.0.0.1', port: srv.port, rampartPath: knobs.rampartPath, origin: ORIGIN, secret: SECRET,
        attackerId: randomUUID(), victims: pairs.map((p) => p.r), source: '127.0.0.66',
        durationMs: k.warmupMs + k.measureMs + 500, framesPerSec: k.framesPerSec, oversizeBytes: k.oversizeBytes,
        bombChars: k.bombChars, maxReconnectsPerSec: k.maxReconnectsPerSec, maxBufferedBytes: 4 * 1024 * 1024,
        maxMs: k.warmupMs + k.measureMs + 120_000,
      };
      a.send({ cmd: 'start', cfg: acfg });
      await a.next('ready', 30_000);
    }
    const ready = await g.next('ready', 60_000);
    if (ready.recipients.ok !== k.pairs || ready.senders.ok !== k.pairs) throw new Error(`attack: good clients connected ${JSON.stringify(ready)}`);
    const win = cpuWindow(g, srv);
    a?.send({ cmd: 'go' });
    g.send({ cmd: 'go' });
    const r = (await g.next('result', k.warmupMs + k.measureMs + 60_000)).result;
    const ar = a ? (await a.next('result', 30_000)).result : null;
    // the attacker's CPU is measured over its whole run; scale it to the measured window
    const atkCpu = ar ? (ar.cpu.total * r.measuredMs) / ar.elapsedMs : 0;
    const c = win(r.measuredMs, r.delivered, r.cpu.total + atkCpu);
    return { ...r, server: { cpuMs: c.cpuMs, cpuPct: c.cpuPct, rssAfter: procRss(srv.pid) }, otherCpuPct: c.otherCpuPct, attacker: ar };
  } finally {
    await g.stop();
    await a?.stop();
    await srv.stop();
  }
}

// ---------------------------------------------------------------- cluster, group, storm
/** A fresh PostgreSQL database for one run (dropped afterwards): its own pg_stat_database row. */
async function createDatabase(tag: string): Promise<{ url: string; drop(): Promise<void>; xacts(): Promise<{ xacts: number; fetched: number; returned: number } | null> }> {
  const name = `rampart_bench_${tag}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: knobs.pgUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(knobs.pgUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async xacts() {
      try {
        const r = await admin.query('SELECT xact_commit + xact_rollback AS x, tup_fetched AS f, tup_returned AS r FROM pg_stat_database WHERE datname = $1', [name]);
        const row = r.rows[0];
        return row ? { xacts: Number(row.x), fetched: Number(row.f), returned: Number(row.r) } : null;
      } catch {
        return null;
      }
    },
    async drop() {
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end().catch(() => {});
      }
    },
  };
}

async function dropRedisPrefix(prefix: string): Promise<void> {
  const r = new Redis(knobs.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    for await (const batch of r.scanStream({ match: `${prefix}*`, count: 1000 }) as AsyncIterable<string[]>) if (batch.length) await r.del(...batch);
    await r.quit();
  } catch {
    r.disconnect();
  }
}

/** Cross-node relay (senders on node A, recipients on node B; shared Redis + PostgreSQL) or the same load on one PostgreSQL node. */
async function runCluster(t: Target & { variant?: string }): Promise<any> {
  const cross = t.variant === 'cross_node';
  const k = knobs.cluster;
  const db = await createDatabase('cluster');
  const prefix = `rampart-bench-${randomBytes(4).toString('hex')}:`;
  const extra = { storage: db.url, ...(cross ? { redisUrl: knobs.redisUrl, redisKeyPrefix: prefix } : {}) };
  const servers: Server[] = [];
  let w: Worker | null = null;
  try {
    servers.push(await startServer(t, 'cluster', extra));
    if (cross) servers.push(await startServer(t, 'cluster', extra));
    const [a, b] = [servers[0]!, servers[servers.length - 1]!];
    w = new Worker('cluster-gen', 'bench/load/relay.ts', workerLog('cluster-gen'), LOAD_CORE);
    const cfg: RelayConfig = {
      proto: t.proto, host: '127.0.0.1', port: a.port, recipientPort: b.port, rampartPath: knobs.rampartPath, origin: ORIGIN, secret: SECRET,
      pairs: Array.from({ length: k.pairs }, () => ({ s: randomUUID(), r: randomUUID() })),
      window: k.window, warmupMs: k.warmupMs, measureMs: k.measureMs, drainMs: 3000, contentBytes: 100,
      ackBatch: 50, ackFlushMs: 50, sources: [], connectConcurrency: 50, stallMs: 3000,
      maxMs: k.warmupMs + k.measureMs + 120_000,
    };
    w.send({ cmd: 'start', cfg });
    const ready = await w.next('ready', 60_000);
    if (ready.recipients.ok !== k.pairs || ready.senders.ok !== k.pairs) throw new Error(`cluster: connected ${JSON.stringify(ready)}`);
    // Both nodes' CPU together (they share the server core).
    const both = { cpu: () => servers.reduce<number | null>((acc, s) => (acc === null ? null : ((c) => (c === null ? null : acc + c))(s.cpu())), 0) } as Server;
    const win = cpuWindow(w, both, true);
    w.send({ cmd: 'go' });
    const r = (await w.next('result', k.warmupMs + k.measureMs + 60_000)).result;
    const c = win(r.measuredMs, r.delivered, r.cpu.total);
    return { ...r, nodes: servers.length, server: { cpuMs: c.cpuMs, cpuPct: c.cpuPct, usPerMessage: c.usPerOp }, otherCpuPct: c.otherCpuPct, servicesCpuPct: c.servicesCpuPct };
  } finally {
    await w?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    await db.drop().catch(() => {});
    if (cross) await dropRedisPrefix(prefix);
  }
}

/** One group of `members`, `senders` of them sending into it closed-loop (SQLite, one node). */
async function runGroup(t: Target): Promise<any> {
  const k = knobs.group;
  const srv = await startServer(t, 'group');
  const w = new Worker('group-gen', 'bench/load/group.ts', workerLog('group-gen'), LOAD_CORE);
  try {
    const cfg: GroupConfig = {
      proto: t.proto, host: '127.0.0.1', port: srv.port, rampartPath: knobs.rampartPath, origin: ORIGIN, secret: SECRET,
      members: Array.from({ length: k.members }, () => randomUUID()), senders: k.senders, window: k.window,
      warmupMs: k.warmupMs, measureMs: k.measureMs, drainMs: 3000, contentBytes: 100, ackFlushMs: 100,
      sources: [], connectConcurrency: 50, stallMs: 3000, maxMs: k.warmupMs + k.measureMs + 120_000,
    };
    w.send({ cmd: 'start', cfg });
    const ready = await w.next('ready', 60_000);
    if (ready.members.ok !== k.members || !ready.conversationId) throw new Error(`group: ${JSON.stringify(ready)}`);
    const win = cpuWindow(w, srv);
    w.send({ cmd: 'go' });
    const r = (await w.next('result', k.warmupMs + k.measureMs + 60_000)).result;
    const c = win(r.measuredMs, r.completed, r.cpu.total);
    return {
      ...r,
      server: { cpuMs: c.cpuMs, cpuPct: c.cpuPct, usPerMessage: c.usPerOp, usPerDelivery: c.cpuMs !== null && r.delivered ? (c.cpuMs * 1000) / r.delivered : null },
      otherCpuPct: c.otherCpuPct,
    };
  } finally {
    await w.stop();
    await srv.stop();
  }
}

/** `clients` authenticated clients dropped at once, reconnecting with backoff; PostgreSQL storage, its own database. */
async function runStorm(t: Target): Promise<any> {
  const k = knobs.storm;
  const db = await createDatabase('storm');
  const srv = await startServer(t, 'storm', { storage: db.url });
  const nWorkers = Math.max(1, Math.ceil(k.clients / k.perWorker));
  const per = Math.ceil(k.clients / nWorkers);
  const workers: Worker[] = [];
  const sources = range(2, 9);
  try {
    for (let i = 0; i < nWorkers; i++) {
      const w = new Worker(`storm-${i}`, 'bench/load/storm.ts', workerLog(`storm-${i}`), LOAD_CORE, per + 200);
      const cfg: StormConfig = {
        proto: t.proto, host: '127.0.0.1', port: srv.port, rampartPath: knobs.rampartPath, origin: ORIGIN, secret: SECRET,
        users: Array.from({ length: per }, () => randomUUID()),
        sources: sources.slice(i % sources.length).concat(sources.slice(0, i % sources.length)),
        concurrency: 100, openTimeoutMs: 180_000, backoff: { baseMs: k.backoffBaseMs, capMs: k.backoffCapMs },
        recoverTimeoutMs: 180_000, sampleMs: k.sampleMs, maxMs: 15 * 60_000,
      };
      w.send({ cmd: 'start', cfg });
      workers.push(w);
    }
    for (const w of workers) await w.next('ready', 60_000);
    workers.forEach((w) => w.send({ cmd: 'open' }));
    const opened = await Promise.all(workers.map((w) => w.next('opened', 240_000)));
    const ok = opened.reduce((a, o) => a + o.ok, 0);
    if (ok !== per * nWorkers) throw new Error(`storm: opened ${ok} of ${per * nWorkers}`);
    await sleep(2500); // let pg_stat_database catch up with the opening phase
    const before = await db.xacts();
    const cpu0 = srv.cpu();
    const series: { ms: number; xacts: number }[] = [];
    const t0 = Date.now();
    workers.forEach((w) => w.send({ cmd: 'drop' }));
    const done = Promise.all(workers.map((w) => w.next('recovered', 240_000)));
    let finished = false;
    void done.then(() => (finished = true), () => (finished = true));
    while (!finished) {
      await sleep(1000);
      const x = await db.xacts();
      if (x && before) series.push({ ms: Date.now() - t0, xacts: x.xacts - before.xacts });
    }
    const rec = await done;
    const recoveryMs = Math.max(...rec.map((r) => r.recoveryMs));
    const serverCpuMs = cpu0 !== null && srv.cpu() !== null ? srv.cpu()! - cpu0 : null;
    await sleep(2500); // stats are flushed by each backend about once a second
    const after = await db.xacts();
    const storageXacts = after && before ? after.xacts - before.xacts : null;
    const perSec = series.map((p, i) => ((p.xacts - (i ? series[i - 1]!.xacts : 0)) * 1000) / (p.ms - (i ? series[i - 1]!.ms : 0)));
    const back = rec.reduce((a, r) => a + r.back, 0);
    return {
      ok: back === ok,
      clients: ok,
      back,
      recoveryMs,
      recoveryS: recoveryMs / 1000,
      attempts: rec.reduce((a, r) => a + r.attempts, 0),
      refusals: rec.reduce<Record<string, number>>((acc, r) => {
        for (const [kk, v] of Object.entries(r.refusals as Record<string, number>)) acc[kk] = (acc[kk] ?? 0) + v;
        return acc;
      }, {}),
      backoff: { baseMs: k.backoffBaseMs, capMs: k.backoffCapMs, jitter: 'full' },
      storage: {
        backend: 'postgres',
        transactions: storageXacts,
        perReconnect: storageXacts !== null && back ? storageXacts / back : null,
        meanPerSec: storageXacts !== null && recoveryMs ? (storageXacts * 1000) / recoveryMs : null,
        peakPerSec: perSec.length ? Math.max(...perSec) : null,
        perSecond: perSec.map((x) => Math.round(x)),
      },
      server: { cpuMs: serverCpuMs, usPerReconnect: serverCpuMs !== null && back ? (serverCpuMs * 1000) / back : null },
      backCurve: rec[0] ? { sampleMs: rec[0].sampleMs, back: rec[0].samples.map((_: number, i: number) => rec.reduce((a, r) => a + (r.samples[i] ?? r.back), 0)) } : null,
    };
  } finally {
    workers.forEach((w) => w.send({ cmd: 'close' }));
    await Promise.all(workers.map((w) => w.next('closed', 15_000).catch(() => null)));
    await Promise.all(workers.map((w) => w.stop()));
    await srv.stop();
    await db.drop().catch(() => {});
  }
}

// ---------------------------------------------------------------- main
function fmtB(x: number | null | undefined): string {
  return x === null || x === undefined ? 'n/a' : `${(x / 1024).toFixed(1)} KB`;
}

const rampart = knobs.targets.includes('rampart') ? resolveRampart() : { name: 'rampart' as const, label: 'Rampart', proto: 'rampart' as const, available: false, why: 'not in BENCH_TARGETS' };
const targets = new Map<TargetName, Target>([...ALL_TARGETS, rampart].map((t) => [t.name, t]));
const want = (names: string[]) => names.filter((n) => knobs.targets.includes(n)).map((n) => targets.get(n as TargetName)!).filter(Boolean);

const meta = {
  date: new Date().toISOString(),
  mode: QUICK ? 'quick' : 'full',
  node: process.version,
  v8: process.versions.v8,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  kernel: `${os.type()} ${os.release()}`,
  arch: process.arch,
  taskset: hasTaskset,
  pinning: SERVER_CORE !== null ? { server: `cpu ${SERVER_CORE}`, load: `cpu ${LOAD_CORE}` } : null,
  nofile: { soft: nofileSoft, hard: nofileHard },
  deps: depVersions(),
  rampart: { mode: knobs.rampart, available: rampart.available, label: rampart.label, why: rampart.why ?? null, path: knobs.rampartPath, logLevel: knobs.rampartLogLevel },
  durationSec: 0,
};
function depVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of ['ws', 'socket.io', 'jose', 'tsx']) {
    try {
      out[d] = JSON.parse(readFileSync(path.join(ROOT, 'node_modules', d, 'package.json'), 'utf8')).version;
    } catch {
      out[d] = 'missing';
    }
  }
  return out;
}

log(`mode=${meta.mode} repeats=${knobs.repeats} node=${meta.node} cpus=${meta.cpus} (${meta.cpuModel}) pinning=${SERVER_CORE !== null ? 'server→0 load→1' : 'none'} work=${WORK}`);
log(`rampart: ${rampart.available ? rampart.label : `skipped — ${rampart.why}`}`);

type Runs = Record<string, any[]>;
let retriesLeft = knobs.maxRetries;
const results: Record<string, Runs> = {};
const errors: { scenario: string; target: string; rep: number; error: string }[] = [];

async function scenario(name: Scenario, tlist: Target[], run: (t: Target) => Promise<any>, variants?: string[]): Promise<void> {
  if (!knobs.scenarios.includes(name)) return;
  const runs: Runs = {};
  results[name] = runs;
  for (let rep = 0; rep < knobs.repeats; rep++) {
    for (const t of tlist) {
      for (const v of variants ?? ['']) {
        const key = v ? `${t.name}:${v}` : t.name;
        (runs[key] ??= []);
        if (!t.available) {
          runs[key]!.push({ skipped: t.why });
          continue;
        }
        const t0 = Date.now();
        try {
          let quiet = await waitQuiet();
          let r = await run(v ? ({ ...t, variant: v } as Target) : t);
          if (typeof r.otherCpuPct === 'number' && r.otherCpuPct > knobs.disturbedPct && retriesLeft > 0) {
            retriesLeft--;
            log(`${name} ${key} #${rep + 1}: other processes used ${r.otherCpuPct.toFixed(0)}% CPU during the run; running it again`);
            const first = { otherCpuPct: Math.round(r.otherCpuPct), summary: summaryLine(name, r) };
            quiet = await waitQuiet();
            const again = await run(v ? ({ ...t, variant: v } as Target) : t);
            r = (again.otherCpuPct ?? Infinity) <= r.otherCpuPct ? again : r;
            r.disturbedAttempt = first;
          }
          r.machineBusyBeforePct = quiet.busyPct;
          r.quietWaitMs = quiet.waitedMs;
          runs[key]!.push(r);
          log(`${name} ${key} #${rep + 1}: ${summaryLine(name, r)} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
        } catch (e) {
          const msg = (e as Error).message;
          errors.push({ scenario: name, target: key, rep, error: msg.slice(0, 2000) });
          runs[key]!.push({ error: msg.split('\n')[0] });
          log(`${name} ${key} #${rep + 1}: ERROR ${msg}`);
        }
      }
    }
  }
}

/** Waits until both cores together are less than `quietBusyPct` % busy over 0.5 s, or the wait runs out. */
async function waitQuiet(): Promise<{ busyPct: number | null; waitedMs: number }> {
  const t0 = Date.now();
  let busyPct: number | null = null;
  do {
    const b0 = systemBusyMs();
    await sleep(500);
    const b1 = systemBusyMs();
    busyPct = b0 !== null && b1 !== null ? ((b1 - b0) / (500 * os.cpus().length)) * 100 : null;
    if (busyPct === null || busyPct < knobs.quietBusyPct) break;
  } while (Date.now() - t0 < knobs.quietMaxWaitMs);
  const waitedMs = Date.now() - t0;
  if (busyPct !== null && busyPct >= knobs.quietBusyPct) log(`  machine still ${busyPct.toFixed(0)}% busy after ${waitedMs} ms of waiting; running anyway`);
  return { busyPct: busyPct === null ? null : Math.round(busyPct), waitedMs };
}

function summaryLine(name: string, r: any): string {
  const f = (x: number | null | undefined, d = 0) => (x === null || x === undefined ? 'n/a' : x.toFixed(d));
  const other = r.otherCpuPct !== undefined && r.otherCpuPct !== null ? `; other procs ${f(r.otherCpuPct)}% cpu` : '';
  if (name === 'group')
    return `${f(r.rate)} msg/s to ${r.members} members (${f(r.deliveriesPerSec)} deliveries/s) per-recipient p50=${f(r.latency?.p50_ms, 2)} p99=${f(r.latency?.p99_ms, 2)} ms; server cpu ${f(r.server?.cpuPct)}% (${f(r.server?.usPerMessage, 1)} µs/msg)${r.lost ? `; lost=${r.lost}` : ''}${other}`;
  if (name === 'storm')
    return `${r.back}/${r.clients} back in ${f(r.recoveryS, 2)} s, ${r.attempts} attempts ${JSON.stringify(r.refusals)}; storage ${r.storage?.transactions} xacts (${f(r.storage?.perReconnect, 2)}/reconnect, peak ${f(r.storage?.peakPerSec)}/s)`;
  if (name === 'relay' || name === 'attack' || name === 'relay_sqlite_memory' || name === 'cluster')
    return `${f(r.rate)} msg/s p50=${f(r.latency?.p50_ms, 2)} p99=${f(r.latency?.p99_ms, 2)} p999=${f(r.latency?.p999_ms, 2)} ms; server cpu ${f(r.server?.cpuPct)}%, gen cpu ${f(r.cpuPct)}% (${f(r.usPerMessage, 2)} µs/msg)` +
      (r.attacker ? `; attacker sent ${r.attacker.framesSent} frames, connects=${r.attacker.connects}, closes=${JSON.stringify(r.attacker.closes)} refused=${JSON.stringify(r.attacker.refusedHttp)}` : '') +
      (r.lost ? `; lost=${r.lost}` : '') + other;
  if (name === 'handshake') return `${f(r.rate)} conn/s auth p50=${f(r.authLatency?.p50_ms, 2)} p99=${f(r.authLatency?.p99_ms, 2)} ms; failed=${r.failed} ${JSON.stringify(r.failures)}; server cpu ${f(r.server?.cpuPct)}%, gen cpu ${f(r.cpuPct)}%${other}`;
  if (name === 'idle') return r.points.map((p: any) => `${p.open}: ${fmtB(p.rssPerConn)} rss/conn`).join(', ');
  return '';
}

const tRelay = want(knobs.relay.targets);
const tIdle = want(knobs.idle.targets);
const tHs = want(knobs.handshake.targets);
const tAtk = want(knobs.attack.targets);

await scenario('handshake', tHs, runHandshake);
await scenario('relay', tRelay, runRelay);
await scenario('idle', tIdle, runIdle);
await scenario('attack', tAtk, (t) => runAttack(t, (t as any).variant === 'attack'), ['calm', 'attack']);
// Rampart's relay with its SQLite database in memory (no file, no fsync): the storage I/O share of the per-message cost.
await scenario('relay_sqlite_memory', want(['rampart']), (t) => runRelay(t, { storage: 'sqlite::memory:' }));
await scenario('cluster', want(['rampart']), runCluster, ['single_pg', 'cross_node']);
await scenario('group', want(['rampart', 'rampart_b']), runGroup);
await scenario('storm', want(['rampart', 'rampart_b']), runStorm);

// Storage micro-benchmark (in this process: it measures the adapter, not a server).
let storeBench: StoreBenchResult | null = null;
try {
  log('store: direct / group100 / bare append, batches of 100');
  storeBench = await runStoreBench(QUICK ? 1000 : 5000, QUICK ? 2 : 5);
  log(`store: ${JSON.stringify(storeBench.us_per_message)} µs/message; dm vs append ${storeBench.ratios.store_dm_vs_append}`);
} catch (err) {
  errors.push({ scenario: 'store', target: 'sqlite', rep: 0, error: err instanceof Error ? err.message : String(err) });
}

meta.durationSec = Math.round((Date.now() - T_START) / 1000);

// ---------------------------------------------------------------- summaries and ratios
const get = (o: any, p: string): number | null => {
  const v = p.split('.').reduce((a, k) => (a === null || a === undefined ? undefined : a[k]), o);
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
};

function summarizeRuns(runs: any[], paths: string[]): Record<string, ReturnType<typeof spread>> {
  const out: Record<string, ReturnType<typeof spread>> = {};
  for (const p of paths) out[p] = spread(runs.map((r) => get(r, p)));
  return out;
}

const summary: Record<string, Record<string, any>> = {};
const RELAY_PATHS = ['otherCpuPct', 'rate', 'latency.p50_ms', 'latency.p99_ms', 'latency.p999_ms', 'server.cpuPct', 'server.usPerMessage', 'cpuPct', 'usPerMessage', 'storeLatency.p50_ms', 'storeLatency.p99_ms', 'lost'];
const CLUSTER_PATHS = [...RELAY_PATHS, 'servicesCpuPct'];
const HS_PATHS = ['otherCpuPct', 'rate', 'authLatency.p50_ms', 'authLatency.p99_ms', 'server.cpuPct', 'server.usPerConnection', 'cpuPct', 'usPerConnection', 'failed'];
const GROUP_PATHS = ['otherCpuPct', 'rate', 'deliveriesPerSec', 'latency.p50_ms', 'latency.p99_ms', 'latency.p999_ms', 'server.cpuPct', 'server.usPerMessage', 'server.usPerDelivery', 'lost'];
const STORM_PATHS = ['clients', 'back', 'recoveryS', 'attempts', 'storage.transactions', 'storage.perReconnect', 'storage.meanPerSec', 'storage.peakPerSec', 'server.usPerReconnect'];
const ATK_PATHS = ['otherCpuPct', 'rate', 'offeredRate', 'latency.p50_ms', 'latency.p99_ms', 'latency.p999_ms', 'server.cpuPct', 'cpuPct', 'lost', 'foreign', 'attacker.framesSent', 'attacker.framesPerSec', 'attacker.connects', 'attacker.cpuPct'];
for (const [scn, runs] of Object.entries(results)) {
  summary[scn] = {};
  for (const [key, rs] of Object.entries(runs)) {
    if (scn === 'idle') {
      const sizes = knobs.idle.sizes;
      const s: Record<string, any> = {};
      for (const n of sizes) {
        const pts = rs.map((r) => r.points?.find((p: any) => p.target === n) ?? null);
        s[String(n)] = {
          open: spread(pts.map((p) => p?.open ?? null)),
          rssPerConn: spread(pts.map((p) => p?.rssPerConn ?? null)),
          heapPerConn: spread(pts.map((p) => p?.heapPerConn ?? null)),
          metricsHeapPerConn: spread(pts.map((p) => p?.metricsHeapPerConn ?? null)),
          rss: spread(pts.map((p) => p?.mem?.rss ?? null)),
          openRate: spread(pts.map((p) => p?.openRate ?? null)),
        };
      }
      summary[scn]![key] = s;
    } else {
      const paths = scn === 'relay' || scn === 'relay_sqlite_memory' ? RELAY_PATHS : scn === 'cluster' ? CLUSTER_PATHS : scn === 'handshake' ? HS_PATHS : scn === 'group' ? GROUP_PATHS : scn === 'storm' ? STORM_PATHS : ATK_PATHS;
      summary[scn]![key] = summarizeRuns(rs, paths);
    }
  }
}

/** Median over repeats of the per-repeat ratio a[i]/b[i] (paired runs). */
function pairedRatio(a: (number | null)[], b: (number | null)[]): { median: number | null; min: number | null; max: number | null; pairs: (number | null)[] } {
  const pairs = a.map((x, i) => (x !== null && b[i] !== null && b[i] !== undefined && b[i]! > 0 ? x / b[i]! : null));
  const s = spread(pairs);
  return { median: sig(s.median, 4), min: sig(s.min, 4), max: sig(s.max, 4), pairs: pairs.map((p) => sig(p, 4)) };
}
const runsOf = (scn: string, key: string, p: string) => (results[scn]?.[key] ?? []).map((r) => get(r, p));
const idleLargest = (() => {
  const sizes = [...knobs.idle.sizes].sort((x, y) => y - x);
  for (const n of sizes) {
    const ok = (key: string) => (results.idle?.[key] ?? []).some((r) => r.points?.find((p: any) => p.target === n && p.open === n));
    if (ok('rampart') && ok('ws_plain')) return n;
  }
  return sizes[0] ?? null;
})();
const idleRuns = (key: string) => (results.idle?.[key] ?? []).map((r) => r.points?.find((p: any) => p.target === idleLargest)?.rssPerConn ?? null);

const ratioDetail = {
  rampart_vs_ws_plain: pairedRatio(runsOf('relay', 'rampart', 'rate'), runsOf('relay', 'ws_plain', 'rate')),
  rampart_vs_socketio: pairedRatio(runsOf('relay', 'rampart', 'rate'), runsOf('relay', 'socketio', 'rate')),
  memory_vs_ws: { ...pairedRatio(idleRuns('rampart'), idleRuns('ws_plain')), connections: idleLargest },
  handshake_vs_ws: pairedRatio(runsOf('handshake', 'rampart', 'rate'), runsOf('handshake', 'ws_plain', 'rate')),
  attack_p99_vs_calm: pairedRatio(runsOf('attack', 'rampart:attack', 'latency.p99_ms'), runsOf('attack', 'rampart:calm', 'latency.p99_ms')),
};
const med = (scn: string, key: string, p: string): number | null => sig(spread(runsOf(scn, key, p)).median, 4);
const newRatioDetail = {
  cluster_vs_single: {
    ...pairedRatio(runsOf('cluster', 'rampart:cross_node', 'rate'), runsOf('cluster', 'rampart:single_pg', 'rate')),
    cross_node: { msgs_per_s: med('cluster', 'rampart:cross_node', 'rate'), p99_ms: med('cluster', 'rampart:cross_node', 'latency.p99_ms'), server_us_per_msg: med('cluster', 'rampart:cross_node', 'server.usPerMessage') },
    single_pg: { msgs_per_s: med('cluster', 'rampart:single_pg', 'rate'), p99_ms: med('cluster', 'rampart:single_pg', 'latency.p99_ms'), server_us_per_msg: med('cluster', 'rampart:single_pg', 'server.usPerMessage') },
  },
  group100_msgs_per_s: {
    median: med('group', 'rampart', 'rate'),
    members: knobs.group.members,
    senders: knobs.group.senders,
    deliveries_per_s: med('group', 'rampart', 'deliveriesPerSec'),
    per_recipient_p99_ms: med('group', 'rampart', 'latency.p99_ms'),
    server_us_per_msg: med('group', 'rampart', 'server.usPerMessage'),
    runs: runsOf('group', 'rampart', 'rate').map((x) => sig(x, 4)),
  },
  storm_recovery_s: {
    median: med('storm', 'rampart', 'recoveryS'),
    clients: med('storm', 'rampart', 'clients'),
    attempts: med('storm', 'rampart', 'attempts'),
    backoff: { baseMs: knobs.storm.backoffBaseMs, capMs: knobs.storm.backoffCapMs, jitter: 'full' },
    storage_transactions: med('storm', 'rampart', 'storage.transactions'),
    storage_per_reconnect: med('storm', 'rampart', 'storage.perReconnect'),
    storage_mean_per_s: med('storm', 'rampart', 'storage.meanPerSec'),
    storage_peak_per_s: med('storm', 'rampart', 'storage.peakPerSec'),
    runs: runsOf('storm', 'rampart', 'recoveryS').map((x) => sig(x, 4)),
  },
};
Object.assign(ratioDetail, newRatioDetail);
const ratios: Record<string, number | null> = Object.fromEntries(Object.entries(ratioDetail).map(([k, v]) => [k, v.median]));
/** Server CPU µs per relayed message, by server (median over repeats): the per-message pipeline cost. */
const cpuUsPerMessage: Record<string, number | null> = {};
for (const key of Object.keys(results.relay ?? {})) cpuUsPerMessage[key] = med('relay', key, 'server.usPerMessage');
if (results.relay_sqlite_memory) cpuUsPerMessage['Rampart, SQLite in memory'] = med('relay_sqlite_memory', 'rampart', 'server.usPerMessage');
if (results.cluster) {
  cpuUsPerMessage['Rampart, PostgreSQL, one node'] = med('cluster', 'rampart:single_pg', 'server.usPerMessage');
  cpuUsPerMessage['Rampart, PostgreSQL + Redis, two nodes (both counted)'] = med('cluster', 'rampart:cross_node', 'server.usPerMessage');
}
ratios.store_dm_vs_append = storeBench?.ratios.store_dm_vs_append ?? null;
ratios.store_group100_per_recipient_vs_append = storeBench?.ratios.store_group100_per_recipient_vs_append ?? null;

/** Every headline metric: Rampart / bare ws and Rampart / Socket.IO (paired medians). */
const comparisons: { metric: string; unit: string; higherIsBetter: boolean; vs_ws_plain: number | null; vs_socketio: number | null }[] = [];
const cmp = (metric: string, unit: string, higherIsBetter: boolean, scn: string, p: string, ws: string, sio: string, r = 'rampart') =>
  comparisons.push({
    metric, unit, higherIsBetter,
    vs_ws_plain: pairedRatio(runsOf(scn, r, p), runsOf(scn, ws, p)).median,
    vs_socketio: pairedRatio(runsOf(scn, r, p), runsOf(scn, sio, p)).median,
  });
cmp('relay throughput', 'msg/s', true, 'relay', 'rate', 'ws_plain', 'socketio');
cmp('relay p99 latency', 'ms', false, 'relay', 'latency.p99_ms', 'ws_plain', 'socketio');
cmp('handshake+auth rate', 'conn/s', true, 'handshake', 'rate', 'ws_plain', 'socketio');
comparisons.push({
  metric: `RSS per idle authenticated connection (${idleLargest})`, unit: 'bytes', higherIsBetter: false,
  vs_ws_plain: pairedRatio(idleRuns('rampart'), idleRuns('ws_plain')).median,
  vs_socketio: pairedRatio(idleRuns('rampart'), idleRuns('socketio')).median,
});
cmp('good clients p99 under attack', 'ms', false, 'attack', 'latency.p99_ms', 'ws_plain:attack', 'socketio:attack', 'rampart:attack');

const out = {
  meta,
  knobs,
  ratios,
  ratio_detail: ratioDetail,
  cpu_us_per_message: cpuUsPerMessage,
  store: storeBench,
  comparisons,
  summary,
  runs: results,
  errors,
};

const resultsDir = path.join(ROOT, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const jsonFile = env.BENCH_OUT ?? path.join(resultsDir, QUICK ? 'quick.json' : 'latest.json');
writeFileSync(jsonFile, JSON.stringify(out, null, 2) + '\n');
log(`wrote ${path.relative(ROOT, jsonFile)}`);
const writeDocs = env.BENCH_DOCS ? env.BENCH_DOCS === '1' : !QUICK;
if (writeDocs) {
  const files = writeReport(out, ROOT, path.relative(ROOT, jsonFile));
  log(`wrote ${files.join(', ')}`);
}

// ---------------------------------------------------------------- console ratios
console.log('\nRatios (median of paired runs):');
for (const [k, v] of Object.entries(ratioDetail)) console.log(`  ${k.padEnd(22)} ${v.median ?? 'n/a'}  [${v.min ?? '?'}–${v.max ?? '?'}]`);
console.log('\nRampart / bare ws and Rampart / Socket.IO:');
for (const c of comparisons) console.log(`  ${c.metric.padEnd(48)} vs ws ${String(c.vs_ws_plain ?? 'n/a').padEnd(8)} vs socket.io ${c.vs_socketio ?? 'n/a'}`);
console.log(`\ntotal ${meta.durationSec}s; ${errors.length} error(s)`);
if (env.BENCH_KEEP !== '1') rmSync(WORK, { recursive: true, force: true });
else log(`kept ${WORK}`);
void median;
process.exit(errors.length && env.BENCH_STRICT === '1' ? 1 : 0);
