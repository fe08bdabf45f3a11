/**
 * The `Store` port (storage v2): conversations, messages numbered by a per-conversation `seq`, and
 * one durable timeline per user numbered by a contiguous `pos`. The chat domain depends only on
 * this interface; adapters (SQLite, PostgreSQL) live beside it and pass one contract test suite.
 *
 * Model (docs/architecture.md, "Conversations, timelines and sync"):
 * - A conversation is `direct` (two users of one tenant, found by the pair; created by its first
 *   message) or `group` (a name and members with roles). Ids are UUIDs on the wire; adapters use
 *   compact integer keys inside.
 * - Every event of a conversation (a chat message or a membership change) gets the next `seq`.
 * - Writing an event appends one entry to the timeline of every user it concerns (fan-out on
 *   write): the current members (the sender included, so their other devices get a copy) and, for
 *   a membership change, the users it removed. Timeline positions are 1, 2, 3, … per user with no
 *   gap; once an event with pos N is committed, every pos < N of that user is committed too.
 * - Devices keep an acknowledged position (`ack`); the user keeps the highest position any of its
 *   devices acknowledged (the resume point of a new device: "what no device has acknowledged").
 * - Every method that reads or writes on behalf of a user is scoped by tenant: the same uuid in
 *   another tenant is another user. A conversation of another tenant does not exist for the caller.
 * - Schema 3 adds, per member, `delivered` (moved by `acknowledge`) and a public `read` position
 *   (`updateRead`; a private read moves only the member's own read_seq), and two more event kinds
 *   with their own seq in the conversation and one timeline entry per current member: an edit
 *   (`reply_to` = the edited message, the new body sealed under the edit's id) and a delete
 *   (`reply_to` = the deleted message, no body). The edited message's row holds the latest body and
 *   `edited_at`; a deleted message's row becomes a tombstone (kind 4) and the bodies of its edits are
 *   erased. History lists messages and membership events, not edits or deletes.
 * - Every field derived from what users wrote (content, attachments, mentions, hashtags, links,
 *   group names, names inside membership events) is sealed at rest when a cipher is configured.
 */
import type { Attachment, Link } from '../protocol/server-frames.js';

export type { Attachment, Link };

export type ConversationKind = 'direct' | 'group';
export type MemberRole = 'owner' | 'admin' | 'member';

/** The user-written part of a message, already checked and sanitized by the pipeline. */
export interface MessageBody {
  content: string;
  mentions: string[];
  hashtags: string[];
  links: Link[];
  attachments?: Attachment[];
  replyTo?: string;
}

/** A message to append. `id`, `senderId` and `timestamp` come from the server. */
export interface NewMessage extends MessageBody {
  /** UUIDv7, server-assigned. */
  id: string;
  tenantId: string;
  senderId: string;
  /**
   * `peerId`: the peer's user id — the pair's direct conversation is found or created (a user may
   * write to themselves: a one-member direct conversation). `conversationId`: any conversation the
   * sender is a current member of — a group, or an existing direct conversation (its one or two
   * members receive it, with the recipient's backlog bound as by `peerId`); otherwise `forbidden`.
   */
  to: { peerId: string } | { conversationId: string };
  timestamp: number;
  /** Idempotency key: a second message with the same (tenant, sender, clientMsgId) is not stored. */
  clientMsgId?: string;
}

/**
 * Who sees a member through a conversation. A member's presence and receipts reach the other
 * members only once that member has written in it (a message, whatever became of it): being
 * written to, or added to a group, by someone is no consent to be watched by them — one message,
 * or a group made by a stranger, must not let its sender learn when someone comes online, goes
 * offline, or a device of theirs receives or reads (config `chat.strangerPrivacy`, default true).
 */
export interface Audience {
  /** The current members. */
  members: string[];
  /** Those of them whose presence and receipts the conversation carries (all, with the option off). */
  sharing: string[];
  /** The asking member's own receipt positions (members.delivered_seq, receipt_seq), at least their joined_seq - 1. */
  positions: { delivered: number; read: number };
}

/** Stores take this option (default true); false: every member shares through every conversation (config `chat.strangerPrivacy`). */
export interface PrivacyOption {
  strangerPrivacy?: boolean;
  /**
   * Device rows kept per user (config `chat.maxDevicesPerUser`, default 100): an ack that creates a
   * device row past it drops the user's least-advanced other devices (they then resume as new ones).
   */
  maxDevicesPerUser?: number;
}

/** Default of `PrivacyOption.maxDevicesPerUser` (and of config `chat.maxDevicesPerUser`). */
export const MAX_DEVICES_PER_USER = 100;

/** A chat message as stored. Optional fields are absent (never `undefined`-valued). */
export interface StoredMessage extends MessageBody {
  kind: 'message';
  id: string;
  tenantId: string;
  conversationId: string;
  conversationKind: ConversationKind;
  seq: number;
  senderId: string;
  /** Direct conversations only: the other member (the sender itself for a note to self). */
  recipientId?: string;
  timestamp: number;
  clientMsgId?: string;
  /** Set once the sender edited it: the time of the latest edit (content is the latest). */
  editedAt?: number;
  /**
   * Set once it was deleted: a tombstone. Content, attachments, entities and `replyTo` are erased
   * from storage (content `""`, no entities); id, seq, sender and timestamp stay.
   */
  deletedAt?: number;
  /** Who deleted it (the sender, or a group owner/admin). */
  deletedBy?: string;
}

export type MembershipAction = 'created' | 'added' | 'removed' | 'left' | 'renamed' | 'role_changed';

/** A membership change of a group, stored as an event of the conversation (it has a `seq`). */
export interface MembershipEvent {
  kind: 'membership';
  /** UUIDv7, server-assigned (the request's `eventId`). */
  id: string;
  tenantId: string;
  conversationId: string;
  seq: number;
  action: MembershipAction;
  /** Who did it. */
  actorId: string;
  /**
   * Users the change is about: `created` → every initial member (the creator included); `added`,
   * `removed` → those actually added/removed; `left` → the leaver; `renamed` → []; `role_changed`
   * → the one user whose role changed.
   */
  userIds: string[];
  /** `created` and `renamed`: the group's (new) name. */
  name?: string;
  /** `role_changed`: the new role. `left`/`removed` of the owner: see `newOwnerId`. */
  role?: MemberRole;
  /** Set when this change passed the owner role on (the owner left). */
  newOwnerId?: string;
  timestamp: number;
}

/**
 * An edit of a message, stored as an event of the conversation with its own `seq` (events.kind 2,
 * `reply_to` = the edited message's id, the new body sealed under this event's id). It is appended
 * to every current member's timeline like a message. Deleting the message later erases the body
 * kept here too (content `""`, no entities).
 */
export interface MessageEditEvent {
  kind: 'edit';
  id: string;
  tenantId: string;
  conversationId: string;
  seq: number;
  /** The edited message. */
  messageId: string;
  actorId: string;
  content: string;
  mentions: string[];
  hashtags: string[];
  links: Link[];
  timestamp: number;
  clientMsgId?: string;
}

/** A deletion of a message: an event with its own `seq` (events.kind 3, `reply_to` = the deleted message's id, no content). */
export interface MessageDeleteEvent {
  kind: 'delete';
  id: string;
  tenantId: string;
  conversationId: string;
  seq: number;
  messageId: string;
  actorId: string;
  timestamp: number;
  clientMsgId?: string;
}

export type ConversationEvent = StoredMessage | MembershipEvent | MessageEditEvent | MessageDeleteEvent;
export type MessageChangeEvent = MessageEditEvent | MessageDeleteEvent;

export interface TimelineEntry {
  pos: number;
  event: ConversationEvent;
}

/** One timeline append made by a write: `userId`'s timeline got the event at `pos`. */
export interface Delivery {
  userId: string;
  pos: number;
}

export type AppendOutcome =
  /**
   * Stored now; `deliveries` lists every timeline it was appended to, the sender's included.
   * `firstWrite`: the sender's first message in the conversation (they share their presence and
   * receipts there from now on, see Audience); a store that cannot tell for sure says so too often,
   * never too rarely.
   */
  | { status: 'stored'; message: StoredMessage; deliveries: Delivery[]; firstWrite?: true }
  /** The same (tenant, sender, clientMsgId) was stored before: `message` is the first one; nothing new stored. */
  | { status: 'duplicate'; message: StoredMessage }
  /** Direct only (by `peerId` or by `conversationId`): the recipient's backlog (lastPos − ackedPos) is at `maxInboxSize`: nothing stored. */
  | { status: 'inbox_full' }
  /** By `conversationId`: the sender is not a current member, the group is closed, or no such conversation in this tenant. */
  | { status: 'forbidden' };

export interface AppendOptions {
  /**
   * Backlog bound: events a user may hold that no device of theirs acknowledged. A direct message
   * to a recipient at the bound is refused (`inbox_full`). In a group, a member at the bound is
   * skipped (no timeline entry for them; they see the message in `history` and unread counts) so
   * one absent member cannot block a group. The sender's own copy is always appended.
   */
  maxInboxSize: number;
}

export interface GroupLimits {
  /** Current members a group may have (the creator included). */
  maxGroupMembers: number;
  /** Groups a user may be a current member of. */
  maxGroupsPerUser: number;
  /**
   * Backlog bound (`chat.maxInboxSize`) for membership events: a member at the bound whom the event
   * does not name (a rename, someone else's role change, someone else added, removed or leaving)
   * gets no timeline entry, as for a group message; the actor and the users the event names always
   * do. Absent: no bound.
   */
  maxInboxSize?: number;
}

export type GroupChangeOutcome =
  /** Applied: `event` was appended to the conversation and to every timeline in `deliveries`. */
  | { status: 'ok'; event: MembershipEvent; deliveries: Delivery[] }
  /**
   * Not allowed, or nothing to act on: no such group in the tenant, closed group, the actor is no
   * current member, or lacks the role (only owner/admins add, remove and rename; only the owner
   * changes roles; nobody removes the owner; admins cannot remove admins). One answer for all, so
   * it reveals nothing.
   */
  | { status: 'forbidden' }
  | { status: 'too_many_members' }
  /** The creator or an added member would be in more than `maxGroupsPerUser` groups. */
  | { status: 'too_many_groups' }
  /** Valid but changes nothing (all already members / none of them members / same name / same role). */
  | { status: 'unchanged' }
  /** create_group only: the actor's `clientMsgId` made a group already — `event` is its creation (nothing new stored). */
  | { status: 'duplicate'; event: MembershipEvent };

interface GroupRequest {
  tenantId: string;
  actorId: string;
  /** UUIDv7 of the membership event to store. */
  eventId: string;
  timestamp: number;
}

export interface CreateGroupRequest extends GroupRequest {
  /** The new group's id (UUID, server-assigned). */
  conversationId: string;
  name: string;
  /** Other initial members (the actor is added as `owner`; duplicates and the actor are ignored). */
  memberIds: readonly string[];
  /**
   * The client's key for this create, unique per sender like a message's (one key names one
   * operation of its sender): a create resent with it is answered `duplicate` with the group the
   * first one made, not a second group. A key another operation holds is `forbidden`.
   */
  clientMsgId?: string;
}

export interface AddMembersRequest extends GroupRequest {
  conversationId: string;
  userIds: readonly string[];
}

export type RemoveMembersRequest = AddMembersRequest;

export interface LeaveGroupRequest extends GroupRequest {
  conversationId: string;
}

export interface RenameGroupRequest extends GroupRequest {
  conversationId: string;
  name: string;
}

export interface SetRoleRequest extends GroupRequest {
  conversationId: string;
  userId: string;
  role: 'admin' | 'member';
}

/** Where a device stands in its user's timeline. */
export interface SyncState {
  /** The user's last timeline position (0 when empty). */
  lastPos: number;
  /** Highest position any device of the user acknowledged (0 when none). */
  userAckedPos: number;
  /** This device's acknowledged position; absent for an unknown device or when no device was named. */
  deviceAckedPos?: number;
}

export interface TimelinePage {
  /** Entries with `pos > after`, ascending, at most `limit`. */
  entries: TimelineEntry[];
  /**
   * Oldest position still retained (retention may have pruned older ones); `lastPos + 1` when the
   * timeline holds nothing. A reader that asked for `after + 1 < firstPos` lost events to pruning.
   */
  firstPos: number;
  lastPos: number;
  /**
   * Present when the page read rows it left out (entries a former member may no longer read):
   * how many rows it read and the position of the last. A reader continues after `toPos` (and
   * reports the hole); `count < limit` still means the end of the timeline.
   */
  scanned?: { count: number; toPos: number };
}

export type ConversationRef = { conversationId: string } | { peerId: string };

export interface HistoryQuery {
  /** Return events with `seq < beforeSeq`. */
  beforeSeq?: number;
  /** Message-id cursor (v1): return events older than this message of the same conversation (none if it is not in it). */
  beforeId?: string;
  limit: number;
  /** `since_join`: a group member sees events from the one that added them; `all`: the whole group. */
  groupHistory: 'since_join' | 'all';
}

export interface HistoryPage {
  /** Absent for a direct peer with whom no conversation exists yet. */
  conversationId?: string;
  /** Newest first. */
  events: ConversationEvent[];
}

export interface ConversationSummary {
  conversationId: string;
  kind: ConversationKind;
  /** Groups only. */
  name?: string;
  /** Direct only: the other member. */
  peerId?: string;
  /** The caller's role (groups) — `member` for direct conversations. */
  role: MemberRole;
  memberCount: number;
  /** Last `seq` of the conversation. */
  lastSeq: number;
  /** Time of the last message or membership event (ms); edits and deletes do not move it. */
  lastActivityAt: number;
  /** The newest chat message (not membership event) the caller may see (see groupHistory), if any is retained. */
  lastMessage?: StoredMessage;
  /** The caller's read position (a seq; 0 = nothing read). */
  readSeq: number;
  /** Chat messages by others with `seq > readSeq` that the caller can see. */
  unreadCount: number;
}

export interface ConversationListQuery {
  limit: number;
  /** Opaque cursor from a previous page's `nextCursor`. */
  before?: string;
  /**
   * As in HistoryQuery: with `since_join` (the default) a group's `lastMessage` is never one from
   * before the caller joined — the list must not show what `history` would not.
   */
  groupHistory?: 'since_join' | 'all';
}

export interface ConversationListPage {
  /** Most recent activity first. */
  conversations: ConversationSummary[];
  /** Present when more conversations follow. */
  nextCursor?: string;
}

interface MessageChangeRequest {
  tenantId: string;
  actorId: string;
  /** UUIDv7 of the edit/delete event to store. */
  eventId: string;
  /** The message to change (any conversation of the tenant; membership is checked in the transaction). */
  messageId: string;
  timestamp: number;
  /** Idempotency key, shared with messages: (tenant, actor, clientMsgId) is stored once. */
  clientMsgId?: string;
}

export interface EditMessageRequest extends MessageChangeRequest {
  /** The new body (checked and sanitized); attachments and `replyTo` of the message are kept. */
  body: Pick<MessageBody, 'content' | 'mentions' | 'hashtags' | 'links'>;
}

export type DeleteMessageRequest = MessageChangeRequest;

export interface MessageChangeOptions {
  /**
   * Backlog bound for edits, as for group messages: a member at the bound gets no timeline entry
   * (the actor always does). A delete is appended for every member regardless: erasure must reach
   * every copy, and each message can be deleted once, so a backlog grows past the bound by at
   * most one entry per deleted message.
   */
  maxInboxSize: number;
  /** Edits only: the message must be at most this old (`timestamp - message.timestamp`); 0 forbids every edit. */
  editWindowMs?: number;
  /**
   * As `chat.groupHistory` (default `since_join`): under `since_join`, a group member who joined
   * after the message cannot see it, so gets no timeline entry for its edit (the actor always
   * does). A delete reaches every current member: it carries no content, and a member re-added
   * since may hold the message from an earlier membership.
   */
  groupHistory?: 'since_join' | 'all';
}

export type MessageChangeOutcome =
  /** Applied: `event` appended to the conversation and to every timeline in `deliveries`; `message` is the message as it is now. */
  | { status: 'ok'; event: MessageChangeEvent; message: StoredMessage; deliveries: Delivery[] }
  /** The same (tenant, actor, clientMsgId) was stored before: `event` is that first change; nothing new stored. */
  | { status: 'duplicate'; event: MessageChangeEvent | StoredMessage }
  /** Delete of a message that is already a tombstone, by someone allowed to delete it: nothing stored. */
  | { status: 'unchanged'; message: StoredMessage }
  /**
   * No such message in the tenant, not a chat message, the actor is not a current member of its
   * conversation, not allowed (edit: only the sender, within the window, not deleted; delete: the
   * sender or a group owner/admin). One answer for all (no oracle).
   */
  | { status: 'forbidden' };

/** A member's receipt positions (seqs) in a conversation. */
export interface MemberReceipt {
  userId: string;
  /** Highest seq some device of the member acknowledged (via its timeline). */
  delivered: number;
  /** Highest seq the member marked read publicly (`read` without `private`). */
  read: number;
}

/** Receipt positions of the other current members of a conversation. */
export interface ConversationReceipts {
  /** Minimum over the other current members: every one of them has these seqs (0 when there are none). */
  delivered: number;
  read: number;
  /** Each other member's positions; present only when there are at most `detailMax` of them. */
  members?: MemberReceipt[];
}

export interface AckResult {
  /** The device's (or user's) position after the call, as `ack` returns it. */
  position: number;
  /** Conversations whose `delivered` position of this user moved, with the new position. */
  delivered: { conversationId: string; delivered: number }[];
}

export interface ReadResult {
  /** The caller's own read position (drives unread counts on all their devices). */
  readSeq: number;
  /** The position others see (receipts); a private read does not move it. */
  receiptSeq: number;
  /** True when `receiptSeq` moved. */
  receiptMoved: boolean;
}

export interface Store {
  /** Create or migrate the schema (append-only migrations; a v1 database upgrades in place). Idempotent. */
  init(): Promise<void>;

  /**
   * Append a batch of messages in ONE transaction (group commit). Outcomes in input order. A
   * resolved promise means every `stored` row and its timeline entries are durable. Membership is
   * checked inside the transaction (authoritative on every node).
   */
  appendMessages(batch: readonly NewMessage[], options: AppendOptions): Promise<AppendOutcome[]>;

  createGroup(request: CreateGroupRequest, limits: GroupLimits): Promise<GroupChangeOutcome>;
  addMembers(request: AddMembersRequest, limits: GroupLimits): Promise<GroupChangeOutcome>;
  removeMembers(request: RemoveMembersRequest, limits?: Pick<GroupLimits, 'maxInboxSize'>): Promise<GroupChangeOutcome>;
  /** The owner leaving passes the owner role to the oldest admin, else the longest-standing member; the last member leaving closes the group. */
  leaveGroup(request: LeaveGroupRequest, limits?: Pick<GroupLimits, 'maxInboxSize'>): Promise<GroupChangeOutcome>;
  renameGroup(request: RenameGroupRequest, limits?: Pick<GroupLimits, 'maxInboxSize'>): Promise<GroupChangeOutcome>;
  setRole(request: SetRoleRequest, limits?: Pick<GroupLimits, 'maxInboxSize'>): Promise<GroupChangeOutcome>;

  /**
   * Current member ids of the conversation if `userId` is one of them; `undefined` otherwise (no
   * oracle). `formerToo`: also if `userId` was one (who to tell of a leave whose answer was lost).
   */
  membersIfMember(tenantId: string, conversationId: string, userId: string, options?: { formerToo?: boolean }): Promise<string[] | undefined>;
  /** As membersIfMember, and which of them share their presence and receipts through it (see Audience). */
  audienceOf(tenantId: string, conversationId: string, userId: string): Promise<Audience | undefined>;
  /** The direct conversation of two users of a tenant (`peerId` = `userId`: a note to self), if one exists. */
  directConversationId(tenantId: string, userId: string, peerId: string): Promise<string | undefined>;

  /** Timeline entries of `userId` after `after`, oldest first. */
  timeline(tenantId: string, userId: string, after: number, limit: number): Promise<TimelinePage>;
  syncState(tenantId: string, userId: string, deviceId?: string): Promise<SyncState>;
  /**
   * Move the device's position (or, with no device, only the user's) to `upTo`: never backwards,
   * clamped to `lastPos`; the user's position becomes the max over its devices. One write however
   * many events it covers. Returns the device's (or user's) position after the call.
   */
  ack(tenantId: string, userId: string, deviceId: string | undefined, upTo: number): Promise<number>;

  /** One page of a conversation the caller is or was a member of; `undefined` when they never were (forbidden). A former member sees nothing after their removal. */
  history(tenantId: string, userId: string, ref: ConversationRef, query: HistoryQuery): Promise<HistoryPage | undefined>;
  /** The caller's current conversations, most recent activity first. */
  listConversations(tenantId: string, userId: string, query: ConversationListQuery): Promise<ConversationListPage>;
  /**
   * Move the caller's read position in a conversation they are a member of (never backwards,
   * never beyond its last seq). Returns the position after the call, or `undefined` (forbidden).
   */
  markRead(tenantId: string, userId: string, conversationId: string, upToSeq: number): Promise<number | undefined>;

  /**
   * `ack` that also moves the user's `delivered` position (members.delivered_seq) in every
   * conversation with an entry between the user's previous and new acknowledged position (the
   * highest position any of their devices acknowledged): one UPDATE for all of them, in the same
   * transaction as the ack.
   */
  acknowledge(tenantId: string, userId: string, deviceId: string | undefined, upTo: number): Promise<AckResult>;
  /**
   * `markRead` with privacy: moves the caller's read position; unless `private`, also the position
   * others see (members.receipt_seq). Never backwards, never beyond the last seq. `undefined`: not a current member.
   */
  updateRead(tenantId: string, userId: string, conversationId: string, upToSeq: number, options: { private: boolean }): Promise<ReadResult | undefined>;
  /**
   * Receipt positions of the other current members of each conversation the caller is a current
   * member of (others are left out of the map) — with strangerPrivacy, of those who have written
   * in it (Audience). `detailMax` bounds the per-member list.
   */
  receipts(tenantId: string, userId: string, conversationIds: readonly string[], detailMax: number): Promise<Map<string, ConversationReceipts>>;

  /** Edit a chat message (see `MessageChangeOutcome` for who may). One transaction. */
  editMessage(request: EditMessageRequest, options: MessageChangeOptions): Promise<MessageChangeOutcome>;
  /**
   * Delete a chat message: its row becomes a tombstone (content, attachments, entities, `replyTo`
   * erased, also the bodies kept by its edit events) and a delete event is appended.
   */
  deleteMessage(request: DeleteMessageRequest, options: MessageChangeOptions): Promise<MessageChangeOutcome>;

  /**
   * Who learns `userId`'s presence: users sharing a current conversation with them (current members
   * both), without `userId` — with strangerPrivacy, only conversations `userId` has written in (Audience).
   */
  contactsOf(tenantId: string, userId: string): Promise<string[]>;
  /** The user's presence setting (users.presence: NULL = the configured default). */
  setPresenceVisible(tenantId: string, userId: string, visible: boolean): Promise<void>;
  /** Explicit presence settings of these users (users without one are absent). */
  presenceSettings(tenantId: string, userIds: readonly string[]): Promise<Map<string, boolean>>;

  /** Delete events older than `olderThan` (ms) and the timeline entries that point at them. Returns the number of events deleted. */
  pruneOlderThan(olderThan: number): Promise<number>;
  /** Cheap reachability check for /readyz. Rejects when storage is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
