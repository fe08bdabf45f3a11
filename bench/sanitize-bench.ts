/**
 * Micro-benchmark of the content path: `node --import tsx bench/sanitize-bench.ts`.
 * Times sanitizeHtml and processContent on ordinary and hostile inputs (≤ 5000 chars, the protocol
 * maximum). Each case runs for a fixed wall-clock budget after a warm-up; reports ops/s and µs/op.
 */
import { sanitizeHtml } from '../src/chat/sanitize.js';
import { processContent } from '../src/chat/process-content.js';
import { checkContent } from '../src/chat/content-policy.js';
import { extractEntities } from '../src/chat/extract.js';

const CASES: [string, string][] = [
  ['normal 100-char message', 'Hey @alice, did you see <b>this</b>? https://example.com/news/42 — it\'s "great" & #fun!!'.padEnd(100, '.')],
  ['plain 5000-char message', 'The quick brown fox jumps over the lazy dog. '.repeat(112).slice(0, 5000)],
  ['nested-tag bomb 5000 chars', '<b>'.repeat(1666) + 'xx'],
  ['"<<<<" 5000 chars', '<'.repeat(5000)],
  ['markup-heavy 5000 chars', '<b>bold</b> <i class=x>no</i> &amp; "q" '.repeat(125).slice(0, 5000)],
];

// Messages reach the server through JSON.parse, which yields flat strings; `repeat` builds ropes
// that make charCodeAt slower, so flatten every input the same way.
for (const c of CASES) c[1] = JSON.parse(JSON.stringify(c[1])) as string;

const BUDGET_MS = Number(process.env.BENCH_MS ?? 500);
/** Reading a char flattens a concatenated result, a cost the server pays anyway when serializing. */
const flat = (s: string): number => s.charCodeAt(s.length >> 1) | 0;
let sink = 0; // keeps results alive so the JIT cannot drop the calls

function measure(fn: () => number): { opsPerSec: number; usPerOp: number } {
  const warmEnd = performance.now() + BUDGET_MS / 5;
  while (performance.now() < warmEnd) sink += fn();
  let ops = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < BUDGET_MS) {
    for (let k = 0; k < 64; k++) sink += fn();
    ops += 64;
    t = performance.now();
  }
  const seconds = (t - t0) / 1000;
  return { opsPerSec: ops / seconds, usPerOp: (seconds * 1e6) / ops };
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

console.log(`node ${process.version}, ${BUDGET_MS} ms per case`);
console.log(`${'case'.padEnd(30)} ${'function'.padEnd(16)} ${'ops/s'.padStart(12)} ${'µs/op'.padStart(9)}`);
for (const [name, input] of CASES) {
  const rows: [string, () => number][] = [
    ['sanitizeHtml', () => flat(sanitizeHtml(input))],
    ['processContent', () => {
      const r = processContent(input, 'standard');
      return r.ok ? flat(r.content) : 0;
    }],
  ];
  for (const [fnName, fn] of rows) {
    const { opsPerSec, usPerOp } = measure(fn);
    console.log(`${name.padEnd(30)} ${fnName.padEnd(16)} ${fmt(opsPerSec).padStart(12)} ${fmt(usPerOp, 2).padStart(9)}`);
  }
}

// The content policy and entity extraction on their own, at the protocol maximum.
const policyInput = JSON.parse(JSON.stringify('abcdefghij 😀 '.repeat(400).slice(0, 5000))) as string;
const extractInput = JSON.parse(JSON.stringify('hey @bob look https://example.com/page?x=1 #wow '.repeat(110).slice(0, 5000))) as string;
for (const [name, fn] of [
  ['checkContent strict, 5000 chars', () => (checkContent(policyInput, 'strict').ok ? 1 : 0)],
  ['extractEntities, 5000 chars', () => extractEntities(extractInput).links.length],
] as [string, () => number][]) {
  const { opsPerSec, usPerOp } = measure(fn);
  console.log(`${name.padEnd(47)} ${fmt(opsPerSec).padStart(12)} ${fmt(usPerOp, 2).padStart(9)}`);
}

// Linearity: 10× the input should cost ~10× the time (a quadratic scan would cost ~100×).
const small = JSON.parse(JSON.stringify('<b <b>x'.repeat(700))) as string;
const large = JSON.parse(JSON.stringify('<b <b>x'.repeat(7000))) as string;
const tSmall = measure(() => flat(sanitizeHtml(small))).usPerOp;
const tLarge = measure(() => flat(sanitizeHtml(large))).usPerOp;
console.log(`linearity: sanitizeHtml of ${small.length} chars ${fmt(tSmall, 2)} µs, of ${large.length} chars ${fmt(tLarge, 2)} µs — ratio ${fmt(tLarge / tSmall, 1)} for 10× input`);
if (sink === -1) console.log(sink);
