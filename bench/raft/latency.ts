// Latency recording for benchmarks: collect samples (milliseconds) and report percentiles.
// Pure and deterministic, so it is unit-tested; reusable by every benchmark under bench/.

/** Summary of one set of samples. Percentiles use the nearest-rank method. */
export interface LatencySummary {
  readonly count: number;
  readonly minMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

/**
 * Nearest-rank percentile of an ascending-sorted array: the smallest sample such that at least
 * p% of the samples are <= it. p in [0, 100]. Returns NaN for an empty array.
 */
export function percentileOfSorted(sortedAsc: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within [0, 100], got ${p}`);
  const n = sortedAsc.length;
  if (n === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * n)); // 1-based
  return sortedAsc[Math.min(rank, n) - 1] as number;
}

/** Median of unsorted samples (copies, does not reorder the input). NaN when empty. */
export function median(samples: readonly number[]): number {
  return percentileOfSorted([...samples].sort((a, b) => a - b), 50);
}

export interface LatencyRecorderOptions {
  /**
   * Bound on stored samples (default 2,000,000 ≈ 16 MB). At the bound the recorder switches to
   * reservoir sampling (Vitter's algorithm R): every sample still counts toward `count`/min/max/mean,
   * and the stored set stays a uniform random sample, so percentiles stay unbiased.
   */
  readonly maxSamples?: number;
  /** Seed of the reservoir's PRNG (only used past the bound), so results are reproducible. */
  readonly seed?: number;
}

/** Records latencies in milliseconds. */
export class LatencyRecorder {
  private readonly maxSamples: number;
  private samples: number[] = [];
  private total = 0;
  private sumMs = 0;
  private minMs = Number.POSITIVE_INFINITY;
  private maxMs = Number.NEGATIVE_INFINITY;
  private rngState: number;

  constructor(options: LatencyRecorderOptions = {}) {
    this.maxSamples = options.maxSamples ?? 2_000_000;
    if (!Number.isInteger(this.maxSamples) || this.maxSamples < 1) {
      throw new RangeError(`maxSamples must be a positive integer, got ${this.maxSamples}`);
    }
    this.rngState = (options.seed ?? 0x9e3779b9) >>> 0 || 1;
  }

  /** Number of samples recorded (including those not kept by the reservoir). */
  get count(): number {
    return this.total;
  }

  record(latencyMs: number): void {
    if (!Number.isFinite(latencyMs) || latencyMs < 0) {
      throw new RangeError(`latency must be a finite non-negative number, got ${latencyMs}`);
    }
    this.total++;
    this.sumMs += latencyMs;
    if (latencyMs < this.minMs) this.minMs = latencyMs;
    if (latencyMs > this.maxMs) this.maxMs = latencyMs;
    if (this.samples.length < this.maxSamples) {
      this.samples.push(latencyMs);
      return;
    }
    // Algorithm R: keep the new sample with probability maxSamples / total.
    const j = this.nextRandom() % this.total;
    if (j < this.maxSamples) this.samples[j] = latencyMs;
  }

  reset(): void {
    this.samples = [];
    this.total = 0;
    this.sumMs = 0;
    this.minMs = Number.POSITIVE_INFINITY;
    this.maxMs = Number.NEGATIVE_INFINITY;
  }

  percentile(p: number): number {
    return percentileOfSorted([...this.samples].sort((a, b) => a - b), p);
  }

  summary(): LatencySummary {
    const sorted = [...this.samples].sort((a, b) => a - b);
    const empty = this.total === 0;
    return {
      count: this.total,
      minMs: empty ? Number.NaN : this.minMs,
      p50Ms: percentileOfSorted(sorted, 50),
      p90Ms: percentileOfSorted(sorted, 90),
      p99Ms: percentileOfSorted(sorted, 99),
      maxMs: empty ? Number.NaN : this.maxMs,
      meanMs: empty ? Number.NaN : this.sumMs / this.total,
    };
  }

  /** xorshift32: small, deterministic, good enough to pick reservoir slots. */
  private nextRandom(): number {
    let x = this.rngState;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.rngState = x;
    return x;
  }
}
