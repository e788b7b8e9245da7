// The driver: the real-world half of a Raft node. The core (core/raft.ts) is a pure state machine;
// the driver gives it a clock, a disk, a network and clients:
//
//   clock     setInterval(tickMs) → core.tick()
//   network   transport.onMessage(m) → core.step(m)
//   clients   propose(data) / read() → a bounded queue, flushed into the core once per loop turn
//   the Ready loop (one Ready in flight at a time):
//     1. persist hard state + entries, fsync'd (Figure 2: "updated on stable storage before responding to RPCs");
//        a leader sends its AppendEntries/Heartbeats while its own fsync runs (thesis §10.2.1),
//        and committed entries persisted by earlier Readys are applied meanwhile (step 3, early)
//     2. send the other messages (only now: durability before acknowledgement)
//     3. apply committed entries to the state machine, resolve the proposals they complete
//     4. answer reads whose read index is applied (thesis §6.4), fail the reads the core gave up on
//     5. core.advance(ready)
//
// While step 1 waits for the disk, messages, ticks and client requests keep arriving; they
// accumulate in the core (and in the proposal queue) and go out together in the next Ready.
// That is group commit: one fsync covers every entry that arrived during the previous one.
//
// Snapshots (§7, thesis §5), when a SnapshotStore and a snapshot-capable state machine are given:
//   compaction   once `snapshotEntries` entries (or `snapshotBytes` payload bytes) were applied
//                since the last snapshot, the state machine's image at the applied index is
//                written to a snapshot file (durable first), the log storage records it and drops
//                entries up to `snapshotTrailingEntries` before it (one atomic batch), then the core
//                compacts. Runs beside the Ready loop; one at a time.
//   sending      an InstallSnapshot in a Ready is not sent as a message: the snapshot's file is
//                streamed to the follower by the SnapshotSender (node/snapshot-stream.ts), and
//                the outcome goes back to the core (reportSnapshot).
//   receiving    the stream receiver hands the driver the verified file and the InstallSnapshot
//                (deliverSnapshot); the core then answers with Ready.snapshot, and the driver
//                switches it in before anything else in that Ready: log storage reset (with the
//                hard state and any new entries, one atomic batch), state machine restored.
//   restart      the state machine is restored from the snapshot the log storage records, and
//                the core re-applies the committed entries after it.

import { EventEmitter } from 'node:events';
import pino, { type Logger } from 'pino';

import { RaftNode } from '../core/raft.js';
import { RaftError, isRaftError, type RaftErrorCode } from '../core/errors.js';
import { EMPTY_HARD_STATE } from '../core/types.js';
import { decodeConfChange } from '../core/membership.js';
import type {
  ClusterConfig,
  ConfChange,
  Entry,
  HardState,
  InstallSnapshot,
  NodeId,
  RaftConfig,
  RaftStatus,
  Ready,
  RestoredState,
  Role,
  SnapshotMeta,
  SoftState,
} from '../core/types.js';
import type { LogStorage } from '../storage/types.js';
import type { SnapshotHeader, SnapshotStore, VerifiedSnapshot } from '../storage/snapshot.js';
import type { Transport } from '../transport/types.js';

/** A position in the log: the last entry a snapshot covers. */
export interface SnapshotPoint {
  readonly index: number;
  readonly term: number;
}

/**
 * What the driver applies committed entries to (the key-value store implements the same contract).
 *
 * apply(entry): called in log order, each index at most once per process lifetime, never
 *   concurrently with restore().
 *
 * Snapshots (optional; without both methods the driver never compacts the log, and cannot take a
 * snapshot from the leader, so a follower that fell behind a compacted leader stays behind):
 *
 * snapshot(at): called synchronously right after the entry `at.index` was applied and before the
 *   next apply(). It must capture the state as of that moment (a copy, a copy-on-write view or a
 *   storage-engine snapshot) and return the bytes lazily: the driver consumes the iterable later,
 *   while apply() goes on, writing each chunk to disk before pulling the next, so memory stays
 *   bounded by the chunk size the state machine chooses (256 KiB - 1 MiB is sensible).
 * restore(at, data): replaces the whole state with the image `data` yields (what an earlier
 *   snapshot() produced, possibly on another node), after which the state machine has applied
 *   exactly up to `at.index`. Called at startup (from the snapshot the log storage records) and
 *   when the leader installs a snapshot; the driver awaits it before applying anything else. A
 *   state machine that persists itself must make restore idempotent: after a crash the driver
 *   restores again from the recorded snapshot.
 */
export interface StateMachine {
  apply(entry: Entry): void;
  snapshot?(at: SnapshotPoint): AsyncIterable<Uint8Array>;
  restore?(at: SnapshotPoint, data: AsyncIterable<Uint8Array>): Promise<void>;
}

/** Streams snapshot files to followers (node/snapshot-stream.ts: SnapshotStreamer). */
export interface SnapshotSender {
  /**
   * Streams `file` to `message.to` and, once the receiver holds it whole and verified, has it
   * step `message` into its core. Rejects if the stream cannot be completed (after retries).
   */
  send(message: InstallSnapshot, file: VerifiedSnapshot): Promise<void>;
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
   * How fast this node's clock runs: ticks come every tickMs / tickRate ms of real time (1.5 =
   * 50% fast). Default 1. Only chaos experiments set it: Raft's safety never depends on clocks,
   * but its liveness and lease reads do (thesis §6.4.1 assumes bounded clock drift).
   */
  readonly tickRate?: number;
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
  /** Where snapshot files live. Without it (or without StateMachine.snapshot/restore) the log is never compacted. */
  readonly snapshots?: SnapshotStore;
  /** Streams InstallSnapshot data to followers. Without it, an InstallSnapshot is reported failed at once. */
  readonly snapshotSender?: SnapshotSender;
  /** The verified file of `restored.snapshot`, if the caller already verified it (else start() does). */
  readonly restoredSnapshotFile?: VerifiedSnapshot;
  /** Take a snapshot once this many entries were applied since the last one. Default 10 000. */
  readonly snapshotEntries?: number;
  /** ...or once this many payload bytes were applied since the last one. Default 64 MiB. */
  readonly snapshotBytes?: number;
  /**
   * Entries kept in the log before a new snapshot's index, so a follower slightly behind catches
   * up from the log rather than by a whole snapshot. Default 5 000.
   */
  readonly snapshotTrailingEntries?: number;
  /** The members' addresses to record in a snapshot's header (see storage/snapshot.ts). */
  readonly snapshotAddresses?: () => Readonly<Record<NodeId, string>>;
}

export interface TransferOptions {
  /** Give up (TIMEOUT) after this long. Default: 2 election timeouts' worth of ticks, at least 1 s. */
  readonly timeoutMs?: number;
}

export interface TransferAck {
  readonly leader: NodeId;
  readonly term: number;
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
  /** The configuration in effect changed (an appended or truncated config entry, or a snapshot). */
  config: [ClusterConfig];
  /** A config entry was appended to the log (it takes effect now, thesis §4.1); carries e.g. the address. */
  confChange: [{ readonly index: number; readonly change: ConfChange }];
  /** A snapshot from the leader was switched in (its header carries the members' addresses). */
  snapshotInstalled: [SnapshotHeader];
  /** A snapshot of the local state machine was written and the log compacted. */
  snapshotTaken: [{ readonly index: number; readonly term: number; readonly fileBytes: number; readonly discardedUpTo: number }];
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
  /** Appended before this node handed leadership over (thesis §3.10): kept across the step-down. */
  handedOver?: boolean;
}

interface PendingRead extends Deferred<ReadAck> {
  /** Set once the core has answered with a read index. */
  index: number | null;
}

const DEFAULTS = {
  snapshotEntries: 10_000,
  snapshotBytes: 64 * 1024 * 1024,
  snapshotTrailingEntries: 5_000,
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
  /** The clock's rate (see RaftDriverOptions.tickRate); setTickRate() changes it. */
  private tickRate = 1;
  /** Ticks handed to the core since start (observable: a faster clock makes it grow faster). */
  private ticksDone = 0;
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

  // Snapshots.
  private readonly snapshotEntries: number;
  private readonly snapshotBytes: number;
  private readonly snapshotTrailingEntries: number;
  /** The latest snapshot of this node (taken or installed), verified. */
  private latestSnapshot: VerifiedSnapshot | null = null;
  /** Payload bytes applied since the latest snapshot. */
  private bytesSinceSnapshot = 0;
  /** The snapshot being written (at most one). */
  private snapshotting: Promise<void> | null = null;
  /** No new snapshot attempt before this time (after a failure). */
  private snapshotRetryAtMs = 0;
  /** Files received from a leader, verified, waiting for the core's Ready.snapshot (at most 4). */
  private readonly receivedSnapshots = new Map<string, VerifiedSnapshot>();
  /** Outgoing snapshot streams by follower. */
  private readonly sendingSnapshots = new Map<NodeId, string>();
  /** Driver-originated core calls (snapshot outcomes, compactions), run at the top of the loop. */
  private readonly coreInbox: ((core: RaftNode) => void)[] = [];
  /** The configuration last announced with the 'config' event. */
  private configKey = '';
  /** The term in which this node last started a leadership transfer (0: never). */
  private transferTerm = 0;
  /** A leadership transfer this node started, and who waits for it. */
  private transfer: { readonly to: NodeId; readonly deadlineMs: number; readonly waiters: Deferred<TransferAck>[] } | null = null;

  constructor(opts: RaftDriverOptions) {
    super();
    this.opts = opts;
    this.tickMs = positive('tickMs', opts.tickMs ?? DEFAULTS.tickMs);
    this.tickRate = positive('tickRate', opts.tickRate ?? 1);
    this.maxQueuedProposals = positive('maxQueuedProposals', opts.maxQueuedProposals ?? DEFAULTS.maxQueuedProposals);
    this.maxQueuedReads = positive('maxQueuedReads', opts.maxQueuedReads ?? DEFAULTS.maxQueuedReads);
    this.maxBatchEntries = positive('maxBatchEntries', opts.maxBatchEntries ?? DEFAULTS.maxBatchEntries);
    this.maxBatchBytes = positive('maxBatchBytes', opts.maxBatchBytes ?? DEFAULTS.maxBatchBytes);
    this.maxProposalBytes = positive('maxProposalBytes', opts.maxProposalBytes ?? DEFAULTS.maxProposalBytes);
    this.defaultTimeoutMs = positive('defaultTimeoutMs', opts.defaultTimeoutMs ?? DEFAULTS.defaultTimeoutMs);
    this.snapshotEntries = positive('snapshotEntries', opts.snapshotEntries ?? DEFAULTS.snapshotEntries);
    this.snapshotBytes = positive('snapshotBytes', opts.snapshotBytes ?? DEFAULTS.snapshotBytes);
    this.snapshotTrailingEntries = opts.snapshotTrailingEntries ?? DEFAULTS.snapshotTrailingEntries;
    if (!Number.isSafeInteger(this.snapshotTrailingEntries) || this.snapshotTrailingEntries < 0) {
      throw new RaftError('BAD_REQUEST', `snapshotTrailingEntries must be a non-negative integer, got ${this.snapshotTrailingEntries}`);
    }
    this.log = opts.logger ?? pino({ level: 'silent' });
  }

  /** Whether this driver takes snapshots and installs them (a store and a state machine that can). */
  get snapshotsEnabled(): boolean {
    const sm = this.opts.stateMachine;
    return this.opts.snapshots !== undefined && sm.snapshot !== undefined && sm.restore !== undefined;
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
    if (restored.snapshot !== undefined) {
      // The state machine restarts from the snapshot the log storage records; the core then
      // re-applies the committed entries after it (applied starts at snapshot.index).
      const { index, term } = restored.snapshot;
      const sm = this.opts.stateMachine;
      if (!this.snapshotsEnabled || sm.restore === undefined) {
        throw new RaftError('BAD_REQUEST', `the log starts after snapshot ${index}/${term}, but this driver has no snapshot store or a state machine that cannot restore`);
      }
      const file = this.opts.restoredSnapshotFile ?? (await this.opts.snapshots!.verify(index, term));
      if (file.index !== index || file.term !== term) {
        throw new RaftError('BAD_REQUEST', `restoredSnapshotFile is ${file.index}/${file.term}, the log storage records ${index}/${term}`);
      }
      await sm.restore({ index, term }, this.opts.snapshots!.readData(file));
      this.latestSnapshot = file;
      this.applied = index;
      if (this.stopRequested()) return;
    }
    // Files not recorded by the log storage are leftovers of a crash (an install or a compaction
    // cut short): the node restarts cleanly on its old state.
    if (this.opts.snapshots !== undefined) await this.opts.snapshots.prune(restored.snapshot ?? null);
    const core = new RaftNode(this.opts.config, restored);
    this.core = core;
    this.savedHardState = restored.hardState;
    const st = core.status();
    this.softState = { role: st.role, leader: st.leader, term: st.term };
    this.configKey = configKey(st.config);
    this.opts.transport.onMessage((message) => {
      if (this.state !== 'running') return;
      core.step(message);
      this.schedule();
    });
    await this.opts.transport.start();
    if (this.stopRequested()) return; // stop() was called while starting
    this.state = 'running';
    this.startTicker();
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
    if (this.snapshotting) await this.snapshotting;
    this.endTransfer(new RaftError('STOPPED', 'the node is stopping'));
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

  /** The logical clock: one core.tick() every tickMs / tickRate ms of real time. */
  private startTicker(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = setInterval(() => this.onTick(), this.tickRate === 1 ? this.tickMs : this.tickMs / this.tickRate);
  }

  /** Ticks handed to the core since start. */
  get ticks(): number {
    return this.ticksDone;
  }

  /** The clock's current rate (1 = real time). */
  get clockRate(): number {
    return this.tickRate;
  }

  /**
   * Changes how fast this node's logical clock runs (chaos experiments: clock-rate faults). Takes
   * effect at once; the next tick comes one new interval from now.
   */
  setTickRate(rate: number): void {
    this.tickRate = positive('tickRate', rate);
    if (this.state === 'running') this.startTicker();
  }

  private onTick(): void {
    if (this.state !== 'running' || !this.core) return;
    this.ticksDone++;
    this.core.tick();
    this.expireDeadlines(Date.now());
    if (this.transfer !== null) {
      this.checkTransfer(this.core.status());
    }
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
      (this.proposalQueue.length > 0 || this.readQueue.length > 0 || this.coreInbox.length > 0 || this.core.hasReady())
    );
  }

  private async runLoop(): Promise<void> {
    const core = this.core;
    if (!core) return;
    try {
      while (this.state === 'running') {
        for (const call of this.coreInbox.splice(0, this.coreInbox.length)) call(core);
        this.flushProposals(core);
        this.flushReads(core);
        if (!core.hasReady()) return;
        await this.handleReady(core, core.ready());
        this.afterReady(core);
      }
    } catch (e) {
      this.fatal(e);
    }
  }

  private async handleReady(core: RaftNode, ready: Ready): Promise<void> {
    // 0. A snapshot from the leader is switched in before anything else (see switchInSnapshot).
    let messages = ready.messages;
    /** ready.committedEntries before this position are applied already (step 1b). */
    let applyFrom = 0;
    if (ready.snapshot !== null) {
      await this.switchInSnapshot(ready);
    } else {
      // 1a. A leader's replication traffic leaves before its own fsync (thesis §10.2.1), so the
      //     followers' disks and the leader's work in parallel instead of one after the other.
      //     Safe because the core counts the leader's own copy toward a commit quorum only up to
      //     the entries confirmed durable by advance() (log.ts `stable`, leader.ts maybeCommit),
      //     and an entry is applied only after the Ready that persisted it. Only when term and
      //     vote are already on disk: every message still speaks for a durable term.
      if (messages.length > 0 && this.mayReplicateBeforeFsync(ready)) {
        const early = messages.filter((m) => m.type === 'AppendEntries' || m.type === 'Heartbeat');
        if (early.length > 0) {
          this.opts.transport.send(early);
          messages = early.length === messages.length ? [] : messages.filter((m) => m.type !== 'AppendEntries' && m.type !== 'Heartbeat');
        }
      }
      // 1b. Committed entries this Ready does not write were persisted by an earlier Ready
      //     (the core hands every entry out once, and each Ready is persisted before the next
      //     one starts), so they are applied while this Ready's fsync runs: an acknowledgement
      //     waits for its own entry to be durable on a majority (§5.3), not also for the next
      //     batch's local fsync. An entry this Ready writes (index >= its first entry, which
      //     may replace a stale local copy, §5.3) is applied after the write, in step 3.
      const saving = this.persist(ready);
      saving.catch(() => undefined); // awaited just below; a throw while applying must not leave it unhandled
      const firstWritten = ready.entries[0]?.index ?? Number.POSITIVE_INFINITY;
      while (applyFrom < ready.committedEntries.length && ready.committedEntries[applyFrom]!.index < firstWritten) {
        this.applyCommitted(ready.committedEntries[applyFrom]!);
        applyFrom++;
      }
      await saving;
    }
    this.announceConfChanges(ready.entries);
    // 2. Now the messages that depend on that state may leave. An InstallSnapshot is not a
    //    message on the wire: its data is streamed out of band (startSnapshotStream).
    if (messages.some((m) => m.type === 'InstallSnapshot')) {
      messages = messages.filter((m) => {
        if (m.type !== 'InstallSnapshot') return true;
        this.startSnapshotStream(m);
        return false;
      });
    }
    if (messages.length > 0) this.opts.transport.send(messages);
    // 3. Apply (the rest of the) committed entries in order.
    for (let i = applyFrom; i < ready.committedEntries.length; i++) this.applyCommitted(ready.committedEntries[i]!);
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

  /** Applies one committed entry (the next in order) and completes the proposal waiting at its index. */
  private applyCommitted(entry: Entry): void {
    if (entry.index !== this.applied + 1) {
      throw new Error(`committed entry ${entry.index} does not follow applied index ${this.applied}`);
    }
    this.opts.stateMachine.apply(entry);
    this.applied = entry.index;
    this.bytesSinceSnapshot += entry.data.byteLength;
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

  /**
   * True if this Ready's AppendEntries and Heartbeats may be sent before its entries are durable
   * here: this node leads (only a leader sends them) and the Ready's term and vote are the ones
   * already saved (a new term or vote is always durable before anyone hears of it, Figure 2).
   */
  private mayReplicateBeforeFsync(ready: Ready): boolean {
    if ((ready.softState ?? this.softState).role !== 'leader') return false;
    const hs = ready.hardState;
    const saved = this.savedHardState;
    return hs === null || (hs.term === saved.term && hs.vote === saved.vote);
  }

  /** Step 1 of a Ready without a snapshot: hard state and entries, durably (see handleReady). */
  private async persist(ready: Ready): Promise<void> {
    // Durability first (Figure 2): term, vote and entries are on disk before anyone hears of them.
    // The commit index is volatile state in Figure 2: nothing anyone is told depends on it being
    // on disk (a restart with an older commit re-learns it from the leader). So a Ready whose
    // only durable change is the commit index does not wait for an fsync; that hard state rides
    // along with the next save (or the final one in stop()). This keeps one fsync per commit off
    // the critical path of every write and every heartbeat at followers (etcd's MustSync rule).
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
  }

  /**
   * Step 0 (§7, receiver): the core accepted a snapshot whose data the stream receiver already
   * made durable and verified. Switch it in: ONE atomic batch resets the log storage to start
   * after it (with the Ready's hard state and entries), then the state machine is restored from
   * the file. A crash before the batch restarts on the old log and old snapshot (the new file is
   * not recorded, and is pruned); a crash after it restarts from the new snapshot.
   */
  private async switchInSnapshot(ready: Ready): Promise<void> {
    const meta = ready.snapshot!;
    const sm = this.opts.stateMachine;
    if (!this.snapshotsEnabled || sm.restore === undefined) {
      throw new Error(`the core installed snapshot ${meta.index}/${meta.term} but this driver cannot restore snapshots`);
    }
    const key = `${meta.index}/${meta.term}`;
    const file = this.receivedSnapshots.get(key) ?? (this.latestSnapshot?.index === meta.index && this.latestSnapshot.term === meta.term ? this.latestSnapshot : await this.opts.snapshots!.verify(meta.index, meta.term));
    const hardState = ready.hardState ?? this.unsavedHardState ?? this.savedHardState;
    await this.opts.storage.save({ snapshot: meta, hardState, entries: ready.entries });
    this.savedHardState = hardState;
    this.unsavedHardState = null;
    await sm.restore({ index: meta.index, term: meta.term }, this.opts.snapshots!.readData(file));
    const previousApplied = this.applied;
    this.applied = meta.index;
    this.latestSnapshot = file;
    this.bytesSinceSnapshot = 0;
    this.receivedSnapshots.clear();
    // Proposals whose index the snapshot covers were decided elsewhere; which entry won there is
    // not known here.
    for (const [index, p] of this.appended) {
      if (index > meta.index) continue;
      this.appended.delete(index);
      p.reject(new RaftError('LEADERSHIP_LOST', `entry ${index} was covered by a snapshot from the leader; its outcome is unknown here`));
    }
    this.log.info({ id: this.opts.config.id, index: meta.index, term: meta.term, previousApplied, fileBytes: file.fileBytes }, 'installed snapshot from the leader');
    this.emit('snapshotInstalled', file.header);
    // Newer files are kept: one may be a snapshot just received and waiting for the core.
    void this.opts.snapshots!.prune(meta, true).catch((e: unknown) => this.log.warn({ err: e }, 'could not prune snapshot files'));
  }

  /** Config entries take effect when appended (thesis §4.1): tell the node (addresses, peers). */
  private announceConfChanges(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.type !== 'config') continue;
      try {
        this.emit('confChange', { index: e.index, change: decodeConfChange(e.data) });
      } catch (err) {
        this.log.error({ err, index: e.index }, 'undecodable config entry');
      }
    }
  }

  /** After each Ready: configuration changes, a transfer that ended, and the compaction policy. */
  private afterReady(core: RaftNode): void {
    const st = core.status();
    const key = configKey(st.config);
    if (key !== this.configKey) {
      this.configKey = key;
      this.emit('config', st.config);
    }
    this.checkTransfer(st);
    this.maybeSnapshot(core, st.applied);
  }

  /**
   * The compaction policy (§7): once enough was applied since the last snapshot, snapshot the
   * state machine at the applied index and compact, keeping a trailing window of entries.
   */
  private maybeSnapshot(core: RaftNode, coreApplied: number): void {
    if (!this.snapshotsEnabled || this.opts.storage.compact === undefined || this.snapshotting !== null) return;
    const sinceIndex = this.latestSnapshot?.index ?? 0;
    const since = this.applied - sinceIndex;
    if (since <= 0 || (since < this.snapshotEntries && this.bytesSinceSnapshot < this.snapshotBytes)) return;
    if (coreApplied !== this.applied || Date.now() < this.snapshotRetryAtMs) return;
    const meta = core.snapshotMetaAt(this.applied);
    // Captured now, synchronously, at exactly meta.index; consumed while applies go on.
    let data: AsyncIterable<Uint8Array>;
    try {
      data = this.opts.stateMachine.snapshot!({ index: meta.index, term: meta.term });
    } catch (e) {
      // The log is intact without a snapshot: retry later rather than stop the node.
      this.snapshotRetryAtMs = Date.now() + 1000;
      this.log.warn({ err: e, index: meta.index }, 'the state machine could not take a snapshot; will retry');
      return;
    }
    const discardUpTo = Math.max(0, meta.index - this.snapshotTrailingEntries);
    const bytesCovered = this.bytesSinceSnapshot;
    this.snapshotting = this.takeSnapshot(meta, data, discardUpTo, bytesCovered)
      .catch((e: unknown) => {
        this.snapshotRetryAtMs = Date.now() + 1000;
        if (this.state === 'running') this.log.warn({ err: e, index: meta.index }, 'snapshot failed; will retry');
      })
      .finally(() => {
        this.snapshotting = null;
      });
  }

  private async takeSnapshot(meta: SnapshotMeta, data: AsyncIterable<Uint8Array>, discardUpTo: number, bytesCovered: number): Promise<void> {
    const store = this.opts.snapshots!;
    const startedMs = Date.now();
    // 1. The file, durable (temp file, fsync, rename, dir fsync) before anything points at it.
    const file = await store.write({ meta, addresses: this.opts.snapshotAddresses?.() ?? {} }, data);
    // A snapshot installed from the leader meanwhile supersedes this one.
    if (this.latestSnapshot !== null && this.latestSnapshot.index >= meta.index) return;
    // 2. The log storage records it and drops the entries it covers (one atomic batch).
    await this.opts.storage.compact!(meta, discardUpTo);
    this.latestSnapshot = file;
    this.bytesSinceSnapshot = Math.max(0, this.bytesSinceSnapshot - bytesCovered);
    // 3. The core forgets them too (in the loop, between Readies).
    this.coreInbox.push((core) => core.compact(meta.index, discardUpTo));
    this.schedule();
    this.log.info({ id: this.opts.config.id, index: meta.index, term: meta.term, discardUpTo, fileBytes: file.fileBytes, ms: Date.now() - startedMs }, 'snapshot taken, log compacted');
    this.emit('snapshotTaken', { index: meta.index, term: meta.term, fileBytes: file.fileBytes, discardedUpTo: discardUpTo });
    // Newer files are kept: one may be a snapshot just received from the leader, waiting to be switched in.
    await store.prune(meta, true);
  }

  /** §7 (leader): stream the snapshot to a follower; its outcome goes back to the core. */
  private startSnapshotStream(m: InstallSnapshot): void {
    const report = (status: 'ok' | 'failed'): void => {
      this.coreInbox.push((core) => core.reportSnapshot(m.to, status));
      this.schedule();
    };
    const key = `${m.meta.index}/${m.meta.term}`;
    const sender = this.opts.snapshotSender;
    if (sender === undefined || !this.snapshotsEnabled) {
      this.log.warn({ to: m.to, snapshot: key }, 'a follower needs a snapshot but this node cannot send one');
      report('failed');
      return;
    }
    if (this.sendingSnapshots.has(m.to)) {
      // One stream per follower; the running one reports its own outcome.
      report('failed');
      return;
    }
    this.sendingSnapshots.set(m.to, key);
    const latest = this.latestSnapshot;
    const fileP = latest !== null && latest.index === m.meta.index && latest.term === m.meta.term ? Promise.resolve(latest) : this.opts.snapshots!.verify(m.meta.index, m.meta.term);
    const startedMs = Date.now();
    this.log.info({ to: m.to, snapshot: key }, 'streaming snapshot to follower');
    fileP
      .then((file) => sender.send(m, file).then(() => file))
      .then(
        (file) => {
          this.log.info({ to: m.to, snapshot: key, fileBytes: file.fileBytes, ms: Date.now() - startedMs }, 'snapshot delivered');
          report('ok');
        },
        (e: unknown) => {
          if (this.state === 'running') this.log.warn({ to: m.to, snapshot: key, err: e instanceof Error ? e.message : String(e) }, 'snapshot stream failed');
          report('failed');
        },
      )
      .finally(() => this.sendingSnapshots.delete(m.to));
  }

  /**
   * §7 (receiver): the stream receiver holds the whole snapshot `file`, durable and verified;
   * step the leader's InstallSnapshot into the core, which answers and (if the snapshot is news
   * to it) hands it back in Ready.snapshot to be switched in.
   */
  deliverSnapshot(message: InstallSnapshot, file: VerifiedSnapshot): void {
    if (this.state !== 'running' || !this.core) return;
    if (file.index !== message.meta.index || file.term !== message.meta.term) {
      throw new RaftError('BAD_REQUEST', `snapshot file ${file.index}/${file.term} does not match InstallSnapshot ${message.meta.index}/${message.meta.term}`);
    }
    // Kept until a Ready.snapshot names one (core contract, InstallSnapshot); at most 4, oldest
    // dropped first (its file stays on disk until a prune, so verify() still finds it).
    this.receivedSnapshots.set(`${file.index}/${file.term}`, file);
    while (this.receivedSnapshots.size > 4) this.receivedSnapshots.delete(this.receivedSnapshots.keys().next().value!);
    this.core.step(message);
    this.schedule();
  }

  /** The latest local snapshot (taken or installed), if any. */
  get snapshot(): VerifiedSnapshot | null {
    return this.latestSnapshot;
  }

  // ---------------------------------------------------------------------------------------------
  // Membership and leadership transfer.

  /**
   * Proposes a membership change (thesis §4.1, one server at a time). Resolves like propose():
   * once the config entry is applied here at the index and term the core gave it. Rejects at
   * once with the core's errors (NOT_LEADER, CONF_CHANGE_IN_PROGRESS, TRANSFER_IN_PROGRESS,
   * BAD_REQUEST...).
   */
  proposeConfChange(change: ConfChange, opts: ProposeOptions = {}): Promise<ProposeAck> {
    if (this.state !== 'running' || !this.core) return Promise.reject(new RaftError('STOPPED', 'the node is not running'));
    if (this.proposalQueue.length + this.appended.size >= this.maxQueuedProposals) {
      return Promise.reject(new RaftError('QUEUE_FULL', `${this.proposalQueue.length + this.appended.size} proposals are already pending`));
    }
    let result;
    try {
      result = this.core.proposeConfChange(change);
    } catch (e) {
      return Promise.reject(isRaftError(e) ? e : new RaftError('BAD_REQUEST', e instanceof Error ? e.message : String(e)));
    }
    const { firstIndex: index, term } = result;
    return new Promise<ProposeAck>((resolve, reject) => {
      this.appended.set(index, { index, term, resolve, reject, deadlineMs: Date.now() + (opts.timeoutMs ?? this.defaultTimeoutMs) });
      this.schedule();
    });
  }

  /**
   * Hands leadership to the voter `to` (thesis §3.10). Resolves once `to` leads (as this node
   * hears it); rejects with the core's errors, or TIMEOUT when the transfer was aborted (the core
   * gives up after an election timeout and proposals resume) or the deadline passed. While it
   * runs, this node refuses proposals (TRANSFER_IN_PROGRESS); proposals it already appended are
   * not failed when it steps down: the target had every one of them, so they are acknowledged
   * when applied, as usual.
   */
  transferLeadership(to: NodeId, opts: TransferOptions = {}): Promise<TransferAck> {
    if (this.state !== 'running' || !this.core) return Promise.reject(new RaftError('STOPPED', 'the node is not running'));
    try {
      this.core.transferLeadership(to);
    } catch (e) {
      return Promise.reject(isRaftError(e) ? e : new RaftError('BAD_REQUEST', e instanceof Error ? e.message : String(e)));
    }
    this.transferTerm = this.core.status().term;
    const electionTicks = this.opts.config.electionTicks ?? 10;
    const timeoutMs = opts.timeoutMs ?? Math.max(1000, 2 * electionTicks * this.tickMs);
    return new Promise<TransferAck>((resolve, reject) => {
      const waiter: Deferred<TransferAck> = { resolve, reject, deadlineMs: Date.now() + timeoutMs };
      if (this.transfer !== null && this.transfer.to === to) this.transfer.waiters.push(waiter);
      else {
        this.endTransfer(new RaftError('TRANSFER_IN_PROGRESS', `superseded by a transfer to ${to}`));
        this.transfer = { to, deadlineMs: waiter.deadlineMs, waiters: [waiter] };
      }
      this.schedule();
    });
  }

  /** Resolves or fails the transfer waiters once the outcome is known. */
  private checkTransfer(st: Pick<RaftStatus, 'role' | 'leader' | 'term' | 'transferee'>): void {
    const t = this.transfer;
    if (t === null) return;
    // All from the core's status (the driver's soft state lags by up to one Ready).
    const { role, leader, term, transferee } = st;
    // The core stepped down during the transfer: what it appended was handed over (see onSoftState).
    if (role !== 'leader') for (const p of this.appended.values()) p.handedOver = true;
    if (leader === t.to && role !== 'leader') {
      this.transfer = null;
      for (const w of t.waiters) w.resolve({ leader: t.to, term });
    } else if (leader !== null && leader !== t.to && role !== 'leader') {
      this.endTransfer(new RaftError('TIMEOUT', `leadership went to ${leader}, not to ${t.to}`, leader));
    } else if (role === 'leader' && transferee === null) {
      this.endTransfer(new RaftError('TIMEOUT', `the transfer to ${t.to} was aborted (the target did not take over within an election timeout); this node still leads`));
    } else if (Date.now() >= t.deadlineMs) {
      this.endTransfer(new RaftError('TIMEOUT', `the transfer to ${t.to} did not finish in time (leader now: ${leader ?? 'unknown'})`));
    }
  }

  private endTransfer(err: RaftError): void {
    const t = this.transfer;
    if (t === null) return;
    this.transfer = null;
    for (const w of t.waiters) w.reject(err);
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
    // ...except after a leadership transfer: the leader stopped appending and brought the target
    // up to date before handing over (thesis §3.10), so those entries are in the new leader's log
    // and normally commit; they are acknowledged (or dropped) when applied, or time out.
    // (Also when the transfer was already given up: the target may still win the election the
    // TimeoutNow started, in the same term.)
    const handingOver = previous.role === 'leader' && next.role !== 'leader' && (this.transfer !== null || this.transferTerm === previous.term);
    if (handingOver) for (const p of this.appended.values()) p.handedOver = true;
    if (next.role !== 'leader' || next.term !== previous.term) {
      for (const [index, p] of this.appended) {
        if (next.role === 'leader' && p.term === next.term) continue;
        if (p.handedOver === true) continue;
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

function configKey(c: ClusterConfig): string {
  return `${c.voters.join(',')}|${c.learners.join(',')}`;
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
