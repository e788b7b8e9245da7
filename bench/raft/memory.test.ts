// Unit tests for the pure parts of bench:raft:memory: VmRSS parsing, max/final summaries of the
// per-second samples, cutting a run at an entry count, the ETA, and the comparison rows.
// No processes, no timing assertions.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  etaMs,
  formatDuration,
  memoryRows,
  parseVmRssBytes,
  samplesUpTo,
  summarizeMembers,
  worstMember,
  type Sample,
} from './memory-stats.js';

const sample = (elapsedMs: number, done: number, members: Sample['members']): Sample => ({ elapsedMs, done, members });

describe('parseVmRssBytes', () => {
  it('reads the VmRSS line in kB', () => {
    const text = 'Name:\tnode\nVmPeak:\t  900000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1000 kB\n';
    expect(parseVmRssBytes(text)).toBe(12345 * 1024);
  });

  it('is null without a VmRSS line (a zombie has none)', () => {
    expect(parseVmRssBytes('Name:\tnode\nState:\tZ (zombie)\n')).toBeNull();
  });
});

describe('summarizeMembers', () => {
  it('takes the max over all samples and the last measurable value as final', () => {
    const samples = [
      sample(0, 0, { n1: { rssBytes: 10, diskBytes: 1 }, n2: { rssBytes: 20, diskBytes: 2 } }),
      sample(1000, 10, { n1: { rssBytes: 50, diskBytes: 9 }, n2: { rssBytes: 15, diskBytes: 3 } }),
      sample(2000, 20, { n1: { rssBytes: 30, diskBytes: null }, n2: { rssBytes: null, diskBytes: 1 } }),
    ];
    expect(summarizeMembers(samples)).toEqual({
      n1: { maxRssBytes: 50, finalRssBytes: 30, maxDiskBytes: 9, finalDiskBytes: 9 },
      n2: { maxRssBytes: 20, finalRssBytes: 15, maxDiskBytes: 3, finalDiskBytes: 1 },
    });
  });

  it('reports null for a member never measured', () => {
    const s = summarizeMembers([sample(0, 0, { n1: { rssBytes: null, diskBytes: null } })]);
    expect(s.n1).toEqual({ maxRssBytes: null, finalRssBytes: null, maxDiskBytes: null, finalDiskBytes: null });
  });

  it('max >= final >= min of the measurable values (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.nat(), { nil: null }), { minLength: 1, maxLength: 50 }), (rss) => {
        const samples = rss.map((r, i) => sample(i * 1000, i, { n1: { rssBytes: r, diskBytes: 0 } }));
        const m = summarizeMembers(samples).n1;
        const measured = rss.filter((r): r is number => r !== null);
        if (measured.length === 0) {
          expect(m?.maxRssBytes).toBeNull();
          return;
        }
        expect(m?.maxRssBytes).toBe(Math.max(...measured));
        expect(m?.finalRssBytes).toBe(measured[measured.length - 1]);
      }),
      { seed: 20261121 },
    );
  });

  it('worstMember picks the largest across members', () => {
    const s = summarizeMembers([
      sample(0, 0, { n1: { rssBytes: 5, diskBytes: 7 }, n2: { rssBytes: 9, diskBytes: 1 } }),
    ]);
    expect(worstMember(s, (m) => m.maxRssBytes)).toBe(9);
    expect(worstMember(s, (m) => m.maxDiskBytes)).toBe(7);
  });
});

describe('samplesUpTo', () => {
  const samples = [0, 40, 90, 130, 200].map((done, i) => sample(i * 1000, done, {}));

  it('keeps the samples up to and including the first that reached the count', () => {
    expect(samplesUpTo(samples, 100).map((s) => s.done)).toEqual([0, 40, 90, 130]);
    expect(samplesUpTo(samples, 90).map((s) => s.done)).toEqual([0, 40, 90]);
  });

  it('keeps everything when the count was never reached', () => {
    expect(samplesUpTo(samples, 1000)).toHaveLength(5);
  });
});

describe('etaMs and formatDuration', () => {
  it('extrapolates the average rate so far', () => {
    expect(etaMs(250, 1000, 10_000)).toBe(30_000);
    expect(etaMs(1000, 1000, 10_000)).toBe(0);
    expect(etaMs(0, 1000, 10_000)).toBeNull();
  });

  it('formats minutes and seconds', () => {
    expect(formatDuration(65_000)).toBe('1m 05s');
    expect(formatDuration(42_400)).toBe('42s');
    expect(formatDuration(null)).toBe('?');
  });
});

describe('memoryRows', () => {
  const MIB = 2 ** 20;
  const run = (rss: number, disk: number, rate: number) => ({
    entries: 100,
    entriesPerSec: rate,
    members: {
      a: { maxRssBytes: rss * MIB, finalRssBytes: rss * MIB, maxDiskBytes: disk * MIB, finalDiskBytes: disk * MIB },
    },
  });

  it('pairs members by position and converts to MiB', () => {
    const rows = memoryRows(run(100, 10, 5000), run(50, 40, 4000));
    const byMetric = new Map(rows.map((r) => [r.metric, r]));
    expect(byMetric.get('max RSS, worst node')).toMatchObject({ subject: 100, reference: 50 });
    expect(byMetric.get('final data dir, worst node')).toMatchObject({ subject: 10, reference: 40 });
    expect(byMetric.get('  a/a max RSS')).toMatchObject({ subject: 100, reference: 50 });
    expect(byMetric.get('throughput over the run')).toMatchObject({ subject: 5000, reference: 4000 });
  });

  it('leaves the missing side null', () => {
    const rows = memoryRows(run(1, 1, 1), null);
    expect(rows.every((r) => r.reference === null)).toBe(true);
    expect(rows.every((r) => r.subject !== null)).toBe(true);
  });
});
