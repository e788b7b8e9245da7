// The MVCC store: revisions on disk, the key index in memory.
//
// On disk (LevelDB), every change is one record under its revision, like etcd's "key" bucket:
//
//   "r" + main revision (8 bytes, big-endian) + sub revision (4 bytes)  ->  msgpack record
//
// Big-endian numbers sort like the numbers themselves, so LevelDB's key order is revision order
// and "every change from revision A to B" is one sequential scan (watch catch-up, restart). A
// record holds the key, its create revision, version, value and lease, whether it is a tombstone,
// and where the key's previous change is (for a watcher's prev_kv).
//
// In memory: the key index (key-index.ts) with each live key's latest value. Reads at the current
// revision, and everything apply() needs to decide a command, are answered from memory,
// synchronously. Reads at an older revision ask the index which (revision, sub) holds each key's
// state then, and read those records from LevelDB.
//
// Writes: apply() opens a RevisionWriter for the next revision, puts and deletes through it, and
// ends it. If it changed anything, the store's revision becomes the writer's revision (one
// revision per write transaction, however many keys it touched) and its records go to the
// write-behind batch (write-behind.ts). A transaction that changed nothing creates no revision.
//
// Compaction to revision C (etcd's semantics): afterwards, reads at revisions < C fail with
// COMPACTED; reads at C and later answer exactly as before. So for each key we keep its state as
// of C if that is a value (not a tombstone) and everything newer, and delete the rest. Every
// record OF revision C itself is kept too (a tombstone at C included), so a watch can still
// replay revision C completely: history(C) is served, history(C - 1) is COMPACTED.

import { Packr } from 'msgpackr';
import { ETCD_MESSAGES, KvError } from '../errors.js';
import type { Bytes, KeyValue, RevisionEvents, WatchEvent } from '../types.js';
import { KeyHistory, KeyIndex, type Rev } from './key-index.js';
import { keyBytes, keyString, type KeyRange, type KeyString } from './keys.js';
import type { Db, WriteBehind } from './write-behind.js';

/** msgpack without shared structures: every record decodes on its own, on any replica. */
export const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });

const REV_PREFIX = 0x72; // 'r'
const REV_KEY_BYTES = 13;
const EMPTY = new Uint8Array(0);

/** LevelDB key of the record of change `rev`. */
export function revKey(main: number, sub: number): Uint8Array {
  const k = Buffer.allocUnsafe(REV_KEY_BYTES);
  k[0] = REV_PREFIX;
  k.writeUInt32BE(Math.floor(main / 0x1_0000_0000), 1);
  k.writeUInt32BE(main >>> 0, 5);
  k.writeUInt32BE(sub, 9);
  return k;
}

export function parseRevKey(k: Uint8Array): Rev {
  const b = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  return { main: b.readUInt32BE(1) * 0x1_0000_0000 + b.readUInt32BE(5), sub: b.readUInt32BE(9) };
}

/** The first and past-the-last LevelDB keys of the revision records. */
export const REV_RANGE = { gte: Uint8Array.of(REV_PREFIX), lt: Uint8Array.of(REV_PREFIX + 1) } as const;

/** What a record stores: [key, createRevision, version, value, lease, tombstone 0|1, prevMain, prevSub]. */
type RevRecord = [Bytes, number, number, Bytes, number, number, number, number];

interface DecodedRecord {
  readonly rev: Rev;
  readonly kv: KeyValue;
  readonly tombstone: boolean;
  readonly prev: Rev | null;
}

function decodeRecord(rev: Rev, bytes: Uint8Array): DecodedRecord {
  const r = packr.unpack(bytes) as RevRecord;
  const tombstone = r[5] === 1;
  const kv: KeyValue = tombstone
    ? { key: r[0], createRevision: 0, modRevision: rev.main, version: 0, value: EMPTY, lease: 0 }
    : { key: r[0], createRevision: r[1], modRevision: rev.main, version: r[2], value: r[3], lease: r[4] };
  return { rev, kv, tombstone, prev: r[6] < 0 ? null : { main: r[6], sub: r[7] } };
}

/** The store's answer to a range, before sort/limit (done by the caller). */
export interface RangeScan {
  readonly kvs: KeyValue[];
  /** Keys that matched (kvs may hold fewer when `maxKvs` stopped collecting). */
  readonly count: number;
}

/**
 * Thrown by a read on a store that a restore has replaced meanwhile (its disk records are gone);
 * the owner retries the read on the new store.
 */
export class StaleStoreError extends Error {
  constructor() {
    super('mvcc: the store was replaced by a restore during the read');
  }
}

export class MvccStore {
  readonly index = new KeyIndex();
  /** Set when a restore replaced this store: reads that have not touched the disk yet must retry. */
  retired = false;
  /** The revision of the last write transaction (0 for an empty store). */
  revision = 0;
  /** Reads below this revision fail with COMPACTED; 0 = nothing compacted. */
  compactedRevision = 0;

  constructor(
    private readonly db: Db,
    private readonly wb: WriteBehind,
    /** A restore in progress (the database is being rewritten): reads of the disk wait for it. */
    private readonly restoreInProgress: () => Promise<void> | null = () => null,
  ) {}

  /** Waits for pending writes and for any restore; afterwards (synchronously) the disk may be read. */
  private async readyToRead(): Promise<void> {
    await this.wb.flushed();
    for (let r = this.restoreInProgress(); r !== null; r = this.restoreInProgress()) await r.catch(() => undefined);
    if (this.retired) throw new StaleStoreError();
  }

  /** Rebuilds the key index from the records on disk (at open and after a restore). */
  async load(revision: number, compactedRevision: number): Promise<void> {
    this.revision = revision;
    this.compactedRevision = compactedRevision;
    const it = this.db.iterator({ ...REV_RANGE });
    try {
      for (;;) {
        const page = await it.nextv(1000);
        if (page.length === 0) break;
        for (const [k, v] of page) {
          const rec = decodeRecord(parseRevKey(k), v);
          const h = this.index.getOrCreate(keyString(rec.kv.key));
          if (rec.tombstone) h.loadTombstone(rec.rev);
          else h.put(rec.rev, rec.kv);
        }
      }
    } finally {
      await it.close();
    }
  }

  /** Starts the write transaction that will create revision `revision + 1` if it changes anything. */
  beginWrite(): RevisionWriter {
    return new RevisionWriter(this, this.wb, this.revision + 1);
  }

  /** Ends a write: commits its revision if it changed something; returns its events (or null). */
  endWrite(w: RevisionWriter): RevisionEvents | null {
    if (w.events.length === 0) return null;
    if (w.revision !== this.revision + 1) throw new Error(`mvcc: writer for ${w.revision} ended at revision ${this.revision}`);
    this.revision = w.revision;
    return { revision: w.revision, events: w.events };
  }

  /** The live keys in `range` as of now (including writes of an open writer). Synchronous. */
  rangeCurrent(range: KeyRange, maxKvs: number): RangeScan {
    const kvs: KeyValue[] = [];
    let count = 0;
    this.index.forEachInRange(range, (_k, h) => {
      if (h.live === null) return;
      count++;
      if (kvs.length < maxKvs) kvs.push(h.live);
    });
    return { kvs, count };
  }

  /**
   * The keys in `range` as they were at `atRevision` (< current), read from disk. Waits for the
   * write-behind batches first, so everything up to the current revision is on disk.
   */
  async rangeAt(range: KeyRange, atRevision: number, maxKvs: number): Promise<RangeScan> {
    this.checkReadable(atRevision);
    await this.readyToRead();
    this.checkReadable(atRevision); // a compaction may have been applied meanwhile
    const revs: Rev[] = [];
    let count = 0;
    this.index.forEachInRange(range, (_k, h) => {
      const rev = h.revAt(atRevision);
      if (rev === null) return;
      count++;
      if (revs.length < maxKvs) revs.push(rev);
    });
    // getMany reads from a LevelDB snapshot taken now, synchronously: no compaction can slip in.
    const values = await this.db.getMany(revs.map((r) => revKey(r.main, r.sub)));
    const kvs = values.map((v, i) => {
      if (v === undefined) throw new KvError('INTERNAL', `mvcc: record of revision ${revs[i]!.main} missing from disk`);
      return decodeRecord(revs[i]!, v).kv;
    });
    return { kvs, count };
  }

  /** Throws etcd's errors for a read at `atRevision` (0 = current): FUTURE_REV, COMPACTED. */
  checkReadable(atRevision: number): void {
    if (atRevision > this.revision) throw new KvError('FUTURE_REV', ETCD_MESSAGES.FUTURE_REV);
    if (atRevision > 0 && atRevision < this.compactedRevision) throw new KvError('COMPACTED', ETCD_MESSAGES.COMPACTED);
  }

  /**
   * Compacts to `atRevision` (the caller checked compactedRevision < atRevision <= revision).
   * Synchronous: the index forgets at once; the records' deletion goes to the write-behind batch.
   */
  compact(atRevision: number): number {
    const emptied: KeyString[] = [];
    let dropped = 0;
    const revs: Rev[] = [];
    for (const [k, h] of this.index.entries()) {
      revs.length = 0;
      h.compact(atRevision, revs);
      for (const rev of revs) this.wb.del(revKey(rev.main, rev.sub));
      dropped += revs.length;
      if (h.isEmpty) emptied.push(k);
    }
    for (const k of emptied) this.index.delete(k);
    this.compactedRevision = atRevision;
    return dropped;
  }

  /**
   * Every revision in [fromRevision, toRevision], in order, with all the events of each revision
   * together (from disk; waits for pending writes first). prevKv filled when `withPrevKv` and the
   * previous change is still on disk. Reads in pages of `pageRecords` (bounded memory).
   * COMPACTED if fromRevision < compactedRevision (revision C itself is kept whole, see above).
   */
  async *history(fromRevision: number, toRevision: number, withPrevKv: boolean, pageRecords = 1000): AsyncGenerator<RevisionEvents> {
    if (fromRevision < this.compactedRevision) throw new KvError('COMPACTED', ETCD_MESSAGES.COMPACTED);
    if (toRevision < fromRevision) return;
    await this.readyToRead();
    if (fromRevision < this.compactedRevision) throw new KvError('COMPACTED', ETCD_MESSAGES.COMPACTED);
    const it = this.db.iterator({ gte: revKey(fromRevision, 0), lt: revKey(toRevision + 1, 0) });
    try {
      let revision = 0;
      let events: WatchEvent[] = [];
      for (;;) {
        const page = await it.nextv(pageRecords);
        if (page.length === 0) break;
        const recs = page.map(([k, v]) => decodeRecord(parseRevKey(k), v));
        let prevs: (DecodedRecord | null)[] = [];
        if (withPrevKv) {
          const wanted = recs.map((r) => r.prev);
          const found = await this.db.getMany(wanted.filter((p): p is Rev => p !== null).map((p) => revKey(p.main, p.sub)));
          let j = 0;
          prevs = wanted.map((p) => {
            if (p === null) return null;
            const v = found[j++];
            return v === undefined ? null : decodeRecord(p, v);
          });
        }
        for (let i = 0; i < recs.length; i++) {
          const rec = recs[i]!;
          if (rec.rev.main !== revision && events.length > 0) {
            yield { revision, events };
            events = [];
          }
          revision = rec.rev.main;
          const prev = prevs[i];
          const ev: WatchEvent = { type: rec.tombstone ? 'delete' : 'put', kv: rec.kv, ...(prev ? { prevKv: prev.kv } : {}) };
          events.push(ev);
        }
      }
      if (events.length > 0) yield { revision, events };
    } finally {
      await it.close();
    }
  }
}

/**
 * The changes of one write transaction, all under one revision. Each put or delete gets the next
 * sub revision, updates the index and the live value at once (so later operations of the same
 * transaction see it, as etcd's txn semantics require) and queues its record for the disk.
 */
export class RevisionWriter {
  readonly events: WatchEvent[] = [];
  private sub = 0;

  constructor(
    private readonly store: MvccStore,
    private readonly wb: WriteBehind,
    readonly revision: number,
  ) {}

  /** Writes a new version of `key`. Returns the previous value (null if the key was not alive). */
  put(key: KeyString, value: Bytes, lease: number, keyBytesHint?: Bytes): { readonly prev: KeyValue | null; readonly kv: KeyValue } {
    const h = this.store.index.getOrCreate(key);
    const prev = h.live;
    const prevRev = prev === null ? null : lastRev(h);
    const kv: KeyValue = {
      key: prev?.key ?? keyBytesHint ?? keyBytes(key),
      createRevision: prev === null ? this.revision : prev.createRevision,
      modRevision: this.revision,
      version: prev === null ? 1 : prev.version + 1,
      value,
      lease,
    };
    const rev = { main: this.revision, sub: this.sub++ };
    h.put(rev, kv);
    const record: RevRecord = [kv.key, kv.createRevision, kv.version, value, lease, 0, prevRev?.main ?? -1, prevRev?.sub ?? 0];
    this.wb.put(revKey(rev.main, rev.sub), packr.pack(record));
    this.events.push(prev === null ? { type: 'put', kv } : { type: 'put', kv, prevKv: prev });
    return { prev, kv };
  }

  /** Deletes `key` (writes a tombstone). Returns the deleted value, or null if it was not alive. */
  delete(key: KeyString): KeyValue | null {
    const h = this.store.index.get(key);
    const prev = h?.live ?? null;
    if (h === undefined || prev === null) return null;
    const prevRev = lastRev(h);
    const rev = { main: this.revision, sub: this.sub++ };
    h.tombstone(rev);
    const record: RevRecord = [prev.key, 0, 0, EMPTY, 0, 1, prevRev?.main ?? -1, prevRev?.sub ?? 0];
    this.wb.put(revKey(rev.main, rev.sub), packr.pack(record));
    const kv: KeyValue = { key: prev.key, createRevision: 0, modRevision: this.revision, version: 0, value: EMPTY, lease: 0 };
    this.events.push({ type: 'delete', kv, prevKv: prev });
    return prev;
  }
}

function lastRev(h: KeyHistory): Rev | null {
  const gen = h.generations[h.generations.length - 1];
  return gen?.revs[gen.revs.length - 1] ?? null;
}
