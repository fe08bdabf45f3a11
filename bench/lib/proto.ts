/**
 * The three wire dialects the load generator speaks, over the same raw client:
 *  - `bare`: the baseline `ws` relays (auth frame names its own userId; no verification);
 *  - `rampart`: Rampart's protocol v1 (design.md);
 *  - `socketio`: Engine.IO v4 / Socket.IO v5 packets over a WebSocket (`0` open, `2`/`3` ping/pong,
 *    `40{auth}` connect, `42[event,data]` events, `44` connect error).
 */
import { SignJWT } from 'jose';

export type Proto = 'bare' | 'rampart' | 'socketio';

export const Kind = {
  Other: 0,
  AuthOk: 1,
  AuthFail: 2,
  Chat: 3,
  Sent: 4,
  Error: 5,
  RateLimited: 6,
  SioOpen: 7,
  SioPing: 8,
  Typing: 9,
} as const;
export type KindValue = (typeof Kind)[keyof typeof Kind];

export const KIND_NAMES = ['other', 'auth_ok', 'auth_fail', 'chat', 'sent', 'error', 'rate_limited', 'sio_open', 'sio_ping', 'typing'];

const TYPE = Buffer.from('"type":"');
const SIO_PONG_TEXT = '3';

export function wsPath(proto: Proto, rampartPath: string): string {
  return proto === 'socketio' ? '/socket.io/?EIO=4&transport=websocket' : proto === 'rampart' ? rampartPath : '/';
}

/** The text to send once the WebSocket is open; null when the server speaks first (Socket.IO). */
export function authOnOpen(proto: Proto, token: string, userId: string): string | null {
  if (proto === 'socketio') return null;
  if (proto === 'bare') return JSON.stringify({ type: 'auth', token, userId });
  return JSON.stringify({ type: 'auth', token });
}

/** The Socket.IO namespace connect packet carrying the token (sent after the Engine.IO open packet). */
export function sioConnect(token: string): string {
  return `40${JSON.stringify({ token })}`;
}
export const SIO_PONG = SIO_PONG_TEXT;

/** One message's text; `content` may contain fixed-width '#' slot markers. */
export function chatText(proto: Proto, recipientId: string, content: string, clientMsgId?: string): string {
  const body: Record<string, unknown> = { type: 'chat_message', recipientId, content };
  if (proto === 'rampart' && clientMsgId !== undefined) body.clientMsgId = clientMsgId;
  if (proto === 'socketio') return `42${JSON.stringify(['chat_message', { recipientId, content }])}`;
  return JSON.stringify(body);
}

export function typingText(proto: Proto, recipientId: string): string {
  if (proto === 'socketio') return `42${JSON.stringify(['typing_indicator', { recipientId, isTyping: true }])}`;
  return JSON.stringify({ type: 'typing_indicator', recipientId, isTyping: true });
}

/** v2: acks are cumulative, by timeline position. */
export function ackText(upTo: number): string {
  return `{"type":"ack","upTo":${upTo}}`;
}

/** Classifies one server text message without decoding it. */
export function classify(proto: Proto, buf: Buffer, start: number, end: number): KindValue {
  if (proto === 'socketio') {
    const c0 = buf[start];
    if (c0 === 0x34 /* 4 */) {
      const c1 = buf[start + 1];
      if (c1 === 0x32 /* 2 */) {
        // 42["chat_message",...] / 42["typing_indicator",...]
        const c = buf[start + 4];
        return c === 0x63 ? Kind.Chat : c === 0x74 ? Kind.Typing : Kind.Other;
      }
      if (c1 === 0x30) return Kind.AuthOk; // 40{"sid":...}
      if (c1 === 0x34) return Kind.AuthFail; // 44{"message":...}
      return Kind.Other;
    }
    if (c0 === 0x32 /* 2 */) return Kind.SioPing;
    if (c0 === 0x30 /* 0 */) return Kind.SioOpen;
    return Kind.Other;
  }
  const at = buf.indexOf(TYPE, start);
  if (at < 0 || at >= end) return Kind.Other;
  const p = at + TYPE.length;
  // Whole type names: v2 has several types sharing a first letter (receipt / rate_limited,
  // message_sent / message_edited / membership, typing_indicator / timeline_pruned).
  for (const [name, kind] of TYPE_KINDS) {
    if (p + name.length < end && buf[p + name.length] === 0x22 /* " */ && buf.compare(name, 0, name.length, p, p + name.length) === 0) return kind;
  }
  return Kind.Other;
}

const TYPE_KINDS: readonly [Buffer, KindValue][] = [
  ['chat_message', Kind.Chat],
  ['message_sent', Kind.Sent],
  ['auth_success', Kind.AuthOk],
  ['auth_failure', Kind.AuthFail],
  ['error', Kind.Error],
  ['rate_limited', Kind.RateLimited],
  ['typing_indicator', Kind.Typing],
].map(([name, kind]) => [Buffer.from(name as string), kind as KindValue]);

/** HS256 tokens as Rampart expects them: `sub` = user id (UUID v4), `exp` required. */
export async function mintToken(secret: string, sub: string, ttlSec = 3600): Promise<string> {
  const key = new TextEncoder().encode(secret);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSec)
    .sign(key);
}

export async function mintTokens(secret: string, subs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const s of subs) out.push(await mintToken(secret, s));
  return out;
}
