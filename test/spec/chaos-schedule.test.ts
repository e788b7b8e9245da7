// The chaos runner's fault schedule: a pure function of the seed (the same seed replays the same faults), windows
// inside the run with a quiet lead-in and tail, one fault at a time, only the chosen nemeses, minorities that are
// minorities; and `--nemesis` parsing.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeFault, KINDS_OF, LEADER_CLOCK_RATES, parseNemeses, scheduleFaults, SCHEDULE_SHAPE, type ScheduleRequest } from '../src/chaos/schedule.js';
import { NEMESIS_NAMES, type FaultSpec, type NemesisName, type Schedule } from '../src/chaos/types.js';

const SEED = Number(process.env.BALLOT_CHAOS_SEED ?? 20261121);

function assertProperty<T>(prop: fc.IProperty<T>, numRuns = 300): void {
  try {
    fc.assert(prop, { seed: SEED, numRuns });
  } catch (err) {
    throw new Error(`property failed (replay with BALLOT_CHAOS_SEED=${SEED}):\n${(err as Error).message}`);
  }
}

const requests: fc.Arbitrary<ScheduleRequest> = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 }),
  durationMs: fc.integer({ min: 1000, max: 300_000 }),
  nodeCount: fc.integer({ min: 1, max: 9 }),
  nemeses: fc.subarray([...NEMESIS_NAMES]),
});

/** Node indexes a fault names (not 'leader'). */
function indexesOf(f: FaultSpec): number[] {
  switch (f.kind) {
    case 'partition-halves':
      return [...f.minority];
    case 'partition-bridge':
    case 'partition-majorities-ring':
      return [...f.order];
    case 'partition-one-way':
      return [...(f.from === 'leader' ? [] : [f.from]), f.to];
    case 'kill':
    case 'pause':
      return f.nodes.filter((n): n is number => n !== 'leader');
    case 'clock':
      return f.changes.map((c) => c.node);
    default:
      return [];
  }
}

function nemesisOf(f: FaultSpec): NemesisName {
  const n = NEMESIS_NAMES.find((name) => KINDS_OF[name].includes(f.kind));
  if (n === undefined) throw new Error(`no nemesis has ${f.kind}`);
  return n;
}

describe('scheduleFaults', () => {
  it('is a pure function of its request: the same inputs give a deep-equal schedule', () => {
    assertProperty(fc.property(requests, (req) => {
      const a = scheduleFaults(req);
      const b = scheduleFaults({ ...req, nemeses: [...req.nemeses].reverse() });
      expect(b).toEqual(a);
      expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    }));
  });

  it('places windows in order, apart, inside the run, after a quiet lead-in and before a quiet tail', () => {
    const S = SCHEDULE_SHAPE;
    assertProperty(fc.property(requests, (req) => {
      const s = scheduleFaults(req);
      const leadIn = Math.max(S.minQuietMs, Math.round(req.durationMs * S.leadInFraction));
      const tail = Math.max(S.minQuietMs, Math.round(req.durationMs * S.tailFraction));
      s.windows.forEach((w, i) => {
        expect(w.id).toBe(i + 1);
        expect(w.startMs).toBeGreaterThanOrEqual(leadIn);
        expect(w.endMs).toBeLessThanOrEqual(req.durationMs - tail);
        expect(w.endMs).toBeGreaterThan(w.startMs);
        expect(w.endMs - w.startMs).toBeLessThanOrEqual(S.maxWindowMs);
        if (s.windows.length > 1) expect(w.endMs - w.startMs).toBeGreaterThanOrEqual(S.minWindowMs);
        const next = s.windows[i + 1];
        if (next !== undefined) expect(next.startMs - w.endMs).toBeGreaterThanOrEqual(S.gapMs[0]);
      });
    }));
  });

  it('draws faults only from the chosen nemeses, naming only nodes of the run, and minorities are minorities', () => {
    assertProperty(fc.property(requests, (req) => {
      const s = scheduleFaults(req);
      if (req.nemeses.length === 0) expect(s.windows).toEqual([]);
      for (const w of s.windows) {
        expect(req.nemeses).toContain(nemesisOf(w.fault));
        for (const i of indexesOf(w.fault)) {
          expect(Number.isInteger(i) && i >= 0 && i < req.nodeCount).toBe(true);
        }
        const f = w.fault;
        if (f.kind === 'partition-halves' || f.kind === 'clock') {
          const nodes = f.kind === 'clock' ? f.changes.map((c) => c.node) : f.minority;
          expect(new Set(nodes).size).toBe(nodes.length);
          expect(nodes.length).toBeGreaterThan(0);
          if (req.nodeCount >= 3) expect(2 * nodes.length).toBeLessThan(req.nodeCount);
        }
        if (f.kind === 'partition-bridge' || f.kind === 'partition-majorities-ring') {
          expect([...f.order].sort((a, b) => a - b)).toEqual(Array.from({ length: req.nodeCount }, (_, i) => i));
        }
        if (f.kind === 'partition-one-way') expect(f.from).not.toBe(f.to);
        if (f.kind === 'kill' || f.kind === 'pause') {
          expect(f.nodes.length).toBeGreaterThan(0);
          expect(new Set(f.nodes).size).toBe(f.nodes.length);
          expect(2 * f.nodes.length).toBeLessThanOrEqual(req.nodeCount + 2);
        }
        if (f.kind === 'clock') {
          for (const c of f.changes) {
            expect(Math.abs(c.skewMs)).toBeGreaterThanOrEqual(200);
            expect(Math.abs(c.skewMs)).toBeLessThanOrEqual(3000);
            expect([0.25, 0.5, 2, 4]).toContain(c.rate);
          }
        }
        if (f.kind === 'partition-isolate-leader' && f.leaderClockRate !== undefined) {
          // Only when the clock nemesis is chosen too, and always a slow clock.
          expect(req.nemeses).toContain('clock');
          expect([0.1, 0.2, 0.3]).toContain(f.leaderClockRate);
        }
        if (f.kind === 'latency') {
          expect(f.latencyMs).toBeGreaterThanOrEqual(20);
          expect(f.latencyMs).toBeLessThanOrEqual(200);
          expect(f.jitterMs).toBeLessThanOrEqual(f.latencyMs / 2);
        }
      }
    }));
  });

  it('gives different seeds different schedules (nearly always)', () => {
    let differ = 0;
    const base: Omit<ScheduleRequest, 'seed'> = { durationMs: 60_000, nodeCount: 5, nemeses: [...NEMESIS_NAMES] };
    for (let seed = 1; seed <= 50; seed++) {
      if (JSON.stringify(scheduleFaults({ ...base, seed }).windows) !== JSON.stringify(scheduleFaults({ ...base, seed: seed + 1000 }).windows)) differ++;
    }
    expect(differ).toBeGreaterThanOrEqual(48);
  });

  it('uses every partition kind, kill/pause targets and each nemesis over many seeds', () => {
    const kinds = new Set<string>();
    const targets = new Set<string>();
    for (let seed = 0; seed < 200; seed++) {
      for (const w of scheduleFaults({ seed, durationMs: 60_000, nodeCount: 5, nemeses: [...NEMESIS_NAMES] }).windows) {
        kinds.add(w.fault.kind);
        if (w.fault.kind === 'kill' || w.fault.kind === 'pause') {
          targets.add(w.fault.nodes.includes('leader') ? 'leader' : w.fault.nodes.length === 1 ? 'one' : w.fault.nodes.length >= 3 ? 'majority' : 'minority');
        }
      }
    }
    expect([...kinds].sort()).toEqual(Object.values(KINDS_OF).flat().sort());
    expect([...targets].sort()).toEqual(['leader', 'majority', 'minority', 'one']);
  });

  it('with partition and clock, slows the leader of some isolate-leader windows (each rate drawn), never without the clock nemesis', () => {
    const rates = new Set<number>();
    let plain = 0;
    for (let seed = 0; seed < 200; seed++) {
      const both = scheduleFaults({ seed, durationMs: 60_000, nodeCount: 3, nemeses: ['partition', 'clock'] });
      for (const w of both.windows) {
        if (w.fault.kind !== 'partition-isolate-leader') continue;
        if (w.fault.leaderClockRate === undefined) plain++;
        else rates.add(w.fault.leaderClockRate);
      }
      for (const w of scheduleFaults({ seed, durationMs: 60_000, nodeCount: 3, nemeses: ['partition'] }).windows) {
        if (w.fault.kind === 'partition-isolate-leader') expect(w.fault.leaderClockRate).toBeUndefined();
      }
    }
    expect([...rates].sort()).toEqual([...LEADER_CLOCK_RATES].sort());
    expect(plain).toBeGreaterThan(0);
  });

  it('fits one window in a short run (6 s) and none when only the quiet parts fit', () => {
    const s: Schedule = scheduleFaults({ seed: 1, durationMs: 6000, nodeCount: 3, nemeses: ['partition'] });
    expect(s.windows).toHaveLength(1);
    expect(s.windows[0]).toMatchObject({ startMs: 1000, endMs: 3000 });
    expect(scheduleFaults({ seed: 1, durationMs: 2000, nodeCount: 3, nemeses: ['kill'] }).windows).toEqual([]);
    const long = scheduleFaults({ seed: 7, durationMs: 30_000, nodeCount: 5, nemeses: ['partition', 'kill', 'pause', 'clock'] });
    expect(long.windows.length).toBeGreaterThanOrEqual(2);
    expect(long.nemeses).toEqual(['partition', 'kill', 'pause', 'clock']);
  });

  it('refuses bad requests with a clear error', () => {
    expect(() => scheduleFaults({ seed: 1, durationMs: 0, nodeCount: 3, nemeses: [] })).toThrow(/durationMs/);
    expect(() => scheduleFaults({ seed: 1, durationMs: 1000, nodeCount: 0, nemeses: [] })).toThrow(/nodeCount/);
    expect(() => scheduleFaults({ seed: 1.5, durationMs: 1000, nodeCount: 3, nemeses: [] })).toThrow(/seed/);
    expect(() => scheduleFaults({ seed: 1, durationMs: 1000, nodeCount: 3, nemeses: ['bogus' as NemesisName] })).toThrow(/bogus/);
  });
});

describe('parseNemeses', () => {
  it('accepts lists, all and none', () => {
    expect(parseNemeses('partition,kill')).toEqual(['partition', 'kill']);
    expect(parseNemeses(' kill , partition,kill')).toEqual(['partition', 'kill']);
    expect(parseNemeses('all')).toEqual([...NEMESIS_NAMES]);
    expect(parseNemeses('none')).toEqual([]);
    expect(parseNemeses('')).toEqual([]);
    expect(parseNemeses('CLOCK,latency,reset,pause')).toEqual(['pause', 'clock', 'latency', 'reset']);
  });

  it('names every bad entry', () => {
    expect(() => parseNemeses('partition,klil,paws')).toThrow(/--nemesis: unknown nemeses "klil", "paws"/);
    expect(() => parseNemeses('bogus')).toThrow(/unknown nemesis "bogus".*partition, kill, pause, clock, latency, reset/);
    expect(() => parseNemeses('none,kill')).toThrow(/none/);
  });
});

describe('describeFault', () => {
  const names = ['n1', 'n2', 'n3', 'n4', 'n5'];
  it('says what a fault does in one line, with the leader once resolved', () => {
    expect(describeFault({ kind: 'partition-halves', minority: [0, 3] }, names)).toBe('halves n1,n4 | n2,n3,n5');
    expect(describeFault({ kind: 'partition-isolate-leader' }, names)).toBe('isolate the leader');
    expect(describeFault({ kind: 'partition-isolate-leader' }, names, 'n3')).toBe('isolate n3 (the leader)');
    expect(describeFault({ kind: 'partition-isolate-leader', leaderClockRate: 0.2 }, names, 'n3')).toBe('isolate n3 (the leader), its clock x0.2');
    expect(describeFault({ kind: 'partition-isolate-leader', leaderClockRate: 0.1 }, names)).toBe('isolate the leader, its clock x0.1');
    expect(describeFault({ kind: 'partition-bridge', order: [4, 3, 2, 1, 0] }, names)).toBe('bridge n5,n4 | n3 | n2,n1');
    expect(describeFault({ kind: 'partition-one-way', from: 'leader', to: 1 }, names, 'n1')).toBe('one-way: n1 (the leader) -> n2 dropped');
    expect(describeFault({ kind: 'kill', nodes: [0, 3] }, names)).toBe('SIGKILL n1, n4');
    expect(describeFault({ kind: 'pause', nodes: ['leader'] }, names)).toBe('SIGSTOP the leader');
    expect(describeFault({ kind: 'clock', changes: [{ node: 1, skewMs: 800, rate: 0.5 }, { node: 2, skewMs: -300, rate: 4 }] }, names))
      .toBe('n2 clock +800 ms x0.5, n3 clock -300 ms x4');
    expect(describeFault({ kind: 'latency', latencyMs: 80, jitterMs: 20 }, names)).toBe('latency 80 ms (jitter 20 ms) on every link');
    expect(describeFault({ kind: 'reset' }, names)).toBe('reset every peer connection');
  });
});
