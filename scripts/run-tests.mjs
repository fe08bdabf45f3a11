#!/usr/bin/env node
// Runs the test suite with Node's own runner. Node 20's `--test` does not expand globs or find
// `.ts` files, so the files are listed here explicitly, layer by layer, and passed by name.
// `node scripts/run-tests.mjs [files...]` runs only the named files.
import { readdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const LAYERS = ['test/unit', 'test/integration', 'test/cluster', 'test/browser', 'test/faults'];

function listLayer(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => join(dir, f));
}

const requested = process.argv.slice(2);
const files = requested.length > 0 ? requested : LAYERS.flatMap(listLayer);
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}

// Type-check everything (src, tests, bench) first: a type error fails the suite.
if (requested.length === 0) {
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'tsconfig.json'], {
    stdio: 'inherit',
  });
  if (tsc.status !== 0) process.exit(tsc.status ?? 1);
}

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`, ...files],
  { stdio: 'inherit', env: { ...process.env, RAMPART_LOG_LEVEL: process.env.RAMPART_LOG_LEVEL ?? 'silent' } },
);
process.exit(result.status ?? 1);
