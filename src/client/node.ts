/**
 * `rampart/client/node`: the SDK for Node — `ws` as the WebSocket (Node 20 has no global one)
 * and a file store for the sync state.
 */
import WebSocket from 'ws';
import { RampartClient, type RampartClientOptions } from './rampart-client.js';
import type { WebSocketLike } from './socket.js';

export * from './index.js';
export { FileSyncStore } from './file-sync-store.js';

export interface NodeClientOptions extends RampartClientOptions {
  /** `Origin` header to send (servers with `allowMissingOrigin: false` need one). */
  origin?: string;
}

const CLOSE_TIMEOUT_MS = 1000;

/**
 * A `ws` WebSocket that keeps what a refused handshake said: its status and `Retry-After` (a
 * 429 for an IP lockout says how long it lasts). It is then aborted as `ws` would abort it.
 */
function nodeSocket(url: string, origin: string | undefined): WebSocketLike {
  // A close frame the peer never answers (a dead path) is waited for 1 s, not ws's default 30 s
  // (a socket and a timer kept alive after `close()`); `closeTimeout` is missing from @types/ws.
  const options = { closeTimeout: CLOSE_TIMEOUT_MS, ...(origin !== undefined ? { origin } : {}) } as WebSocket.ClientOptions;
  const ws = new WebSocket(url, options);
  ws.once('unexpected-response', (_req, res) => {
    const seconds = Number(res.headers['retry-after']);
    const refusal = { status: res.statusCode ?? 0, ...(Number.isFinite(seconds) && seconds >= 0 ? { retryAfterMs: seconds * 1000 } : {}) };
    Object.defineProperty(ws, 'refusal', { value: refusal });
    res.resume();
    ws.terminate(); // errors and closes as an unanswered handshake
  });
  return ws as unknown as WebSocketLike;
}

/** A RampartClient whose sockets are `ws` WebSockets. */
export function createNodeClient(options: NodeClientOptions): RampartClient {
  const { origin, ...rest } = options;
  return new RampartClient({
    createSocket: (url) => nodeSocket(url, origin),
    ...rest,
  });
}
