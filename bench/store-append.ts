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
import type { NewMessage } from '../src/store/store.js';
import { newClientMsgId } from '../src/client/client-msg-id.js';

export interface StoreBenchResult {
  messagesPerRound: number;
  rounds: number;
  us_per_message: { direct: number; direct_idempotent: number; group100: number; bare: number };
  /** Pages written to the WAL per message (each a whole 4 KiB page, written again at the checkpoint). */
  wal_pages_per_message: { direct: number; direct_idempotent: number; group100: number; bare: number };
  /** group100 µs per message divided by its 100 recipients (timeline rows). */
  group100_us_per_recipient: number;
  ratios: { store_dm_vs_append: number; store_dm_idempotent_vs_append: number; store_group100_per_recipient_vs_append: number };
}

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
  const files = { direct: join(dir, 'direct.db'), direct_idempotent: join(dir, 'direct-idempotent.db'), group100: join(dir, 'group.db'), bare: join(dir, 'bare.db') };
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
  const pages = { direct: [] as number[], direct_idempotent: [] as number[], group100: [] as number[], bare: [] as number[] };
  const timed = async (workload: keyof typeof files, fn: () => Promise<void> | void): Promise<number> => {
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

  const samples = { direct: [] as number[], direct_idempotent: [] as number[], group100: [] as number[], bare: [] as number[] };
  // One warm-up round each (statement caches, file growth), then measured rounds.
  await direct();
  makeClientMsgIds();
  await directIdempotent();
  bareRun();
  for (let r = 0; r < rounds; r++) {
    samples.bare.push(await timed('bare', bareRun));
    samples.direct.push(await timed('direct', direct));
    makeClientMsgIds();
    samples.direct_idempotent.push(await timed('direct_idempotent', directIdempotent));
    samples.bare.push(await timed('bare', bareRun));
    samples.group100.push(await timed('group100', group));
  }
  for (const st of Object.values(stores)) await st.close();
  for (const c of Object.values(checkpointers)) c.close();
  bare.close();
  rmSync(dir, { recursive: true, force: true });

  const us = {
    direct: median(samples.direct),
    direct_idempotent: median(samples.direct_idempotent),
    group100: median(samples.group100),
    bare: median(samples.bare),
  };
  return {
    messagesPerRound,
    rounds,
    us_per_message: { direct: round2(us.direct), direct_idempotent: round2(us.direct_idempotent), group100: round2(us.group100), bare: round2(us.bare) },
    wal_pages_per_message: {
      direct: round3(median(pages.direct)),
      direct_idempotent: round3(median(pages.direct_idempotent)),
      group100: round3(median(pages.group100)),
      bare: round3(median(pages.bare)),
    },
    group100_us_per_recipient: round2(us.group100 / 100),
    ratios: {
      store_dm_vs_append: round2(us.direct / us.bare),
      store_dm_idempotent_vs_append: round2(us.direct_idempotent / us.bare),
      store_group100_per_recipient_vs_append: round2(us.group100 / 100 / us.bare),
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.env.BENCH_STORE_MESSAGES ?? 5000);
  const result = await runStoreBench(n);
  console.log(JSON.stringify(result, null, 2));
}
