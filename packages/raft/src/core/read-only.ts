// Linearizable reads without writing to the log (thesis §6.4, "ReadIndex").
//
// A leader can answer a read at its commit index only if it is still the leader: a newer
// leader might have committed writes it has not heard of. The thesis' recipe:
//   1. the leader must have committed an entry of its own term (its no-op), so that its
//      commit index is at least as high as any earlier leader's;
//   2. it records its commit index as the read index;
//   3. it confirms it was still leader when step 2 happened, by a round of heartbeats that a
//      quorum acknowledges;
//   4. once the state machine has applied up to the read index, the read is served.
// Step 3 is what costs a round trip, so reads are batched: every read that arrives while a
// round is in flight waits for the next round, and each round confirms all the reads in it.
//
// Rounds are numbered (1, 2, ... within one leader term) and the number rides on Heartbeat and
// comes back on HeartbeatResponse. A follower acknowledging round r also vouches for every
// round before r (it answered a heartbeat sent after they started), so the leader keeps only
// each follower's highest acknowledged round, and round r is confirmed once a quorum has
// acknowledged r or later.

import { invariant } from './log.js';
import type { NodeId } from './types.js';

/** A read waiting at the leader: asked for locally (`from` is the leader) or forwarded by a follower. */
export interface PendingRead {
  readonly requestId: number;
  readonly from: NodeId;
}

/** A read whose round was confirmed: it may be served once applied >= index. */
export interface ConfirmedRead extends PendingRead {
  readonly index: number;
}

interface Round {
  readonly round: number;
  /** The leader's commit index when the round started: the read index of every read in it. */
  readonly index: number;
  readonly reads: readonly PendingRead[];
}

/** The leader's reads: those waiting for a round, and the one round in flight. */
export class ReadOnlyQueue {
  private waiting: PendingRead[] = [];
  private inFlight: Round | null = null;
  private lastRound = 0;

  /** Reads held, waiting or in flight (bounded by maxPendingReads by the caller). */
  size(): number {
    return this.waiting.length + (this.inFlight?.reads.length ?? 0);
  }

  enqueue(read: PendingRead): void {
    this.waiting.push(read);
  }

  /** The round whose number heartbeats should carry now (0 when none is in flight). */
  inFlightRound(): number {
    return this.inFlight?.round ?? 0;
  }

  /** Starts a round for all waiting reads at read index `commit`, unless one is already in flight. */
  maybeStartRound(commit: number): number | null {
    if (this.inFlight !== null || this.waiting.length === 0) return null;
    this.lastRound++;
    this.inFlight = { round: this.lastRound, index: commit, reads: this.waiting };
    this.waiting = [];
    return this.lastRound;
  }

  /** A quorum has acknowledged round `round` or later: the in-flight round, if covered, is confirmed. */
  confirm(round: number): ConfirmedRead[] {
    invariant(round <= this.lastRound, `read round ${round} confirmed before it started (last ${this.lastRound})`);
    const r = this.inFlight;
    if (r === null || r.round > round) return [];
    this.inFlight = null;
    return r.reads.map((read) => ({ ...read, index: r.index }));
  }

  /** Leadership lost: every read held is failed by the caller. */
  drain(): PendingRead[] {
    const all = [...(this.inFlight?.reads ?? []), ...this.waiting];
    this.inFlight = null;
    this.waiting = [];
    return all;
  }
}

/**
 * A follower's reads forwarded to its leader (ReadIndex messages), by request id, with the tick
 * they were sent at. A forwarded read is answered by a ReadIndexResponse, or failed when the
 * leader changes, or when no answer came within `timeoutTicks` (the message or its answer was lost).
 */
export class ForwardedReads {
  private readonly sentAtTick = new Map<number, number>();

  size(): number {
    return this.sentAtTick.size;
  }

  has(requestId: number): boolean {
    return this.sentAtTick.has(requestId);
  }

  add(requestId: number, nowTick: number): void {
    this.sentAtTick.set(requestId, nowTick);
  }

  /** Removes and returns whether the read was pending here. */
  take(requestId: number): boolean {
    return this.sentAtTick.delete(requestId);
  }

  /** Removes and returns reads sent at or before `tick`. */
  takeOlderThan(tick: number): number[] {
    const out: number[] = [];
    for (const [id, sent] of this.sentAtTick) {
      if (sent <= tick) out.push(id);
    }
    for (const id of out) this.sentAtTick.delete(id);
    return out;
  }

  takeAll(): number[] {
    const out = [...this.sentAtTick.keys()];
    this.sentAtTick.clear();
    return out;
  }
}
