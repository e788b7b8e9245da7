// Linearizable reads without log writes: ReadIndex (thesis §6.4), batched into heartbeat rounds;
// reads forwarded by followers; lease reads (thesis §6.4.1) as an opt-in; and the read bounds.

import { describe, expect, it } from 'vitest';
import type { Heartbeat } from '../src/core/types.js';
import { Cluster, enc } from './core-helpers.js';

const readRounds = (c: Cluster) => c.sent.filter((m): m is Heartbeat => m.type === 'Heartbeat' && m.readRound > 0);

describe('ReadIndex (thesis §6.4)', () => {
  it('many reads share one heartbeat round, and all get the commit index at its start', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.node('n1').propose([enc('a')]);
    c.stabilize();
    const ids = Array.from({ length: 100 }, (_, i) => i + 1);
    c.node('n1').readIndex(ids.slice(0, 50));
    c.node('n1').readIndex(ids.slice(50));
    c.stabilize();
    expect(c.readStates.get('n1')).toEqual(ids.map((requestId) => ({ requestId, index: 2 })));
    // One round: one heartbeat to each follower carrying the round number.
    expect(readRounds(c).map((m) => [m.to, m.readRound])).toEqual([
      ['n2', 1],
      ['n3', 1],
    ]);
  });

  it('reads that arrive while a round is in flight wait for the next round', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.node('n1').readIndex([1]);
    c.handleReadies(); // round 1 is out, unanswered
    c.node('n1').readIndex([2, 3]);
    c.node('n1').propose([enc('a')]); // commit moves on before round 2 starts
    c.handleReadies();
    expect(readRounds(c)).toHaveLength(2); // still only round 1
    c.stabilize();
    expect(c.readStates.get('n1')).toEqual([
      { requestId: 1, index: 1 },
      { requestId: 2, index: 2 },
      { requestId: 3, index: 2 },
    ]);
    expect(readRounds(c).map((m) => m.readRound)).toEqual([1, 1, 2, 2]);
  });

  it('a new leader serves no read until its no-op has committed', () => {
    const c = new Cluster(3);
    c.dropIf = (m) => m.type === 'AppendEntries'; // the no-op cannot replicate
    c.elect('n1');
    c.node('n1').readIndex([1]);
    c.stabilize();
    c.tick();
    expect(c.readStates.get('n1')).toEqual([]);
    expect(readRounds(c)).toEqual([]);
    c.dropIf = null;
    c.tickUntil(() => c.node('n1').status().commit === 1, 10);
    expect(c.readStates.get('n1')).toEqual([{ requestId: 1, index: 1 }]);
  });

  it('a round without a quorum of answers serves nothing', () => {
    const c = new Cluster(5);
    c.elect('n1');
    c.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);
    c.node('n1').readIndex([1]);
    for (let i = 0; i < 5; i++) c.tick(['n1']);
    expect(c.readStates.get('n1')).toEqual([]);
  });

  it('a single-node leader confirms a read round by itself', () => {
    const c = new Cluster(1);
    c.elect('n1');
    c.node('n1').readIndex([9]);
    c.stabilize();
    expect(c.readStates.get('n1')).toEqual([{ requestId: 9, index: 1 }]);
  });

  it('a follower forwards reads to the leader and gets the read index back', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.node('n1').propose([enc('a'), enc('b')]);
    c.stabilize();
    c.node('n2').readIndex([41, 42]);
    c.stabilize();
    expect(c.sent.filter((m) => m.type === 'ReadIndex')).toEqual([{ type: 'ReadIndex', from: 'n2', to: 'n1', term: 1, requestIds: [41, 42] }]);
    expect(c.readStates.get('n2')).toEqual([
      { requestId: 41, index: 3 },
      { requestId: 42, index: 3 },
    ]);
    expect(c.readStates.get('n1')).toEqual([]);
  });

  it('a follower with no leader fails reads with NO_LEADER; a lost leader fails them with LEADERSHIP_LOST', () => {
    const c = new Cluster(3);
    c.node('n2').readIndex([1]);
    c.handleReadies();
    expect(c.failedReads.get('n2')!.map((f) => f.code)).toEqual(['NO_LEADER']);
    c.elect('n1');
    c.isolate('n1');
    c.node('n2').readIndex([2]);
    c.tickUntil(() => c.node('n2').status().leader !== 'n1', 100, ['n2', 'n3']);
    expect(c.failedReads.get('n2')!.map((f) => [f.requestId, f.code])).toEqual([
      [1, 'NO_LEADER'],
      [2, 'LEADERSHIP_LOST'],
    ]);
  });

  it('a forwarded read whose answer is lost times out at the follower', () => {
    const c = new Cluster(3, { checkQuorum: false, electionTicks: 10 });
    c.elect('n1');
    c.dropIf = (m) => m.type === 'ReadIndex';
    c.node('n2').readIndex([5]);
    for (let i = 0; i < 19; i++) c.tick();
    expect(c.failedReads.get('n2')).toEqual([]);
    c.tick();
    expect(c.failedReads.get('n2')!.map((f) => [f.requestId, f.code])).toEqual([[5, 'NO_LEADER']]);
  });

  it('reads past maxPendingReads fail with READ_QUEUE_FULL', () => {
    const c = new Cluster(3, { maxPendingReads: 3 });
    c.elect('n1');
    c.isolate('n1'); // rounds cannot complete
    c.node('n1').readIndex([1, 2, 3, 4, 5]);
    c.handleReadies();
    expect(c.failedReads.get('n1')!.map((f) => [f.requestId, f.code])).toEqual([
      [4, 'READ_QUEUE_FULL'],
      [5, 'READ_QUEUE_FULL'],
    ]);
    c.heal();
    c.node('n2').readIndex([6, 7, 8, 9]);
    c.handleReadies();
    expect(c.failedReads.get('n2')!.map((f) => [f.requestId, f.code])).toEqual([[9, 'READ_QUEUE_FULL']]);
  });
});

describe('lease reads (thesis §6.4.1, opt-in)', () => {
  const lease = { readMode: 'lease', electionTicks: 10, leaseDriftTicks: 2 } as const;

  /** With lease reads, nodes refuse votes for one election timeout after starting: tick everyone. */
  function electAnyone(c: Cluster): string {
    c.tickUntil(() => c.leader() !== null);
    return c.leader()!;
  }

  it('are served at the commit index without a heartbeat round while the lease holds', () => {
    const c = new Cluster(3, lease);
    const l = electAnyone(c);
    const f = c.ids.find((id) => id !== l)!;
    c.tick(); // a heartbeat round: the leader hears from a quorum
    const sentBefore = c.sent.length;
    c.node(l).readIndex([1, 2]);
    c.handleReadies();
    expect(c.readStates.get(l)).toEqual([
      { requestId: 1, index: 1 },
      { requestId: 2, index: 1 },
    ]);
    expect(c.sent.length).toBe(sentBefore); // no messages at all
    // A follower's read is answered from the lease too (one request, one answer).
    c.node(f).readIndex([3]);
    c.stabilize();
    expect(c.readStates.get(f)).toEqual([{ requestId: 3, index: 1 }]);
    expect(readRounds(c)).toEqual([]);
  });

  it('fall back to a ReadIndex round once the lease has expired', () => {
    const c = new Cluster(3, { ...lease, checkQuorum: false });
    const l = electAnyone(c);
    c.tick();
    c.isolate(l);
    for (let i = 0; i < 8; i++) c.tick([l]); // 8 = electionTicks - leaseDriftTicks ticks since hearing from a quorum
    c.node(l).readIndex([1]);
    c.handleReadies();
    expect(c.readStates.get(l)).toEqual([]);
    c.heal();
    c.stabilize(); // the round's heartbeats were lost; the next heartbeat carries the round again
    c.tick([l]);
    expect(c.readStates.get(l)).toEqual([{ requestId: 1, index: 1 }]);
    expect(readRounds(c).length).toBeGreaterThan(0);
  });

  it('a restarted node refuses to vote for one election timeout, so it cannot cut a lease short', () => {
    const c = new Cluster(3, { ...lease, preVote: false });
    const l = electAnyone(c);
    const [a, b] = c.ids.filter((id) => id !== l) as [string, string];
    c.restart(b);
    c.isolate(l);
    // `a` times out and asks `b`, which has just restarted: no vote for electionTicks ticks.
    c.tickUntil(() => c.node(a).status().role === 'candidate', 100, [a]);
    c.stabilize();
    expect(c.node(b).status()).toMatchObject({ term: 1, vote: l }); // the request was ignored
    expect(c.node(a).status().role).toBe('candidate');
    for (let i = 0; i < 10; i++) c.tick([b]);
    c.tickUntil(() => c.node(a).status().role === 'leader' || c.node(b).status().role === 'leader', 100, [a, b]);
  });
});
