/**
 * Plain HTTP on the WebSocket port: health, readiness, metrics and the demo page. Everything else
 * is 404; nothing here reflects request data.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { serveMetrics, type MetricsEndpoint } from './metrics-endpoint.js';

export interface HttpRoutesOptions {
  ready(): Promise<boolean>;
  /** `/metrics` on this port; absent → 404 (served on `metrics.port`, or not at all). */
  metrics?: MetricsEndpoint;
  /** Absolute path of the demo page, or undefined to not serve it. */
  demoPage?: string;
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, ...SECURITY_HEADERS, ...extra });
  res.end(body);
}

export function createHttpRoutes(o: HttpRoutesOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' });
    switch (path) {
      case '/healthz':
        return send(res, 200, 'application/json', '{"status":"ok"}\n');
      case '/readyz':
        o.ready().then(
          (ok) => send(res, ok ? 200 : 503, 'application/json', ok ? '{"status":"ready"}\n' : '{"status":"unavailable"}\n'),
          () => send(res, 503, 'application/json', '{"status":"unavailable"}\n'),
        );
        return;
      case '/metrics':
        if (!o.metrics) break;
        return serveMetrics(req, res, o.metrics);
      case '/':
      case '/demo':
        if (!o.demoPage) break;
        readFile(o.demoPage).then(
          (html) =>
            send(res, 200, 'text/html; charset=utf-8', html, {
              // The page needs only itself and a WebSocket back to this server.
              'content-security-policy': "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
              'x-frame-options': 'DENY',
            }),
          () => send(res, 404, 'text/plain', 'not found\n'),
        );
        return;
    }
    send(res, 404, 'text/plain', 'not found\n');
  };
}
