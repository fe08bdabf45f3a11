/**
 * What `rampart serve` prints for a newcomer running on the development key: where it listens
 * (as URLs that parse), and a token command that signs with the same key — the same config file,
 * the `RAMPART_*` variables that decide the key, and, run from elsewhere than the package root,
 * the same working directory (a relative `dataDir`).
 */
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (this file is src/cli/ or dist/cli/). */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', FROM_SOURCE ? 'cli.ts' : 'cli.js');
/**
 * How to run the CLI from anywhere: the source needs tsx (a development checkout, the tests), named
 * by its resolved location (`--import tsx` is looked up from the working directory).
 */
const NODE_CLI = `node ${FROM_SOURCE ? `--import ${shellWord(import.meta.resolve('tsx'))} ` : ''}${shellWord(CLI)}`;

/** A bound address as a URL host: IPv6 in brackets; a wildcard bind as the loopback a local client uses. */
export function urlHost(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return isIP(address) === 6 ? `[${address}]` : address;
}

/** A shell word: as is when it needs no quoting, else single-quoted. */
export function shellWord(word: string): string {
  return /^[\w./:=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The `RAMPART_*` variables that decide which key signs a development token and how (never a
 * secret: the banner is printed only when no key is configured): repeated before the command, so a
 * shell without them signs with the same key. A relative `dataDir` is made absolute.
 */
const TOKEN_ENV = ['RAMPART_DATA_DIR', 'RAMPART_MODE', 'RAMPART_JWT__ALGORITHMS', 'RAMPART_JWT__TYPES', 'RAMPART_JWT__ISSUER', 'RAMPART_JWT__AUDIENCE', 'RAMPART_JWT__MAX_TOKEN_LIFETIME_MS'];

function tokenEnv(env: NodeJS.ProcessEnv, cwd: string): string {
  let out = '';
  for (const name of TOKEN_ENV) {
    const value = env[name];
    if (value === undefined) continue;
    out += `${name}=${shellWord(name === 'RAMPART_DATA_DIR' ? resolve(cwd, value) : value)} `;
  }
  return out;
}

export function startBanner(o: { tls: boolean; address: string; port: number; configFile: string | undefined; sub: string; cwd?: string; env?: NodeJS.ProcessEnv }): string {
  const host = `${urlHost(o.address)}:${o.port}`;
  const cwd = resolve(o.cwd ?? process.cwd());
  const config = o.configFile === undefined ? '' : ` --config ${shellWord(resolve(o.configFile))}`;
  const inRoot = cwd === PACKAGE_ROOT;
  const token = tokenEnv(o.env ?? process.env, cwd) + (inRoot ? `npm run -s token -- --sub ${o.sub}${config}` : `${NODE_CLI} token --sub ${o.sub}${config}`);
  return (
    `\nRampart is listening on ${o.tls ? 'wss' : 'ws'}://${host}/ws (demo page: ${o.tls ? 'https' : 'http'}://${host}/)\n` +
    `Get a development token:  ${token}\n` +
    `Then send {"type":"auth","token":"<token>"} as the first frame.\n\n`
  );
}
