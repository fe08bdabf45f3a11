/**
 * A hostile client fuzzes a real server (SQLite, then PostgreSQL) with mutated §3 frames, raw text
 * and binary frames, while a well-behaved client and an outsider keep chatting. Invariants:
 *  - every reply is a documented frame type / reason; no `internal_error` for client mistakes;
 *  - no close except documented close codes;
 *  - no reply echoes a marker the client put in a non-echo field (requestId/clientMsgId aside);
 *  - nothing reaches the bystanders unless it was a valid message to them;
 *  - the server logs no error-level line; the well-behaved client keeps working.
 * Seeded: a fresh seed each run, printed; RAMPART_TEST_SEED replays one (test/helpers/seed.ts).
 * FUZZ_N (frames, 1500), FUZZ_BURST=k (up to k frames before each ping), FUZZ_REAL=1 (the
 * default limits) and FUZZ_DEBUG=1 (a histogram of replies) explore further by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { prng, testSeed } from '../helpers/seed.js';
import { startServer, authedClient, openClient, token, within, type TestClient, type Frame, PG_URL } from '../helpers/harness.js';

const SERVER_TYPES = new Set(['auth_success', 'auth_failure', 'chat_message', 'membership', 'message_sent', 'resync', 'timeline_pruned', 'typing_indicator', 'history', 'conversations', 'group_updated', 'read_updated', 'message_edited', 'message_deleted', 'message_changed', 'receipt', 'presence', 'presence_changed', 'presence_updated', 'error', 'rate_limited', 'sessions', 'session_ended', 'pong']);
const ERROR_REASONS = new Set(['invalid_json', 'invalid_format', 'unknown_type', 'validation_failed', 'forbidden', 'invalid_content', 'inbox_full', 'too_many_members', 'too_many_groups', 'storage_unavailable', 'binary_not_supported', 'internal_error']);
const RL_REASONS = new Set(['burst_limit', 'minute_limit', 'hour_limit', 'frame_limit', 'group_limit']);
const CLOSE_CODES = new Set([1000, 1001, 1002, 1005, 1006, 1007, 1008, 1009, 4000, 4001, 4002, 4003, 4005, 4008, 4009, 4010, 4011, 4012, 4029, 4030, 4503]);

const MARK = 'ZQX';
let markN = 0;
const marker = (): string => `${MARK}${(markN++).toString(36)}q`;

interface Ctx {
  direct: string; // A<->B direct conversation
  groupIn: string; // B's group with A (A plain member)
  groupOut: string; // C's group without A
  bMsg: string; // B's message in direct
  cMsg: string; // C's message in groupOut
  aMsg: string; // A's own message
  bId: string;
  cId: string;
  aId: string;
  aToken: string;
  learned: string[];
  bToken: string;
}

function gen(rnd: () => number, ctx: Ctx): { text: string; binary?: boolean; desc: string } {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const uuids = [...ctx.learned, ...ctx.learned, ctx.direct, ctx.groupIn, ctx.groupOut, ctx.bMsg, ctx.cMsg, ctx.aMsg, ctx.bId, ctx.cId, ctx.aId, randomUUID(), '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', ctx.groupOut.toUpperCase(), ctx.cMsg.toUpperCase(), ctx.bId.toUpperCase(), `{${ctx.bId}}`, ctx.bId.replace(/-/g, '')];
  const weird = (): unknown => pick<() => unknown>([
    () => marker(),
    () => -0,
    () => 1e308,
    () => -1,
    () => 1.5,
    () => 2 ** 53,
    () => 2 ** 53 - 1,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => 0,
    () => null,
    () => true,
    () => [],
    () => [marker()],
    () => ({}),
    () => ({ x: marker() }),
    () => ({ a: { b: { c: { d: { e: { f: 1 } } } } } }),
    () => `${marker()}${'a'.repeat(5000)}`,
    () => `${marker()}\u0000\u202e\ud800`,
    () => `${marker()}😀\u200d\ufeff`,
    () => pick(uuids),
    () => `${pick(uuids)}${marker()}`,
    () => '',
    () => ' ',
    () => '1e3',
    () => '0x10',
  ])();
  const templates: Record<string, () => Record<string, unknown>> = {
    chat_message: () => ({ type: 'chat_message', conversationId: pick([...ctx.learned.slice(-20), ctx.direct, ctx.groupIn, ctx.groupOut]), content: 'hello', clientMsgId: marker() }),
    chat_message_v1: () => ({ type: 'chat_message', recipientId: pick([ctx.bId, ctx.cId]), content: 'hi', clientMsgId: marker() }),
    typing_indicator: () => ({ type: 'typing_indicator', conversationId: pick([ctx.direct, ctx.groupOut]), isTyping: true }),
    typing_v1: () => ({ type: 'typing_indicator', recipientId: pick([ctx.bId, ctx.cId]), isTyping: false }),
    ack: () => ({ type: 'ack', upTo: pick([0, 1, 5, 1000000, 2 ** 53 - 1]) }),
    history: () => ({ type: 'history', conversationId: pick([...ctx.learned.slice(-20), ctx.direct, ctx.groupIn, ctx.groupOut]), beforeSeq: pick([0, 1, 2 ** 53 - 1]), limit: pick([1, 100]), requestId: marker() }),
    history_v1: () => ({ type: 'history', peerId: pick([ctx.bId, ctx.cId, randomUUID()]), before: pick([...ctx.learned.slice(-20), ctx.bMsg, ctx.cMsg, randomUUID()]), requestId: marker() }),
    list_conversations: () => ({ type: 'list_conversations', limit: 5, before: pick(['x', marker(), 'eyJ9', '0', `${'A'.repeat(200)}`]), requestId: marker() }),
    read: () => ({ type: 'read', conversationId: pick([ctx.direct, ctx.groupOut, ctx.groupIn]), upToSeq: pick([0, 1, 2 ** 53 - 1]), requestId: marker() }),
    edit_message: () => ({ type: 'edit_message', messageId: pick([...ctx.learned.slice(-20), ctx.bMsg, ctx.cMsg, ctx.aMsg, randomUUID()]), content: 'edited', clientMsgId: marker(), requestId: marker() }),
    delete_message: () => ({ type: 'delete_message', messageId: pick([...ctx.learned.slice(-20), ctx.bMsg, ctx.cMsg, randomUUID()]), requestId: marker() }),
    presence: () => ({ type: 'presence', conversationId: pick([ctx.direct, ctx.groupOut]), requestId: marker() }),
    set_presence: () => ({ type: 'set_presence', visible: pick([true, false]), requestId: marker() }),
    create_group: () => ({ type: 'create_group', name: 'g', memberIds: [pick([ctx.bId, ctx.cId])], requestId: marker(), clientMsgId: marker() }),
    add_members: () => ({ type: 'add_members', conversationId: pick([...ctx.learned.slice(-20), ctx.groupIn, ctx.groupOut, ctx.direct]), userIds: [ctx.cId], requestId: marker() }),
    remove_members: () => ({ type: 'remove_members', conversationId: pick([...ctx.learned.slice(-20), ctx.groupIn, ctx.groupOut]), userIds: [pick([ctx.bId, ctx.cId])], requestId: marker() }),
    rename_group: () => ({ type: 'rename_group', conversationId: pick([...ctx.learned.slice(-20), ctx.groupIn, ctx.groupOut, ctx.direct]), name: 'n', requestId: marker() }),
    set_role: () => ({ type: 'set_role', conversationId: pick([...ctx.learned.slice(-20), ctx.groupIn, ctx.groupOut]), userId: pick([ctx.aId, ctx.bId, ctx.cId]), role: 'admin', requestId: marker() }),
    list_sessions: () => ({ type: 'list_sessions', requestId: marker() }),
    end_session: () => ({ type: 'end_session', sessionId: pick([marker(), 'node:1', `x:${'9'.repeat(30)}`]), requestId: marker() }),
    ping: () => ({ type: 'ping', requestId: marker() }),
    attach: () => ({ type: 'chat_message', conversationId: pick([ctx.direct, ctx.groupIn]), content: 'a', attachments: [{ type: pick(['image', 'file', marker()]), url: pick([`https://x.example/${marker()}`, `javascript:${marker()}`, ` https://A.EXAMPLE/\u0000`, 'http://[::1]/', 'https://x.example/\'"<>`']), name: pick([marker(), 'n\n', '<b>x</b>']) }], clientMsgId: marker() }),
    auth_refresh_ok: () => ({ type: 'auth', token: ctx.aToken, deviceId: pick(['d1', marker()]), after: pick([0, 2 ** 53 - 1]) }),
    auth_refresh_other: () => ({ type: 'auth', token: ctx.bToken }),
    auth_refresh_dev: () => ({ type: 'auth', token: 'x', deviceId: marker(), after: pick([-1, 1e308, 0]) }),
    auth_refresh_bad: () => ({ type: 'auth', token: pick([marker(), 'a.b.c', '']) }),
  };
  const kind = rnd();
  if (kind < 0.05) {
    return { text: pick([`${marker()}`, '{', '[]', 'null', '"x"', '123', '{"type":1}', `{"type":"${marker()}"}`, '{"type":"ping","type":"ping"}', '{"type":"ack","upTo":1e400}', '{"type":"ack","upTo":1E2}', '{"type":"ack","upTo":100.0}', '\ufeff{"type":"ping"}', '{"type":"ping","requestId":"\\ud800"}', '{"type":"ping"} ', '{"type":"ping"}{"type":"ping"}', '{"type":"ping","requestId":"a\\u0000"}', `{"type":"ping","requestId":"a","requestId":"${marker()}"}`, `{"type":"ping","__proto__":{"x":"${marker()}"}}`, `{"type":"ping","\\u005f_proto__":1}`, '[[[[[[[[[[[[]]]]]]]]]]]]', `{"type":"ping","requestId":"${'r'.repeat(65)}"}`]), desc: 'raw' };
  }
  if (kind < 0.08) return { text: Buffer.from([0, 1, 2, 255]).toString('latin1'), binary: true, desc: 'binary' };
  const name = pick(Object.keys(templates));
  const f = templates[name]!();
  const nMut = Math.floor(rnd() * 3);
  const keys = Object.keys(f).filter((k) => k !== 'type');
  for (let i = 0; i < nMut; i++) {
    const m = rnd();
    if (m < 0.6 && keys.length > 0) f[pick(keys)] = weird();
    else if (m < 0.75) f[pick(['extra', 'constructor', 'Type', marker()])] = weird();
    else if (m < 0.85 && keys.length > 0) delete f[pick(keys)];
    else if (m < 0.9) f.type = pick([marker(), 'Chat_Message', 'auth', '', 'ping ']);
    else if (keys.length > 0) f[pick(keys)] = [weird(), weird()];
  }
  return { text: JSON.stringify(f), desc: name };
}

/** Markers seen in a frame outside the documented echo fields. */
function leakedMarkers(frame: Frame, bystander: boolean): string[] {
  const copy: Record<string, unknown> = { ...frame };
  if (!bystander) {
    delete copy.requestId;
    delete copy.clientMsgId;
  }
  // Valid content of a valid message to a bystander legitimately carries text; our content templates carry no marker
  // unless mutated, and a mutated (marker) content that was valid is a valid message: skip chat text fields.
  if (frame.type === 'chat_message' || frame.type === 'message_edited' || frame.type === 'history' || frame.type === 'conversations') {
    delete copy.content;
    delete copy.messages;
    delete copy.conversations;
    delete copy.mentions;
    delete copy.hashtags;
    delete copy.links;
    delete copy.attachments;
  }
  if (frame.type === 'membership') delete copy.name;
  const s = JSON.stringify(copy);
  return s.match(new RegExp(`${MARK}[0-9a-z]+q`, 'g')) ?? [];
}

async function run(storage: string | undefined): Promise<void> {
  const seed = testSeed();
  console.log(`hostile-frames fuzz seed=${seed} storage=${storage ?? 'sqlite'} (replay with RAMPART_TEST_SEED=${seed})`);
  const rnd = prng(seed).next;
  const uncaught: unknown[] = [];
  const onErr = (e: unknown): void => {
    uncaught.push(e);
  };
  process.on('uncaughtException', onErr);
  process.on('unhandledRejection', onErr);
  const srv = await startServer(process.env.FUZZ_REAL ? { ...(storage ? { storage } : {}), limits: { maxAuthFailures: 100000, connectionAttemptsPerMinute: 100000, penaltyMs: 1 } } as never : {
    ...(storage ? { storage } : {}),
    limits: { maxAuthFailures: 100000, connectionAttemptsPerMinute: 100000, maxViolations: 100000, frames: { limit: 100000, windowMs: 1000 }, requests: { limit: 100000, windowMs: 1000 }, groupCreates: { limit: 100000, windowMs: 60000 }, membershipChanges: { limit: 100000, windowMs: 60000 } },
    rateLimit: { burstLimit: 100000, messagesPerMinute: 100000, messagesPerHour: 100000 },
  } as never);
  const problems: string[] = [];
  const clients: TestClient[] = [];
  try {
    const aId = randomUUID();
    const b = await authedClient(srv.url);
    const c = await authedClient(srv.url);
    let a = await authedClient(srv.url, aId);
    clients.push(a, b, c);
    b.send({ type: 'chat_message', recipientId: aId, content: 'from b' });
    const bSent = await b.nextOfType('message_sent');
    a.send({ type: 'chat_message', recipientId: b.userId, content: 'from a' });
    const aSent = await a.nextOfType('message_sent');
    b.send({ type: 'create_group', name: 'bg', memberIds: [aId], requestId: 'g1' });
    const g1 = await b.next((f) => f.type === 'group_updated' && f.requestId === 'g1');
    c.send({ type: 'create_group', name: 'cg', memberIds: [b.userId], requestId: 'g2' });
    const g2 = await c.next((f) => f.type === 'group_updated' && f.requestId === 'g2');
    c.send({ type: 'chat_message', conversationId: g2.conversationId, content: 'c in cg' });
    const cSent = await c.nextOfType('message_sent');
    const ctx: Ctx = { direct: String(bSent.conversationId), groupIn: String(g1.conversationId), groupOut: String(g2.conversationId), bMsg: String(bSent.id), cMsg: String(cSent.id), aMsg: String(aSent.id), aId, bId: b.userId, cId: c.userId, learned: [], aToken: await token({ sub: aId }), bToken: await token({ sub: b.userId }) };
    const bBase = b.frames.length;
    const cBase = c.frames.length;

    const check = (who: string, f: Frame, sent: string): void => {
      if (!SERVER_TYPES.has(f.type)) problems.push(`${who}: undocumented type ${f.type} after ${sent}`);
      if (f.type === 'error' && !ERROR_REASONS.has(String(f.reason))) problems.push(`${who}: undocumented error reason ${String(f.reason)} after ${sent}`);
      if (f.type === 'error' && f.reason === 'internal_error') problems.push(`${who}: internal_error after ${sent}`);
      if (f.type === 'error' && ['invalid_json', 'invalid_format', 'unknown_type', 'validation_failed', 'binary_not_supported', 'internal_error'].includes(String(f.reason)) && (f.requestId !== undefined || f.clientMsgId !== undefined)) problems.push(`${who}: pre-validation refusal names the frame: ${JSON.stringify(f).slice(0, 300)} after ${sent.slice(0, 300)}`);
      if (f.type === 'error' && Array.isArray(f.details) && f.details.length > 10) problems.push(`${who}: more than 10 details after ${sent.slice(0, 200)}`);
      if (f.type === 'rate_limited' && !(typeof f.retryAfter === 'number' && Number.isInteger(f.retryAfter) && f.retryAfter >= 0)) problems.push(`${who}: bad retryAfter ${JSON.stringify(f)}`);
      if (f.type === 'rate_limited' && !RL_REASONS.has(String(f.reason))) problems.push(`${who}: undocumented rate_limited reason after ${sent}`);
      const leaks = leakedMarkers(f, who !== 'A');
      if (leaks.length > 0) problems.push(`${who}: echoed ${leaks.join(',')} in keys ${Object.keys(f).filter((k) => JSON.stringify(f[k] ?? null).includes(MARK)).join(',')} of ${JSON.stringify(f).slice(0, 300)} after ${sent.slice(0, 300)}`);
    };

    const N = Number(process.env.FUZZ_N ?? 1500);
    let seen = a.frames.length;
    for (let i = 0; i < N; i++) {
      const burst = process.env.FUZZ_BURST ? 1 + Math.floor(rnd() * Number(process.env.FUZZ_BURST)) : 1;
      const texts: string[] = [];
      let g = gen(rnd, ctx);
      for (let k = 0; k < burst; k++) {
        if (k > 0) g = gen(rnd, ctx);
        texts.push(g.text);
        if (g.binary) a.ws.send(Buffer.from(g.text, 'latin1'));
        else a.send(g.text);
      }
      if (burst > 1) g = { ...g, text: texts.join(' ||| ') };
      a.send({ type: 'ping', requestId: `p${i}` });
      try {
        await within(a.next((f) => f.type === 'pong' && f.requestId === `p${i}`), process.env.FUZZ_REAL ? 3000 : 10000, `pong ${i}`);
      } catch (err) {
        if (a.closeCode !== undefined) {
          if (!CLOSE_CODES.has(a.closeCode)) problems.push(`A closed with undocumented ${a.closeCode} after ${g.text.slice(0, 300)}`);
          if (![4011, 4029].includes(a.closeCode) && !(g.text.includes('"auth"') && [4003, 4009].includes(a.closeCode))) problems.push(`A closed ${a.closeCode} after ${g.text.slice(0, 300)}`);
        } else if (!a.frames.slice(seen).some((f) => f.type === 'rate_limited')) problems.push(`A: no pong after ${g.text.slice(0, 300)}: ${String(err)}`);
        for (const f of a.frames.slice(seen)) check('A', f, g.text);
        a.terminate();
        await a.closed;
        a = await authedClient(srv.url, aId);
        clients.push(a);
        seen = 0;
        continue;
      }
      for (const f of a.frames.slice(seen)) {
        check('A', f, g.text);
        for (const k of ['conversationId', 'id', 'messageId']) if (typeof f[k] === 'string' && !ctx.learned.includes(f[k] as string)) ctx.learned.push(f[k] as string);
      }
      seen = a.frames.length;
      if (i % 100 === 99) {
        b.send({ type: 'ping', requestId: `bp${i}` });
        await within(b.next((f) => f.type === 'pong' && f.requestId === `bp${i}`), 10000, 'b pong');
        b.send({ type: 'chat_message', recipientId: aId, content: `still ${i}`, clientMsgId: `bm${i}` });
        const r = await within(b.next((f) => (f.type === 'message_sent' || f.type === 'error') && f.clientMsgId === `bm${i}`), 10000, 'b send');
        if (r.type !== 'message_sent') problems.push(`B could not send: ${JSON.stringify(r)}`);
      }
      if (problems.length > 30) break;
    }
    if (process.env.FUZZ_DEBUG) {
      const hist: Record<string, number> = {};
      for (const cl of clients) for (const f of cl.frames) { const k = `${f.type}:${String(f.reason ?? '')}`; hist[k] = (hist[k] ?? 0) + 1; }
      console.log(JSON.stringify(hist), 'A closes', clients.length - 3);
    }
    for (const f of b.frames.slice(bBase)) check('B', f, '(bystander)');
    for (const f of c.frames.slice(cBase)) check('C', f, '(bystander)');
    for (const line of srv.logs) {
      try {
        const l = JSON.parse(line) as { level?: number; msg?: string };
        if ((l.level ?? 0) >= 50) problems.push(`server error log: ${line.slice(0, 400)}`);
      } catch {
        /* not json */
      }
    }
    if (uncaught.length > 0) problems.push(`uncaught: ${uncaught.map(String).join('; ')}`);
  } finally {
    for (const cl of clients) cl.terminate();
    await srv.close();
    process.off('uncaughtException', onErr);
    process.off('unhandledRejection', onErr);
  }
  const uniq = [...new Set(problems)];
  assert.deepEqual(uniq, [], `seed ${seed}: ${uniq.length} problems:\n${uniq.slice(0, 30).join('\n')}`);
}

test('hostile frames on SQLite break no invariant', { timeout: 120000 }, async () => {
  await run(undefined);
});

test('pre-auth garbage closes with 4002 / 1009 only, and the server stays up', { timeout: 60000 }, async () => {
  const seed = testSeed();
  console.log(`pre-auth fuzz seed=${seed} (replay with RAMPART_TEST_SEED=${seed})`);
  const srv = await startServer({ limits: { connectionAttemptsPerMinute: 100000, maxAuthFailures: 100000 } } as never);
  const problems: string[] = [];
  try {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), fc.string(), fc.constantFrom('{"type":"ping"}', '{"type":"auth"}', '{"type":"auth","token":""}', '{"type":"auth","token":1}', '{"type":"auth","token":"a.b.c","deviceId":"d","after":-0}', '{"type":"auth","token":"x","__proto__":1}')), async (text) => {
        const cl = openClient(srv.url);
        await cl.opened;
        cl.send(text);
        const { code } = await within(cl.closed, 15000, 'close');
        for (const f of cl.frames) {
          if (f.type !== 'auth_failure' && f.type !== 'error') problems.push(`preauth reply ${JSON.stringify(f)} to ${text}`);
          if (f.type === 'error' && !ERROR_REASONS.has(String(f.reason))) problems.push(`bad reason ${JSON.stringify(f)}`);
          if (f.type === 'error' && f.reason === 'internal_error') problems.push(`internal_error to ${text}`);
        }
        if (![4002, 4003, 1009].includes(code)) problems.push(`preauth close ${code} for ${text.slice(0, 200)}`);
      }),
      { seed, numRuns: 60 },
    );
    const ok = await authedClient(srv.url);
    ok.terminate();
    for (const line of srv.logs) if (/"level":(50|60)/.test(line)) problems.push(`error log: ${line.slice(0, 300)}`);
  } finally {
    await srv.close();
  }
  assert.deepEqual([...new Set(problems)], []);
});

{
  test('hostile frames on PostgreSQL break no invariant', { timeout: 120000 }, async () => {
    const pg = await import('pg');
    const schema = `fuzz_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const admin = new pg.default.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await run(`${PG_URL}?schema=${schema}`);
    } finally {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    }
  });
}
