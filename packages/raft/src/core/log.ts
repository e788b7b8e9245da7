// RaftLog: one node's copy of the replicated log, and how far along it each stage has got.
//
// The log may start after a snapshot (§7, log compaction): entries up to `offsetIndex` are gone,
// and only the term of the entry at offsetIndex is remembered (so the consistency check of §5.3
// still works for the first entry held). Without compaction, offsetIndex is 0 (term 0): the
// empty prefix. Five indexes describe how far each stage has got, always in this order:
//
//     applied <= applying <= committed   and   stable <= handedOut <= lastIndex
//
//   - handedOut: the last entry given to the driver to persist (Ready.entries). Entries after it
//     are "unstable": they exist only in memory and will be in the next Ready.
//   - stable: the last entry the driver has confirmed durable (by advance()). A leader counts
//     its own copy toward a commit quorum only up to here.
//   - committed: the last entry known to be committed (§5.3, §5.4.2).
//   - applying: the last entry given to the driver to apply (Ready.committedEntries).
//   - applied: the last entry the driver has confirmed applied (by advance()).
//
// committed may run ahead of stable on a follower (its leader knows better), but an entry is
// only handed out for applying once it has been handed out for persisting, in this or an
// earlier Ready: the driver persists a Ready's entries before it applies its committed entries.
// Compaction never passes `applied`, so offsetIndex <= snapshot index <= applied <= committed:
// only committed entries are ever compacted.
//
// The log also keeps the configuration history of its entries (membership.ts: the latest config
// entry is in effect, committed or not; truncating it reverts to the one before).

import { invariant } from './assert.js';
import { ConfigHistory } from './membership.js';
import type { ClusterConfig, Entry, SnapshotMeta } from './types.js';

export { invariant };

/**
 * What an entry counts for against a byte bound: its payload plus a fixed allowance for index,
 * term and type, so that a batch of empty entries (no-ops) is bounded too.
 */
export const ENTRY_OVERHEAD_BYTES = 16;

export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** Bound on the committed entries handed out in one Ready (at least one is always handed out). */
export const MAX_COMMITTED_BYTES_PER_READY = 16 * 1024 * 1024;

export class RaftLog {
  /** entries[i] is the entry at index offsetIndex + 1 + i. */
  private entries: Entry[] = [];
  /** The last compacted index (0: nothing compacted) and the term of the entry there. */
  private offsetIndex = 0;
  private offsetTerm = 0;
  /** The latest snapshot (what a leader sends a follower that is behind offsetIndex), or null. */
  private _snapshot: SnapshotMeta | null = null;
  /** A snapshot installed from the leader and not yet handed out (Ready.snapshot). */
  private unstableSnapshot: SnapshotMeta | null = null;
  private _committed = 0;
  private _applying = 0;
  private _applied = 0;
  private _stable = 0;
  private _handedOut = 0;
  readonly configs: ConfigHistory;

  constructor(bootstrap: ClusterConfig) {
    this.configs = new ConfigHistory(bootstrap, 0);
  }

  /**
   * A log restored from stable storage: every entry in it is already durable, and the state
   * machine restarts from `snapshot` (applied = snapshot.index). See RestoredState in types.ts.
   */
  static restore(bootstrap: ClusterConfig, snapshot: SnapshotMeta | undefined, entries: readonly Entry[], committed: number): RaftLog {
    const log = new RaftLog(bootstrap);
    let rest = entries;
    if (snapshot !== undefined) {
      invariant(Number.isSafeInteger(snapshot.index) && snapshot.index >= 1 && snapshot.term >= 1, `restored snapshot at (${snapshot.index}, ${snapshot.term})`);
      log.configs.reset(snapshot.config, snapshot.index);
      log._snapshot = snapshot;
      const first = entries[0];
      if (first !== undefined && first.index <= snapshot.index) {
        // A trailing window kept before the snapshot: keep it, with its first entry as the offset.
        const atSnapshot = entries[snapshot.index - first.index];
        invariant(atSnapshot?.term === snapshot.term, `restored entries do not hold the snapshot's entry (${snapshot.index}, ${snapshot.term})`);
        log.offsetIndex = first.index;
        log.offsetTerm = first.term;
        rest = entries.slice(1);
      } else {
        log.offsetIndex = snapshot.index;
        log.offsetTerm = snapshot.term;
      }
      log._applied = log._applying = snapshot.index;
      committed = Math.max(committed, snapshot.index);
    }
    invariant(rest[0] === undefined || rest[0].index === log.offsetIndex + 1, `restored log starts at ${rest[0]?.index}, expected ${log.offsetIndex + 1}`);
    log.append(rest);
    log._stable = log._handedOut = log.lastIndex();
    invariant(committed >= 0 && committed <= log.lastIndex(), `restored commit ${committed} beyond last index ${log.lastIndex()}`);
    log._committed = committed;
    return log;
  }

  get committed(): number { return this._committed; }
  get applied(): number { return this._applied; }
  get stable(): number { return this._stable; }
  /** The latest snapshot, or null if the log was never compacted. */
  get snapshot(): SnapshotMeta | null { return this._snapshot; }

  /** The first index held; entries before it are compacted. */
  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.termAt(this.lastIndex());
  }

  /**
   * The term of the entry at `index`: the last compacted index (0, the empty prefix, whose term
   * is 0, when nothing is compacted) or a held entry. Compacted entries have no known term.
   */
  termAt(index: number): number {
    if (index === this.offsetIndex) return this.offsetTerm;
    const entry = this.entries[index - this.offsetIndex - 1];
    invariant(entry !== undefined, `termAt(${index}) outside the log [${this.offsetIndex}, ${this.lastIndex()}]`);
    return entry.term;
  }

  /** Whether termAt(index) is known: index is the last compacted one or a held entry. */
  hasTermAt(index: number): boolean {
    return index >= this.offsetIndex && index <= this.lastIndex();
  }

  /** Whether this log holds an entry at `index` with `term` (index 0 always matches). */
  matches(index: number, term: number): boolean {
    return this.hasTermAt(index) && this.termAt(index) === term;
  }

  entryAt(index: number): Entry {
    const entry = this.entries[index - this.offsetIndex - 1];
    invariant(entry !== undefined, `entryAt(${index}) outside the log [${this.firstIndex()}, ${this.lastIndex()}]`);
    return entry;
  }

  /**
   * Entries [from, to], cut short once their size (entrySizeBytes) passes `maxBytes`; at least
   * one entry is returned whenever from <= to, so that a single large entry still makes progress.
   */
  slice(from: number, to: number, maxBytes = Infinity): Entry[] {
    invariant(from > this.offsetIndex && to <= this.lastIndex(), `slice(${from}, ${to}) outside the log [${this.firstIndex()}, ${this.lastIndex()}]`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = from; i <= to; i++) {
      const entry = this.entryAt(i);
      bytes += entrySizeBytes(entry);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  /**
   * §5.4.1: a candidate's log is "at least as up-to-date" as ours if its last term is higher,
   * or the last terms are equal and its log is at least as long.
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Appends entries that must continue the log exactly: next index, and no term going backwards. */
  append(entries: readonly Entry[]): void {
    for (const entry of entries) {
      invariant(entry.index === this.lastIndex() + 1, `append of index ${entry.index} after last index ${this.lastIndex()}`);
      invariant(entry.term >= this.lastTerm(), `append of term ${entry.term} after term ${this.lastTerm()} (terms never decrease along a log)`);
      this.entries.push(entry);
      this.configs.onAppend(entry);
    }
  }

  /**
   * The follower's side of §5.3: given entries that the leader says follow (prevIndex, prevTerm),
   * which must already match, find the first entry that conflicts with ours (same index,
   * different term), delete it and everything after it, and append the rest. Entries we
   * already hold are left alone, so a stale, reordered AppendEntries never shortens the log.
   * Returns the index of the last entry the message covered.
   */
  appendFromLeader(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number {
    if (prevIndex < this.offsetIndex) {
      // The message starts inside our compacted prefix. Everything there is committed, so the
      // current leader holds the same entries (Leader Completeness, §5.4): skip them.
      const skip = Math.min(entries.length, this.offsetIndex - prevIndex);
      if (skip === entries.length) return prevIndex + entries.length;
      const atOffset = entries[skip - 1]!;
      invariant(atOffset.term === this.offsetTerm, `leader's entry (${atOffset.index}, ${atOffset.term}) differs from our compacted (${this.offsetIndex}, ${this.offsetTerm})`);
      return this.appendFromLeader(this.offsetIndex, this.offsetTerm, entries.slice(skip));
    }
    invariant(this.matches(prevIndex, prevTerm), `appendFromLeader at unmatched (${prevIndex}, ${prevTerm})`);
    let i = 0;
    for (; i < entries.length; i++) {
      const entry = entries[i]!;
      invariant(entry.index === prevIndex + 1 + i, `AppendEntries entries are not contiguous at ${entry.index}`);
      if (entry.index > this.lastIndex()) break;
      if (this.termAt(entry.index) !== entry.term) {
        this.truncateFrom(entry.index);
        break;
      }
    }
    this.append(entries.slice(i));
    return prevIndex + entries.length;
  }

  /** Deletes entries [index, lastIndex]. Committed entries are never deleted (§5.4 Leader Completeness). */
  private truncateFrom(index: number): void {
    invariant(index > this._committed, `truncation at ${index} would delete committed entries (commit ${this._committed})`);
    this.entries.length = index - this.offsetIndex - 1;
    this.configs.truncateFrom(index); // thesis §4.1: a truncated config entry no longer counts
    // Entries that were durable or handed out are gone from the log; the next Ready rewrites the
    // suffix from `index` on (the driver replaces the stored suffix, see Ready in types.ts).
    this._stable = Math.min(this._stable, index - 1);
    this._handedOut = Math.min(this._handedOut, index - 1);
  }

  /**
   * The first index holding `term`, searching back from `atOrBefore`, which must hold `term`.
   * Terms never decrease along a log, so a binary search finds it.
   */
  firstIndexOfTerm(term: number, atOrBefore: number): number {
    invariant(this.termAt(atOrBefore) === term, `firstIndexOfTerm: index ${atOrBefore} does not hold term ${term}`);
    // Entries before the log's offset are gone: the search stops there.
    let lo = Math.max(1, this.offsetIndex);
    let hi = atOrBefore; // termAt(hi) === term; find the smallest index with termAt >= term
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.termAt(mid) < term) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The last index at or before `atOrBefore` that holds `term`, or 0 if there is none. */
  lastIndexOfTerm(term: number, atOrBefore: number): number {
    let lo = this.offsetIndex;
    let hi = Math.min(atOrBefore, this.lastIndex()); // find the largest index with termAt <= term
    if (hi < lo || this.termAt(lo) > term) return 0;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.termAt(mid) <= term) lo = mid;
      else hi = mid - 1;
    }
    return lo > 0 && this.termAt(lo) === term ? lo : 0;
  }

  /** Sets the commit index, which never goes down (Figure 2) and never passes the end of the log. */
  commitTo(index: number): void {
    invariant(index >= this._committed, `commit index would go down from ${this._committed} to ${index}`);
    invariant(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this._committed = index;
  }

  // ---- Snapshots (§7) ----

  /**
   * The driver saved a snapshot at `snapshot.index` (<= applied): remember it as the one to send
   * to followers that are behind, and discard entries up to `discardUpTo` (<= snapshot.index;
   * the entries after it stay for slow followers).
   */
  compact(snapshot: SnapshotMeta, discardUpTo: number): void {
    invariant(snapshot.index <= this._applied, `compaction at ${snapshot.index} past applied ${this._applied}`);
    invariant(discardUpTo <= snapshot.index, `discarding up to ${discardUpTo}, past the snapshot at ${snapshot.index}`);
    if (snapshot.index > (this._snapshot?.index ?? 0)) {
      this._snapshot = snapshot;
      this.configs.compact(snapshot.index);
    }
    if (discardUpTo > this.offsetIndex) {
      this.offsetTerm = this.termAt(discardUpTo);
      this.entries = this.entries.slice(discardUpTo - this.offsetIndex);
      this.offsetIndex = discardUpTo;
    }
  }

  /**
   * §7: a snapshot from the leader that covers entries we do not hold replaces the whole log
   * (the caller checked that it is not stale: snapshot.index > committed, and we do not hold its
   * last entry). It is committed (the leader only sends committed snapshots) and, once the driver
   * has switched it in (Ready.snapshot), applied.
   */
  installSnapshot(snapshot: SnapshotMeta): void {
    invariant(snapshot.index > this._committed, `installing snapshot ${snapshot.index} at or below commit ${this._committed}`);
    this.entries = [];
    this.offsetIndex = snapshot.index;
    this.offsetTerm = snapshot.term;
    this._snapshot = snapshot;
    this.unstableSnapshot = snapshot;
    this.configs.reset(snapshot.config, snapshot.index);
    this._committed = snapshot.index;
    this._applying = snapshot.index;
    this._stable = this._handedOut = snapshot.index;
  }

  /** The installed snapshot not yet handed out, taken (it goes in this Ready). */
  takeUnstableSnapshot(): SnapshotMeta | null {
    const s = this.unstableSnapshot;
    this.unstableSnapshot = null;
    return s;
  }

  hasUnstableSnapshot(): boolean {
    return this.unstableSnapshot !== null;
  }

  /** The driver switched in the snapshot at `index`: the state machine is restored from it. */
  snapshotApplied(index: number): void {
    invariant(index <= this._applying, `snapshot ${index} applied beyond applying ${this._applying}`);
    this._applied = Math.max(this._applied, index);
  }

  // ---- The Ready/advance handshake (see raft.ts) ----

  /** Entries not yet handed out for persisting. */
  unstableEntries(): Entry[] {
    return this.entries.slice(this._handedOut - this.offsetIndex);
  }

  /** The entries returned by unstableEntries() are now handed out. */
  handOutAll(): void {
    this._handedOut = this.lastIndex();
  }

  hasUnstableEntries(): boolean {
    return this._handedOut < this.lastIndex();
  }

  /**
   * Committed entries that may be applied now: handed out for persisting, not yet handed out for
   * applying; at most MAX_COMMITTED_BYTES_PER_READY of them (the rest go in the next Ready).
   */
  nextCommittedEntries(): Entry[] {
    const to = Math.min(this._committed, this._handedOut);
    return to > this._applying ? this.slice(this._applying + 1, to, MAX_COMMITTED_BYTES_PER_READY) : [];
  }

  hasCommittedEntries(): boolean {
    return Math.min(this._committed, this._handedOut) > this._applying;
  }

  applyingTo(index: number): void {
    invariant(index >= this._applying && index <= this._committed, `applying ${index} outside (${this._applying}, ${this._committed}]`);
    this._applying = index;
  }

  /**
   * The driver has persisted a Ready whose last entry had `index`. Everything up to there that
   * is still handed out (a conflicting AppendEntries may have cut the log meanwhile) is durable.
   */
  stableTo(index: number): void {
    this._stable = Math.max(this._stable, Math.min(index, this._handedOut));
  }

  appliedTo(index: number): void {
    invariant(index <= this._applying, `applied ${index} beyond applying ${this._applying}`);
    // A snapshot installed meanwhile may already have moved applied past `index`.
    this._applied = Math.max(this._applied, index);
  }
}
