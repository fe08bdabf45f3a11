/**
 * Storage micro-benchmark: what one stored message costs through the real SQLite adapter, against
 * a bare append-only table on the same disk in the same run (the floor any schema pays).
 *
 *   direct   — direct messages between 50 pairs, batches of 100 (group commit), through SqliteStore
 *   direct_idempotent — the same, each with a `clientMsgId` as the SDK makes them (`m-` + UUIDv7):
 *              the dedupe key is one more index entry per message
 *   group100 — messages to one 100-member group, batches of 100; reported per recipient too
 *   bare     — the same number of rows (one per message, with what a message row carries: its
 *              uuid, sender and recipient uuids, the same content, empty entity lists, the time)
 *              into an append-only table with no index but its integer key, batches of 100,
 *              same pragmas (WAL, synchronous=NORMAL)
 *   floor_*  — what the data model itself costs, written with bare statements (no adapter, no
 *              counters, no codec), so a gap between `direct` and these is the adapter's and the
 *              gap between these and `bare` is the model's:
 *                floor_event    — one integer-keyed event row per message (conv, seq, id, sender, …)
 *                floor_timeline — that, plus the two per-user timeline entries (user, pos) → (conv, seq)
 *                                 a direct message needs, written as the store writes them (a small
 *                                 recent table moved into the large one in sorted batches of 4096)
 *                floor_indexed  — that, plus the unique (conv, seq) index that history, unread counts
 *                                 and timeline reads look events up by
 *
 * Each workload has its own database file and a round is timed until its WAL pages are checkpointed
 * into that file. Rounds interleave the workloads so disk and CPU noise hits them alike; medians
 * are reported, with the WAL frames (4 KiB pages) each round wrote per message: what the schema
 * makes the disk do, independent of the machine's speed.
 * Standalone: `node --import tsx bench/store-append.ts` (BENCH_STORE_MESSAGES=N); `npm run bench`
 * runs it too and records `ratios.store_dm_vs_append`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from '../src/store/sqlite-driver.js';
import { SqliteStore } from '../src/store/sqlite-store.js';
import { messageId } from '../src/chat/message-id.js';
import { uuidToBytes } from '../src/store/uuid-bytes.js';
import type { NewMessage } from '../src/store/store.js';
import { newClientMsgId } from '../src/client/client-msg-id.js';

export interface StoreBenchResult {
  messagesPerRound: number;
  rounds: number;
  us_per_message: Record<Workload, number>;
  /** Pages written to the WAL per message (each a whole 4 KiB page, written again at the checkpoint). */
  wal_pages_per_message: Record<Workload, number>;
  /** group100 µs per message divided by its 100 recipients (timeline rows). */
  group100_us_per_recipient: number;
  ratios: {
    store_dm_vs_append: number;
    store_dm_idempotent_vs_append: number;
    store_group100_per_recipient_vs_append: number;
    /** The data model's floors (see the floor_* workloads) against the bare append. */
    floor_event_vs_append: number;
    floor_timeline_vs_append: number;
    floor_indexed_vs_append: number;
  };
}

const WORKLOADS = ['direct', 'direct_idempotent', 'group100', 'bare', 'floor_event', 'floor_timeline', 'floor_indexed'] as const;
type Workload = (typeof WORKLOADS)[number];
type Floor = 'floor_event' | 'floor_timeline' | 'floor_indexed';

const BATCH = 100;
const CONTENT = 'x'.repeat(120);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round2 = (x: number): number => Math.round(x * 100) / 100;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

function body(): Omit<NewMessage, 'id' | 'tenantId' | 'senderId' | 'to' | 'timestamp'> {
  return { content: CONTENT, mentions: [], hashtags: [], links: [] };
}

export async function runStoreBench(messagesPerRound = 5000, rounds = 5): Promise<StoreBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-store-bench-'));
  // One database file per workload, so each pays for its own WAL checkpoints: a round is timed
  // until its pages are checkpointed into the database file (a PASSIVE checkpoint from a second
  // connection), the bare table's too. Without that, whichever round happens to cross the
  // auto-checkpoint threshold pays for every workload's pages.
  const files = Object.fromEntries(WORKLOADS.map((w) => [w, join(dir, `${w}.db`)])) as Record<Workload, string>;
  const stores = { direct: new SqliteStore(files.direct), direct_idempotent: new SqliteStore(files.direct_idempotent), group100: new SqliteStore(files.group100) };
  for (const st of Object.values(stores)) await st.init();
  const store = stores.group100;
  const pairs = Array.from({ length: 50 }, () => [randomUUID(), randomUUID()] as const);
  const bare = new Database(files.bare);
  bare.pragma('journal_mode = WAL');
  bare.pragma('synchronous = NORMAL');
  bare.pragma('wal_autocheckpoint = 10000');
  bare.exec(
    'CREATE TABLE bare (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL, content TEXT NOT NULL, entities TEXT NOT NULL, ts INTEGER NOT NULL)',
  );
  const insertBare = bare.prepare<[string, string, string, string, string, number]>(
    'INSERT INTO bare (id, sender, recipient, content, entities, ts) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const bareBatch = bare.transaction((n: number) => {
    for (let i = 0; i < n; i++) {
      const [a, b] = pairs[i % pairs.length]!;
      insertBare.run(messageId(), a, b, CONTENT, '[]', Date.now());
    }
  });
  const floors = {
    floor_event: floorWriter(files.floor_event, pairs.length, { timeline: false, convIndex: false }),
    floor_timeline: floorWriter(files.floor_timeline, pairs.length, { timeline: true, convIndex: false }),
    floor_indexed: floorWriter(files.floor_indexed, pairs.length, { timeline: true, convIndex: true }),
  };
  const limits = { maxInboxSize: 1_000_000 };

  const owner = randomUUID();
  const members = Array.from({ length: 99 }, () => randomUUID());
  const groupId = randomUUID();
  const created = await store.createGroup(
    { tenantId: 'default', actorId: owner, eventId: messageId(), timestamp: Date.now(), conversationId: groupId, name: 'bench', memberIds: members },
    { maxGroupMembers: 100, maxGroupsPerUser: 10 },
  );
  if (created.status !== 'ok') throw new Error(`createGroup: ${created.status}`);

  const checkpointers = Object.fromEntries(
    Object.entries(files).map(([k, f]) => [k, new Database(f)]),
  ) as Record<keyof typeof files, BetterSqlite3.Database>;
  const pages = Object.fromEntries(WORKLOADS.map((w) => [w, [] as number[]])) as Record<Workload, number[]>;
  const timed = async (workload: Workload, fn: () => Promise<void> | void): Promise<number> => {
    const t0 = process.hrtime.bigint();
    await fn();
    // `log`: frames in the WAL, i.e. those this round wrote (the last round's were checkpointed,
    // so the WAL started over at this round's first commit).
    const [ck] = checkpointers[workload].pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
    const us = Number(process.hrtime.bigint() - t0) / 1000 / messagesPerRound;
    pages[workload].push(ck!.log / messagesPerRound);
    return us;
  };
  // Clients make the clientMsgIds (the SDK's generator costs about as much as storing the key), so
  // they are made before the clock starts; message ids are the server's and stay inside it.
  let clientMsgIds: string[] = [];
  const makeClientMsgIds = (): void => {
    clientMsgIds = Array.from({ length: messagesPerRound }, () => newClientMsgId());
  };
  const directRun = async (idempotent: boolean): Promise<void> => {
    for (let done = 0; done < messagesPerRound; done += BATCH) {
      const batch: NewMessage[] = [];
      for (let i = 0; i < BATCH; i++) {
        const [a, b] = pairs[(done + i) % pairs.length]!;
        const m: NewMessage = { id: messageId(), tenantId: 'default', senderId: a, to: { peerId: b }, timestamp: Date.now(), ...body() };
        if (idempotent) m.clientMsgId = clientMsgIds[done + i]!; // what the SDK sends
        batch.push(m);
      }
      await (idempotent ? stores.direct_idempotent : stores.direct).appendMessages(batch, limits);
    }
  };
  const direct = (): Promise<void> => directRun(false);
  const directIdempotent = (): Promise<void> => directRun(true);
  const group = async (): Promise<void> => {
    for (let done = 0; done < messagesPerRound; done += BATCH) {
      const batch: NewMessage[] = [];
      for (let i = 0; i < BATCH; i++) {
        batch.push({ id: messageId(), tenantId: 'default', senderId: owner, to: { conversationId: groupId }, timestamp: Date.now(), ...body() });
      }
      await store.appendMessages(batch, limits);
    }
  };
  const bareRun = (): void => {
    for (let done = 0; done < messagesPerRound; done += BATCH) bareBatch(BATCH);
  };
  const floorRun = (floor: Floor) => (): void => {
    for (let done = 0; done < messagesPerRound; done += BATCH) floors[floor].batch(BATCH);
  };

  const samples = Object.fromEntries(WORKLOADS.map((w) => [w, [] as number[]])) as Record<Workload, number[]>;
  const floorNames: readonly Floor[] = ['floor_event', 'floor_timeline', 'floor_indexed'];
  // One warm-up round each (statement caches, file growth), then measured rounds.
  await direct();
  makeClientMsgIds();
  await directIdempotent();
  bareRun();
  for (const f of floorNames) floorRun(f)();
  for (let r = 0; r < rounds; r++) {
    samples.bare.push(await timed('bare', bareRun));
    samples.direct.push(await timed('direct', direct));
    makeClientMsgIds();
    samples.direct_idempotent.push(await timed('direct_idempotent', directIdempotent));
    samples.bare.push(await timed('bare', bareRun));
    samples.group100.push(await timed('group100', group));
    for (const f of floorNames) samples[f].push(await timed(f, floorRun(f)));
  }
  for (const st of Object.values(stores)) await st.close();
  for (const c of Object.values(checkpointers)) c.close();
  bare.close();
  for (const f of Object.values(floors)) f.close();
  rmSync(dir, { recursive: true, force: true });

  const us = Object.fromEntries(WORKLOADS.map((w) => [w, median(samples[w])])) as Record<Workload, number>;
  return {
    messagesPerRound,
    rounds,
    us_per_message: Object.fromEntries(WORKLOADS.map((w) => [w, round2(us[w])])) as Record<Workload, number>,
    wal_pages_per_message: Object.fromEntries(WORKLOADS.map((w) => [w, round3(median(pages[w]))])) as Record<Workload, number>,
    group100_us_per_recipient: round2(us.group100 / 100),
    ratios: {
      store_dm_vs_append: round2(us.direct / us.bare),
      store_dm_idempotent_vs_append: round2(us.direct_idempotent / us.bare),
      store_group100_per_recipient_vs_append: round2(us.group100 / 100 / us.bare),
      floor_event_vs_append: round2(us.floor_event / us.bare),
      floor_timeline_vs_append: round2(us.floor_timeline / us.bare),
      floor_indexed_vs_append: round2(us.floor_indexed / us.bare),
    },
  };
}

/** Entries the floor's recent timeline holds before they move into the large one (the store's default). */
const FLOOR_TIMELINE_BATCH = 4096;

/**
 * A floor workload's writer: bare statements on its own file, the pragmas the store uses. Message
 * i goes to pair i mod `pairs`, whose users are 2p and 2p + 1, like the direct workload.
 */
function floorWriter(file: string, pairs: number, o: { timeline: boolean; convIndex: boolean }): { batch(n: number): void; close(): void } {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 10000');
  db.exec(
    `CREATE TABLE events (conv INTEGER NOT NULL, seq INTEGER NOT NULL, id BLOB NOT NULL, sender INTEGER NOT NULL, content TEXT NOT NULL, entities TEXT NOT NULL, ts INTEGER NOT NULL);
     CREATE TABLE timeline (user INTEGER NOT NULL, pos INTEGER NOT NULL, conv INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (user, pos)) WITHOUT ROWID;
     CREATE TABLE timeline_recent (user INTEGER NOT NULL, pos INTEGER NOT NULL, conv INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (user, pos)) WITHOUT ROWID;`,
  );
  if (o.convIndex) db.exec('CREATE UNIQUE INDEX events_conv_seq ON events (conv, seq)');
  const insertEvent = db.prepare<[number, number, Buffer, number, string, string, number]>(
    'INSERT INTO events (conv, seq, id, sender, content, entities, ts) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insertEntry = db.prepare<[number, number, number, number]>('INSERT INTO timeline_recent (user, pos, conv, seq) VALUES (?, ?, ?, ?)');
  const settle = db.prepare('INSERT INTO timeline SELECT * FROM timeline_recent ORDER BY user, pos');
  const clear = db.prepare('DELETE FROM timeline_recent');
  const seqs = new Array<number>(pairs).fill(0);
  const positions = new Array<number>(2 * pairs).fill(0);
  let next = 0;
  let recent = 0;
  const batch = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) {
      const conv = next++ % pairs;
      const seq = ++seqs[conv]!;
      insertEvent.run(conv, seq, uuidToBytes(messageId()), 2 * conv, CONTENT, '[]', Date.now());
      if (!o.timeline) continue;
      for (const user of [2 * conv, 2 * conv + 1]) insertEntry.run(user, ++positions[user]!, conv, seq);
      recent += 2;
    }
    if (recent >= FLOOR_TIMELINE_BATCH) {
      settle.run();
      clear.run();
      recent = 0;
    }
  });
  return { batch, close: () => db.close() };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.env.BENCH_STORE_MESSAGES ?? 5000);
  const result = await runStoreBench(n);
  console.log(JSON.stringify(result, null, 2));
}
