/**
 * The security-event stream: every refusal counted, at most `logLinesPerSecond` lines per reason
 * per second, and the next line of a reason says how many of its lines were held back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createSecurityEventSink } from '../../src/observability/security-events.js';

function sinkWithLines(perSecond: number): { emit: ReturnType<typeof createSecurityEventSink>; lines: Record<string, unknown>[]; clock: { t: number }; count(reason: string): Promise<number> } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger('info', destination);
  const metrics = createMetrics(false);
  const clock = { t: 1_000_000 };
  const emit = createSecurityEventSink(logger, metrics, { logLinesPerSecond: perSecond, now: () => clock.t });
  const count = async (reason: string): Promise<number> => (await metrics.securityEvents.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { emit, lines, clock, count };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('past the bound a reason is counted, not logged; the next second says how many were held back, then logs again', async () => {
  const s = sinkWithLines(3);
  for (let i = 0; i < 10; i++) s.emit('connection_attempt_rate', { ip: '203.0.113.9', code: 429 });
  await settle();
  assert.equal(s.lines.length, 3);
  assert.equal(await s.count('connection_attempt_rate'), 10);
  s.clock.t += 1000;
  s.emit('connection_attempt_rate', { ip: '203.0.113.9', code: 429 });
  s.emit('connection_attempt_rate', { ip: '203.0.113.9', code: 429 });
  await settle();
  assert.deepEqual(
    s.lines.map((l) => [l.msg, l.suppressed]),
    [['refused', undefined], ['refused', undefined], ['refused', undefined], ['refused lines held back', 7], ['refused', undefined], ['refused', undefined]],
  );
  assert.deepEqual(
    { event: s.lines[0]!.event, reason: s.lines[0]!.reason, ip: s.lines[0]!.ip, code: s.lines[0]!.code },
    { event: 'security', reason: 'connection_attempt_rate', ip: '203.0.113.9', code: 429 },
  );
  assert.equal(s.lines[3]!.ip, undefined, 'the count names no one refusal');
  s.emit.close();
});

test('a flood that stops is still accounted for when its second ends, and at close', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const s = sinkWithLines(2);
  for (let i = 0; i < 500; i++) s.emit('origin_not_allowed', { ip: '198.51.100.1', code: 403 });
  t.mock.timers.tick(1000);
  await settle();
  assert.deepEqual(s.lines.map((l) => [l.reason, l.suppressed]), [['origin_not_allowed', undefined], ['origin_not_allowed', undefined], ['origin_not_allowed', 498]]);
  s.clock.t += 1000;
  for (let i = 0; i < 5; i++) s.emit('banned', { ip: '198.51.100.2', code: 4010 });
  s.emit.close();
  s.emit.close();
  await settle();
  assert.deepEqual(s.lines.slice(3).map((l) => [l.reason, l.suppressed]), [['banned', undefined], ['banned', undefined], ['banned', 3]]);
});

test('each reason has its own budget: a flood of one does not silence another', async () => {
  const s = sinkWithLines(2);
  for (let i = 0; i < 50; i++) s.emit('origin_not_allowed', { ip: '198.51.100.1', code: 403 });
  s.emit('banned', { ip: '198.51.100.2', userId: 'u', tenantId: 't', code: 4010 });
  await settle();
  assert.deepEqual(s.lines.map((l) => l.reason), ['origin_not_allowed', 'origin_not_allowed', 'banned']);
  assert.equal(await s.count('origin_not_allowed'), 50);
  s.emit.close();
});
