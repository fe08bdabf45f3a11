/**
 * A Rampart server as a separate process (`src/cli.ts serve` through tsx), for tests that must
 * kill -9 it or run several nodes. Resolves once the `listening` log line names its port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { TEST_SECRET } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  nodeId: string;
  port: number;
  url: string;
  exited: Promise<void>;
  /** stdout lines (first 2000) and stderr chunks, for failure messages. */
  output: string[];
}

/**
 * Writes `dir/fileName`: a config file for `serve` with the test defaults (any free port on
 * 127.0.0.1, the test HS256 secret, `dir` as data directory, info logs on stdout — the
 * `listening` line is read from them) under `settings`. Returns its path.
 */
export function writeServerConfig(dir: string, fileName: string, settings: RampartConfigInput): string {
  const file = join(dir, fileName);
  writeFileSync(file, JSON.stringify({ port: 0, host: '127.0.0.1', jwt: { secret: TEST_SECRET }, dataDir: dir, logLevel: 'info', ...settings }));
  return file;
}

/** Our environment without RAMPART_* overrides (the test runner silences logs with one). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RAMPART_')) env[k] = v;
  return env;
}

/** Spawns `serve --config configFile`; the child is pushed to `children` so `after` can kill it. */
export function spawnServerProcess(configFile: string, children: ChildProcess[]): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', configFile], {
    cwd: ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const output: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let found = false;
    // Keep reading stdout for the whole life of the child, or its log writes would block.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (output.length < 2000) output.push(line);
      if (found) return;
      let entry: { msg?: unknown; port?: unknown; nodeId?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.msg === 'listening' && typeof entry.port === 'number' && typeof entry.nodeId === 'string') {
        found = true;
        resolve({ child, nodeId: entry.nodeId, port: entry.port, url: `ws://127.0.0.1:${entry.port}/ws`, exited, output });
      }
    });
    void exited.then(() => {
      if (!found) reject(new Error(`server exited before listening (code ${child.exitCode}): ${output.join('\n')}`));
    });
  });
}

/**
 * Stops every spawned server that is still running: SIGTERM (a graceful close gives back its
 * registry slots and liveness key), then SIGKILL if it has not exited within `graceMs`.
 */
export async function stopServerProcesses(children: readonly ChildProcess[], graceMs = 5000): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
    }),
  );
}
