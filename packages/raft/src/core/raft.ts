// RaftNode: the pure, deterministic Raft state machine, and the only way into it.
//
// Inputs: tick() (one logical clock tick), step(message), propose(commands), readIndex(ids),
// and for issue 3: proposeConfChange(change), transferLeadership(to), compact(index) and
// reportSnapshot(to, outcome).
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
import {
  flushLeader,
  leaderProgressStatus,
  leaderReadIndex,
  maybeCommit,
  propose as leaderPropose,
  proposeConfChange as leaderProposeConfChange,
  reportSnapshot as leaderReportSnapshot,
  stepLeader,
  tickLeader,
  transferLeadership as leaderTransferLeadership,
} from './leader.js';
import { invariant } from './log.js';
import { RaftState } from './state.js';
import type { ConfChange, HardState, Message, NodeId, ProposeResult, RaftConfig, RaftStatus, Ready, RestoredState, SnapshotMeta, SoftState } from './types.js';

/** What the node remembers about the one Ready handed out and not yet advanced. */
interface Outstanding {
  readonly ready: Ready;
  /** Index of the last entry in ready.entries, or 0. */
  readonly lastEntryIndex: number;
  /** Index of the last entry in ready.committedEntries, or 0. */
  readonly lastCommittedIndex: number;
  /** Index of ready.snapshot, or 0. */
  readonly snapshotIndex: number;
}

export class RaftNode {
  private readonly r: RaftState;
  /** The soft and hard state as of the last Ready handed out (to send only changes). */
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Outstanding | null = null;
  /** The bootstrap members; see step() for whom else messages are taken from. */
  private readonly bootstrapMembers: ReadonlySet<string>;

  constructor(config: RaftConfig, restored?: RestoredState) {
    this.r = new RaftState(config, restored);
    this.bootstrapMembers = new Set([...this.r.cfg.peers, ...this.r.cfg.learners]);
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

  /**
   * Handles a message from a peer. Ignored: messages addressed to another node, and messages
   * from a node that is neither a bootstrap member nor a member of any configuration in our log
   * (a removed server may still need votes, see RaftState.mayCampaign), unless a leader sent it (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow): a leader
   * may have been added by a config entry that has not reached us yet (thesis §4.1: servers
   * process requests without consulting their configurations), and only it can tell us.
   */
  step(m: Message): void {
    const r = this.r;
    if (m.to !== r.id || m.from === r.id) return;
    const fromLeader = m.type === 'AppendEntries' || m.type === 'Heartbeat' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow';
    if (!fromLeader && !this.bootstrapMembers.has(m.from) && !r.log.configs.everMember(m.from)) return;
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
      // ...unless the leader itself asked for this election (leadership transfer, thesis §3.10).
      if ((r.cfg.checkQuorum || r.cfg.readMode === 'lease') && r.heardFromLeaderRecently() && m.force !== true) return false;
      becomeFollower(r, m.term, null, true); // the timer restarts only if we grant the vote
      return true;
    }
    if (m.type === 'RequestVoteResponse' && m.preVote && m.granted) return true;
    const fromLeader = m.type === 'AppendEntries' || m.type === 'Heartbeat' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow';
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
      case 'InstallSnapshot':
        r.send({ ...base, type: 'AppendEntriesResponse', success: false, index: m.meta.index, conflictTerm: 0, conflictIndex: 0 });
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
   * Proposes a membership change (thesis §4.1, one server at a time; see membership.ts), as a
   * `config` entry that takes effect as soon as it is appended. Leader only. Throws RaftError:
   * NOT_LEADER / NO_LEADER as propose(); CONF_CHANGE_IN_PROGRESS while the previous change is
   * uncommitted or before this leader committed an entry of its term; TRANSFER_IN_PROGRESS;
   * BAD_REQUEST for a malformed or inapplicable change (adding a member, promoting a non-learner,
   * removing a non-member or the last voter). Acknowledge it like a proposal: once the entry at
   * `index` is applied with `term`.
   */
  proposeConfChange(change: ConfChange): ProposeResult {
    this.requireLeader();
    return leaderProposeConfChange(this.r, change);
  }

  /**
   * Hands leadership to the voter `to` (thesis §3.10): proposals are refused with
   * TRANSFER_IN_PROGRESS until the transfer completes (this node steps down) or aborts after an
   * election timeout. Throws NOT_LEADER / NO_LEADER, BAD_REQUEST (`to` is this node or not a
   * voter), TRANSFER_IN_PROGRESS (a transfer to another node is under way). Asking again for the
   * same target is a no-op.
   */
  transferLeadership(to: NodeId): void {
    this.requireLeader();
    leaderTransferLeadership(this.r, to);
  }

  /**
   * The driver's outcome of streaming the snapshot of an InstallSnapshot message to `to`: 'ok'
   * once the receiver has the whole data (and was handed the message), 'failed' if the stream
   * broke or the snapshot was replaced before it was sent. Required once per InstallSnapshot
   * sent; ignored when this node no longer leads or `to` is not waiting for a snapshot.
   */
  reportSnapshot(to: NodeId, status: 'ok' | 'failed'): void {
    leaderReportSnapshot(this.r, to, status);
  }

  /**
   * The metadata a snapshot of the state machine at `index` must carry: the term of entry `index`
   * and the configuration as of it. `index` must be applied and not before the latest snapshot.
   * Throws BAD_REQUEST otherwise.
   */
  snapshotMetaAt(index: number): SnapshotMeta {
    const log = this.r.log;
    const current = log.snapshot;
    if (current !== null && index === current.index) return current;
    const from = current?.index ?? 0;
    if (!Number.isSafeInteger(index) || index < Math.max(1, from) || index > log.applied) {
      throw new RaftError('BAD_REQUEST', `no snapshot possible at ${index}: it must be in [${Math.max(1, from)}, applied ${log.applied}]`);
    }
    return { index, term: log.termAt(index), config: log.configs.at(index) };
  }

  /**
   * The driver has durably saved a snapshot of the state machine at `snapshotIndex` (with the
   * meta snapshotMetaAt(snapshotIndex) gave): the core sends it to followers that need entries it
   * no longer holds, and discards its entries up to `discardUpTo` (default snapshotIndex; lower
   * it to keep a trailing window for slow followers). A snapshot older than the latest one is
   * ignored. Returns the latest snapshot's meta. Throws BAD_REQUEST for an index past applied or
   * discardUpTo past snapshotIndex. The driver may delete stored entries up to discardUpTo once
   * this returns (the snapshot is durable).
   */
  compact(snapshotIndex: number, discardUpTo: number = snapshotIndex): SnapshotMeta {
    const log = this.r.log;
    if (!Number.isSafeInteger(discardUpTo) || discardUpTo < 0 || discardUpTo > snapshotIndex) {
      throw new RaftError('BAD_REQUEST', `compact: discardUpTo ${discardUpTo} must be in [0, snapshotIndex ${snapshotIndex}]`);
    }
    const latest = log.snapshot;
    if (latest !== null && snapshotIndex < latest.index) return latest;
    const meta = this.snapshotMetaAt(snapshotIndex);
    log.compact(meta, discardUpTo);
    return meta;
  }

  private requireLeader(): void {
    const r = this.r;
    if (r.role === 'leader') return;
    if (r.leader !== null) throw new RaftError('NOT_LEADER', `${r.id} is not the leader; ${r.leader} is (term ${r.term})`, r.leader);
    throw new RaftError('NO_LEADER', `${r.id} is not the leader and knows of none (term ${r.term}, ${r.role})`);
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
      r.log.hasUnstableSnapshot() ||
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
    const snapshot = r.log.takeUnstableSnapshot();
    const entries = r.log.unstableEntries();
    r.log.handOutAll();
    // Entries handed out above are persisted before committed entries are applied, so they
    // may already be applied in this same Ready.
    const committedEntries = r.log.nextCommittedEntries();
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted !== undefined) r.log.applyingTo(lastCommitted.index);
    const ready: Ready = {
      snapshot,
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
      snapshotIndex: snapshot?.index ?? 0,
    };
    return ready;
  }

  /** The driver has persisted, sent, applied and answered everything `ready` asked for. */
  advance(ready: Ready): void {
    const o = this.outstanding;
    invariant(o !== null && o.ready === ready, 'advance() of a Ready that was not handed out (or was already advanced)');
    this.outstanding = null;
    const r = this.r;
    if (o.snapshotIndex > 0) r.log.snapshotApplied(o.snapshotIndex);
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
      config: r.config(),
      configIndex: r.log.configs.currentIndex(),
      snapshotIndex: r.log.snapshot?.index ?? 0,
      firstIndex: r.log.firstIndex(),
      transferee: r.transferee,
    };
  }
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader && a.term === b.term;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
