// The simulator's only source of randomness: a small seeded PRNG (xoshiro128**), so that a run is a
// pure function of its seed. Nothing under src/sim may call Math.random; every random choice (link
// delays, drops, fault picks, client timing, the cores' own seeds) is drawn from a SimRandom.

/** Mixes a 32-bit value (the murmur3 finalizer): nearby inputs give unrelated outputs. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Folds any safe integer into 32 bits without losing its high half. */
function fold(n: number): number {
  if (!Number.isSafeInteger(n)) throw new RangeError(`seed part must be a safe integer, got ${n}`);
  const low = n >>> 0;
  const high = Math.floor(n / 0x1_0000_0000) >>> 0;
  return (low ^ fmix32(high + 0x9e3779b9)) >>> 0;
}

/**
 * Derives an independent 32-bit seed from a run seed and a path of integers, e.g.
 * deriveSeed(runSeed, nodeIndex, incarnation) for the core of one node's n-th life.
 */
export function deriveSeed(seed: number, ...parts: readonly number[]): number {
  let h = fmix32(fold(seed) ^ 0x5bd1e995);
  for (const part of parts) h = fmix32((h ^ fold(part)) + 0x9e3779b9 + ((h << 6) >>> 0) + (h >>> 2));
  return h >>> 0;
}

/** xoshiro128** (Blackman & Vigna), seeded through splitmix-style mixing of one 32-bit seed. */
export class SimRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    const s = fold(seed);
    this.a = fmix32(s + 0x9e3779b9);
    this.b = fmix32(s + 0x3c6ef372);
    this.c = fmix32(s + 0xdaa66d2b);
    this.d = fmix32(s + 0x78dde6e4);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the all-zero state is a fixed point
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    if (hi < lo) throw new RangeError(`empty range [${lo}, ${hi}]`);
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** Uniform real in [lo, hi]. */
  between(range: readonly [number, number]): number {
    const [lo, hi] = range;
    return lo + this.float() * (hi - lo);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(0, items.length - 1)] as T;
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffled<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const tmp = out[i] as T;
      out[i] = out[j] as T;
      out[j] = tmp;
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
