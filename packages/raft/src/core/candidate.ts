// The candidate's rules (§5.2) and the pre-candidate's (thesis §9.6), plus the voter's side of
// both, which every role follows.
//
// PreVote: before a node increments its term and disrupts the cluster, it asks "would you vote
// for me?" in a pre-vote round that changes no state anywhere. Only if a majority says yes does
// it become a real candidate. A node that was partitioned away keeps failing pre-votes, so
// its term stays put and it cannot depose a healthy leader when it returns.
//
// Membership (membership.ts): only a voter of its latest configuration campaigns (or a server
// whose removal is not committed yet, see RaftState.mayCampaign), asks that configuration's
// voters, and counts only their votes. A voter answers any candidate, member or not (thesis
// §4.1: servers process requests without consulting their configurations), but a learner's or
// an outsider's grant is never counted.

import { becomeFollower, stepFollower } from './follower.js';
import { becomeLeader } from './leader.js';
import { invariant } from './log.js';
import { isVoter } from './membership.js';
import type { RaftState } from './state.js';
import type { Message, RequestVote } from './types.js';

/** The election timeout fired: campaign, through a pre-vote round when PreVote is on. */
export function startElection(r: RaftState): void {
  invariant(r.role !== 'leader', 'a leader does not start elections');
  // A learner, a node waiting to join, or one whose removal is committed never campaigns.
  if (!r.mayCampaign()) {
    r.resetElectionTimer();
    return;
  }
  if (r.cfg.preVote) becomePreCandidate(r);
  else becomeCandidate(r, false);
}

/**
 * Leadership transfer (thesis §3.10): the leader sent TimeoutNow, so campaign at once, skipping
 * PreVote (the leader knows our log is up to date), with RequestVote.force so that voters who
 * just heard from that leader do not ignore us.
 */
export function campaignNow(r: RaftState): void {
  if (!r.mayCampaign() || r.role === 'leader') return;
  becomeCandidate(r, true);
}

/** Thesis §9.6: ask for pre-votes for term + 1, without changing term or vote. */
function becomePreCandidate(r: RaftState): void {
  forgetLeader(r);
  r.role = 'pre-candidate';
  r.votes.clear();
  r.resetElectionTimer();
  requestVotes(r, true, false);
}

/** §5.2: increment the term, vote for itself, and ask every other server for its vote. */
function becomeCandidate(r: RaftState, force: boolean): void {
  forgetLeader(r);
  r.term++;
  r.vote = r.id;
  r.role = 'candidate';
  r.votes.clear();
  r.resetElectionTimer();
  requestVotes(r, false, force);
}

/** A campaigning node follows no leader; reads it forwarded to the old one are failed. */
function forgetLeader(r: RaftState): void {
  if (r.leader !== null) {
    r.failForwardedReads('LEADERSHIP_LOST', `${r.id} lost contact with leader ${r.leader} and started an election`);
  }
  r.leader = null;
}

function requestVotes(r: RaftState, preVote: boolean, force: boolean): void {
  // The node votes for itself; in a one-node cluster that is already a majority.
  if (recordVote(r, r.id, true)) return;
  for (const to of r.otherVoters()) {
    r.send({
      type: 'RequestVote', from: r.id, to, term: preVote ? r.term + 1 : r.term,
      preVote, lastLogIndex: r.log.lastIndex(), lastLogTerm: r.log.lastTerm(),
      ...(force ? { force: true } : {}),
    });
  }
}

/** Records a (pre-)vote and acts on the outcome. Returns true when the round was decided. */
function recordVote(r: RaftState, from: string, granted: boolean): boolean {
  const config = r.config();
  if (!isVoter(config, from)) return false; // a learner's or an outsider's answer never counts
  if (!r.votes.has(from)) r.votes.set(from, granted);
  let yes = 0;
  let no = 0;
  for (const [id, g] of r.votes) {
    if (!isVoter(config, id)) continue;
    if (g) yes++;
    else no++;
  }
  if (yes >= r.quorum()) {
    // Won: a pre-candidate now runs a real election; a candidate becomes leader (§5.2).
    if (r.role === 'pre-candidate') becomeCandidate(r, false);
    else becomeLeader(r);
    return true;
  }
  if (no >= r.quorum()) {
    // Lost: no majority will vote for us in this term. Wait for a leader, or time out again.
    becomeFollower(r, r.term, null);
    return true;
  }
  return false;
}

export function stepCandidate(r: RaftState, m: Message): void {
  switch (m.type) {
    case 'AppendEntries':
    case 'Heartbeat':
    case 'InstallSnapshot':
      // §5.2: "If the AppendEntries RPC is from another server claiming to be leader whose term
      // is at least as large as the candidate's current term, then the candidate recognizes the
      // leader as legitimate and returns to follower state." (Higher terms were handled in raft.ts.)
      becomeFollower(r, m.term, m.from);
      stepFollower(r, m);
      return;
    case 'RequestVoteResponse':
      // Only answers to the kind of round we are running count.
      if (m.preVote !== (r.role === 'pre-candidate')) return;
      recordVote(r, m.from, m.granted);
      return;
    case 'RequestVote': // handled for every role in raft.ts
    case 'AppendEntriesResponse':
    case 'HeartbeatResponse':
    case 'ReadIndex':
    case 'ReadIndexResponse':
    case 'TimeoutNow': // only a leader sends it, and we know of none in this term
      return;
  }
}

/**
 * The voter's side, for every role. `m.term` is at least our term here (raft.ts answered
 * stale requests already, and adopted a higher term for a real RequestVote).
 *
 * - A pre-vote (thesis §9.6) is granted if the candidate's log is at least as up-to-date as
 *   ours (§5.4.1) and we have not heard from a leader within the election timeout. It changes
 *   no state: no term, no vote, no timer.
 * - A vote (§5.2) is granted at most once per term, first come first served, and only to a
 *   candidate whose log is at least as up-to-date as ours (§5.4.1, Election Restriction).
 *   Granting it restarts our election timer.
 */
export function handleVoteRequest(r: RaftState, m: RequestVote): void {
  const upToDate = r.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  if (m.preVote) {
    const canVote = m.term > r.term || r.vote === m.from || (r.vote === null && r.leader === null);
    const granted = canVote && upToDate && !r.heardFromLeaderRecently();
    // A granted pre-vote carries the proposed term; a refusal carries ours, so a pre-candidate
    // behind us learns our term.
    r.send({ type: 'RequestVoteResponse', from: r.id, to: m.from, term: granted ? m.term : r.term, preVote: true, granted });
    return;
  }
  invariant(m.term === r.term, `vote request for term ${m.term} handled at term ${r.term}`);
  const canVote = r.vote === m.from || (r.vote === null && r.leader === null);
  const granted = canVote && upToDate;
  if (granted) {
    r.vote = m.from;
    r.electionElapsed = 0;
  }
  r.send({ type: 'RequestVoteResponse', from: r.id, to: m.from, term: r.term, preVote: false, granted });
}
