/**
 * Structured logging with pino. Call sites never pass tokens, query strings or message content;
 * redaction below is the second line of defence for anything that slips through.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export const REDACTED_PATHS = [
  'token',
  '*.token',
  'content',
  '*.content',
  'authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.url',
  'url',
  'query',
  'secret',
  '*.secret',
];

/** Every line carries `nodeId` (when given), so a cluster's logs can be told apart. */
export function createLogger(level: string, destination?: DestinationStream, nodeId?: string): Logger {
  const options = {
    level,
    base: { service: 'rampart', ...(nodeId !== undefined ? { nodeId } : {}) },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A URL with its query string removed: what may appear in a log line. */
export function pathOnly(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
