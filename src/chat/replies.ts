/** Small helpers for reply frames: the request's `requestId` echoed, and the sender's `message_sent`. */
import type { ServerFrame } from '../protocol/server-frames.js';

/** `frame` with the request's `requestId`, when it carried one. */
export function withRequestId<F extends ServerFrame>(frame: F, requestId: string | undefined): F {
  return requestId === undefined ? frame : { ...frame, requestId };
}

/** What `message_sent` reports about the stored message. */
export interface SentMessage {
  id: string;
  timestamp: number;
  conversationId: string;
  seq: number;
}

/**
 * `message_sent` as JSON text, the same text `JSON.stringify` gives for
 * `{type, id, timestamp, conversationId, seq, clientMsgId?, pos?}`. Built by hand because it is sent
 * once per message: id and conversationId are server-made UUIDs and the numbers are integers, so
 * only the client's `clientMsgId` (printable ASCII, which may hold `"` or `\`) needs escaping.
 */
export function messageSentFrame(m: SentMessage, clientMsgId: string | undefined, pos?: number): string {
  const cid = clientMsgId === undefined ? '' : `,"clientMsgId":${JSON.stringify(clientMsgId)}`;
  const at = pos === undefined ? '' : `,"pos":${pos}`;
  return `{"type":"message_sent","id":"${m.id}","timestamp":${m.timestamp},"conversationId":"${m.conversationId}","seq":${m.seq}${cid}${at}}`;
}
