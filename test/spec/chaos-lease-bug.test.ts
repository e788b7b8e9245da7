// The chaos runner catches lease reads under clock drift: with `--read-mode lease` a leader answers a
// linearizable read alone while its lease holds (thesis §6.4.1: a majority answered it within
// electionTicks - leaseDriftTicks of its own ticks). That is safe only while clocks run at about the same
// rate. With the nemeses partition and clock together, the schedule has isolate-leader windows that also
// slow the isolated leader's clock (x0.1 here): the run is INVALID (exit 1). The correct server
// (ReadIndex, the default) passes the very same seeds (exit 0).
//
// Why the stale read is essentially certain with these settings (and not a matter of luck):
// - The seeds are chosen so that their one fault window (a 6 s run has room for exactly one) is
//   "isolate the leader, its clock x0.1", about 2 s long. The test asserts this from scheduleFaults, so a
//   change of the schedule fails loudly here instead of making the test quietly weaker.
// - The nemesis slows the leader's clock before cutting it off. Its ticks then come every
//   50 ms / 0.1 = 500 ms, so its lease of 10 - 2 = 8 ticks lasts about 4 s of real time, and its
//   quorum guard (one election timeout, 500 ms, on its own clock) about 5 s: both outlast the window.
// - The two others stop hearing heartbeats; their own clocks run at the real rate, so within one to two
//   election timeouts (0.5-1 s) one of them is elected and the majority acknowledges writes again.
//   From then to the heal (about 1 s) the old leader answers lease reads from a store that misses
//   those writes. (Measured: the majority's first acknowledged write 0.7-1.0 s into the window; 6 to 17
//   certainly stale reads per run, where one is enough.)
// - Workers are pinned to members (worker w to node w % 3): with --concurrency 12, four workers talk
//   only to the old leader; half of their operations are reads, answered at once from the lease, and
//   its writes end after --request-timeout-ms 300, so each worker gets several reads into that second.
//   With --keys 2 and 120 operations/s, each key gets a new acknowledged value every ~50 ms: plenty for a
//   stale window of a few hundred ms, and a lower rate loads a busy CI machine less (quicker elections).
//   Written values are unique per key, so no linearization can place such a read after the write that
//   replaced its value: the checker must find it. The spec also counts those reads directly.
// - The correct server answers no read at the cut-off leader (ReadIndex needs a quorum round), so the
//   same seeds, with the same schedule and the same operation mix, are linearizable.
//
// Under load (CI: two suites side by side on 2 cores) the experiment itself may not happen; seen on a
// loaded machine, each making a lease run valid: (1) the leader stepped down (CheckQuorum) just before the
// window, so the node cut off was a follower and answered nothing ("no leader is known"); (2) resolving the
// leader and slowing its clock took ~1 s, so the window held 1.2 s instead of 2; (3) the majority elected
// its leader only after the heal. In none of them did the cut-off member answer a read after the majority
// acknowledged a newer value, so there was nothing stale to catch. Hence each test tries a seed and, only
// when its history shows no certainly stale read, a spare seed of the same schedule; the verdict is never
// excused: any attempt WITH a stale read must be invalid, and a test where no attempt produced one fails.
// The ReadIndex run then replays the seed that caught the bug.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { scheduleFaults } from '../src/chaos/schedule.js';
import type { AppliedWindow, ChaosResults, RecordedEvent } from '../src/chaos/types.js';
import { alive, historyOf, memberPids, runCli } from './chaos-cli-helpers.js';
import { useCliProcesses } from './proxy-helpers.js';

const { bin: BIN } = useCliProcesses();

/** Two tests, each a seed and spares tried in turn (see "Under load" in the header). */
const CANDIDATES = [[11, 148, 157], [52, 180, 181]] as const;
const SEEDS = CANDIDATES.flat();
const DURATION_S = 6;
const FLAGS = [
  '--nodes', '3', '--workload', 'register', '--nemesis', 'partition,clock', '--duration', String(DURATION_S),
  '--rate', '120', '--concurrency', '12', '--keys', '2', '--request-timeout-ms', '300',
  '--heartbeat-interval', '50', '--election-timeout', '500',
  // An invalid history is the checker's slowest case; on a loaded machine 6 s of it took ~30 s to judge.
  '--check-budget-ms', '90000',
];

const root = mkdtempSync(join(tmpdir(), 'ballot-chaos-lease-bug-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Op {
  readonly invoke: RecordedEvent;
  readonly complete: RecordedEvent;
}

/** Completed operations of a history (an invoke paired with its process's next event). */
function opsOf(events: readonly RecordedEvent[]): Op[] {
  const open = new Map<number, RecordedEvent>();
  const ops: Op[] = [];
  for (const e of events) {
    if (e.type === 'invoke') open.set(e.process, e);
    else {
      const invoke = open.get(e.process);
      open.delete(e.process);
      if (invoke !== undefined) ops.push({ invoke, complete: e });
    }
  }
  return ops;
}

/**
 * Reads the cut-off member answered ok inside the window (invoked after it opened, done 100 ms before
 * it closed): all of them, and the certainly stale ones - begun after a write of the same key, sent to
 * another member after the window opened, had been acknowledged (the cut-off member cannot hold that
 * value before the heal), yet returning another value.
 */
function readsAtIsolated(outDir: string, w: AppliedWindow): { readonly ok: number; readonly stale: number } {
  const isolated = w.nodes[0];
  const fromNs = w.startMs * 1e6;
  const toNs = ((w.endMs ?? w.startMs) - 100) * 1e6;
  const ops = opsOf(historyOf(outDir));
  const majorityWrites = ops.filter(({ invoke, complete }) =>
    complete.type === 'ok' && invoke.node !== isolated && invoke.time > fromNs && (invoke.f === 'write' || (invoke.f === 'cas' && complete.value !== false)));
  const reads = ops.filter(({ invoke, complete }) =>
    invoke.f === 'read' && complete.type === 'ok' && invoke.node === isolated && invoke.time > fromNs && complete.time < toNs);
  const written = (op: Op): unknown => (op.invoke.f === 'cas' && Array.isArray(op.invoke.value) ? op.invoke.value[1] : op.invoke.value);
  const stale = reads.filter((r) =>
    majorityWrites.some((m) => m.invoke.key === r.invoke.key && m.complete.time < r.invoke.time && written(m) !== r.complete.value));
  return { ok: reads.length, stale: stale.length };
}

function appliedWindows(outDir: string): AppliedWindow[] {
  return readFileSync(join(outDir, 'nemesis.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as AppliedWindow);
}

describe('the chaos runner catches lease reads under clock drift (--read-mode lease)', () => {
  it('the chosen seeds isolate the leader with its clock slowed x0.1 for about 2 s (partition + clock)', () => {
    for (const seed of SEEDS) {
      const s = scheduleFaults({ seed, durationMs: DURATION_S * 1000, nodeCount: 3, nemeses: ['partition', 'clock'] });
      expect(s.windows.map((w) => w.fault), `seed ${seed}`).toEqual([{ kind: 'partition-isolate-leader', leaderClockRate: 0.1 }]);
      const w = s.windows[0];
      expect((w?.endMs ?? 0) - (w?.startMs ?? 0)).toBeGreaterThanOrEqual(2000);
    }
  });

  for (const [first, ...spares] of CANDIDATES) {
    it(`seed ${first} (spares ${spares.join(', ')}): lease reads make the run invalid (exit 1, stale reads at the cut-off leader); ReadIndex is valid on the same seed (exit 0)`, async () => {
      // Each attempt: whenever the cut-off leader answered a certainly stale read, the run MUST be invalid.
      // An attempt without one proves nothing either way (the experiment did not happen: see the header),
      // so the next seed is tried; no attempt with a stale read ever passes as valid.
      const tried: string[] = [];
      let caught: number | null = null;
      for (const seed of [first, ...spares]) {
        const leaseOut = join(root, `lease-${seed}`);
        const lease = await runCli(BIN, ['chaos', ...FLAGS, '--seed', String(seed), '--read-mode', 'lease', '--out', leaseOut], 150_000);
        expect(memberPids(leaseOut, lease.stderr).filter(alive)).toEqual([]);
        expect(lease.code === 0 || lease.code === 1, lease.stderr.slice(-4000)).toBe(true);
        const [badWindow] = appliedWindows(leaseOut);
        expect(badWindow?.description).toMatch(/^isolate n\d \(the leader\), its clock x0\.1$/);
        expect(badWindow?.error).toBeUndefined();
        const leaseReads = readsAtIsolated(leaseOut, badWindow as AppliedWindow);
        tried.push(`seed ${seed}: exit ${lease.code}, ${leaseReads.stale} certainly stale of ${leaseReads.ok} ok reads at ${badWindow?.nodes[0]} in ${badWindow?.startMs}-${badWindow?.endMs} ms`);
        if (leaseReads.stale === 0) continue;
        expect(lease.code, `${tried.join('; ')}\n${lease.stderr.slice(-4000)}`).toBe(1);
        const bad = JSON.parse(readFileSync(join(leaseOut, 'results.json'), 'utf8')) as ChaosResults;
        expect(lease.last).toEqual(bad);
        expect(bad.valid).toBe(false);
        expect(bad.error).toBeUndefined();
        expect(bad.readMode).toBe('lease');
        expect(bad.unsafe).toEqual(['lease-reads-under-clock-skew']);
        expect(bad.verdict.checks.find((c) => c.name === 'linearizability')?.valid).toBe(false);
        expect(bad.verdict.anomalyCount).toBeGreaterThan(0);
        expect(bad.verdict.anomalies.join('\n')).toMatch(/r[01]/);
        expect(existsSync(join(leaseOut, 'timeline.html'))).toBe(true);
        expect(lease.stderr).toContain('INVALID');
        caught = seed;
        break;
      }
      console.info(`chaos-lease-bug: ${tried.join('; ')}`);
      expect(caught, `no attempt had the cut-off leader answer a certainly stale read: ${tried.join('; ')}`).not.toBeNull();

      const safeOut = join(root, `read-index-${caught}`);
      const safe = await runCli(BIN, ['chaos', ...FLAGS, '--seed', String(caught), '--out', safeOut], 150_000);
      expect(memberPids(safeOut, safe.stderr).filter(alive)).toEqual([]);
      expect(safe.code, safe.stderr.slice(-4000)).toBe(0);
      const good = JSON.parse(readFileSync(join(safeOut, 'results.json'), 'utf8')) as ChaosResults;
      expect(good.valid).toBe(true);
      expect(good.readMode).toBe('linearizable');
      expect(good.unsafe).toEqual([]);
      // The same seed replayed the same fault; the cut-off leader answered no read while it was cut off.
      const [goodWindow] = appliedWindows(safeOut);
      expect(goodWindow?.description).toMatch(/^isolate n\d \(the leader\), its clock x0\.1$/);
      expect(readsAtIsolated(safeOut, goodWindow as AppliedWindow)).toEqual({ ok: 0, stale: 0 });
    }, 600_000);
  }
});
