// An in-memory LogStorage with the same semantics as LevelLogStorage (for driver unit tests):
// atomic saves, truncation of a conflicting suffix (§5.3), compaction and snapshot installs (§7),
// the same batch checks. Data is copied on the way in and out, as a disk would, so callers cannot
// alias stored entries.

import { RaftError } from '../core/errors.js';
import { EMPTY_HARD_STATE } from '../core/types.js';
import type { Entry, HardState, RestoredState, SnapshotMeta } from '../core/types.js';
import { checkSaveBatch } from './codec.js';
import { checkCompaction, checkInstall } from './leveldb.js';
import type { LogStorage, SaveBatch, StorageMeta } from './types.js';

function copyEntry(e: Entry): Entry {
  return { index: e.index, term: e.term, type: e.type, data: e.data.slice() };
}

function copyMeta(s: SnapshotMeta): SnapshotMeta {
  return { index: s.index, term: s.term, config: { voters: [...s.config.voters], learners: [...s.config.learners] } };
}

export class MemoryLogStorage implements LogStorage {
  private hardState: HardState = EMPTY_HARD_STATE;
  /** entries[i] has index offset + i + 1 (offset = the index before the first stored entry). */
  private entries: Entry[] = [];
  private offset = 0;
  private snapshot: SnapshotMeta | null = null;
  private meta: StorageMeta | null = null;
  private closed = false;

  private get lastIndex(): number {
    return this.offset + this.entries.length;
  }

  private get lastTerm(): number {
    return this.entries[this.entries.length - 1]?.term ?? (this.snapshot !== null && this.offset === this.snapshot.index ? this.snapshot.term : 0);
  }

  async load(): Promise<RestoredState> {
    this.assertOpen();
    if (this.hardState.commit > this.lastIndex) {
      throw new RaftError(
        'STORAGE_CORRUPT',
        `memory storage: hard-state commit ${this.hardState.commit} is beyond the last entry ${this.lastIndex}`,
      );
    }
    const entries = this.entries.map(copyEntry);
    if (this.snapshot === null) return { hardState: this.hardState, entries };
    const commit = Math.max(this.hardState.commit, this.snapshot.index);
    return { hardState: { ...this.hardState, commit }, entries, snapshot: copyMeta(this.snapshot) };
  }

  async save(batch: SaveBatch): Promise<void> {
    this.assertOpen();
    const { entries } = batch;
    // Check everything before changing anything: the save is all or nothing.
    let offset = this.offset;
    let kept = this.entries;
    let snapshot = this.snapshot;
    if (batch.snapshot !== undefined) {
      checkInstall(batch.snapshot, this.snapshot);
      snapshot = copyMeta(batch.snapshot);
      offset = snapshot.index;
      kept = [];
    }
    const lastIndex = offset + kept.length;
    const lastTerm = kept[kept.length - 1]?.term ?? (snapshot !== null && offset === snapshot.index ? snapshot.term : 0);
    checkSaveBatch(entries, { index: lastIndex, term: lastTerm });
    const first = entries[0];
    if (first !== undefined && snapshot !== null && first.index <= snapshot.index) {
      throw new RaftError('BAD_REQUEST', `save: entry ${first.index} is at or before the snapshot at ${snapshot.index} (committed, it cannot change)`);
    }
    if (first !== undefined && first.index <= offset) {
      throw new RaftError('BAD_REQUEST', `save: entry ${first.index} is before the first stored entry ${offset + 1}`);
    }
    if (first !== undefined) {
      // Keep (offset, first.index), drop the (possibly conflicting) suffix, append the new entries.
      kept = kept.slice(0, first.index - 1 - offset).concat(entries.map(copyEntry));
    }
    this.entries = kept;
    this.offset = offset;
    this.snapshot = snapshot;
    if (batch.hardState !== null) {
      const { term, vote, commit } = batch.hardState;
      this.hardState = { term, vote, commit };
    }
  }

  async compact(snapshot: SnapshotMeta, discardUpTo: number, hardState: HardState | null = null): Promise<void> {
    this.assertOpen();
    checkCompaction(snapshot, discardUpTo, this.snapshot, { index: this.lastIndex, term: this.lastTerm });
    const drop = Math.max(0, discardUpTo - this.offset);
    this.entries = this.entries.slice(drop);
    this.offset += drop;
    this.snapshot = copyMeta(snapshot);
    if (hardState !== null) this.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
  }

  async readMeta(): Promise<StorageMeta | null> {
    this.assertOpen();
    return this.meta;
  }

  async writeMeta(meta: StorageMeta): Promise<void> {
    this.assertOpen();
    this.meta = { clusterId: meta.clusterId, nodeId: meta.nodeId };
  }

  /** Closing keeps the contents; reopen() gives a fresh handle on them (a restart in tests). */
  async close(): Promise<void> {
    this.closed = true;
  }

  /** Simulates reopening the same store after close(): returns a new handle on the same contents. */
  reopen(): MemoryLogStorage {
    const s = new MemoryLogStorage();
    s.hardState = this.hardState;
    s.entries = this.entries.map(copyEntry);
    s.offset = this.offset;
    s.snapshot = this.snapshot === null ? null : copyMeta(this.snapshot);
    s.meta = this.meta;
    return s;
  }

  private assertOpen(): void {
    if (this.closed) throw new RaftError('STOPPED', 'memory storage is closed');
  }
}
