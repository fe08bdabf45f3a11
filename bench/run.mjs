#!/usr/bin/env node
// `npm run bench`: a thin launcher for the TypeScript orchestrator (bench/main.ts), run by tsx.
// Arguments and environment (BENCH_QUICK=1, BENCH_SCENARIOS=…, see docs/benchmarks.md) pass through.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/main.ts'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
