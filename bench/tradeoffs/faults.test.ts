// bench tradeoffs — faults: the stale-read counter on synthetic register histories (properties
// with a fixed fast-check seed: none in histories linearizable by construction, exactly the
// overwritten ones in sequential histories; unit cases for cas chains, concurrency and unknown
// values), the per-window, per-side availability, and the section's table.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { pairOperations, parseHistory, scheduleFaults, type ChaosResults } from '@ballot/chaos';
import { afterEach, describe, expect, it } from 'vitest';
import { Progress } from '../raft/progress.js';
import { Supervisor } from '../raft/supervisor.js';
import type { TradeoffSettings } from './types.js';
import { ballotBin, tinySettings as tinyRun } from './test-helpers.js';
import {
  availabilityOf,
  chaosOptionsFor,
  countStaleReads,
  estimateFaultsMs,
  faultsMarkdown,
  faultsSeedFor,
  minorityOf,
  modeResult,
  parseApplied,
  runFaultsSection,
  sidedOps,
  windowAvailability,
  type SidedOp,
} from './faults.js';

const SEED = 20261121;

type Ev = { process: number; type: 'invoke' | 'ok' | 'fail' | 'info'; f: 'read' | 'write' | 'cas'; key: string; value: unknown; time: number; node?: string };

/** A history builder: events in real-time order, time in ns = position * 1 ms. */
class H {
  readonly events: Ev[] = [];
  private add(e: Omit<Ev, 'time'>): this {
    this.events.push({ ...e, time: (this.events.length + 1) * 1e6 });
    return this;
  }
  inv(process: number, f: Ev['f'], value: unknown, key = 'r0', node?: string): this {
    return this.add({ process, type: 'invoke', f, key, value, ...(node !== undefined ? { node } : {}) });
  }
  done(process: number, type: 'ok' | 'fail' | 'info', f: Ev['f'], value: unknown, key = 'r0'): this {
    return this.add({ process, type, f, key, value });
  }
  write(process: number, v: number, key = 'r0'): this {
    return this.inv(process, 'write', v, key).done(process, 'ok', 'write', v, key);
  }
  read(process: number, v: number | null, key = 'r0'): this {
    return this.inv(process, 'read', null, key).done(process, 'ok', 'read', v, key);
  }
  text(): string {
    return this.events.map((e) => JSON.stringify(e)).join('\n') + '\n';
  }
}

const stale = (h: H) => countStaleReads(pairOperations(parseHistory(h.text())));

describe('countStaleReads, unit cases', () => {
  it('a read of an overwritten value is stale; of the latest, not', () => {
    const r = stale(new H().write(1, 1).write(1, 2).read(2, 1).read(2, 2));
    expect(r).toMatchObject({ reads: 2, stale: 1, unexplained: 0 });
    expect(r.staleReads[0]).toMatchObject({ key: 'r0', value: 1, overwrittenBy: 2, invokeLine: 5, overwriteLine: 4 });
  });

  it('the initial null is stale once a write completed, not before', () => {
    expect(stale(new H().read(1, null).write(2, 5).read(1, null)).stale).toBe(1);
  });

  it('concurrent writes are no evidence: either order is possible', () => {
    const h = new H().inv(1, 'write', 1).inv(2, 'write', 2).done(1, 'ok', 'write', 1).done(2, 'ok', 'write', 2).read(3, 1).read(3, 2);
    expect(stale(h).stale).toBe(0);
  });

  it('a cas that saw a value comes after its write, even an indeterminate one', () => {
    // write 1 never completes (info), but cas 1 -> 2 succeeded: 1 happened and was replaced.
    const h = new H()
      .inv(1, 'write', 1)
      .inv(2, 'cas', [1, 2])
      .done(2, 'ok', 'cas', [1, 2])
      .done(1, 'info', 'write', 1)
      .read(3, 1);
    expect(stale(h).stale).toBe(1);
  });

  it('a failed write is no evidence, a write still running is none either', () => {
    const h = new H().write(1, 1).inv(2, 'write', 2).done(2, 'fail', 'write', 2).read(3, 1).inv(2, 'write', 3).read(3, 1).done(2, 'ok', 'write', 3);
    expect(stale(h).stale).toBe(0);
  });

  it('a value nobody wrote is unexplained, not stale; keys are separate', () => {
    const r = stale(new H().write(1, 1, 'a').write(1, 2, 'b').read(2, 99, 'a').read(2, 1, 'a').read(2, null, 'b'));
    expect(r).toMatchObject({ reads: 3, stale: 1, unexplained: 1 });
  });
});

/**
 * A register history linearizable by construction: each step either invokes an op on an idle
 * process, makes one invoked op take effect (its linearization point: a read sees the current
 * value), or completes an op that took effect (ok), or ends one as info/fail (fail only if it did
 * not take effect).
 */
type Step = readonly [kind: number, pick: number, f: number, info: boolean];

function linearizableHistory(steps: readonly Step[], processes: number): H {
  const h = new H();
  let value: number | null = null;
  let next = 1;
  type Open = { f: 'read' | 'write' | 'cas'; arg: unknown; effect: 'pending' | 'done' | 'skipped'; out: unknown };
  const open = new Map<number, Open>();
  for (const [kind, c, fsel, info] of steps) {
    const idle = Array.from({ length: processes }, (_, p) => p).filter((p) => !open.has(p));
    const pending = [...open.entries()].filter(([, o]) => o.effect === 'pending');
    const effected = [...open.entries()].filter(([, o]) => o.effect !== 'pending');
    if (kind === 0 && idle.length > 0) {
      const p = idle[c % idle.length] as number;
      const f = (['read', 'write', 'cas'] as const)[fsel] as Open['f'];
      const arg = f === 'read' ? null : f === 'write' ? next++ : [value, next++];
      open.set(p, { f, arg, effect: 'pending', out: null });
      h.inv(p, f, arg);
    } else if (kind === 1 && pending.length > 0) {
      const [, o] = pending[c % pending.length] as [number, Open];
      if (o.f === 'read') {
        o.out = value;
        o.effect = 'done';
      } else if (o.f === 'write') {
        value = o.arg as number;
        o.effect = 'done';
      } else {
        const [exp, nv] = o.arg as [number | null, number];
        if (exp === value) {
          value = nv;
          o.effect = 'done';
        } else o.effect = 'skipped'; // compare failed: completes as fail
      }
    } else if (effected.length > 0) {
      const [p, o] = effected[c % effected.length] as [number, Open];
      open.delete(p);
      if (o.effect === 'skipped') h.done(p, 'fail', o.f, o.arg);
      else if (o.f !== 'read' && info) h.done(p, 'info', o.f, o.arg);
      else h.done(p, 'ok', o.f, o.f === 'read' ? o.out : o.arg);
    }
  }
  return h;
}

describe('countStaleReads, properties', () => {
  it('finds none in histories linearizable by construction', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.nat(100), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 4 }).map((x) => x === 0)), { minLength: 30, maxLength: 300, size: 'max' }),
        fc.integer({ min: 1, max: 6 }),
        (steps, processes) => {
        const r = stale(linearizableHistory(steps, processes));
        expect(r.stale).toBe(0);
        expect(r.unexplained).toBe(0);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('in a sequential history counts exactly the reads of a value that was not the latest', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant<'w'>('w'), fc.nat(100)), { minLength: 1, maxLength: 200, size: 'max' }),
        (steps) => {
          // 'w': write the next value; a number n: read one of the values so far (n mod (count+1); 0 = null).
          const h = new H();
          const written: number[] = [];
          let expected = 0;
          for (const s of steps) {
            if (s === 'w') {
              written.push(written.length + 1);
              h.write(1, written.length);
              continue;
            }
            const pick = s % (written.length + 1);
            const v = pick === 0 ? null : (written[pick - 1] as number);
            const latest = written.length === 0 ? null : (written[written.length - 1] as number);
            if (v !== latest) expected++;
            h.read(2, v);
          }
          expect(stale(h).stale).toBe(expected);
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe('availability per window and side', () => {
  const windows = [
    { id: 0, kind: 'quiet', description: 'quiet (lead-in, before #1)', startMs: 0, endMs: 1000 },
    { id: 1, kind: 'partition-isolate-leader', description: 'isolate n1 (the leader)', startMs: 1000, endMs: 3000 },
    { id: 0, kind: 'quiet', description: 'quiet (between #1 and #2)', startMs: 3000, endMs: 4000 },
    { id: 2, kind: 'partition-majorities-ring', description: 'majorities ring', startMs: 4000, endMs: 5000 },
  ];
  const applied = [
    { id: 1, kind: 'partition-isolate-leader' as const, nodes: ['n1'] },
    { id: 2, kind: 'partition-majorities-ring' as const, nodes: ['n1', 'n2', 'n3'] },
  ];
  const op = (f: string, node: string, invokeMs: number, outcome: SidedOp['outcome']): SidedOp => ({ f, node, invokeMs, outcome });

  it('splits partition windows with a minority by the member each op went to, reads apart from writes', () => {
    const ops = [
      op('read', 'n1', 500, 'ok'),
      op('read', 'n1', 1500, 'fail'),
      op('write', 'n1', 1600, 'info'),
      op('read', 'n2', 1700, 'ok'),
      op('cas', 'n3', 2000, 'ok'),
      op('read', 'n2', 4500, 'ok'),
      op('read', 'n3', 5000, 'fail'), // the last window takes its end instant
    ];
    const w = windowAvailability(windows, applied, 3, ops, [1800, 1900, 3500]);
    expect(w.map((x) => x.counts)).toEqual([
      { ok: 1, fail: 0, info: 0 },
      { ok: 2, fail: 1, info: 1 },
      { ok: 0, fail: 0, info: 0 },
      { ok: 1, fail: 1, info: 0 },
    ]);
    expect(w[1]?.availability).toBe(0.5);
    expect(w[1]?.minority).toEqual(['n1']);
    expect(w[1]?.minorityAvailability).toBe(0);
    expect(w[1]?.majorityAvailability).toBe(1);
    expect(w[1]?.minoritySide).toEqual({ reads: { ok: 0, fail: 1, info: 0 }, writes: { ok: 0, fail: 0, info: 1 } });
    expect(w[1]?.majoritySide).toEqual({ reads: { ok: 1, fail: 0, info: 0 }, writes: { ok: 1, fail: 0, info: 0 } });
    expect(w[2]?.availability).toBeNull();
    expect(w[3]?.minorityAvailability).toBeNull(); // a ring has no minority
    expect(w.map((x) => x.staleReads)).toEqual([0, 2, 1, 0]);
  });

  it('a minority is the isolated leader or the smaller half', () => {
    expect(minorityOf({ kind: 'partition-halves', nodes: ['n1', 'n2'] }, 5)).toEqual(['n1', 'n2']);
    expect(minorityOf({ kind: 'partition-halves', nodes: ['n1', 'n2', 'n3'] }, 5)).toBeNull();
    expect(minorityOf({ kind: 'partition-bridge', nodes: ['n3'] }, 5)).toBeNull();
    expect(availabilityOf({ ok: 3, fail: 1, info: 0 })).toBe(0.75);
  });

  it('pairs history.jsonl by process; an op never completed is info', () => {
    const text = new H().inv(1, 'read', null, 'r0', 'n2').done(1, 'fail', 'read', null).inv(2, 'write', 3, 'r0', 'n1').text();
    expect(sidedOps(text)).toEqual([
      { f: 'read', node: 'n2', invokeMs: 1, outcome: 'fail' },
      { f: 'write', node: 'n1', invokeMs: 3, outcome: 'info' },
    ]);
  });
});

describe('a mode result and the section table', () => {
  it('combines the chaos results, the history and the applied windows', () => {
    const h = new H();
    h.inv(1, 'write', 1, 'r0', 'n2').done(1, 'ok', 'write', 1); // quiet
    h.inv(1, 'write', 2, 'r0', 'n2').done(1, 'ok', 'write', 2); // fault window from here (time 3 ms)
    h.inv(3, 'read', null, 'r0', 'n1').done(3, 'ok', 'read', 1); // stale, on the minority
    h.inv(4, 'read', null, 'r0', 'n3').done(4, 'ok', 'read', 2);
    const text = h.text();
    const applied = parseApplied(`${JSON.stringify({ id: 1, kind: 'partition-halves', startMs: 2.5, endMs: 20, nodes: ['n1'], description: 'halves n1 | n2,n3' })}\n`);
    const results = {
      valid: false as const,
      verdict: { valid: false as const, checks: [], summary: 'r0: not linearizable', anomalies: [], anomalyCount: 1 },
      ops: 4,
      counts: { ok: 4, fail: 0, info: 0 },
      nodes: 3,
      windows: [
        { id: 0, kind: 'quiet' as const, description: 'quiet (lead-in, before #1)', startMs: 0, endMs: 2.5, counts: { ok: 1, fail: 0, info: 0 }, availability: 1 },
        { id: 1, kind: 'partition-halves' as const, description: 'halves n1 | n2,n3', startMs: 2.5, endMs: 20, counts: { ok: 3, fail: 0, info: 0 }, availability: 1 },
      ],
    };
    const m = modeResult('serializable', results, text, applied, '/tmp/x');
    expect(m.staleReads).toBe(1);
    expect(m.readsChecked).toBe(2);
    expect(m.faultAvailability).toBe(1);
    expect(m.minoritySide).toEqual({ reads: { ok: 1, fail: 0, info: 0 }, writes: { ok: 0, fail: 0, info: 0 } });
    expect(m.windows[1]?.staleReads).toBe(1);
    const md = faultsMarkdown({ section: 'faults', nodes: 3, seed: 1, durationMs: 6000, modes: [m], heartbeatMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 1000 });
    expect(md).toContain('| serializable | NOT linearizable | 1 of 2 | 4 | 100% | 100% / n/a | 100% / 100% |');
    expect(md).toContain('| #1 0.0-0.0 s: halves n1 / n2,n3 | 100%; minority 100% / n/a, majority 100% / 100%; stale 1 |');
    expect(md).toContain('| quiet | 100%; stale 0 |');
    expect(md).toContain('serializable: read of r0 (history.jsonl line 5) returned 1');
  });
});

/** Settings of a tiny run of the faults section; each test overrides what it looks at. */
function tinySettings(overrides: Partial<TradeoffSettings> = {}): TradeoffSettings {
  return tinyRun({ sections: ['faults'], seed: 1, faultsDurationMs: 6000, faultsRatePerSec: 60, faultsConcurrency: 6, ...overrides });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the chaos runs of the three read modes', () => {
  it('differ only in read mode and folder, so they meet the same partition schedule', () => {
    const settings = tinySettings({ faultsNodes: 5, faultsDurationMs: 30_000, seed: 9 });
    const runs = (['linearizable', 'lease', 'serializable'] as const).map((m) => chaosOptionsFor(settings, m, `/tmp/${m}`));
    const { readMode: _a, outDir: _b, ...common } = runs[0] as NonNullable<(typeof runs)[0]>;
    for (const r of runs) {
      const { readMode, outDir, ...rest } = r;
      expect(rest).toEqual(common);
      expect(outDir).toBe(`/tmp/${readMode}`);
      expect(r).toMatchObject({ workload: 'register', nemeses: ['partition', 'clock'], nodes: 5, seed: faultsSeedFor(settings), unsafeStaleReads: false });
    }
    const schedules = runs.map((r) => scheduleFaults({ seed: r.seed, durationMs: r.durationMs, nodeCount: r.nodes, nemeses: r.nemeses }));
    expect(schedules[1]).toEqual(schedules[0]);
    expect(schedules[2]).toEqual(schedules[0]);
    expect(schedules[0]?.windows.length).toBeGreaterThan(0);
    // The seed chosen is the first from --seed on whose schedule cuts off a slowed leader, and it has a plain minority partition too.
    const chosen = faultsSeedFor(settings);
    expect(chosen).toBeGreaterThanOrEqual(9);
    const kinds = (schedules[0]?.windows ?? []).map((w) => `${w.fault.kind}${w.fault.kind === 'partition-isolate-leader' && w.fault.leaderClockRate !== undefined ? '@slow' : ''}`);
    expect(kinds).toContain('partition-isolate-leader@slow');
    expect(kinds.some((k) => k === 'partition-halves' || k === 'partition-isolate-leader')).toBe(true);
    for (let seed = 9; seed < chosen; seed++) {
      const earlier = scheduleFaults({ seed, durationMs: 30_000, nodeCount: 5, nemeses: ['partition', 'clock'] }).windows;
      const both = earlier.some((w) => w.fault.kind === 'partition-isolate-leader' && w.fault.leaderClockRate !== undefined) &&
        earlier.some((w) => w.fault.kind === 'partition-halves' || (w.fault.kind === 'partition-isolate-leader' && w.fault.leaderClockRate === undefined));
      expect(both, `seed ${seed} also qualifies`).toBe(false);
    }
    expect(estimateFaultsMs(settings)).toBeGreaterThan(3 * 30_000);
  });
});

describe('faults, a tiny real run', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  it('linearizable reads under a partition: valid, no stale read, the runner\'s window counts', async () => {
    expect(existsSync(ballotBin), `${ballotBin} is missing: run npm run build`).toBe(true);
    const workDir = mkdtempSync(join(tmpdir(), 'ballot-tradeoffs-faults-'));
    const progress = new Progress();
    cleanups.push(() => {
      progress.stop();
      rmSync(workDir, { recursive: true, force: true });
    });
    const section = await runFaultsSection(tinySettings(), { progress, supervisor: new Supervisor(), workDir, parentPid: process.pid }, ['linearizable']);
    const mode = section.modes[0];
    if (mode === undefined) throw new Error('no mode');
    const results = JSON.parse(readFileSync(join(mode.outDir, 'results.json'), 'utf8')) as ChaosResults;
    for (const pid of results.pids ?? []) expect(alive(pid)).toBe(false); // runChaos stopped its members
    expect(mode.error).toBeUndefined();
    expect(mode.valid).toBe(true);
    expect(mode.staleReads).toBe(0);
    expect(mode.readsChecked).toBeGreaterThan(0);
    expect(mode.windows.some((w) => w.kind !== 'quiet')).toBe(true);
    // The per-window counts from history.jsonl agree with the runner's own.
    expect(mode.windows.map((w) => [w.kind, w.counts])).toEqual(results.windows.map((w) => [w.kind, w.counts]));
    expect(section.markdown).toContain('| linearizable | linearizable | 0 of ');
    process.stderr.write(`faults tiny run: ${JSON.stringify({ ...mode, windows: mode.windows.map((w) => ({ kind: w.kind, counts: w.counts, minoritySide: w.minoritySide, majoritySide: w.majoritySide })) })}\n`);
  }, 120_000);
});
