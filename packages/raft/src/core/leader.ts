// The leader's rules (Figure 2, "Leaders"; §5.3, §5.4, §6.4, §8; thesis §6.2, §6.4).
//
// A leader appends a no-op on election, replicates its log to each follower (paced by
// progress.ts), commits an entry once a majority stores it and it is from the current term,
// sends heartbeats, answers linearizable reads (read-only.ts), and steps down when it has not
// heard from a majority for an election timeout (CheckQuorum).
//
// Issue 3 adds: InstallSnapshot to followers behind the compacted log (§7), membership changes
// one server at a time (thesis §4.1, see membership.ts), and leadership transfer (thesis §3.10).
// Majorities are always counted over the VOTERS of the latest configuration; the leader counts
// itself only while it is one of them (thesis §4.2.2).

import { RaftError } from './errors.js';
import { becomeFollower } from './follower.js';
import { invariant } from './log.js';
import { confChangeError, describeConfig, encodeConfChange, isLearner, isVoter } from './membership.js';
import { ProgressTracker, quorumValue, type Progress } from './progress.js';
import type { RaftState } from './state.js';
import type { AppendEntriesResponse, ConfChange, Entry, HeartbeatResponse, Message, NodeId, ProposeResult, ProgressStatus } from './types.js';

const EMPTY = new Uint8Array(0);

function tracker(r: RaftState): ProgressTracker {
  invariant(r.role === 'leader' && r.progress !== null, `${r.id} used leader state as ${r.role}`);
  return r.progress;
}

/**
 * §5.2: a candidate with votes from a majority becomes leader. It resets every follower's
 * nextIndex to just after its own last entry (Figure 2) and appends a no-op of its term (§8):
 * committing it commits everything before it (§5.4.2), and it is the barrier ReadIndex reads
 * wait for (thesis §6.4).
 */
export function becomeLeader(r: RaftState): void {
  invariant(r.role === 'candidate', `becomeLeader from ${r.role}`);
  invariant(r.vote === r.id, `leader of term ${r.term} did not vote for itself`);
  r.role = 'leader';
  r.leader = r.id;
  r.leaderSinceTick = r.nowTick;
  r.electionElapsed = 0;
  r.heartbeatElapsed = 0;
  r.votes.clear();
  const next = r.log.lastIndex() + 1;
  r.progress = new ProgressTracker(r.otherMembers(), next, r.cfg.maxInflightMsgs);
  r.uncommittedBytes = 0;
  r.uncommittedFromIndex = next;
  r.transferee = null;
  r.leaseRevoked = false;
  r.log.append([{ index: next, term: r.term, type: 'noop', data: EMPTY }]);
  // The AppendEntries carrying the no-op go out with the next Ready (see flushLeader).
}

/** Leaving leadership (to follower): fail the reads we can no longer confirm. */
export function stepDownFromLeader(r: RaftState): void {
  for (const read of r.reads.drain()) {
    // Reads forwarded by followers are not answered; each follower fails them when it learns
    // of the new term or leader, or when they time out.
    if (read.from === r.id) r.failRead(read.requestId, 'LEADERSHIP_LOST', `${r.id} stepped down as leader of term ${r.term}`);
  }
  r.progress = null;
  r.uncommittedBytes = 0;
  r.transferee = null;
}

/**
 * One tick for a leader: CheckQuorum (thesis §6.2: a leader that completes no round of
 * heartbeats with a majority within an election timeout steps down, so that clients stuck with
 * a deposed or isolated leader can retry elsewhere), then heartbeats every heartbeatTicks (§5.2).
 */
export function tickLeader(r: RaftState): void {
  r.heartbeatElapsed++;
  if (r.cfg.checkQuorum && r.nowTick - quorumHeardTick(r, true) >= r.cfg.electionTicks) {
    becomeFollower(r, r.term, null);
    return;
  }
  // Thesis §3.10: "if the transfer does not complete within about one election timeout, the
  // leader aborts the transfer and resumes accepting client requests".
  if (r.transferee !== null && ++r.transferElapsed >= r.cfg.electionTicks) r.transferee = null;
  if (r.heartbeatElapsed >= r.cfg.heartbeatTicks) {
    r.heartbeatElapsed = 0;
    broadcastHeartbeat(r);
  }
}

/**
 * The tick by which a majority (counting the leader itself, now) was last heard from.
 * With `sinceElection`, a follower not heard from yet counts as heard at election time:
 * a new leader gets one election timeout of grace. Lease reads must not use that grace.
 */
function quorumHeardTick(r: RaftState, sinceElection: boolean): number {
  return quorumOfVoters(r, r.nowTick, (pr) => (sinceElection ? Math.max(pr.lastHeardTick, r.leaderSinceTick) : pr.lastHeardTick));
}

/**
 * The largest value a majority of the voters has reached (quorumValue), where the leader's own
 * value is `own` while it is a voter, and each other voter's is `of(progress)`. Learners never count.
 */
function quorumOfVoters(r: RaftState, own: number, of: (pr: Progress) => number): number {
  const values: number[] = [];
  for (const id of r.config().voters) {
    if (id === r.id) {
      values.push(own);
      continue;
    }
    const pr = tracker(r).get(id);
    invariant(pr !== undefined, `leader ${r.id} has no progress for voter ${id}`);
    values.push(of(pr));
  }
  return quorumValue(values);
}

export function stepLeader(r: RaftState, m: Message): void {
  const pr = tracker(r).get(m.from);
  if (pr === undefined) return; // not a member
  switch (m.type) {
    case 'AppendEntriesResponse':
      pr.lastHeardTick = r.nowTick;
      handleAppendEntriesResponse(r, m, pr);
      return;
    case 'HeartbeatResponse':
      pr.lastHeardTick = r.nowTick;
      handleHeartbeatResponse(r, m, pr);
      return;
    case 'ReadIndex':
      leaderReadIndex(r, m.requestIds, m.from);
      return;
    case 'AppendEntries':
    case 'Heartbeat':
    case 'InstallSnapshot':
      // Election Safety (§5.2): a term has at most one leader, and it is us.
      throw new Error(`raft invariant violated: two leaders in term ${r.term}: ${r.id} and ${m.from}`);
    case 'RequestVote': // handled for every role in raft.ts
    case 'RequestVoteResponse':
    case 'ReadIndexResponse':
    case 'TimeoutNow':
      return;
  }
}

// ---- Log replication (§5.3) ----

/**
 * Sends `to` one AppendEntries from its nextIndex, unless its progress is paused: as many entries
 * as fit in maxMsgBytes (payload plus ENTRY_OVERHEAD_BYTES each; always at least one). Returns
 * whether a message was sent. Without `sendIfEmpty`, a message with no entries is not sent.
 */
function sendAppend(r: RaftState, to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
  if (pr.isPaused()) return false;
  const log = r.log;
  // §7: the entries the follower needs next are compacted away: send the snapshot instead.
  if (!log.hasTermAt(pr.next - 1)) return sendSnapshot(r, to, pr);
  const last = log.lastIndex();
  const entries = pr.next <= last ? log.slice(pr.next, last, r.cfg.maxMsgBytes) : [];
  if (entries.length === 0 && !sendIfEmpty) return false;
  const prevLogIndex = pr.next - 1;
  r.send({
    type: 'AppendEntries', from: r.id, to, term: r.term,
    prevLogIndex, prevLogTerm: log.termAt(prevLogIndex), entries, leaderCommit: log.committed,
  });
  pr.sentAppend(entries.length, prevLogIndex + entries.length);
  pr.sentCommit = Math.max(pr.sentCommit, Math.min(log.committed, prevLogIndex + entries.length));
  return true;
}

/**
 * Tells a follower a new commit index with an empty AppendEntries at its match index, which its
 * log is known to hold, so it is never rejected however the network reorders it (an empty
 * append at nextIndex - 1 could overtake the entries before it and be refused). Flow control
 * is untouched: nothing new is in flight.
 */
function sendCommit(r: RaftState, to: NodeId, pr: Progress): void {
  const log = r.log;
  if (!log.hasTermAt(pr.match)) return; // its match is compacted: it hears the commit from heartbeats
  r.send({
    type: 'AppendEntries', from: r.id, to, term: r.term,
    prevLogIndex: pr.match, prevLogTerm: log.termAt(pr.match), entries: [], leaderCommit: log.committed,
  });
  pr.sentCommit = Math.min(log.committed, pr.match);
}

/**
 * §7: sends `to` the metadata of our latest snapshot (the driver streams the data) and pauses
 * replication to it until the outcome is known (reportSnapshot, or an answer at or past it).
 */
function sendSnapshot(r: RaftState, to: NodeId, pr: Progress): boolean {
  const meta = r.log.snapshot;
  invariant(meta !== null && meta.index >= r.log.firstIndex() - 1, `${r.id} compacted its log without a snapshot covering it`);
  r.send({ type: 'InstallSnapshot', from: r.id, to, term: r.term, meta });
  pr.becomeSnapshot(meta.index);
  return true;
}

/**
 * The driver's report on the InstallSnapshot it streamed to `to` (see RaftNode.reportSnapshot):
 * 'ok', the follower got the whole snapshot, so probe from just after it (its answer, which
 * carries its match, resumes replication); 'failed', probe from its match again, after a pause
 * of a few heartbeat answers (see handleHeartbeatResponse), which sends the snapshot anew.
 */
export function reportSnapshot(r: RaftState, to: NodeId, status: 'ok' | 'failed'): void {
  if (r.role !== 'leader') return;
  const pr = tracker(r).get(to);
  if (pr === undefined || pr.state !== 'snapshot') return;
  pr.becomeProbe(status === 'ok' ? pr.pendingSnapshot + 1 : pr.match + 1);
  pr.probeSent = true; // wait for the follower's answer (or a few heartbeat answers) before probing
}

/** Sends `to` as many AppendEntries as its progress allows: one in probe state, up to the inflight bound in replicate. */
function replicateTo(r: RaftState, to: NodeId, pr: Progress): void {
  while (sendAppend(r, to, pr, false)) {
    // keep sending until paused or caught up
  }
}

function handleAppendEntriesResponse(r: RaftState, m: AppendEntriesResponse, pr: Progress): void {
  invariant(m.index <= r.log.lastIndex(), `${m.from} acknowledged index ${m.index} beyond our last index ${r.log.lastIndex()}`);
  if (!m.success) {
    if (pr.maybeDecrTo(m.index, nextIndexFromHint(r, m))) replicateTo(r, m.from, pr);
    return;
  }
  const raised = pr.maybeUpdate(m.index);
  // The follower holds the snapshot we sent (or got that far by other means): probe from here.
  if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeProbe(pr.match + 1);
  if (pr.state === 'probe') {
    // The probe found where our logs match: from now on, send optimistically.
    if (raised || m.index === pr.match) pr.becomeReplicate();
  } else {
    pr.inflights.freeUpTo(m.index);
  }
  if (raised) maybeCommit(r);
  replicateTo(r, m.from, pr);
  if (m.from === r.transferee) maybeSendTimeoutNow(r, m.from, pr);
}

/**
 * Where to resume after a rejection, from the follower's hint (§5.3: "the follower can include
 * the term of the conflicting entry and the first index it stores for that term"):
 *   - its log is too short (conflictTerm 0): resume just after its last entry;
 *   - we also hold entries of conflictTerm: resume after our last one of them (the logs likely
 *     agree up to there);
 *   - we hold none of that term: skip the follower's whole term, resume at conflictIndex.
 * Progress.maybeDecrTo keeps the result in (match, rejected index].
 */
function nextIndexFromHint(r: RaftState, m: AppendEntriesResponse): number {
  if (m.conflictTerm === 0) return m.conflictIndex;
  const ourLast = r.log.lastIndexOfTerm(m.conflictTerm, m.index);
  return ourLast > 0 ? ourLast + 1 : m.conflictIndex;
}

/**
 * A follower that answers this many heartbeats in a row while replication to it makes no
 * progress has probably lost some AppendEntries (or their answers). Waiting for several answers,
 * not one, keeps a merely slow or reordered AppendEntries from being sent twice.
 */
const STALL_HEARTBEAT_ANSWERS = 3;

function handleHeartbeatResponse(r: RaftState, m: HeartbeatResponse, pr: Progress): void {
  if (m.readRound > pr.ackedReadRound) {
    pr.ackedReadRound = m.readRound;
    maybeConfirmReads(r);
  }
  // A TimeoutNow may have been lost: the target is up to date and still hears from us.
  if (m.from === r.transferee) maybeSendTimeoutNow(r, m.from, pr);
  if (pr.match >= r.log.lastIndex()) return; // the follower is up to date
  if (pr.state === 'snapshot') return; // waiting for the driver's report (reportSnapshot)
  pr.heartbeatAnswersSinceProgress++;
  if (pr.heartbeatAnswersSinceProgress >= STALL_HEARTBEAT_ANSWERS) {
    // The follower is reachable but replication is stuck: what we sent was lost. Let a probe
    // go again; free a slot of a full pipeline; and if everything was sent already, check the
    // pipeline's tail with an empty AppendEntries at nextIndex - 1 (a success raises match, a
    // rejection sends the follower back to probe, from where the hint says).
    pr.probeSent = false;
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
    if (!sendAppend(r, m.from, pr, false)) sendAppend(r, m.from, pr, true);
    pr.heartbeatAnswersSinceProgress = 0;
  }
  replicateTo(r, m.from, pr);
}

/**
 * §5.3/§5.4.2: the highest index stored on a majority is committed, but only if it is from the
 * current term; entries of earlier terms are never committed by counting replicas (Figure 8),
 * only indirectly, by a current-term entry after them. The leader's own log counts only up to
 * what is durable (log.stable).
 */
export function maybeCommit(r: RaftState): void {
  const index = quorumOfVoters(r, r.log.stable, (pr) => pr.match);
  if (index <= r.log.committed || r.log.termAt(index) !== r.term) return;
  releaseUncommitted(r, r.log.committed, index);
  r.log.commitTo(index);
}

function releaseUncommitted(r: RaftState, oldCommit: number, newCommit: number): void {
  for (let i = Math.max(oldCommit + 1, r.uncommittedFromIndex); i <= newCommit; i++) {
    r.uncommittedBytes -= r.log.entryAt(i).data.byteLength;
  }
  invariant(r.uncommittedBytes >= 0, `uncommitted bytes went negative (${r.uncommittedBytes})`);
}

function broadcastHeartbeat(r: RaftState): void {
  const readRound = r.reads.inFlightRound();
  for (const [to, pr] of tracker(r).followers) {
    // Only what the follower is known to hold may be declared committed to it.
    const commit = Math.min(r.log.committed, pr.match);
    r.send({ type: 'Heartbeat', from: r.id, to, term: r.term, commit, readRound });
    pr.sentCommit = Math.max(pr.sentCommit, commit);
  }
}

/**
 * Called before each Ready is assembled: sends the AppendEntries that proposals since the last
 * Ready made necessary (so a burst of proposals shares one message per follower), tells
 * followers about a new commit index, and starts a read round if reads are waiting.
 */
export function flushLeader(r: RaftState): void {
  if (r.role !== 'leader') return;
  const log = r.log;
  pruneRemoved(r);
  if (r.committedInCurrentTerm() && r.reads.maybeStartRound(log.committed) !== null) {
    r.heartbeatElapsed = 0;
    broadcastHeartbeat(r);
    maybeConfirmReads(r); // a one-node cluster confirms at once
  }
  for (const [to, pr] of tracker(r).followers) {
    replicateTo(r, to, pr);
    // A follower in replicate state hears of a new commit index at once (a lagging or
    // probing one learns it from later AppendEntries and heartbeats).
    if (pr.state === 'replicate' && pr.sentCommit < Math.min(log.committed, pr.match)) sendCommit(r, to, pr);
  }
  maybeStepDownRemoved(r);
}

// ---- Membership (thesis §4.1; see membership.ts) ----

/**
 * Thesis §4.2.2: a leader removed from the configuration keeps managing the cluster (without
 * counting itself) until the change is committed, then steps down. It first hands leadership
 * to an up-to-date voter with TimeoutNow (thesis §3.10), so the cluster need not wait for an
 * election timeout; it never campaigns again, not being a voter.
 */
function maybeStepDownRemoved(r: RaftState): void {
  if (r.isVoter() || r.log.configs.currentIndex() > r.log.committed) return;
  const last = r.log.lastIndex();
  const successor = r.otherVoters().find((id) => tracker(r).get(id)!.match === last);
  if (successor !== undefined) {
    r.leaseRevoked = true;
    r.send({ type: 'TimeoutNow', from: r.id, to: successor, term: r.term });
  }
  becomeFollower(r, r.term, null);
}

/** New members get a Progress, probed from `next` (removed ones are forgotten later: pruneRemoved). */
function addNewMembers(r: RaftState, next: number): void {
  for (const id of r.otherMembers()) tracker(r).add(id, next);
}

/**
 * A removed server keeps being replicated to (never counted) until its removal commits; then it
 * is told the commit index one last time, so that it learns its removal is final and stays quiet
 * (see RaftState.mayCampaign), and the leader forgets it.
 */
function pruneRemoved(r: RaftState): void {
  const configIndex = r.log.configs.currentIndex();
  if (configIndex > r.log.committed) return;
  const t = tracker(r);
  for (const [id, pr] of [...t.followers]) {
    if (r.isMember(id)) continue;
    if (pr.match >= configIndex) sendCommit(r, id, pr);
    t.delete(id);
  }
}

/**
 * Appends a membership change (thesis §4.1), which takes effect here at once, in the leader's
 * own log (and on each follower when it appends the entry). Throws RaftError:
 *   - CONF_CHANGE_IN_PROGRESS when the previous change is not committed yet (one at a time), or
 *     when this leader has not committed an entry of its term yet (the 2015 fix, membership.ts);
 *   - TRANSFER_IN_PROGRESS during a leadership transfer;
 *   - BAD_REQUEST for a change that does not apply (see confChangeError).
 */
export function proposeConfChange(r: RaftState, change: ConfChange): ProposeResult {
  invariant(r.role === 'leader', `proposeConfChange at ${r.role}`);
  if (r.transferee !== null) throw transferError(r);
  const data = encodeConfChange(change); // checks the shape (BAD_REQUEST)
  if (!r.committedInCurrentTerm()) {
    throw new RaftError('CONF_CHANGE_IN_PROGRESS', `leader ${r.id} has not yet committed an entry of its term ${r.term}; retry once it has`);
  }
  const pendingIndex = r.log.configs.currentIndex();
  if (pendingIndex > r.log.committed) {
    throw new RaftError('CONF_CHANGE_IN_PROGRESS', `the configuration change at index ${pendingIndex} is not committed yet (commit ${r.log.committed})`);
  }
  const config = r.config();
  const err = confChangeError(config, change);
  if (err !== null) throw new RaftError('BAD_REQUEST', `cannot ${change.type} ${change.node} in ${describeConfig(config)}: ${err}`);
  const index = r.log.lastIndex() + 1;
  r.log.append([{ index, term: r.term, type: 'config', data }]);
  r.uncommittedBytes += data.byteLength;
  // A new member is probed from the config entry itself, so it learns of it first.
  addNewMembers(r, index);
  return { firstIndex: index, lastIndex: index, term: r.term };
}

// ---- Leadership transfer (thesis §3.10) ----

function transferError(r: RaftState): RaftError {
  return new RaftError('TRANSFER_IN_PROGRESS', `leader ${r.id} is transferring leadership to ${r.transferee} (term ${r.term})`, r.transferee);
}

/**
 * Thesis §3.10: stop accepting proposals, bring `to` up to date, then send it TimeoutNow. The
 * transfer aborts after an election timeout (tickLeader). Throws RaftError: BAD_REQUEST if `to`
 * is this node or not a voter; TRANSFER_IN_PROGRESS if a transfer to another node is under way.
 */
export function transferLeadership(r: RaftState, to: NodeId): void {
  invariant(r.role === 'leader', `transferLeadership at ${r.role}`);
  if (r.transferee === to) return;
  if (r.transferee !== null) throw transferError(r);
  if (to === r.id) throw new RaftError('BAD_REQUEST', `${r.id} is already the leader`);
  if (!isVoter(r.config(), to)) throw new RaftError('BAD_REQUEST', `cannot transfer leadership to ${to}: not a voter in ${describeConfig(r.config())}`);
  r.transferee = to;
  r.transferElapsed = 0;
  const pr = tracker(r).get(to)!;
  replicateTo(r, to, pr);
  maybeSendTimeoutNow(r, to, pr);
}

/** Once the target's log matches ours to the end (and is durable there), tell it to campaign. */
function maybeSendTimeoutNow(r: RaftState, to: NodeId, pr: Progress): void {
  if (pr.match !== r.log.lastIndex()) return;
  // From now on a voter may grant a forced vote at any time: our lease (thesis §6.4.1) is void.
  r.leaseRevoked = true;
  r.send({ type: 'TimeoutNow', from: r.id, to, term: r.term });
}

// ---- Proposals ----

/** Appends client commands to the leader's log (§5.3); they go out with the next Ready. */
export function propose(r: RaftState, data: readonly Uint8Array[]): ProposeResult {
  invariant(r.role === 'leader', `propose at ${r.role}`);
  // Thesis §3.10: no new entries while the target catches up, or it would never be done.
  if (r.transferee !== null) throw transferError(r);
  let bytes = 0;
  for (const d of data) {
    if (!(d instanceof Uint8Array)) throw new RaftError('BAD_REQUEST', 'propose: every command must be a Uint8Array');
    bytes += d.byteLength;
  }
  // Bound the log growth while no quorum acknowledges (one proposal is always let through when
  // nothing is pending, so a single large command can still make progress).
  if (r.uncommittedBytes > 0 && r.uncommittedBytes + bytes > r.cfg.maxUncommittedBytes) {
    throw new RaftError(
      'UNCOMMITTED_LIMIT',
      `leader ${r.id} holds ${r.uncommittedBytes} uncommitted bytes; ${bytes} more would pass maxUncommittedBytes ${r.cfg.maxUncommittedBytes}`,
    );
  }
  const firstIndex = r.log.lastIndex() + 1;
  const entries: Entry[] = data.map((d, i) => ({ index: firstIndex + i, term: r.term, type: 'normal', data: d }));
  r.log.append(entries);
  r.uncommittedBytes += bytes;
  return { firstIndex, lastIndex: firstIndex + data.length - 1, term: r.term };
}

// ---- Reads (thesis §6.4; see read-only.ts) ----

/**
 * Reads asked of the leader, by its own driver (`from` = leader) or forwarded by a follower.
 * With lease reads and a valid lease, they are answered at once at the commit index; otherwise
 * they wait for the next read round (flushLeader starts it once the no-op has committed).
 */
export function leaderReadIndex(r: RaftState, requestIds: readonly number[], from: NodeId): void {
  if (r.cfg.readMode === 'lease' && r.committedInCurrentTerm() && leaseValid(r)) {
    serveReads(r, requestIds.map((requestId) => ({ requestId, from, index: r.log.committed })));
    return;
  }
  for (const requestId of requestIds) {
    if (r.reads.size() >= r.cfg.maxPendingReads) {
      // A follower's read is dropped; the follower times it out.
      if (from === r.id) r.failRead(requestId, 'READ_QUEUE_FULL', `${r.cfg.maxPendingReads} reads already wait at leader ${r.id}`);
      continue;
    }
    r.reads.enqueue({ requestId, from });
  }
}

/**
 * Thesis §6.4.1: the leader holds a lease while a majority answered it within
 * electionTicks - leaseDriftTicks: none of them will vote for another candidate before an
 * election timeout has passed since they last heard from us (they ignore vote requests while
 * they hear from a leader, see raft.ts). Measured by when answers arrived, so the drift margin
 * must also cover a message round trip. Unsafe when clocks drift more than assumed.
 */
function leaseValid(r: RaftState): boolean {
  if (r.leaseRevoked) return false;
  const leaseTicks = r.cfg.electionTicks - r.cfg.leaseDriftTicks;
  return r.nowTick - quorumHeardTick(r, false) < leaseTicks;
}

function maybeConfirmReads(r: RaftState): void {
  const inFlight = r.reads.inFlightRound();
  if (inFlight === 0) return;
  // The leader vouches for itself (while a voter); learners are not asked.
  serveReads(r, r.reads.confirm(quorumOfVoters(r, inFlight, (pr) => pr.ackedReadRound)));
}

function serveReads(r: RaftState, reads: readonly { requestId: number; from: NodeId; index: number }[]): void {
  const byFollower = new Map<NodeId, { ids: number[]; index: number }>();
  for (const read of reads) {
    if (read.from === r.id) {
      r.readStates.push({ requestId: read.requestId, index: read.index });
      continue;
    }
    const batch = byFollower.get(read.from);
    if (batch !== undefined && batch.index === read.index) batch.ids.push(read.requestId);
    else {
      if (batch !== undefined) sendReadIndexResponse(r, read.from, batch.ids, batch.index);
      byFollower.set(read.from, { ids: [read.requestId], index: read.index });
    }
  }
  for (const [to, batch] of byFollower) sendReadIndexResponse(r, to, batch.ids, batch.index);
}

function sendReadIndexResponse(r: RaftState, to: NodeId, requestIds: readonly number[], index: number): void {
  r.send({ type: 'ReadIndexResponse', from: r.id, to, term: r.term, requestIds, index });
}

export function leaderProgressStatus(r: RaftState): Record<NodeId, ProgressStatus> {
  const out: Record<NodeId, ProgressStatus> = {};
  for (const [id, pr] of tracker(r).followers) {
    out[id] = pr.toStatus(r.nowTick - pr.lastHeardTick < r.cfg.electionTicks, isLearner(r.config(), id));
  }
  return out;
}
