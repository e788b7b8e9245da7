// The follower's rules (Figure 2, "Followers"; §5.2, §5.3): answer the leader's AppendEntries
// and heartbeats, and start an election if none arrives within the election timeout.

import { campaignNow, startElection } from './candidate.js';
import { stepDownFromLeader } from './leader.js';
import { invariant } from './log.js';
import type { RaftState } from './state.js';
import type { AppendEntries, Heartbeat, InstallSnapshot, Message, NodeId, ReadIndexResponse } from './types.js';

/**
 * Becomes a follower in `term` (which never goes down), following `leader` if known.
 * A higher term clears the vote: one vote per term (§5.2).
 *
 * The election timer restarts, except with `keepElectionTimer`: a node that adopts a higher
 * term from a vote request it may well refuse must keep counting (Figure 2: only hearing from
 * the current leader or granting a vote restarts it). Otherwise a candidate with a stale log,
 * campaigning again and again, would hold back every node that could win.
 */
export function becomeFollower(r: RaftState, term: number, leader: NodeId | null, keepElectionTimer = false): void {
  invariant(term >= r.term, `becomeFollower(${term}) below current term ${r.term}`);
  if (term > r.term) {
    r.term = term;
    r.vote = null;
  }
  if (r.role === 'leader') stepDownFromLeader(r);
  if (r.leader !== null && r.leader !== leader) {
    r.failForwardedReads('LEADERSHIP_LOST', `leader ${r.leader} is no longer known to lead (term ${r.term})`);
  }
  r.role = 'follower';
  r.leader = leader;
  r.votes.clear();
  if (!keepElectionTimer) r.resetElectionTimer();
}

/**
 * One tick for a follower or (pre-)candidate: §5.2, "if a follower receives no communication
 * over a period of time called the election timeout, then it assumes there is no viable leader
 * and begins an election". A candidate whose election timed out (split vote) starts another.
 */
export function tickElection(r: RaftState): void {
  r.electionElapsed++;
  // Reads forwarded to the leader whose answer never came (lost message): give up on them.
  const readTimeoutTicks = 2 * r.cfg.electionTicks;
  for (const id of r.forwardedReads.takeOlderThan(r.nowTick - readTimeoutTicks)) {
    r.failRead(id, 'NO_LEADER', `no read index from leader ${String(r.leader)} within ${readTimeoutTicks} ticks`);
  }
  if (r.electionElapsed >= r.randomizedElectionTimeout) startElection(r);
}

export function stepFollower(r: RaftState, m: Message): void {
  switch (m.type) {
    case 'AppendEntries':
      followLeader(r, m.from);
      handleAppendEntries(r, m);
      return;
    case 'Heartbeat':
      followLeader(r, m.from);
      handleHeartbeat(r, m);
      return;
    case 'InstallSnapshot':
      followLeader(r, m.from);
      handleInstallSnapshot(r, m);
      return;
    case 'TimeoutNow':
      // Thesis §3.10: our leader hands leadership to us. A learner or removed node ignores it.
      if (m.from === r.leader || r.leader === null) campaignNow(r);
      return;
    case 'ReadIndexResponse':
      handleReadIndexResponse(r, m);
      return;
    case 'ReadIndex':
      // A peer took us for the leader. Dropped: its read times out or fails when it learns better.
      return;
    case 'RequestVote': // handled for every role in raft.ts
    case 'RequestVoteResponse':
    case 'AppendEntriesResponse':
    case 'HeartbeatResponse':
      // Answers to a role this node no longer holds.
      return;
  }
}

/** A message from the leader of our term: remember it, and restart the election timer. */
function followLeader(r: RaftState, from: NodeId): void {
  // Election Safety (§5.2, Figure 3): at most one leader per term.
  invariant(r.leader === null || r.leader === from, `two leaders in term ${r.term}: ${r.leader} and ${from}`);
  r.leader = from;
  r.electionElapsed = 0;
}

/**
 * §5.3: reject unless our log holds prevLogIndex at prevLogTerm (the consistency check);
 * otherwise delete any conflicting suffix, append what is new, and advance commit to
 * min(leaderCommit, index of the last new entry).
 */
function handleAppendEntries(r: RaftState, m: AppendEntries): void {
  const log = r.log;
  // A prevLogIndex inside our compacted prefix matches: everything there is committed, and the
  // current leader holds every committed entry (§5.4, Leader Completeness).
  const compacted = m.prevLogIndex < log.firstIndex() - 1;
  if (!compacted && !log.matches(m.prevLogIndex, m.prevLogTerm)) {
    // Fast backtracking hint (§5.3, end): the term we hold at prevLogIndex and the first index
    // of that term, so the leader can skip a whole term per round trip instead of one entry.
    const shorter = m.prevLogIndex > log.lastIndex();
    const conflictTerm = shorter ? 0 : log.termAt(m.prevLogIndex);
    const conflictIndex = shorter ? log.lastIndex() + 1 : log.firstIndexOfTerm(conflictTerm, m.prevLogIndex);
    r.send({
      type: 'AppendEntriesResponse', from: r.id, to: m.from, term: r.term,
      success: false, index: m.prevLogIndex, conflictTerm, conflictIndex,
    });
    return;
  }
  const lastNewIndex = log.appendFromLeader(m.prevLogIndex, m.prevLogTerm, m.entries);
  log.commitTo(Math.max(log.committed, Math.min(m.leaderCommit, lastNewIndex)));
  r.send({
    type: 'AppendEntriesResponse', from: r.id, to: m.from, term: r.term,
    success: true, index: lastNewIndex, conflictTerm: 0, conflictIndex: 0,
  });
}

/**
 * A heartbeat carries min(leader commit, our match index), which our log is known to hold, and
 * the leader's read round, which we echo so the leader can confirm its reads (thesis §6.4).
 */
function handleHeartbeat(r: RaftState, m: Heartbeat): void {
  invariant(m.commit <= r.log.lastIndex(), `heartbeat commit ${m.commit} beyond our last index ${r.log.lastIndex()}`);
  r.log.commitTo(Math.max(r.log.committed, m.commit));
  r.send({ type: 'HeartbeatResponse', from: r.id, to: m.from, term: r.term, readRound: m.readRound });
}

/**
 * §7 (InstallSnapshot, receiver): the driver already holds the snapshot's data. A snapshot that
 * does not reach past our commit index is stale: answer with the commit index (everything up to
 * it matches the leader). If we hold the snapshot's last entry, keep the log after it and only
 * commit up to it ("if existing log entry has same index and term as snapshot's last included
 * entry, retain log entries following it"). Otherwise the snapshot replaces the whole log, and
 * the next Ready tells the driver to switch it in (Ready.snapshot).
 */
function handleInstallSnapshot(r: RaftState, m: InstallSnapshot): void {
  const log = r.log;
  const { meta } = m;
  let index: number;
  if (meta.index <= log.committed) {
    index = log.committed;
  } else if (log.matches(meta.index, meta.term)) {
    log.commitTo(meta.index);
    index = meta.index;
  } else {
    log.installSnapshot(meta);
    index = meta.index;
  }
  r.send({
    type: 'AppendEntriesResponse', from: r.id, to: m.from, term: r.term,
    success: true, index, conflictTerm: 0, conflictIndex: 0,
  });
}

function handleReadIndexResponse(r: RaftState, m: ReadIndexResponse): void {
  if (m.from !== r.leader) return;
  for (const requestId of m.requestIds) {
    if (r.forwardedReads.take(requestId)) r.readStates.push({ requestId, index: m.index });
  }
}

/**
 * A read at a follower (thesis §6.4: a follower can serve reads too, after asking the leader for
 * the current read index): forward it to the leader, or fail it at once when no leader is known.
 */
export function followerReadIndex(r: RaftState, requestIds: readonly number[]): void {
  if (r.leader === null) {
    for (const id of requestIds) r.failRead(id, 'NO_LEADER', `no leader known at ${r.id} (term ${r.term}, ${r.role})`);
    return;
  }
  const forwarded: number[] = [];
  for (const id of requestIds) {
    if (r.forwardedReads.size() >= r.cfg.maxPendingReads) {
      r.failRead(id, 'READ_QUEUE_FULL', `${r.cfg.maxPendingReads} reads already wait for a read index at ${r.id}`);
      continue;
    }
    r.forwardedReads.add(id, r.nowTick);
    forwarded.push(id);
  }
  if (forwarded.length > 0) {
    r.send({ type: 'ReadIndex', from: r.id, to: r.leader, term: r.term, requestIds: forwarded });
  }
}
