/**
 * The socket the client drives: the browser's WebSocket API (properties `onopen`, `onmessage`,
 * `onclose`, `onerror`), which Node's `ws` implements too. Handlers are assigned, not added, so
 * detaching them is one assignment each and nothing can stay registered.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  /**
   * A refused handshake as the factory saw it, when it can (Node: `createNodeClient`; a browser
   * sees neither the status nor the headers): the status and the `Retry-After` it carried.
   */
  readonly refusal?: { status: number; retryAfterMs?: number };
  /** Drops the connection without a close handshake (Node's `ws` has it; a browser's WebSocket does not). */
  terminate?(): void;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

export const OPEN = 1;

/** Default factory: the platform's global WebSocket (browsers, Node ≥ 22). */
export function globalWebSocketFactory(): WebSocketFactory {
  const Ctor = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (!Ctor) throw new Error('no global WebSocket: pass `WebSocket` or `createSocket` (in Node, use rampart/client/node)');
  return (url) => new Ctor(url);
}

/** The HTTP status of a refused handshake, when the socket library reports one (`ws` does, in its error message). */
export function handshakeStatus(ev: unknown): number | undefined {
  const message = (ev as { message?: unknown; error?: { message?: unknown } } | null)?.message ?? (ev as { error?: { message?: unknown } } | null)?.error?.message;
  if (typeof message !== 'string') return undefined;
  const m = /Unexpected server response: (\d{3})/.exec(message);
  return m ? Number(m[1]) : undefined;
}

export function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  // Keep a no-op error handler: `ws` throws on an 'error' event nobody listens to.
  ws.onerror = () => {};
}

/**
 * Gives up a connection the network stopped answering (a heartbeat or connect timeout): dropped at
 * once where the socket can be (Node), so it holds no socket or timer while a close frame waits
 * for an answer that will not come; a browser closes it itself.
 */
export function abandon(ws: WebSocketLike, reason: string): void {
  try {
    if (ws.terminate !== undefined) ws.terminate();
    else ws.close(1000, reason);
  } catch {
    // already closing
  }
}
