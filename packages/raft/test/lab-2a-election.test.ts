// Lab 2A: leader election, as scenarios over the deterministic simulator.
//
// The rules exercised (Raft paper, Ongaro & Ousterhout 2014; thesis = Ongaro 2014):
// - §5.2: a follower that hears nothing for a randomized election timeout campaigns; a candidate
//   that wins votes from a majority becomes leader and heartbeats to keep its followers.
// - §5.2 / Figure 3 "Election Safety": at most one leader per term.
// - thesis §9.6 PreVote: a node that cannot win does not bump its term, so a partitioned node
//   that rejoins does not depose a healthy leader.
// - thesis §6.2 CheckQuorum: a leader that cannot hear from a majority steps down, so a minority
//   never keeps a leader (checkNoLeader below).

import { describe, expect, test } from 'vitest';
import { firstSeeds, forSeeds, withLab } from './lab-harness.js';

describe('lab 2A: election', () => {
  test('InitialElection', () => {
    forSeeds(firstSeeds(10), (seed) => {
      withLab(3, seed, {}, (lab) => {
        // §5.2: starting from all followers at term 0, some follower times out and wins.
        lab.checkOneLeader();

        // Give followers a few heartbeat intervals to hear from the new leader: then every server
        // must have adopted the leader's term (§5.1, "if one server's current term is smaller than
        // the other's, then it updates its current term to the larger value").
        lab.sleep(5 * lab.heartbeatIntervalMs);
        const term1 = lab.checkTerms();
        expect(term1, 'a leader was elected, so the term must be at least 1').toBeGreaterThanOrEqual(1);

        // With no failures, heartbeats (sent every heartbeatTicks < electionTicks) keep every
        // follower from timing out: the leader and the term must stay the same.
        const leader1 = lab.checkOneLeader();
        lab.sleep(2 * lab.electionTimeoutMs);
        const term2 = lab.checkTerms();
        expect(term2, `term changed with no failures (seed ${seed})`).toBe(term1);

        // There is still exactly one leader, and it is the same one.
        expect(lab.checkOneLeader(), `leader changed with no failures (seed ${seed})`).toBe(leader1);
      });
    });
  });

  test('ReElection', () => {
    forSeeds(firstSeeds(10), (seed) => {
      withLab(3, seed, {}, (lab) => {
        const n = lab.servers;
        const leader1 = lab.checkOneLeader();

        // If the leader disconnects, the remaining two are a majority and elect a new one (§5.2).
        lab.disconnect(leader1);
        const newLeader = lab.checkOneLeader();
        expect(newLeader).not.toBe(leader1);

        // The old leader rejoins. It must not disturb the new leader: it learns the higher term
        // from the first message it sees and steps down (§5.1); PreVote keeps it from forcing a
        // new election (thesis §9.6). There is still exactly one leader.
        lab.connect(leader1);
        const leader2 = lab.checkOneLeader();

        // With no quorum (two of three gone), no new leader may be elected, and CheckQuorum makes
        // any leader among the remaining one step down (thesis §6.2).
        lab.disconnect(leader2);
        lab.disconnect((leader2 + 1) % n);
        lab.sleep(2 * lab.electionTimeoutMs);
        lab.checkNoLeader();

        // A quorum returns: a leader is elected again.
        lab.connect((leader2 + 1) % n);
        lab.checkOneLeader();

        // The last node rejoins: still one leader.
        lab.connect(leader2);
        lab.checkOneLeader();
      });
    });
  });

  test('ManyElections', () => {
    forSeeds(firstSeeds(5), (seed) => {
      withLab(7, seed, {}, (lab) => {
        const n = lab.servers;
        lab.checkOneLeader();

        // Ten rounds: disconnect three random servers (four of seven remain: still a majority), a
        // leader must exist among the rest; then reconnect the three (§5.2 with any majority).
        for (let round = 0; round < 10; round++) {
          const i1 = lab.rng.int(n);
          const i2 = lab.rng.int(n);
          const i3 = lab.rng.int(n);
          lab.disconnect(i1);
          lab.disconnect(i2);
          lab.disconnect(i3);

          // Either the current leader still has a majority, or a new leader is elected.
          lab.checkOneLeader();

          lab.connect(i1);
          lab.connect(i2);
          lab.connect(i3);
        }
        lab.checkOneLeader();
      });
    });
  });
});
