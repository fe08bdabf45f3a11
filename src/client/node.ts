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

/** A RampartClient whose sockets are `ws` WebSockets. */
export function createNodeClient(options: NodeClientOptions): RampartClient {
  const { origin, ...rest } = options;
  return new RampartClient({
    createSocket: (url) => new WebSocket(url, origin !== undefined ? { origin } : {}) as unknown as WebSocketLike,
    ...rest,
  });
}
