/**
 * Receipt frames as the other members receive them never move backwards: on one node, sends of one
 * member's positions go out in order even when storage answers out of order (a pool of
 * connections); across two nodes, a flush held for the coalescing window sends what storage holds
 * by then, not the older position it held; a held position still goes out when the node closes; a
 * member's first message tells the others the positions stored before it. The SDK keeps only
 * positions that moved forward.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReceiptService } from '../../src/chat/receipt-service.js';
import { ReceiptPositions } from '../../src/client/receipt-positions.js';
import type { Bus } from '../../src/bus/bus.js';
import type { Audience, Store } from '../../src/store/store.js';

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';
const C = '00000000-0000-4000-8000-0000000000cc';

type Received = { to: string; frame: { read?: number; delivered?: number } }[];

function sharedBus(received: Received): Bus {
  return {
    subscribe() {},
    subscribed: () => undefined,
    unsubscribe() {},
    publish(to, frame) {
      received.push({ to, frame: JSON.parse(frame) });
    },
    onFrame() {},
    onResync() {},
    healthy: () => true,
    close: async () => {},
  };
}

/** B's positions as stored (shared by the nodes); each audience read waits its delay, if any. */
function store(stored: { delivered: number; read: number }, delays: number[] = []): Store {
  return {
    async audienceOf(): Promise<Audience> {
      const d = delays.shift() ?? 0;
      if (d > 0) await sleep(d);
      return { members: [A, B], sharing: [A, B], positions: { ...stored } };
    },
  } as unknown as Store;
}

const readsSeenByA = (received: Received): (number | undefined)[] => received.filter((r) => r.to.endsWith(A)).map((r) => r.frame.read);

test('two nodes: a read held for the window is sent as stored by then, never below what the other node sent', async () => {
  const received: Received = [];
  const bus = sharedBus(received);
  const stored = { delivered: 0, read: 0 };
  const options = { bus, enabled: true, coalesceMs: 250, membersMax: 32, onError: (e: unknown) => assert.fail(String(e)) };
  const nodeX = new ReceiptService({ ...options, store: store(stored) });
  const nodeY = new ReceiptService({ ...options, store: store(stored) });
  try {
    stored.read = 5;
    nodeX.read('default', B, C, 5); // B's phone (node X): sent at once
    await sleep(20);
    stored.read = 6;
    nodeX.read('default', B, C, 6); // B's phone again: held for the window
    await sleep(20);
    stored.read = 8;
    nodeY.read('default', B, C, 8); // B's laptop (node Y): sent at once
    await sleep(400); // node X's window ends
    const seen = readsSeenByA(received);
    assert.deepEqual(seen, [5, 8, 8], `A received read positions ${seen.join(', ')}`);
  } finally {
    await nodeX.close();
    await nodeY.close();
  }
});

test('one node, chat.receiptCoalesceMs 0: storage answering out of order still sends in order', async () => {
  const received: Received = [];
  const stored = { delivered: 0, read: 0 };
  // The first send's membership read is slow (another pool connection), the second's fast.
  const svc = new ReceiptService({ store: store(stored, [50, 0]), bus: sharedBus(received), enabled: true, coalesceMs: 0, membersMax: 32, onError: (e) => assert.fail(String(e)) });
  try {
    svc.read('default', B, C, 5);
    svc.read('default', B, C, 9);
    await sleep(100);
    assert.deepEqual(readsSeenByA(received), [5, 9]);
  } finally {
    await svc.close();
  }
});

test('a position held for the window goes out when the node closes, before close() resolves', async () => {
  const received: Received = [];
  const stored = { delivered: 0, read: 0 };
  const svc = new ReceiptService({ store: store(stored), bus: sharedBus(received), enabled: true, coalesceMs: 60_000, membersMax: 32, onError: (e) => assert.fail(String(e)) });
  stored.read = 3;
  svc.read('default', B, C, 3); // sent at once
  stored.read = 5;
  svc.read('default', B, C, 5); // held for the (long) window
  await svc.close();
  assert.deepEqual(readsSeenByA(received), [3, 5]);
});

test("a member's first message: the others are told the positions stored before it (a read made while not sharing)", async () => {
  const received: Received = [];
  const stored = { delivered: 3, read: 2 };
  const svc = new ReceiptService({ store: store(stored), bus: sharedBus(received), enabled: true, coalesceMs: 1000, membersMax: 32, onError: (e) => assert.fail(String(e)) });
  svc.shared('default', B, C);
  await svc.close();
  assert.deepEqual(received.filter((r) => r.to.endsWith(A)).map((r) => r.frame), [{ type: 'receipt', conversationId: C, userId: B, delivered: 3, read: 2 }]);
  // Nothing stored yet: nothing to tell.
  const none: Received = [];
  const fresh = new ReceiptService({ store: store({ delivered: 0, read: 0 }), bus: sharedBus(none), enabled: true, coalesceMs: 0, membersMax: 32, onError: (e) => assert.fail(String(e)) });
  fresh.shared('default', B, C);
  await fresh.close();
  assert.deepEqual(none, []);
});

test('SDK: a receipt reaches listeners only with the positions that moved forward', () => {
  const seen = new ReceiptPositions();
  const r = (delivered?: number, read?: number) => seen.advance({ conversationId: C, userId: B, ...(delivered === undefined ? {} : { delivered }), ...(read === undefined ? {} : { read }) });
  assert.deepEqual(r(3, 1), { conversationId: C, userId: B, delivered: 3, read: 1 });
  assert.equal(r(2, 1), undefined); // a late frame: nothing moved
  assert.deepEqual(r(2, 4), { conversationId: C, userId: B, read: 4 }); // only read moved
  assert.deepEqual(r(5), { conversationId: C, userId: B, delivered: 5 });
  assert.deepEqual(seen.advance({ conversationId: C, userId: A, read: 1 }), { conversationId: C, userId: A, read: 1 }); // another member: its own positions
});
