/** The node's timer wheel, on a fake clock (`advance` by hand; no real time passes). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TimerWheel, type WheelEntry } from '../../src/session/timer-wheel.js';

function entry(log: string[], name: string, onFire?: (now: number) => void): WheelEntry {
  return {
    wheelDue: 0,
    wheelSlot: -1,
    onWheel(now) {
      log.push(`${name}@${now}`);
      onFire?.(now);
    },
  };
}

function wheel(slots = 16, tickMs = 10) {
  let t = 1_000_000;
  const w = new TimerWheel({ tickMs, slots, autoTick: false, now: () => t });
  return { w, at: () => t, to: (ms: number) => w.advance((t = ms)) };
}

test('fires at or after the deadline, never before, at most one tick late', () => {
  const { w, to } = wheel();
  const log: string[] = [];
  w.schedule(entry(log, 'a'), 1_000_025);
  to(1_000_020);
  assert.deepEqual(log, []);
  to(1_000_024);
  assert.deepEqual(log, []);
  to(1_000_030);
  assert.deepEqual(log, ['a@1000030']);
  assert.equal(w.size, 0);
});

test('reschedule replaces the deadline; cancel removes it', () => {
  const { w, to } = wheel();
  const log: string[] = [];
  const a = entry(log, 'a');
  const b = entry(log, 'b');
  w.schedule(a, 1_000_050);
  w.schedule(a, 1_000_100);
  w.schedule(b, 1_000_050);
  w.cancel(b);
  assert.equal(w.size, 1);
  to(1_000_060);
  assert.deepEqual(log, []);
  to(1_000_100);
  assert.deepEqual(log, ['a@1000100']);
  w.cancel(a); // not scheduled: nothing happens
  assert.equal(a.wheelSlot, -1);
});

test('deadlines beyond one revolution wait for their turn', () => {
  const { w, to } = wheel(8, 10); // one revolution = 80 ms
  const log: string[] = [];
  w.schedule(entry(log, 'far'), 1_000_000 + 250);
  for (let t = 1_000_010; t < 1_000_250; t += 10) to(t);
  assert.deepEqual(log, []);
  to(1_000_250);
  assert.deepEqual(log, ['far@1000250']);
});

test('a long stall fires everything overdue in one pass', () => {
  const { w, to } = wheel(8, 10);
  const log: string[] = [];
  for (let i = 0; i < 20; i++) w.schedule(entry(log, `e${i}`), 1_000_000 + 15 * (i + 1));
  to(1_010_000);
  assert.equal(log.length, 20);
  assert.equal(w.size, 0);
});

test('a deadline in the past fires on the next tick', () => {
  const { w, to } = wheel();
  const log: string[] = [];
  to(1_000_100);
  w.schedule(entry(log, 'late'), 999_000);
  to(1_000_110);
  assert.deepEqual(log, ['late@1000110']);
});

test('an entry may reschedule itself (a heartbeat) and cancel others from its callback', () => {
  const { w, to } = wheel();
  const log: string[] = [];
  const other = entry(log, 'other');
  const beat: WheelEntry = entry(log, 'beat', (now) => {
    w.cancel(other);
    if (log.length < 3) w.schedule(beat, now + 30);
  });
  w.schedule(beat, 1_000_030);
  w.schedule(other, 1_000_030);
  for (let t = 1_000_010; t <= 1_000_200; t += 10) to(t);
  assert.deepEqual(log, ['beat@1000030', 'beat@1000060', 'beat@1000090']);
  assert.equal(w.size, 0);
});

test('close forgets every entry', () => {
  const { w, to } = wheel();
  const log: string[] = [];
  const a = entry(log, 'a');
  w.schedule(a, 1_000_020);
  w.close();
  assert.equal(w.size, 0);
  assert.equal(a.wheelSlot, -1);
  to(1_000_100);
  assert.deepEqual(log, []);
});

test('the interval runs only while something is scheduled (unref: it never holds the process)', { timeout: 10_000 }, async () => {
  const w = new TimerWheel({ tickMs: 5, slots: 64 });
  const keepAlive = setInterval(() => {}, 1000); // the wheel's own interval is unref'd
  const fired = await new Promise<number>((resolve) => {
    w.schedule({ wheelDue: 0, wheelSlot: -1, onWheel: (now) => resolve(now) }, w.now() + 10);
  });
  clearInterval(keepAlive);
  assert.ok(fired > 0);
  assert.equal(w.size, 0);
  w.close();
});
