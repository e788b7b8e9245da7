// Leader election (§5.2), PreVote (thesis §9.6) and CheckQuorum (thesis §6.2, §4.2.3), as
// scenario transcripts over the in-memory cluster of core-helpers.ts.

import { describe, expect, it } from 'vitest';
import { RaftNode } from '../src/core/raft.js';
import type { Entry } from '../src/core/types.js';
import { Cluster, enc } from './core-helpers.js';

describe('election', () => {
  it('a single-node cluster elects itself and commits its no-op and a proposal', () => {
    const c = new Cluster(1);
    c.tickUntil(() => c.node('n1').status().role === 'leader');
    expect(c.node('n1').status()).toMatchObject({ role: 'leader', term: 1, vote: 'n1', leader: 'n1', commit: 1, applied: 1 });
    const p = c.node('n1').propose([enc('x')]);
    expect(p).toEqual({ firstIndex: 2, lastIndex: 2, term: 1 });
    c.stabilize();
    expect(c.appliedData('n1')).toEqual(['x']);
    expect(c.disks.get('n1')!.hardState).toEqual({ term: 1, vote: 'n1', commit: 2 });
  });

  it('a 3-node cluster elects one leader, which commits its no-op everywhere', () => {
    const c = new Cluster(3);
    c.tickUntil(() => c.leader() !== null);
    const leader = c.leader()!;
    c.tick(); // one heartbeat round carries the commit index to everyone
    for (const id of c.ids) {
      const s = c.node(id).status();
      expect(s.term).toBe(1);
      expect(s.leader).toBe(leader);
      expect(s.commit).toBe(1);
      expect(c.applied.get(id)!.map((e) => e.type)).toEqual(['noop']);
    }
  });

  it('election timeouts are drawn from [electionTicks, 2*electionTicks)', () => {
    for (let seed = 0; seed < 50; seed++) {
      const n = new RaftNode({ id: 'a', peers: ['a', 'b', 'c'], randomSeed: seed, electionTicks: 10, preVote: false });
      let ticks = 0;
      while (n.status().role === 'follower') {
        n.tick();
        ticks++;
        expect(ticks).toBeLessThan(20);
      }
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(n.status()).toMatchObject({ role: 'candidate', term: 1, vote: 'a' });
    }
  });

  it('a candidate with a higher term takes over; the old leader steps down on seeing the term', () => {
    const c = new Cluster(3, { preVote: false, checkQuorum: false });
    c.elect('n1');
    expect(c.node('n1').status()).toMatchObject({ role: 'leader', term: 1 });
    // n1 goes away; n2 times out and wins term 2 with n3's vote.
    c.isolate('n1');
    c.elect('n2');
    expect(c.node('n2').status()).toMatchObject({ role: 'leader', term: 2 });
    expect(c.node('n3').status()).toMatchObject({ role: 'follower', term: 2, vote: 'n2', leader: 'n2' });
    // n1 still thinks it leads term 1; the first message from term 2 demotes it (§5.1).
    expect(c.node('n1').status()).toMatchObject({ role: 'leader', term: 1 });
    c.heal();
    c.tick();
    expect(c.node('n1').status()).toMatchObject({ role: 'follower', term: 2, leader: 'n2' });
  });

  it('a node votes at most once per term, and only for an up-to-date log (§5.2, §5.4.1)', () => {
    const c = new Cluster(3, { preVote: false, checkQuorum: false });
    c.elect('n1');
    c.node('n1').propose([enc('a')]);
    c.stabilize();
    // n3 misses an entry, then campaigns: its log is behind n2's, so n2 refuses.
    c.isolate('n3');
    c.node('n1').propose([enc('b')]);
    c.stabilize();
    c.heal();
    c.isolate('n1');
    c.tickUntil(() => c.node('n3').status().role === 'candidate', 100, ['n3']);
    c.stabilize();
    // n2 adopts term 2 (§5.1) but keeps its vote; n3 cannot win.
    expect(c.node('n3').status()).toMatchObject({ role: 'candidate', term: 2, vote: 'n3' });
    expect(c.node('n2').status()).toMatchObject({ role: 'follower', term: 2, vote: null });
    // Once n1 is back, an up-to-date node wins a later term.
    c.heal();
    c.tickUntil(() => c.leader() !== null && c.node(c.leader()!).status().term > 2);
    expect(c.leader()).not.toBe('n3');
  });

  it('a stale candidate campaigning again and again does not hold back the nodes that can win (Figure 2 timer rule)', () => {
    // n1 has a stale log and a clock running twice as fast, so it always times out first.
    // n2 and n3 refuse it; adopting its term must not restart their election timers.
    const c = new Cluster(3, { preVote: false, checkQuorum: false, electionTicks: 10 });
    const e = (index: number): Entry => ({ index, term: 1, type: 'normal', data: enc(String(index)) });
    c.load('n1', { hardState: { term: 1, vote: null, commit: 1 }, entries: [e(1)] });
    c.load('n2', { hardState: { term: 1, vote: null, commit: 2 }, entries: [e(1), e(2)] });
    c.load('n3', { hardState: { term: 1, vote: null, commit: 2 }, entries: [e(1), e(2)] });
    const ticks = c.tickUntil(() => {
      c.tick(['n1']); // n1 ticks twice per round
      return c.leader() !== null;
    }, 200);
    expect(c.leader()).not.toBe('n1');
    expect(ticks).toBeLessThan(60);
  });
});

describe('PreVote (thesis §9.6)', () => {
  it('a partitioned node that rejoins does not disrupt the leader: terms stay unchanged', () => {
    const c = new Cluster(3);
    c.elect('n1');
    const term = c.node('n1').status().term;
    c.isolate('n3');
    // n3 times out again and again, but its pre-votes go nowhere, so its term never rises.
    for (let i = 0; i < 100; i++) c.tick();
    expect(c.node('n3').status()).toMatchObject({ role: 'pre-candidate', term });
    c.heal();
    for (let i = 0; i < 50; i++) c.tick();
    for (const id of c.ids) expect(c.node(id).status()).toMatchObject({ term, leader: 'n1' });
    expect(c.node('n1').status().role).toBe('leader');
  });

  it('without PreVote the same rejoin forces a new election at a higher term', () => {
    const c = new Cluster(3, { preVote: false, checkQuorum: false });
    c.elect('n1');
    c.isolate('n3');
    for (let i = 0; i < 100; i++) c.tick();
    expect(c.node('n3').status().term).toBeGreaterThan(2);
    c.heal();
    c.tickUntil(() => c.leader() !== null && c.node(c.leader()!).status().term > 1);
    expect(c.node('n1').status().term).toBeGreaterThan(1);
  });

  it('a pre-vote changes no state at the voter', () => {
    const voter = new RaftNode({ id: 'b', peers: ['a', 'b', 'c'], randomSeed: 1 });
    voter.step({ type: 'RequestVote', from: 'a', to: 'b', term: 5, preVote: true, lastLogIndex: 0, lastLogTerm: 0 });
    expect(voter.status()).toMatchObject({ term: 0, vote: null, role: 'follower' });
    const rd = voter.ready();
    expect(rd.hardState).toBe(null);
    expect(rd.messages).toEqual([{ type: 'RequestVoteResponse', from: 'b', to: 'a', term: 5, preVote: true, granted: true }]);
  });

  it('a node that heard from its leader recently refuses pre-votes', () => {
    const c = new Cluster(3);
    c.elect('n1');
    const n2 = c.node('n2');
    n2.step({ type: 'RequestVote', from: 'n3', to: 'n2', term: 2, preVote: true, lastLogIndex: 10, lastLogTerm: 5 });
    const rd = n2.ready();
    expect(rd.messages).toEqual([{ type: 'RequestVoteResponse', from: 'n2', to: 'n3', term: 1, preVote: true, granted: false }]);
    n2.advance(rd);
  });
});

describe('CheckQuorum (thesis §6.2)', () => {
  it('an isolated leader steps down within an election timeout and fails its pending reads', () => {
    const c = new Cluster(3, { electionTicks: 10 });
    c.elect('n1');
    c.isolate('n1');
    c.node('n1').readIndex([7, 8]);
    const ticks = c.tickUntil(() => c.node('n1').status().role !== 'leader', 100, ['n1']);
    expect(ticks).toBeLessThanOrEqual(10);
    expect(c.node('n1').status()).toMatchObject({ role: 'follower', term: 1, leader: null });
    expect(c.failedReads.get('n1')!.map((f) => [f.requestId, f.code])).toEqual([
      [7, 'LEADERSHIP_LOST'],
      [8, 'LEADERSHIP_LOST'],
    ]);
    // A minority never keeps a leader; the majority elects a new one.
    c.tickUntil(() => c.leader() !== null, 200, ['n2', 'n3']);
    expect(c.node(c.leader()!).status().term).toBe(2);
  });

  it('a follower that hears from a leader ignores a vote request at a higher term (thesis §4.2.3)', () => {
    const c = new Cluster(3, { preVote: false });
    c.elect('n1');
    const n2 = c.node('n2');
    n2.step({ type: 'RequestVote', from: 'n3', to: 'n2', term: 9, preVote: false, lastLogIndex: 10, lastLogTerm: 5 });
    expect(n2.status()).toMatchObject({ term: 1, vote: 'n1', leader: 'n1' });
    expect(n2.hasReady()).toBe(false);
  });

  it('a healthy leader stays leader for a long time', () => {
    const c = new Cluster(5);
    c.elect('n1');
    for (let i = 0; i < 300; i++) c.tick();
    expect(c.leader()).toBe('n1');
    expect(c.node('n1').status().term).toBe(1);
  });
});
