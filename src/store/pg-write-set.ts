/**
 * The PostgreSQL adapter's write buffer: what a message batch or a group change adds, kept as one
 * array per column so that the `write` statement (pg-store-sql.ts) stores any number of rows in
 * one round trip.
 */

/** The rows one write adds, column by column (the `write` statement's parameters). */
export class WriteSet {
  readonly ev = {
    conv: [] as number[],
    seq: [] as number[],
    id: [] as string[],
    kind: [] as number[],
    sender: [] as number[],
    content: [] as string[],
    keyId: [] as (string | null)[],
    replyTo: [] as (string | null)[],
    attachments: [] as (string | null)[],
    mentions: [] as string[],
    hashtags: [] as string[],
    links: [] as string[],
    ts: [] as number[],
    clientMsgId: [] as (string | null)[],
  };
  readonly tl = { user: [] as number[], pos: [] as number[], conv: [] as number[], seq: [] as number[] };
  readonly convs = new Map<number, { seq: number; at: number }>();
  readonly users = new Map<number, number>();
  readonly mb = { conv: [] as number[], user: [] as number[], role: [] as number[], joined: [] as number[], left: [] as (number | null)[] };
  /** Members who wrote in this batch, as `conv user` keys (members.wrote, see Audience). */
  readonly wrote = new Set<string>();

  get empty(): boolean {
    return this.ev.id.length === 0 && this.mb.conv.length === 0;
  }

  timeline(user: number, pos: number, conv: number, seq: number): void {
    this.tl.user.push(user);
    this.tl.pos.push(pos);
    this.tl.conv.push(conv);
    this.tl.seq.push(seq);
    this.users.set(user, pos);
  }

  member(conv: number, user: number, role: number, joinedSeq: number, leftSeq: number | null): void {
    this.mb.conv.push(conv);
    this.mb.user.push(user);
    this.mb.role.push(role);
    this.mb.joined.push(joinedSeq);
    this.mb.left.push(leftSeq);
  }

  values(): unknown[] {
    const e = this.ev;
    const convIds = [...this.convs.keys()];
    const userIds = [...this.users.keys()];
    return [
      e.conv, e.seq, e.id, e.kind, e.sender, e.content, e.keyId, e.replyTo, e.attachments, e.mentions, e.hashtags, e.links,
      e.ts, e.clientMsgId,
      this.tl.user, this.tl.pos, this.tl.conv, this.tl.seq,
      convIds, convIds.map((id) => this.convs.get(id)!.seq), convIds.map((id) => this.convs.get(id)!.at),
      userIds, userIds.map((id) => this.users.get(id)!),
      this.mb.conv, this.mb.user, this.mb.role, this.mb.joined, this.mb.left,
      [...this.wrote].map((k) => Number(k.split(' ')[0])), [...this.wrote].map((k) => Number(k.split(' ')[1])),
    ];
  }
}
