/**
 * Seeds for randomized tests: a deterministic PRNG, the seed of a run (`RAMPART_TEST_SEED` replays
 * one) and a way to print it, so any failing run can be replayed exactly. Imports nothing of the
 * server, so unit tests can use it too.
 */

/** A deterministic PRNG (mulberry32) for seeded randomized tests. */
export function prng(seed: number): { next(): number; int(n: number): number; pick<T>(xs: readonly T[]): T; chance(p: number): boolean } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, pick: (xs) => xs[int(xs.length)]!, chance: (p) => next() < p };
}

/** The seed of a randomized test: `RAMPART_TEST_SEED` to replay one, else a fresh one. */
export function testSeed(): number {
  const env = process.env.RAMPART_TEST_SEED;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n)) throw new Error(`RAMPART_TEST_SEED must be an integer, got ${env}`);
    return n >>> 0;
  }
  return (Math.random() * 2 ** 32) >>> 0;
}

/** A fresh `testSeed()`, printed (stdout and the test's diagnostics) with how to replay the run. */
export function printedSeed(t: { name: string; diagnostic(message: string): void }): number {
  const seed = testSeed();
  const line = `seed ${seed} (replay with RAMPART_TEST_SEED=${seed})`;
  t.diagnostic(line);
  console.log(`${t.name}: ${line}`);
  return seed;
}
