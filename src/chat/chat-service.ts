/**
 * The chat domain: direct messages, typing indicators, delivery acks, history, offline inbox.
 * It never touches a socket: it writes to the Store (through the group committer), publishes on
 * the Bus, and answers the caller through the `Outbox` it is handed.
 */
import { messageId } from './message-id.js';
import type { Bus } from '../bus/bus.js';
import type { Store, StoredMessage } from '../store/store.js';
import type { GroupCommitter } from '../store/group-commit.js';
import type { ChatMessageFrame, HistoryFrame } from '../protocol/client-frames.js';
import type { Attachment, ChatMessage, Link, ServerFrame } from '../protocol/server-frames.js';
import type { Identity } from '../auth/token-verifier.js';
import { peerKey } from './authorization.js';

/** Where replies to the acting user go (a session, in practice). */
export interface Outbox {
  send(frame: string): void;
  sendFrame(frame: ServerFrame): void;
  readonly isOpen: boolean;
}

/** Content already checked and sanitized by the pipeline. */
export interface ProcessedMessage {
  content: string;
  mentions: string[];
  hashtags: string[];
  links: Link[];
  attachments?: Attachment[];
}

export interface ChatServiceEvents {
  stored(count: number): void;
  /**
   * Bracket the publish of a stored message: sessions of the recipient on this node receive it
   * synchronously in between, so they can be timed from `receivedAt` (performance.now()).
   */
  publishing(messageId: string, receivedAt: number): void;
  published(): void;
  storeFailed(err: unknown): void;
}

const DEFAULT_HISTORY_PAGE = 50;
/** Frame prefix our serializer always produces; the id follows at a fixed offset. */
const CHAT_PREFIX = '{"type":"chat_message","id":"';

/** Message id of a serialized chat frame, or undefined for other frames (cheap, no parse). */
export function chatFrameId(frame: string): string | undefined {
  return frame.startsWith(CHAT_PREFIX) ? frame.slice(CHAT_PREFIX.length, CHAT_PREFIX.length + 36) : undefined;
}

/** `m` must come from `toWire`, whose first key is `id`, so `chatFrameId` can read it unparsed. */
export function serializeChatMessage(m: ChatMessage): string {
  return JSON.stringify({ type: 'chat_message', ...m });
}

function toWire(m: StoredMessage): ChatMessage {
  const out: ChatMessage = {
    id: m.id,
    senderId: m.senderId,
    recipientId: m.recipientId,
    content: m.content,
    mentions: m.mentions,
    hashtags: m.hashtags,
    links: m.links,
    timestamp: m.timestamp,
  };
  if (m.replyTo !== undefined) out.replyTo = m.replyTo;
  if (m.attachments !== undefined) out.attachments = m.attachments;
  return out;
}

export interface ChatServiceOptions {
  store: Store;
  committer: GroupCommitter;
  bus: Bus;
  maxInboxSize: number;
  events: ChatServiceEvents;
  /** Server clock (tests may pin it). */
  now?: () => number;
}

export class ChatService {
  private readonly now: () => number;

  constructor(private readonly opts: ChatServiceOptions) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * Store, then acknowledge and deliver. Built only from validated fields: id, senderId and
   * timestamp come from the server, never from the client.
   */
  async sendMessage(sender: Identity, outbox: Outbox, frame: ChatMessageFrame, processed: ProcessedMessage): Promise<void> {
    // The pipeline calls this in the turn the frame was dispatched: the delivery clock starts here.
    const receivedAt = performance.now();
    const now = this.now();
    const message: StoredMessage = {
      id: messageId(now),
      tenantId: sender.tenantId,
      senderId: sender.userId,
      recipientId: frame.recipientId.toLowerCase(),
      content: processed.content,
      mentions: processed.mentions,
      hashtags: processed.hashtags,
      links: processed.links,
      timestamp: now,
    };
    if (frame.replyTo !== undefined) message.replyTo = frame.replyTo.toLowerCase();
    if (processed.attachments !== undefined) message.attachments = processed.attachments;
    if (frame.clientMsgId !== undefined) message.clientMsgId = frame.clientMsgId;

    let outcome;
    try {
      outcome = await this.opts.committer.submit(message);
    } catch (err) {
      this.opts.events.storeFailed(err);
      outbox.sendFrame(withClientMsgId({ type: 'error', reason: 'storage_unavailable' }, frame.clientMsgId));
      return;
    }
    if (outcome.status === 'inbox_full') {
      outbox.sendFrame(withClientMsgId({ type: 'error', reason: 'inbox_full' }, frame.clientMsgId));
      return;
    }
    const stored = outcome.message;
    const ack: ServerFrame = { type: 'message_sent', id: stored.id, timestamp: stored.timestamp };
    if (frame.clientMsgId !== undefined) ack.clientMsgId = frame.clientMsgId;
    outbox.sendFrame(ack);
    if (outcome.status === 'duplicate') return; // delivered when it was first stored
    this.opts.events.stored(1);
    this.opts.events.publishing(stored.id, receivedAt);
    try {
      this.opts.bus.publish(peerKey(stored.tenantId, stored.recipientId), serializeChatMessage(toWire(stored)));
    } finally {
      this.opts.events.published();
    }
  }

  /** Ephemeral: never stored. */
  typing(sender: Identity, recipientId: string, isTyping: boolean): void {
    this.opts.bus.publish(
      peerKey(sender.tenantId, recipientId),
      `{"type":"typing_indicator","senderId":"${sender.userId}","isTyping":${isTyping ? 'true' : 'false'}}`,
    );
  }

  /**
   * Acks of this node still being written, per user. A later `history` or inbox replay of the same
   * user waits for them, so an `ack` followed by a reconnect (or a `history`) never sees the acked
   * messages as pending again just because the two storage calls raced.
   */
  readonly #ackTail = new Map<string, Promise<unknown>>();

  async ack(user: Identity, messageIds: readonly string[]): Promise<void> {
    const key = peerKey(user.tenantId, user.userId);
    const write = this.opts.store.ack(user.tenantId, user.userId, messageIds.map((id) => id.toLowerCase()));
    // The tail settles once this write and every earlier one of the user have settled.
    const tail = Promise.allSettled([this.#ackTail.get(key), write]);
    this.#ackTail.set(key, tail);
    void tail.then(() => {
      if (this.#ackTail.get(key) === tail) this.#ackTail.delete(key);
    });
    await write;
  }

  /** Resolves once every ack of `user` submitted on this node so far has settled. */
  #acksSettled(user: Identity): Promise<unknown> | undefined {
    return this.#ackTail.get(peerKey(user.tenantId, user.userId));
  }

  /** Last history request of each outbox: replies go out in request order (a reply names no cursor). */
  readonly #historyTail = new WeakMap<Outbox, Promise<void>>();

  history(user: Identity, outbox: Outbox, frame: HistoryFrame): Promise<void> {
    const previous = this.#historyTail.get(outbox);
    const run = (): Promise<void> => this.#historyPage(user, outbox, frame);
    // Each request's own promise reports its own failure; the chain only orders them.
    const current = previous === undefined ? run() : previous.then(run, run);
    const tail = current.catch(() => {});
    this.#historyTail.set(outbox, tail);
    void tail.then(() => {
      if (this.#historyTail.get(outbox) === tail) this.#historyTail.delete(outbox);
    });
    return current;
  }

  async #historyPage(user: Identity, outbox: Outbox, frame: HistoryFrame): Promise<void> {
    if (!outbox.isOpen) return;
    const acks = this.#acksSettled(user);
    if (acks !== undefined) await acks;
    const query = { limit: frame.limit ?? DEFAULT_HISTORY_PAGE, ...(frame.before !== undefined ? { before: frame.before.toLowerCase() } : {}) };
    const peerId = frame.peerId.toLowerCase();
    const rows = await this.opts.store.history(user.tenantId, user.userId, peerId, query);
    outbox.sendFrame({ type: 'history', peerId, messages: rows.map(toWire) });
  }

  /**
   * Offline inbox: every unacked message, oldest first, paced by bytes (see `sendPaced`) so the
   * replay never trips the slow-consumer bound. (Pacing by message count is not enough: 100
   * maximal messages are ~6 MB.) Returns the ids sent, so live frames that raced with it are
   * deduplicated.
   */
  async replayInbox(user: Identity, outbox: ReplayOutbox, drainBelow: number): Promise<Set<string>> {
    const acks = this.#acksSettled(user);
    if (acks !== undefined) await acks;
    const pending = await this.opts.store.pendingFor(user.tenantId, user.userId, this.opts.maxInboxSize);
    const sent = new Set<string>();
    let left = pending.length;
    this.#replayBacklog += left;
    try {
      for (let i = 0; i < pending.length && outbox.isOpen; i++) {
        const m = pending[i] as StoredMessage;
        sent.add(m.id);
        const wait = sendPaced(outbox, serializeChatMessage(toWire(m)), drainBelow);
        this.#replayBacklog--;
        left--;
        if (wait !== undefined) await wait;
      }
    } finally {
      this.#replayBacklog -= left; // the session closed mid-replay: those frames are no longer pending here
    }
    return sent;
  }

  #replayBacklog = 0;

  /** Inbox frames read for a replay and not yet written to their session (backlog gauge). */
  get replayBacklog(): number {
    return this.#replayBacklog;
  }
}

/** What the inbox replay needs from a session: sending, and the socket's unsent bytes. */
export interface ReplayOutbox extends Outbox {
  bufferedBytes(): number;
  /** Resolves when the unsent bytes are at most `bytes` (or the socket closed). */
  waitForDrain(bytes: number): Promise<void>;
}

/** Above net.Socket's default high-water mark (16 KiB), so a wait always ends with 'drain'. */
const MIN_DRAIN_THRESHOLD = 64 * 1024;

/**
 * Send `frame`, then, if the socket holds more than `drainBelow` unsent bytes, wait until it
 * drained below that. Never waits below MIN_DRAIN_THRESHOLD: a socket emits 'drain' only once
 * its buffer went past the stream's high-water mark.
 */
export function sendPaced(outbox: ReplayOutbox, frame: string, drainBelow: number): Promise<void> | undefined {
  outbox.send(frame);
  const threshold = Math.max(drainBelow, MIN_DRAIN_THRESHOLD);
  // No promise (and no microtask) per frame unless there is something to wait for.
  return outbox.bufferedBytes() > threshold ? outbox.waitForDrain(threshold) : undefined;
}

function withClientMsgId(frame: { type: 'error'; reason: 'storage_unavailable' | 'inbox_full' }, clientMsgId: string | undefined): ServerFrame {
  return clientMsgId === undefined ? frame : { ...frame, clientMsgId };
}
