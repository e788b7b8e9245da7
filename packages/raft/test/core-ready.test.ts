// The Ready/advance handshake between the core and its driver (see Ready in core/types.ts):
// what is handed out when, what counts only after advance(), and the loud failures when the
// protocol is broken.

import { describe, expect, it } from 'vitest';
import { MAX_COMMITTED_BYTES_PER_READY } from '../src/core/log.js';
import { RaftNode } from '../src/core/raft.js';
import type { Entry } from '../src/core/types.js';
import { Cluster, enc } from './core-helpers.js';

const single = () => new RaftNode({ id: 'a', peers: ['a'], randomSeed: 7, electionTicks: 3 });

/** Ticks a single-node cluster until it leads, handling every Ready; returns it. */
function singleLeader(): RaftNode {
  const n = single();
  while (n.status().role !== 'leader') n.tick();
  while (n.hasReady()) n.advance(n.ready());
  return n;
}

describe('Ready / advance', () => {
  it('a leader counts its own entries toward commit only after advance() (they are then durable)', () => {
    const n = singleLeader();
    expect(n.status()).toMatchObject({ commit: 1, applied: 1 });
    n.propose([enc('x')]);
    const rd1 = n.ready();
    expect(rd1.entries.map((e) => e.index)).toEqual([2]);
    expect(rd1.committedEntries).toEqual([]); // not durable yet, so not committed
    expect(n.status().commit).toBe(1);
    n.advance(rd1);
    expect(n.status().commit).toBe(2);
    const rd2 = n.ready();
    expect(rd2.entries).toEqual([]);
    expect(rd2.hardState).toEqual({ term: 1, vote: 'a', commit: 2 });
    expect(rd2.committedEntries.map((e) => e.index)).toEqual([2]);
    n.advance(rd2);
    expect(n.status().applied).toBe(2);
    expect(n.hasReady()).toBe(false);
  });

  it('hands out hardState only when it changed, and each entry once', () => {
    const n = singleLeader();
    n.propose([enc('x')]);
    const rd1 = n.ready();
    expect(rd1.hardState).toBe(null); // term, vote and commit unchanged since the last Ready
    expect(rd1.softState).toBe(null);
    n.advance(rd1);
    n.propose([enc('y')]);
    const rd2 = n.ready();
    expect(rd2.entries.map((e) => e.index)).toEqual([3]);
    expect(rd2.committedEntries.map((e) => e.index)).toEqual([2]);
    n.advance(rd2);
  });

  it('a follower may apply entries in the same Ready that persists them', () => {
    const f = new RaftNode({ id: 'b', peers: ['a', 'b', 'c'], randomSeed: 1 });
    const entries: Entry[] = [
      { index: 1, term: 1, type: 'noop', data: new Uint8Array() },
      { index: 2, term: 1, type: 'normal', data: enc('x') },
    ];
    f.step({ type: 'AppendEntries', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries, leaderCommit: 2 });
    const rd = f.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: null, commit: 2 });
    expect(rd.entries).toEqual(entries);
    expect(rd.committedEntries).toEqual(entries);
    expect(rd.softState).toEqual({ role: 'follower', leader: 'a', term: 1 });
    expect(rd.messages).toEqual([
      { type: 'AppendEntriesResponse', from: 'b', to: 'a', term: 1, success: true, index: 2, conflictTerm: 0, conflictIndex: 0 },
    ]);
    f.advance(rd);
    expect(f.status()).toMatchObject({ commit: 2, applied: 2, lastIndex: 2 });
  });

  it('a suffix cut while its Ready is outstanding is rewritten by the next Ready', () => {
    const f = new RaftNode({ id: 'b', peers: ['a', 'b', 'c'], randomSeed: 1 });
    const e = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: enc(`${index}@${term}`) });
    f.step({ type: 'AppendEntries', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [e(1, 1), e(2, 1), e(3, 1)], leaderCommit: 1 });
    const rd1 = f.ready(); // entries 1..3 on their way to disk
    // Meanwhile a new leader of term 2 overwrites index 2 and 3.
    f.step({ type: 'AppendEntries', from: 'c', to: 'b', term: 2, prevLogIndex: 1, prevLogTerm: 1, entries: [e(2, 2)], leaderCommit: 1 });
    expect(f.hasReady()).toBe(false); // one Ready at a time
    f.advance(rd1);
    const rd2 = f.ready();
    expect(rd2.entries).toEqual([e(2, 2)]); // the driver replaces its stored suffix from index 2
    expect(f.status()).toMatchObject({ lastIndex: 2, lastTerm: 2, term: 2 });
    f.advance(rd2);
  });

  it('protocol violations fail loudly', () => {
    const n = singleLeader();
    n.propose([enc('x')]);
    const rd = n.ready();
    expect(() => n.ready()).toThrow(/before advance/);
    expect(() => n.advance({ ...rd })).toThrow(/not handed out/);
    n.advance(rd);
    expect(() => n.advance(rd)).toThrow(/not handed out/);
  });

  it('hands out at most MAX_COMMITTED_BYTES_PER_READY of committed entries per Ready (always at least one)', () => {
    const big = (index: number): Entry => ({ index, term: 1, type: 'normal', data: new Uint8Array(9 * 1024 * 1024) });
    const n = new RaftNode({ id: 'a', peers: ['a'], randomSeed: 1 }, { hardState: { term: 1, vote: 'a', commit: 3 }, entries: [big(1), big(2), big(3)] });
    const batches: number[][] = [];
    while (n.hasReady()) {
      const rd = n.ready();
      batches.push(rd.committedEntries.map((e) => e.index));
      n.advance(rd);
    }
    expect(MAX_COMMITTED_BYTES_PER_READY).toBeLessThan(2 * 9 * 1024 * 1024);
    expect(batches).toEqual([[1], [2], [3]]);
  });

  it('a restarted node hands out its committed log again (its state machine starts empty)', () => {
    const c = new Cluster(1);
    c.elect('n1');
    c.node('n1').propose([enc('a'), enc('b')]);
    c.stabilize();
    c.restart('n1');
    const rd = c.node('n1').ready();
    expect(rd.entries).toEqual([]);
    expect(rd.hardState).toBe(null);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2, 3]);
    c.node('n1').advance(rd);
  });
});

describe('terms (§5.1)', () => {
  it('a stale leader is answered with the current term, and steps down on hearing it', () => {
    const c = new Cluster(3, { preVote: false, checkQuorum: false });
    c.elect('n1');
    c.isolate('n1');
    c.elect('n2');
    c.heal();
    c.node('n1').propose([enc('stale')]);
    c.handleReadies();
    c.deliver((m) => m.from === 'n1'); // n1's AppendEntries of term 1 reach term-2 nodes
    const answers = c.inFlight.filter((m) => m.to === 'n1');
    expect(answers.length).toBeGreaterThan(0);
    for (const m of answers) expect(m).toMatchObject({ type: 'AppendEntriesResponse', term: 2, success: false });
    c.deliver();
    expect(c.node('n1').status()).toMatchObject({ role: 'follower', term: 2 });
    c.stabilize();
    c.tick();
    expect(c.appliedData('n1')).toEqual([]); // the stale proposal was overwritten, never applied
  });

  it('ignores messages from non-members and messages addressed to others', () => {
    const n = new RaftNode({ id: 'b', peers: ['a', 'b', 'c'], randomSeed: 1 });
    n.step({ type: 'RequestVote', from: 'x', to: 'b', term: 5, preVote: false, lastLogIndex: 9, lastLogTerm: 9 });
    n.step({ type: 'RequestVote', from: 'a', to: 'c', term: 5, preVote: false, lastLogIndex: 9, lastLogTerm: 9 });
    expect(n.status()).toMatchObject({ term: 0, vote: null });
    expect(n.hasReady()).toBe(false);
  });

  it('Count: an agreement costs a bounded number of messages', () => {
    const c = new Cluster(3);
    c.elect('n1');
    const before = c.sent.length;
    c.node('n1').propose([enc('a')]);
    c.stabilize();
    // To each follower: AppendEntries + answer, then the commit index + answer.
    expect(c.sent.length - before).toBe(8);
    const before10 = c.sent.length;
    c.node('n1').propose(Array.from({ length: 10 }, (_, i) => enc(String(i))));
    c.stabilize();
    expect(c.sent.length - before10).toBe(8); // a batch costs the same
  });
});
