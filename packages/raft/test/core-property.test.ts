// Property: whatever the network does (lose, reorder, duplicate messages), whatever the timing
// (which node ticks when) and however nodes crash and restart, Raft's safety properties hold
// (Figure 3): at most one leader per term, logs that agree on an (index, term) agree on the whole
// prefix, no two nodes apply different entries at one index, and every read index covers all
// entries committed before the read began (linearizable reads, thesis §6.4). The Cluster checks the first and
// last after every Ready; this test checks log matching and commit agreement at the end, and then
// that the healed cluster elects a leader and commits a new command everywhere (liveness).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { action, issue3Action, run, type RunOptions, type RunStats } from './core-chaos.js';
import type { ConfigOverrides } from './core-helpers.js';

/** Runs per configuration; raise it by hand for a longer search (CORE_PROPERTY_RUNS=5000). */
const numRuns = Number(process.env['CORE_PROPERTY_RUNS'] ?? 150);
const baseSeed = Number(process.env['CORE_PROPERTY_SEED'] ?? 20260);

describe('safety under random message loss, reordering, duplication and restarts', () => {
  const configs: readonly (readonly [number, ConfigOverrides])[] = [
    [3, {}],
    [5, {}],
    [3, { preVote: false }],
    [5, { preVote: false, checkQuorum: false }],
  ];
  configs.forEach(([size, overrides], k) => {
    it(`${size} nodes, ${JSON.stringify(overrides)}: one leader per term, matching logs, same applied entries, linearizable reads`, () => {
      const seed = baseSeed + 10 * k + size;
      const stats: RunStats[] = [];
      fc.assert(
        fc.property(fc.array(action, { minLength: 100, maxLength: 300, size: 'max' }), (actions) => {
          stats.push(run(size, overrides, actions));
        }),
        { seed, numRuns },
      );
      // Not vacuous: many runs elected leaders (several terms) and applied entries.
      const elected = stats.filter((s) => s.terms >= 2).length;
      const applied = stats.filter((s) => s.appliedIndexes >= 5).length;
      const read = stats.filter((s) => s.readsServed >= 1).length;
      console.log(`seed ${seed}: ${stats.length} runs, ${elected} with >= 2 leader terms, ${applied} with >= 5 applied indexes, ${read} with reads served`);
      expect(read).toBeGreaterThan(stats.length / 4);
      expect(elected).toBeGreaterThan(stats.length / 4);
      expect(applied).toBeGreaterThan(stats.length / 4);
    });
  });
});

// Issue 3: the same safety properties, plus: the configuration each leader was elected under
// overlaps in a quorum with the last configuration of the previous term's leader (thesis §4.1),
// and a node's applied index never goes back (within a lifetime; snapshots switched in are ahead
// of it; a restarted node resumes exactly from its saved snapshot), under random compactions
// (hence snapshot installs), membership changes (with spare nodes to add) and transfers.
// Membership changes run with PreVote on: without it, a removed node that never learned of its
// removal disrupts the cluster forever (thesis §4.2.3), which is a liveness, not a safety, issue.
describe('safety with compaction, snapshots, membership changes and leadership transfer', () => {
  const numRuns3 = Number(process.env['CORE_PROPERTY_RUNS'] ?? 100);
  const configs: readonly (readonly [number, ConfigOverrides, RunOptions])[] = [
    [3, {}, { spares: 2, membership: true }],
    [5, {}, { spares: 1, membership: true }],
    [3, { checkQuorum: false }, { spares: 2, membership: true }],
    [3, { preVote: false }, {}],
  ];
  configs.forEach(([size, overrides, opts], k) => {
    const nodes = size + (opts.spares ?? 0);
    it(`${size} nodes + ${opts.spares ?? 0} spares, ${JSON.stringify(overrides)}, membership ${opts.membership === true}: safety, overlapping leader configurations, liveness`, () => {
      const seed = baseSeed + 1000 + 10 * k + size;
      const stats: RunStats[] = [];
      fc.assert(
        fc.property(fc.array(issue3Action(nodes), { minLength: 100, maxLength: 300, size: 'max' }), (actions) => {
          stats.push(run(size, overrides, actions, opts));
        }),
        { seed, numRuns: numRuns3 },
      );
      const installs = stats.filter((s) => s.snapshotInstalls >= 1).length;
      const changes = stats.filter((s) => s.confChangesApplied >= 2).length;
      const transfers = stats.filter((s) => s.transfers >= 1).length;
      const applied = stats.filter((s) => s.appliedIndexes >= 5).length;
      console.log(`seed ${seed}: ${stats.length} runs, ${installs} with a snapshot installed, ${changes} with >= 2 config changes applied, ${transfers} with a transfer, ${applied} with >= 5 applied indexes`);
      // Not vacuous: the new events actually happen.
      expect(installs).toBeGreaterThan(stats.length / 10);
      expect(transfers).toBeGreaterThan(stats.length / 10);
      expect(applied).toBeGreaterThan(stats.length / 4);
      if (opts.membership === true) expect(changes).toBeGreaterThan(stats.length / 10);
    });
  });
});
