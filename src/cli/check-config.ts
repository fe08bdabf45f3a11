/**
 * `rampart check-config [FILE]`: every finding of the schema, the consistency rules and the
 * deployment checks, one line each, then a grade. Exits 1 when there is an error.
 */
import { ConfigError, checkSchema, readConfigInput } from '../config/load-config.js';
import { fsCheckContext, grade, runChecks, type Finding } from '../config/production-checks.js';
import { type Command } from './command.js';

const line = (label: 'OK' | 'WARN' | 'ERROR', text: string): string => `${label.padEnd(6)}${text}\n`;
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The report as text, and the exit code. Pure over the config input. */
export function checkConfigReport(input: Record<string, unknown>, unknownEnv: string[], forceProduction: boolean): { text: string; code: number } {
  let text = '';
  const findings: Finding[] = unknownEnv.map((name) => ({ severity: 'warn', key: name, message: 'unknown RAMPART_* environment variable (ignored)' }));
  for (const f of findings) text += line('WARN', `${f.key}: ${f.message}`);
  const schema = checkSchema(forceProduction ? { ...input, mode: 'production' } : input);
  if (!schema.ok) {
    for (const problem of schema.problems) text += line('ERROR', problem);
    text += `grade: F (${plural(schema.problems.length, 'error')}; the schema rules must pass before the deployment checks run)\n`;
    return { text, code: 1 };
  }
  text += line('OK', 'schema and consistency rules');
  const { config } = schema;
  for (const result of runChecks(config, { ...fsCheckContext, unreadableFile: 'warn' })) {
    if (result.findings.length === 0) text += line('OK', result.rule);
    for (const f of result.findings) text += line(f.severity === 'error' ? 'ERROR' : 'WARN', `${f.key}: ${f.message}`);
    findings.push(...result.findings);
  }
  if (config.mode !== 'production') text += 'note: mode is development; the production rules were not applied (--production applies them)\n';
  const errors = findings.filter((f) => f.severity === 'error').length;
  text += `grade: ${grade(findings)} (${plural(errors, 'error')}, ${plural(findings.length - errors, 'warning')}, mode ${config.mode})\n`;
  return { text, code: errors > 0 ? 1 : 0 };
}

/** The report when the input itself could not be read: its problems, then grade F. */
export function unreadableReport(problems: readonly string[]): string {
  let text = '';
  for (const problem of problems) text += line('ERROR', problem);
  return text + `grade: F (${plural(problems.length, 'error')}; the config could not be read)\n`;
}

export const checkConfigCommand: Command = {
  name: 'check-config',
  summary: 'check a config file: every error and warning, and a grade',
  help: `usage: rampart check-config [FILE] [--production]

Reads FILE (JSON) and the RAMPART_* environment as \`serve\` would, and prints every finding:
ERROR (serve refuses to start: always for schema errors, in production mode for the deployment
checks), WARN, and OK for each rule that passed; then a grade (A: no warning … D; F: an error).
Exits 1 when there is an error. Nothing is connected to and no server is started.

  --production   apply the production rules whatever the mode says
`,
  options: { production: { type: 'boolean' } },
  maxPositionals: 1,
  run: async (values, positionals) => {
    const unknownEnv: string[] = [];
    let input: Record<string, unknown>;
    try {
      input = readConfigInput(positionals[0], process.env, { onUnknownEnv: (name) => unknownEnv.push(name) });
    } catch (err) {
      // A file that cannot be read or parsed, or an environment variable that names no key path:
      // reported like every other finding, with a grade, and exit 1 (not the CLI's usage error).
      if (!(err instanceof ConfigError)) throw err;
      process.stdout.write(unreadableReport(err.problems));
      return 1;
    }
    const { text, code } = checkConfigReport(input, unknownEnv, values.production === true);
    process.stdout.write(text);
    return code;
  },
};
