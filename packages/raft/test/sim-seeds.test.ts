// The seed runner: a few hundred random fault schedules per CI run, deterministic trace hashes.
//
// Budget (measured on the 2-core CI machine): one seed of 5 nodes x 3 simulated seconds of faults
// took ~25 ms of real time before issue 3; with log compaction, snapshot streams, membership
// changes (up to 8 nodes) and transfers it takes ~45 ms, so 200 seeds take ~9 s (~30-60 s when
// the machine is very busy). They run as four tests of 50 seeds, each well inside the 60 s test
// timeout even then. The full `ballot sim --seeds N` is run by hand.

import { describe, expect, it } from 'vitest';
import { generateFaultSchedule, PARTITION_MODES, scheduleProfile, type FaultAction } from '../src/sim/faults.js';
import { runSeeds, runSimulation, type SimResult } from '../src/sim/run.js';

const CI_SEEDS = 200;
/** CI_SEEDS run in batches of this many, one test each. */
const BATCH_SEEDS = 50;

function failures(results: readonly SimResult[]): string {
  return results
    .filter((r) => !r.ok)
    .map((r) => r.report ?? `seed ${r.seed} failed`)
    .join('\n\n');
}

describe('runSimulation / runSeeds', () => {
  it.each(Array.from({ length: CI_SEEDS / BATCH_SEEDS }, (_, k) => [k * BATCH_SEEDS + 1, (k + 1) * BATCH_SEEDS]))(
    `seeds %i..%i of ${CI_SEEDS} x 5 nodes x 3 s of faults: no invariant violated, liveness after heal`,
    (firstSeed) => {
      const failed: SimResult[] = [];
      const summary = runSeeds({
        seeds: BATCH_SEEDS,
        firstSeed,
        nodes: 5,
        durationMs: 3000,
        onResult: (r) => {
          if (!r.ok) failed.push(r);
        },
      });
      // On failure, the message is each failing seed's report: invariant, timeline, replay command.
      expect(failures(failed), `failing seeds: ${summary.failedSeeds.join(', ')}`).toBe('');
      expect(summary.violations).toBe(0);
      expect(summary.seeds).toBe(BATCH_SEEDS);
      // The runs did real work: every seed elects at least once and commits client proposals.
      expect(summary.elections).toBeGreaterThanOrEqual(BATCH_SEEDS);
      expect(summary.commits).toBeGreaterThan(BATCH_SEEDS * 10);
      expect(summary.traceHash).toMatch(/^[0-9a-f]{64}$/);
    },
  );

  // Regression seeds: with PreVote off and a ~2x fast clock, a stale node's rejected campaigns
  // kept resetting the others' election timers, so no leader was elected after healing (core
  // fixed in ad62a48: adopting a term from a refused RequestVote keeps the timer, Figure 2).
  it('regression seeds 1039 (3 nodes) and 952 (5 nodes) are live', () => {
    const a = runSimulation({ seed: 1039, nodes: 3, durationMs: 2000 });
    const b = runSimulation({ seed: 952, nodes: 5, durationMs: 3000 });
    expect(failures([a, b])).toBe('');
  });

  it.each([3, 7])('%i-node clusters survive their schedules too', (nodes) => {
    const failed: SimResult[] = [];
    const summary = runSeeds({ seeds: 40, firstSeed: 1001, nodes, durationMs: 2000, onResult: (r) => (r.ok ? undefined : failed.push(r)) });
    expect(failures(failed)).toBe('');
    expect(summary.violations).toBe(0);
  });

  it('the same arguments give the same traceHash; different seeds give different ones', () => {
    const a = runSeeds({ seeds: 10, nodes: 5, durationMs: 1500 });
    const b = runSeeds({ seeds: 10, nodes: 5, durationMs: 1500 });
    const c = runSeeds({ seeds: 10, firstSeed: 11, nodes: 5, durationMs: 1500 });
    expect(b.traceHash).toBe(a.traceHash);
    expect(b).toEqual(a);
    expect(c.traceHash).not.toBe(a.traceHash);
    const one = runSimulation({ seed: 42, durationMs: 1500 });
    const again = runSimulation({ seed: 42, durationMs: 1500 });
    const other = runSimulation({ seed: 43, durationMs: 1500 });
    expect(again.traceHash).toBe(one.traceHash);
    expect(again.traceLines).toBe(one.traceLines);
    expect(other.traceHash).not.toBe(one.traceHash);
  });

  it('generated schedules cover every fault kind across seeds', () => {
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 50; seed++) {
      for (const ev of generateFaultSchedule(seed, { nodes: 5, durationMs: 3000 })) {
        const a: FaultAction = ev.action;
        kinds.add(a.kind === 'partition' ? `partition:${a.mode}` : a.kind === 'unreliable' && a.perLink ? 'unreliable:per-link' : a.kind);
      }
    }
    for (const mode of PARTITION_MODES) expect(kinds).toContain(`partition:${mode}`);
    for (const k of ['heal', 'crash', 'bounce', 'restart', 'unreliable', 'unreliable:per-link', 'reliable', 'clock']) expect(kinds).toContain(k);
    expect(generateFaultSchedule(7, { nodes: 5, durationMs: 3000 })).toEqual(generateFaultSchedule(7, { nodes: 5, durationMs: 3000 }));
    const profiles = new Set(Array.from({ length: 50 }, (_, i) => scheduleProfile(i + 1)));
    expect([...profiles].sort()).toEqual(['crash-storm', 'mixed', 'network']);
  });

  it('keepTrace returns the timeline, and it ends with the liveness and durability checks', () => {
    const r = runSimulation({ seed: 5, durationMs: 1000, keepTrace: true });
    expect(r.ok).toBe(true);
    const t = r.trace ?? [];
    expect(t.length).toBe(r.traceLines);
    expect(t.some((l) => l.includes('FAULT PHASE OVER'))).toBe(true);
    expect(t.some((l) => / LIVE: leader n\d committed a new proposal/.test(l))).toBe(true);
    expect(t[t.length - 1]).toMatch(/DONE: \d+ acknowledged proposals, \d+ elections, all applied everywhere/);
  });

  it('a failing seed gives a readable report: invariant, seed, timeline, schedule, replay command', () => {
    // A disk that forgets on crash (unsafe test mode) must be caught; find the report for one crash.
    const r = runSimulation({
      seed: 9,
      nodes: 3,
      durationMs: 1000,
      schedule: [{ atMs: 500, action: { kind: 'crash', target: 'leader' } }],
      variants: false,
      cluster: { unsafeAmnesiaOnCrash: true },
    });
    expect(r.ok).toBe(false);
    expect(r.violation).not.toBeNull();
    const report = r.report ?? '';
    expect(report).toMatch(/^INVARIANT VIOLATED: [a-z-]+/);
    expect(report).toContain('seed: 9');
    expect(report).toMatch(/--- timeline: last \d+ trace lines ---/);
    expect(report).toMatch(/t=\d+\.\dms n\d→n\d /);
    expect(report).toContain('t=500ms crash leader');
    expect(report).toContain('npx ballot sim --seed 9 --nodes 3 --duration-ms 1000 --trace');
  });
});

describe('issue 3 in the seed runner: snapshots, membership changes, transfers', () => {
  it('random runs exercise compaction, snapshot installs, adds, removals (of the leader too) and transfers', () => {
    const counts = { snapshots: 0, installs: 0, added: 0, removed: 0, leaderRemoved: 0, transfers: 0, failedStreams: 0 };
    const failed: SimResult[] = [];
    for (let seed = 1; seed <= 25; seed++) {
      const r = runSimulation({ seed, nodes: 5, durationMs: 3000, keepTrace: true });
      if (!r.ok) failed.push(r);
      for (const l of r.trace ?? []) {
        if (/ snapshot \(\d+,\d+\) \d+B; log now/.test(l)) counts.snapshots++;
        if (/ install snapshot \(\d+,\d+\)/.test(l)) counts.installs++;
        if (/OPERATOR done: add /.test(l)) counts.added++;
        if (/OPERATOR done: remove /.test(l)) counts.removed++;
        if (/FAULT remove the leader/.test(l)) counts.leaderRemoved++;
        if (/ TimeoutNow term=/.test(l) && !/ (CUT|LOST|DOWN) /.test(l)) counts.transfers++;
        if (/SNAPSHOT STREAM #\d+ to n\d+ failed/.test(l)) counts.failedStreams++;
      }
    }
    expect(failures(failed)).toBe('');
    // Seeds 1..25 measured: ~840 snapshots, ~100 installs, ~45 adds, ~40 removals (~17 of a
    // leader asked), ~100 TimeoutNow delivered, ~13 failed streams. Bounds well below that.
    expect(counts.snapshots).toBeGreaterThan(300);
    expect(counts.installs).toBeGreaterThan(30);
    expect(counts.added).toBeGreaterThan(15);
    expect(counts.removed).toBeGreaterThan(15);
    expect(counts.leaderRemoved).toBeGreaterThan(4);
    expect(counts.transfers).toBeGreaterThan(30);
    expect(counts.failedStreams).toBeGreaterThan(0);
  });

  it('an explicit schedule of membership actions: remove the leader, add nodes, replace a crashed one, transfer', () => {
    const r = runSimulation({
      seed: 77,
      nodes: 5,
      durationMs: 3000,
      keepTrace: true,
      schedule: [
        { atMs: 300, action: { kind: 'remove-node', target: 'leader', decommission: true } },
        { atMs: 800, action: { kind: 'add-node' } },
        { atMs: 1200, action: { kind: 'crash', target: 1 } },
        { atMs: 1300, action: { kind: 'replace-node', target: 0 } },
        { atMs: 2200, action: { kind: 'transfer' } },
      ],
    });
    expect(r.report ?? '').toBe('');
    const t = r.trace ?? [];
    expect(t.filter((l) => l.includes('OPERATOR done: remove ')).length).toBe(2);
    expect(t.filter((l) => l.includes('OPERATOR done: add ')).length).toBe(2);
    expect(t.some((l) => l.includes('DECOMMISSION '))).toBe(true);
    expect(t.some((l) => / transfer leadership to n\d/.test(l))).toBe(true);
  });

  // Regression seeds: a removed server that was cut off when its removal committed wins one more
  // election with votes of the new voters (thesis §4.1 lets it campaign), then steps down once it
  // commits. Safe; the checker flags only a winner whose own commit index covers its removal.
  it('regression seeds 414 and 943 (5 nodes): an uninformed removed server may win once, safely', () => {
    const a = runSimulation({ seed: 414, nodes: 5, durationMs: 3000 });
    const b = runSimulation({ seed: 943, nodes: 5, durationMs: 3000 });
    expect(failures([a, b])).toBe('');
  });

  // Regression seed: a snapshot stream completed after its leader had moved to a new term, so
  // the receiver's core refused that stale InstallSnapshot; later streams of the same snapshot
  // found the data already complete and were acknowledged without stepping their own (current)
  // message, so two followers never caught up (fixed: every stream's message is stepped once).
  it('regression seed 1468 (5 nodes): a snapshot completed under an old term is installed by the next stream', () => {
    expect(failures([runSimulation({ seed: 1468, nodes: 5, durationMs: 3000 })])).toBe('');
  });

  it('with membership off and the default variant, a run has no snapshot or configuration events', () => {
    const r = runSimulation({ seed: 5, durationMs: 1500, keepTrace: true, membership: false, variants: false });
    expect(r.ok).toBe(true);
    expect((r.trace ?? []).some((l) => /SNAPSHOT|OPERATOR| config voters/.test(l))).toBe(false);
    const again = runSimulation({ seed: 5, durationMs: 1500, membership: false, variants: false });
    expect(again.traceHash).toBe(r.traceHash);
  });
});
