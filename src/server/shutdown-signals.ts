/**
 * Process signals for `rampart serve`: SIGTERM/SIGINT start the graceful drain (`server.close()`)
 * and the process exits 0 when it finished. A hard timer exits the process (code 1) once
 * `graceMs` has passed whatever still hangs; a second signal exits at once (code 1).
 */
import type { Logger } from '../observability/logger.js';
import { errorSummary } from '../observability/error-summary.js';

export interface Closable {
  readonly logger: Logger;
  close(): Promise<void>;
}

export function exitOnShutdownSignals(server: Closable, graceMs: number, signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      server.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    server.logger.info({ signal, graceMs }, 'shutting down');
    const hard = setTimeout(() => {
      server.logger.error({ graceMs }, 'shutdown grace exceeded: exiting');
      process.exit(1);
    }, graceMs);
    hard.unref();
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.logger.error({ err: errorSummary(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  for (const signal of signals) process.on(signal, stop);
}
