/**
 * Shared plumbing of the load-generator processes: the IPC channel to the orchestrator, a
 * self-destruct timer (every worker stops by itself), CPU accounting, and a bounded-concurrency
 * connection opener.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RawConn, type ConnHandlers, type ConnOptions } from './wire.js';
import { wsPath, type Proto } from './proto.js';

export type Msg = { cmd?: string; ev?: string; [k: string]: unknown };

export function send(msg: Msg): void {
  if (process.send) process.send(msg);
}

/** Resolves with the first message whose `cmd` is `cmd`. */
export function waitCmd<T extends Msg>(cmd: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: Msg) => {
      if (m && m.cmd === cmd) {
        process.off('message', on);
        resolve(m as T);
      }
    };
    process.on('message', on);
  });
}

/** Exits when the orchestrator goes away, or after `maxMs` whatever happens. */
export function guard(maxMs: number): void {
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => {
    console.error(`[${process.argv[1]}] hard time limit ${maxMs} ms reached, exiting`);
    process.exit(3);
  }, maxMs).unref();
}

export function cpuMs(prev?: NodeJS.CpuUsage): { user: number; system: number; total: number } {
  const u = process.cpuUsage(prev);
  return { user: u.user / 1000, system: u.system / 1000, total: (u.user + u.system) / 1000 };
}

/** Loopback source addresses to spread connections over (127.0.0.0/8 is all local). */
export function sourceAddress(list: string[] | undefined, i: number): string | undefined {
  if (!list || list.length === 0) return undefined;
  return list[i % list.length];
}

/**
 * Opens `count` connections with at most `concurrency` handshakes in flight. `onConn` wires
 * each connection's handlers; the connection reports done via the returned `settle` callback.
 */
export function openMany(
  count: number,
  concurrency: number,
  make: (i: number, settle: (ok: boolean) => void) => RawConn,
  timeoutMs: number,
): Promise<{ ok: number; failed: number; timedOut: boolean }> {
  return new Promise((resolve) => {
    let next = 0;
    let inflight = 0;
    let ok = 0;
    let failed = 0;
    let finished = false;
    const timer = setTimeout(() => finish(true), timeoutMs);
    const finish = (timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve({ ok, failed, timedOut });
    };
    const launch = () => {
      while (!finished && inflight < concurrency && next < count) {
        const i = next++;
        inflight++;
        let done = false;
        make(i, (success) => {
          if (done) return;
          done = true;
          inflight--;
          if (success) ok++;
          else failed++;
          if (ok + failed === count) finish(false);
          else launch();
        });
      }
    };
    if (count === 0) finish(false);
    else launch();
  });
}

export { RawConn, type ConnHandlers, type ConnOptions };

/** What every load process is told about the server under test. */
export interface TargetConfig {
  proto: Proto;
  host: string;
  port: number;
  rampartPath: string;
  origin: string;
  secret: string;
  /** Hard stop for the whole process. */
  maxMs: number;
}

/** The common start of a load process: wait for its config, arm the hard stop, resolve the WebSocket path. */
export async function startLoad<C extends TargetConfig>(): Promise<{ cfg: C; proto: Proto; path: string }> {
  const { cfg } = await waitCmd<{ cmd: string; cfg: C }>('start');
  guard(cfg.maxMs);
  return { cfg, proto: cfg.proto, path: wsPath(cfg.proto, cfg.rampartPath) };
}

/**
 * The measured window every load generator shares: warm up, then measure for `measureMs` with
 * the generator's own CPU time beside it. `setPhase(1)` when the window opens, `setPhase(2)`
 * when it closes (the generator counts only what happens in phase 1).
 */
export async function measureWindow(
  cfg: { warmupMs: number; measureMs: number },
  setPhase: (phase: 1 | 2) => void,
): Promise<{ measuredMs: number; cpu: ReturnType<typeof cpuMs> }> {
  await sleep(cfg.warmupMs);
  setPhase(1);
  const tm0 = performance.now();
  const cpu0 = process.cpuUsage();
  send({ ev: 'measure_start' });
  await sleep(cfg.measureMs);
  const cpu = cpuMs(cpu0);
  const tm1 = performance.now();
  setPhase(2);
  send({ ev: 'measure_end' });
  return { measuredMs: tm1 - tm0, cpu };
}
