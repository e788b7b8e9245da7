// The Raft log on LevelDB (classic-level): one database per node holding the entries, the hard
// state (term, vote, commit) and the cluster metadata. Record format: see codec.ts.
//
// Durability rules this file implements (Figure 2, "Persistent state on all servers ... updated on
// stable storage before responding to RPCs"):
// - save() writes the hard state and the new entries as ONE LevelDB batch with {sync: true}: it
//   resolves only after fsync, so the driver may then send messages that depend on it.
// - A conflicting suffix (§5.3: "if an existing entry conflicts with a new one, delete the existing
//   entry and all that follow it") is deleted in that same batch, so a crash leaves either the old
//   log or the new one, never a log with a hole or a mix of both.
// - load() verifies every record: checksum, contiguous indexes from 1, non-decreasing terms, and
//   commit <= last index. Anything else throws STORAGE_CORRUPT naming the record; a node refuses
//   to start rather than vote or serve with a log it cannot vouch for.

import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { RaftError } from '../core/errors.js';
import { EMPTY_HARD_STATE } from '../core/types.js';
import type { Entry, HardState, RestoredState } from '../core/types.js';
import type { LogStorage, SaveBatch, StorageMeta } from './types.js';
import {
  HARD_STATE_KEY,
  KEY_PREFIX_ENTRY,
  KEY_PREFIX_HARD_STATE,
  KEY_PREFIX_META,
  META_KEY,
  checkSaveBatch,
  corrupt,
  decodeEntry,
  decodeHardState,
  decodeMeta,
  encodeEntry,
  encodeHardState,
  encodeMeta,
  entryKey,
  type LogTail,
} from './codec.js';

type Db = ClassicLevel<Buffer, Buffer>;

/** Records read per native iterator call while loading. */
const LOAD_CHUNK_RECORDS = 1024;
type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** LevelDB reports its own corruption (bad block checksum, bad manifest) with this code. */
function isLevelCorruption(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'LEVEL_CORRUPTION';
}

export class LevelLogStorage implements LogStorage {
  /** The last stored entry (0, 0 = empty log). Kept in memory so save() needs no reads. */
  private tail: LogTail = { index: 0, term: 0 };
  /** Saves run one at a time, in call order, so `tail` always matches the disk. */
  private queue: Promise<void> = Promise.resolve();
  /** Set when a write failed: the disk state is then unknown, so every later save fails too. */
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    private readonly db: Db,
    /** The data directory, named in every error. */
    readonly dir: string,
  ) {}

  /** Opens (creating if missing) the database in `dir`. */
  static async open(dir: string): Promise<LevelLogStorage> {
    await mkdir(dir, { recursive: true });
    const db: Db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause ?? e;
      if (isLevelCorruption(cause) || isLevelCorruption(e)) {
        throw corrupt(dir, null, `LevelDB reports corruption on open: ${(cause as Error).message}`);
      }
      throw e;
    }
    const storage = new LevelLogStorage(db, dir);
    try {
      storage.tail = await storage.findTail();
    } catch (e) {
      await db.close();
      throw e;
    }
    return storage;
  }

  /** The last entry decides where the next append goes; load() later verifies everything. */
  private async findTail(): Promise<LogTail> {
    const last = await this.db
      .iterator({ gte: Buffer.from([KEY_PREFIX_ENTRY]), lt: Buffer.from([KEY_PREFIX_ENTRY + 1]), reverse: true, limit: 1 })
      .all();
    const record = last[0];
    if (record === undefined) return { index: 0, term: 0 };
    const entry = decodeEntry(this.dir, record[0], record[1]);
    return { index: entry.index, term: entry.term };
  }

  async load(): Promise<RestoredState> {
    this.assertOpen();
    const state: { hardState: HardState; entries: Entry[] } = { hardState: EMPTY_HARD_STATE, entries: [] };
    let lastKey: Buffer | null = null;
    const iterator = this.db.iterator();
    try {
      for (;;) {
        const chunk = await iterator.nextv(LOAD_CHUNK_RECORDS); // one native call per chunk
        if (chunk.length === 0) break;
        for (const [key, value] of chunk) {
          lastKey = key;
          this.loadRecord(key, value, state);
        }
      }
    } catch (e) {
      if (e instanceof RaftError) throw e;
      if (isLevelCorruption(e)) {
        const after = lastKey === null ? 'the start' : `key ${lastKey.toString('hex')}`;
        throw corrupt(this.dir, null, `LevelDB reports corruption after ${after}: ${(e as Error).message}`);
      }
      throw e;
    } finally {
      await iterator.close();
    }
    const { hardState, entries } = state;
    const lastIndex = entries.length;
    // Figure 2: commitIndex only covers entries this node stored; a commit past the end means
    // committed entries were lost.
    if (hardState.commit > lastIndex) {
      throw corrupt(
        this.dir,
        HARD_STATE_KEY,
        `commit index ${hardState.commit} is beyond the last stored entry ${lastIndex} (committed entries are missing)`,
      );
    }
    this.tail = { index: lastIndex, term: entries[lastIndex - 1]?.term ?? 0 };
    return { hardState, entries };
  }

  /** Verifies one record in key order and adds it to what load() returns. */
  private loadRecord(key: Buffer, value: Buffer, state: { hardState: HardState; entries: Entry[] }): void {
    const prefix = key[0];
    if (prefix === KEY_PREFIX_HARD_STATE && key.length === 1) {
      state.hardState = decodeHardState(this.dir, value);
    } else if (prefix === KEY_PREFIX_META && key.length === 1) {
      decodeMeta(this.dir, value); // verified here too, so a bad record is found at startup
    } else if (prefix === KEY_PREFIX_ENTRY) {
      const entry = decodeEntry(this.dir, key, value);
      const prev = state.entries[state.entries.length - 1];
      const expectedIndex = prev === undefined ? 1 : prev.index + 1;
      if (entry.index !== expectedIndex) {
        const why =
          prev === undefined ? 'the log must start at index 1' : `entries ${expectedIndex}..${entry.index - 1} are missing`;
        throw corrupt(this.dir, key, `expected index ${expectedIndex} next: ${why}`);
      }
      // Terms never decrease along a log (§5.3: a leader appends entries of its own term after
      // the entries it has, and terms only grow).
      if (prev !== undefined && entry.term < prev.term) {
        throw corrupt(this.dir, key, `term ${entry.term} is below the previous entry's term ${prev.term}`);
      }
      state.entries.push(entry);
    } else {
      throw corrupt(this.dir, key, 'key is not part of the Raft log format');
    }
  }

  save(batch: SaveBatch): Promise<void> {
    if (this.closed) return Promise.reject(new RaftError('STOPPED', `storage in ${this.dir} is closed`));
    const run = async (): Promise<void> => {
      if (this.failure !== null) {
        throw new RaftError('STOPPED', `storage in ${this.dir} failed earlier and accepts no writes: ${this.failure.message}`);
      }
      const ops = this.opsFor(batch);
      if (ops.ops.length === 0) return;
      try {
        await this.db.batch(ops.ops, { sync: true });
      } catch (e) {
        this.failure = e as Error;
        throw e;
      }
      this.tail = ops.newTail;
    };
    const result = this.queue.then(run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** The batch for a save: hard state, entries, and deletes for a truncated suffix. */
  private opsFor(batch: SaveBatch): { ops: BatchOp[]; newTail: LogTail } {
    const ops: BatchOp[] = [];
    let newTail = this.tail;
    if (batch.hardState !== null) {
      ops.push({ type: 'put', key: HARD_STATE_KEY, value: encodeHardState(batch.hardState) });
    }
    const { entries } = batch;
    checkSaveBatch(entries, this.tail);
    const last = entries[entries.length - 1];
    if (last !== undefined) {
      for (const entry of entries) {
        const { key, value } = encodeEntry(entry);
        ops.push({ type: 'put', key, value });
      }
      // Entries past the new last index belong to the replaced (conflicting) suffix: delete them
      // in the same batch. Those at or below it were overwritten by the puts above.
      for (let index = last.index + 1; index <= this.tail.index; index++) {
        ops.push({ type: 'del', key: entryKey(index) });
      }
      newTail = { index: last.index, term: last.term };
    }
    return { ops, newTail };
  }

  async readMeta(): Promise<StorageMeta | null> {
    this.assertOpen();
    const value = await this.db.get(META_KEY);
    return value === undefined ? null : decodeMeta(this.dir, value);
  }

  async writeMeta(meta: StorageMeta): Promise<void> {
    this.assertOpen();
    await this.db.put(META_KEY, encodeMeta(meta), { sync: true });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue; // saves accepted before close() still complete
    await this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new RaftError('STOPPED', `storage in ${this.dir} is closed`);
  }
}
