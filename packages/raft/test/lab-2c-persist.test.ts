// Lab 2C: persistence, crashes, and an unreliable network, as scenarios over the simulator.
//
// The simulator's crash loses every write a node had not yet synced, which is harsher than the
// lab's (whose persister keeps whatever was saved). What Raft must keep across a crash (Figure 2,
// "Persistent state on all servers"): currentTerm, votedFor, and the log, on stable storage
// before responding to RPCs. Rules exercised, beyond 2A/2B:
// - Figure 2 / §5.1: a server that restarts remembers its term and vote, so it cannot vote twice
//   in a term, and its log, so a committed entry it helped commit is not forgotten (§5.4).
// - §5.4.2 and Figure 8: a leader must not commit an entry of an earlier term by counting
//   replicas; only an entry of its own term commits, carrying the older ones with it.
// - §5.5: RPCs are idempotent, so lost, duplicated and reordered messages are harmless.
// - State Machine Safety (Figure 3): the simulator checks after every step that no two servers
//   apply different entries at one index; these scenarios try hard to break it.

import { describe, expect, test } from 'vitest';
import { bytesEqual, cmd, cmdValue, firstSeeds, forSeeds, OneOp, withLab, type Lab } from './lab-harness.js';

function randCmd(lab: Lab): number {
  return lab.rng.nextU32() >>> 1;
}

/**
 * The lab's unreliable network: about 10% of messages lost and short random delays (which
 * reorder messages). We also duplicate a few, which the lab's network does not.
 */
const UNRELIABLE = { drop: 0.1, duplicate: 0.02, delayMs: [0, 27] as const };

describe('lab 2C: persistence', () => {
  test('Persist1', () => {
    forSeeds(firstSeeds(10), (seed) => {
      withLab(3, seed, {}, (lab) => {
        const n = lab.servers;
        lab.one(cmd(11), n, true);

        // Crash and restart everyone: the committed entry and the terms survive (Figure 2).
        for (let i = 0; i < n; i++) lab.start1(i);
        for (let i = 0; i < n; i++) lab.connect(i);
        lab.one(cmd(12), n, true);

        // Crash and restart the leader.
        const leader1 = lab.checkOneLeader();
        lab.crash1(leader1);
        lab.start1(leader1);
        lab.connect(leader1);
        lab.one(cmd(13), n, true);

        // The leader is cut off; the others commit without it; it restarts and catches up.
        const leader2 = lab.checkOneLeader();
        lab.disconnect(leader2);
        const i14 = lab.one(cmd(14), n - 1, true);
        lab.start1(leader2);
        lab.connect(leader2);
        lab.wait(i14, n, -1); // leader2 must have rejoined before another server goes

        // A follower is cut off, misses an entry, restarts, and catches up.
        const i3 = (lab.checkOneLeader() + 1) % n;
        lab.disconnect(i3);
        lab.one(cmd(15), n - 1, true);
        lab.start1(i3);
        lab.connect(i3);
        lab.one(cmd(16), n, true);
      });
    });
  });

  test('Persist2', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(5, seed, {}, (lab) => {
        const n = lab.servers;
        let value = 1;
        for (let iter = 0; iter < 5; iter++) {
          lab.one(cmd(10 + value++), n, true);

          // Two followers go away; three (a majority) still commit.
          const leader1 = lab.checkOneLeader();
          lab.disconnect((leader1 + 1) % n);
          lab.disconnect((leader1 + 2) % n);
          lab.one(cmd(10 + value++), n - 2, true);

          // The three that committed go away; the two that missed the entry restart. Two of five
          // are a minority: they cannot elect anyone (§5.2), however long they wait.
          lab.disconnect((leader1 + 0) % n);
          lab.disconnect((leader1 + 3) % n);
          lab.disconnect((leader1 + 4) % n);
          lab.start1((leader1 + 1) % n);
          lab.start1((leader1 + 2) % n);
          lab.connect((leader1 + 1) % n);
          lab.connect((leader1 + 2) % n);
          lab.sleep(lab.electionTimeoutMs);

          // A server that holds the committed entries restarts and joins. The three are a majority,
          // and only the rejoined one can win: the other two lack the last committed entry and it
          // will not vote for a less up-to-date log (election restriction, §5.4.1).
          lab.start1((leader1 + 3) % n);
          lab.connect((leader1 + 3) % n);
          lab.one(cmd(10 + value++), n - 2, true);

          lab.connect((leader1 + 4) % n);
          lab.connect((leader1 + 0) % n);
        }
        lab.one(cmd(1000), n, true);
      });
    });
  });

  test('Persist3', () => {
    forSeeds(firstSeeds(10), (seed) => {
      withLab(3, seed, {}, (lab) => {
        const n = lab.servers;
        lab.one(cmd(101), n, true);

        // One server is cut off; 102 commits on the other two only.
        const leader = lab.checkOneLeader();
        lab.disconnect((leader + 2) % n);
        const i102 = lab.one(cmd(102), 2, true);

        // Both servers that hold 102 crash. The cut-off one (without 102) returns, and the old
        // leader restarts. 102 was committed, so it was on stable storage at a majority before
        // being acknowledged (Figure 2); the restarted leader still has it, and by the election
        // restriction (§5.4.1) the server without it cannot win against a more up-to-date log.
        lab.crash1((leader + 0) % n);
        lab.crash1((leader + 1) % n);
        lab.connect((leader + 2) % n);
        lab.start1((leader + 0) % n);
        lab.connect((leader + 0) % n);
        lab.one(cmd(103), 2, true);

        // 102 is still at its index on the two live servers (Leader Completeness, §5.4).
        const at102 = lab.nCommitted(i102);
        expect(at102.count, 'committed entry 102 lost after a crash').toBeGreaterThanOrEqual(2);
        expect(bytesEqual(at102.data, cmd(102)), 'committed entry 102 replaced after a crash').toBe(true);

        lab.start1((leader + 1) % n);
        lab.connect((leader + 1) % n);
        lab.one(cmd(104), n, true);
      });
    });
  });

  // Figure 8 of the paper: a leader crashes right after accepting commands, over and over, so
  // logs diverge in many terms. The rule under test is §5.4.2: a new leader must not commit an
  // entry from an earlier term by counting replicas, or a later leader could overwrite a
  // "committed" entry. The simulator's State Machine Safety check fails at once if it happens.
  test('Figure8', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(5, seed, {}, (lab) => {
        const n = lab.servers;
        lab.one(cmd(randCmd(lab)), 1, true);
        let nup = n;
        for (let iter = 0; iter < 1000; iter++) {
          let leader = -1;
          for (let i = 0; i < n; i++) {
            if (lab.isAlive(i) && lab.start(i, cmd(randCmd(lab))).isLeader) leader = i;
          }
          // Mostly a few ms (the leader may or may not have replicated); sometimes half an
          // election timeout (time for a new election and a few commits).
          if (lab.rng.int(1000) < 100) lab.sleep(lab.rng.int(lab.electionTimeoutMs / 2));
          else lab.sleep(lab.rng.int(13));

          if (leader !== -1) {
            lab.crash1(leader);
            nup--;
          }
          if (nup < 3) {
            const s = lab.rng.int(n);
            if (!lab.isAlive(s)) {
              lab.start1(s);
              lab.connect(s);
              nup++;
            }
          }
        }
        for (let i = 0; i < n; i++) {
          if (!lab.isAlive(i)) {
            lab.start1(i);
            lab.connect(i);
          }
        }
        // Liveness after the faults stop: everyone agrees on a new command.
        lab.one(cmd(randCmd(lab)), n, true);
      });
    });
  });

  test('UnreliableAgree', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(5, seed, {}, (lab) => {
        const n = lab.servers;
        lab.cluster.setUnreliable(UNRELIABLE);
        // 49 rounds of four concurrent clients plus one more; the lab's goroutines are OneOps polled
        // while simulated time advances. Each command needs to be committed on one server only.
        for (let iter = 1; iter < 50; iter++) {
          for (let j = 0; j < 4; j++) lab.spawn(new OneOp(lab, cmd(100 * iter + j), 1, true));
          lab.one(cmd(iter), 1, true);
        }
        lab.cluster.setUnreliable(null);
        lab.joinBackground();
        lab.one(cmd(100), n, true);
      });
    });
  });

  // Figure 8 again, on an unreliable network with long reorderings: leaders are cut off (not
  // crashed) right after accepting commands, so stale leaders and stale messages abound.
  test('Figure8Unreliable', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(5, seed, {}, (lab) => {
        const n = lab.servers;
        lab.cluster.setUnreliable(UNRELIABLE);
        lab.one(cmd(randCmd(lab) % 10000), 1, true);
        let nup = n;
        for (let iter = 0; iter < 1000; iter++) {
          if (iter === 200) {
            // Long reorderings: every message is delayed uniformly in [0, 100] ms, so a message
            // may arrive long after dozens of newer ones (the lab delays two thirds of the replies by
            // 200-2200 ms). Here a round trip may take a full minimum election timeout (10 ticks),
            // the edge of Raft's timing requirement broadcastTime << electionTimeout (§5.6): much
            // longer uniform delays make progress a matter of luck, not of correctness.
            lab.cluster.setUnreliable({ ...UNRELIABLE, delayMs: [0, lab.electionTimeoutMs / 2] });
          }
          let leader = -1;
          for (let i = 0; i < n; i++) {
            if (lab.start(i, cmd(randCmd(lab) % 10000)).isLeader && lab.isConnected(i)) leader = i;
          }
          if (lab.rng.int(1000) < 100) lab.sleep(lab.rng.int(lab.electionTimeoutMs / 2));
          else lab.sleep(lab.rng.int(13));

          if (leader !== -1 && lab.rng.int(1000) < 500) {
            lab.disconnect(leader);
            nup--;
          }
          if (nup < 3) {
            const s = lab.rng.int(n);
            if (!lab.isConnected(s)) {
              lab.connect(s);
              nup++;
            }
          }
        }
        for (let i = 0; i < n; i++) if (!lab.isConnected(i)) lab.connect(i);
        // Liveness: with everyone connected (the network still unreliable), a command commits on
        // all five.
        lab.one(cmd(randCmd(lab) % 10000), n, true);
      });
    });
  });

  test('ReliableChurn', () => {
    forSeeds(firstSeeds(8), (seed) => {
      withLab(5, seed, {}, (lab) => churn(lab, false));
    });
  });

  test('UnreliableChurn', () => {
    forSeeds(firstSeeds(8), (seed) => {
      withLab(5, seed, {}, (lab) => churn(lab, true));
    });
  });
});

/**
 * A client of the churn test (the lab's cfn goroutine): proposes a random value to every live
 * server, and if one accepted, looks a few times whether that index was committed; if it was
 * committed with its value, it remembers the value. Times are the lab's, scaled to our election
 * timeout.
 */
class ChurnClient {
  readonly committed: number[] = [];
  done = false;
  stop = false;
  private phase: 'idle' | 'waiting' = 'idle';
  private value = 0;
  private index = -1;
  private step = 0;
  private nextAtMs = 0;
  private readonly scale: number;

  constructor(
    private readonly lab: Lab,
    private readonly me: number,
  ) {
    this.scale = lab.electionTimeoutMs / 1000;
  }

  poll(): void {
    if (this.done) return;
    const lab = this.lab;
    const now = lab.now();
    if (now < this.nextAtMs) return;
    if (this.phase === 'idle') {
      if (this.stop) {
        this.done = true;
        return;
      }
      this.value = randCmd(lab);
      let index = -1;
      for (let i = 0; i < lab.servers; i++) {
        if (!lab.isAlive(i)) continue;
        const r = lab.start(i, cmd(this.value));
        if (r.isLeader) index = r.index;
      }
      if (index === -1) {
        this.nextAtMs = now + (79 + this.me * 17) * this.scale;
        return;
      }
      this.phase = 'waiting';
      this.index = index;
      this.step = 0;
    }
    // Maybe the leader will commit our value, maybe not; do not wait forever.
    const { count, data } = lab.nCommitted(this.index);
    if (count > 0) {
      if (cmdValue(data) === this.value) this.committed.push(this.value);
      this.phase = 'idle';
      return;
    }
    const backoffMs = [10, 20, 50, 100, 200][this.step++];
    if (backoffMs === undefined) {
      this.phase = 'idle';
      return;
    }
    this.nextAtMs = now + backoffMs * this.scale;
  }
}

/**
 * The lab's churn: three clients propose continuously while servers are disconnected,
 * reconnected, crashed and restarted at random. At the end everything heals, and every value a
 * client saw committed must be in the final log on every server: a committed entry is never
 * lost, whatever happened (Leader Completeness, §5.4; durability across crashes, Figure 2).
 */
function churn(lab: Lab, unreliable: boolean): void {
  const n = lab.servers;
  if (unreliable) lab.cluster.setUnreliable(UNRELIABLE);
  const clients = [0, 1, 2].map((me) => lab.spawn(new ChurnClient(lab, me)));

  // The lab does 20 rounds of 0.7 election timeouts; simulated time is cheap, so we do 60.
  for (let iter = 0; iter < 60; iter++) {
    if (lab.rng.int(1000) < 200) lab.disconnect(lab.rng.int(n));
    if (lab.rng.int(1000) < 500) {
      const i = lab.rng.int(n);
      if (!lab.isAlive(i)) lab.start1(i);
      lab.connect(i);
    }
    if (lab.rng.int(1000) < 200) {
      const i = lab.rng.int(n);
      if (lab.isAlive(i)) lab.crash1(i);
    }
    // Often enough that peers rarely settle, rarely enough that they often catch up.
    lab.sleep((lab.electionTimeoutMs * 7) / 10);
  }

  lab.sleep(lab.electionTimeoutMs);
  lab.cluster.setUnreliable(null);
  for (let i = 0; i < n; i++) {
    if (!lab.isAlive(i)) lab.start1(i);
    lab.connect(i);
  }
  for (const c of clients) c.stop = true;
  lab.joinBackground();
  const values = clients.flatMap((c) => c.committed);

  lab.sleep(lab.electionTimeoutMs);
  const lastIndex = lab.one(cmd(randCmd(lab)), n, true);
  const really = new Set<number>();
  for (let index = 1; index <= lastIndex; index++) {
    const got = lab.wait(index, n, -1);
    const v = got === null ? null : cmdValue(got.data);
    if (v !== null) really.add(v);
  }
  expect(values.length, 'no client saw any value committed: the churn was too harsh to test anything').toBeGreaterThan(0);
  for (const v of values) {
    expect(really.has(v), `value ${v} was seen committed by a client but is not in the final log`).toBe(true);
  }
  // The driver's view: every proposal acknowledged to a client (applied at its proposer with the
  // proposal's term) is the entry every server applied at that index.
  for (const ack of lab.cluster.acknowledged()) {
    if (ack.index > lastIndex) continue;
    const at = lab.nCommitted(ack.index);
    expect(at.count, `acknowledged entry (${ack.index},${ack.term}) not applied everywhere`).toBe(n);
    expect(bytesEqual(at.data, ack.data), `acknowledged entry (${ack.index},${ack.term}) was replaced`).toBe(true);
  }
}
