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

// The browser tests drive Debian's Chromium (never a downloaded browser). On a fresh machine
// running as root, install it; otherwise say exactly what to install, before any test runs.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const needsBrowser = files.some((f) => f.replaceAll('\\', '/').includes('test/browser/'));
if (needsBrowser && !existsSync(CHROMIUM)) {
  const INSTALL = 'apt-get update && apt-get install -y chromium';
  if (process.env.CHROMIUM_PATH === undefined && process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
    console.error(`run-tests: ${CHROMIUM} is missing; installing Debian's chromium (${INSTALL})`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update'], ['install', '-y', 'chromium']]) {
      const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
      if (r.status !== 0) break;
    }
  }
  if (!existsSync(CHROMIUM)) {
    console.error(
      `run-tests: the browser tests need Chromium at ${CHROMIUM}. Install Debian's package as root:\n` +
        `  ${INSTALL}\n` +
        'or point CHROMIUM_PATH at a Chromium binary. No browser is ever downloaded.',
    );
    process.exit(1);
  }
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
  // A test that hangs fails after TEST_TIMEOUT_MS (120 s; the slowest takes ~20 s) instead of holding CI.
  [
    '--import',
    'tsx',
    '--test',
    '--test-reporter=spec',
    `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
    `--test-timeout=${process.env.TEST_TIMEOUT_MS ?? 120_000}`,
    ...files,
  ],
  { stdio: 'inherit', env: { ...process.env, RAMPART_LOG_LEVEL: process.env.RAMPART_LOG_LEVEL ?? 'silent' } },
);
process.exit(result.status ?? 1);
