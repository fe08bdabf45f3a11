/**
 * Group changes on PostgreSQL: create, add and remove members, leave, rename, set a role. Each runs
 * in its own transaction (a refused one rolled back, refused-change.ts) with the group row locked
 * before its members' user rows (postgres-store.ts module comment: lock order), and writes its
 * membership event with the member rows in one `write` statement.
 */
import type pg from 'pg';
import { atInboxBound, namedByMembership, type MembershipBound } from './inbox-bound.js';
import { EVENT_MEMBERSHIP, ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER, roleCode, type EventCodec } from './message-codec.js';
import { eventContext, type PgEventRow } from './pg-event-sql.js';
import type { PgIdCaches, Tx } from './pg-id-caches.js';
import { currentMembers, lockUsers, readBacklogFloors, type CurrentMember, type LockedUser } from './pg-locked-rows.js';
import type { StoreSql } from './pg-store-sql.js';
import { isUuid, key, pgText } from './pg-values.js';
import { WriteSet } from './pg-write-set.js';
import { isRefusedChange, RefusedChange } from './refused-change.js';
import type {
  AddMembersRequest,
  CreateGroupRequest,
  Delivery,
  GroupChangeOutcome,
  GroupLimits,
  LeaveGroupRequest,
  MembershipEvent,
  RemoveMembersRequest,
  RenameGroupRequest,
  SetRoleRequest,
} from './store.js';
import { GROUP_FORBIDDEN, GROUP_TOO_MANY_GROUPS, GROUP_TOO_MANY_MEMBERS, GROUP_UNCHANGED } from './change-outcomes.js';


/** What group changes need of the store. */
export interface GroupChangeContext {
  codec: EventCodec;
  sql: StoreSql;
  ids: PgIdCaches;
  /** A write transaction whose created ids are cached once it commits. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
}

/** The store's group changes (PostgresStore checks it is open and initialised first). */
export class PgGroupChanges {
  readonly #codec: EventCodec;
  readonly #sql: StoreSql;
  readonly #ids: PgIdCaches;
  readonly #transaction: GroupChangeContext['transaction'];

  constructor(ctx: GroupChangeContext) {
    this.#codec = ctx.codec;
    this.#sql = ctx.sql;
    this.#ids = ctx.ids;
    this.#transaction = ctx.transaction;
  }

  async createGroup(request: CreateGroupRequest, limits: GroupLimits): Promise<GroupChangeOutcome> {
    const { tenantId, actorId } = request;
    if (!isUuid(request.conversationId) || !isUuid(request.eventId) || !isUuid(actorId)) return GROUP_FORBIDDEN;
    const others: string[] = [];
    const seen = new Set([actorId.toLowerCase()]);
    for (const id of request.memberIds) {
      if (!isUuid(id)) return GROUP_FORBIDDEN;
      const lower = id.toLowerCase();
      if (seen.has(lower)) continue;
      seen.add(lower);
      others.push(lower);
    }
    if (1 + others.length > limits.maxGroupMembers) return GROUP_TOO_MANY_MEMBERS;
    const conversationId = request.conversationId.toLowerCase();
    return this.#groupTransaction(async (tx) => {
      const { client } = tx;
      const all = [actorId.toLowerCase(), ...others];
      const ids = await this.#ids.resolveUsers(tx, all.map((u) => [tenantId, u]));
      const uids = all.map((u) => ids.get(key(tenantId, u))!);
      // A new conversation row is ours alone: locking the users first keeps the global order.
      const users = await lockUsers(this.#sql, client, uids);
      // Under the actor's lock: a concurrent create with the same key has committed or waits.
      if (request.clientMsgId !== undefined) {
        const { rows: found } = await client.query<PgEventRow>({ ...this.#sql.findDuplicates, values: [[uids[0]], [pgText(request.clientMsgId)]] });
        if (found[0] !== undefined) return this.#createdBy(found[0]);
      }
      if (await this.#overGroupLimit(client, uids, limits.maxGroupsPerUser)) return GROUP_TOO_MANY_GROUPS;
      const sealedName = this.#codec.sealName(conversationId, request.name);
      const { rows } = await client.query<{ id: number }>({
        ...this.#sql.insertGroup,
        values: [conversationId, tenantId, pgText(sealedName.name), sealedName.keyId, request.timestamp],
      });
      const conv = rows[0]?.id;
      if (conv === undefined) return GROUP_FORBIDDEN; // that conversation id exists already
      const w = new WriteSet();
      uids.forEach((u, i) => w.member(conv, u, i === 0 ? ROLE_OWNER : ROLE_MEMBER, 1, null));
      const event: MembershipEvent = {
        kind: 'membership',
        id: request.eventId,
        tenantId,
        conversationId,
        seq: 1,
        action: 'created',
        actorId: all[0]!,
        userIds: all,
        name: request.name,
        timestamp: request.timestamp,
      };
      const deliveries = this.#addEvent(w, conv, event, uids[0]!, uids.map((u, i) => [u, all[i]!]), users, request.clientMsgId);
      await client.query({ ...this.#sql.write, values: w.values() });
      return { status: 'ok', event, deliveries };
    });
  }

  /** A create's key found on an event: the group it created, or forbidden when another operation holds the key. */
  #createdBy(row: PgEventRow): GroupChangeOutcome {
    const event = row.kind === EVENT_MEMBERSHIP ? this.#codec.decodeDuplicateEvent(row, eventContext(row)) : undefined;
    return event?.kind === 'membership' && event.action === 'created' ? { status: 'duplicate', event } : GROUP_FORBIDDEN;
  }

  /** `limits.maxInboxSize`: see MembershipBound (inbox-bound.ts), as for the four changes below. */
  async addMembers(request: AddMembersRequest, limits: GroupLimits & MembershipBound): Promise<GroupChangeOutcome> {
    const targets = this.#uuidList(request.userIds);
    if (targets === undefined) return GROUP_FORBIDDEN;
    return this.#groupChange(request, targets, async (g) => {
      if (g.actor.role < ROLE_ADMIN) return GROUP_FORBIDDEN;
      const current = new Set(g.members.map((m) => m.uid));
      const adding = targets.filter((u) => !current.has(g.uidOf(u)));
      if (adding.length === 0) return GROUP_UNCHANGED;
      if (g.members.length + adding.length > limits.maxGroupMembers) return GROUP_TOO_MANY_MEMBERS;
      const addingIds = adding.map((u) => g.uidOf(u));
      const users = await lockUsers(this.#sql, g.client, [...current, ...addingIds]);
      if (await this.#overGroupLimit(g.client, addingIds, limits.maxGroupsPerUser)) return GROUP_TOO_MANY_GROUPS;
      const seq = g.lastSeq + 1;
      const w = new WriteSet();
      for (const id of addingIds) w.member(g.conv, id, ROLE_MEMBER, seq, null);
      const recipients: [number, string][] = [
        ...g.members.map((m): [number, string] => [m.uid, m.uuid]),
        ...addingIds.map((id, i): [number, string] => [id, adding[i]!]),
      ];
      return g.commit(w, users, { action: 'added', userIds: adding }, recipients);
    }, limits.maxInboxSize);
  }

  async removeMembers(request: RemoveMembersRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const targets = this.#uuidList(request.userIds);
    if (targets === undefined) return GROUP_FORBIDDEN;
    // Targets are matched against the members by uuid, never resolved: ids of users who never
    // were here must not become rows in `users` (an admin could make thousands a minute).
    return this.#groupChange(request, [], async (g) => {
      if (g.actor.role < ROLE_ADMIN) return GROUP_FORBIDDEN;
      const byUid = new Map(g.members.map((m) => [m.uid, m]));
      const byUuid = new Map(g.members.map((m) => [m.uuid, m]));
      const removing = targets.map((u) => byUuid.get(u)).filter((m): m is CurrentMember => m !== undefined);
      for (const m of removing) {
        if (m.role === ROLE_OWNER) return GROUP_FORBIDDEN;
        if (m.role === ROLE_ADMIN && g.actor.role !== ROLE_OWNER) return GROUP_FORBIDDEN;
      }
      if (removing.length === 0) return GROUP_UNCHANGED;
      const users = await lockUsers(this.#sql, g.client, byUid.keys());
      const seq = g.lastSeq + 1;
      const w = new WriteSet();
      for (const m of removing) w.member(g.conv, m.uid, m.role, m.joinedSeq, seq);
      return g.commit(
        w,
        users,
        { action: 'removed', userIds: removing.map((m) => m.uuid) },
        g.members.map((m) => [m.uid, m.uuid]),
      );
    }, bound.maxInboxSize);
  }

  async leaveGroup(request: LeaveGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    return this.#groupChange(request, [], async (g) => {
      const users = await lockUsers(this.#sql, g.client, g.members.map((m) => m.uid));
      const seq = g.lastSeq + 1;
      const w = new WriteSet();
      w.member(g.conv, g.actor.uid, g.actor.role, g.actor.joinedSeq, seq);
      const remaining = g.members.filter((m) => m.uid !== g.actor.uid);
      const change: Partial<MembershipEvent> = { action: 'left', userIds: [g.actor.uuid] };
      if (g.actor.role === ROLE_OWNER && remaining.length > 0) {
        const byTenure = (a: CurrentMember, b: CurrentMember) =>
          a.joinedSeq - b.joinedSeq || (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0);
        const admins = remaining.filter((m) => m.role === ROLE_ADMIN).sort(byTenure);
        const heir = admins[0] ?? [...remaining].sort(byTenure)[0]!;
        w.member(g.conv, heir.uid, ROLE_OWNER, heir.joinedSeq, null);
        change.newOwnerId = heir.uuid;
      }
      if (remaining.length === 0) {
        await g.client.query({ ...this.#sql.updateGroup, values: [g.conv, g.name, g.nameKeyId, true] });
      }
      return g.commit(w, users, change, g.members.map((m) => [m.uid, m.uuid]));
    }, bound.maxInboxSize);
  }

  async renameGroup(request: RenameGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    return this.#groupChange(request, [], async (g) => {
      if (g.actor.role < ROLE_ADMIN) return GROUP_FORBIDDEN;
      const name = pgText(request.name);
      if (this.#codec.currentName(g.conversationId, g.name, g.nameKeyId) === name) return GROUP_UNCHANGED;
      const users = await lockUsers(this.#sql, g.client, g.members.map((m) => m.uid));
      const sealed = this.#codec.sealName(g.conversationId, name);
      await g.client.query({ ...this.#sql.updateGroup, values: [g.conv, sealed.name, sealed.keyId, false] });
      return g.commit(new WriteSet(), users, { action: 'renamed', userIds: [], name: request.name }, g.members.map((m) => [m.uid, m.uuid]));
    }, bound.maxInboxSize);
  }

  async setRole(request: SetRoleRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    if (!isUuid(request.userId)) return GROUP_FORBIDDEN;
    const target = request.userId.toLowerCase();
    return this.#groupChange(request, [], async (g) => {
      if (g.actor.role !== ROLE_OWNER) return GROUP_FORBIDDEN;
      const m = g.members.find((x) => x.uuid === target);
      if (m === undefined || m.role === ROLE_OWNER) return GROUP_FORBIDDEN;
      const role = roleCode(request.role);
      if (m.role === role) return GROUP_UNCHANGED;
      const users = await lockUsers(this.#sql, g.client, g.members.map((x) => x.uid));
      const w = new WriteSet();
      w.member(g.conv, m.uid, role, m.joinedSeq, null);
      return g.commit(w, users, { action: 'role_changed', userIds: [m.uuid], role: request.role }, g.members.map((x) => [x.uid, x.uuid]));
    }, bound.maxInboxSize);
  }

  /** Deduplicated lowercase uuids, or undefined when one is not a UUID. */
  #uuidList(ids: readonly string[]): string[] | undefined {
    const out: string[] = [];
    const seen = new Set<string>();
    for (const id of ids) {
      if (!isUuid(id)) return undefined;
      const lower = id.toLowerCase();
      if (seen.has(lower)) continue;
      seen.add(lower);
      out.push(lower);
    }
    return out;
  }

  /**
   * One group change in its own transaction: resolve the users, lock the group (forbidden when it
   * is missing, of another tenant, closed, or the actor is no current member), read its members.
   * `maxInboxSize`: the backlog bound of the members the event does not name (see #addEvent).
   */
  async #groupChange(
    request: { tenantId: string; actorId: string; eventId: string; timestamp: number; conversationId: string },
    targets: readonly string[],
    change: (g: GroupContext) => Promise<GroupChangeOutcome>,
    maxInboxSize?: number,
  ): Promise<GroupChangeOutcome> {
    const { tenantId } = request;
    if (!isUuid(request.conversationId) || !isUuid(request.actorId) || !isUuid(request.eventId)) return GROUP_FORBIDDEN;
    const conversationId = request.conversationId.toLowerCase();
    const actorUuid = request.actorId.toLowerCase();
    return this.#groupTransaction(async (tx) => {
      const { client } = tx;
      // A stranger's answer neither waits on nor tells of the group's writers (no lock yet).
      const { rowCount } = await client.query({ ...this.#sql.isCurrentMember, values: [conversationId, tenantId, actorUuid] });
      if (rowCount === 0) return GROUP_FORBIDDEN;
      const ids = await this.#ids.resolveUsers(tx, [actorUuid, ...targets].map((u) => [tenantId, u]));
      const { rows } = await client.query<{ id: number; last_seq: string; closed: boolean; name: string | null; key_id: string | null }>({
        ...this.#sql.lockGroup,
        values: [conversationId, tenantId],
      });
      const group = rows[0];
      if (group === undefined || group.closed) return GROUP_FORBIDDEN;
      const members = await currentMembers(this.#sql, client, [group.id]);
      const actorId = ids.get(key(tenantId, actorUuid))!;
      const actor = members.find((m) => m.uid === actorId);
      if (actor === undefined) return GROUP_FORBIDDEN;
      const lastSeq = Number(group.last_seq);
      const g: GroupContext = {
        client,
        conv: group.id,
        conversationId,
        lastSeq,
        name: group.name,
        nameKeyId: group.key_id,
        members,
        actor,
        uidOf: (uuid) => ids.get(key(tenantId, uuid))!,
        commit: async (w, users, fields, recipients) => {
          const event = {
            kind: 'membership',
            id: request.eventId,
            tenantId,
            conversationId,
            seq: lastSeq + 1,
            actorId: actor.uuid,
            userIds: [],
            timestamp: request.timestamp,
            ...fields,
          } as MembershipEvent;
          if (maxInboxSize !== undefined) await readBacklogFloors(this.#sql, client, users, maxInboxSize, 1);
          const deliveries = this.#addEvent(w, group.id, event, actor.uid, recipients, users, undefined, maxInboxSize);
          await client.query({ ...this.#sql.write, values: w.values() });
          return { status: 'ok', event, deliveries };
        },
      };
      return change(g);
    });
  }

  /**
   * Add a membership event and one timeline entry per recipient (in order, once each) to `w`. With
   * `maxInboxSize`, a recipient at the bound whom the event does not name is skipped, as a group
   * message skips them (inbox-bound.ts MembershipBound; floors read by readBacklogFloors in
   * pg-locked-rows.ts): no entry, no delivery.
   */
  #addEvent(
    w: WriteSet,
    conv: number,
    event: MembershipEvent,
    actor: number,
    recipients: readonly [number, string][],
    users: Map<number, LockedUser>,
    clientMsgId?: string,
    maxInboxSize?: number,
  ): Delivery[] {
    const sealed = this.#codec.encodeMembership(event);
    const e = w.ev;
    e.conv.push(conv);
    e.seq.push(event.seq);
    e.id.push(event.id);
    e.kind.push(EVENT_MEMBERSHIP);
    e.sender.push(actor);
    e.content.push(pgText(sealed.content));
    e.keyId.push(sealed.keyId);
    e.replyTo.push(null);
    e.attachments.push(null);
    e.mentions.push('[]');
    e.hashtags.push('[]');
    e.links.push('[]');
    e.ts.push(event.timestamp);
    e.clientMsgId.push(clientMsgId === undefined ? null : pgText(clientMsgId));
    w.convs.set(conv, { seq: event.seq, at: event.timestamp });
    const deliveries: Delivery[] = [];
    const done = new Set<number>();
    const named = maxInboxSize === undefined ? undefined : namedByMembership(event);
    for (const [uid, uuid] of recipients) {
      if (done.has(uid)) continue;
      done.add(uid);
      const u = users.get(uid)!;
      if (named !== undefined && !named.has(uuid.toLowerCase()) && atInboxBound(u.lastPos, u.ackedPos, maxInboxSize!, u.floor)) continue;
      const pos = ++u.lastPos;
      w.timeline(uid, pos, conv, event.seq);
      deliveries.push({ userId: uuid, pos });
    }
    return deliveries;
  }

  async #overGroupLimit(client: pg.PoolClient, uids: readonly number[], maxGroupsPerUser: number): Promise<boolean> {
    if (uids.length === 0) return false;
    const { rows } = await client.query<{ uid: number; n: number }>({ ...this.#sql.groupCounts, values: [uids] });
    return rows.some((row) => row.n + 1 > maxGroupsPerUser);
  }

  /** A group change's transaction; a refused one is rolled back (refused-change.ts). */
  async #groupTransaction(work: (tx: Tx) => Promise<GroupChangeOutcome>): Promise<GroupChangeOutcome> {
    try {
      return await this.#transaction(async (tx) => {
        const outcome = await work(tx);
        if (isRefusedChange(outcome)) throw new RefusedChange(outcome);
        return outcome;
      });
    } catch (err) {
      if (err instanceof RefusedChange) return err.outcome;
      throw err;
    }
  }
}

/** What a group change sees once the group is locked. */
interface GroupContext {
  client: pg.PoolClient;
  conv: number;
  conversationId: string;
  lastSeq: number;
  name: string | null;
  nameKeyId: string | null;
  /** Current members before the change. */
  members: CurrentMember[];
  actor: CurrentMember;
  uidOf(uuid: string): number;
  /** Append the event (seq lastSeq + 1) with `w`'s member changes and deliver it to `recipients`. */
  commit(
    w: WriteSet,
    users: Map<number, LockedUser>,
    fields: Partial<MembershipEvent>,
    recipients: readonly [number, string][],
  ): Promise<GroupChangeOutcome>;
}
