// Property: for any fault schedule fast-check can generate, no invariant is violated and the
// cluster is live after healing. A failure is shrunk to a minimal schedule, printed with the
// fast-check seed and the simulator's report (invariant, timeline, replay command).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PARTITION_MODES, describeFault, type FaultAction, type FaultEvent } from '../src/sim/faults.js';
import { runSimulation } from '../src/sim/run.js';

/** Fixed so every CI run checks the same schedules; change it to explore others. */
const FC_SEED = 20_261_121;
const DURATION_MS = 1500;

function actionArb(nodes: number): fc.Arbitrary<FaultAction> {
  return fc.oneof(
    fc.record({ kind: fc.constant('partition' as const), mode: fc.constantFrom(...PARTITION_MODES), pick: fc.nat() }),
    fc.constant({ kind: 'heal' as const }),
    fc.record({ kind: fc.constant('crash' as const), target: fc.oneof(fc.constant('leader' as const), fc.nat({ max: nodes - 1 })) }),
    fc.record({
      kind: fc.constant('bounce' as const),
      target: fc.oneof(fc.constant('leader' as const), fc.nat({ max: nodes - 1 })),
      downMs: fc.integer({ min: 0, max: 50 }),
    }),
    fc.record({ kind: fc.constant('restart' as const), target: fc.nat({ max: 2 * nodes - 1 }) }),
    fc.record({
      kind: fc.constant('unreliable' as const),
      drop: fc.double({ min: 0, max: 0.4, noNaN: true }),
      duplicate: fc.double({ min: 0, max: 0.2, noNaN: true }),
      maxDelayMs: fc.integer({ min: 1, max: 60 }),
      perLink: fc.boolean(),
      pick: fc.nat(),
    }),
    fc.constant({ kind: 'reliable' as const }),
    fc.record({ kind: fc.constant('clock' as const), node: fc.nat({ max: nodes - 1 }), rate: fc.double({ min: 0.5, max: 2, noNaN: true }) }),
  );
}

/** Faults plus membership changes and transfers (issue 3), carried out by the run's operator. */
function actionWithMembershipArb(nodes: number): fc.Arbitrary<FaultAction> {
  return fc.oneof(
    actionArb(nodes),
    fc.constant({ kind: 'add-node' as const }),
    fc.record({
      kind: fc.constant('remove-node' as const),
      target: fc.oneof(fc.constant('leader' as const), fc.nat({ max: nodes - 1 })),
      decommission: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('replace-node' as const), target: fc.nat({ max: nodes - 1 }) }),
    fc.constant({ kind: 'transfer' as const }),
  );
}

function scheduleArb(nodes: number, maxLength: number): fc.Arbitrary<FaultEvent[]> {
  return fc.array(fc.record({ atMs: fc.integer({ min: 0, max: DURATION_MS - 1 }), action: actionArb(nodes) }), { maxLength });
}

function show(schedule: readonly FaultEvent[]): string {
  return schedule.map((e) => `t=${e.atMs}ms ${describeFault(e.action)}`).join('; ') || '(empty)';
}

describe('fault schedules (fast-check)', () => {
  it('no generated schedule breaks an invariant or liveness (5 nodes)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), scheduleArb(5, 20), (seed, schedule) => {
        const r = runSimulation({ seed, nodes: 5, durationMs: DURATION_MS, schedule });
        if (!r.ok) throw new Error(`fast-check seed ${FC_SEED}, sim seed ${seed}, schedule ${show(schedule)}\n${r.report}`);
      }),
      { seed: FC_SEED, numRuns: 80 },
    );
  });

  it('no generated schedule of faults, membership changes and transfers breaks an invariant or liveness (5 nodes)', () => {
    const arb = fc.array(fc.record({ atMs: fc.integer({ min: 0, max: DURATION_MS - 1 }), action: actionWithMembershipArb(5) }), { maxLength: 20 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), arb, (seed, schedule) => {
        const r = runSimulation({ seed, nodes: 5, durationMs: DURATION_MS, schedule });
        if (!r.ok) throw new Error(`fast-check seed ${FC_SEED + 2}, sim seed ${seed}, schedule ${show(schedule)}\n${r.report}`);
      }),
      { seed: FC_SEED + 2, numRuns: 60 },
    );
  });

  it('no generated schedule breaks an invariant or liveness (3 nodes, PreVote and CheckQuorum off)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), scheduleArb(3, 20), (seed, schedule) => {
        const r = runSimulation({ seed, nodes: 3, durationMs: DURATION_MS, schedule, cluster: { preVote: false, checkQuorum: false } });
        if (!r.ok) throw new Error(`fast-check seed ${FC_SEED}, sim seed ${seed}, schedule ${show(schedule)}\n${r.report}`);
      }),
      { seed: FC_SEED + 1, numRuns: 80 },
    );
  });

  it('shrinks a failing schedule to a minimal one (shown with a disk that forgets on crash)', () => {
    // With the unsafe amnesia mode any crash after something committed loses committed state,
    // so the minimal failing schedule is a single crash. fast-check must find and shrink to it.
    const details = fc.check(
      fc.property(scheduleArb(3, 12), (schedule) => {
        // variants: false — no crash points of the seed's own: every crash comes from the schedule.
        const r = runSimulation({ seed: 1, nodes: 3, durationMs: DURATION_MS, schedule, variants: false, cluster: { unsafeAmnesiaOnCrash: true } });
        return r.ok;
      }),
      { seed: FC_SEED, numRuns: 200 },
    );
    expect(details.failed, `fast-check seed ${FC_SEED}`).toBe(true);
    const [minimal] = details.counterexample ?? [[]];
    expect(minimal, show(minimal ?? [])).toHaveLength(1);
    expect(minimal?.[0]?.action.kind).toBe('crash');
    expect(details.numShrinks).toBeGreaterThan(0);
    // And the minimal schedule still fails, with a report.
    const r = runSimulation({
      seed: 1,
      nodes: 3,
      durationMs: DURATION_MS,
      schedule: minimal ?? [],
      variants: false,
      cluster: { unsafeAmnesiaOnCrash: true },
    });
    expect(r.ok).toBe(false);
    expect(r.report).toContain('INVARIANT VIOLATED');
  });
});
