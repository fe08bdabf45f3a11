/**
 * Plain HTTP on the WebSocket port: health, readiness, metrics and the demo page. Everything else
 * is 404; nothing here reflects request data.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { serveMetrics, type MetricsEndpoint } from './metrics-endpoint.js';
import { DEMO_CSP, demoAssets, type DemoAsset } from './demo-assets.js';
import { devRequestAllowed, isDemoName, type DevTokens } from './dev-tokens.js';
import { requestPath } from './request-path.js';

export interface HttpRoutesOptions {
  ready(): Promise<boolean>;
  /** `/metrics` on this port; absent → 404 (served on `metrics.port`, or not at all). */
  metrics?: MetricsEndpoint;
  /** Absolute path of the demo page, or undefined to not serve it (nor its assets). */
  demoPage?: string;
  /** The development token endpoint (`/dev/token`, `/dev/user`); development mode only. */
  devTokens?: DevTokens;
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, ...SECURITY_HEADERS, ...extra });
  res.end(body);
}

/** The demo page and its assets, with a strict CSP (no inline code, Trusted Types enforced). */
function serveDemoAsset(res: ServerResponse, asset: DemoAsset): void {
  readFile(asset.file).then(
    (body) => send(res, 200, asset.type, body, { 'content-security-policy': DEMO_CSP, 'x-frame-options': 'DENY', 'cross-origin-resource-policy': 'same-origin', 'referrer-policy': 'no-referrer' }),
    () => send(res, 404, 'text/plain', 'not found\n'),
  );
}

/** `/dev/token?name=` and `/dev/user?name=`: loopback, same-origin, development only. */
function serveDevToken(req: IncomingMessage, res: ServerResponse, tokens: DevTokens, path: string): void {
  if (!devRequestAllowed(req)) return send(res, 403, 'text/plain', 'forbidden\n');
  const name = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('name') ?? '';
  if (!isDemoName(name)) return send(res, 400, 'application/json', '{"error":"name must be 1..32 of A-Z a-z 0-9 _ -"}\n');
  if (path === '/dev/user') return send(res, 200, 'application/json', JSON.stringify({ userId: tokens.userId(name) }) + '\n');
  tokens.issue(name).then(
    (issued) => send(res, 200, 'application/json', JSON.stringify(issued) + '\n'),
    () => send(res, 500, 'text/plain', 'error\n'),
  );
}

export function createHttpRoutes(o: HttpRoutesOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const assets = o.demoPage ? demoAssets(dirname(o.demoPage)) : undefined;
  return (req, res) => {
    const path = requestPath(req.url);
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
      case '/dev/token':
      case '/dev/user':
        if (!o.devTokens) break;
        return serveDevToken(req, res, o.devTokens, path);
    }
    const asset = assets?.get(path);
    if (asset) return serveDemoAsset(res, asset);
    send(res, 404, 'text/plain', 'not found\n');
  };
}
