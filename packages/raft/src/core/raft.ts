// RaftNode: the pure, deterministic Raft state machine, and the only way into it.
//
// Inputs: tick() (one logical clock tick), step(message), propose(commands), readIndex(ids).
// Output: ready(), a batch of work for the driver (state and entries to persist, messages to
// send, committed entries to apply, reads to answer), acknowledged by advance(). The node never
// reads a clock, touches a disk or a socket, or draws a random number from outside; given the
// same config, restored state and inputs, it produces the same outputs.
//
// The rules themselves live in one file per role: follower.ts, candidate.ts (pre-candidate and
// candidate, and the voter's side), leader.ts. This file applies the rules every role shares
// (terms, §5.1) and runs the Ready/advance handshake.

import { handleVoteRequest, stepCandidate } from './candidate.js';
import { RaftError } from './errors.js';
import { becomeFollower, followerReadIndex, stepFollower, tickElection } from './follower.js';
import { flushLeader, leaderProgressStatus, leaderReadIndex, maybeCommit, propose as leaderPropose, stepLeader, tickLeader } from './leader.js';
import { invariant } from './log.js';
import { RaftState } from './state.js';
import type { HardState, Message, ProposeResult, RaftConfig, RaftStatus, Ready, RestoredState, SoftState } from './types.js';

/** What the node remembers about the one Ready handed out and not yet advanced. */
interface Outstanding {
  readonly ready: Ready;
  /** Index of the last entry in ready.entries, or 0. */
  readonly lastEntryIndex: number;
  /** Index of the last entry in ready.committedEntries, or 0. */
  readonly lastCommittedIndex: number;
}

export class RaftNode {
  private readonly r: RaftState;
  /** The soft and hard state as of the last Ready handed out (to send only changes). */
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Outstanding | null = null;
  /** Messages from anyone else are ignored (the transport should already refuse them). */
  private readonly members: ReadonlySet<string>;

  constructor(config: RaftConfig, restored?: RestoredState) {
    this.r = new RaftState(config, restored);
    this.members = new Set(this.r.cfg.peers);
    this.prevSoftState = this.r.softState();
    this.prevHardState = this.r.hardState();
  }

  /** One logical clock tick: drives election timeouts, heartbeats and CheckQuorum. */
  tick(): void {
    const r = this.r;
    r.nowTick++;
    if (r.role === 'leader') tickLeader(r);
    else tickElection(r);
  }

  /** Handles a message from a peer. Messages addressed to another node are ignored. */
  step(m: Message): void {
    const r = this.r;
    if (m.to !== r.id || m.from === r.id || !this.members.has(m.from)) return;
    if (m.term > r.term) {
      if (!this.adoptHigherTerm(m)) return;
    } else if (m.term < r.term) {
      this.answerStaleTerm(m);
      return;
    }
    if (m.type === 'RequestVote') {
      handleVoteRequest(r, m);
      return;
    }
    switch (r.role) {
      case 'follower':
        stepFollower(r, m);
        return;
      case 'pre-candidate':
      case 'candidate':
        stepCandidate(r, m);
        return;
      case 'leader':
        stepLeader(r, m);
        return;
    }
  }

  /**
   * Figure 2 (§5.1): if a request or response contains a term T > currentTerm, set
   * currentTerm = T and convert to follower. Two exceptions, both from the thesis:
   *   - pre-vote traffic (§9.6) changes no state: a pre-vote request, and a granted pre-vote
   *     answer (it carries the term the pre-candidate would campaign in);
   *   - disruption protection (§4.2.3): a node that heard from a leader within the minimum
   *     election timeout ignores a vote request outright when CheckQuorum (or the read lease,
   *     which relies on it) is on, keeping its term.
   * Returns whether the message should be processed further.
   */
  private adoptHigherTerm(m: Message): boolean {
    const r = this.r;
    if (m.type === 'RequestVote') {
      if (m.preVote) return true; // answered by handleVoteRequest without changing state
      if ((r.cfg.checkQuorum || r.cfg.readMode === 'lease') && r.heardFromLeaderRecently()) return false;
      becomeFollower(r, m.term, null, true); // the timer restarts only if we grant the vote
      return true;
    }
    if (m.type === 'RequestVoteResponse' && m.preVote && m.granted) return true;
    const fromLeader = m.type === 'AppendEntries' || m.type === 'Heartbeat';
    becomeFollower(r, m.term, fromLeader ? m.from : null);
    return true;
  }

  /**
   * A message from an older term. Requests are answered with our term so that the stale
   * sender steps down (§5.1: "If a server receives a request with a stale term number, it
   * rejects the request"). This also unsticks a node whose term ran ahead during a partition
   * and whose votes nobody will grant: its answer makes the leader step down. Stale answers
   * are dropped.
   */
  private answerStaleTerm(m: Message): void {
    const r = this.r;
    const base = { from: r.id, to: m.from, term: r.term } as const;
    switch (m.type) {
      case 'AppendEntries':
        r.send({ ...base, type: 'AppendEntriesResponse', success: false, index: m.prevLogIndex, conflictTerm: 0, conflictIndex: 0 });
        return;
      case 'Heartbeat':
        r.send({ ...base, type: 'HeartbeatResponse', readRound: 0 });
        return;
      case 'RequestVote':
        r.send({ ...base, type: 'RequestVoteResponse', preVote: m.preVote, granted: false });
        return;
      default:
        return;
    }
  }

  /**
   * Appends commands at the leader. Throws RaftError: BAD_REQUEST (empty or not bytes),
   * NOT_LEADER with a leaderHint when another leader is known (the driver redirects: followers
   * do not forward proposals), NO_LEADER when none is, UNCOMMITTED_LIMIT when the leader holds
   * too many uncommitted bytes (no quorum is acknowledging).
   */
  propose(data: readonly Uint8Array[]): ProposeResult {
    const r = this.r;
    if (data.length === 0) throw new RaftError('BAD_REQUEST', 'propose: no commands given');
    if (r.role !== 'leader') {
      if (r.leader !== null) throw new RaftError('NOT_LEADER', `${r.id} is not the leader; ${r.leader} is (term ${r.term})`, r.leader);
      throw new RaftError('NO_LEADER', `${r.id} is not the leader and knows of none (term ${r.term}, ${r.role})`);
    }
    return leaderPropose(r, data);
  }

  /**
   * Requests linearizable reads; each comes back in ready().readStates (serve it once
   * applied >= index) or ready().failedReads. Never throws for availability reasons.
   */
  readIndex(requestIds: readonly number[]): void {
    const r = this.r;
    if (r.role === 'leader') leaderReadIndex(r, requestIds, r.id);
    else followerReadIndex(r, requestIds);
  }

  /**
   * Whether ready() has something to hand out. Always false while a Ready is outstanding
   * (handed out and not yet advanced). May queue messages a leader owes its followers.
   */
  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const r = this.r;
    flushLeader(r);
    return (
      !sameSoftState(r.softState(), this.prevSoftState) ||
      !sameHardState(r.hardState(), this.prevHardState) ||
      r.log.hasUnstableEntries() ||
      r.msgs.length > 0 ||
      r.log.hasCommittedEntries() ||
      r.readStates.length > 0 ||
      r.failedReads.length > 0
    );
  }

  /**
   * Hands out the pending work (see Ready in types.ts for the driver's obligations). Only one
   * Ready may be outstanding: call advance() before the next ready().
   */
  ready(): Ready {
    invariant(this.outstanding === null, 'ready() called again before advance() of the previous Ready');
    const r = this.r;
    flushLeader(r);
    const soft = r.softState();
    const hard = r.hardState();
    const entries = r.log.unstableEntries();
    r.log.handOutAll();
    // Entries handed out above are persisted before committed entries are applied, so they
    // may already be applied in this same Ready.
    const committedEntries = r.log.nextCommittedEntries();
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted !== undefined) r.log.applyingTo(lastCommitted.index);
    const ready: Ready = {
      softState: sameSoftState(soft, this.prevSoftState) ? null : soft,
      hardState: sameHardState(hard, this.prevHardState) ? null : hard,
      entries,
      messages: r.msgs,
      committedEntries,
      readStates: r.readStates,
      failedReads: r.failedReads,
    };
    r.msgs = [];
    r.readStates = [];
    r.failedReads = [];
    this.prevSoftState = soft;
    this.prevHardState = hard;
    this.outstanding = {
      ready,
      lastEntryIndex: entries[entries.length - 1]?.index ?? 0,
      lastCommittedIndex: lastCommitted?.index ?? 0,
    };
    return ready;
  }

  /** The driver has persisted, sent, applied and answered everything `ready` asked for. */
  advance(ready: Ready): void {
    const o = this.outstanding;
    invariant(o !== null && o.ready === ready, 'advance() of a Ready that was not handed out (or was already advanced)');
    this.outstanding = null;
    const r = this.r;
    if (o.lastEntryIndex > 0) r.log.stableTo(o.lastEntryIndex);
    if (o.lastCommittedIndex > 0) r.log.appliedTo(o.lastCommittedIndex);
    // The leader's own entries now count toward a quorum (they are durable).
    if (r.role === 'leader') maybeCommit(r);
  }

  status(): RaftStatus {
    const r = this.r;
    return {
      id: r.id,
      role: r.role,
      term: r.term,
      vote: r.vote,
      leader: r.leader,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      lastTerm: r.log.lastTerm(),
      progress: r.role === 'leader' ? leaderProgressStatus(r) : {},
    };
  }
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader && a.term === b.term;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
