// The chaos runner can fail: with the deliberate bug --unsafe-stale-reads (a member answers a
// linearizable read from its own store, with no ReadIndex and no quorum check), a partition makes the
// register workload read stale values and the run is INVALID (exit 1); the correct server passes the
// very same seeds (exit 0).
//
// Why the stale read is essentially certain with these settings (and not a matter of luck):
// - The seeds are chosen so that their one fault window (an 8 s run has room for exactly one) is
//   "partition-halves": one of the three members is cut off from the other two for 2 s, from 1.2 s to
//   3.2 s. The test asserts this from scheduleFaults, so a change of the schedule fails loudly here
//   instead of making the test quietly weaker.
// - Workers are pinned to members (worker w to node w % 3): with --concurrency 6, two workers talk
//   only to the cut-off member, and half of their operations are reads. Its writes fail or time out
//   quickly (--request-timeout-ms 500), so each of them gets through several reads a second.
// - The majority elects a leader (if it lost it) within about one election timeout (500 ms) and goes
//   on acknowledging writes; with only --keys 2 and 150 operations/s, each key gets a new acknowledged
//   value (25% writes + 25% cas) every few tens of milliseconds.
// - So for more than a second, the cut-off member answers reads with values that the majority
//   replaced by acknowledged writes that had completed before those reads began. Written values are
//   unique per key, so no linearization can put such a read after the write that replaced its value:
//   the checker must find it (dozens of such reads per run, where one is enough).
// - (Followers of the majority answer reads locally too, so their ordinary apply lag behind the leader
//   can be caught as well: in one run the first failure point was a read on a majority follower 0.3 ms
//   after the leader acknowledged the newer write. The partition is what makes it certain.)
// - The correct server refuses those reads (no quorum for ReadIndex: the read fails), so the same
//   seeds, with the same schedule and the same operation mix, are linearizable.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { scheduleFaults } from '../src/chaos/schedule.js';
import type { ChaosResults } from '../src/chaos/types.js';
import { alive, memberPids, runCli } from './chaos-cli-helpers.js';
import { useCliProcesses } from './proxy-helpers.js';

const { bin: BIN } = useCliProcesses();

const SEEDS = [1, 3] as const;
const DURATION_S = 8;
const FLAGS = [
  '--nodes', '3', '--workload', 'register', '--nemesis', 'partition', '--duration', String(DURATION_S),
  '--rate', '150', '--concurrency', '6', '--keys', '2', '--request-timeout-ms', '500',
  '--heartbeat-interval', '50', '--election-timeout', '500',
];

const root = mkdtempSync(join(tmpdir(), 'ballot-chaos-bug-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the chaos runner catches --unsafe-stale-reads under partitions', () => {
  it('the chosen seeds cut one member off for 2 s (partition-halves)', () => {
    for (const seed of SEEDS) {
      const s = scheduleFaults({ seed, durationMs: DURATION_S * 1000, nodeCount: 3, nemeses: ['partition'] });
      expect(s.windows.map((w) => w.fault.kind), `seed ${seed}`).toEqual(['partition-halves']);
      const w = s.windows[0];
      expect((w?.endMs ?? 0) - (w?.startMs ?? 0)).toBeGreaterThanOrEqual(2000);
    }
  });

  for (const seed of SEEDS) {
    it(`seed ${seed}: with the bug the run is invalid (exit 1) and names the stale read; without it, valid (exit 0)`, async () => {
      const buggyOut = join(root, `unsafe-${seed}`);
      const buggy = await runCli(BIN, ['chaos', ...FLAGS, '--seed', String(seed), '--unsafe-stale-reads', '--out', buggyOut]);
      expect(buggy.code, buggy.stderr.slice(-4000)).toBe(1);
      const bad = JSON.parse(readFileSync(join(buggyOut, 'results.json'), 'utf8')) as ChaosResults;
      expect(buggy.last).toEqual(bad);
      expect(bad.valid).toBe(false);
      expect(bad.error).toBeUndefined();
      expect(bad.unsafe).toEqual(['unsafe-stale-reads']);
      expect(bad.verdict.checks.find((c) => c.name === 'linearizability')?.valid).toBe(false);
      expect(bad.verdict.anomalyCount).toBeGreaterThan(0);
      expect(bad.verdict.anomalies.join('\n')).toMatch(/r[01]/);
      expect(existsSync(join(buggyOut, 'timeline.html'))).toBe(true);
      // check.json holds the failing key's sub-history and the point where no linearization exists.
      const check = JSON.parse(readFileSync(join(buggyOut, 'check.json'), 'utf8')) as { valid: unknown; key: string; subHistory: unknown[]; point: { stuck: unknown[] } };
      expect(check.valid).toBe(false);
      expect(bad.verdict.summary).toContain(`key "${check.key}"`);
      expect(check.subHistory.length).toBeGreaterThan(0);
      expect(check.point.stuck.length).toBeGreaterThan(0);
      expect(buggy.stderr).toContain('INVALID');
      expect(memberPids(buggyOut, buggy.stderr).filter(alive)).toEqual([]);

      const safeOut = join(root, `safe-${seed}`);
      const safe = await runCli(BIN, ['chaos', ...FLAGS, '--seed', String(seed), '--out', safeOut]);
      expect(safe.code, safe.stderr.slice(-4000)).toBe(0);
      const good = JSON.parse(readFileSync(join(safeOut, 'results.json'), 'utf8')) as ChaosResults;
      expect(good.valid).toBe(true);
      expect(good.unsafe).toEqual([]);
      // The same seed replayed the same fault: same kind of window over the same stretch.
      const windows = (r: ChaosResults): string[] => r.windows.filter((w) => w.kind !== 'quiet').map((w) => w.kind);
      expect(windows(good)).toEqual(windows(bad));
      expect(memberPids(safeOut, safe.stderr).filter(alive)).toEqual([]);
    }, 180_000);
  }
});
