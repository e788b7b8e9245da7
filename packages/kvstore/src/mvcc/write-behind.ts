// Write-behind persistence: applies are synchronous and in memory; LevelDB is written behind them.
//
// The Raft driver calls apply() synchronously, entry after entry. Waiting for a disk write inside
// apply would make every entry pay a LevelDB round trip, so instead each apply appends its changes
// (plain put/del operations) to the CURRENT batch. The batch is SEALED (closed to new operations)
// a few milliseconds after the first change (sealDelayMs, so several apply rounds share it), or at
// once by flushed(), and sealed batches are written with ONE LevelDB
// batch write each time the previous write finished. Several sealed batches waiting behind a slow
// write are merged into one write.
//
// Atomicity with the applied Raft index: the owner's `onSeal` hook adds the metadata record
// (applied index, revision, ...) as of the moment of sealing to the batch it seals, so LevelDB
// always holds the state of exactly some applied index, never half of an entry. A crash loses the
// batches not yet written; on restart the driver re-applies those entries from its durable log and
// the state machine skips the ones the persisted applied index already covers. No fsync is needed
// for the same reason: the Raft log is the durable record.
//
// Bound: the pending operations are what Raft committed during one LevelDB write. Raft bounds that
// (the driver's proposal queue and batch sizes); we cannot block apply, so past `warnPendingOps`
// pending operations we log a warning once per overrun rather than refuse anything.
//
// Snapshots need the disk to show exactly the state as of one applied index: holdAfter(seq) lets
// batches up to `seq` be written and keeps later ones back until released (see store.ts).

import type { ClassicLevel } from 'classic-level';
import type { Logger } from 'pino';

export type Db = ClassicLevel<Uint8Array, Uint8Array>;

export type BatchOp =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: Uint8Array };

interface SealedBatch {
  readonly seq: number;
  readonly ops: BatchOp[];
}

export interface WriteBehindOptions {
  readonly db: Db;
  /** Called when a batch is sealed: add the records that describe "now" (metadata, dirty records). */
  readonly onSeal: () => void;
  readonly logger?: Logger;
  /** Log a warning when this many operations wait for the disk. Default 200 000. */
  readonly warnPendingOps?: number;
  /**
   * How long a batch stays open after the first change before it is sealed and written (0: right
   * after the current apply loop, a microtask). Default 5 ms. Bound: what Raft commits in that
   * time (see warnPendingOps).
   */
  readonly sealDelayMs?: number;
}

export class WriteBehind {
  private current: BatchOp[] = [];
  private readonly sealed: SealedBatch[] = [];
  private lastSealedSeq = 0;
  private writtenSeq = 0;
  private writing = false;
  private scheduled = false;
  private pendingOps = 0;
  private warned = false;
  private readonly holds = new Set<{ readonly seq: number }>();
  private readonly waiters: { readonly seq: number; readonly resolve: () => void; readonly reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  private stopped = false;
  /** True between an apply that added operations and the seal: onSeal must run before sealing. */
  private dirty = false;

  private readonly sealDelayMs: number;

  constructor(private readonly opts: WriteBehindOptions) {
    this.sealDelayMs = opts.sealDelayMs ?? 5;
  }

  /** The first write error, after which nothing more is written (the store is then unusable). */
  get error(): Error | null {
    return this.failure;
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.current.push({ type: 'put', key, value });
    this.pendingOps++;
  }

  del(key: Uint8Array): void {
    this.current.push({ type: 'del', key });
    this.pendingOps++;
  }

  /**
   * Something changed: seal and write soon. Not at once: the batch stays open for `sealDelayMs`
   * so the applies of several Raft Readies share one LevelDB write (each write is a hand-off to
   * LevelDB's thread and costs main-thread time however small it is). Nothing waits on this
   * write (reads are served from memory, the Raft log is the durable record); whoever needs the
   * disk current calls flushed(), which seals at once.
   */
  touch(): void {
    this.dirty = true;
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      if (this.stopped) return;
      this.seal();
      this.kick();
    };
    if (this.sealDelayMs <= 0) queueMicrotask(run);
    else setTimeout(run, this.sealDelayMs).unref();
  }

  /** Closes the current batch; returns the seq that covers everything applied so far. */
  seal(): number {
    if (this.dirty) {
      this.dirty = false;
      this.opts.onSeal();
    }
    if (this.current.length > 0) {
      this.sealed.push({ seq: ++this.lastSealedSeq, ops: this.current });
      this.current = [];
    }
    const warnAt = this.opts.warnPendingOps ?? 200_000;
    if (this.pendingOps > warnAt && !this.warned) {
      this.warned = true;
      this.opts.logger?.warn({ pendingOps: this.pendingOps }, 'kv store: LevelDB writes are falling behind apply');
    } else if (this.pendingOps <= warnAt / 2) {
      this.warned = false;
    }
    return this.lastSealedSeq;
  }

  /** Resolves once every batch up to `seq` is in LevelDB. */
  whenWritten(seq: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.writtenSeq >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ seq, resolve, reject });
      this.kick();
    });
  }

  /** Seals and resolves once everything applied so far is in LevelDB. */
  flushed(): Promise<void> {
    return this.whenWritten(this.seal());
  }

  /** Lets batches up to `seq` be written but no later ones until the returned function is called. */
  holdAfter(seq: number): () => void {
    const hold = { seq };
    this.holds.add(hold);
    return () => {
      if (this.holds.delete(hold)) this.kick();
    };
  }

  /** Drops every pending operation (restore replaces the whole state). Call only after flushed(). */
  discardPending(): void {
    this.current = [];
    this.sealed.length = 0;
    this.pendingOps = 0;
    this.dirty = false;
  }

  /** Writes nothing more (the database is closing). */
  stop(): void {
    this.stopped = true;
  }

  private kick(): void {
    if (this.writing || this.failure || this.stopped || this.sealed.length === 0) return;
    let limit = Infinity;
    for (const h of this.holds) limit = Math.min(limit, h.seq);
    let take = 0;
    while (take < this.sealed.length && this.sealed[take]!.seq <= limit) take++;
    if (take === 0) return;
    const batches = this.sealed.splice(0, take);
    const ops = batches.length === 1 ? batches[0]!.ops : batches.flatMap((b) => b.ops);
    const seq = batches[batches.length - 1]!.seq;
    this.writing = true;
    // A chained batch, not db.batch(array): classic-level reads an array batch element by element
    // through N-API property lookups, ~6 us of main-thread CPU per operation; the chained form
    // hands each key and value over directly (~0.8 us). Same single atomic LevelDB write.
    const db = this.opts.db;
    const written = (async (): Promise<void> => {
      const chained = db.batch(); // may throw at once if the database is not open: a rejection here
      for (const op of ops) {
        if (op.type === 'put') chained.put(op.key, op.value);
        else chained.del(op.key);
      }
      await chained.write();
    })();
    written.then(
      () => {
        this.writing = false;
        this.writtenSeq = seq;
        this.pendingOps -= ops.length;
        this.settle();
        this.kick();
      },
      (e: unknown) => {
        this.writing = false;
        this.failure = e instanceof Error ? e : new Error(String(e));
        this.opts.logger?.error({ err: this.failure }, 'kv store: LevelDB write failed; the store stops persisting');
        this.settle();
      },
    );
  }

  private settle(): void {
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!;
      if (this.failure) w.reject(this.failure);
      else if (w.seq <= this.writtenSeq) w.resolve();
      else {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
    }
  }
}
