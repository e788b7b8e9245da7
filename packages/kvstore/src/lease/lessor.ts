// Lessor: the leader's clock for leases.
//
// The lease records (id, granted TTL, attached keys) are state-machine state, the same on every
// replica. Time is not: only the leader keeps deadlines, and when one passes it proposes
// `leaseRevoke { expired: true }` through the Raft log, so every replica deletes the keys at the
// same log position (deterministic; issue 4). It is the thesis's rule for expiring client sessions
// (Ongaro, §6.3): replicas must agree on when something expires, so the decision is made once and
// travels through the log instead of each replica reading its own clock. Deadlines are volatile
// and leader-local:
//   - on becoming leader, every lease's deadline is now + its full TTL: a new leader extends the
//     remaining TTLs rather than expiring leases because of the election (a client had no leader
//     to send keep-alives to meanwhile; etcd's lessor Promote does the same);
//   - a lease granted while leader gets now + TTL the first time the lessor sees it (grant is
//     applied before it is acknowledged, so the holder's clock starts no earlier than ours);
//   - keepAlive resets the deadline to now + TTL (leader only; a follower forwards it).
// Revokes are bounded: one in flight per lease, at most maxRevokesInFlight in all; a revoke that
// fails (no quorum, leadership lost) is retried at the next check while still leader.

import type { Logger } from 'pino';

import { ETCD_MESSAGES, KvError } from '../errors.js';

export interface LessorOptions {
  /** The state machine's lease records (KvStateMachine.leases). */
  readonly leases: () => ReadonlyMap<number, { readonly ttlSec: number }>;
  /** One lease's record, if the store can answer without copying the table (keepAlive, remainingSec); default leases().get(id). */
  readonly lease?: (id: number) => { readonly ttlSec: number } | undefined;
  /** Proposes { op: 'leaseRevoke', id, expired: true } and resolves once applied (rejects if it was not). */
  readonly revoke: (id: number) => Promise<void>;
  /** Injectable clock (ms) for tests; default Date.now. */
  readonly nowMs?: () => number;
  /** How often the leader looks for expired leases; default 500. */
  readonly checkIntervalMs?: number;
  /** Bound on concurrent expiry revokes; further expired leases wait for the next check. Default 64. */
  readonly maxRevokesInFlight?: number;
  readonly logger?: Logger;
}

export interface LessorStats {
  readonly isLeader: boolean;
  readonly tracked: number;
  readonly revokesInFlight: number;
  readonly revokesFailed: number;
  readonly revokesDone: number;
}

export const LESSOR_DEFAULTS = {
  checkIntervalMs: 500,
  maxRevokesInFlight: 64,
} as const;

export class Lessor {
  private readonly leases: LessorOptions['leases'];
  private readonly lease: (id: number) => { readonly ttlSec: number } | undefined;
  private readonly revokeFn: LessorOptions['revoke'];
  private readonly now: () => number;
  private readonly checkIntervalMs: number;
  private readonly maxRevokesInFlight: number;
  private readonly log: Logger | undefined;
  /** Lease id -> deadline (ms on `now`'s clock). Only while leader. */
  private readonly deadlines = new Map<number, number>();
  private readonly inFlight = new Set<number>();
  /** Bumped on every leadership change, so a revoke from an earlier term does not touch today's state. */
  private epoch = 0;
  private leader = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private revokesFailed = 0;
  private revokesDone = 0;

  constructor(opts: LessorOptions) {
    this.leases = opts.leases;
    this.lease = opts.lease ?? ((id) => opts.leases().get(id));
    this.revokeFn = opts.revoke;
    this.now = opts.nowMs ?? Date.now;
    this.checkIntervalMs = opts.checkIntervalMs ?? LESSOR_DEFAULTS.checkIntervalMs;
    this.maxRevokesInFlight = opts.maxRevokesInFlight ?? LESSOR_DEFAULTS.maxRevokesInFlight;
    this.log = opts.logger;
    if (!(this.checkIntervalMs > 0 && this.maxRevokesInFlight >= 1)) {
      throw new KvError('BAD_REQUEST', 'lessor: checkIntervalMs and maxRevokesInFlight must be positive');
    }
  }

  get isLeader(): boolean {
    return this.leader;
  }

  /**
   * Called by the server on every leadership change of this member. Becoming leader: every lease
   * gets now + its full TTL, and the expiry check starts. Losing it: deadlines are forgotten.
   */
  setLeader(isLeader: boolean): void {
    if (this.closed || isLeader === this.leader) return;
    this.leader = isLeader;
    this.epoch++;
    this.deadlines.clear();
    this.inFlight.clear();
    if (isLeader) {
      const now = this.now();
      for (const [id, l] of this.leases()) this.deadlines.set(id, now + l.ttlSec * 1000);
      this.timer = setInterval(() => {
        try {
          this.checkExpired();
        } catch (e) {
          // A timer must never take the member down (e.g. the store closing under it).
          this.log?.error({ err: e }, 'lessor: expiry check failed; retrying at the next check');
        }
      }, this.checkIntervalMs);
      this.timer.unref();
    } else if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /**
   * Renews a lease: deadline = now + its TTL; returns the TTL (s). Leader only (KvError NO_LEADER
   * otherwise: the server forwards keep-alives to the leader). LEASE_NOT_FOUND for an unknown lease
   * or one whose deadline has already passed (its revoke is under way, as etcd answers).
   */
  keepAlive(id: number): number {
    if (!this.leader) throw new KvError('NO_LEADER', `${ETCD_MESSAGES.NO_LEADER} (lease keep-alives are served by the leader)`);
    const rec = this.lease(id);
    if (rec === undefined) throw new KvError('LEASE_NOT_FOUND', ETCD_MESSAGES.LEASE_NOT_FOUND);
    const now = this.now();
    const deadline = this.deadlineOf(id, rec.ttlSec, now);
    if (deadline <= now) throw new KvError('LEASE_NOT_FOUND', ETCD_MESSAGES.LEASE_NOT_FOUND);
    this.deadlines.set(id, now + rec.ttlSec * 1000);
    return rec.ttlSec;
  }

  /**
   * Remaining seconds (rounded up, >= 0) as the leader sees it; -1 if the lease is unknown. On a
   * follower, the granted TTL (what a new leader would give it).
   */
  remainingSec(id: number): number {
    const rec = this.lease(id);
    if (rec === undefined) return -1;
    if (!this.leader) return rec.ttlSec;
    const now = this.now();
    return Math.max(0, Math.ceil((this.deadlineOf(id, rec.ttlSec, now) - now) / 1000));
  }

  /**
   * Tells the leader a lease was just granted (applied): its deadline is now + ttl even if a lease
   * with the same id was revoked since the last check (otherwise it would inherit the old deadline
   * for up to one check interval). Optional: without it, a lease's clock starts when first seen.
   */
  granted(id: number, ttlSec: number): void {
    if (!this.leader || this.closed) return;
    this.deadlines.set(id, this.now() + ttlSec * 1000);
  }

  /**
   * One expiry check (the timer calls it every checkIntervalMs; tests may call it directly):
   * picks up new leases, forgets revoked ones, and proposes a revoke for each expired lease that
   * has none in flight, within the bound. Returns how many revokes it started.
   */
  checkExpired(): number {
    if (!this.leader || this.closed) return 0;
    const now = this.now();
    const current = this.leases();
    for (const id of this.deadlines.keys()) if (!current.has(id)) this.deadlines.delete(id);
    let started = 0;
    for (const [id, rec] of current) {
      const deadline = this.deadlineOf(id, rec.ttlSec, now);
      if (deadline > now || this.inFlight.has(id)) continue;
      if (this.inFlight.size >= this.maxRevokesInFlight) break; // the rest wait for the next check
      this.startRevoke(id);
      started++;
    }
    return started;
  }

  stats(): LessorStats {
    return {
      isLeader: this.leader,
      tracked: this.deadlines.size,
      revokesInFlight: this.inFlight.size,
      revokesFailed: this.revokesFailed,
      revokesDone: this.revokesDone,
    };
  }

  /** Stops the timer; later calls do nothing (revokes in flight finish on their own). */
  close(): void {
    this.closed = true;
    this.leader = false;
    this.epoch++;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.deadlines.clear();
    this.inFlight.clear();
  }

  private deadlineOf(id: number, ttlSec: number, now: number): number {
    let d = this.deadlines.get(id);
    if (d === undefined) {
      d = now + ttlSec * 1000;
      this.deadlines.set(id, d);
    }
    return d;
  }

  private startRevoke(id: number): void {
    const epoch = this.epoch;
    this.inFlight.add(id);
    const settle = (err: unknown): void => {
      if (epoch !== this.epoch) return; // leadership changed meanwhile: that term's bookkeeping is gone
      this.inFlight.delete(id);
      if (err === undefined) {
        this.revokesDone++;
        this.deadlines.delete(id);
      } else {
        this.revokesFailed++;
        this.log?.warn({ leaseId: id, err }, 'lessor: revoking an expired lease failed; retrying at the next check');
      }
    };
    let p: Promise<void>;
    try {
      p = this.revokeFn(id);
    } catch (e) {
      settle(e ?? new Error('revoke threw'));
      return;
    }
    p.then(
      () => settle(undefined),
      (e: unknown) => settle(e ?? new Error('revoke failed')),
    );
  }
}
