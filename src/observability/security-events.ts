/**
 * The security-event stream: one structured log line per refusal, with its reason, and a counter
 * per reason. Fields are restricted to this shape so nothing sensitive can be attached.
 */
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface SecurityEventFields {
  ip?: string;
  userId?: string;
  /** With `userId`: a user id is unique only within its tenant (what the admin API asks for). */
  tenantId?: string;
  sessionId?: string;
  /** A close code or HTTP status, when the refusal has one. */
  code?: number;
  /** Names of rules/paths, never values. */
  detail?: string;
}

export type SecurityEventSink = (reason: string, fields: SecurityEventFields) => void;

export function createSecurityEventSink(logger: Logger, metrics: Metrics): SecurityEventSink {
  return (reason, fields) => {
    metrics.securityEvents.inc({ reason });
    logger.warn({ event: 'security', reason, ...fields }, 'refused');
  };
}
