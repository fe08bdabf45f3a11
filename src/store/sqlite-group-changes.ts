/**
 * Group membership changes for the SQLite store (create, add, remove, leave, rename, set role):
 * each runs inside the store's write transaction, appends one membership event and a timeline
 * entry per recipient, or returns a refusal (which the store rolls back).
 */
import { EVENT_MEMBERSHIP, KIND_GROUP, ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER, type EventCodec, type MembershipPayload } from './message-codec.js';
import type {
  AddMembersRequest,
  CreateGroupRequest,
  Delivery,
  GroupChangeOutcome,
  GroupLimits,
  LeaveGroupRequest,
  MemberRole,
  MembershipEvent,
  RemoveMembersRequest,
  RenameGroupRequest,
  SetRoleRequest,
} from './store.js';
import { atInboxBound, backlogFloor, namedByMembership, type MembershipBound } from './inbox-bound.js';
import type { SqliteIds } from './sqlite-ids.js';
import { eventContext, toEventRow, type ConvInfo, type ConvState, type MemberRow, type RawEventRow, type Recipient } from './sqlite-rows.js';
import type { Statements } from './sqlite-statements.js';
import { bytesToUuid, isUuid, uuidToBytes } from './uuid-bytes.js';
import { GROUP_FORBIDDEN, GROUP_TOO_MANY_GROUPS, GROUP_TOO_MANY_MEMBERS, GROUP_UNCHANGED } from './change-outcomes.js';


/** What the group changes need of the store. */
export interface GroupChangeContext {
  readonly codec: EventCodec;
  readonly ids: SqliteIds;
  /** Queue a timeline entry of the running transaction. */
  appendTimeline(user: number, pos: number, conv: number, seq: number): void;
  /** After COMMIT, drop the conversation's cached writers (a former member added back has not written yet). */
  forgetWriters(conv: number): void;
}

/** Each method runs inside the store's write transaction; the store lowercases the request's user ids first. */
export class SqliteGroupChanges {
  readonly #ctx: GroupChangeContext;

  constructor(ctx: GroupChangeContext) {
    this.#ctx = ctx;
  }

  /** The open group and the actor's current membership, or undefined (→ forbidden). */
  #groupFor(
    s: Statements,
    tenantId: string,
    conversationId: string,
    actorId: string,
  ): { info: ConvInfo; state: ConvState; actor: number; role: number; members: MemberRow[] } | undefined {
    const info = this.#ctx.ids.conv(s, tenantId, conversationId);
    if (info === undefined || info.kind !== KIND_GROUP) return undefined;
    const state = s.convState.get(info.id)!;
    if (state.closed !== 0) return undefined;
    const actor = this.#ctx.ids.userId(s, tenantId, actorId, false);
    if (actor === undefined) return undefined;
    const members = s.currentMembers.all(info.id);
    const me = members.find((r) => r.user === actor);
    if (me === undefined) return undefined;
    return { info, state, actor, role: me.role, members };
  }

  /**
   * Append a membership event at `seq` and one timeline entry per recipient. With `maxInboxSize`,
   * a recipient at the bound whom the event does not name is skipped, as a group message skips
   * them (inbox-bound.ts MembershipBound): no entry, no delivery.
   */
  #appendMembership(
    s: Statements,
    info: ConvInfo,
    seq: number,
    actor: number,
    payload: MembershipPayload,
    timestamp: number,
    recipients: readonly Recipient[],
    maxInboxSize: number | undefined,
    clientMsgId: string | null = null,
  ): GroupChangeOutcome {
    const f = this.#ctx.codec.encodeMembership(payload);
    s.insertEvent.run(info.id, seq, uuidToBytes(payload.id), EVENT_MEMBERSHIP, actor, f.content, f.keyId, null, f.attachments, f.mentions, f.hashtags, f.links, timestamp, clientMsgId);
    s.setConvCounters.run(seq, timestamp, info.id);
    const deliveries: Delivery[] = [];
    const named = maxInboxSize === undefined ? undefined : namedByMembership(payload);
    for (const r of recipients) {
      const c = s.userCounters.get(r.id)!;
      if (named !== undefined && !named.has(r.uuid.toLowerCase()) && c.last_pos - c.acked_pos >= maxInboxSize!) {
        const floor = backlogFloor(c.acked_pos, s.firstPos.get(r.id, r.id), c.last_pos);
        if (atInboxBound(c.last_pos, c.acked_pos, maxInboxSize!, floor)) continue;
      }
      const pos = c.last_pos + 1;
      this.#ctx.appendTimeline(r.id, pos, info.id, seq);
      s.setLastPos.run(pos, r.id);
      deliveries.push({ userId: r.uuid, pos });
    }
    const event: MembershipEvent = this.#ctx.codec.membershipEvent(payload, { tenantId: info.tenantId, conversationId: info.uuid }, seq, timestamp);
    return { status: 'ok', event, deliveries };
  }

  createGroup(s: Statements, r: CreateGroupRequest, limits: GroupLimits): GroupChangeOutcome {
    if (r.clientMsgId !== undefined) {
      const known = this.#ctx.ids.userId(s, r.tenantId, r.actorId, false);
      const first = known === undefined ? undefined : s.findDuplicateRows.all<RawEventRow & { conv: number }>([r.clientMsgId, known])[0];
      if (first !== undefined) return this.#createdBy(s, first);
    }
    if (!isUuid(r.conversationId) || s.convByUuid.get(uuidToBytes(r.conversationId)) !== undefined) return GROUP_FORBIDDEN;
    const others = [...new Set(r.memberIds)].filter((u) => u !== r.actorId);
    if (!others.every(isUuid)) return GROUP_FORBIDDEN;
    if (1 + others.length > limits.maxGroupMembers) return GROUP_TOO_MANY_MEMBERS;
    const actor = this.#ctx.ids.userId(s, r.tenantId, r.actorId, true);
    const all: Recipient[] = [{ id: actor, uuid: r.actorId }];
    for (const u of others) all.push({ id: this.#ctx.ids.userId(s, r.tenantId, u, true), uuid: u });
    for (const m of all) if ((s.groupCount.get(m.id) ?? 0) + 1 > limits.maxGroupsPerUser) return GROUP_TOO_MANY_GROUPS;
    const uuid = r.conversationId.toLowerCase();
    const sealed = this.#ctx.codec.sealName(uuid, r.name);
    const id = Number(s.insertConv.run(uuidToBytes(uuid), r.tenantId, KIND_GROUP, null, sealed.name, sealed.keyId, r.timestamp, r.timestamp).lastInsertRowid);
    for (const m of all) s.upsertMember.run(id, m.id, m.id === actor ? ROLE_OWNER : ROLE_MEMBER, 1);
    const info: ConvInfo = { id, uuid, tenantId: r.tenantId, kind: KIND_GROUP };
    this.#ctx.ids.cacheConv(info);
    const payload: MembershipPayload = { id: r.eventId, action: 'created', actorId: r.actorId, userIds: all.map((m) => m.uuid), name: r.name };
    return this.#appendMembership(s, info, 1, actor, payload, r.timestamp, all, undefined, r.clientMsgId ?? null);
  }

  /** A create's key found on an event: the group it created, or forbidden when another operation holds the key. */
  #createdBy(s: Statements, first: RawEventRow & { conv: number }): GroupChangeOutcome {
    const event = first.kind === EVENT_MEMBERSHIP ? this.#ctx.codec.decodeDuplicateEvent(toEventRow(first), eventContext(this.#ctx.ids.convInfoById(s, first.conv))) : undefined;
    return event?.kind === 'membership' && event.action === 'created' ? { status: 'duplicate', event } : GROUP_FORBIDDEN;
  }

  addMembers(s: Statements, r: AddMembersRequest, limits: GroupLimits & MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined || g.role === ROLE_MEMBER) return GROUP_FORBIDDEN;
    const current = new Set(g.members.map((m) => bytesToUuid(m.user_id)));
    const toAdd = [...new Set(r.userIds)].filter((u) => !current.has(u));
    if (!toAdd.every(isUuid)) return GROUP_FORBIDDEN;
    if (toAdd.length === 0) return GROUP_UNCHANGED;
    if (g.members.length + toAdd.length > limits.maxGroupMembers) return GROUP_TOO_MANY_MEMBERS;
    const added: Recipient[] = toAdd.map((u) => ({ id: this.#ctx.ids.userId(s, r.tenantId, u, true), uuid: u }));
    for (const m of added) if ((s.groupCount.get(m.id) ?? 0) + 1 > limits.maxGroupsPerUser) return GROUP_TOO_MANY_GROUPS;
    const seq = g.state.last_seq + 1;
    // A former member added back is a new member: not a writer until they write again (Audience).
    for (const m of added) s.upsertMember.run(g.info.id, m.id, ROLE_MEMBER, seq);
    const conv = g.info.id;
    this.#ctx.forgetWriters(conv);
    const recipients: Recipient[] = [...g.members.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) })), ...added];
    const payload: MembershipPayload = { id: r.eventId, action: 'added', actorId: r.actorId, userIds: toAdd };
    return this.#appendMembership(s, g.info, seq, g.actor, payload, r.timestamp, recipients, limits.maxInboxSize);
  }

  removeMembers(s: Statements, r: RemoveMembersRequest, bound: MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined || g.role === ROLE_MEMBER) return GROUP_FORBIDDEN;
    const wanted = new Set(r.userIds);
    const targets = g.members.filter((m) => wanted.has(bytesToUuid(m.user_id)));
    for (const t of targets) {
      if (t.role === ROLE_OWNER) return GROUP_FORBIDDEN;
      if (g.role === ROLE_ADMIN && t.role === ROLE_ADMIN) return GROUP_FORBIDDEN;
    }
    if (targets.length === 0) return GROUP_UNCHANGED;
    const seq = g.state.last_seq + 1;
    for (const t of targets) s.setLeft.run(seq, g.info.id, t.user);
    const removed = new Set(targets.map((t) => t.user));
    const recipients: Recipient[] = [
      ...g.members.filter((m) => !removed.has(m.user)).map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) })),
      ...targets.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) })),
    ];
    const payload: MembershipPayload = { id: r.eventId, action: 'removed', actorId: r.actorId, userIds: targets.map((t) => bytesToUuid(t.user_id)) };
    return this.#appendMembership(s, g.info, seq, g.actor, payload, r.timestamp, recipients, bound.maxInboxSize);
  }

  leaveGroup(s: Statements, r: LeaveGroupRequest, bound: MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined) return GROUP_FORBIDDEN;
    const seq = g.state.last_seq + 1;
    const rest = g.members.filter((m) => m.user !== g.actor);
    const payload: MembershipPayload = { id: r.eventId, action: 'left', actorId: r.actorId, userIds: [r.actorId] };
    s.setLeft.run(seq, g.info.id, g.actor);
    if (rest.length === 0) {
      s.closeConv.run(g.info.id);
    } else if (g.role === ROLE_OWNER) {
      // currentMembers is ordered by (joined_seq, user uuid): the first admin, else the first member.
      const heir = rest.find((m) => m.role === ROLE_ADMIN) ?? rest[0]!;
      s.setRole.run(ROLE_OWNER, g.info.id, heir.user);
      payload.newOwnerId = bytesToUuid(heir.user_id);
    }
    const recipients: Recipient[] = [
      ...rest.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) })),
      { id: g.actor, uuid: r.actorId },
    ];
    return this.#appendMembership(s, g.info, seq, g.actor, payload, r.timestamp, recipients, bound.maxInboxSize);
  }

  renameGroup(s: Statements, r: RenameGroupRequest, bound: MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined || g.role === ROLE_MEMBER) return GROUP_FORBIDDEN;
    const current = this.#ctx.codec.currentName(g.info.uuid, g.state.name, g.state.key_id);
    if (current === r.name) return GROUP_UNCHANGED;
    const sealed = this.#ctx.codec.sealName(g.info.uuid, r.name);
    s.setConvName.run(sealed.name, sealed.keyId, g.info.id);
    const payload: MembershipPayload = { id: r.eventId, action: 'renamed', actorId: r.actorId, userIds: [], name: r.name };
    const recipients = g.members.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) }));
    return this.#appendMembership(s, g.info, g.state.last_seq + 1, g.actor, payload, r.timestamp, recipients, bound.maxInboxSize);
  }

  setRole(s: Statements, r: SetRoleRequest, bound: MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined || g.role !== ROLE_OWNER) return GROUP_FORBIDDEN;
    const target = g.members.find((m) => bytesToUuid(m.user_id) === r.userId);
    if (target === undefined || target.role === ROLE_OWNER) return GROUP_FORBIDDEN;
    const code = r.role === 'admin' ? ROLE_ADMIN : ROLE_MEMBER;
    if (target.role === code) return GROUP_UNCHANGED;
    s.setRole.run(code, g.info.id, target.user);
    const role: MemberRole = r.role;
    const payload: MembershipPayload = { id: r.eventId, action: 'role_changed', actorId: r.actorId, userIds: [r.userId], role };
    const recipients = g.members.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) }));
    return this.#appendMembership(s, g.info, g.state.last_seq + 1, g.actor, payload, r.timestamp, recipients, bound.maxInboxSize);
  }
}
