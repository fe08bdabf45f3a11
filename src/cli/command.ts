/**
 * The shape of a `rampart` subcommand and the one argument parser they share (node:util
 * parseArgs, strict: an unknown flag is an error). Every command answers `--help`.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export interface Command {
  name: string;
  /** One line for `rampart --help`. */
  summary: string;
  /** The full `rampart NAME --help` text. */
  help: string;
  options: Options;
  /** How many positional arguments the command takes at most. */
  maxPositionals: number;
  /** Resolves with the exit code (a long-running command resolves when it is up). */
  run(values: Values, positionals: string[]): Promise<number>;
}

export class UsageError extends Error {}

/**
 * parseArgs' message, but for a stray argument, which it quotes: that may be a secret pasted
 * without its flag (`rampart serve <key>`), and usage errors name flags, never values.
 */
function usageProblem(err: unknown): string {
  if ((err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return 'unexpected argument (this command takes none, or fewer)';
  return err instanceof Error ? err.message : String(err);
}

export const CONFIG_OPTION: Options = { config: { type: 'string', short: 'c' } };

/** Parses `args` for `command`; `--help` prints its help and exits 0 without running it. */
export async function runCommand(command: Command, args: string[]): Promise<number> {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: command.maxPositionals > 0, strict: true }) as typeof parsed;
  } catch (err) {
    throw new UsageError(`${usageProblem(err)}\n\n${command.help}`);
  }
  if (parsed.values.help === true) {
    process.stdout.write(command.help);
    return 0;
  }
  if (parsed.positionals.length > command.maxPositionals) throw new UsageError(`too many arguments\n\n${command.help}`);
  return command.run(parsed.values, parsed.positionals);
}

export const stringValue = (values: Values, name: string): string | undefined => {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
};
