#!/usr/bin/env node
/**
 * `rampart serve [--config FILE]` starts the server; `rampart token --sub UUID [--role R]
 * [--tid T] [--ttl 1h]` prints a development token signed with the key the server uses.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { randomUUID } from 'node:crypto';
import { ConfigError, loadConfig } from './config/load-config.js';
import { loadOrCreateDevSecret } from './config/dev-key.js';
import { signDevToken } from './auth/dev-token.js';
import { isUserId } from './auth/token-verifier.js';

const USAGE = `usage:
  rampart serve [--config FILE]
  rampart token --sub UUID [--role ROLE] [--tid TENANT] [--ttl 1h] [--config FILE]
`;

async function serve(configFile: string | undefined): Promise<void> {
  const config = loadConfig(configFile);
  // Loaded here, not at the top: `rampart token` should not pay for storage and Redis drivers.
  const { createRampartServer } = await import('./server/rampart-server.js');
  // Synchronous log writes to stdout: pino's default async stream flushes synchronously at exit and
  // spins forever on EPIPE when the log reader went away, so SIGTERM would never end the process.
  // A sync destination stops logging on EPIPE instead.
  const server = await createRampartServer({ config, logDestination: pino.destination({ fd: 1, sync: true }) });
  const address = await server.listen();
  const scheme = config.tls ? 'wss' : 'ws';
  const httpScheme = config.tls ? 'https' : 'http';
  if (!config.jwt.secret && !config.jwt.publicKeyFile && !config.jwt.jwksUrl) {
    process.stderr.write(
      `\nRampart is listening on ${scheme}://${address.address}:${address.port}/ws (demo page: ${httpScheme}://${address.address}:${address.port}/)\n` +
        `Get a development token:  npm run -s token -- --sub ${randomUUID()}\n` +
        `Then send {"type":"auth","token":"<token>"} as the first frame.\n\n`,
    );
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    server.logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  // SIGHUP: new certificate and key for new handshakes; open connections keep theirs.
  process.on('SIGHUP', () => {
    if (config.tls) server.reloadTls();
    else server.logger.warn('SIGHUP ignored: no tls configured');
  });
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function token(values: { sub?: string; role?: string; tid?: string; ttl?: string; config?: string }): Promise<void> {
  if (!values.sub) throw new ConfigError(['--sub: required (a UUID)']);
  if (!isUserId(values.sub)) throw new ConfigError(['--sub: must be a UUID (the server refuses any other subject)']);
  const config = loadConfig(values.config);
  const secret = config.jwt.secret ?? loadOrCreateDevSecret(config.dataDir).secret;
  if (config.jwt.publicKeyFile || config.jwt.jwksUrl) throw new ConfigError(['jwt: tokens for public-key setups come from your identity provider']);
  const jwt = await signDevToken(secret, {
    sub: values.sub,
    ...(values.role ? { role: values.role } : {}),
    ...(values.tid ? { tid: values.tid } : {}),
    ttl: values.ttl ?? '1h',
    ...(config.jwt.issuer ? { issuer: config.jwt.issuer } : {}),
    ...(config.jwt.audience ? { audience: config.jwt.audience } : {}),
  });
  process.stdout.write(jwt + '\n');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      config: { type: 'string', short: 'c' },
      sub: { type: 'string' },
      role: { type: 'string' },
      tid: { type: 'string' },
      ttl: { type: 'string' },
    },
    strict: true,
  });
  if (command === 'serve') return serve(values.config);
  if (command === 'token') return token(values);
  process.stderr.write(USAGE);
  process.exitCode = command === undefined || command === 'help' || command === '--help' ? 0 : 2;
}

// A closed stdout/stderr (the reader exited) must not turn into a crash or a hang.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`rampart: ${err.message}\n`);
  else process.stderr.write(`rampart: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
