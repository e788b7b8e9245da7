// Log replication (§5.3), commitment (§5.4.2, Figure 8), flow control and the leader's bounds,
// as scenario transcripts over the in-memory cluster of core-helpers.ts.

import { describe, expect, it } from 'vitest';
import { isRaftError, RaftError } from '../src/core/errors.js';
import { ENTRY_OVERHEAD_BYTES } from '../src/core/log.js';
import type { AppendEntries, Entry, Message } from '../src/core/types.js';
import { Cluster, enc } from './core-helpers.js';

const entry = (index: number, term: number, data = ''): Entry => ({ index, term, type: data === '' ? 'noop' : 'normal', data: enc(data) });

function thrown(f: () => unknown): RaftError {
  try {
    f();
  } catch (e) {
    if (isRaftError(e)) return e;
    throw e;
  }
  throw new Error('expected a RaftError');
}

describe('replication', () => {
  it('commits proposals on every node, in order', () => {
    const c = new Cluster(3);
    c.elect('n1');
    for (const cmd of ['a', 'b', 'c']) c.node('n1').propose([enc(cmd)]);
    c.stabilize();
    c.tick(); // a heartbeat tells followers the final commit index
    for (const id of c.ids) expect(c.appliedData(id)).toEqual(['a', 'b', 'c']);
  });

  it('a batch proposal occupies consecutive indexes and travels in one AppendEntries per follower', () => {
    const c = new Cluster(3);
    c.elect('n1');
    const before = c.countSent('AppendEntries', (m) => (m as AppendEntries).entries.length > 0);
    const p = c.node('n1').propose(['a', 'b', 'c', 'd'].map(enc));
    expect(p).toEqual({ firstIndex: 2, lastIndex: 5, term: 1 });
    c.stabilize();
    expect(c.countSent('AppendEntries', (m) => (m as AppendEntries).entries.length > 0) - before).toBe(2);
    expect(c.appliedData('n1')).toEqual(['a', 'b', 'c', 'd']);
  });

  it('propose at a follower throws NOT_LEADER naming the leader; with no leader, NO_LEADER', () => {
    const c = new Cluster(3);
    expect(thrown(() => c.node('n2').propose([enc('x')])).code).toBe('NO_LEADER');
    c.elect('n1');
    const e = thrown(() => c.node('n2').propose([enc('x')]));
    expect(e.code).toBe('NOT_LEADER');
    expect(e.leaderHint).toBe('n1');
    expect(thrown(() => c.node('n1').propose([])).code).toBe('BAD_REQUEST');
  });

  it('a heartbeat carries commit = min(leader commit, follower match)', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.isolate('n3');
    c.node('n1').propose(['a', 'b', 'c'].map(enc));
    c.stabilize();
    c.heal();
    c.dropIf = (m) => m.type === 'AppendEntries'; // n3 hears only heartbeats
    c.tick(['n1']);
    const hb = c.sent.filter((m) => m.type === 'Heartbeat' && m.to === 'n3').at(-1);
    expect(c.node('n1').status().commit).toBe(4);
    expect(hb).toMatchObject({ commit: 1 });
  });

  it('a follower with 50 divergent entries is repaired in a few rounds thanks to the conflict hints', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.node('n1').propose([enc('a')]);
    c.stabilize();
    // n1 is cut off and takes 50 proposals that will never commit.
    c.isolate('n1');
    for (let i = 0; i < 50; i++) c.node('n1').propose([enc(`lost${i}`)]);
    c.stabilize();
    // n2 and n3 elect a new leader and commit 60 other entries, then hold a second election
    // (so the leader's nextIndex for n1 starts far beyond n1's log).
    c.tickUntil(() => c.leader() !== null && c.leader() !== 'n1', 200, ['n2', 'n3']);
    for (let i = 0; i < 60; i++) c.node(c.leader()!).propose([enc(`kept${i}`)]);
    c.stabilize();
    const first = c.leader()!;
    c.isolate(first);
    c.tickUntil(() => c.node(first).status().role !== 'leader', 100, [first]);
    c.isolated.delete(first);
    c.tickUntil(() => c.leader() !== null && c.leader() !== 'n1', 200, ['n2', 'n3']);
    const leader = c.leader()!;
    const leaderLog = c.node(leader).status();
    expect(leaderLog.lastIndex).toBe(2 + 1 + 60 + 1);
    // n1 comes back with 52 entries, 50 of them in conflict.
    expect(c.node('n1').status().lastIndex).toBe(52);
    c.heal();
    const rejectionsBefore = c.sent.length;
    c.tickUntil(() => c.node('n1').status().lastIndex === leaderLog.lastIndex && c.node('n1').status().lastTerm === leaderLog.lastTerm, 50);
    const rejections = c.sent
      .slice(rejectionsBefore)
      .filter((m) => m.type === 'AppendEntriesResponse' && m.from === 'n1' && !m.success);
    // Without hints it would take one round trip per divergent entry (about 60). With them, two:
    //   1. "my log is too short" (conflictTerm 0): the leader jumps to n1's last index + 1 = 53;
    //   2. "I hold term 1 at 52, from index 1 on": the leader's last term-1 entry is at 2, so it
    //      resumes at 3, where the logs match, and replaces everything after.
    expect(rejections).toMatchObject([
      { index: 63, conflictTerm: 0, conflictIndex: 53 },
      { index: 52, conflictTerm: 1, conflictIndex: 1 },
    ]);
    c.tick();
    expect(c.appliedData('n1')).toEqual(['a', ...Array.from({ length: 60 }, (_, i) => `kept${i}`)]);
  });

  it('Figure 8: an old-term entry stored on a majority is not committed by counting replicas (§5.4.2)', () => {
    // Figure 8 (c): S1 leads term 4 and has replicated index 2 (from term 2) to S2 and S3.
    // S5 holds a different index 2, from term 3.
    const c = new Cluster(5, { preVote: false, checkQuorum: false });
    const hs = { term: 3, vote: null, commit: 1 };
    c.load('n1', { hardState: hs, entries: [entry(1, 1, 'a'), entry(2, 2, 'b')] });
    c.load('n2', { hardState: hs, entries: [entry(1, 1, 'a'), entry(2, 2, 'b')] });
    c.load('n3', { hardState: hs, entries: [entry(1, 1, 'a')] });
    c.load('n4', { hardState: hs, entries: [entry(1, 1, 'a')] });
    c.load('n5', { hardState: hs, entries: [entry(1, 1, 'a'), entry(2, 3, 'c')] });
    c.isolate('n5');
    c.dropIf = (m) => m.type === 'AppendEntries' && m.from === 'n1'; // S1's term-4 entry reaches nobody
    c.elect('n1');
    expect(c.node('n1').status()).toMatchObject({ role: 'leader', term: 4, lastIndex: 3, lastTerm: 4 });
    // S1 sends index 2 alone to S3 (as a size-bounded message might); S2 and S3 acknowledge index 2.
    c.dropIf = null;
    c.node('n3').step({ type: 'AppendEntries', from: 'n1', to: 'n3', term: 4, prevLogIndex: 1, prevLogTerm: 1, entries: [entry(2, 2, 'b')], leaderCommit: 1 });
    c.node('n1').step({ type: 'AppendEntriesResponse', from: 'n2', to: 'n1', term: 4, success: true, index: 2, conflictTerm: 0, conflictIndex: 0 });
    c.handleReadies();
    c.inFlight = c.inFlight.filter((m) => m.to === 'n1' && m.type === 'AppendEntriesResponse');
    c.deliver();
    c.inFlight = [];
    // Index 2 is on S1, S2, S3 (a majority of 5), but it is from term 2: not committed.
    expect(c.node('n1').status().commit).toBe(1);
    // Figure 8 (d): S1 crashes; S5 is elected (its last term, 3, beats everyone's 2) and
    // overwrites index 2 everywhere. Had S1 committed it, that would lose a committed entry.
    c.isolate('n1');
    c.isolated.delete('n5');
    c.elect('n5');
    c.tick();
    for (const id of ['n2', 'n3', 'n4', 'n5']) {
      expect(c.disks.get(id)!.entries[1]).toMatchObject({ index: 2, term: 3 });
      expect(c.node(id).status().commit).toBe(3);
    }
  });

  it('Figure 8 (e): once a current-term entry is on a majority, earlier entries commit with it', () => {
    const c = new Cluster(5, { preVote: false, checkQuorum: false });
    const hs = { term: 3, vote: null, commit: 1 };
    c.load('n1', { hardState: hs, entries: [entry(1, 1, 'a'), entry(2, 2, 'b')] });
    c.load('n2', { hardState: hs, entries: [entry(1, 1, 'a'), entry(2, 2, 'b')] });
    c.load('n3', { hardState: hs, entries: [entry(1, 1, 'a')] });
    c.load('n4', { hardState: hs, entries: [entry(1, 1, 'a')] });
    c.load('n5', { hardState: hs, entries: [entry(1, 1, 'a'), entry(2, 3, 'c')] });
    c.isolate('n5');
    c.elect('n1');
    expect(c.node('n1').status().commit).toBe(3);
    expect(c.appliedData('n1')).toEqual(['a', 'b']);
    // S5 can no longer win: a majority holds a log more up-to-date than its own (§5.4.1).
    c.isolate('n1');
    c.isolated.delete('n5');
    for (let i = 0; i < 100; i++) c.tick(['n5']);
    expect(c.node('n5').status().role).not.toBe('leader');
  });
});

describe('flow control and bounds', () => {
  it('never has more than maxInflightMsgs AppendEntries in flight to one follower', () => {
    const c = new Cluster(3, { maxInflightMsgs: 4, maxMsgBytes: 1 });
    c.elect('n1');
    c.node('n1').propose(Array.from({ length: 40 }, (_, i) => enc(String(i % 10))));
    const inFlightTo = (to: string) => c.inFlight.filter((m) => m.type === 'AppendEntries' && m.to === to && m.entries.length > 0).length;
    c.handleReadies();
    expect(inFlightTo('n2')).toBe(4);
    expect(c.node('n1').status().progress['n2']).toMatchObject({ state: 'replicate', inflight: 4 });
    let rounds = 0;
    while (c.inFlight.length > 0) {
      c.deliver();
      expect(inFlightTo('n2')).toBeLessThanOrEqual(4);
      expect(inFlightTo('n3')).toBeLessThanOrEqual(4);
      rounds++;
    }
    expect(rounds).toBeGreaterThanOrEqual(10); // 40 one-entry messages, 4 at a time
    expect(c.node('n1').status().commit).toBe(41);
  });

  it('a probing leader sends one AppendEntries at a time until it finds the match', () => {
    const c = new Cluster(3, { maxMsgBytes: 1, preVote: false, checkQuorum: false });
    c.elect('n1');
    c.isolate('n3');
    c.node('n1').propose(Array.from({ length: 10 }, () => enc('x')));
    c.stabilize();
    // n1 restarts: it is elected again and starts every follower in probe state.
    c.heal();
    c.restart('n1');
    const votes = (m: Message) => m.type === 'RequestVote' || m.type === 'RequestVoteResponse';
    while (c.node('n1').status().role !== 'leader') {
      c.node('n1').tick();
      c.deliver(votes);
      c.deliver(votes);
    }
    // n3's log ends at 1 while the leader's nextIndex for it is 12: one probe, not a pipeline.
    const toN3 = () => c.inFlight.filter((m) => m.type === 'AppendEntries' && m.to === 'n3');
    expect(toN3()).toHaveLength(1);
    expect(toN3()[0]).toMatchObject({ prevLogIndex: 11, entries: [{ index: 12, type: 'noop' }] });
    expect(c.node('n1').status().progress['n3']).toMatchObject({ state: 'probe', next: 12 });
    c.deliver((m) => m.to === 'n3'); // rejected: n3's log is too short, hint conflictIndex 2
    c.deliver((m) => m.to === 'n1' && m.from === 'n3');
    expect(toN3()).toHaveLength(1);
    expect(toN3()[0]).toMatchObject({ prevLogIndex: 1, entries: [{ index: 2 }] });
    c.deliver((m) => m.to === 'n3'); // accepted: the match is found, replicate from here on
    c.deliver((m) => m.to === 'n1' && m.from === 'n3');
    expect(c.node('n1').status().progress['n3']).toMatchObject({ state: 'replicate', match: 2 });
    expect(toN3().length).toBeGreaterThan(1); // pipelined: one entry per message (maxMsgBytes 1)
    c.stabilize();
    expect(c.node('n3').status().lastIndex).toBe(12);
  });

  it('an AppendEntries carries at most maxMsgBytes of payload, but always at least one entry', () => {
    const c = new Cluster(3, { maxMsgBytes: 250 });
    c.elect('n1');
    c.node('n1').propose([100, 100, 100, 1000, 10].map((n) => new Uint8Array(n)));
    c.stabilize();
    const batches = c.sent
      .filter((m): m is AppendEntries => m.type === 'AppendEntries' && m.to === 'n2' && m.entries.length > 0)
      .map((m) => m.entries.map((e) => e.data.byteLength));
    expect(batches).toEqual([[0], [100, 100], [100], [1000], [10]]);
    expect(c.node('n2').status().lastIndex).toBe(6);
  });

  it('empty entries count ENTRY_OVERHEAD_BYTES each against maxMsgBytes, so their batches are bounded too', () => {
    const c = new Cluster(3, { maxMsgBytes: 4 * ENTRY_OVERHEAD_BYTES });
    c.elect('n1');
    c.node('n1').propose(Array.from({ length: 10 }, () => new Uint8Array(0)));
    c.stabilize();
    const counts = c.sent
      .filter((m): m is AppendEntries => m.type === 'AppendEntries' && m.to === 'n2' && m.entries.length > 0)
      .map((m) => m.entries.length);
    expect(counts).toEqual([1, 4, 4, 2]); // the no-op alone, then ten empty commands
  });

  it('a lost tail of the pipeline is noticed through heartbeat answers and sent again', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.dropIf = (m) => m.type === 'AppendEntries' && m.entries.length > 0;
    c.node('n1').propose([enc('a')]);
    c.stabilize();
    expect(c.node('n1').status().progress['n2']).toMatchObject({ state: 'replicate', match: 1, next: 3, inflight: 1 });
    c.dropIf = null;
    // After three heartbeat answers without progress: an empty AppendEntries at index 2 ->
    // rejected (the follower lacks entry 2) -> probe -> entry 2 is sent again.
    const ticks = c.tickUntil(() => c.node('n1').status().commit === 2, 10);
    expect(ticks).toBeGreaterThanOrEqual(3);
    expect(c.countSent('AppendEntries', (m) => m.type === 'AppendEntries' && m.to === 'n2' && m.entries.some((e) => e.index === 2))).toBe(1); // the lost copy is not counted as sent
    for (const id of c.ids) expect(c.appliedData(id)).toEqual(['a']);
  });

  it('a leader without a quorum fails proposals fast past maxUncommittedBytes', () => {
    const c = new Cluster(3, { maxUncommittedBytes: 100 });
    c.elect('n1');
    c.isolate('n2');
    c.isolate('n3');
    for (let i = 0; i < 10; i++) c.node('n1').propose([new Uint8Array(10)]);
    const e = thrown(() => c.node('n1').propose([new Uint8Array(10)]));
    expect(e.code).toBe('UNCOMMITTED_LIMIT');
    // Once the quorum is back and the backlog commits, proposals are accepted again.
    c.heal();
    c.tick();
    expect(c.node('n1').status().commit).toBe(11);
    expect(c.node('n1').propose([new Uint8Array(10)]).firstIndex).toBe(12);
  });
});

describe('restart', () => {
  it('a node restarted from its RestoredState keeps term, vote and log, and re-applies the committed log', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.node('n1').propose(['a', 'b'].map(enc));
    c.stabilize();
    c.tick();
    const before = c.ids.map((id) => c.node(id).status());
    for (const id of c.ids) c.restart(id);
    c.ids.forEach((id, i) => {
      const s = c.node(id).status();
      expect(s).toMatchObject({ role: 'follower', term: before[i]!.term, vote: before[i]!.vote, lastIndex: 3, lastTerm: 1, commit: 3 });
    });
    c.stabilize(); // committed entries are handed out again after a restart
    for (const id of c.ids) expect(c.appliedData(id)).toEqual(['a', 'b']);
    c.tickUntil(() => c.leader() !== null);
    c.node(c.leader()!).propose([enc('c')]);
    c.stabilize();
    c.tick();
    for (const id of c.ids) expect(c.appliedData(id)).toEqual(['a', 'b', 'c']);
  });

  it('rejects a restored state that breaks the log', () => {
    const c = new Cluster(1);
    const load = (commit: number, entries: Entry[]) => () => c.load('n1', { hardState: { term: 2, vote: null, commit }, entries });
    expect(load(0, [entry(1, 1), entry(3, 1)])).toThrow(/append of index 3 after last index 1/);
    expect(load(5, [entry(1, 1)])).toThrow(/restored commit 5 beyond last index 1/);
    expect(load(0, [entry(1, 2), entry(2, 1)])).toThrow(/terms never decrease/);
    expect(load(0, [entry(1, 3)])).toThrow(/after current term 2/);
  });
});
