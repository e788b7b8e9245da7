// The invariant checkers must be able to fail: feed them deliberately broken histories and check
// that each one is reported, with the invariant's name and a readable detail.

import { describe, expect, it } from 'vitest';
import type { Entry } from '../src/core/types.js';
import { InvariantChecker } from '../src/sim/invariants.js';
import { expectViolation, hs, noop } from './sim-helpers.js';

const enc = new TextEncoder();
function e(index: number, term: number, text = `x${index}.${term}`): Entry {
  return { index, term, type: 'normal', data: enc.encode(text) };
}

describe('InvariantChecker accepts a correct history', () => {
  it('a leader change with a truncated uncommitted suffix is fine', () => {
    const c = new InvariantChecker();
    c.observeRole('n1', 'leader', 1);
    const l1 = [noop(1, 1), e(2, 1), e(3, 1)];
    c.observeDurable('n1', l1, 1, hs(1, 0, 'n1'));
    c.observeDurable('n2', [noop(1, 1), e(2, 1)], 1, hs(1, 2, 'n1'));
    c.observeApply('n2', noop(1, 1), 1);
    c.observeApply('n2', e(2, 1), 1);
    c.observeRole('n1', 'follower', 2);
    c.observeRole('n2', 'leader', 2);
    c.observeDurable('n2', [noop(1, 1), e(2, 1), noop(3, 2)], 3, hs(2, 2, 'n2'));
    // n1's uncommitted (3,1) is replaced by the new leader's entry.
    c.observeDurable('n1', [noop(1, 1), e(2, 1), noop(3, 2)], 3, hs(2, 3, 'n2'));
    c.observeApply('n1', noop(1, 1), 2);
    c.observeApply('n1', e(2, 1), 2);
    c.observeApply('n1', noop(3, 2), 2);
    c.observeCommit('n1', 3);
    c.checkLogMatching(new Map([['n1', [noop(1, 1), e(2, 1), noop(3, 2)]], ['n2', [noop(1, 1), e(2, 1), noop(3, 2)]]]));
    c.recordAck({ node: 'n2', index: 2, term: 1, data: enc.encode('x2.1'), timeMs: 5 });
    c.checkAcknowledgedApplied(new Map([['n1', [noop(1, 1), e(2, 1)]], ['n2', [noop(1, 1), e(2, 1), noop(3, 2)]]]));
    expect(c.leaders().size).toBe(2);
  });
});

describe('InvariantChecker reports broken histories', () => {
  it('two leaders in one term (election safety), even if the first one crashed meanwhile', () => {
    const c = new InvariantChecker({ seed: 7, now: () => 1234, timeline: () => ['t=1.0ms n1 is leader term=3'] });
    c.observeRole('n1', 'leader', 3);
    c.observeCrash('n1');
    const v = expectViolation('election-safety', () => c.observeRole('n2', 'leader', 3), /two leaders in term 3: n1 and n2/);
    expect(v.seed).toBe(7);
    expect(v.message).toContain('seed: 7');
    expect(v.message).toContain('t=1234.0ms');
    expect(v.message).toContain('n1 is leader term=3');
  });

  it('one leader in different terms is fine, two nodes leading different terms is fine', () => {
    const c = new InvariantChecker();
    c.observeRole('n1', 'leader', 1);
    c.observeRole('n2', 'leader', 2);
    c.observeRole('n1', 'leader', 3);
    expect([...c.leaders()]).toEqual([[1, 'n1'], [2, 'n2'], [3, 'n1']]);
  });

  it('two nodes applying different entries at one index (state machine safety)', () => {
    const c = new InvariantChecker();
    c.observeApply('n1', e(1, 1, 'a'), 1);
    expectViolation('state-machine-safety', () => c.observeApply('n2', e(1, 1, 'b'), 1), /index 1/);
  });

  it('two different entries committed at one index, seen through durable commit indexes', () => {
    const c = new InvariantChecker();
    c.observeDurable('n1', [e(1, 1)], 1, hs(1, 1));
    expectViolation('state-machine-safety', () => c.observeDurable('n2', [e(1, 2)], 1, hs(2, 1)), /two different entries committed at index 1/);
  });

  it('same index and term but different data (log matching)', () => {
    const c = new InvariantChecker();
    c.observeDurable('n1', [e(1, 1, 'a')], 1, hs(1, 0));
    expectViolation('log-matching', () => c.observeDurable('n2', [e(1, 1, 'b')], 1, hs(1, 0)), /index 1 term 1 names two different entries/);
  });

  it('matching entry with a different history before it (log matching, incremental)', () => {
    const c = new InvariantChecker();
    c.observeDurable('n1', [e(1, 1), e(2, 3)], 1, hs(3, 0));
    expectViolation('log-matching', () => c.observeDurable('n2', [e(1, 2), e(2, 3)], 1, hs(3, 0)), /differ before a matching entry/);
  });

  it('matching entry with a different history before it (log matching, pairwise)', () => {
    const c = new InvariantChecker();
    const logs = new Map([
      ['n1', [e(1, 1), e(2, 1, 'p'), e(3, 2)]],
      ['n2', [e(1, 1), e(2, 1, 'q'), e(3, 2)]],
    ]);
    expectViolation('log-matching', () => c.checkLogMatching(logs), /differ at index 2/);
  });

  it('a leader of a later term missing a committed entry (leader completeness)', () => {
    const c = new InvariantChecker();
    c.observeRole('n1', 'leader', 1);
    c.observeDurable('n1', [noop(1, 1), e(2, 1)], 1, hs(1, 2));
    c.observeApply('n1', noop(1, 1), 1);
    c.observeApply('n1', e(2, 1), 1);
    // n3 becomes leader of term 2 with a log that lacks (2,1).
    c.observeRole('n3', 'leader', 2);
    expectViolation('leader-completeness', () => c.observeDurable('n3', [noop(1, 1), noop(2, 2)], 1, hs(2, 0)), /leader n3 of term 2 lacks \(2,1\)/);
  });

  it('an entry learned committed after a later leader took over without it (leader completeness)', () => {
    const c = new InvariantChecker();
    c.observeRole('n3', 'leader', 5);
    c.observeDurable('n3', [noop(1, 5)], 1, hs(5, 0));
    // Some node then learns that (1,2) was committed back in term 2.
    expectViolation('leader-completeness', () => c.observeDurable('n2', [e(1, 2)], 1, hs(2, 1)), /leader n3 of term 5 lacks \(1,2\)/);
  });

  it('a committed entry overwritten in a durable log', () => {
    const c = new InvariantChecker();
    c.observeDurable('n1', [e(1, 1), e(2, 1)], 1, hs(1, 2));
    expectViolation('leader-completeness', () => c.observeDurable('n1', [e(1, 1), e(2, 2)], 2, hs(2, 2)), /overwrote committed/);
  });

  it('a leader committing an entry of an earlier term by counting replicas (commit rule, Figure 8)', () => {
    const c = new InvariantChecker();
    c.observeLeaderCommit('n1', 3, 1, 3, noop(3, 3)); // its own no-op: fine
    expectViolation('commit-rule', () => c.observeLeaderCommit('n1', 3, 3, 4, e(4, 2)), /an entry of term 2.*Figure 8/);
    expectViolation('commit-rule', () => c.observeLeaderCommit('n2', 4, 0, 9, undefined), /beyond its durable log/);
  });

  it('a commit index going down while up, and a restart below the durable commit', () => {
    const c = new InvariantChecker();
    c.observeCommit('n1', 5);
    expectViolation('commit-monotonic', () => c.observeCommit('n1', 4), /from 5 down to 4/);
    const d = new InvariantChecker();
    d.observeCommit('n1', 5);
    d.observeCrash('n1');
    expectViolation('commit-monotonic', () => d.observeRestart('n1', 5, 3), /below its durable commit index 5/);
    // A crash forgets the in-memory commit index, so restarting at the durable one is fine.
    const f = new InvariantChecker();
    f.observeCommit('n1', 7);
    f.observeCrash('n1');
    f.observeRestart('n1', 5, 5);
    f.observeCommit('n1', 6);
  });

  it('a lost acknowledged write (durability): overwritten at one node, never applied at another', () => {
    const c = new InvariantChecker();
    c.observeApply('n1', e(1, 1, 'acked'), 1);
    c.recordAck({ node: 'n1', index: 1, term: 1, data: enc.encode('acked'), timeMs: 10 });
    expectViolation(
      'durability',
      () => c.checkAcknowledgedApplied(new Map([['n1', [e(1, 1, 'acked')]], ['n2', [e(1, 2, 'other')]]])),
      /is lost: n2 applied/,
    );
    expectViolation('durability', () => c.checkAcknowledgedApplied(new Map([['n1', [e(1, 1, 'acked')]], ['n2', []]])), /never applied by n2/);
  });

  it('a read answered below a write acknowledged before it was issued (linearizable read)', () => {
    const c = new InvariantChecker();
    c.observeApply('n1', e(1, 1), 1);
    c.observeApply('n1', e(2, 1), 1);
    c.observeReadIssued('n2', 1); // before the ack: index 1 is fine for it
    c.recordAck({ node: 'n1', index: 2, term: 1, data: enc.encode('x2.1'), timeMs: 4 });
    c.observeReadIssued('n3', 2);
    c.observeReadIndex('n2', 1, 1);
    expectViolation('linearizable-read', () => c.observeReadIndex('n3', 2, 1), /write at index 2 was acknowledged before/);
    // A failed read, or one lost in a crash, is not checked.
    c.observeReadIssued('n3', 3);
    c.forgetRead('n3', 3);
    c.observeReadIndex('n3', 3, 0);
  });

  it('an acknowledgement for an entry that is not the committed one', () => {
    const c = new InvariantChecker();
    c.observeApply('n1', e(1, 1, 'a'), 1);
    expectViolation('durability', () => c.recordAck({ node: 'n2', index: 1, term: 2, data: enc.encode('b'), timeMs: 3 }));
  });
});
