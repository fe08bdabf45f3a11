/**
 * What `ws` refuses in an upgrade request (its own checks in WebSocketServer.handleUpgrade), found
 * before the handshake gate spends an attempt, a slot or a token check on it — and counted as a
 * refused handshake, which ws's own refusal is not.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** ws's `keyRegex`: 16 bytes in base64. */
const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** 405 for a method other than GET, 400 for a missing or malformed WebSocket header; undefined when ws would go on. */
export function websocketRequestProblem(method: string | undefined, headers: IncomingHttpHeaders): 400 | 405 | undefined {
  if (method !== 'GET') return 405;
  if (headers.upgrade?.toLowerCase() !== 'websocket') return 400;
  const key = headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key)) return 400;
  const version = Number(headers['sec-websocket-version']); // as ws reads it
  return version === 13 || version === 8 ? undefined : 400;
}
