// Unit tests for the pure parts of the benchmark: percentiles, the latency recorder, the
// figures derived from raw samples and table formatting. No processes, no timing assertions.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LatencyRecorder, median, percentileOfSorted } from './latency.js';
import type { ClosedLoopResult } from './load.js';
import { comparisonRows, failoverFigures, throughputFigures, type PhaseRecord } from './report.js';
import { formatComparison, formatRatio, formatTable, formatValue } from './table.js';

describe('percentileOfSorted (nearest rank)', () => {
  const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

  it('picks the nearest-rank sample', () => {
    expect(percentileOfSorted(xs, 50)).toBe(5);
    expect(percentileOfSorted(xs, 90)).toBe(9);
    expect(percentileOfSorted(xs, 99)).toBe(10);
    expect(percentileOfSorted(xs, 100)).toBe(10);
    expect(percentileOfSorted(xs, 0)).toBe(1);
    expect(percentileOfSorted([42], 99)).toBe(42);
  });

  it('is NaN for no samples and rejects percentiles outside [0, 100]', () => {
    expect(percentileOfSorted([], 50)).toBeNaN();
    expect(() => percentileOfSorted(xs, 101)).toThrow(RangeError);
    expect(() => percentileOfSorted(xs, -1)).toThrow(RangeError);
  });

  it('returns a sample with at least p% of samples at or below it, and fewer strictly below (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 100 }),
        (values, p) => {
          const sorted = [...values].sort((a, b) => a - b);
          const v = percentileOfSorted(sorted, p);
          expect(sorted).toContain(v);
          const atOrBelow = sorted.filter((x) => x <= v).length;
          const below = sorted.filter((x) => x < v).length;
          expect(atOrBelow / sorted.length).toBeGreaterThanOrEqual(p / 100);
          expect(below / sorted.length).toBeLessThan(p / 100);
        },
      ),
      { seed: 20261121, numRuns: 200 },
    );
  });

  it('median does not reorder its input', () => {
    const input = [3, 1, 2];
    expect(median(input)).toBe(2);
    expect(input).toEqual([3, 1, 2]);
  });
});

describe('LatencyRecorder', () => {
  it('summarizes recorded samples', () => {
    const r = new LatencyRecorder();
    for (let i = 100; i >= 1; i--) r.record(i);
    const s = r.summary();
    expect(s).toMatchObject({ count: 100, minMs: 1, maxMs: 100, p50Ms: 50, p90Ms: 90, p99Ms: 99 });
    expect(s.meanMs).toBeCloseTo(50.5);
  });

  it('reports NaN figures when empty, and reset empties it', () => {
    const r = new LatencyRecorder();
    expect(r.summary().count).toBe(0);
    expect(r.summary().p50Ms).toBeNaN();
    r.record(5);
    r.reset();
    expect(r.count).toBe(0);
    expect(r.summary().maxMs).toBeNaN();
  });

  it('rejects negative and non-finite latencies', () => {
    const r = new LatencyRecorder();
    expect(() => r.record(-1)).toThrow(RangeError);
    expect(() => r.record(Number.NaN)).toThrow(RangeError);
    expect(() => r.record(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it('keeps at most maxSamples, still counts every sample, and keeps percentiles close (reservoir)', () => {
    const r = new LatencyRecorder({ maxSamples: 1000, seed: 7 });
    for (let i = 0; i < 100_000; i++) r.record(i % 1000);
    const s = r.summary();
    expect(s.count).toBe(100_000);
    expect(s.minMs).toBe(0);
    expect(s.maxMs).toBe(999);
    // A uniform sample of 1000 from a uniform 0..999 distribution: the median lands near 500.
    expect(s.p50Ms).toBeGreaterThan(400);
    expect(s.p50Ms).toBeLessThan(600);
  });
});

describe('table formatting', () => {
  it('formats values by magnitude', () => {
    expect(formatValue(12345.6)).toBe('12,346');
    expect(formatValue(123.4)).toBe('123');
    expect(formatValue(12.34)).toBe('12.3');
    expect(formatValue(1.234)).toBe('1.23');
    expect(formatValue(0.1234)).toBe('0.123');
    expect(formatValue(0)).toBe('0');
    expect(formatValue(3)).toBe('3');
    expect(formatValue(null)).toBe('n/a');
    expect(formatValue(Number.NaN)).toBe('n/a');
  });

  it('formats ratios and refuses to divide by a missing or zero reference', () => {
    expect(formatRatio(300, 100)).toBe('3.00x');
    expect(formatRatio(50, 100)).toBe('0.50x');
    expect(formatRatio(1500, 100)).toBe('15.0x');
    expect(formatRatio(1, 0)).toBe('n/a');
    expect(formatRatio(null, 5)).toBe('n/a');
    expect(formatRatio(5, null)).toBe('n/a');
    expect(formatRatio(Number.NaN, 5)).toBe('n/a');
  });

  it('aligns columns: first left, others right', () => {
    const out = formatTable(['metric', 'a', 'b'], [['x', '1', '100'], ['longer', '22', '3']]);
    expect(out.split('\n')).toEqual([
      'metric   a    b',
      '------  --  ---',
      'x        1  100',
      'longer  22    3',
    ]);
  });

  it('rejects rows whose width differs from the header', () => {
    expect(() => formatTable(['a', 'b'], [['1']])).toThrow(RangeError);
  });

  it('builds the comparison with a ratio column', () => {
    const out = formatComparison('Ballot', 'etcd', [
      { metric: 'commits/s', unit: '/s', subject: 2000, reference: 1000 },
      { metric: 'p50', unit: 'ms', subject: 1.5, reference: null },
    ]);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^metric\s+Ballot\s+etcd\s+ratio Ballot\/etcd$/);
    expect(lines[2]).toMatch(/^commits\/s \(\/s\)\s+2,000\s+1,000\s+2\.00x$/);
    expect(lines[3]).toMatch(/^p50 \(ms\)\s+1\.50\s+n\/a\s+n\/a$/);
  });
});

describe('figures from raw measurements', () => {
  const result = (ackedPerSec: number, p50Ms: number, p99Ms: number): ClosedLoopResult => ({
    concurrency: 16,
    measuredMs: 1000,
    acked: ackedPerSec,
    ackedPerSec,
    errors: 1,
    errorsByCode: { NO_LEADER: 1 },
    latency: { count: ackedPerSec, minMs: 0, p50Ms, p90Ms: p99Ms, p99Ms, maxMs: p99Ms, meanMs: p50Ms },
    clientCpuMs: ackedPerSec / 1000,
    undrained: 0,
  });
  const phase = (round: number, r: ClosedLoopResult): PhaseRecord => ({
    system: 'ballot',
    round,
    concurrency: 16,
    result: r,
    serverCpuMs: { n1: r.acked / 100, n2: 0 },
    loadAverage1m: 1,
  });

  it('takes medians across rounds', () => {
    const phases = [phase(1, result(1000, 2, 9)), phase(2, result(3000, 1, 5)), phase(3, result(2000, 3, 7))];
    const f = throughputFigures(phases, 'ballot', 16);
    expect(f).toEqual({
      rounds: 3,
      commitsPerSec: 2000,
      p50Ms: 2,
      p99Ms: 7,
      serverCpuUsPerCommit: 10,
      clientCpuUsPerCommit: 1,
      errors: 3,
    });
    expect(throughputFigures(phases, 'etcd', 16)).toBeNull();
    expect(throughputFigures(phases, 'ballot', 1)).toBeNull();
  });

  it('computes failover percentiles over successful kills only', () => {
    const f = failoverFigures([
      { ok: true, killed: 'n1', ms: 1200 },
      { ok: false, killed: 'n2', reason: 'timeout' },
      { ok: true, killed: 'n3', ms: 1800 },
      { ok: true, killed: 'n1', ms: 1500 },
    ]);
    expect(f).toEqual({ attempted: 4, succeeded: 3, p50Ms: 1500, p99Ms: 1800, maxMs: 1800 });
    expect(failoverFigures([])).toBeNull();
  });

  it('lays out rows per concurrency, then failover; missing systems become null', () => {
    const rows = comparisonRows(
      [1, 256],
      (system, c) => (system === 'ballot' && c === 1 ? throughputFigures([phase(1, result(10, 1, 2))], 'ballot', 16) : null),
      () => null,
    );
    expect(rows).toHaveLength(5 * 2 + 3);
    expect(rows[0]).toMatchObject({ metric: 'commits/s, 1 proposer', subject: 10, reference: null });
    expect(rows[5]).toMatchObject({ metric: 'commits/s, 256 proposers', subject: null, reference: null });
    expect(rows[rows.length - 1]).toMatchObject({ metric: 'failovers measured', subject: null });
  });
});
