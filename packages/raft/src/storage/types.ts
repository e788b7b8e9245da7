// What the node driver needs from stable storage. The core never calls this: the driver reads
// the Ready batch, hands it to save(), waits for the sync, and only then sends messages.

import type { Entry, HardState, RestoredState, SnapshotMeta } from '../core/types.js';

export interface SaveBatch {
  readonly hardState: HardState | null;
  /**
   * Entries to append. If entries[0].index <= the stored last index, every stored entry from that
   * index on is removed in the same atomic batch (a conflicting suffix, §5.3).
   */
  readonly entries: readonly Entry[];
  /**
   * A snapshot installed from the leader (the core's Ready.snapshot; its file is already durable
   * in the snapshot store). When set, the log is reset in the same atomic batch, BEFORE the hard
   * state and entries are written: every stored entry is deleted and the snapshot record becomes
   * `snapshot`; `entries`, if any, must then start at snapshot.index + 1.
   */
  readonly snapshot?: SnapshotMeta;
}

export interface LogStorage {
  /**
   * Reads back the hard state, the latest snapshot's metadata (if the log was compacted or a
   * snapshot installed) and the log after it (possibly with a trailing window of entries at or
   * before the snapshot index), verifying every record's checksum.
   * Throws RaftError('STORAGE_CORRUPT') naming the record if anything is corrupt, torn or
   * out of sequence; a node must refuse to start on such a store.
   */
  load(): Promise<RestoredState>;
  /** Writes the batch atomically and durably (fsync) before resolving. */
  save(batch: SaveBatch): Promise<void>;
  /**
   * Log compaction (§7): records `snapshot` (whose file is already durable in the snapshot store)
   * as the snapshot the log starts after, and deletes every stored entry at or below
   * `discardUpTo` (<= snapshot.index; lower keeps a trailing window for slow followers), in one
   * atomic, fsync'd batch, together with `hardState` if given. The log must hold the entry at
   * snapshot.index with snapshot.term. A snapshot older than the recorded one is refused
   * (BAD_REQUEST). Runs in order with save(). Optional: without it the driver never compacts.
   */
  compact?(snapshot: SnapshotMeta, discardUpTo: number, hardState?: HardState | null): Promise<void>;
  /** Cluster identity fixed at first start (checked on every later start). */
  readMeta(): Promise<StorageMeta | null>;
  writeMeta(meta: StorageMeta): Promise<void>;
  close(): Promise<void>;
}

export interface StorageMeta {
  readonly clusterId: string;
  readonly nodeId: string;
}
