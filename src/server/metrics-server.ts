/**
 * The dedicated metrics listener (`metrics.port` on `metrics.host`, loopback by default): serves
 * `/metrics` only, so scrapers never need the public port. Everything else is 404.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveMetrics, type MetricsEndpoint } from './metrics-endpoint.js';
import { listen } from './listen.js';
import { guardListener, httpServerLimits } from './http-limits.js';
import { requestPath } from './request-path.js';

export interface MetricsServer {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** `http`: the listener's limits (the main port's `limits.headersTimeout` and `limits.maxHeaderSize`). */
export function createMetricsServer(
  port: number,
  host: string,
  endpoint: MetricsEndpoint,
  onError: (err: Error) => void,
  http: { headersTimeout: number; maxHeaderSize: number } = { headersTimeout: 5000, maxHeaderSize: 16384 },
): MetricsServer {
  const server: Server = guardListener(
    createServer(httpServerLimits(http.headersTimeout, http.maxHeaderSize), (req, res) => {
      const path = requestPath(req.url);
      if (req.method === 'GET' && path === '/metrics') return serveMetrics(req, res, endpoint);
      res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end('not found\n');
    }),
  );
  return {
    listen: () => listen(server, port, host, onError),
    close: () =>
      new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
