/**
 * GroupCommitter without a database: a store whose transactions finish only when the test says so.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { GroupCommitter } from '../../src/store/group-commit.js';
import type { AppendOptions, AppendOutcome, NewMessage, Store, StoredMessage } from '../../src/store/store.js';

const LIMITS: AppendOptions = { maxInboxSize: 1000 };
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function msg(from: string, to: string, extra: Partial<NewMessage> = {}): NewMessage {
  return {
    id: randomUUID(),
    tenantId: 'default',
    senderId: from,
    to: { peerId: to },
    timestamp: Date.now(),
    content: 'hi',
    mentions: [],
    hashtags: [],
    links: [],
    ...extra,
  };
}

function asStored(m: NewMessage, seq: number): StoredMessage {
  return {
    kind: 'message',
    id: m.id,
    tenantId: m.tenantId,
    conversationId: '00000000-0000-4000-8000-000000000000',
    conversationKind: 'direct',
    seq,
    senderId: m.senderId,
    content: m.content,
    mentions: m.mentions,
    hashtags: m.hashtags,
    links: m.links,
    timestamp: m.timestamp,
  };
}

/** A store whose transactions finish only when the test says so. */
function manualStore() {
  const calls: { batch: NewMessage[]; finish: (outcomes?: AppendOutcome[]) => void; fail: (err: Error) => void }[] = [];
  const store: Pick<Store, 'appendMessages'> = {
    appendMessages(batch) {
      return new Promise<AppendOutcome[]>((resolve, reject) => {
        calls.push({
          batch: [...batch],
          finish: (outcomes) =>
            resolve(outcomes ?? batch.map((m, i) => ({ status: 'stored', message: asStored(m, i + 1), deliveries: [] }))),
          fail: reject,
        });
      });
    },
  };
  return { store, calls };
}

describe('GroupCommitter', () => {
  const [alice, bob] = [randomUUID(), randomUUID()];

  test('one transaction in flight; what arrives meanwhile goes next as one batch', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, LIMITS);
    const first = [committer.submit(msg(alice, bob)), committer.submit(msg(alice, bob))];
    await nextTurn();
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.batch.length, 2);

    const second = [committer.submit(msg(alice, bob))];
    await nextTurn();
    second.push(committer.submit(msg(alice, bob)));
    await nextTurn();
    second.push(committer.submit(msg(alice, bob)));
    await nextTurn();
    assert.equal(calls.length, 1, 'waits while a transaction is in flight');
    assert.equal(committer.queued, 3);

    calls[0]!.finish();
    await Promise.all(first);
    await nextTurn();
    assert.equal(calls.length, 2);
    assert.equal(calls[1]!.batch.length, 3, 'everything that waited goes as one batch');
    calls[1]!.finish();
    assert.deepEqual((await Promise.all(second)).map((o) => o.status), ['stored', 'stored', 'stored']);
    await committer.close();
  });

  test('in-batch repeats of one (tenant, sender, clientMsgId) are sent once and answered like the first', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, LIMITS);
    const a = msg(alice, bob, { clientMsgId: 'k' });
    const pending = [
      committer.submit(a),
      committer.submit(msg(alice, bob, { clientMsgId: 'k', content: 'again' })),
      committer.submit(msg(alice, bob, { clientMsgId: 'k', tenantId: 'other' })),
      committer.submit(msg(bob, alice, { clientMsgId: 'k' })),
      committer.submit(msg(alice, bob, { clientMsgId: 'r' })),
      committer.submit(msg(alice, bob, { clientMsgId: 'r' })),
      committer.submit(msg(alice, bob, { clientMsgId: 'd' })),
      committer.submit(msg(alice, bob, { clientMsgId: 'd' })),
    ];
    await nextTurn();
    assert.equal(calls.length, 1);
    const batch = calls[0]!.batch;
    assert.equal(batch.length, 5, 'repeats are not sent to the store');
    const earlier = asStored(msg(alice, bob, { clientMsgId: 'd' }), 1);
    calls[0]!.finish([
      { status: 'stored', message: asStored(batch[0]!, 1), deliveries: [] },
      { status: 'stored', message: asStored(batch[1]!, 1), deliveries: [] },
      { status: 'stored', message: asStored(batch[2]!, 1), deliveries: [] },
      { status: 'inbox_full' },
      { status: 'duplicate', message: earlier },
    ]);
    const out = await Promise.all(pending);
    assert.deepEqual(out.map((o) => o.status), ['stored', 'duplicate', 'stored', 'stored', 'inbox_full', 'inbox_full', 'duplicate', 'duplicate']);
    assert.equal((out[1] as { message: StoredMessage }).message.id, a.id);
    assert.equal((out[7] as { message: StoredMessage }).message, earlier);
    await committer.close();
  });

  test('a failure rejects only its own batch; the next batch still commits', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, LIMITS);
    const doomed = committer.submit(msg(alice, bob));
    await nextTurn();
    const fine = committer.submit(msg(alice, bob));
    calls[0]!.fail(new Error('connection reset'));
    await assert.rejects(doomed, /connection reset/);
    await nextTurn();
    calls[1]!.finish();
    assert.equal((await fine).status, 'stored');
    await committer.close();
  });

  test('splits a long queue at maxBatchSize', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, { ...LIMITS, maxBatchSize: 2 });
    const all = Array.from({ length: 5 }, () => committer.submit(msg(alice, bob)));
    await nextTurn();
    for (let i = 0; i < 3; i++) {
      assert.equal(calls.length, i + 1);
      calls[i]!.finish();
      await Promise.all(all.slice(2 * i, 2 * i + 2));
      await nextTurn();
    }
    assert.deepEqual(calls.map((c) => c.batch.length), [2, 2, 1]);
    assert.equal((await Promise.all(all)).length, 5);
    await committer.close();
  });

  test('close() commits what is pending and refuses new submits', async () => {
    const { store, calls } = manualStore();
    const committer = new GroupCommitter(store, LIMITS);
    const pending = committer.submit(msg(alice, bob));
    const closing = committer.close();
    await assert.rejects(committer.submit(msg(alice, bob)), /closed/);
    assert.equal(calls.length, 1, 'close flushes without waiting for the next turn');
    calls[0]!.finish();
    await closing;
    assert.equal((await pending).status, 'stored');
  });

  test('a store answering with the wrong number of outcomes rejects the batch', async () => {
    const committer = new GroupCommitter({ appendMessages: async () => [] }, LIMITS);
    await assert.rejects(committer.submit(msg(alice, bob)), /outcomes/);
  });
});

describe('one row the database refuses', () => {
  /** A store that refuses, as a whole transaction, any batch holding a message whose content is POISON. */
  function poisonStore(code: string) {
    const batches: number[] = [];
    const store: Pick<Store, 'appendMessages'> = {
      async appendMessages(batch) {
        batches.push(batch.length);
        if (batch.some((m) => m.content === 'POISON')) throw Object.assign(new Error('refused'), { code });
        return batch.map((m, i) => ({ status: 'stored', message: asStored(m, i + 1), deliveries: [] }) as AppendOutcome);
      },
    };
    return { store, batches };
  }

  test('a row error (a trigger RAISE, P0001): the rest of the batch is stored in halves, only that message fails', async () => {
    const { store, batches } = poisonStore('P0001');
    const gc = new GroupCommitter(store, LIMITS);
    const key = msg('u1', 'u2', { clientMsgId: 'k' });
    const contents = ['a', 'b', 'POISON', 'c', 'd', 'e'];
    const results = await Promise.allSettled([...contents.map((content) => gc.submit(msg('u1', 'u2', { content }))), gc.submit(key), gc.submit({ ...key, id: randomUUID() })]);
    assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value.status : 'rejected')), ['stored', 'stored', 'rejected', 'stored', 'stored', 'stored', 'stored', 'duplicate']);
    assert.equal((results[2] as PromiseRejectedResult).reason.code, 'P0001');
    assert.equal(batches[0], 7, 'first the whole batch (the repeat of a clientMsgId is not sent twice)');
    assert.ok(batches.length <= 1 + 2 * Math.ceil(Math.log2(7)), `bounded retries: ${batches.join(', ')}`);
    await gc.close();
  });

  test('two refused messages at the two ends of a batch of 64: every other message is stored', async () => {
    const { store } = poisonStore('P0001');
    const gc = new GroupCommitter(store, LIMITS);
    const contents = Array.from({ length: 64 }, (_, i) => (i === 0 || i === 63 ? 'POISON' : `m${i}`));
    const results = await Promise.allSettled(contents.map((content) => gc.submit(msg('u1', 'u2', { content }))));
    const rejected = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    assert.deepEqual(rejected, [0, 63]);
    await gc.close();
  });

  test('a batch the database refuses whole (every row): the halving stops well short of trying every message', async () => {
    const batches: number[] = [];
    const store: Pick<Store, 'appendMessages'> = {
      async appendMessages(batch) {
        batches.push(batch.length);
        throw Object.assign(new Error('refused'), { code: 'P0001' });
      },
    };
    const gc = new GroupCommitter(store, LIMITS);
    const results = await Promise.allSettled(Array.from({ length: 64 }, () => gc.submit(msg('u1', 'u2'))));
    assert.ok(results.every((r) => r.status === 'rejected'));
    // About 2·log2 n for each refused message found, up to eight of them: not 2n − 1 = 127.
    assert.ok(batches.length <= 1 + 2 * 6 * 9, `${batches.length} transactions for 64 messages`);
    await gc.close();
  });

  test('an error of the database or the connection (a timeout, 57014) fails the whole batch, with no retry', async () => {
    const { store, batches } = poisonStore('57014');
    const gc = new GroupCommitter(store, LIMITS);
    const results = await Promise.allSettled(['a', 'POISON', 'b'].map((content) => gc.submit(msg('u1', 'u2', { content }))));
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
    assert.deepEqual(batches, [3]);
    await gc.close();
  });
});
