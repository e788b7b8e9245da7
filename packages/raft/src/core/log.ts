// RaftLog: one node's copy of the replicated log, and how far along it each stage has got.
//
// The whole log lives in memory (there are no snapshots yet). Five indexes describe it, always
// in this order:
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

import type { Entry } from './types.js';

/** Throws when an internal impossibility is detected: better to stop than corrupt data. */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`raft invariant violated: ${message}`);
}

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
  /** entries[i] is the entry at index i + 1. */
  private readonly entries: Entry[] = [];
  private _committed = 0;
  private _applying = 0;
  private _applied = 0;
  private _stable = 0;
  private _handedOut = 0;

  /** A log restored from stable storage: every entry in it is already durable. */
  static restore(entries: readonly Entry[], committed: number): RaftLog {
    const log = new RaftLog();
    log.append(entries);
    log._stable = log._handedOut = log.lastIndex();
    invariant(committed >= 0 && committed <= log.lastIndex(), `restored commit ${committed} beyond last index ${log.lastIndex()}`);
    log._committed = committed;
    return log;
  }

  get committed(): number { return this._committed; }
  get applied(): number { return this._applied; }
  get stable(): number { return this._stable; }

  lastIndex(): number {
    return this.entries.length;
  }

  lastTerm(): number {
    return this.termAt(this.lastIndex());
  }

  /** The term of the entry at `index`; index 0 is the empty prefix, whose term is 0. */
  termAt(index: number): number {
    if (index === 0) return 0;
    const entry = this.entries[index - 1];
    invariant(entry !== undefined, `termAt(${index}) outside the log [1, ${this.lastIndex()}]`);
    return entry.term;
  }

  /** Whether this log holds an entry at `index` with `term` (index 0 always matches). */
  matches(index: number, term: number): boolean {
    return index <= this.lastIndex() && this.termAt(index) === term;
  }

  entryAt(index: number): Entry {
    const entry = this.entries[index - 1];
    invariant(entry !== undefined, `entryAt(${index}) outside the log [1, ${this.lastIndex()}]`);
    return entry;
  }

  /**
   * Entries [from, to], cut short once their size (entrySizeBytes) passes `maxBytes`; at least
   * one entry is returned whenever from <= to, so that a single large entry still makes progress.
   */
  slice(from: number, to: number, maxBytes = Infinity): Entry[] {
    invariant(from >= 1 && to <= this.lastIndex(), `slice(${from}, ${to}) outside the log [1, ${this.lastIndex()}]`);
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
    this.entries.length = index - 1;
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
    let lo = 1;
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
    let lo = 0;
    let hi = Math.min(atOrBefore, this.lastIndex()); // find the largest index with termAt <= term
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

  // ---- The Ready/advance handshake (see raft.ts) ----

  /** Entries not yet handed out for persisting. */
  unstableEntries(): Entry[] {
    return this.entries.slice(this._handedOut);
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
    invariant(index >= this._applied && index <= this._applying, `applied ${index} outside [${this._applied}, ${this._applying}]`);
    this._applied = index;
  }
}
