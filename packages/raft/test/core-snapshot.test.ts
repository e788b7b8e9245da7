// Snapshots and log compaction (§7; thesis §5): the driver saves a snapshot of its state machine
// and the core discards the log before it; a follower that needs discarded entries gets the
// snapshot instead (InstallSnapshot: metadata through the core, data through the driver); a node
// restarts from its snapshot. Scenario transcripts over the in-memory cluster of core-helpers.ts,
// whose "driver" keeps the snapshot data (the applied entries) beside each InstallSnapshot.

import { describe, expect, it } from 'vitest';
import { RaftNode } from '../src/core/raft.js';
import type { AppendEntriesResponse, Entry, Message } from '../src/core/types.js';
import { Cluster, enc, thrown } from './core-helpers.js';

const entry = (index: number, term: number, data = ''): Entry => ({ index, term, type: data === '' ? 'noop' : 'normal', data: enc(data) });
const cmds = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** n1 leads a 3-node cluster; n3 misses `lagging` commands, then n1 compacts its whole applied log. */
function laggingFollower(lagging: number, keepEntries = 0): Cluster {
  const c = new Cluster(3);
  c.elect('n1');
  c.node('n1').propose([enc('early')]);
  c.stabilize();
  c.tick();
  c.isolate('n3');
  for (const cmd of cmds('x', lagging)) c.node('n1').propose([enc(cmd)]);
  c.stabilize();
  c.tick(['n1']);
  c.compact('n1', undefined, keepEntries);
  return c;
}

describe('compaction', () => {
  it('discards entries up to the snapshot; the log continues after it', () => {
    const c = laggingFollower(10);
    // Index 1 is the no-op, 2 'early', 3..12 the ten commands: all applied, all compacted.
    expect(c.node('n1').status()).toMatchObject({ applied: 12, snapshotIndex: 12, firstIndex: 13, lastIndex: 12, lastTerm: 1 });
    expect(c.disks.get('n1')!.snapshot!.meta).toEqual({ index: 12, term: 1, config: { voters: ['n1', 'n2', 'n3'], learners: [] } });
    c.node('n1').propose([enc('after')]);
    c.stabilize();
    expect(c.node('n1').status()).toMatchObject({ commit: 13, firstIndex: 13 });
    expect(c.appliedData('n2')).toEqual(['early', ...cmds('x', 10), 'after']);
  });

  it('keeps a trailing window for slow followers: a follower just behind catches up from entries, not a snapshot', () => {
    const c = laggingFollower(3, 5);
    expect(c.node('n1').status()).toMatchObject({ snapshotIndex: 5, firstIndex: 1 });
    c.heal();
    c.tickUntil(() => c.appliedData('n3').length === 4);
    expect(c.countSent('InstallSnapshot')).toBe(0);
    expect(c.appliedData('n3')).toEqual(['early', 'x0', 'x1', 'x2']);
  });

  it('refuses to compact past applied, or to discard past the snapshot; an older snapshot changes nothing', () => {
    const c = laggingFollower(4);
    const n1 = c.node('n1');
    expect(thrown(() => n1.compact(7)).code).toBe('BAD_REQUEST'); // applied is 6
    expect(thrown(() => n1.compact(6, 7)).code).toBe('BAD_REQUEST');
    expect(thrown(() => n1.snapshotMetaAt(3)).code).toBe('BAD_REQUEST'); // before the latest snapshot
    expect(n1.compact(3)).toEqual({ index: 6, term: 1, config: { voters: ['n1', 'n2', 'n3'], learners: [] } });
    expect(n1.status()).toMatchObject({ snapshotIndex: 6, firstIndex: 7 });
  });
});

describe('InstallSnapshot', () => {
  it('a follower behind the compacted log catches up by snapshot, then by entries', () => {
    const c = laggingFollower(10);
    c.heal();
    c.tickUntil(() => c.node('n3').status().applied === 12);
    // One snapshot went out, with the metadata only; the driver carried the data.
    expect(c.sent.filter((m) => m.type === 'InstallSnapshot')).toEqual([
      { type: 'InstallSnapshot', from: 'n1', to: 'n3', term: 1, meta: { index: 12, term: 1, config: { voters: ['n1', 'n2', 'n3'], learners: [] } } },
    ]);
    expect(c.installed).toEqual([{ id: 'n3', meta: expect.objectContaining({ index: 12 }) }]);
    expect(c.node('n3').status()).toMatchObject({ commit: 12, applied: 12, snapshotIndex: 12, firstIndex: 13 });
    expect(c.node('n1').status().progress['n3']).toMatchObject({ match: 12, state: 'replicate' });
    // The follower answered with the snapshot's index.
    const answers = c.sent.filter((m): m is AppendEntriesResponse => m.type === 'AppendEntriesResponse' && m.from === 'n3' && m.success);
    expect(answers.map((m) => m.index)).toContain(12);
    c.node('n1').propose([enc('after')]);
    c.stabilize();
    c.tick();
    expect(c.appliedData('n3')).toEqual(['early', ...cmds('x', 10), 'after']);
    expect(c.countSent('InstallSnapshot')).toBe(1);
  });

  it('the Ready that installs a snapshot carries it first, with commit = its index, and nothing at or below it to apply', () => {
    const f = new RaftNode({ id: 'b', peers: ['a', 'b', 'c'], randomSeed: 3 });
    f.step({ type: 'InstallSnapshot', from: 'a', to: 'b', term: 2, meta: { index: 40, term: 2, config: { voters: ['a', 'b', 'c'], learners: [] } } });
    const rd = f.ready();
    expect(rd.snapshot).toEqual({ index: 40, term: 2, config: { voters: ['a', 'b', 'c'], learners: [] } });
    expect(rd.hardState).toEqual({ term: 2, vote: null, commit: 40 });
    expect(rd.entries).toEqual([]);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages).toEqual([{ type: 'AppendEntriesResponse', from: 'b', to: 'a', term: 2, success: true, index: 40, conflictTerm: 0, conflictIndex: 0 }]);
    f.advance(rd);
    expect(f.status()).toMatchObject({ applied: 40, commit: 40, lastIndex: 40, lastTerm: 2, firstIndex: 41, leader: 'a' });
    // The log continues after the snapshot.
    f.step({ type: 'AppendEntries', from: 'a', to: 'b', term: 2, prevLogIndex: 40, prevLogTerm: 2, entries: [entry(41, 2, 'y')], leaderCommit: 41 });
    const rd2 = f.ready();
    expect(rd2.snapshot).toBe(null);
    expect(rd2.entries.map((e) => e.index)).toEqual([41]);
    expect(rd2.committedEntries.map((e) => e.index)).toEqual([41]);
  });

  it('a stale snapshot (at or below the commit index) is ignored and answered with the commit index', () => {
    const f = new RaftNode({ id: 'b', peers: ['a', 'b', 'c'], randomSeed: 3 });
    f.step({ type: 'AppendEntries', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [1, 2, 3, 4, 5].map((i) => entry(i, 1, `e${i}`)), leaderCommit: 5 });
    f.advance(f.ready());
    f.step({ type: 'InstallSnapshot', from: 'a', to: 'b', term: 1, meta: { index: 3, term: 1, config: { voters: ['a', 'b', 'c'], learners: [] } } });
    const rd = f.ready();
    expect(rd.snapshot).toBe(null);
    expect(rd.messages).toEqual([{ type: 'AppendEntriesResponse', from: 'b', to: 'a', term: 1, success: true, index: 5, conflictTerm: 0, conflictIndex: 0 }]);
    expect(f.status()).toMatchObject({ commit: 5, lastIndex: 5, firstIndex: 1 });
  });

  it('a snapshot whose last entry the follower holds keeps the log after it and only commits (§7)', () => {
    const f = new RaftNode({ id: 'b', peers: ['a', 'b', 'c'], randomSeed: 3 });
    f.step({ type: 'AppendEntries', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [1, 2, 3, 4, 5].map((i) => entry(i, 1, `e${i}`)), leaderCommit: 1 });
    f.advance(f.ready());
    f.step({ type: 'InstallSnapshot', from: 'a', to: 'b', term: 1, meta: { index: 4, term: 1, config: { voters: ['a', 'b', 'c'], learners: [] } } });
    const rd = f.ready();
    expect(rd.snapshot).toBe(null);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2, 3, 4]);
    expect(f.status()).toMatchObject({ commit: 4, lastIndex: 5, firstIndex: 1 });
  });

  it('an AppendEntries reaching into the compacted prefix is accepted for its new part', () => {
    const f = new RaftNode({ id: 'b', peers: ['a', 'b', 'c'], randomSeed: 3 });
    f.step({ type: 'InstallSnapshot', from: 'a', to: 'b', term: 1, meta: { index: 5, term: 1, config: { voters: ['a', 'b', 'c'], learners: [] } } });
    f.advance(f.ready());
    // A delayed message from before the snapshot: entries 4..7, of which 6 and 7 are new.
    f.step({ type: 'AppendEntries', from: 'a', to: 'b', term: 1, prevLogIndex: 3, prevLogTerm: 1, entries: [4, 5, 6, 7].map((i) => entry(i, 1, `e${i}`)), leaderCommit: 7 });
    const rd = f.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([6, 7]);
    expect(rd.messages).toMatchObject([{ type: 'AppendEntriesResponse', success: true, index: 7 }]);
    // One entirely inside the prefix is acknowledged without change.
    f.advance(rd);
    f.step({ type: 'AppendEntries', from: 'a', to: 'b', term: 1, prevLogIndex: 1, prevLogTerm: 1, entries: [2, 3].map((i) => entry(i, 1, `e${i}`)), leaderCommit: 7 });
    expect(f.ready().messages).toMatchObject([{ type: 'AppendEntriesResponse', success: true, index: 3 }]);
  });

  it('a lost snapshot is reported failed and sent again; nothing else goes to that follower meanwhile', () => {
    const c = laggingFollower(6);
    c.heal();
    let dropped = 0;
    c.dropIf = (m) => m.type === 'InstallSnapshot' && dropped++ < 2;
    c.tickUntil(() => c.node('n3').status().applied === 8, 100);
    expect(c.countSent('InstallSnapshot')).toBe(1); // two were dropped before this one got through
    expect(dropped).toBe(3);
    expect(c.appliedData('n3')).toEqual(['early', ...cmds('x', 6)]);
  });

  it('while a snapshot is out, only heartbeats go to that follower', () => {
    const c = laggingFollower(6);
    c.heal();
    // Deliver everything but InstallSnapshot, which is held back ("being streamed").
    const held: Message[] = [];
    const pump = () => {
      c.handleReadies();
      for (let round = 0; round < 100 && c.inFlight.length > 0; round++) {
        held.push(...c.inFlight.filter((m) => m.type === 'InstallSnapshot'));
        c.inFlight = c.inFlight.filter((m) => m.type !== 'InstallSnapshot');
        c.deliver();
      }
    };
    for (let t = 0; t < 20 && held.length === 0; t++) {
      c.node('n1').tick();
      pump();
    }
    expect(held).toHaveLength(1);
    expect(c.node('n1').status().progress['n3']).toMatchObject({ state: 'snapshot', match: 2 });
    const before = c.sent.length;
    c.node('n1').propose([enc('meanwhile')]);
    for (let t = 0; t < 5; t++) {
      c.node('n1').tick();
      pump();
    }
    const toN3 = c.sent.slice(before).filter((m) => m.to === 'n3');
    expect(new Set(toN3.map((m) => m.type))).toEqual(new Set(['Heartbeat']));
    expect(c.appliedData('n2')).toContain('meanwhile');
    // The stream completes: n3 gets the snapshot, then the entry after it.
    c.stepMessage(held[0]!);
    c.stabilize();
    c.tick();
    expect(c.appliedData('n3')).toEqual(['early', ...cmds('x', 6), 'meanwhile']);
  });

  it('the leader probes again after reportSnapshot(failed), and ignores reports for followers not waiting for one', () => {
    const c = laggingFollower(3);
    c.heal();
    let dropped = 0;
    c.dropIf = (m) => m.type === 'InstallSnapshot' && ++dropped > 0;
    c.tickUntil(() => dropped === 1, 20, ['n1']);
    expect(c.node('n1').status().progress['n3']).toMatchObject({ state: 'probe', match: 2 }); // its loss was reported
    c.node('n1').reportSnapshot('n2', 'failed'); // n2 is replicating: ignored
    expect(c.node('n1').status().progress['n2']).toMatchObject({ state: 'replicate' });
    c.node('n2').reportSnapshot('n3', 'ok'); // not a leader: ignored
  });
});

describe('restart from a snapshot', () => {
  it('a leader restarts from its snapshot and the entries after it; applied starts at the snapshot', () => {
    const c = laggingFollower(4, 2);
    c.node('n1').propose([enc('tail')]);
    c.stabilize();
    c.heal();
    c.restart('n1');
    // The state machine is the snapshot's data; the entries after it are applied again.
    // Stored entries 5..7 survived compaction (a window of 2); the first one serves as the offset.
    expect(c.node('n1').status()).toMatchObject({ applied: 6, snapshotIndex: 6, firstIndex: 6, lastIndex: 7 });
    c.tickUntil(() => c.leader() !== null && c.node(c.leader()!).status().commit >= 8);
    c.tick();
    expect(c.appliedData('n1')).toEqual(['early', ...cmds('x', 4), 'tail']);
    expect(c.appliedData('n3')).toEqual(['early', ...cmds('x', 4), 'tail']);
  });

  it('a follower that installed a snapshot restarts from it', () => {
    const c = laggingFollower(5);
    c.heal();
    c.tickUntil(() => c.node('n3').status().applied === 7);
    c.restart('n3');
    expect(c.node('n3').status()).toMatchObject({ applied: 7, commit: 7, snapshotIndex: 7, firstIndex: 8 });
    expect(c.appliedData('n3')).toEqual(['early', ...cmds('x', 5)]);
    c.node('n1').propose([enc('more')]);
    c.stabilize();
    c.tick();
    expect(c.appliedData('n3')).toEqual(['early', ...cmds('x', 5), 'more']);
  });

  it('restored entries must hold the snapshot entry when they reach back before it', () => {
    const snapshot = { index: 3, term: 2, config: { voters: ['a'], learners: [] } };
    expect(() => new RaftNode({ id: 'a', peers: ['a'], randomSeed: 1 }, { hardState: { term: 2, vote: 'a', commit: 3 }, entries: [entry(2, 1), entry(3, 1)], snapshot })).toThrow(/snapshot's entry/);
    const ok = new RaftNode({ id: 'a', peers: ['a'], randomSeed: 1 }, { hardState: { term: 2, vote: 'a', commit: 3 }, entries: [entry(2, 1), entry(3, 2), entry(4, 2)], snapshot });
    expect(ok.status()).toMatchObject({ applied: 3, commit: 3, firstIndex: 3, lastIndex: 4, snapshotIndex: 3 });
  });
});
