// What the node driver needs from stable storage. The core never calls this: the driver reads
// the Ready batch, hands it to save(), waits for the sync, and only then sends messages.

import type { Entry, HardState, RestoredState } from '../core/types.js';

export interface SaveBatch {
  readonly hardState: HardState | null;
  /**
   * Entries to append. If entries[0].index <= the stored last index, every stored entry from that
   * index on is removed in the same atomic batch (a conflicting suffix, §5.3).
   */
  readonly entries: readonly Entry[];
}

export interface LogStorage {
  /**
   * Reads back the hard state and the whole log, verifying every record's checksum.
   * Throws RaftError('STORAGE_CORRUPT') naming the record if anything is corrupt, torn or
   * out of sequence; a node must refuse to start on such a store.
   */
  load(): Promise<RestoredState>;
  /** Writes the batch atomically and durably (fsync) before resolving. */
  save(batch: SaveBatch): Promise<void>;
  /** Cluster identity fixed at first start (checked on every later start). */
  readMeta(): Promise<StorageMeta | null>;
  writeMeta(meta: StorageMeta): Promise<void>;
  close(): Promise<void>;
}

export interface StorageMeta {
  readonly clusterId: string;
  readonly nodeId: string;
}
