/**
 * The token command `rampart serve` prints runs from the directory serve ran in, also with the CLI
 * from source (a development checkout) outside the package root: it named tsx as `--import tsx`,
 * which Node looks up from the working directory, so it failed there (ERR_MODULE_NOT_FOUND)
 * instead of printing a token. It now names tsx by its resolved location.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBanner } from '../../src/cli/start-banner.js';

test('the token command the start banner prints runs from the directory serve ran in', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'rampart-banner-'));
  try {
    const banner = startBanner({ tls: false, address: '127.0.0.1', port: 8080, configFile: undefined, sub: '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10', cwd, env: { RAMPART_DATA_DIR: join(cwd, 'data') } });
    const command = /Get a development token: {2}(.*)\n/.exec(banner)?.[1];
    assert.ok(command, banner);
    const run = spawnSync('/bin/sh', ['-c', command], { cwd, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '' } });
    assert.equal(run.status, 0, `printed command: ${command}\nstderr: ${run.stderr.split('\n').slice(0, 6).join('\n')}`);
    assert.match(run.stdout.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
