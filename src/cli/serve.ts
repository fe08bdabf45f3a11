/**
 * `rampart serve`: loads and checks the config (production refuses to start on any error of the
 * deployment checks), starts the server, and maps signals: SIGTERM/SIGINT shut down gracefully,
 * SIGHUP reloads the TLS certificate and key.
 */
import { exitOnShutdownSignals } from '../server/shutdown-signals.js';
import { pino } from 'pino';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../config/load-config.js';
import { findingsOf, runChecks } from '../config/production-checks.js';
import { CONFIG_OPTION, stringValue, type Command } from './command.js';
import { startBanner } from './start-banner.js';
import { usesDevelopmentKey } from '../auth/development-key.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'start the server',
  help: `usage: rampart serve [--config FILE]

Starts Rampart. Configuration: FILE (JSON), then RAMPART_* environment variables
(see docs/protocol.md §9). In production mode (mode: "production" or NODE_ENV=production) every
error that \`rampart check-config\` reports refuses the start.

Signals: SIGTERM/SIGINT shut down gracefully; SIGHUP reloads tls.certFile/keyFile/caFile
without dropping open connections.

  -c, --config FILE   the config file
`,
  options: CONFIG_OPTION,
  maxPositionals: 0,
  run: async (values) => {
    // SIGHUP: new certificate and key for new handshakes; open connections keep theirs. Listened
    // for first: Node's default action for SIGHUP ends the process, and a reload (a renewal's
    // `systemctl reload`) may come while storage migrates; it is applied once the server listens.
    let reload: (() => void) | undefined;
    let reloadAsked = false;
    process.on('SIGHUP', () => {
      if (reload === undefined) reloadAsked = true;
      else reload();
    });
    const unknownEnv: string[] = [];
    const config = loadConfig(stringValue(values, 'config'), process.env, { onUnknownEnv: (name) => unknownEnv.push(name) });
    // Loaded here, not at the top: `rampart token` should not pay for storage and Redis drivers.
    const { createRampartServer } = await import('../server/rampart-server.js');
    // Synchronous log writes to stdout: pino's default async stream flushes synchronously at exit and
    // spins forever on EPIPE when the log reader went away, so SIGTERM would never end the process.
    // A sync destination stops logging on EPIPE instead.
    const server = await createRampartServer({ config, logDestination: pino.destination({ fd: 1, sync: true }) });
    for (const variable of unknownEnv) server.logger.warn({ variable }, 'unknown RAMPART_* environment variable ignored');
    if (process.env.NODE_ENV === 'production' && config.mode !== 'production') server.logger.warn('NODE_ENV=production but mode is "development" (set explicitly): production checks are off');
    if (config.mode === 'production') {
      for (const f of findingsOf(runChecks(config))) server.logger.warn({ key: f.key }, f.message);
    }
    // Before listening: a SIGTERM right after "listening" was logged (an orchestrator stopping a
    // pod that just started) must drain, not kill the process with the default action.
    exitOnShutdownSignals(server, config.shutdownGraceMs);
    const address = await server.listen();
    if (usesDevelopmentKey(config.jwt)) {
      const configFile = stringValue(values, 'config');
      process.stderr.write(startBanner({ tls: config.tls !== undefined, address: address.address, port: address.port, configFile, sub: randomUUID() }));
    }
    reload = () => {
      if (config.tls) server.reloadTls();
      else server.logger.warn('SIGHUP ignored: no tls configured');
    };
    if (reloadAsked) reload();
    return 0;
  },
};
