// Membership changes and leadership transfer, as scenarios over the simulator (issue 3).
//
// The core changes membership one server at a time (thesis §4.1): a `config` entry takes effect
// on each server as soon as it is in that server's log, one change is in flight at a time, and a
// leader proposes none before it has committed an entry of its own term (the 2015 fix). New
// servers join as learners — they receive the log (here often through InstallSnapshot, since
// the others compact) but never vote — and are promoted once caught up (thesis §4.2.1). Rules
// exercised:
// - §4.1: any majority of the old voters and any majority of the new ones overlap; the
//   simulator checks after every step that adjacent-term leaders' configurations overlap and
//   that every leader had votes from a majority of ITS configuration's voters.
// - §4.2.2: a removed leader keeps leading until the removal commits (without counting itself),
//   then steps down; a removed server does not disrupt the cluster (PreVote, thesis §4.2.3).
// - A change proposed on the minority side of a partition never commits there, and is undone
//   (its configuration reverts) when the partition heals.
// - §3.10: leadership transfer — the leader stops taking proposals, brings the target up to
//   date, sends TimeoutNow; used here for a rolling restart without failed client proposals.

import { describe, expect, test } from 'vitest';
import { isRaftError } from '../src/core/errors.js';
import type { NodeId } from '../src/core/types.js';
import { cmd, firstSeeds, forSeeds, withLab, type Lab, type LabOptions } from './lab-harness.js';

const COMPACTING: LabOptions = { compaction: { everyEntries: 10, trailingEntries: 2 }, snapshotChunkBytes: 64 };

function randCmd(lab: Lab): number {
  return lab.rng.nextU32() >>> 1;
}

function voters(lab: Lab): string[] {
  return [...lab.config().voters].sort();
}

/** Commits `count` commands on every server that is usable and a member. */
function commitSome(lab: Lab, count: number): number {
  const members = lab.config().voters.length + lab.config().learners.length;
  let last = 0;
  for (let k = 0; k < count; k++) last = lab.one(cmd(randCmd(lab)), members, true);
  return last;
}

describe('membership: single-server changes (thesis §4.1) and learners', () => {
  test('grows a 1-node cluster to 5, each new server a learner first, promoted once caught up', () => {
    forSeeds(firstSeeds(4), (seed) => {
      withLab(1, seed, { ...COMPACTING, spareNodes: 4 }, (lab) => {
        commitSome(lab, 25); // enough that the first server has compacted: joiners need a snapshot
        expect(lab.snapshotIndex(0)).toBeGreaterThan(0);
        for (let i = 1; i < 5; i++) {
          const id = lab.id(i);
          lab.startNew(i);
          lab.changeMembership({ type: 'add-learner', node: id });
          expect(lab.config().learners).toContain(id);
          // §4.2.1: catch up before gaining a vote (here through InstallSnapshot + appends).
          const leader = lab.checkOneLeader();
          lab.waitApplied(i, lab.status(leader).commit);
          lab.changeMembership({ type: 'promote', node: id });
          expect(voters(lab)).toEqual(lab.cluster.ids.slice(0, i + 1).slice().sort());
          commitSome(lab, 6);
        }
        expect(lab.config().learners).toEqual([]);
        expect(lab.traceCount(/ install snapshot \(\d+,\d+\)/)).toBeGreaterThanOrEqual(4);
        // Every server applies the same entries; a new command commits on all five.
        lab.one(cmd(randCmd(lab)), 5, true);
      });
    });
  });

  test('removing the leader: it leads until the removal commits, then steps down and stays quiet (§4.2.2)', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(5, seed, COMPACTING, (lab) => {
        commitSome(lab, 5);
        const old = lab.checkOneLeader();
        const oldId = lab.id(old);
        const termBefore = lab.status(old).term;
        lab.changeMembership({ type: 'remove', node: oldId }); // proposed at, and applied by, the old leader
        const next = lab.checkOneLeader();
        expect(next).not.toBe(old);
        expect(lab.status(old).role).not.toBe('leader');
        expect(lab.config().voters).not.toContain(oldId);
        // The removed server is still running and connected: it must not disrupt the others
        // (it knows it is removed and never campaigns; PreVote would stop it anyway).
        const term = lab.status(next).term;
        lab.sleep(20 * lab.electionTimeoutMs);
        expect(lab.status(next).role).toBe('leader');
        expect(lab.status(next).term).toBe(term);
        expect(term).toBeGreaterThan(termBefore);
        // The other four commit without it.
        lab.disconnect(old);
        lab.one(cmd(randCmd(lab)), 4, true);
      });
    });
  });

  test('replacing a crashed server: remove it, add a fresh one as learner, promote it', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(5, seed, { ...COMPACTING, spareNodes: 1 }, (lab) => {
        commitSome(lab, 12);
        const leader = lab.checkOneLeader();
        const dead = (leader + 2) % 5;
        lab.crash1(dead);
        // Four of five still commit; the others compact past the dead one.
        for (let k = 0; k < 12; k++) lab.one(cmd(randCmd(lab)), 4, true);
        lab.changeMembership({ type: 'remove', node: lab.id(dead) });
        lab.startNew(5);
        lab.changeMembership({ type: 'add-learner', node: lab.id(5) });
        lab.waitApplied(5, lab.status(lab.checkOneLeader()).commit);
        lab.changeMembership({ type: 'promote', node: lab.id(5) });
        const expected = lab.cluster.ids.filter((id) => id !== lab.id(dead)).sort();
        expect(voters(lab)).toEqual(expected);
        lab.one(cmd(randCmd(lab)), 5, true);
      });
    });
  });

  test('a learner never votes: a lone voter with a learner cannot elect itself', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(3, seed, { ...COMPACTING, spareNodes: 1 }, (lab) => {
        commitSome(lab, 5);
        lab.startNew(3);
        lab.changeMembership({ type: 'add-learner', node: lab.id(3) });
        lab.waitApplied(3, lab.status(lab.checkOneLeader()).commit);
        // Two of the three voters go down. The remaining voter plus the learner are two servers,
        // but only one voter: no majority of {n1,n2,n3} can be formed, whatever the learner says.
        const leader = lab.checkOneLeader();
        const survivor = (leader + 1) % 3;
        for (let i = 0; i < 3; i++) if (i !== survivor) lab.crash1(i);
        lab.sleep(20 * lab.electionTimeoutMs);
        expect(lab.status(survivor).role).not.toBe('leader');
        expect(lab.status(3).role).toBe('follower'); // a learner never campaigns
        expect(lab.traceCount(/ n4 is (pre-)?candidate/)).toBe(0);
        // A second voter back: a leader again, and the learner catches up.
        const back = (survivor + 1) % 3;
        lab.start1(back);
        lab.connect(back);
        const idx = lab.one(cmd(randCmd(lab)), 3, true);
        lab.waitApplied(3, idx);
        expect(lab.config().learners).toEqual([lab.id(3)]);
      });
    });
  });

  test('a change proposed on the minority side of a partition never commits there, and is undone', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(5, seed, COMPACTING, (lab) => {
        commitSome(lab, 5);
        const old = lab.checkOneLeader();
        const buddy = (old + 1) % 5;
        const victim = lab.id((old + 3) % 5);
        // The leader and one follower on one side, three servers on the other.
        const minority = [lab.id(old), lab.id(buddy)];
        const majority = lab.cluster.ids.filter((id) => !minority.includes(id));
        lab.cluster.partition([minority, majority]);
        const r = lab.cluster.proposeConfChange(lab.id(old), { type: 'remove', node: victim });
        if (isRaftError(r)) return lab.fail(`the old leader refused the change: ${r.code}`);
        // It takes effect in the minority's logs at once (§4.1), but cannot commit there.
        lab.sleep(10 * lab.electionTimeoutMs);
        expect(lab.status(old).config.voters).not.toContain(victim);
        expect(lab.status(old).commit).toBeLessThan(r.firstIndex);
        for (const id of lab.cluster.ids) expect(lab.cluster.appliedLog(id)[r.firstIndex - 1]?.type).not.toBe('config');
        // Meanwhile the majority elects a leader and commits without the minority.
        let committedOnMajority = 0;
        for (let k = 0; k < 3; k++) {
          const ok = lab.waitFor(() => majority.some((id) => lab.cluster.status(id).role === 'leader'), 10 * lab.electionTimeoutMs);
          if (!ok) lab.fail('the majority side elected no leader');
          const l = majority.find((id) => lab.cluster.status(id).role === 'leader') as NodeId;
          const p = lab.cluster.propose(l, cmd(randCmd(lab)));
          if (!isRaftError(p)) {
            lab.waitFor(() => lab.cluster.appliedLog(l).length >= p.firstIndex, 2_000);
            committedOnMajority = Math.max(committedOnMajority, p.firstIndex);
          }
        }
        expect(committedOnMajority).toBeGreaterThanOrEqual(r.firstIndex);
        // Heal: the minority's uncommitted config entry is overwritten, its configuration reverts.
        lab.cluster.heal();
        lab.one(cmd(randCmd(lab)), 5, true);
        for (let i = 0; i < 5; i++) {
          expect(lab.status(i).config.voters).toContain(victim);
          expect(lab.cluster.appliedLog(lab.id(i)).every((e) => e.type !== 'config')).toBe(true);
        }
      });
    });
  });
});

/**
 * A client for the rolling restart: proposes one command at a time at the node it believes
 * leads, follows NOT_LEADER / TRANSFER_IN_PROGRESS hints (a redirect, not a failure), and waits
 * until its command is applied at that index. A proposal the core ACCEPTED fails if another entry
 * ends up at its index (dropped) or its node goes down before applying it.
 */
class RollingClient {
  done = false;
  acked = 0;
  readonly failures: string[] = [];
  private target: NodeId;
  private pending: { node: NodeId; index: number; term: number } | null = null;
  private nextAtMs = 0;
  stopped = false;

  constructor(private readonly lab: Lab) {
    this.target = lab.id(0);
  }

  /** Nodes holding an accepted, not yet applied proposal of this client. */
  pendingAt(): NodeId | null {
    return this.pending?.node ?? null;
  }

  poll(): void {
    const c = this.lab.cluster;
    if (this.pending !== null) {
      const p = this.pending;
      const e = c.appliedLog(p.node)[p.index - 1];
      if (e !== undefined) {
        if (e.term === p.term) this.acked++;
        else this.failures.push(`(${p.index},${p.term}) at ${p.node} dropped: ${e.term}`);
        this.pending = null;
      } else if (!c.isUp(p.node)) {
        this.failures.push(`(${p.index},${p.term}) lost: ${p.node} went down first`);
        this.pending = null;
      }
      return;
    }
    if (this.stopped) {
      this.done = true;
      return;
    }
    if (this.lab.now() < this.nextAtMs) return;
    const r = c.propose(this.target, cmd(this.acked + 1_000_000));
    if (isRaftError(r)) {
      // Redirect: to the hinted leader (or the transfer's target), else try the next server.
      const hint = r.leaderHint;
      this.target = hint !== null && hint !== this.target ? hint : this.lab.id((this.lab.index(this.target) + 1) % this.lab.servers);
      this.nextAtMs = this.lab.now() + (r.code === 'TRANSFER_IN_PROGRESS' ? 10 : 5);
      return;
    }
    this.pending = { node: this.target, index: r.firstIndex, term: r.term };
  }
}

describe('leadership transfer (thesis §3.10)', () => {
  test('rolling restart of every server (a leader first hands over by transfer) with no failed client proposal', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(5, seed, COMPACTING, (lab) => {
        commitSome(lab, 3);
        const client = lab.spawn(new RollingClient(lab));
        lab.sleep(200);
        const order = [...Array(5).keys()];
        const transfersBefore = lab.countByType('TimeoutNow');
        for (const i of order) {
          // A graceful shutdown: a leader first hands leadership to an up-to-date follower.
          if (lab.status(i).role === 'leader') {
            const to = lab.id((i + 1) % 5);
            const err = lab.cluster.transferLeadership(lab.id(i), to);
            if (err !== null) lab.fail(`transfer refused: ${err.code} ${err.message}`);
            if (!lab.waitFor(() => lab.status(i).role !== 'leader' && lab.cluster.leaders().length === 1, 10 * lab.electionTimeoutMs)) {
              lab.fail(`leadership did not move away from ${lab.id(i)}`);
            }
          }
          // Drain: the client's accepted proposal at this server (if any) is applied first.
          if (!lab.waitFor(() => client.pendingAt() !== lab.id(i), 5_000)) lab.fail(`${lab.id(i)} did not drain`);
          lab.crash1(i);
          lab.start1(i);
          lab.connect(i);
          const leader = lab.checkOneLeader();
          lab.waitApplied(i, lab.status(leader).commit);
          lab.sleep(100);
        }
        client.stopped = true;
        lab.joinBackground();
        expect(client.failures).toEqual([]);
        expect(client.acked).toBeGreaterThan(20);
        expect(lab.countByType('TimeoutNow')).toBeGreaterThan(transfersBefore);
        lab.one(cmd(randCmd(lab)), 5, true);
      });
    });
  });
});
