// Preloaded into every server under test (`node --expose-gc --import bench/servers/probe.mjs …`),
// Rampart included, so that all servers are measured the same way without touching their code:
//  - on SIGUSR2: run a full GC (twice) when --expose-gc is on, then write process.memoryUsage()
//    as JSON to $BENCH_PROBE_FILE (atomically: write a temp file, rename);
//  - a watchdog: exit when the bench orchestrator ($BENCH_PARENT_PID) is gone, or after
//    $BENCH_MAX_LIFETIME_MS, so no server outlives a crashed or interrupted bench.
import { writeFileSync, renameSync } from 'node:fs';

const file = process.env.BENCH_PROBE_FILE;
let seq = 0;
if (file) {
  process.on('SIGUSR2', () => {
    const gc = globalThis.gc;
    const t0 = performance.now();
    if (typeof gc === 'function') {
      gc();
      gc();
    }
    const gcMs = performance.now() - t0;
    const m = process.memoryUsage();
    seq += 1;
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify({ seq, gc: typeof gc === 'function', gcMs, ...m }));
    renameSync(tmp, file);
  });
}

const parent = Number(process.env.BENCH_PARENT_PID || 0);
if (parent > 0) {
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      process.exit(0);
    }
  }, 1000).unref();
}
const maxLife = Number(process.env.BENCH_MAX_LIFETIME_MS || 0);
if (maxLife > 0) setTimeout(() => process.exit(0), maxLife).unref();
