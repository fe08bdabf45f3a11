/** `rampart version`: the package version. */
import { readFileSync } from 'node:fs';
import type { Command } from './command.js';

/** package.json sits two levels up from both src/cli/ and dist/cli/. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

export const versionCommand: Command = {
  name: 'version',
  summary: 'print the version',
  help: 'usage: rampart version\n\nPrints the Rampart version.\n',
  options: {},
  maxPositionals: 0,
  run: async () => {
    process.stdout.write(`rampart ${packageVersion()} (node ${process.version})\n`);
    return 0;
  },
};
