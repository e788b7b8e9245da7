// An in-memory LogStorage with the same semantics as LevelLogStorage (for driver unit tests):
// atomic saves, truncation of a conflicting suffix (§5.3), the same batch checks. Data is copied
// on the way in and out, as a disk would, so callers cannot alias stored entries.

import { RaftError } from '../core/errors.js';
import { EMPTY_HARD_STATE } from '../core/types.js';
import type { Entry, HardState, RestoredState } from '../core/types.js';
import { checkSaveBatch } from './codec.js';
import type { LogStorage, SaveBatch, StorageMeta } from './types.js';

function copyEntry(e: Entry): Entry {
  return { index: e.index, term: e.term, type: e.type, data: e.data.slice() };
}

export class MemoryLogStorage implements LogStorage {
  private hardState: HardState = EMPTY_HARD_STATE;
  /** entries[i] has index i + 1. */
  private entries: Entry[] = [];
  private meta: StorageMeta | null = null;
  private closed = false;

  async load(): Promise<RestoredState> {
    this.assertOpen();
    if (this.hardState.commit > this.entries.length) {
      throw new RaftError(
        'STORAGE_CORRUPT',
        `memory storage: hard-state commit ${this.hardState.commit} is beyond the last entry ${this.entries.length}`,
      );
    }
    return { hardState: this.hardState, entries: this.entries.map(copyEntry) };
  }

  async save(batch: SaveBatch): Promise<void> {
    this.assertOpen();
    const { entries } = batch;
    // Check everything before changing anything: the save is all or nothing.
    const lastIndex = this.entries.length;
    checkSaveBatch(entries, { index: lastIndex, term: this.entries[lastIndex - 1]?.term ?? 0 });
    const first = entries[0];
    if (first !== undefined) {
      // Keep [1, first.index), drop the (possibly conflicting) suffix, append the new entries.
      this.entries = this.entries.slice(0, first.index - 1).concat(entries.map(copyEntry));
    }
    if (batch.hardState !== null) {
      const { term, vote, commit } = batch.hardState;
      this.hardState = { term, vote, commit };
    }
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
    s.meta = this.meta;
    return s;
  }

  private assertOpen(): void {
    if (this.closed) throw new RaftError('STOPPED', 'memory storage is closed');
  }
}
