/**
 * What `ws` refuses in an upgrade request (its own checks in WebSocketServer.handleUpgrade), found
 * before the handshake gate spends an attempt, a slot or a token check on it — and counted as a
 * refused handshake, which ws's own refusal is not.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** ws's `keyRegex`: 16 bytes in base64. */
const KEY = /^[+/0-9A-Za-z]{22}==$/;

export interface WebSocketRequestProblem {
  status: 400 | 405;
  /** The version was refused: the answer names the ones spoken (RFC 6455 §4.4). */
  versions?: true;
}

const BAD: WebSocketRequestProblem = { status: 400 };

/** 405 for a method other than GET, 400 for a missing or malformed WebSocket header; undefined when ws would go on. */
export function websocketRequestProblem(method: string | undefined, headers: IncomingHttpHeaders): WebSocketRequestProblem | undefined {
  if (method !== 'GET') return { status: 405 };
  if (headers.upgrade?.toLowerCase() !== 'websocket') return BAD;
  const key = headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key)) return BAD;
  const version = Number(headers['sec-websocket-version']); // as ws reads it
  return version === 13 || version === 8 ? undefined : { status: 400, versions: true };
}
