// The key index: for every key, which revisions wrote it.
//
// Multi-version concurrency control (MVCC) in one paragraph. The store never overwrites data. It
// has one global counter, the REVISION, which every write transaction increments once; all the
// changes of that transaction are stored under the new revision (each with a small SUB-revision
// giving its position inside the transaction). A put stores a new version of the key; a delete
// stores a TOMBSTONE, a marker saying "the key ends here". Reading "the store as of revision R"
// means: for each key, take its newest change with revision <= R; if that change is a tombstone
// (or there is none) the key did not exist at R. Old versions stay readable until COMPACTION
// throws away what no reader may ask for any more.
//
// A key's life is cut into GENERATIONS: a generation starts with the put that creates the key
// (its create revision) and ends with the tombstone that deletes it. Re-creating the key starts a
// new generation with version 1 again. So a key's history looks like
//
//   generation 1: put@3 (v1), put@5 (v2), tombstone@8      <- deleted at revision 8
//   generation 2: put@12 (v1)                             <- alive, created again at 12
//
// This file keeps that history in memory (like etcd's keyIndex), ordered by key in a B+ tree, so
// a range at any revision finds which (revision, sub) to read without touching the disk. The
// values of old revisions live on disk (store.ts); the latest value of each live key is also kept
// here so that the current state can be read synchronously, as the Raft apply loop needs.

import BTreeModule from 'sorted-btree';
import type { KeyValue } from '../types.js';
import { inRange, type KeyRange, type KeyString } from './keys.js';

// sorted-btree is CommonJS with `exports.default`: Node's ESM loader hands us module.exports (the
// class is its .default), bundlers such as vitest's hand us the class itself.
type BTreeClass = typeof BTreeModule.default;
const BTree: BTreeClass = (BTreeModule as unknown as { default?: BTreeClass }).default ?? (BTreeModule as unknown as BTreeClass);

/** Where one change of a key is stored: the revision of its transaction and its position in it. */
export interface Rev {
  readonly main: number;
  readonly sub: number;
}

export function compareRev(a: Rev, b: Rev): number {
  return a.main !== b.main ? a.main - b.main : a.sub - b.sub;
}

/** One life of a key, from the put that created it to the tombstone that deleted it (if any). */
export interface Generation {
  /** Revision of the put that created this generation. */
  readonly createRevision: number;
  /** Changes, oldest first. After compaction the first one may not be the creating put. */
  readonly revs: Rev[];
  /** True when the last rev is a tombstone: the generation is over. */
  closed: boolean;
}

/** Everything the index knows about one key. */
export class KeyHistory {
  /** Oldest first; only the last one may be open. */
  readonly generations: Generation[] = [];
  /** The key's current value, or null if it is deleted now (its history may still be readable). */
  live: KeyValue | null = null;

  /** Records a put at `rev`; starts a new generation if the key is not alive. */
  put(rev: Rev, kv: KeyValue): void {
    const last = this.generations[this.generations.length - 1];
    if (last === undefined || last.closed) {
      this.generations.push({ createRevision: kv.createRevision, revs: [rev], closed: false });
    } else {
      last.revs.push(rev);
    }
    this.live = kv;
  }

  /** Records a tombstone at `rev`, closing the current generation. Precondition: the key is alive. */
  tombstone(rev: Rev): void {
    const last = this.generations[this.generations.length - 1];
    if (last === undefined || last.closed) throw new Error(`key index: tombstone on a key that is not alive (rev ${rev.main})`);
    last.revs.push(rev);
    last.closed = true;
    this.live = null;
  }

  /**
   * Loading from disk after a compaction: a tombstone may be the first record left of its
   * generation (a delete of exactly the compaction revision is kept, its puts are not).
   */
  loadTombstone(rev: Rev): void {
    const last = this.generations[this.generations.length - 1];
    if (last === undefined || last.closed) this.generations.push({ createRevision: 0, revs: [rev], closed: true });
    else this.tombstone(rev);
  }

  /**
   * Which change holds the key's state as of revision `atRevision`: the newest rev <= atRevision,
   * unless that rev is a tombstone (or there is none), in which case the key did not exist then.
   */
  revAt(atRevision: number): Rev | null {
    for (let g = this.generations.length - 1; g >= 0; g--) {
      const gen = this.generations[g]!;
      const first = gen.revs[0];
      if (first === undefined || first.main > atRevision) continue; // generation starts later
      // Binary search for the last rev with main <= atRevision.
      let lo = 0;
      let hi = gen.revs.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (gen.revs[mid]!.main <= atRevision) lo = mid;
        else hi = mid - 1;
      }
      const isTombstone = gen.closed && lo === gen.revs.length - 1;
      return isTombstone ? null : gen.revs[lo]!;
    }
    return null;
  }

  /**
   * Compaction to revision `atRevision` (etcd's rule): every change older than the key's state at
   * `atRevision` is forgotten; that state itself is kept if it is a put (a reader at atRevision still
   * needs it) and dropped if it is a tombstone (a deleted key reads the same with or without it) --
   * unless the tombstone is OF revision atRevision: then it is kept so that revision stays complete
   * for watchers replaying from it. Appends the revs whose stored records can be deleted to `dropped`.
   */
  compact(atRevision: number, dropped: Rev[]): void {
    let kept = 0;
    for (const gen of this.generations) {
      const last = gen.revs[gen.revs.length - 1];
      if (last !== undefined && gen.closed && last.main < atRevision) {
        // The whole generation, tombstone included, ended before the compaction point.
        for (const rev of gen.revs) dropped.push(rev);
        continue;
      }
      // Keep the newest rev <= atRevision (the state a reader at atRevision sees) and everything after.
      let keepFrom = 0;
      for (let i = 0; i < gen.revs.length; i++) if (gen.revs[i]!.main <= atRevision) keepFrom = i;
      for (const rev of gen.revs.splice(0, keepFrom)) dropped.push(rev);
      this.generations[kept++] = gen;
    }
    this.generations.length = kept;
  }

  /** The key has nothing left to read at any revision. */
  get isEmpty(): boolean {
    return this.generations.length === 0;
  }
}

/** All keys, in byte order. */
export class KeyIndex {
  private readonly tree = new BTree<KeyString, KeyHistory>();

  get size(): number {
    return this.tree.size;
  }

  get(key: KeyString): KeyHistory | undefined {
    return this.tree.get(key);
  }

  /** The history of `key`, created empty if the key was never seen. */
  getOrCreate(key: KeyString): KeyHistory {
    let h = this.tree.get(key);
    if (h === undefined) {
      h = new KeyHistory();
      this.tree.set(key, h);
    }
    return h;
  }

  delete(key: KeyString): void {
    this.tree.delete(key);
  }

  clear(): void {
    this.tree.clear();
  }

  /** Calls `visit` for every key in the range, in byte order; stops early when visit returns false. */
  forEachInRange(range: KeyRange, visit: (key: KeyString, h: KeyHistory) => boolean | void): void {
    if (range.end === undefined) {
      const h = this.tree.get(range.start);
      if (h !== undefined) visit(range.start, h);
      return;
    }
    if (range.end !== null && range.end <= range.start) return;
    const onFound = (k: KeyString, h: KeyHistory): { break: true } | void => {
      if (!inRange(range, k) || visit(k, h) === false) return { break: true };
    };
    if (range.end === null) {
      // No upper bound: walk from start to the last key.
      const maxKey = this.tree.maxKey();
      if (maxKey === undefined || maxKey < range.start) return;
      this.tree.forRange(range.start, maxKey, true, onFound);
    } else {
      this.tree.forRange(range.start, range.end, false, onFound);
    }
  }

  /** Every key, in byte order. */
  entries(): IterableIterator<[KeyString, KeyHistory]> {
    return this.tree.entries();
  }
}
