// WatchHub: every watcher of one member, fed by the state machine.
//
// A watcher is in one of three phases:
//   catch-up  its start revision is already in the past: it reads the store's history
//             (source.history) revision by revision until it reaches the current revision;
//   live      it is at the head: each revision the state machine applies ('events', emitted
//             synchronously inside apply) is filtered and queued for it at once;
//   canceled  the last response (canceled, with a reason) has been sent; nothing follows.
//
// Guarantees (issue 4): responses go out in revision order, a revision never twice, none skipped,
// all events of one revision in the same response; a watcher resumed from its last seen revision
// + 1 gets exactly the rest. The switch from catch-up to live happens in one synchronous step at a
// moment when the watcher has processed every revision up to source.revision; since the state
// machine moves its revision and emits 'events' in the same synchronous apply, no revision can fall
// between history and the live feed, nor be seen by both.
//
// The hub never blocks apply: the live feed only filters and queues. A sink may say it is
// congested (FlowControlledSink below); the hub then keeps the watcher's events in its own bounded
// buffer (maxBufferedEvents events and maxBufferedBytes of keys and values). Past either bound the
// watcher is canceled with the reason "watcher is too slow: N buffered events, M bytes ..." and its
// buffer dropped, so memory stays bounded; the client resumes from its last seen revision + 1. A
// catch-up watcher whose sink is congested simply pauses its history read (nothing piles up). A
// single revision is never split, so one response can exceed maxEventsPerResponse/maxResponseBytes
// when a single write (a txn, a range delete, a lease revoke) made more.
//
// Two ways the store can move without the live feed seeing it, both handled: a Raft snapshot
// installed on a lagging member (the revision jumps: live watchers go back to catch-up, checkGap),
// and compaction (a catch-up that reaches a compacted revision is canceled with compactRevision,
// etcd's rule: the compaction revision itself still replays).

import type { Logger } from 'pino';

import { ETCD_MESSAGES, KvError } from '../errors.js';
import type { ResponseHeader, RevisionEvents, WatchCreateRequest, WatchEvent, WatchHandle, WatchResponse, WatchSink } from '../types.js';
import { keyMatcher, type KeyMatcher } from './keys.js';

/**
 * What the hub needs from the store. KvStateMachine (state/machine.ts) satisfies it structurally:
 * 'events' is emitted synchronously inside apply, once per new revision, in order, after
 * `revision` has moved to that revision.
 */
export interface WatchSource {
  on(event: 'events', listener: (ev: RevisionEvents) => void): unknown;
  off(event: 'events', listener: (ev: RevisionEvents) => void): unknown;
  /**
   * Every revision in [fromRevision, toRevision] in order, all events of a revision together;
   * KvError COMPACTED (thrown or rejected) if fromRevision < compactedRevision (etcd's rule:
   * the compaction revision itself stays whole and can be replayed). `withPrevKv`: the
   * hub wants prevKv filled (a source may ignore the hint and always fill it).
   */
  history(fromRevision: number, toRevision?: number, withPrevKv?: boolean): AsyncIterable<RevisionEvents>;
  readonly revision: number;
  readonly compactedRevision: number;
}

/**
 * Optional back-pressure a sink may offer (a socket: the native server, the JSON stream). While
 * `writable` is false the hub sends nothing to it (except a final `canceled`) and buffers; the sink
 * calls the listener given to `onDrain` when it can take more again (spurious calls are harmless).
 * A plain WatchSink is treated as always writable.
 */
export interface FlowControlledSink extends WatchSink {
  readonly writable: boolean;
  /** Registers the drain listener; may return a function the hub calls to unregister it when the watcher ends. */
  onDrain(listener: () => void): (() => void) | void;
}

export function isFlowControlled(sink: WatchSink): sink is FlowControlledSink {
  const s = sink as Partial<FlowControlledSink>;
  return typeof s.onDrain === 'function' && typeof s.writable === 'boolean';
}

export interface WatchHubOptions {
  /** KvStateMachine: 'events', history(), revision, compactedRevision. */
  readonly source: WatchSource;
  /** The server's current header; the hub fills `revision` per response. */
  readonly header: () => ResponseHeader;
  /** Per watcher; default 10 000. Above it the watcher is canceled with a reason (never unbounded memory). */
  readonly maxBufferedEvents?: number;
  /** Per watcher, keys + values (+ prev values) held for it; default 64 MiB. Above it: canceled, as for maxBufferedEvents. */
  readonly maxBufferedBytes?: number;
  /** Events per response (whole revisions; one revision is never split); default 1 000. */
  readonly maxEventsPerResponse?: number;
  /** Key and value bytes per response (whole revisions; one revision is never split); default 1 MiB. */
  readonly maxResponseBytes?: number;
  /** For progressNotify watchers; default 10 min (etcd's). */
  readonly progressIntervalMs?: number;
  /** Default 10 000; a watch beyond it is refused with KvError QUEUE_FULL. */
  readonly maxWatchers?: number;
  readonly logger?: Logger;
}

export interface WatchHubStats {
  readonly watchers: number;
  readonly catchingUp: number;
  readonly bufferedEvents: number;
  readonly bufferedBytes: number;
  /** Watchers canceled because their buffer overflowed, since the hub started. */
  readonly canceledSlow: number;
}

/** History skipped revisions it should have had (see catchUp). */
class HistoryGap extends Error {
  constructor(
    readonly fromRevision: number,
    readonly toRevision: number,
  ) {
    super(`history is missing revisions ${fromRevision}..${toRevision}`);
  }
}

/**
 * Revisions that exist without events: only the empty store's initial revision 1 (etcd starts a
 * store at revision 1; the first write creates 2). Every later revision is a write that changed a key.
 */
function onlyEmptyRevisions(to: number): boolean {
  return to <= 1;
}

function latin1(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export const WATCH_DEFAULTS = {
  maxBufferedEvents: 10_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxEventsPerResponse: 1_000,
  maxResponseBytes: 1024 * 1024,
  progressIntervalMs: 10 * 60 * 1000,
  maxWatchers: 10_000,
} as const;

type Phase = 'catchup' | 'live' | 'canceled';

interface BufferedRevision extends RevisionEvents {
  /** Key and value bytes of its events (the memory a slow watcher pins). */
  readonly bytes: number;
}

/** What an event pins in memory, roughly: its keys and values (the rest is small and fixed). */
function eventBytes(e: WatchEvent): number {
  return 64 + e.kv.key.length + e.kv.value.length + (e.prevKv ? e.prevKv.key.length + e.prevKv.value.length : 0);
}

function bufferedRevision(revision: number, events: readonly WatchEvent[]): BufferedRevision {
  let bytes = 0;
  for (const e of events) bytes += eventBytes(e);
  return { revision, events, bytes };
}

interface Watcher {
  /** The hub's own key for the watcher (watch ids chosen by clients are only unique per stream). */
  readonly serial: number;
  readonly watchId: number;
  readonly range: KeyMatcher;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
  readonly progressNotify: boolean;
  readonly sink: WatchSink;
  readonly flow: FlowControlledSink | null;
  phase: Phase;
  /**
   * Catch-up: the first revision not yet read from history (every revision below it is delivered
   * or in `buffer`). Live: the first revision the watcher wants (the live feed skips older ones);
   * a live watcher has processed every revision up to source.revision.
   */
  nextRevision: number;
  /** Filtered revisions not yet sent (only those with at least one event for this watcher). */
  buffer: BufferedRevision[];
  bufferedEvents: number;
  bufferedBytes: number;
  /** A requestProgress that waits until the watcher is caught up. */
  progressWanted: boolean;
  /** Events were sent since the last progress tick (etcd sends periodic progress only to idle watchers). */
  sentSinceTick: boolean;
  drainWaiter: (() => void) | null;
  unsubscribeDrain: (() => void) | null;
}

export class WatchHub {
  private readonly source: WatchSource;
  private readonly header: () => ResponseHeader;
  private readonly maxBufferedEvents: number;
  private readonly maxEventsPerResponse: number;
  private readonly maxBufferedBytes: number;
  private readonly maxResponseBytes: number;
  private readonly progressIntervalMs: number;
  private readonly maxWatchers: number;
  private readonly log: Logger | undefined;
  private readonly watchers = new Map<number, Watcher>();
  /** Watchers of a single key, by the key as a latin1 string (one character per byte). */
  private readonly byKey = new Map<string, Set<Watcher>>();
  /** Watchers of a range (tested against every event). */
  private readonly rangeWatchers = new Set<Watcher>();
  private nextSerial = 1;
  /**
   * The last revision the live feed saw. The store's revision can also move without 'events':
   * a Raft snapshot installed on a lagging member (restore) jumps it forward. Live watchers then
   * have not seen the revisions in between; checkGap() sends them back to catch-up from history.
   */
  private seenRevision: number;
  private readonly onEvents = (ev: RevisionEvents): void => this.feed(ev);
  private progressTimer: NodeJS.Timeout | null = null;
  private nextWatchId = 1;
  private canceledSlow = 0;
  private closed = false;

  constructor(opts: WatchHubOptions) {
    this.source = opts.source;
    this.header = opts.header;
    this.maxBufferedEvents = opts.maxBufferedEvents ?? WATCH_DEFAULTS.maxBufferedEvents;
    this.maxEventsPerResponse = opts.maxEventsPerResponse ?? WATCH_DEFAULTS.maxEventsPerResponse;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? WATCH_DEFAULTS.maxBufferedBytes;
    this.maxResponseBytes = opts.maxResponseBytes ?? WATCH_DEFAULTS.maxResponseBytes;
    this.progressIntervalMs = opts.progressIntervalMs ?? WATCH_DEFAULTS.progressIntervalMs;
    this.maxWatchers = opts.maxWatchers ?? WATCH_DEFAULTS.maxWatchers;
    this.log = opts.logger;
    if (!(this.maxBufferedEvents >= 1 && this.maxEventsPerResponse >= 1 && this.maxBufferedBytes >= 1 && this.maxResponseBytes >= 1 && this.progressIntervalMs > 0 && this.maxWatchers >= 1)) {
      throw new KvError('BAD_REQUEST', 'watch hub: limits must be positive');
    }
    this.seenRevision = this.source.revision;
    this.source.on('events', this.onEvents);
  }

  /** Watchers currently open. */
  get count(): number {
    return this.watchers.size;
  }

  stats(): WatchHubStats {
    let catchingUp = 0;
    let bufferedEvents = 0;
    let bufferedBytes = 0;
    for (const w of this.watchers.values()) {
      if (w.phase === 'catchup') catchingUp++;
      bufferedEvents += w.bufferedEvents;
      bufferedBytes += w.bufferedBytes;
    }
    return { watchers: this.watchers.size, catchingUp, bufferedEvents, bufferedBytes, canceledSlow: this.canceledSlow };
  }

  /**
   * Starts a watcher. The sink gets `created` first (synchronously, before this returns), then
   * events, progress notifications, and finally `canceled`. A start revision below the compacted
   * revision gets `created` then `canceled` with compactRevision (etcd's behaviour).
   * Throws KvError BAD_REQUEST for a malformed request, QUEUE_FULL beyond maxWatchers, STOPPED after close().
   */
  watch(req: WatchCreateRequest, sink: WatchSink): WatchHandle {
    if (this.closed) throw new KvError('STOPPED', 'the watch hub is closed (the member is stopping)');
    if (this.watchers.size >= this.maxWatchers) {
      throw new KvError('QUEUE_FULL', `too many watchers on this member (limit ${this.maxWatchers}); cancel some or retry later`);
    }
    const startRevision = req.startRevision ?? 0;
    if (!Number.isSafeInteger(startRevision) || startRevision < 0) {
      throw new KvError('BAD_REQUEST', `watch: start_revision must be a non-negative integer, got ${String(req.startRevision)}`);
    }
    if (req.key.length === 0 && (req.rangeEnd === undefined || req.rangeEnd.length === 0)) {
      throw new KvError('BAD_REQUEST', 'watch: key is not provided');
    }
    let watchId = req.watchId ?? 0;
    if (!Number.isSafeInteger(watchId) || watchId < 0) {
      throw new KvError('BAD_REQUEST', `watch: watch_id must be a non-negative integer, got ${String(req.watchId)}`);
    }
    // A client-chosen id is unique per stream only (the front end checks that); the hub numbers the rest.
    if (watchId === 0) watchId = this.nextWatchId++;
    this.checkGap();
    const filters = req.filters ?? [];
    const flow = isFlowControlled(sink) ? sink : null;
    const current = this.source.revision;
    const w: Watcher = {
      serial: this.nextSerial++,
      watchId,
      range: keyMatcher(req.key, req.rangeEnd),
      noPut: filters.includes('noput'),
      noDelete: filters.includes('nodelete'),
      prevKv: req.prevKv === true,
      progressNotify: req.progressNotify === true,
      sink,
      flow,
      phase: 'live',
      nextRevision: startRevision === 0 ? current + 1 : startRevision,
      buffer: [],
      bufferedEvents: 0,
      bufferedBytes: 0,
      progressWanted: false,
      sentSinceTick: false,
      drainWaiter: null,
      unsubscribeDrain: null,
    };
    this.watchers.set(w.serial, w);
    this.index(w);
    if (flow) {
      const off = flow.onDrain(() => this.drained(w));
      w.unsubscribeDrain = typeof off === 'function' ? off : null;
    }
    const handle: WatchHandle = {
      watchId,
      cancel: (reason?: string) => this.cancel(w, reason ?? 'canceled by the client'),
      requestProgress: () => this.requestProgress(w),
    };

    this.sendTo(w, { header: this.headerAt(current), watchId, created: true, events: [] });
    if (w.phase === 'canceled') return handle; // the sink failed on `created`
    // etcd's rule: a compaction at C keeps revision C whole, so a watch may start at C; below it
    // the watcher is canceled with compactRevision = C, where the client can resume.
    const compacted = this.source.compactedRevision;
    if (startRevision !== 0 && startRevision < compacted) {
      this.cancel(w, ETCD_MESSAGES.COMPACTED, compacted);
      return handle;
    }
    if (w.nextRevision <= current) {
      w.phase = 'catchup';
      void this.catchUp(w);
    }
    if (w.progressNotify) this.ensureProgressTimer();
    return handle;
  }

  /** Cancels every watcher (each gets `canceled`) and detaches from the source. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watchers.values()]) this.cancel(w, 'the member is stopping');
    this.source.off('events', this.onEvents);
    if (this.progressTimer) clearInterval(this.progressTimer);
    this.progressTimer = null;
  }

  // -------------------------------------------------------------------------------------------
  // Live feed: called synchronously inside the state machine's apply. Only filters and queues.

  private feed(ev: RevisionEvents): void {
    if (ev.revision !== this.seenRevision + 1) this.checkGap(ev.revision - 1);
    this.seenRevision = ev.revision;
    if (this.watchers.size === 0) return;
    // Which live watchers want which events of this revision (order of events kept per watcher).
    let matched: Map<Watcher, WatchEvent[]> | null = null;
    const add = (w: Watcher, e: WatchEvent): void => {
      if (w.phase !== 'live' || ev.revision < w.nextRevision) return;
      if (e.type === 'put' ? w.noPut : w.noDelete) return;
      matched ??= new Map();
      let list = matched.get(w);
      if (list === undefined) matched.set(w, (list = []));
      list.push(w.prevKv || e.prevKv === undefined ? e : { type: e.type, kv: e.kv });
    };
    for (const e of ev.events) {
      if (this.byKey.size > 0) {
        const exact = this.byKey.get(latin1(e.kv.key));
        if (exact !== undefined) for (const w of exact) add(w, e);
      }
      for (const w of this.rangeWatchers) if (w.range.matches(e.kv.key)) add(w, e);
    }
    if (matched === null) return;
    for (const [w, events] of matched as Map<Watcher, WatchEvent[]>) this.enqueue(w, bufferedRevision(ev.revision, events));
  }

  /**
   * If revisions up to `upTo` (default: the store's current revision) were applied without passing
   * through feed() (a snapshot install), every live watcher goes back to catch-up from the first
   * revision it missed; its buffer stays in front, so order holds. History may have been compacted
   * by then: those watchers are canceled with compactRevision and resume from there.
   */
  private checkGap(upTo: number = this.source.revision): void {
    if (upTo <= this.seenRevision) return;
    const missedFrom = this.seenRevision + 1;
    this.seenRevision = upTo;
    this.log?.info({ from: missedFrom, to: upTo }, 'watch: the store moved without events (snapshot installed); live watchers catch up from history');
    for (const w of [...this.watchers.values()]) {
      if (w.phase !== 'live') continue;
      w.nextRevision = Math.max(w.nextRevision, missedFrom);
      if (w.nextRevision > upTo) continue; // starts later than anything missed
      w.phase = 'catchup';
      void this.catchUp(w);
    }
  }

  private index(w: Watcher): void {
    if (w.range.rangeEnd === null) {
      const k = latin1(w.range.key);
      let set = this.byKey.get(k);
      if (set === undefined) this.byKey.set(k, (set = new Set()));
      set.add(w);
    } else {
      this.rangeWatchers.add(w);
    }
  }

  private unindex(w: Watcher): void {
    this.watchers.delete(w.serial);
    if (w.range.rangeEnd === null) {
      const k = latin1(w.range.key);
      const set = this.byKey.get(k);
      set?.delete(w);
      if (set?.size === 0) this.byKey.delete(k);
    } else {
      this.rangeWatchers.delete(w);
    }
  }

  /** Queues a filtered revision; cancels the watcher when its buffer passes the bound; sends what the sink accepts. */
  private enqueue(w: Watcher, rev: BufferedRevision): void {
    if (w.phase === 'canceled') return; // canceled by an earlier sink's send in the same feed
    w.buffer.push(rev);
    w.bufferedEvents += rev.events.length;
    w.bufferedBytes += rev.bytes;
    if (w.phase === 'live' && this.overflowing(w)) {
      this.cancelSlow(w);
      return;
    }
    this.flush(w);
  }

  private overflowing(w: Watcher): boolean {
    return w.bufferedEvents > this.maxBufferedEvents || w.bufferedBytes > this.maxBufferedBytes;
  }

  private cancelSlow(w: Watcher): void {
    this.canceledSlow++;
    this.log?.warn({ watchId: w.watchId, bufferedEvents: w.bufferedEvents, bufferedBytes: w.bufferedBytes }, 'watch: canceling a slow watcher');
    this.cancel(
      w,
      `watcher is too slow: ${w.bufferedEvents} buffered events, ${w.bufferedBytes} bytes (limits ${this.maxBufferedEvents} events, ${this.maxBufferedBytes} bytes); resume from the last revision received + 1`,
    );
  }

  private filter(w: Watcher, events: readonly WatchEvent[]): WatchEvent[] {
    const out: WatchEvent[] = [];
    for (const e of events) {
      if (e.type === 'put' ? w.noPut : w.noDelete) continue;
      if (!w.range.matches(e.kv.key)) continue;
      if (w.prevKv) out.push(e);
      else out.push(e.prevKv === undefined ? e : { type: e.type, kv: e.kv });
    }
    return out;
  }

  private writable(w: Watcher): boolean {
    return w.flow === null || w.flow.writable;
  }

  /** Sends buffered revisions while the sink accepts them, whole revisions per response, then a due progress notification. */
  private flush(w: Watcher): void {
    while (w.phase !== 'canceled' && w.buffer.length > 0 && this.writable(w)) {
      let n = 0;
      let bytes = 0;
      let take = 0;
      while (take < w.buffer.length) {
        const next = w.buffer[take] as BufferedRevision;
        if (take > 0 && (n + next.events.length > this.maxEventsPerResponse || bytes + next.bytes > this.maxResponseBytes)) break;
        n += next.events.length;
        bytes += next.bytes;
        take++;
      }
      const batch = w.buffer.splice(0, take);
      w.bufferedEvents -= n;
      w.bufferedBytes -= bytes;
      const events = batch.length === 1 ? (batch[0] as RevisionEvents).events : batch.flatMap((r) => r.events);
      const last = (batch[batch.length - 1] as RevisionEvents).revision;
      w.sentSinceTick = true;
      this.sendTo(w, { header: this.headerAt(last), watchId: w.watchId, events });
    }
    if (w.progressWanted && w.phase === 'live') {
      this.checkGap();
      if (this.caughtUp(w)) {
        w.progressWanted = false;
        this.sendProgress(w);
      }
    }
  }

  /** Every revision up to source.revision has been delivered to the sink. */
  private caughtUp(w: Watcher): boolean {
    return w.phase === 'live' && w.buffer.length === 0 && this.writable(w);
  }

  private sendProgress(w: Watcher): void {
    // Live and empty buffer: every revision <= source.revision went through feed() and was sent.
    this.sendTo(w, { header: this.headerAt(this.source.revision), watchId: w.watchId, events: [] });
  }

  private requestProgress(w: Watcher): void {
    if (w.phase === 'canceled') return;
    this.checkGap();
    if (this.caughtUp(w)) this.sendProgress(w);
    else w.progressWanted = true; // sent by flush() once caught up: a progress revision is a promise
  }

  private drained(w: Watcher): void {
    if (w.phase === 'canceled') return;
    this.flush(w);
    const wake = w.drainWaiter;
    w.drainWaiter = null;
    wake?.();
  }

  private waitDrain(w: Watcher): Promise<void> {
    return new Promise<void>((resolve) => {
      w.drainWaiter = resolve;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Catch-up: history in rounds up to the revision current when each round starts, until no
  // revision was applied meanwhile; then live, in the same synchronous step as the last check.

  private async catchUp(w: Watcher): Promise<void> {
    try {
      for (;;) {
        if (w.phase !== 'catchup') return;
        const target = this.source.revision;
        if (w.nextRevision > target) {
          // Synchronous with the check above: the next 'events' is target + 1 and goes to feed().
          w.phase = 'live';
          this.flush(w);
          if (this.overflowing(w)) this.cancelSlow(w);
          return;
        }
        if (w.nextRevision < this.source.compactedRevision) {
          this.cancel(w, ETCD_MESSAGES.COMPACTED, this.source.compactedRevision);
          return;
        }
        for await (const rev of this.source.history(w.nextRevision, target, w.prevKv)) {
          if (w.phase !== 'catchup') return;
          if (rev.revision < w.nextRevision) continue;
          if (rev.revision > target) break;
          // Every revision is a write that changed at least one key, and compaction keeps every
          // record above the compacted revision: history above it has no holes. A hole means
          // the store was being replaced under us (a snapshot install); never skip it silently.
          if (rev.revision !== w.nextRevision && !onlyEmptyRevisions(rev.revision - 1)) {
            throw new HistoryGap(w.nextRevision, rev.revision - 1);
          }
          w.nextRevision = rev.revision + 1;
          const events = this.filter(w, rev.events);
          if (events.length === 0) continue;
          const buffered = bufferedRevision(rev.revision, events);
          w.buffer.push(buffered);
          w.bufferedEvents += events.length;
          w.bufferedBytes += buffered.bytes;
          // A congested sink pauses the history read: about one response's worth waits here.
          while (w.phase === 'catchup' && this.responseFull(w)) {
            this.flush(w);
            if (w.phase === 'catchup' && this.responseFull(w)) await this.waitDrain(w);
          }
        }
        if (w.phase !== 'catchup') return;
        if (w.nextRevision <= target) {
          if (!onlyEmptyRevisions(target)) throw new HistoryGap(w.nextRevision, target);
          w.nextRevision = target + 1;
        }
        this.flush(w);
      }
    } catch (e) {
      if (w.phase === 'canceled') return;
      if (e instanceof KvError && e.code === 'COMPACTED') {
        // The source refused nextRevision, so the oldest revision it can replay is above it.
        this.cancel(w, ETCD_MESSAGES.COMPACTED, Math.max(this.source.compactedRevision, w.nextRevision + 1));
      } else if (e instanceof HistoryGap) {
        this.log?.warn({ watchId: w.watchId, from: e.fromRevision, to: e.toRevision }, 'watch: history has a hole; canceling the watcher');
        this.cancel(w, `watch: the store's history is missing revisions ${e.fromRevision}..${e.toRevision} (a snapshot was being installed); resume from the last revision received + 1`);
      } else {
        this.log?.error({ err: e, watchId: w.watchId }, 'watch: reading history failed');
        this.cancel(w, `watch: reading history failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  private responseFull(w: Watcher): boolean {
    return w.bufferedEvents >= this.maxEventsPerResponse || w.bufferedBytes >= this.maxResponseBytes;
  }

  // -------------------------------------------------------------------------------------------

  private cancel(w: Watcher, reason: string, compactRevision?: number): void {
    if (w.phase === 'canceled') return;
    this.drop(w);
    const res: WatchResponse = {
      header: this.headerAt(this.source.revision),
      watchId: w.watchId,
      canceled: true,
      cancelReason: reason,
      events: [],
      ...(compactRevision !== undefined ? { compactRevision } : {}),
    };
    try {
      w.sink.send(res);
    } catch (e) {
      this.log?.warn({ err: e, watchId: w.watchId }, 'watch: sink failed on cancel');
    }
  }

  /** Sends one response; a sink that throws ends its watcher (nothing more is sent to it). */
  private sendTo(w: Watcher, res: WatchResponse): void {
    try {
      w.sink.send(res);
    } catch (e) {
      this.log?.warn({ err: e, watchId: w.watchId }, 'watch: sink failed; the watcher is dropped');
      this.drop(w);
    }
  }

  /** Ends the watcher here: nothing more is buffered or sent (but the caller's final response); a paused catch-up wakes and returns. */
  private drop(w: Watcher): void {
    w.phase = 'canceled';
    w.buffer = [];
    w.bufferedEvents = 0;
    w.bufferedBytes = 0;
    this.unindex(w);
    w.unsubscribeDrain?.();
    w.unsubscribeDrain = null;
    const wake = w.drainWaiter;
    w.drainWaiter = null;
    wake?.();
  }

  private headerAt(revision: number): ResponseHeader {
    return { ...this.header(), revision };
  }

  private ensureProgressTimer(): void {
    if (this.progressTimer !== null) return;
    this.progressTimer = setInterval(() => {
      try {
        this.progressTick();
      } catch (e) {
        this.log?.error({ err: e }, 'watch: progress tick failed');
      }
    }, this.progressIntervalMs);
    this.progressTimer.unref();
  }

  /** etcd: every interval, watchers with progressNotify that got no events since the last tick get a progress notification, if caught up. */
  private progressTick(): void {
    this.checkGap();
    let any = false;
    for (const w of this.watchers.values()) {
      if (!w.progressNotify) continue;
      any = true;
      if (!w.sentSinceTick && this.caughtUp(w)) this.sendProgress(w);
      w.sentSinceTick = false;
    }
    if (!any && this.progressTimer !== null) {
      clearInterval(this.progressTimer);
      this.progressTimer = null;
    }
  }
}
