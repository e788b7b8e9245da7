// Property: whatever the network does (lose, reorder, duplicate messages), whatever the timing
// (which node ticks when) and however nodes crash and restart, Raft's safety properties hold
// (Figure 3): at most one leader per term, logs that agree on an (index, term) agree on the whole
// prefix, no two nodes apply different entries at one index, and every read index covers all
// entries committed before the read began (linearizable reads, thesis §6.4). The Cluster checks the first and
// last after every Ready; this test checks log matching and commit agreement at the end, and then
// that the healed cluster elects a leader and commits a new command everywhere (liveness).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { action, run, type RunStats } from './core-chaos.js';
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
