// Leadership transfer (thesis §3.10): the leader stops taking proposals, brings the target up to
// date, and sends it TimeoutNow; the target campaigns at once with a forced RequestVote that
// voters honour even though they just heard from the leader. If the transfer does not finish
// within an election timeout, it is aborted and proposals resume.

import { describe, expect, it } from 'vitest';
import type { RequestVote } from '../src/core/types.js';
import { Cluster, enc, thrown } from './core-helpers.js';

describe('leadership transfer', () => {
  it('to an up-to-date follower: TimeoutNow at once, the target wins the next term', () => {
    const c = new Cluster(3); // PreVote and CheckQuorum on: voters heard from n1 just now
    c.elect('n1');
    c.node('n1').propose([enc('a')]);
    c.stabilize();
    c.node('n1').transferLeadership('n2');
    expect(c.node('n1').status().transferee).toBe('n2');
    c.stabilize();
    expect(c.sent.filter((m) => m.type === 'TimeoutNow')).toEqual([{ type: 'TimeoutNow', from: 'n1', to: 'n2', term: 1 }]);
    const votes = c.sent.filter((m): m is RequestVote => m.type === 'RequestVote' && m.from === 'n2');
    expect(votes.map((v) => [v.from, v.term, v.preVote, v.force])).toEqual([
      ['n2', 2, false, true],
      ['n2', 2, false, true],
    ]);
    expect(c.node('n2').status()).toMatchObject({ role: 'leader', term: 2 });
    expect(c.node('n1').status()).toMatchObject({ role: 'follower', term: 2, leader: 'n2', transferee: null });
    c.node('n2').propose([enc('b')]);
    c.stabilize();
    c.tick();
    for (const id of c.ids) expect(c.appliedData(id)).toEqual(['a', 'b']);
  });

  it('to a lagging follower: it is caught up first, and proposals are refused meanwhile', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.isolate('n3');
    for (let i = 0; i < 5; i++) c.node('n1').propose([enc(`c${i}`)]);
    c.stabilize();
    c.heal();
    c.dropIf = (m) => m.type === 'AppendEntries' && m.to === 'n3'; // still lagging when the transfer starts
    c.node('n1').transferLeadership('n3');
    c.stabilize();
    expect(c.countSent('TimeoutNow')).toBe(0);
    const e = thrown(() => c.node('n1').propose([enc('refused')]));
    expect(e).toMatchObject({ code: 'TRANSFER_IN_PROGRESS', leaderHint: 'n3' });
    expect(thrown(() => c.node('n1').proposeConfChange({ type: 'remove', node: 'n2' })).code).toBe('TRANSFER_IN_PROGRESS');
    c.dropIf = null;
    c.tickUntil(() => c.node('n3').status().role === 'leader', 20);
    expect(c.countSent('TimeoutNow')).toBe(1);
    expect(c.node('n3').status().term).toBe(2);
    c.node('n3').propose([enc('after')]);
    c.stabilize();
    c.tick();
    for (const id of c.ids) expect(c.appliedData(id)).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'after']);
  });

  it('aborts after an election timeout when the target cannot catch up; proposals resume', () => {
    const c = new Cluster(3, { electionTicks: 10 });
    c.elect('n1');
    c.node('n1').propose([enc('a')]);
    c.isolate('n2');
    c.stabilize();
    c.node('n1').transferLeadership('n2');
    for (let t = 0; t < 9; t++) {
      c.tick(['n1', 'n3']);
      expect(c.node('n1').status().transferee).toBe('n2');
    }
    c.tick(['n1', 'n3']);
    expect(c.node('n1').status()).toMatchObject({ role: 'leader', term: 1, transferee: null });
    c.node('n1').propose([enc('resumed')]);
    c.stabilize();
    c.tick(['n1', 'n3']);
    expect(c.appliedData('n3')).toEqual(['a', 'resumed']);
    expect(c.countSent('TimeoutNow')).toBe(0);
  });

  it('refuses a bad target; the same target again is a no-op, another one is refused', () => {
    const c = new Cluster(3);
    c.elect('n1');
    const n1 = c.node('n1');
    expect(thrown(() => n1.transferLeadership('n1')).code).toBe('BAD_REQUEST');
    expect(thrown(() => n1.transferLeadership('n9')).message).toMatch(/not a voter/);
    expect(thrown(() => c.node('n2').transferLeadership('n3'))).toMatchObject({ code: 'NOT_LEADER', leaderHint: 'n1' });
    c.isolate('n3');
    n1.transferLeadership('n3');
    n1.transferLeadership('n3');
    expect(thrown(() => n1.transferLeadership('n2')).code).toBe('TRANSFER_IN_PROGRESS');
  });

  it('a learner cannot be the target, and ignores a TimeoutNow', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.addNode('n4');
    const p = c.node('n1').proposeConfChange({ type: 'add-learner', node: 'n4' });
    c.tickUntil(() => c.node('n4').status().applied >= p.lastIndex);
    expect(thrown(() => c.node('n1').transferLeadership('n4')).message).toMatch(/not a voter/);
    c.node('n4').step({ type: 'TimeoutNow', from: 'n1', to: 'n4', term: c.node('n4').status().term });
    expect(c.node('n4').status().role).toBe('follower');
  });

  it('after TimeoutNow a lease-reading leader stops serving reads from its lease', () => {
    const c = new Cluster(3, { readMode: 'lease', electionTicks: 10, leaseDriftTicks: 2 });
    c.tickUntil(() => c.leader() !== null); // with leases, everyone must tick (see core-read.test.ts)
    const l = c.leader()!;
    const target = c.ids.find((id) => id !== l)!;
    c.tick();
    c.node(l).readIndex([1]);
    c.handleReadies();
    expect(c.readStates.get(l)).toEqual([{ requestId: 1, index: 1 }]); // served from the lease
    c.dropIf = (m) => m.type === 'TimeoutNow'; // the target never hears it: l stays leader
    c.node(l).transferLeadership(target);
    c.stabilize();
    c.node(l).readIndex([2]);
    c.handleReadies();
    expect(c.readStates.get(l)).toHaveLength(1); // not from the lease: it waits for a round
    c.tick([l]);
    expect(c.readStates.get(l)).toEqual([
      { requestId: 1, index: 1 },
      { requestId: 2, index: 1 },
    ]);
  });
});
