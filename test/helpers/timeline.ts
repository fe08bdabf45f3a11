/**
 * Protocol v2 helpers for tests: authenticate a device (`deviceId`, `after`), correlate requests
 * with their replies (`requestId`, `clientMsgId`), and read a session's timeline stream — the
 * `pos`-carrying frames it received — to check it is contiguous from its resume point.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, after } from 'node:test';
import { openClient, token, newUserId, closeAll, startServer, type Frame, type TestClient, type TestServer } from './harness.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import type { DevTokenClaims } from '../../src/auth/dev-token.js';

export interface DeviceAuth {
  deviceId?: string;
  after?: number;
  claims?: Partial<DevTokenClaims>;
}

/** An authenticated client, its user and its `auth_success` frame. */
export type DeviceClient = TestClient & { userId: string; auth: Frame };

/** Opens a socket and sends `auth` with the v2 fields; resolves with the client and the reply. */
export async function tryDeviceAuth(url: string, sub: string, opts: DeviceAuth = {}): Promise<{ client: DeviceClient; reply: Frame }> {
  const client = openClient(url) as DeviceClient;
  client.userId = sub;
  await client.opened;
  const frame: Record<string, unknown> = { type: 'auth', token: await token({ sub, ...opts.claims }) };
  if (opts.deviceId !== undefined) frame.deviceId = opts.deviceId;
  if (opts.after !== undefined) frame.after = opts.after;
  client.send(frame);
  const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  client.auth = reply;
  return { client, reply };
}

/** Authenticates (throws on `auth_failure`). */
export async function deviceClient(url: string, sub = newUserId(), opts: DeviceAuth = {}): Promise<DeviceClient> {
  const { client, reply } = await tryDeviceAuth(url, sub, opts);
  if (reply.type !== 'auth_success') {
    client.terminate();
    throw new Error(`auth failed: ${String(reply.reason)}`);
  }
  return client;
}

let counter = 0;
export const newRequestId = (): string => `r${++counter}-${randomUUID().slice(0, 8)}`;

const REPLY_TYPES = new Set(['group_updated', 'error', 'rate_limited', 'history', 'conversations', 'read_updated', 'message_changed', 'presence', 'presence_updated', 'sessions', 'session_ended']);

/** A server for the enclosing `describe` block and a maker of its device clients. */
export interface UsersOnServer {
  server(): TestServer;
  user(sub?: string, opts?: DeviceAuth): Promise<DeviceClient>;
}

/**
 * Call inside a `describe`: starts a server with `config()` before the block's tests (after
 * `hooks.setup`) and closes it, every client `user()` opened and then `hooks.teardown`, after them.
 */
export function usersOnServer(
  config: () => RampartConfigInput | Promise<RampartConfigInput>,
  hooks: { setup?(): Promise<void>; teardown?(): Promise<void> } = {},
): UsersOnServer {
  const clients: TestClient[] = [];
  let srv: TestServer | undefined;
  before(async () => {
    await hooks.setup?.();
    srv = await startServer(await config());
  });
  after(async () => {
    await closeAll(...clients);
    await srv?.close();
    await hooks.teardown?.();
  });
  return {
    server: () => srv!,
    async user(sub = newUserId(), opts = {}) {
      const c = await deviceClient(srv!.url, sub, opts);
      clients.push(c);
      return c;
    },
  };
}

/** Sends `frame` with a fresh `requestId` and resolves with the reply that echoes it. */
export function ask(client: TestClient, frame: Record<string, unknown>): Promise<Frame> {
  const requestId = newRequestId();
  const reply = client.next((f) => f.requestId === requestId && REPLY_TYPES.has(f.type), true);
  client.send({ ...frame, requestId });
  return reply;
}

/** `ask`, asserting the reply type. */
export async function expectReply(client: TestClient, frame: Record<string, unknown>, type: string): Promise<Frame> {
  const reply = await ask(client, frame);
  assert.equal(reply.type, type, `${String(frame.type)}: expected ${type}, got ${JSON.stringify(reply)}`);
  return reply;
}

/** Creates a group; resolves with its conversation id (asserts `group_updated`). */
export async function createGroup(owner: TestClient, memberIds: string[], name = 'group'): Promise<string> {
  const reply = await expectReply(owner, { type: 'create_group', name, memberIds }, 'group_updated');
  assert.equal(reply.changed, true);
  assert.equal(reply.seq, 1);
  return String(reply.conversationId);
}

/** Target of a chat message: a user id (direct, v1) or `{ conversationId }`. */
export type Target = string | { conversationId: string };

/** Sends a chat_message with a fresh clientMsgId; resolves with the reply naming it (message_sent, error, rate_limited). */
export function say(from: TestClient, to: Target, content: string, extra: Record<string, unknown> = {}): Promise<Frame> {
  const clientMsgId = typeof extra.clientMsgId === 'string' ? extra.clientMsgId : `m-${randomUUID()}`;
  const reply = from.next((f) => f.clientMsgId === clientMsgId && (f.type === 'message_sent' || f.type === 'error' || f.type === 'rate_limited'), true);
  const target = typeof to === 'string' ? { recipientId: to } : { conversationId: to.conversationId };
  from.send({ type: 'chat_message', ...target, content, clientMsgId, ...extra });
  return reply;
}

/** `say`, asserting `message_sent`. */
export async function said(from: TestClient, to: Target, content: string, extra: Record<string, unknown> = {}): Promise<Frame> {
  const reply = await say(from, to, content, extra);
  assert.equal(reply.type, 'message_sent', `expected message_sent, got ${JSON.stringify(reply)}`);
  return reply;
}

/** One element of a session's timeline stream. */
export interface StreamItem {
  pos: number;
  /** The event id (a message's id for `message_sent`). */
  id: string;
  frame: Frame;
}

const TIMELINE_TYPES = new Set(['chat_message', 'membership', 'message_sent', 'message_edited', 'message_deleted']);

/** Frames that carry a timeline position: `chat_message`, `membership`, `message_edited`, `message_deleted` and the sender's `message_sent`. */
export function isTimelineFrame(f: Frame): boolean {
  return typeof f.pos === 'number' && TIMELINE_TYPES.has(f.type);
}

/** The session's timeline stream, in arrival order (from frame index `from`). */
export function streamOf(client: TestClient, from = 0): StreamItem[] {
  return client.frames
    .slice(from)
    .filter(isTimelineFrame)
    .map((frame) => ({ pos: frame.pos as number, id: String(frame.id), frame }));
}

/** The last position a session received (its `resumeAfter` when nothing came). */
export function lastPosOf(client: DeviceClient): number {
  const s = streamOf(client);
  return s.length === 0 ? Number(client.auth.resumeAfter) : s[s.length - 1]!.pos;
}

/** Asserts the session's stream is resumeAfter+1, resumeAfter+2, … with no gap and no duplicate. */
export function assertContiguous(client: DeviceClient, what = 'stream'): StreamItem[] {
  const s = streamOf(client);
  const start = Number(client.auth.resumeAfter);
  const expected = s.map((_, i) => start + 1 + i);
  assert.deepEqual(s.map((i) => i.pos), expected, `${what}: contiguous from ${start}`);
  return s;
}

/** Waits until the session received the timeline event at `pos`. */
export function waitPos(client: TestClient, pos: number): Promise<Frame> {
  return client.next((f) => isTimelineFrame(f) && (f.pos as number) >= pos);
}

/** Waits until the session received the event `id` (chat_message / membership / message_sent). */
export function waitEvent(client: TestClient, id: string): Promise<Frame> {
  return client.next((f) => isTimelineFrame(f) && f.id === id);
}

export { prng, testSeed } from './seed.js';

/**
 * Rate budgets far above anything a test sends, for tests about conversations and sync rather
 * than limits (the limits tests set their own). Typing is included: it is dropped silently.
 */
export const GENEROUS_BUDGETS = {
  rateLimit: { messagesPerMinute: 100_000, messagesPerHour: 1_000_000, burstLimit: 100_000, burstWindow: 1000 },
  limits: {
    frames: { limit: 100_000, windowMs: 1000 },
    requests: { limit: 100_000, windowMs: 1000 },
    typing: { limit: 100_000, windowMs: 1000 },
    groupCreates: { limit: 100_000, windowMs: 1000 },
    membershipChanges: { limit: 100_000, windowMs: 1000 },
  },
} as const;
