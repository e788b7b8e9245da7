// The simulated driver's snapshot path (issue 3): compaction by policy, InstallSnapshot streamed
// in chunks with go-back-N flow control over the faulty network, resumption, failure reports,
// and the atomic switch-in — step by step on a small cluster, reading the trace.

import { describe, expect, it } from 'vitest';
import { isRaftError } from '../src/core/errors.js';
import type { NodeId } from '../src/core/types.js';
import { SimCluster } from '../src/sim/cluster.js';

const enc = new TextEncoder();

function leaderOf(c: SimCluster): NodeId {
  if (!c.runUntil(() => c.leaders().length === 1, 5_000)) throw new Error(`no leader:\n${c.timeline(30).join('\n')}`);
  return c.leaders()[0] as NodeId;
}

/** Proposes `count` commands at the leader and waits until `expected` nodes applied each. */
function commit(c: SimCluster, count: number, nodes: readonly NodeId[]): void {
  for (let k = 0; k < count; k++) {
    const leader = leaderOf(c);
    const r = c.propose(leader, enc.encode(`cmd-${c.now().toFixed(0)}-${k}`));
    if (isRaftError(r)) throw r;
    if (!c.runUntil(() => nodes.every((id) => c.appliedLog(id).length >= r.firstIndex), 5_000)) {
      throw new Error(`(${r.firstIndex}) not applied on ${nodes.join(',')}:\n${c.timeline(30).join('\n')}`);
    }
  }
}

function cluster(seed: number): SimCluster {
  return new SimCluster({ nodes: 3, seed, compaction: { everyEntries: 10, trailingEntries: 0 }, snapshotChunkBytes: 64, snapshotWindowChunks: 3 });
}

/** A follower of the current leader. */
function followerOf(c: SimCluster, leader: NodeId): NodeId {
  return c.ids.find((id) => id !== leader) as NodeId;
}

describe('snapshots in the simulator', () => {
  it('compacts by policy and keeps the durable log bounded', () => {
    const c = cluster(1);
    commit(c, 45, c.ids);
    for (const id of c.ids) {
      const snap = c.snapshot(id);
      expect(snap).not.toBeNull();
      expect(snap?.meta.index).toBeGreaterThanOrEqual(40);
      expect(c.durableFirstIndex(id)).toBe((snap?.meta.index ?? 0) + 1);
      expect(c.durableLog(id).length).toBeLessThan(12);
      // The image is exactly the state machine up to the snapshot.
      expect(snap?.image.length).toBe(snap?.meta.index);
    }
    c.checkInvariants();
  });

  it('a follower behind the compacted log catches up through a chunked stream, switched in atomically', () => {
    const c = cluster(2);
    commit(c, 5, c.ids);
    const leader = leaderOf(c);
    const lagger = followerOf(c, leader);
    c.disconnect(lagger);
    const others = c.ids.filter((id) => id !== lagger);
    commit(c, 40, others);
    const before = c.appliedLog(lagger).length;
    c.connect(lagger);
    expect(c.runUntil(() => c.snapshot(lagger) !== null && c.appliedLog(lagger).length >= c.appliedLog(leader).length, 5_000)).toBe(true);
    const t = c.trace();
    const start = t.find((l) => l.includes(`→${lagger} SNAPSHOT STREAM #`)) ?? '';
    const chunks = Number(/in (\d+) chunks/.exec(start)?.[1] ?? 0);
    expect(chunks).toBeGreaterThan(5); // a snapshot of ~45 entries in 64-byte chunks
    expect(t.some((l) => / SNAPSHOT STREAM #\d+ to n\d done$/.test(l))).toBe(true);
    expect(t.some((l) => l.includes(`${lagger} install snapshot (`))).toBe(true);
    expect(c.appliedLog(lagger).length).toBeGreaterThan(before);
    expect(c.durableFirstIndex(lagger)).toBeGreaterThan(1);
    c.checkInvariants();
  });

  it('lost chunks: the sender goes back to the first missing one, or the stream fails and the core retries', () => {
    const c = cluster(3);
    commit(c, 5, c.ids);
    const leader = leaderOf(c);
    const lagger = followerOf(c, leader);
    c.disconnect(lagger);
    commit(
      c,
      40,
      c.ids.filter((id) => id !== lagger),
    );
    c.setLinkUnreliable(leader, lagger, { drop: 0.3 });
    c.connect(lagger);
    expect(c.runUntil(() => c.snapshot(lagger) !== null, 20_000)).toBe(true);
    const t = c.trace();
    expect(t.some((l) => / LOST SnapshotChunk /.test(l))).toBe(true);
    c.setLinkUnreliable(leader, lagger, null);
    expect(c.runUntil(() => c.appliedLog(lagger).length >= c.appliedLog(leader).length, 5_000)).toBe(true);
    c.checkInvariants();
  });

  it('a stream that hears nothing fails: reportSnapshot(failed), then a new stream', () => {
    const c = cluster(4);
    commit(c, 5, c.ids);
    const leader = leaderOf(c);
    const lagger = followerOf(c, leader);
    c.disconnect(lagger);
    commit(
      c,
      40,
      c.ids.filter((id) => id !== lagger),
    );
    // Once the stream has started, the follower still hears the leader but nothing gets back:
    // every chunk acknowledgement is cut.
    c.connect(lagger);
    expect(c.runUntil(() => (c.trace().at(-1) ?? '').includes(`${leader}→${lagger} SNAPSHOT STREAM #`), 5_000)).toBe(true);
    c.blockLink(lagger, leader);
    expect(c.runUntil(() => c.trace().some((l) => / SNAPSHOT STREAM #\d+ to n\d failed: no answer/.test(l)), 5_000)).toBe(true);
    c.heal();
    expect(c.runUntil(() => c.appliedLog(lagger).length >= c.appliedLog(leader).length, 10_000)).toBe(true);
    const streams = c.trace().filter((l) => l.includes(`${leader}→${lagger} SNAPSHOT STREAM #`)).length;
    expect(streams).toBeGreaterThanOrEqual(2);
    c.checkInvariants();
  });

  it('a crash mid-install leaves the receiver on its old state; it restarts cleanly and installs later', () => {
    const c = cluster(5);
    commit(c, 5, c.ids);
    const leader = leaderOf(c);
    const lagger = followerOf(c, leader);
    c.disconnect(lagger);
    commit(
      c,
      40,
      c.ids.filter((id) => id !== lagger),
    );
    const oldLog = c.durableLog(lagger).slice();
    const oldApplied = c.appliedLog(lagger).length;
    c.connect(lagger);
    // Run until the follower holds part of the snapshot (its third chunk), then crash it.
    const third = new RegExp(`→${lagger} SnapshotChunk #\\d+ 3/`);
    expect(c.runUntil(() => third.test(c.trace().at(-1) ?? ''), 5_000)).toBe(true);
    c.crash(lagger);
    expect(c.snapshot(lagger)).toBeNull();
    expect(c.durableLog(lagger)).toEqual(oldLog);
    c.restart(lagger);
    expect(c.appliedLog(lagger).length).toBe(oldApplied);
    expect(c.runUntil(() => c.snapshot(lagger) !== null && c.appliedLog(lagger).length >= c.appliedLog(leader).length, 10_000)).toBe(true);
    c.checkInvariants();
  });

  it('a stream cut by a partition resumes where the receiver stopped', () => {
    const c = cluster(6);
    commit(c, 5, c.ids);
    const leader = leaderOf(c);
    const lagger = followerOf(c, leader);
    c.disconnect(lagger);
    commit(
      c,
      60,
      c.ids.filter((id) => id !== lagger),
    );
    c.connect(lagger);
    const fourth = new RegExp(`→${lagger} SnapshotChunk #(\\d+) 4/`);
    expect(c.runUntil(() => fourth.test(c.trace().at(-1) ?? ''), 5_000)).toBe(true);
    const firstStream = Number(fourth.exec(c.trace().at(-1) ?? '')?.[1]);
    c.disconnect(lagger);
    c.runFor(400); // the stream times out and fails
    c.connect(lagger);
    expect(c.runUntil(() => c.snapshot(lagger) !== null, 10_000)).toBe(true);
    // A later stream of the same snapshot delivered no chunk the receiver already had.
    const later = c
      .trace()
      .map((l) => new RegExp(`→${lagger} SnapshotChunk #(\\d+) (\\d+)/`).exec(l))
      .filter((m): m is RegExpExecArray => m !== null && Number(m[1]) > firstStream);
    expect(later.length).toBeGreaterThan(0);
    expect(Math.min(...later.map((m) => Number(m[2])))).toBeGreaterThan(4);
    c.checkInvariants();
  });
});
