/**
 * Re-renders docs/benchmarks.md (generated section) and bench/results/benchmarks.svg from a results
 * file, without running anything:  node --import tsx bench/render.ts [bench/results/latest.json]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeReport } from './lib/report.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const file = process.argv[2] ?? path.join(root, 'bench/results/latest.json');
const out = JSON.parse(readFileSync(file, 'utf8'));
const rel = path.relative(root, path.resolve(file));
console.log(`wrote ${writeReport(out, root, rel.startsWith('..') ? 'bench/results/latest.json' : rel).join(', ')}`);
