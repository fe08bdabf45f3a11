/**
 * The chat domain: messages (direct and group), typing indicators, acks, history, conversation
 * lists and read positions. It never touches a socket: it writes to the Store (messages through the
 * group committer), publishes timeline frames on the Bus, and answers the caller through the
 * `Outbox` it is handed. Group membership changes live in `group-service.ts`.
 */
import { messageId } from './message-id.js';
import type { Bus } from '../bus/bus.js';
import type { Delivery, MessageBody, NewMessage, Store } from '../store/store.js';
import type { GroupCommitter } from '../store/group-commit.js';
import type {
  ChatMessageFrame,
  HistoryFrame,
  ListConversationsFrame,
  ReadFrame,
  TypingIndicatorFrame,
} from '../protocol/client-frames.js';
import type { ConversationInfo, ServerFrame } from '../protocol/server-frames.js';
import type { ErrorReasonValue } from '../protocol/reasons.js';
import type { Identity } from '../auth/token-verifier.js';
import { peerKey } from './authorization.js';
import { TimelinePublisher } from './timeline-publisher.js';
import { toHistoryItem, toWireMessage } from './timeline-frames.js';
import { messageSentFrame, withRequestId } from './replies.js';
import type { ReceiptService } from './receipt-service.js';
import { DuplicateCatchUps } from './duplicate-catch-ups.js';
import { encodeListCursor } from '../store/list-cursor.js';

/** Where replies to the acting user go (a session, in practice). */
export interface Outbox {
  send(frame: string): void;
  sendFrame(frame: ServerFrame): void;
  readonly isOpen: boolean;
  /** Resolves once the socket's unsent bytes are at most `bytes` (or it closed): large replies wait for it. */
  waitForDrain?(bytes: number): Promise<void>;
  /** The sender's `message_sent`, put into this session's timeline stream at `pos` in place of its copy. */
  replyInTimeline(pos: number, frame: string): void;
}

/** Content already checked and sanitized by the pipeline. */
export type ProcessedMessage = Omit<MessageBody, 'replyTo'>;

export interface ChatServiceEvents {
  stored(count: number): void;
  /**
   * Bracket the publish of a stored message: sessions of the recipient on this node receive it
   * synchronously in between (and nothing else), so they can be timed from `receivedAt` (performance.now()).
   */
  publishing(receivedAt: number): void;
  published(): void;
  storeFailed(err: unknown): void;
}

const DEFAULT_HISTORY_PAGE = 50;
const DEFAULT_LIST_PAGE = 50;
/** Failed reads remembered at most (a storage outage; each is forgotten at the pair's next read). */
const UNCERTAIN_READS_MAX = 10_000;

export interface ChatServiceOptions {
  store: Store;
  committer: GroupCommitter;
  bus: Bus;
  publisher: TimelinePublisher;
  groupHistory: 'since_join' | 'all';
  receipts: ReceiptService;
  /** The sender's first message in the conversation was stored: they share their presence there from now on. */
  onFirstWrite?(sender: Identity, conversationId: string): void;
  events: ChatServiceEvents;
  /**
   * Bytes of items a `history` or `conversations` reply holds at most (at least one item), and
   * the unsent bytes a socket may hold before such a reply goes out: a page of 100 maximal
   * messages is ~6 MB, which would trip the slow-consumer bound of the client that asked.
   */
  replyBytes: number;
  /** Server clock (tests may pin it). */
  now?: () => number;
}

export class ChatService {
  private readonly now: () => number;
  private readonly store: Store;
  readonly #duplicates: DuplicateCatchUps;

  constructor(private readonly opts: ChatServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.store = opts.store;
    this.#duplicates = new DuplicateCatchUps({ store: opts.store, publisher: opts.publisher, onError: (err) => opts.events.storeFailed(err), now: this.now });
  }

  /**
   * Store, then acknowledge and deliver. Built only from validated fields: id, senderId and
   * timestamp come from the server, never from the client.
   */
  async sendMessage(sender: Identity, outbox: Outbox, frame: ChatMessageFrame, processed: ProcessedMessage): Promise<void> {
    // The pipeline calls this in the turn the frame was dispatched: the delivery clock starts here.
    const receivedAt = performance.now();
    const now = this.now();
    const message: NewMessage = {
      id: messageId(now),
      tenantId: sender.tenantId,
      senderId: sender.userId,
      to: frame.conversationId !== undefined ? { conversationId: frame.conversationId.toLowerCase() } : { peerId: frame.recipientId!.toLowerCase() },
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
      outbox.sendFrame(refusal('storage_unavailable', frame.clientMsgId));
      return;
    }
    if (outcome.status === 'inbox_full' || outcome.status === 'forbidden') {
      outbox.sendFrame(refusal(outcome.status, frame.clientMsgId));
      return;
    }
    const stored = outcome.message;
    if (outcome.status === 'duplicate') {
      // A reply, not a timeline event. The first attempt may have committed without publishing
      // (its reply lost): the conversation's members read their timelines to be sure.
      outbox.send(messageSentFrame(stored, frame.clientMsgId));
      await this.#duplicates.after(sender, stored);
      return;
    }
    this.opts.events.stored(1);
    let own: Delivery | undefined;
    for (const d of outcome.deliveries) {
      if (d.userId === sender.userId) {
        own = d;
        break;
      }
    }
    // The sending session gets `message_sent` in place of its own copy, in timeline order.
    if (own !== undefined) outbox.replyInTimeline(own.pos, messageSentFrame(stored, frame.clientMsgId, own.pos));
    else outbox.send(messageSentFrame(stored, frame.clientMsgId));
    this.opts.events.publishing(receivedAt);
    try {
      this.opts.publisher.publish(sender.tenantId, stored, outcome.deliveries);
    } finally {
      this.opts.events.published();
    }
    if (outcome.firstWrite === true) this.opts.onFirstWrite?.(sender, stored.conversationId);
  }

  /**
   * Ephemeral: never stored. Direct (v1) goes to the peer, a conversation's to its current members;
   * either way only within a conversation the sender is a member of (a direct one exists once
   * either side wrote): a stranger cannot push indicators to anyone in the tenant.
   */
  async typing(sender: Identity, outbox: Outbox, frame: TypingIndicatorFrame): Promise<void> {
    const flag = frame.isTyping ? 'true' : 'false';
    if (frame.recipientId !== undefined) {
      if ((await this.store.directConversationId(sender.tenantId, sender.userId, frame.recipientId.toLowerCase())) === undefined) {
        outbox.sendFrame({ type: 'error', reason: 'forbidden' });
        return;
      }
      this.opts.bus.publish(
        peerKey(sender.tenantId, frame.recipientId),
        `{"type":"typing_indicator","senderId":"${sender.userId}","isTyping":${flag}}`,
      );
      return;
    }
    const conversationId = frame.conversationId!.toLowerCase();
    const members = await this.store.membersIfMember(sender.tenantId, conversationId, sender.userId);
    if (members === undefined) {
      outbox.sendFrame({ type: 'error', reason: 'forbidden' });
      return;
    }
    const body = `{"type":"typing_indicator","senderId":"${sender.userId}","conversationId":"${conversationId}","isTyping":${flag}}`;
    for (const member of members) if (member !== sender.userId) this.opts.bus.publish(peerKey(sender.tenantId, member), body);
  }

  /**
   * Acks of this node still being written, per user. A later resume of the same user waits for
   * them, so an `ack` followed by a reconnect never replays what was acked just because the two
   * storage calls raced.
   */
  readonly #ackTail = new Map<string, Promise<unknown>>();

  /**
   * `ack {upTo}`, written once `allowed` (the request budget's answer, a Redis round trip away with
   * shared limits) resolves true. It joins the user's acks at once, before that answer: a
   * reconnect's resume point waits for it, and it is written even if its session closed meanwhile
   * (the SDK acks, then closes). Resolves with whether it was written.
   */
  async ack(user: Identity, deviceId: string | undefined, upTo: number, allowed: boolean | Promise<boolean> = true): Promise<boolean> {
    const key = peerKey(user.tenantId, user.userId);
    // One write: the device's position and, for what it newly covers, the user's delivered positions.
    const acknowledge = async (ok: boolean): Promise<boolean> => {
      if (!ok) return false;
      const result = await this.store.acknowledge(user.tenantId, user.userId, deviceId, upTo);
      if (result.delivered.length > 0) this.opts.receipts.delivered(user.tenantId, user.userId, result.delivered);
      return true;
    };
    // Decided already (the memory limiter): written now, as before; else once Redis answered.
    const write = typeof allowed === 'boolean' ? acknowledge(allowed) : allowed.then(acknowledge);
    // The tail settles once this write and every earlier one of the user have settled.
    const tail = Promise.allSettled([this.#ackTail.get(key), write]);
    this.#ackTail.set(key, tail);
    void tail.then(() => {
      if (this.#ackTail.get(key) === tail) this.#ackTail.delete(key);
    });
    return write;
  }

  /**
   * Where a session resumes: its device's acknowledged position, else what no device of the user
   * acknowledged; `after`, when the client sent one, only below that (replay again) — never past
   * it: acks are cumulative and capped at what the stream sent, so a stream starting past what
   * was acknowledged would let its next ack cover events no device was given.
   */
  async resumePoint(user: Identity, deviceId: string | undefined, after: number | undefined): Promise<{ after: number; lastPos: number }> {
    const acks = this.#ackTail.get(peerKey(user.tenantId, user.userId));
    if (acks !== undefined) await acks;
    const state = await this.store.syncState(user.tenantId, user.userId, deviceId);
    const acked = Math.min(state.deviceAckedPos ?? state.userAckedPos, state.lastPos);
    return { after: after === undefined ? acked : Math.min(after, acked), lastPos: state.lastPos };
  }

  /** The user's timeline after `after` (the device stream's reader). */
  timeline(user: Identity, after: number, limit: number) {
    return this.store.timeline(user.tenantId, user.userId, after, limit);
  }

  /** A large reply goes out once the socket holds at most replyBytes unsent: paced like a replay. */
  async #sendReply(outbox: Outbox, reply: ServerFrame): Promise<void> {
    if (outbox.waitForDrain !== undefined) await outbox.waitForDrain(this.opts.replyBytes);
    if (outbox.isOpen) outbox.sendFrame(reply);
  }

  /** (user, conversation) pairs whose last `read` failed: maybe stored, its receipt never sent. Bounded by the clients' own reads. */
  readonly #uncertainReads = new Set<string>();

  /** Last request of each outbox: replies go out in request order. */
  readonly #requestTail = new WeakMap<Outbox, Promise<void>>();

  /** Runs `task` after the outbox's earlier requests; a failure answers `storage_unavailable`. */
  #inOrder(outbox: Outbox, requestId: string | undefined, task: () => Promise<void>): Promise<void> {
    const previous = this.#requestTail.get(outbox);
    const run = async (): Promise<void> => {
      if (!outbox.isOpen) return;
      try {
        await task();
      } catch (err) {
        this.opts.events.storeFailed(err);
        outbox.sendFrame(withRequestId({ type: 'error', reason: 'storage_unavailable' }, requestId));
      }
    };
    const current = previous === undefined ? run() : previous.then(run);
    this.#requestTail.set(outbox, current);
    void current.then(() => {
      if (this.#requestTail.get(outbox) === current) this.#requestTail.delete(outbox);
    });
    return current;
  }

  history(user: Identity, outbox: Outbox, frame: HistoryFrame): Promise<void> {
    return this.#inOrder(outbox, frame.requestId, async () => {
      const ref = frame.conversationId !== undefined ? { conversationId: frame.conversationId.toLowerCase() } : { peerId: frame.peerId!.toLowerCase() };
      const page = await this.store.history(user.tenantId, user.userId, ref, {
        limit: frame.limit ?? DEFAULT_HISTORY_PAGE,
        groupHistory: this.opts.groupHistory,
        ...(frame.beforeSeq !== undefined ? { beforeSeq: frame.beforeSeq } : {}),
        ...(frame.before !== undefined ? { beforeId: frame.before.toLowerCase() } : {}),
      });
      if (page === undefined) {
        outbox.sendFrame(withRequestId({ type: 'error', reason: 'forbidden' }, frame.requestId));
        return;
      }
      const items = page.events.map(toHistoryItem);
      const fit = fitting(items, this.opts.replyBytes);
      const reply: ServerFrame = { type: 'history', messages: fit < items.length ? items.slice(0, fit) : items };
      if (fit < items.length) reply.more = true;
      if (page.conversationId !== undefined) {
        reply.conversationId = page.conversationId;
        const receipts = (await this.opts.receipts.positions(user.tenantId, user.userId, [page.conversationId])).get(page.conversationId);
        if (receipts !== undefined) reply.receipts = receipts;
      }
      if ('peerId' in ref) reply.peerId = ref.peerId;
      await this.#sendReply(outbox, withRequestId(reply, frame.requestId));
    });
  }

  listConversations(user: Identity, outbox: Outbox, frame: ListConversationsFrame): Promise<void> {
    return this.#inOrder(outbox, frame.requestId, async () => {
      const page = await this.store.listConversations(user.tenantId, user.userId, {
        limit: frame.limit ?? DEFAULT_LIST_PAGE,
        groupHistory: this.opts.groupHistory,
        ...(frame.before !== undefined ? { before: frame.before } : {}),
      });
      const receipts = await this.opts.receipts.positions(user.tenantId, user.userId, page.conversations.map((c) => c.conversationId));
      const conversations = page.conversations.map((c): ConversationInfo => {
        const { lastMessage, ...rest } = c;
        const info: ConversationInfo = lastMessage === undefined ? rest : { ...rest, lastMessage: toWireMessage(lastMessage) };
        const r = receipts.get(c.conversationId);
        if (r !== undefined) info.receipts = r;
        return info;
      });
      const fit = fitting(conversations, this.opts.replyBytes);
      const reply: ServerFrame = { type: 'conversations', conversations: fit < conversations.length ? conversations.slice(0, fit) : conversations };
      const last = conversations[fit - 1];
      if (fit < conversations.length && last !== undefined) reply.nextCursor = encodeListCursor(last.lastActivityAt, last.conversationId);
      else if (page.nextCursor !== undefined) reply.nextCursor = page.nextCursor;
      await this.#sendReply(outbox, withRequestId(reply, frame.requestId));
    });
  }

  /**
   * Moves the caller's read position (one write). Every session of the caller gets `read_updated`
   * (other devices update their unread counts; the requesting one also gets the reply with its
   * requestId); unless `private`, the other members get a `receipt`.
   */
  markRead(user: Identity, outbox: Outbox, frame: ReadFrame): Promise<void> {
    return this.#inOrder(outbox, frame.requestId, async () => {
      const conversationId = frame.conversationId.toLowerCase();
      const key = `${peerKey(user.tenantId, user.userId)}\u0000${conversationId}`;
      let result: Awaited<ReturnType<Store['updateRead']>>;
      try {
        result = await this.store.updateRead(user.tenantId, user.userId, conversationId, frame.upToSeq, { private: frame.private === true });
      } catch (err) {
        // It may have been stored all the same (a connection lost at COMMIT): the client reads
        // again, nothing moves then, and the receipt must still go out.
        if (this.#uncertainReads.size >= UNCERTAIN_READS_MAX) this.#uncertainReads.clear();
        this.#uncertainReads.add(key);
        throw err;
      }
      if (result === undefined) {
        outbox.sendFrame(withRequestId({ type: 'error', reason: 'forbidden' }, frame.requestId));
        return;
      }
      outbox.sendFrame(withRequestId({ type: 'read_updated', conversationId, readSeq: result.readSeq }, frame.requestId));
      this.opts.bus.publish(peerKey(user.tenantId, user.userId), JSON.stringify({ type: 'read_updated', conversationId, readSeq: result.readSeq }));
      const uncertain = this.#uncertainReads.delete(key);
      if (result.receiptMoved || (uncertain && frame.private !== true && result.receiptSeq > 0)) {
        this.opts.receipts.read(user.tenantId, user.userId, conversationId, result.receiptSeq);
      }
    });
  }
}

function refusal(reason: ErrorReasonValue, clientMsgId: string | undefined): ServerFrame {
  return clientMsgId === undefined ? { type: 'error', reason } : { type: 'error', reason, clientMsgId };
}

/** How many of `items` (at least one) fit in `budget` bytes of JSON. */
function fitting(items: readonly unknown[], budget: number): number {
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    bytes += Buffer.byteLength(JSON.stringify(items[i])) + 1;
    if (bytes > budget && i > 0) return i;
  }
  return items.length;
}
