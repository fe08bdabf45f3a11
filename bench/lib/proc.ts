/**
 * Process plumbing for the orchestrator: pinned spawning (taskset), the fd soft limit, child
 * tracking (every child is killed by pid when the bench exits), IPC with load workers, free ports,
 * health polling, and per-process CPU time from /proc/<pid>/stat.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, readdirSync, closeSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';

export const hasTaskset = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' }).status === 0;
const clk = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function ulimit(flag: string): number {
  const r = spawnSync('sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' });
  const v = r.stdout.trim();
  return v === 'unlimited' ? Infinity : Number(v) || 0;
}
export const nofileSoft = ulimit('-Sn');
export const nofileHard = ulimit('-Hn');

const children = new Set<ChildProcess>();
function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

export interface SpawnOptions {
  core: number | null;
  ipc?: boolean;
  env?: Record<string, string>;
  logFile: string;
  /** Raise the soft fd limit of the child to this (never above the hard limit). */
  nofile?: number;
}

/** Spawns `argv`, pinned to `core` when taskset exists, output to `logFile`. */
export function spawnPinned(argv: string[], o: SpawnOptions): ChildProcess {
  let cmd = [...argv];
  if (o.core !== null && hasTaskset) cmd = ['taskset', '-c', String(o.core), ...cmd];
  const want = Math.min(o.nofile ?? 0, nofileHard);
  if (want > nofileSoft) cmd = ['bash', '-c', `ulimit -n ${want} && exec "$@"`, 'bench-spawn', ...cmd];
  const fd = openSync(o.logFile, 'a');
  const child = spawn(cmd[0]!, cmd.slice(1), {
    stdio: ['ignore', fd, fd, ...(o.ipc ? (['ipc'] as const) : [])],
    env: { ...process.env, ...o.env },
  });
  closeSync(fd);
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

export function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** CPU time (user+system, ms) of a process from /proc; null if it is gone. */
export function procCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / clk;
  } catch {
    return null;
  }
}

/** VmRSS of a process in bytes, from /proc/<pid>/status. */
export function procRss(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function httpGet(port: number, path: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls GET /healthz until 200, the child exits, or the deadline passes. */
export async function waitHealthy(child: ChildProcess, port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before it was healthy`);
    try {
      const r = await httpGet(port, '/healthz', 1000);
      if (r.status === 200) return;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  throw new Error(`server not healthy on :${port} after ${timeoutMs} ms`);
}

export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}

type Msg = { ev?: string; [k: string]: any };

/** A load-generator process spoken to over IPC. */
export class Worker {
  readonly child: ChildProcess;
  private readonly queue: Msg[] = [];
  private readonly waiters: { ev: string; resolve: (m: Msg) => void }[] = [];
  private readonly hooks = new Map<string, (m: Msg) => void>();
  exitCode: number | null = null;

  constructor(
    readonly name: string,
    script: string,
    readonly logFile: string,
    core: number | null,
    nofile?: number,
  ) {
    const extra = (process.env.BENCH_LOAD_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    this.child = spawnPinned([process.execPath, ...extra, '--import', 'tsx', script], { core, ipc: true, logFile, nofile });
    this.child.on('message', (m: Msg) => {
      const h = m.ev ? this.hooks.get(m.ev) : undefined;
      if (h) h(m);
      const i = this.waiters.findIndex((w) => w.ev === m.ev);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
      else this.queue.push(m);
    });
    this.child.on('exit', (code) => {
      this.exitCode = code ?? -1;
    });
    this.child.on('error', () => {});
  }

  on(ev: string, fn: (m: Msg) => void): void {
    this.hooks.set(ev, fn);
  }

  send(m: Record<string, unknown>): void {
    if (this.child.connected) this.child.send(m);
  }

  next(ev: string, timeoutMs: number): Promise<Msg> {
    const i = this.queue.findIndex((m) => m.ev === ev);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = { ev, resolve: (m: Msg) => (clearTimeout(t), clearInterval(dead), resolve(m)) };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearInterval(dead);
        reject(new Error(`${this.name}: no '${ev}' within ${timeoutMs} ms\n${logTail(this.logFile, 15)}`));
      }, timeoutMs);
      const dead = setInterval(() => {
        if (this.exitCode !== null && !this.queue.some((m) => m.ev === ev)) {
          clearTimeout(t);
          clearInterval(dead);
          const j = this.waiters.indexOf(w);
          if (j >= 0) this.waiters.splice(j, 1);
          reject(new Error(`${this.name} exited (${this.exitCode}) before '${ev}'\n${logTail(this.logFile, 15)}`));
        }
      }, 200);
      this.waiters.push(w);
    });
  }

  /** Lets the worker exit by itself (it does after its result), then terminates it. */
  async stop(): Promise<void> {
    const end = Date.now() + 3000;
    while (this.exitCode === null && Date.now() < end) await sleep(25);
    await stopChild(this.child, 2000);
  }
}

/** Busy CPU time of the whole machine (all cores, ms) from /proc/stat: everything but idle and iowait. */
export function systemBusyMs(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return ((total - f[3]! - f[4]!) * 1000) / clk;
  } catch {
    return null;
  }
}

/**
 * CPU time (ms) of the machine's PostgreSQL and Redis server processes, all of them. In the
 * scenarios that use them they are part of the system under test, not a disturbance.
 */
export function servicesCpuMs(names: readonly string[] = ['postgres', 'redis-server']): number | null {
  let ticks = 0;
  try {
    for (const entry of readdirSync('/proc')) {
      if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      if (!names.includes(stat.slice(open + 1, close))) continue;
      const fields = stat.slice(close + 2).split(' '); // from field 3 (state) on
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    }
  } catch {
    return null;
  }
  return (ticks * 1000) / clk;
}
