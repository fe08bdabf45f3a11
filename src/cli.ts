#!/usr/bin/env node
/**
 * The `rampart` command: `serve`, `token`, `check-config`, `version`; `--help` on each and on
 * `rampart` itself. Each command lives in src/cli/.
 */
import { runCommand, UsageError, type Command } from './cli/command.js';
import { serveCommand } from './cli/serve.js';
import { tokenCommand } from './cli/token.js';
import { checkConfigCommand } from './cli/check-config.js';
import { versionCommand } from './cli/version.js';

const COMMANDS: readonly Command[] = [serveCommand, tokenCommand, checkConfigCommand, versionCommand];

const USAGE = `usage: rampart <command> [options]

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(14)}${c.summary}`).join('\n')}

\`rampart <command> --help\` describes a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write(topic ? topic.help : USAGE);
    return 0;
  }
  if (name === '--version' || name === '-v') return runCommand(versionCommand, []);
  const command = COMMANDS.find((c) => c.name === name);
  // Named only when it looks like a mistyped command: anything else may be a value pasted here.
  if (!command) throw new UsageError(`unknown command${/^[a-z][a-z-]{0,19}$/.test(name) ? ` "${name}"` : ''}\n\n${USAGE}`);
  return runCommand(command, rest);
}

// A closed stdout/stderr (the reader exited) must not turn into a crash or a hang.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    // `serve` keeps running (its server holds the event loop); the others end with their code.
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    // ConfigError and UsageError messages name keys and flags, never values.
    process.stderr.write(`rampart: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
