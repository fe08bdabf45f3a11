/**
 * The `Store` port (storage v2): conversations, messages numbered by a per-conversation `seq`, and
 * one durable timeline per user numbered by a contiguous `pos`. The chat domain depends only on
 * this interface; adapters (SQLite, PostgreSQL) live beside it and pass one contract test suite.
 *
 * Model (design.md, "Conversations, timelines and devices"):
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

export type ConversationEvent = StoredMessage | MembershipEvent;

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
  /** Stored now; `deliveries` lists every timeline it was appended to, the sender's included. */
  | { status: 'stored'; message: StoredMessage; deliveries: Delivery[] }
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
  | { status: 'unchanged' };

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
  /** Time of the last event (ms). */
  lastActivityAt: number;
  /** The newest chat message (not membership event), if any is retained. */
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
}

export interface ConversationListPage {
  /** Most recent activity first. */
  conversations: ConversationSummary[];
  /** Present when more conversations follow. */
  nextCursor?: string;
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
  removeMembers(request: RemoveMembersRequest): Promise<GroupChangeOutcome>;
  /** The owner leaving passes the owner role to the oldest admin, else the longest-standing member; the last member leaving closes the group. */
  leaveGroup(request: LeaveGroupRequest): Promise<GroupChangeOutcome>;
  renameGroup(request: RenameGroupRequest): Promise<GroupChangeOutcome>;
  setRole(request: SetRoleRequest): Promise<GroupChangeOutcome>;

  /** Current member ids of the conversation if `userId` is one of them; `undefined` otherwise (no oracle). */
  membersIfMember(tenantId: string, conversationId: string, userId: string): Promise<string[] | undefined>;

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

  /** Delete events older than `olderThan` (ms) and the timeline entries that point at them. Returns the number of events deleted. */
  pruneOlderThan(olderThan: number): Promise<number>;
  /** Cheap reachability check for /readyz. Rejects when storage is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
