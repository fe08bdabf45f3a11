/**
 * `GET /metrics`, guarded: with a `metrics.token` the request must carry
 * `Authorization: Bearer <token>` (compared in constant time), else 401 and a security event. Who may reach it at all
 * (main port or the dedicated `metrics.port`) is decided by the caller.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsEndpoint {
  registry: Registry;
  /** Bearer token required on every scrape, if set. */
  token?: string;
  /** A scrape refused for a missing or wrong token (the caller logs the security event). */
  onRefused?(req: IncomingMessage): void;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Constant time whatever the lengths: both sides are hashed to 32 bytes first. */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const presented = /^Bearer +(\S+) *$/i.exec(authorization ?? '')?.[1] ?? '';
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0;
}

const HEADERS = { 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' };

export function serveMetrics(req: IncomingMessage, res: ServerResponse, endpoint: MetricsEndpoint): void {
  if (endpoint.token !== undefined && !bearerMatches(req.headers.authorization, endpoint.token)) {
    endpoint.onRefused?.(req);
    res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer', ...HEADERS });
    res.end('unauthorized\n');
    return;
  }
  endpoint.registry.metrics().then(
    (body) => {
      res.writeHead(200, { 'content-type': endpoint.registry.contentType, ...HEADERS });
      res.end(body);
    },
    () => {
      res.writeHead(500, { 'content-type': 'text/plain', ...HEADERS });
      res.end('metrics unavailable\n');
    },
  );
}
