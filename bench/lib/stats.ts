/** Percentiles of latency samples, and median/min/max summaries of repeated runs. */

/** A growable sample buffer of µs latencies (Uint32, capped). */
export class Samples {
  private buf: Uint32Array;
  n = 0;
  dropped = 0;
  constructor(
    initial = 1 << 16,
    private readonly cap = 1 << 24,
  ) {
    this.buf = new Uint32Array(initial);
  }
  add(us: number): void {
    if (this.n === this.buf.length) {
      if (this.n >= this.cap) {
        this.dropped++;
        return;
      }
      const next = new Uint32Array(Math.min(this.cap, this.buf.length * 2));
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = us < 0 ? 0 : us > 0xffffffff ? 0xffffffff : us;
  }
  /** Sorted copy of the samples. */
  sorted(): Uint32Array {
    return this.buf.slice(0, this.n).sort();
  }
}

export interface LatencySummary {
  count: number;
  p50_ms: number | null;
  p99_ms: number | null;
  p999_ms: number | null;
  max_ms: number | null;
  mean_ms: number | null;
}

export function quantile(sorted: Uint32Array, q: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

const ms = (us: number | null): number | null => (us === null ? null : Math.round(us) / 1000);

export function summarize(s: Samples): LatencySummary {
  const sorted = s.sorted();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  return {
    count: sorted.length,
    p50_ms: ms(quantile(sorted, 0.5)),
    p99_ms: ms(quantile(sorted, 0.99)),
    p999_ms: ms(quantile(sorted, 0.999)),
    max_ms: ms(sorted.length ? sorted[sorted.length - 1]! : null),
    mean_ms: sorted.length ? Math.round(sum / sorted.length) / 1000 : null,
  };
}

export function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export interface Spread {
  median: number | null;
  min: number | null;
  max: number | null;
  runs: (number | null)[];
}

export function spread(xs: (number | null | undefined)[]): Spread {
  const runs = xs.map((x) => (x === undefined || x === null || !Number.isFinite(x) ? null : x));
  const v = runs.filter((x): x is number => x !== null);
  return {
    median: median(v),
    min: v.length ? Math.min(...v) : null,
    max: v.length ? Math.max(...v) : null,
    runs,
  };
}

/** Rounds to `sig` significant digits (for the JSON and the tables). */
export function sig(x: number | null | undefined, digits = 4): number | null {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  if (x === 0) return 0;
  const p = Math.pow(10, digits - Math.ceil(Math.log10(Math.abs(x))));
  return Math.round(x * p) / p;
}
