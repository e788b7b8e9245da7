// What a leader knows about each follower's log, and how it paces AppendEntries to it.
//
// Figure 2 gives a leader two numbers per follower: matchIndex (the highest entry known to be
// replicated there) and nextIndex (the next entry to send). Sending one AppendEntries and
// waiting for its answer costs a round trip per batch, so, like etcd-io/raft, a follower is in
// one of two states:
//
//   - probe: we do not know where the follower's log matches ours. Send one AppendEntries at a
//     time (from nextIndex) and wait for its answer; a rejection moves nextIndex back (using
//     the follower's conflict hint, §5.3), a success finds the match and switches to replicate.
//   - replicate: the logs match up to matchIndex. Send entries optimistically, moving nextIndex
//     forward as soon as a message is sent, with at most `maxInflightMsgs` messages unanswered
//     (pipelining). A rejection means a message was lost or reordered: back to probe.
//   - snapshot: the follower needs entries the leader has compacted away (§7), so an
//     InstallSnapshot is out (its data streamed by the driver). Nothing else is sent until the
//     driver reports the outcome (reportSnapshot) or the follower answers at or past the
//     snapshot's index; then back to probe.

import { invariant } from './log.js';
import type { NodeId, ProgressStatus } from './types.js';

/**
 * A bounded FIFO of the last index carried by each AppendEntries sent and not yet answered.
 * When full, the follower is paused: nothing more is sent until an answer frees a slot.
 */
export class Inflights {
  private readonly lastIndexes: number[] = [];

  constructor(readonly capacity: number) {
    invariant(capacity >= 1, `inflight capacity ${capacity} < 1`);
  }

  get count(): number {
    return this.lastIndexes.length;
  }

  full(): boolean {
    return this.lastIndexes.length >= this.capacity;
  }

  add(lastIndex: number): void {
    invariant(!this.full(), 'Inflights.add on a full window');
    const newest = this.lastIndexes[this.lastIndexes.length - 1];
    invariant(newest === undefined || lastIndex > newest, `inflight ${lastIndex} not after ${newest}`);
    this.lastIndexes.push(lastIndex);
  }

  /** An answer acknowledged everything up to `index`: those messages are no longer in flight. */
  freeUpTo(index: number): void {
    let n = 0;
    while (n < this.lastIndexes.length && this.lastIndexes[n]! <= index) n++;
    this.lastIndexes.splice(0, n);
  }

  /** Frees the oldest slot (used when a heartbeat answer shows the follower alive but the window is stuck). */
  freeFirst(): void {
    this.lastIndexes.shift();
  }

  reset(): void {
    this.lastIndexes.length = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot' = 'probe';
  /** In snapshot state: the index of the snapshot sent. */
  pendingSnapshot = 0;
  /** In probe state: an AppendEntries is out and unanswered, so send no other. */
  probeSent = false;
  readonly inflights: Inflights;
  /**
   * The leader's tick count when it last had an answer (AppendEntriesResponse or
   * HeartbeatResponse) from this follower: drives CheckQuorum and the read lease.
   */
  lastHeardTick = Number.NEGATIVE_INFINITY;
  /** Highest read round this follower has acknowledged (see read-only.ts). */
  ackedReadRound = 0;
  /**
   * The highest commit index this follower can have learned from us: a message's commit is
   * capped by what the follower is known to hold (min(leaderCommit, last index the message
   * covers)). Tells the leader when a new commit index is worth announcing.
   */
  sentCommit = 0;
  /**
   * Heartbeat answers received since replication last made progress (match rose, a rejection
   * moved nextIndex, or entries were sent). A follower that answers heartbeats but not our
   * AppendEntries for STALL_HEARTBEAT_ANSWERS of them has probably lost some: see leader.ts.
   */
  heartbeatAnswersSinceProgress = 0;

  constructor(next: number, maxInflightMsgs: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs);
  }

  /** Whether no AppendEntries may be sent now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  becomeProbe(next: number): void {
    this.state = 'probe';
    this.next = next;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  /** An InstallSnapshot for the snapshot at `index` was sent: pause until its outcome is known. */
  becomeSnapshot(index: number): void {
    invariant(index > this.match, `snapshot at ${index} sent to a follower matching ${this.match}`);
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.probeSent = false;
    this.inflights.reset();
    this.heartbeatAnswersSinceProgress = 0;
  }

  /** An AppendEntries carrying entries up to `lastIndex` (or none, when lastIndex is next - 1) was sent. */
  sentAppend(entryCount: number, lastIndex: number): void {
    if (entryCount > 0) this.heartbeatAnswersSinceProgress = 0;
    if (this.state === 'probe') {
      this.probeSent = true;
    } else if (entryCount > 0) {
      invariant(lastIndex >= this.next, `sent entries up to ${lastIndex} but next is ${this.next}`);
      this.next = lastIndex + 1; // optimistic: assume it arrives
      this.inflights.add(lastIndex);
    }
  }

  /** A success answer says the follower matches through `index`. Returns whether match rose. */
  maybeUpdate(index: number): boolean {
    this.probeSent = false;
    if (index <= this.match) return false;
    this.match = index;
    this.heartbeatAnswersSinceProgress = 0;
    if (this.next <= index) this.next = index + 1;
    return true;
  }

  /**
   * A rejection of the AppendEntries whose prevLogIndex was `rejected`; `hintNext` is where the
   * conflict hint says to resume. Returns false for a stale rejection (one that answers an older
   * message than the one we are waiting for), which is ignored.
   */
  maybeDecrTo(rejected: number, hintNext: number): boolean {
    // While a snapshot is out, only its outcome moves us: any rejection answers an older message.
    if (this.state === 'snapshot') return false;
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
    } else if (rejected !== this.next - 1) {
      return false;
    }
    // Resume no lower than just after the match, and strictly before the rejected position.
    const next = Math.max(this.match + 1, Math.min(hintNext, rejected));
    this.becomeProbe(next);
    this.heartbeatAnswersSinceProgress = 0;
    return true;
  }

  toStatus(recentActive: boolean, learner: boolean): ProgressStatus {
    return { match: this.match, next: this.next, state: this.state, inflight: this.inflights.count, recentActive, learner };
  }
}

/** The number of votes (or acknowledgements) that make a majority of `voters` members. */
export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The largest value that at least a quorum of members have reached: sort descending and take the
 * quorum-th. Applied to match indexes it is the highest index stored on a majority (§5.3);
 * to read rounds, the newest round a majority has acknowledged; to last-heard ticks, the time by
 * which a majority was last heard from.
 */
export function quorumValue(values: readonly number[]): number {
  invariant(values.length > 0, 'quorumValue of no members');
  const sorted = [...values].sort((a, b) => b - a);
  return sorted[quorumSize(values.length) - 1]!;
}

/**
 * A leader's view of all its followers and learners (every member but itself, see leader.ts:
 * syncProgress). The leader's own entry is implicit.
 */
export class ProgressTracker {
  readonly followers = new Map<NodeId, Progress>();

  constructor(followerIds: readonly NodeId[], next: number, private readonly maxInflightMsgs: number) {
    for (const id of followerIds) this.followers.set(id, new Progress(next, maxInflightMsgs));
  }

  get(id: NodeId): Progress | undefined {
    return this.followers.get(id);
  }

  /** A member joined: start probing it from `next`. */
  add(id: NodeId, next: number): void {
    if (!this.followers.has(id)) this.followers.set(id, new Progress(next, this.maxInflightMsgs));
  }

  delete(id: NodeId): void {
    this.followers.delete(id);
  }
}
