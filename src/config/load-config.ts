/**
 * Loads configuration: one JSON file, then `RAMPART_*` environment overrides, then the schema.
 * Errors name the key and the rule and never echo the value (it may be a secret).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CONTENT_KEY_ID, ConfigSchema, type RampartConfig } from './schema.js';
import { compileOriginPolicy } from '../gate/origin.js';
import { tlsConfigProblems } from '../server/tls-options.js';
import { issuerConfigProblems } from '../auth/issuers.js';
import { storageConfigProblems } from '../store/open-store.js';
import { fsCheckContext, findingsOf, formatFinding, runChecks, type CheckContext } from './production-checks.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const ENV_PREFIX = 'RAMPART_';
/** Variables that are read elsewhere and are not config keys. */
const ENV_IGNORED = new Set(['RAMPART_TEST_PG_URL', 'RAMPART_TEST_REDIS_URL', 'RAMPART_TEST_SEED']);

/** The object shape under a (possibly defaulted/optional) zod schema, if it is an object. */
type SchemaDef = { type?: string; shape?: Record<string, unknown>; innerType?: unknown; valueType?: unknown };

/** The schema's own definition, below optional/default/prefault wrappers. */
function unwrap(schema: unknown): SchemaDef | undefined {
  let node = schema as { _zod?: { def?: SchemaDef } } | undefined;
  for (let i = 0; i < 8 && node?._zod?.def; i++) {
    const def = node._zod.def;
    if (def.innerType === undefined) return def;
    node = def.innerType as typeof node;
  }
  return undefined;
}

function objectShape(schema: unknown): Record<string, unknown> | undefined {
  const def = unwrap(schema);
  return def?.type === 'object' ? def.shape : undefined;
}

const camelCase = (part: string): string => part.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** A variable's key path, and whether every part is a key the schema knows. */
function resolveEnvName(name: string): { path: string[]; known: boolean; text: boolean } {
  let node: unknown = ConfigSchema;
  let known = true;
  const path = name
    .slice(ENV_PREFIX.length)
    .split('__')
    .map((part) => {
      const def = known ? unwrap(node) : undefined;
      if (def?.type === 'object' && def.shape) {
        const wanted = part.replace(/_/g, '').toLowerCase();
        const key = Object.keys(def.shape).find((k) => k.toLowerCase() === wanted);
        if (key !== undefined) {
          node = def.shape[key];
          return key;
        }
      } else if (def?.type === 'record') {
        // Below a record (chat.roles, encryption.keys) any name is a key, read in camelCase like the rest.
        node = def.valueType;
        return camelCase(part);
      }
      // Not a key of an object, or a part below a scalar (RAMPART_PORT__X): names no key.
      known = false;
      return camelCase(part);
    });
  // A key that takes text keeps the value as written: an all-digit token or key id is no number.
  const leaf = known ? unwrap(node) : undefined;
  return { path, known, text: leaf?.type === 'string' || leaf?.type === 'enum' };
}

/**
 * `RAMPART_RATE_LIMIT__BURST_LIMIT` → `['rateLimit', 'burstLimit']` (`__` separates nesting
 * levels). Each part is matched against the schema's own keys ignoring case and underscores, so
 * `RAMPART_MAX_CONNECTIONS_PER_IP` reaches `maxConnectionsPerIP`; a part the schema does not know
 * is camelCased.
 */
export function envNameToPath(name: string): string[] {
  return resolveEnvName(name).path;
}

/** Values are JSON when they parse as JSON (numbers, booleans, arrays), else plain strings (and always strings for text keys). */
function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A `RAMPART_*` variable that names no config key is skipped and reported to `onUnknown` (deploy
 * tools export their own `RAMPART_*` variables); unknown keys in the file stay fatal.
 */
export function applyEnvOverrides(base: Record<string, unknown>, env: NodeJS.ProcessEnv, onUnknown: (name: string) => void = () => {}): Record<string, unknown> {
  const result: Record<string, unknown> = structuredClone(base);
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || ENV_IGNORED.has(name) || raw === undefined) continue;
    const { path, known, text } = resolveEnvName(name);
    if (!known) {
      onUnknown(name);
      continue;
    }
    let node: Record<string, unknown> = result;
    for (const [i, key] of path.slice(0, -1).entries()) {
      const next = Object.hasOwn(node, key) ? node[key] : undefined;
      if (next === undefined) node[key] = {};
      else if (!isPlainObject(next)) throw new ConfigError([`${name}: ${path.slice(0, i + 1).join('.')} is not an object`]);
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1] as string] = text ? raw : parseEnvValue(raw);
  }
  return result;
}

/** An issue's key path; a key of `encryption.keys` that is no valid id may be a key itself, and is not shown. */
function issuePath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  const shown = path.map((part, i) => (i === 2 && path[0] === 'encryption' && path[1] === 'keys' && !CONTENT_KEY_ID.test(String(part)) ? '<key id>' : String(part)));
  return shown.join('.');
}

function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issuePath(issue.path);
    if (issue.code === 'unrecognized_keys') return `${path}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${path}: ${issue.message}`;
  });
}

/** Schema and consistency rules, every mode: the config, or every problem found. */
export function checkSchema(input: unknown): { ok: true; config: RampartConfig } | { ok: false; problems: string[] } {
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) return { ok: false, problems: formatIssues(parsed.error) };
  const config = parsed.data;
  const problems: string[] = [];
  const keys = [config.jwt.secret, config.jwt.publicKeyFile, config.jwt.jwksUrl].filter((k) => k !== undefined);
  if (keys.length > 1) problems.push('jwt: set only one of secret, publicKeyFile, jwksUrl');
  if (config.jwt.algorithms && keys.length === 0 && config.jwt.issuers.length > 0) {
    // Only issuers: there is no top-level key (not even the development one) for it to restrict.
    problems.push('jwt.algorithms: restricts the top-level key, and none is configured (set jwt.issuers[].algorithms)');
  } else if (config.jwt.algorithms) {
    // No key configured means the development secret: HMAC.
    const hmacKey = config.jwt.publicKeyFile === undefined && config.jwt.jwksUrl === undefined;
    if (config.jwt.algorithms.some((alg) => alg.startsWith('HS') !== hmacKey)) {
      problems.push(`jwt.algorithms: ${hmacKey ? 'a shared secret allows only HS256/HS384/HS512' : 'a public key or JWKS allows no HS* algorithm'}`);
    }
  }
  config.allowedOrigins.forEach((origin, i) => {
    try {
      compileOriginPolicy([origin], true);
    } catch {
      problems.push(`allowedOrigins.${i}: must be an origin (scheme://host[:port], lowercase, no path) or a pattern scheme://*.domain[:port]`);
    }
  });
  problems.push(...issuerConfigProblems(config.jwt));
  if (config.tls) problems.push(...tlsConfigProblems(config.tls));
  if (config.heartbeatTimeout < config.heartbeatInterval) problems.push('heartbeatTimeout: must be ≥ heartbeatInterval');
  // Tokens without a role claim would get no permission at all, silently.
  if (!Object.hasOwn(config.chat.roles, config.chat.defaultRole)) {
    problems.push('chat.defaultRole: must name a role of chat.roles (a chat.roles given replaces the default roles: list the default role in it too)');
  }
  if (config.maxPreAuthMessageSize > config.maxMessageSize) problems.push('maxPreAuthMessageSize: must be ≤ maxMessageSize');
  problems.push(...storageConfigProblems(config.storage));
  // An edit of a message retention is deleting could outlive it (an edit carries the new text).
  if (config.chat.editWindowMs >= config.chat.retentionDays * 86_400_000) problems.push('chat.editWindowMs: must be shorter than chat.retentionDays');
  if (config.encryption && !Object.hasOwn(config.encryption.keys, config.encryption.activeKeyId)) {
    problems.push('encryption.activeKeyId: must name one of encryption.keys');
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config };
}

/** Validates; in production mode the errors of the deployment checks (production-checks.ts) are fatal too. */
export function parseConfig(input: unknown, ctx: CheckContext = fsCheckContext): RampartConfig {
  const result = checkSchema(input);
  if (!result.ok) throw new ConfigError(result.problems);
  const { config } = result;
  if (config.mode === 'production') {
    const errors = findingsOf(runChecks(config, ctx)).filter((f) => f.severity === 'error');
    if (errors.length > 0) throw new ConfigError(errors.map(formatFinding));
  }
  return config;
}

export interface ConfigInputOptions {
  /** Called with the name (never the value) of each `RAMPART_*` variable that names no config key. */
  onUnknownEnv?: (name: string) => void;
}

/**
 * The unvalidated config: `file` (if any), then `RAMPART_*` overrides from `env`. `NODE_ENV=production`
 * means `mode: "production"` unless the file or `RAMPART_MODE` set a mode explicitly.
 */
export function readConfigInput(file: string | undefined, env: NodeJS.ProcessEnv = process.env, options: ConfigInputOptions = {}): Record<string, unknown> {
  let raw: unknown = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
    try {
      raw = JSON.parse(text);
    } catch {
      throw new ConfigError([`${file}: not valid JSON`]);
    }
    if (!isPlainObject(raw)) throw new ConfigError([`${file}: must hold a JSON object`]);
  }
  const input = applyEnvOverrides(raw as Record<string, unknown>, env, options.onUnknownEnv);
  if (input.mode === undefined && env.NODE_ENV === 'production') input.mode = 'production';
  return input;
}

/** Reads `file` (if any), applies `RAMPART_*` overrides from `env`, validates. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env, options: ConfigInputOptions = {}): RampartConfig {
  return parseConfig(readConfigInput(file, env, options));
}
