// The driver: the real-world half of a Raft node. The core (core/raft.ts) is a pure state machine;
// the driver gives it a clock, a disk, a network and clients:
//
//   clock     setInterval(tickMs) → core.tick()
//   network   transport.onMessage(m) → core.step(m)
//   clients   propose(data) / read() → a bounded queue, flushed into the core once per loop turn
//   the Ready loop (one Ready in flight at a time):
//     1. persist hard state + entries, fsync'd (Figure 2: "updated on stable storage before responding to RPCs")
//     2. send messages (only now: durability before acknowledgement)
//     3. apply committed entries to the state machine, resolve the proposals they complete
//     4. answer reads whose read index is applied (thesis §6.4), fail the reads the core gave up on
//     5. core.advance(ready)
//
// While step 1 waits for the disk, messages, ticks and client requests keep arriving; they
// accumulate in the core (and in the proposal queue) and go out together in the next Ready.
// That is group commit: one fsync covers every entry that arrived during the previous one.

import { EventEmitter } from 'node:events';
import pino, { type Logger } from 'pino';

import { RaftNode } from '../core/raft.js';
import { RaftError, isRaftError, type RaftErrorCode } from '../core/errors.js';
import { EMPTY_HARD_STATE } from '../core/types.js';
import type {
  Entry,
  HardState,
  NodeId,
  RaftConfig,
  RaftStatus,
  Ready,
  RestoredState,
  Role,
  SoftState,
} from '../core/types.js';
import type { LogStorage } from '../storage/types.js';
import type { Transport } from '../transport/types.js';

/** What the driver applies committed entries to. Called in log order, each index once per process lifetime. */
export interface StateMachine {
  apply(entry: Entry): void;
}

export interface RaftDriverOptions {
  /** The core's configuration (id, peers, timeouts in ticks, randomSeed, ...). */
  readonly config: RaftConfig;
  readonly storage: LogStorage;
  readonly transport: Transport;
  readonly stateMachine: StateMachine;
  /** State already read from `storage`; when absent, start() calls storage.load(). */
  readonly restored?: RestoredState;
  /** Wall-clock length of one logical tick. Default 100 ms. */
  readonly tickMs?: number;
  /**
   * Bound on client proposals held by the driver: queued for the core plus appended and awaiting
   * apply. At the bound propose() rejects at once with QUEUE_FULL (back-pressure). Default 16384.
   */
  readonly maxQueuedProposals?: number;
  /** Bound on reads held by the driver (waiting for a read index or for apply). At the bound: QUEUE_FULL. Default 65536. */
  readonly maxQueuedReads?: number;
  /** At most this many proposals go into one core.propose() batch. Default 1024. */
  readonly maxBatchEntries?: number;
  /** At most this many payload bytes go into one core.propose() batch (a single larger proposal still goes alone). Default 1 MiB. */
  readonly maxBatchBytes?: number;
  /** Bound on one proposal's payload. Larger ones are rejected with BAD_REQUEST. Default 1 MiB. */
  readonly maxProposalBytes?: number;
  /** Deadline of a propose()/read() when the caller gives none. Default 10 000 ms. */
  readonly defaultTimeoutMs?: number;
  readonly logger?: Logger;
}

export interface ProposeOptions {
  /** After this, the promise rejects with TIMEOUT (the entry may still commit later). */
  readonly timeoutMs?: number;
}

export interface ReadOptions {
  readonly timeoutMs?: number;
}

export interface ProposeAck {
  readonly index: number;
  readonly term: number;
}

export interface ReadAck {
  /** The read index: the state machine has applied at least this far, so a read now is linearizable. */
  readonly index: number;
}

export interface DriverStatus extends RaftStatus {
  /** Proposals waiting to enter the core plus proposals appended and waiting to be applied. */
  readonly pendingProposals: number;
  /** Reads waiting for a read index or for apply. */
  readonly pendingReads: number;
  readonly running: boolean;
}

export interface RoleChange {
  readonly previous: SoftState;
  readonly current: SoftState;
}

export interface RaftDriverEvents {
  /** The core's soft state (role, leader or term) changed. */
  role: [RoleChange];
  /** Storage or the state machine failed; the driver has stopped itself. */
  fatal: [Error];
}

interface Deferred<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: RaftError) => void;
  readonly deadlineMs: number;
}

interface QueuedProposal extends Deferred<ProposeAck> {
  readonly data: Uint8Array;
}

/** A proposal the core accepted: it will be acknowledged when `index` is applied with `term`. */
interface AppendedProposal extends Deferred<ProposeAck> {
  readonly index: number;
  readonly term: number;
}

interface PendingRead extends Deferred<ReadAck> {
  /** Set once the core has answered with a read index. */
  index: number | null;
}

const DEFAULTS = {
  tickMs: 100,
  maxQueuedProposals: 16_384,
  maxQueuedReads: 65_536,
  maxBatchEntries: 1024,
  maxBatchBytes: 1 << 20,
  maxProposalBytes: 1 << 20,
  defaultTimeoutMs: 10_000,
} as const;

type DriverState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

export class RaftDriver extends EventEmitter<RaftDriverEvents> {
  private readonly opts: RaftDriverOptions;
  private readonly tickMs: number;
  private readonly maxQueuedProposals: number;
  private readonly maxQueuedReads: number;
  private readonly maxBatchEntries: number;
  private readonly maxBatchBytes: number;
  private readonly maxProposalBytes: number;
  private readonly defaultTimeoutMs: number;
  private readonly log: Logger;

  private core: RaftNode | null = null;
  private state: DriverState = 'new';
  private ticker: NodeJS.Timeout | null = null;
  /** The Ready loop currently running, if any: at most one Ready is in flight. */
  private loop: Promise<void> | null = null;
  private loopScheduled = false;
  private stopping: Promise<void> | null = null;
  /** The hard state last written to storage. */
  private savedHardState: HardState = EMPTY_HARD_STATE;
  /** A newer hard state that differs from the saved one only in its commit index (not yet written; see handleReady). */
  private unsavedHardState: HardState | null = null;
  private fatalError: Error | null = null;

  private softState: SoftState = { role: 'follower', leader: null, term: 0 };
  private applied = 0;

  /** FIFO of proposals not yet handed to the core. */
  private readonly proposalQueue: QueuedProposal[] = [];
  /** Proposals in the core's log, by index, waiting to be applied. */
  private readonly appended = new Map<number, AppendedProposal>();
  /** Reads not yet handed to the core. */
  private readonly readQueue: number[] = [];
  /** Every read the driver holds, by request id (queued, waiting for an index, or waiting for apply). */
  private readonly reads = new Map<number, PendingRead>();
  /** Ids of reads that have a read index and wait for apply to reach it (a subset of `reads`; stale ids are skipped). */
  private readonly readsAwaitingApply = new Set<number>();
  private nextReadId = 1;

  constructor(opts: RaftDriverOptions) {
    super();
    this.opts = opts;
    this.tickMs = positive('tickMs', opts.tickMs ?? DEFAULTS.tickMs);
    this.maxQueuedProposals = positive('maxQueuedProposals', opts.maxQueuedProposals ?? DEFAULTS.maxQueuedProposals);
    this.maxQueuedReads = positive('maxQueuedReads', opts.maxQueuedReads ?? DEFAULTS.maxQueuedReads);
    this.maxBatchEntries = positive('maxBatchEntries', opts.maxBatchEntries ?? DEFAULTS.maxBatchEntries);
    this.maxBatchBytes = positive('maxBatchBytes', opts.maxBatchBytes ?? DEFAULTS.maxBatchBytes);
    this.maxProposalBytes = positive('maxProposalBytes', opts.maxProposalBytes ?? DEFAULTS.maxProposalBytes);
    this.defaultTimeoutMs = positive('defaultTimeoutMs', opts.defaultTimeoutMs ?? DEFAULTS.defaultTimeoutMs);
    this.log = opts.logger ?? pino({ level: 'silent' });
  }

  /**
   * Loads the log (unless given), builds the core, starts the transport and the clock.
   * Rejects with RaftError('STORAGE_CORRUPT') if the stored log fails verification.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new RaftError('BAD_REQUEST', `driver cannot start: it is ${this.state}`);
    this.state = 'starting';
    const restored = this.opts.restored ?? (await this.opts.storage.load());
    if (this.stopRequested()) return;
    const core = new RaftNode(this.opts.config, restored);
    this.core = core;
    this.savedHardState = restored.hardState;
    const st = core.status();
    this.softState = { role: st.role, leader: st.leader, term: st.term };
    this.opts.transport.onMessage((message) => {
      if (this.state !== 'running') return;
      core.step(message);
      this.schedule();
    });
    await this.opts.transport.start();
    if (this.stopRequested()) return; // stop() was called while starting
    this.state = 'running';
    this.ticker = setInterval(() => this.onTick(), this.tickMs);
    this.log.info(
      { id: this.opts.config.id, term: st.term, lastIndex: st.lastIndex, commit: restored.hardState.commit, tickMs: this.tickMs },
      'raft driver started',
    );
    this.schedule();
  }

  /**
   * Stops the clock, lets the Ready in flight finish (its fsync completes), fails every pending
   * request with STOPPED, and closes the transport and the storage.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const wasStarted = this.state !== 'new';
    this.state = 'stopping'; // synchronously: the loop exits after the Ready in flight
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    if (this.loop) await this.loop;
    this.failAll('STOPPED', this.fatalError ? `the node stopped after a fatal error: ${this.fatalError.message}` : 'the node is stopping');
    if (this.unsavedHardState !== null && this.fatalError === null) {
      // Best effort: a restart then re-applies up to the latest commit without asking the leader.
      const hardState = this.unsavedHardState;
      await this.opts.storage
        .save({ hardState, entries: [] })
        .then(() => (this.savedHardState = hardState))
        .catch((e: unknown) => this.log.warn({ err: e }, 'could not save the last commit index'));
      this.unsavedHardState = null;
    }
    if (wasStarted) {
      await this.opts.transport.close().catch((e: unknown) => this.log.warn({ err: e }, 'transport close failed'));
    }
    await this.opts.storage.close().catch((e: unknown) => this.log.warn({ err: e }, 'storage close failed'));
    this.state = 'stopped';
    this.log.info({ id: this.opts.config.id }, 'raft driver stopped');
  }

  /**
   * Appends `data` to the replicated log. Resolves once the entry is applied locally at the index
   * and term the core assigned it. Rejects with:
   *   NOT_LEADER (leaderHint) / NO_LEADER at once when this node is not the leader;
   *   QUEUE_FULL at once when maxQueuedProposals are already held;
   *   UNCOMMITTED_LIMIT when the core refuses to grow an uncommitted log (no quorum acknowledging);
   *   PROPOSAL_DROPPED when another entry was committed at its index (it certainly did not commit);
   *   LEADERSHIP_LOST when this node stopped leading before it was applied (outcome unknown);
   *   TIMEOUT after the deadline (outcome unknown); STOPPED when the node stops.
   */
  propose(data: Uint8Array, opts: ProposeOptions = {}): Promise<ProposeAck> {
    const refused = this.refuseWrite(data);
    if (refused) return Promise.reject(refused);
    return new Promise<ProposeAck>((resolve, reject) => {
      const deadlineMs = Date.now() + (opts.timeoutMs ?? this.defaultTimeoutMs);
      this.proposalQueue.push({ data, resolve, reject, deadlineMs });
      this.schedule();
    });
  }

  /**
   * A linearizable read barrier (thesis §6.4): resolves with a read index once this node's state
   * machine has applied at least that far, so state read right after reflects every write
   * acknowledged before read() was called. Rejects with NOT_LEADER / NO_LEADER / LEADERSHIP_LOST /
   * READ_QUEUE_FULL (from the core), QUEUE_FULL, TIMEOUT or STOPPED.
   */
  read(opts: ReadOptions = {}): Promise<ReadAck> {
    if (this.state !== 'running') return Promise.reject(new RaftError('STOPPED', 'the node is not running'));
    if (this.reads.size >= this.maxQueuedReads) {
      return Promise.reject(new RaftError('QUEUE_FULL', `${this.reads.size} reads are already waiting (maxQueuedReads)`));
    }
    return new Promise<ReadAck>((resolve, reject) => {
      const id = this.nextReadId++;
      const deadlineMs = Date.now() + (opts.timeoutMs ?? this.defaultTimeoutMs);
      this.reads.set(id, { resolve, reject, deadlineMs, index: null });
      this.readQueue.push(id);
      this.schedule();
    });
  }

  status(): DriverStatus {
    if (!this.core) {
      return {
        id: this.opts.config.id,
        role: 'follower',
        term: 0,
        vote: null,
        leader: null,
        commit: 0,
        applied: 0,
        lastIndex: 0,
        lastTerm: 0,
        progress: {},
        // Not started: the bootstrap configuration (issue 3 status fields).
        config: { voters: [...this.opts.config.peers], learners: [...(this.opts.config.learners ?? [])] },
        configIndex: 0,
        snapshotIndex: 0,
        firstIndex: 1,
        transferee: null,
        pendingProposals: 0,
        pendingReads: 0,
        running: false,
      };
    }
    return {
      ...this.core.status(),
      applied: this.applied,
      pendingProposals: this.proposalQueue.length + this.appended.size,
      pendingReads: this.reads.size,
      running: this.state === 'running',
    };
  }

  private stopRequested(): boolean {
    return this.stopping !== null;
  }

  get role(): Role {
    return this.softState.role;
  }

  get leader(): NodeId | null {
    return this.softState.leader;
  }

  // ---------------------------------------------------------------------------------------------
  // The clock and the loop.

  private onTick(): void {
    if (this.state !== 'running' || !this.core) return;
    this.core.tick();
    this.expireDeadlines(Date.now());
    this.schedule();
  }

  /** Runs the Ready loop soon, unless it is running (it re-checks for work before it exits). */
  private schedule(): void {
    if (this.loop || this.loopScheduled || this.state !== 'running') return;
    this.loopScheduled = true;
    // setImmediate, not a microtask: lets messages already in the socket buffers reach the core first.
    setImmediate(() => {
      this.loopScheduled = false;
      if (this.loop || this.state !== 'running') return;
      this.loop = this.runLoop().finally(() => {
        this.loop = null;
        // Work that arrived during the last await but after the last check.
        if (this.hasWork()) this.schedule();
      });
    });
  }

  private hasWork(): boolean {
    return (
      this.state === 'running' &&
      this.core !== null &&
      (this.proposalQueue.length > 0 || this.readQueue.length > 0 || this.core.hasReady())
    );
  }

  private async runLoop(): Promise<void> {
    const core = this.core;
    if (!core) return;
    try {
      while (this.state === 'running') {
        this.flushProposals(core);
        this.flushReads(core);
        if (!core.hasReady()) return;
        await this.handleReady(core, core.ready());
      }
    } catch (e) {
      this.fatal(e);
    }
  }

  private async handleReady(core: RaftNode, ready: Ready): Promise<void> {
    // 1. Durability first (Figure 2): term, vote and entries are on disk before anyone hears of them.
    //    The commit index is volatile state in Figure 2: nothing anyone is told depends on it being
    //    on disk (a restart with an older commit re-learns it from the leader). So a Ready whose
    //    only durable change is the commit index does not wait for an fsync; that hard state rides
    //    along with the next save (or the final one in stop()). This keeps one fsync per commit off
    //    the critical path of every write and every heartbeat at followers (etcd's MustSync rule).
    let hardState = ready.hardState;
    const saved = this.savedHardState;
    if (hardState !== null && ready.entries.length === 0 && hardState.term === saved.term && hardState.vote === saved.vote) {
      this.unsavedHardState = hardState;
      hardState = null;
    } else if (hardState === null && ready.entries.length > 0) {
      hardState = this.unsavedHardState;
    }
    if (hardState !== null || ready.entries.length > 0) {
      await this.opts.storage.save({ hardState, entries: ready.entries });
      if (hardState !== null) {
        this.savedHardState = hardState;
        this.unsavedHardState = null;
      }
    }
    // 2. Now the messages that depend on that state may leave.
    if (ready.messages.length > 0) this.opts.transport.send(ready.messages);
    // 3. Apply committed entries in order; each completes the proposal waiting at its index.
    for (const entry of ready.committedEntries) {
      if (entry.index !== this.applied + 1) {
        throw new Error(`committed entry ${entry.index} does not follow applied index ${this.applied}`);
      }
      this.opts.stateMachine.apply(entry);
      this.applied = entry.index;
      const waiting = this.appended.get(entry.index);
      if (waiting) {
        this.appended.delete(entry.index);
        if (entry.term === waiting.term) waiting.resolve({ index: entry.index, term: entry.term });
        else {
          waiting.reject(
            new RaftError(
              'PROPOSAL_DROPPED',
              `entry ${entry.index} was proposed at term ${waiting.term} but term ${entry.term}'s entry was committed there`,
            ),
          );
        }
      }
    }
    // Role changes are handled after applying, so a proposal committed just before a step-down still succeeds.
    if (ready.softState) this.onSoftState(ready.softState);
    // 4. Reads: the core's answers, then every read whose index is now applied.
    for (const rs of ready.readStates) {
      const read = this.reads.get(rs.requestId);
      if (read) {
        read.index = rs.index;
        this.readsAwaitingApply.add(rs.requestId);
      }
    }
    for (const fr of ready.failedReads) {
      const read = this.reads.get(fr.requestId);
      if (!read) continue;
      this.reads.delete(fr.requestId);
      read.reject(new RaftError(fr.code, fr.message, fr.code === 'NOT_LEADER' ? this.softState.leader : null));
    }
    this.resolveAppliedReads();
    // 5. Tell the core its Ready was carried out (a leader now counts its own entries, §5.3-5.4).
    core.advance(ready);
  }

  // ---------------------------------------------------------------------------------------------
  // Client requests.

  private refuseWrite(data: Uint8Array): RaftError | null {
    if (this.state !== 'running') return new RaftError('STOPPED', 'the node is not running');
    if (!(data instanceof Uint8Array)) return new RaftError('BAD_REQUEST', 'proposal data must be bytes');
    if (data.byteLength > this.maxProposalBytes) {
      return new RaftError('BAD_REQUEST', `proposal of ${data.byteLength} bytes exceeds maxProposalBytes=${this.maxProposalBytes}`);
    }
    // Followers do not forward proposals: the client is redirected to the leader (NOT_LEADER + hint).
    // The core's own check in propose() stays authoritative; this one only answers early. The
    // driver's view of the role lags the core's by up to one Ready, so a refusal is confirmed
    // with the core itself (a just-elected leader must not turn writes away).
    if (this.softState.role !== 'leader' && this.core) {
      const st = this.core.status();
      if (st.role !== 'leader') return notLeader(st.leader);
    }
    if (this.proposalQueue.length + this.appended.size >= this.maxQueuedProposals) {
      return new RaftError(
        'QUEUE_FULL',
        `${this.proposalQueue.length + this.appended.size} proposals are already pending (maxQueuedProposals=${this.maxQueuedProposals})`,
      );
    }
    return null;
  }

  /** Hands at most one bounded batch of queued proposals to the core. */
  private flushProposals(core: RaftNode): void {
    if (this.proposalQueue.length === 0) return;
    let count = 0;
    let bytes = 0;
    while (count < this.proposalQueue.length && count < this.maxBatchEntries) {
      const size = this.proposalQueue[count]!.data.byteLength;
      if (count > 0 && bytes + size > this.maxBatchBytes) break;
      bytes += size;
      count++;
    }
    const batch = this.proposalQueue.splice(0, count);
    let result;
    try {
      result = core.propose(batch.map((p) => p.data));
    } catch (e) {
      if (!isRaftError(e)) throw e; // a bug in the core: fatal, not a client error
      const err = e;
      for (const p of batch) p.reject(err);
      // NOT_LEADER / NO_LEADER hold for everything still queued too.
      if (err.code === 'NOT_LEADER' || err.code === 'NO_LEADER') this.rejectQueued(err);
      return;
    }
    if (result.lastIndex - result.firstIndex + 1 !== batch.length) {
      throw new Error(`core appended ${result.lastIndex - result.firstIndex + 1} entries for a batch of ${batch.length}`);
    }
    batch.forEach((p, i) => {
      this.appended.set(result.firstIndex + i, {
        index: result.firstIndex + i,
        term: result.term,
        resolve: p.resolve,
        reject: p.reject,
        deadlineMs: p.deadlineMs,
      });
    });
  }

  private flushReads(core: RaftNode): void {
    if (this.readQueue.length === 0) return;
    // Reads that expired while queued are dropped here.
    const ids = this.readQueue.splice(0, this.readQueue.length).filter((id) => this.reads.has(id));
    if (ids.length > 0) core.readIndex(ids);
  }

  private resolveAppliedReads(): void {
    // Only reads that have their read index are looked at (a small set: one heartbeat round's worth).
    for (const id of this.readsAwaitingApply) {
      const read = this.reads.get(id);
      if (read === undefined) {
        this.readsAwaitingApply.delete(id); // failed or expired meanwhile
      } else if (read.index !== null && read.index <= this.applied) {
        this.readsAwaitingApply.delete(id);
        this.reads.delete(id);
        read.resolve({ index: read.index });
      }
    }
  }

  private onSoftState(next: SoftState): void {
    const previous = this.softState;
    this.softState = next;
    if (previous.role === next.role && previous.leader === next.leader && previous.term === next.term) return;
    this.log.info({ id: this.opts.config.id, role: next.role, term: next.term, leader: next.leader, was: previous.role }, 'role change');
    // A proposal appended in an earlier leadership may or may not commit under the next leader:
    // its outcome is unknown, and the client must be told so now rather than wait for a timeout.
    if (next.role !== 'leader' || next.term !== previous.term) {
      for (const [index, p] of this.appended) {
        if (next.role === 'leader' && p.term === next.term) continue;
        this.appended.delete(index);
        p.reject(
          new RaftError(
            'LEADERSHIP_LOST',
            `this node stopped leading term ${p.term} before entry ${index} was applied; it may or may not commit`,
            next.leader,
          ),
        );
      }
      if (next.role !== 'leader') this.rejectQueued(notLeader(next.leader));
    }
    // With no leader known, a read can finish only through a leader that does not exist yet: one
    // forwarded to the old leader may never be answered, one that has its index may wait for a
    // commit nobody will send. Fail them now (failing a read is always safe) rather than hang.
    if (next.leader === null && next.role !== 'leader') {
      for (const [id, read] of this.reads) {
        if (read.index !== null && read.index <= this.applied) continue;
        this.reads.delete(id);
        read.reject(new RaftError('NO_LEADER', 'no leader is known: an election is under way or no quorum is reachable'));
      }
    }
    this.emit('role', { previous, current: next });
  }

  private rejectQueued(err: RaftError): void {
    for (const p of this.proposalQueue.splice(0, this.proposalQueue.length)) p.reject(err);
  }

  private expireDeadlines(nowMs: number): void {
    const timeout = (what: string): RaftError => new RaftError('TIMEOUT', `${what} did not finish before its deadline; its outcome is unknown`);
    for (let i = this.proposalQueue.length - 1; i >= 0; i--) {
      const p = this.proposalQueue[i]!;
      if (p.deadlineMs <= nowMs) {
        this.proposalQueue.splice(i, 1);
        p.reject(timeout('the proposal'));
      }
    }
    for (const [index, p] of this.appended) {
      if (p.deadlineMs <= nowMs) {
        this.appended.delete(index);
        p.reject(timeout(`the proposal at index ${index}`));
      }
    }
    for (const [id, read] of this.reads) {
      if (read.deadlineMs <= nowMs) {
        this.reads.delete(id);
        // A read still in readQueue is simply ignored by the core's answer (no entry in `reads`).
        read.reject(timeout('the read'));
      }
    }
  }

  private failAll(code: RaftErrorCode, message: string): void {
    const err = new RaftError(code, message);
    this.rejectQueued(err);
    for (const p of this.appended.values()) p.reject(err);
    this.appended.clear();
    for (const r of this.reads.values()) r.reject(err);
    this.reads.clear();
    this.readsAwaitingApply.clear();
    this.readQueue.length = 0;
  }

  /**
   * A failed save (or a broken state machine) is not retried: after a failed fsync the file's
   * contents are unknown, and continuing could acknowledge state that is not on disk. Stop.
   */
  private fatal(e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    this.fatalError = err;
    this.log.fatal({ err, id: this.opts.config.id }, 'fatal error in the Ready loop: stopping this node');
    void this.stop();
    this.emit('fatal', err);
  }
}

function notLeader(leader: NodeId | null): RaftError {
  return leader === null
    ? new RaftError('NO_LEADER', 'no leader is known: an election is under way or no quorum is reachable')
    : new RaftError('NOT_LEADER', `this node is not the leader; try ${leader}`, leader);
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RaftError('BAD_REQUEST', `${name} must be a positive number, got ${value}`);
  return value;
}
