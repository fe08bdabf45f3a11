/**
 * Edits and deletes of chat messages. Who may (the sender; for deletes also a group's owner and
 * admins), the edit window and membership are decided by the Store inside one transaction; this
 * service answers the actor (`message_changed`) and publishes the new timeline event to every
 * member's timeline it was appended to.
 */
import { messageId } from './message-id.js';
import type { MessageChangeOutcome, Store } from '../store/store.js';
import type { DeleteMessageFrame, EditMessageFrame } from '../protocol/client-frames.js';
import type { ServerFrame } from '../protocol/server-frames.js';
import type { Identity } from '../auth/token-verifier.js';
import type { Outbox, ProcessedMessage } from './chat-service.js';
import type { TimelinePublisher } from './timeline-publisher.js';
import { withRequestId } from './replies.js';
import { DuplicateCatchUps } from './duplicate-catch-ups.js';

export interface MessageChangeServiceOptions {
  store: Store;
  publisher: TimelinePublisher;
  editWindowMs: number;
  maxInboxSize: number;
  /** `chat.groupHistory`: who of a group's members an edit or delete reaches (MessageChangeOptions). */
  groupHistory: 'since_join' | 'all';
  storeFailed(err: unknown): void;
  now?: () => number;
}

export class MessageChangeService {
  private readonly now: () => number;
  readonly #duplicates: DuplicateCatchUps;

  constructor(private readonly opts: MessageChangeServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.#duplicates = new DuplicateCatchUps({ store: opts.store, publisher: opts.publisher, onError: opts.storeFailed, now: this.now });
  }

  /** `processed`: the new content, checked and sanitized like a new message's. */
  async edit(actor: Identity, outbox: Outbox, frame: EditMessageFrame, processed: ProcessedMessage): Promise<void> {
    const now = this.now();
    const body = { content: processed.content, mentions: processed.mentions, hashtags: processed.hashtags, links: processed.links };
    await this.#run(actor, outbox, frame, 'edited', () =>
      this.opts.store.editMessage(
        { ...this.#base(actor, frame, now), body },
        { maxInboxSize: this.opts.maxInboxSize, editWindowMs: this.opts.editWindowMs, groupHistory: this.opts.groupHistory },
      ),
    );
  }

  async delete(actor: Identity, outbox: Outbox, frame: DeleteMessageFrame): Promise<void> {
    const now = this.now();
    await this.#run(actor, outbox, frame, 'deleted', () =>
      this.opts.store.deleteMessage(this.#base(actor, frame, now), { maxInboxSize: this.opts.maxInboxSize, groupHistory: this.opts.groupHistory }),
    );
  }

  #base(actor: Identity, frame: EditMessageFrame | DeleteMessageFrame, now: number) {
    return {
      tenantId: actor.tenantId,
      actorId: actor.userId,
      eventId: messageId(now),
      messageId: frame.messageId.toLowerCase(),
      timestamp: now,
      ...(frame.clientMsgId !== undefined ? { clientMsgId: frame.clientMsgId } : {}),
    };
  }

  async #run(
    actor: Identity,
    outbox: Outbox,
    frame: EditMessageFrame | DeleteMessageFrame,
    action: 'edited' | 'deleted',
    change: () => Promise<MessageChangeOutcome>,
  ): Promise<void> {
    const ids = { ...(frame.clientMsgId !== undefined ? { clientMsgId: frame.clientMsgId } : {}) };
    let outcome: MessageChangeOutcome;
    try {
      outcome = await change();
    } catch (err) {
      this.opts.storeFailed(err);
      outbox.sendFrame(withRequestId({ type: 'error', reason: 'storage_unavailable', ...ids }, frame.requestId));
      return;
    }
    const messageId = frame.messageId.toLowerCase();
    let reply: ServerFrame;
    switch (outcome.status) {
      case 'forbidden':
        outbox.sendFrame(withRequestId({ type: 'error', reason: 'forbidden', ...ids }, frame.requestId));
        return;
      case 'duplicate': {
        // Answered as the first time; a clientMsgId used before for another kind of frame is refused.
        const first = outcome.event;
        const same = first.kind === (action === 'edited' ? 'edit' : 'delete') && 'messageId' in first && first.messageId === messageId;
        reply = same
          ? { type: 'message_changed', action, messageId, conversationId: first.conversationId, seq: first.seq, ...ids }
          : { type: 'error', reason: 'forbidden', ...ids };
        outbox.sendFrame(withRequestId(reply, frame.requestId));
        // The first attempt may have committed without publishing (its reply lost): the members
        // read their timelines to be sure.
        if (same) await this.#duplicates.after(actor, first);
        return;
      }
      case 'unchanged':
        outbox.sendFrame(withRequestId({ type: 'message_changed', action, messageId, conversationId: outcome.message.conversationId, ...ids }, frame.requestId));
        return;
      case 'ok':
        outbox.sendFrame(
          withRequestId({ type: 'message_changed', action, messageId, conversationId: outcome.event.conversationId, seq: outcome.event.seq, ...ids }, frame.requestId),
        );
        this.opts.publisher.publish(outcome.event.tenantId, outcome.event, outcome.deliveries);
    }
  }
}
