// The issue-3 invariant checkers must be able to fail: feed them deliberately broken histories
// (a leader elected with a learner's vote, adjacent-term configurations that do not overlap, a
// removed node leading, a state machine going backwards) and check each is reported with its
// name and a readable detail — and that the matching correct histories are accepted.

import { describe, expect, it } from 'vitest';
import { encodeConfChange } from '../src/core/membership.js';
import type { ClusterConfig, ConfChange, Entry } from '../src/core/types.js';
import { InvariantChecker, quorumsOverlap } from '../src/sim/invariants.js';
import { expectViolation, hs, noop } from './sim-helpers.js';

function cfg(voters: string[], learners: string[] = []): ClusterConfig {
  return { voters, learners };
}
function conf(index: number, term: number, change: ConfChange): Entry {
  return { index, term, type: 'config', data: encodeConfChange(change) };
}

const ABC = cfg(['a', 'b', 'c']);

describe('quorumsOverlap (thesis §4.1)', () => {
  it('single-server changes always overlap; two servers at once can split', () => {
    expect(quorumsOverlap(['a', 'b', 'c'], ['a', 'b', 'c', 'd'])).toBe(true);
    expect(quorumsOverlap(['a', 'b', 'c', 'd'], ['a', 'b', 'c'])).toBe(true);
    expect(quorumsOverlap(['a', 'b', 'c'], ['a', 'b'])).toBe(true);
    expect(quorumsOverlap(['a'], ['a', 'b'])).toBe(true);
    // Figure 4.2 of the thesis: {a,b,c} → {a,b,c,d,e} directly: {a,b} and {c,d,e} are majorities.
    expect(quorumsOverlap(['a', 'b', 'c'], ['a', 'b', 'c', 'd', 'e'])).toBe(false);
    expect(quorumsOverlap(['a', 'b', 'c', 'd'], ['a', 'b', 'e', 'f'])).toBe(false);
    expect(quorumsOverlap(['a', 'b'], ['c', 'd'])).toBe(false);
    expect(quorumsOverlap([], ['a'])).toBe(false);
  });
});

describe('election quorum: a learner never votes (its grant never counts)', () => {
  it('a leader with grants from a majority of its voters is fine', () => {
    const c = new InvariantChecker();
    c.observeVoteGranted('a', 'b', 2);
    c.observeRole('a', 'leader', 2, ABC);
    expect(c.leaders().get(2)).toBe('a');
  });

  it('a leader counting a learner is reported', () => {
    const c = new InvariantChecker({ seed: 3 });
    c.observeVoteGranted('a', 'l', 2); // l is a learner in a's configuration
    const v = expectViolation('election-quorum', () => c.observeRole('a', 'leader', 2, cfg(['a', 'b', 'c'], ['l'])), /1 of the 3 voters/);
    expect(v.detail).toMatch(/grants from non-voters \[l\] do not count/);
  });

  it('a leader that is not a voter of its own configuration has no quorum', () => {
    const c = new InvariantChecker();
    c.observeVoteGranted('x', 'a', 4);
    expectViolation('election-quorum', () => c.observeRole('x', 'leader', 4, ABC), /x became leader of term 4 with votes from 1 of the 3 voters/);
  });

  it('a learner that campaigns is reported', () => {
    const c = new InvariantChecker();
    c.observeRole('l', 'follower', 1, cfg(['a', 'b', 'c'], ['l']));
    expectViolation('learner-campaign', () => c.observeRole('l', 'pre-candidate', 1, cfg(['a', 'b', 'c'], ['l'])), /l is pre-candidate in term 1 but is a learner/);
    // Once promoted, it may.
    c.observeRole('l', 'candidate', 2, cfg(['a', 'b', 'c', 'l']));
  });

  it('votes of another term do not count', () => {
    const c = new InvariantChecker();
    c.observeVoteGranted('a', 'b', 1);
    expectViolation('election-quorum', () => c.observeRole('a', 'leader', 2, ABC));
  });
});

describe('configuration overlap of adjacent-term leaders (thesis §4.1)', () => {
  it('one server added between two leaders is fine, also when the earlier leader is seen last', () => {
    const c = new InvariantChecker();
    c.observeVoteGranted('d', 'a', 5);
    c.observeVoteGranted('d', 'b', 5);
    c.observeRole('d', 'leader', 5, cfg(['a', 'b', 'c', 'd']));
    c.observeVoteGranted('a', 'b', 4);
    c.observeRole('a', 'leader', 4, ABC);
  });

  it('a leader may commit several changes in its term; the next one is compared with its last commit configuration', () => {
    const c = new InvariantChecker();
    c.observeVoteGranted('a', 'b', 1);
    c.observeRole('a', 'leader', 1, ABC);
    c.observeLeaderCommit('a', 1, 0, 3, noop(3, 1), cfg(['a', 'b', 'c', 'd']));
    c.observeLeaderCommit('a', 1, 3, 5, noop(5, 1), cfg(['a', 'b', 'c', 'd', 'e']));
    for (const v of ['c', 'd']) c.observeVoteGranted('e', v, 2);
    c.observeRole('e', 'leader', 2, cfg(['a', 'b', 'c', 'd', 'e']));
  });

  it('two servers added at once between adjacent leaders is reported', () => {
    const c = new InvariantChecker({ seed: 11 });
    c.observeVoteGranted('a', 'b', 1);
    c.observeRole('a', 'leader', 1, ABC);
    for (const v of ['d', 'e']) c.observeVoteGranted('c', v, 2);
    const v = expectViolation(
      'config-overlap',
      () => c.observeRole('c', 'leader', 2, cfg(['a', 'b', 'c', 'd', 'e'])),
      /leader a of term 1 was elected with voters \[a,b,c\]; the next leader, c of term 2, was elected with voters \[a,b,c,d,e\]/,
    );
    expect(v.message).toContain('seed: 11');
  });

  it('is checked again when the earlier leader advances its commit index later', () => {
    const c = new InvariantChecker();
    c.observeVoteGranted('a', 'b', 1);
    c.observeRole('a', 'leader', 1, ABC);
    c.observeVoteGranted('b', 'c', 2);
    c.observeRole('b', 'leader', 2, ABC);
    // The term-1 leader (partitioned, say) commits with a configuration far from term 2's.
    expectViolation('config-overlap', () => c.observeLeaderCommit('a', 1, 0, 2, noop(2, 1), cfg(['a', 'x', 'y', 'z', 'w'])), /last advanced its commit index with voters \[a,x,y,z,w\]/);
  });
});

describe('a removed node never leads again (thesis §4.2.2)', () => {
  it('a node that becomes leader knowing its removal committed is reported', () => {
    const c = new InvariantChecker();
    const log = [noop(1, 1), conf(2, 1, { type: 'remove', node: 'c' })];
    c.observeDurable('a', log, 1, hs(1, 2));
    expect([...c.removedNodes().keys()]).toEqual(['c']);
    c.observeVoteGranted('c', 'a', 3);
    c.observeVoteGranted('c', 'b', 3);
    expectViolation(
      'removed-leader',
      () => c.observeRole('c', 'leader', 3, cfg(['a', 'b']), 2),
      /c became leader of term 3 although its removal \(config entry 2\) was committed and its own commit index 2 covers it/,
    );
  });

  it('one cut off when its removal committed may still win once with the new voters (thesis §4.1)', () => {
    const c = new InvariantChecker();
    c.observeDurable('a', [noop(1, 1), conf(2, 1, { type: 'remove', node: 'c' })], 1, hs(1, 2));
    c.observeVoteGranted('c', 'a', 3);
    c.observeVoteGranted('c', 'b', 3);
    c.observeRole('c', 'leader', 3, cfg(['a', 'b']), 1);
    expect(c.leaders().get(3)).toBe('c');
  });

  it('a removed leader that keeps leading its term until the removal commits is fine', () => {
    const c = new InvariantChecker();
    c.observeVoteGranted('c', 'b', 1);
    c.observeRole('c', 'leader', 1, ABC);
    c.observeDurable('b', [noop(1, 1), conf(2, 1, { type: 'remove', node: 'c' })], 1, hs(1, 2));
    c.observeRole('c', 'leader', 1, cfg(['a', 'b']));
    c.observeRole('c', 'follower', 1, cfg(['a', 'b']));
  });

  it('a leader still leading well after its own removal committed is reported; stepping down in time is fine', () => {
    let now = 0;
    const c = new InvariantChecker({ now: () => now });
    c.observeOrphanLeader('c', 1, true, 200);
    now = 150;
    c.observeOrphanLeader('c', 1, true, 200);
    c.observeOrphanLeader('c', 1, false, 200); // stepped down
    now = 400;
    c.observeOrphanLeader('c', 1, true, 200); // a new episode starts the clock again
    now = 601;
    expectViolation('removed-leader', () => c.observeOrphanLeader('c', 1, true, 200), /c still leads term 1 201\.0ms after its removal committed/);
  });

  it('an uncommitted removal does not count, and a later committed re-add clears it', () => {
    const c = new InvariantChecker();
    c.observeDurable('a', [noop(1, 1), conf(2, 1, { type: 'remove', node: 'c' })], 1, hs(1, 1));
    expect(c.removedNodes().size).toBe(0);
    c.observeDurable('a', [noop(1, 1), conf(2, 1, { type: 'remove', node: 'c' }), conf(3, 1, { type: 'add-voter', node: 'c' })], 3, hs(1, 3));
    expect(c.removedNodes().size).toBe(0);
  });
});

describe('applied index never goes backwards', () => {
  it('across a restart: rebuilt below what was applied before the crash', () => {
    const c = new InvariantChecker();
    c.observeAppliedIndex('a', 10, 'apply');
    c.observeCrash('a');
    expectViolation('applied-monotonic', () => c.observeAppliedIndex('a', 7, 'restart'), /restarted with its state machine at 7.*below the 10/);
  });

  it('by a snapshot install older than the state machine', () => {
    const c = new InvariantChecker();
    c.observeAppliedIndex('a', 20, 'apply');
    expectViolation('applied-monotonic', () => c.observeAppliedIndex('a', 15, 'snapshot'), /switched in a snapshot at 15, below the 20/);
  });

  it('forward moves (apply, a newer snapshot, a restart that replays everything) are fine', () => {
    const c = new InvariantChecker();
    c.observeAppliedIndex('a', 5, 'apply');
    c.observeAppliedIndex('a', 30, 'snapshot');
    c.observeAppliedIndex('a', 30, 'restart');
    c.observeAppliedIndex('b', 1, 'apply');
  });
});

describe('compacted logs', () => {
  it('Log Matching and commit checks work on logs that start after a snapshot', () => {
    const c = new InvariantChecker();
    const tail = [noop(11, 2), noop(12, 2)];
    c.observeDurable('a', tail, 11, hs(2, 12), { index: 10, term: 1 });
    c.checkLogMatching(new Map([['a', { firstIndex: 11, entries: tail }], ['b', [...Array.from({ length: 10 }, (_, k) => noop(k + 1, 1)), ...tail]]]));
    // Same (index, term) as a's (12,2) but a different predecessor term: the logs differ before it.
    expectViolation('log-matching', () => c.observeDurable('b', [noop(12, 2)], 12, hs(2, 0), { index: 11, term: 1 }), /follows term 2 at a but term 1 at b/);
  });

  it('a log truncated below its commit index is reported, with the offset taken into account', () => {
    const c = new InvariantChecker();
    c.observeDurable('a', [noop(11, 2), noop(12, 2)], 11, hs(2, 12), { index: 10, term: 1 });
    expectViolation('leader-completeness', () => c.observeDurable('a', [noop(11, 2)], 12, hs(2, 12), { index: 10, term: 1 }), /truncated its durable log to 11, below its commit index 12/);
  });
});
