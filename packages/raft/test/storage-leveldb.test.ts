// LevelLogStorage on a real LevelDB in a temporary directory: round trips, atomic truncation of a
// conflicting suffix, reopening, and refusal to load corrupt, torn or out-of-sequence records.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RaftError } from '../src/core/errors.js';
import { EMPTY_HARD_STATE, type Entry } from '../src/core/types.js';
import { encodeEntry } from '../src/storage/codec.js';
import { LevelLogStorage } from '../src/storage/leveldb.js';

const bytes = (...xs: number[]): Uint8Array => new Uint8Array(xs);
const entry = (index: number, term: number, data: Uint8Array = bytes(index, term)): Entry => ({
  index,
  term,
  type: 'normal',
  data,
});
const range = (from: number, to: number, term: number): Entry[] => {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
};

/** The documented key layout (codec.ts), built independently here: 0x03 ‖ u64 BE index. */
function rawEntryKey(index: number): Buffer {
  const key = Buffer.alloc(9);
  key[0] = 0x03;
  key.writeBigUInt64BE(BigInt(index), 1);
  return key;
}
const RAW_HARD_STATE_KEY = Buffer.from([0x01]);
const RAW_META_KEY = Buffer.from([0x02]);

let dir: string;
let open: LevelLogStorage[] = [];

async function openStore(): Promise<LevelLogStorage> {
  const s = await LevelLogStorage.open(dir);
  open.push(s);
  return s;
}

async function closeAll(): Promise<void> {
  for (const s of open) await s.close();
  open = [];
}

/** Edits the database behind the storage's back, as a disk fault or a careless operator would. */
async function withRawDb(fn: (db: ClassicLevel<Buffer, Buffer>) => Promise<void>): Promise<void> {
  await closeAll();
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

async function expectCorrupt(promise: Promise<unknown>, ...mentions: string[]): Promise<RaftError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RaftError);
  const raftErr = err as RaftError;
  expect(raftErr.code).toBe('STORAGE_CORRUPT');
  expect(raftErr.message).toContain(dir);
  for (const m of mentions) expect(raftErr.message).toContain(m);
  return raftErr;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ballot-storage-'));
});

afterEach(async () => {
  await closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('LevelLogStorage round trip', () => {
  it('an empty store loads as the empty log and hard state', async () => {
    const s = await openStore();
    expect(await s.load()).toEqual({ hardState: EMPTY_HARD_STATE, entries: [] });
    expect(await s.readMeta()).toBeNull();
  });

  it('saves entries and hard state and loads them back as plain Uint8Arrays', async () => {
    const s = await openStore();
    const entries: Entry[] = [
      { index: 1, term: 1, type: 'noop', data: new Uint8Array(0) },
      entry(2, 1, bytes(0, 255, 7)),
      entry(3, 2, new Uint8Array(1000).fill(42)),
    ];
    await s.save({ hardState: { term: 2, vote: 'n2', commit: 2 }, entries });
    await s.save({ hardState: null, entries: [entry(4, 2)] });
    const loaded = await s.load();
    expect(loaded.hardState).toEqual({ term: 2, vote: 'n2', commit: 2 });
    expect(loaded.entries).toEqual([...entries, entry(4, 2)]);
    for (const e of loaded.entries) expect(Object.getPrototypeOf(e.data)).toBe(Uint8Array.prototype);
  });

  it('keeps everything across close and reopen, and appends after the reopened last index', async () => {
    const s = await openStore();
    await s.save({ hardState: { term: 3, vote: null, commit: 5 }, entries: range(1, 5, 3) });
    await s.writeMeta({ clusterId: 'ballot', nodeId: 'n1' });
    await closeAll();

    const t = await openStore();
    // No load() first: the last index is found on open, so an append goes to the right place.
    await t.save({ hardState: null, entries: [entry(6, 3)] });
    await expect(t.save({ hardState: null, entries: [entry(8, 3)] })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(await t.load()).toEqual({ hardState: { term: 3, vote: null, commit: 5 }, entries: range(1, 6, 3) });
    expect(await t.readMeta()).toEqual({ clusterId: 'ballot', nodeId: 'n1' });
  });

  it('rejects a batch that would leave a gap or has non-contiguous entries, writing nothing', async () => {
    const s = await openStore();
    await s.save({ hardState: null, entries: range(1, 3, 1) });
    await expect(
      s.save({ hardState: { term: 9, vote: null, commit: 0 }, entries: [entry(5, 1)] }),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(s.save({ hardState: null, entries: [entry(4, 1), entry(6, 1)] })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    expect(await s.load()).toEqual({ hardState: EMPTY_HARD_STATE, entries: range(1, 3, 1) });
  });

  it('rejects an append whose term is below the stored last entry, also right after reopening', async () => {
    const s = await openStore();
    await s.save({ hardState: null, entries: range(1, 3, 4) });
    await expect(s.save({ hardState: null, entries: [entry(4, 3)] })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await closeAll();
    const t = await openStore();
    await expect(t.save({ hardState: null, entries: [entry(4, 3)] })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    // Overwriting a suffix after reopening is still accepted.
    await t.save({ hardState: null, entries: [entry(3, 4), entry(4, 4)] });
    expect((await t.load()).entries).toEqual(range(1, 4, 4));
  });

  it('refuses saves after close', async () => {
    const s = await openStore();
    await s.close();
    await expect(s.save({ hardState: null, entries: [entry(1, 1)] })).rejects.toMatchObject({ code: 'STOPPED' });
  });
});

describe('LevelLogStorage truncation of a conflicting suffix (§5.3)', () => {
  it('replaces the suffix from the first new index in one batch, old entries past it gone', async () => {
    const s = await openStore();
    await s.save({ hardState: { term: 1, vote: 'n1', commit: 2 }, entries: range(1, 10, 1) });
    // A new leader of term 2 overwrites from index 4 with a shorter log.
    await s.save({ hardState: { term: 2, vote: 'n3', commit: 3 }, entries: range(4, 6, 2) });
    const expected = [...range(1, 3, 1), ...range(4, 6, 2)];
    expect(await s.load()).toEqual({ hardState: { term: 2, vote: 'n3', commit: 3 }, entries: expected });

    // On disk: exactly the expected keys, nothing left of 7..10.
    await withRawDb(async (db) => {
      const keys = await db.keys().all();
      expect(keys.map((k) => k.toString('hex')).sort()).toEqual(
        [RAW_HARD_STATE_KEY, ...expected.map((e) => rawEntryKey(e.index))].map((k) => k.toString('hex')).sort(),
      );
    });
    const t = await openStore();
    expect((await t.load()).entries).toEqual(expected);
    // The next append goes right after the truncated log.
    await t.save({ hardState: null, entries: [entry(7, 2)] });
    expect((await t.load()).entries).toEqual([...expected, entry(7, 2)]);
  });

  it('writes the truncation, new entries and hard state as a single synced LevelDB batch', async () => {
    const s = await openStore();
    await s.save({ hardState: null, entries: range(1, 6, 1) });
    // Observe the database calls the storage makes (the ClassicLevel instance is a private field;
    // wrap its batch() so the test sees exactly what LevelDB is asked to do).
    const db = (s as unknown as { db: ClassicLevel<Buffer, Buffer> }).db;
    // The storage writes through a chained batch (one atomic LevelDB write): record its operations
    // and the options of its write().
    const calls: { ops: { type: string; key: Buffer }[]; sync: unknown }[] = [];
    const batch = db.batch.bind(db) as () => ReturnType<ClassicLevel<Buffer, Buffer>['batch']>;
    (db as unknown as { batch: unknown }).batch = () => {
      const chained = batch();
      const ops: { type: string; key: Buffer }[] = [];
      return {
        put(key: Buffer, value: Buffer) {
          ops.push({ type: 'put', key });
          chained.put(key, value);
          return this;
        },
        del(key: Buffer) {
          ops.push({ type: 'del', key });
          chained.del(key);
          return this;
        },
        write(opts: { sync?: boolean } = {}) {
          calls.push({ ops, sync: opts.sync });
          return chained.write(opts);
        },
      };
    };
    await s.save({ hardState: { term: 2, vote: null, commit: 0 }, entries: range(3, 4, 2) });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.sync).toBe(true);
    const summary = calls[0]!.ops.map((op) => `${op.type}:${op.key.toString('hex')}`);
    expect(summary).toEqual([
      `put:${RAW_HARD_STATE_KEY.toString('hex')}`,
      `put:${rawEntryKey(3).toString('hex')}`,
      `put:${rawEntryKey(4).toString('hex')}`,
      `del:${rawEntryKey(5).toString('hex')}`,
      `del:${rawEntryKey(6).toString('hex')}`,
    ]);
  });

  it('overwriting the whole log from index 1 works', async () => {
    const s = await openStore();
    await s.save({ hardState: null, entries: range(1, 4, 1) });
    await s.save({ hardState: null, entries: range(1, 2, 5) });
    expect((await s.load()).entries).toEqual(range(1, 2, 5));
  });
});

describe('LevelLogStorage refuses a corrupt store (STORAGE_CORRUPT naming the record)', () => {
  async function seed(): Promise<void> {
    const s = await openStore();
    await s.save({ hardState: { term: 2, vote: 'n1', commit: 4 }, entries: [...range(1, 3, 1), ...range(4, 6, 2)] });
    await s.writeMeta({ clusterId: 'ballot', nodeId: 'n1' });
    await closeAll();
  }

  it('a flipped bit in an entry value fails its checksum', async () => {
    await seed();
    await withRawDb(async (db) => {
      const value = (await db.get(rawEntryKey(3)))!;
      const flipped = Buffer.from(value);
      flipped[flipped.length - 1]! ^= 0x01; // last byte of the entry's data
      await db.put(rawEntryKey(3), flipped);
    });
    const s = await openStore();
    await expectCorrupt(s.load(), 'entry record at index 3', rawEntryKey(3).toString('hex'), 'checksum mismatch');
  });

  it('a corrupt last entry is refused already when opening', async () => {
    await seed();
    await withRawDb(async (db) => {
      const value = Buffer.from((await db.get(rawEntryKey(6)))!);
      value[value.length - 1]! ^= 0x10;
      await db.put(rawEntryKey(6), value);
    });
    await expectCorrupt(
      LevelLogStorage.open(dir).then((s) => {
        open.push(s);
        return s.load();
      }),
      'entry record at index 6',
      'checksum mismatch',
    );
  });

  it('a torn (truncated) entry value is refused', async () => {
    await seed();
    await withRawDb(async (db) => {
      const value = (await db.get(rawEntryKey(5)))!;
      await db.put(rawEntryKey(5), value.subarray(0, 3));
    });
    await expectCorrupt((await openStore()).load(), 'index 5', 'torn');
  });

  it('a garbled entry value of plausible length is refused', async () => {
    await seed();
    await withRawDb(async (db) => {
      const value = (await db.get(rawEntryKey(2)))!;
      const garbage = Buffer.alloc(value.length);
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 97 + 13) & 0xff;
      garbage[0] = 1; // even with a valid version byte
      await db.put(rawEntryKey(2), garbage);
    });
    await expectCorrupt((await openStore()).load(), 'entry record at index 2');
  });

  it('a record copied under another index fails its checksum (the checksum covers the key)', async () => {
    await seed();
    await withRawDb(async (db) => {
      await db.put(rawEntryKey(5), (await db.get(rawEntryKey(4)))!);
    });
    await expectCorrupt((await openStore()).load(), 'index 5', 'checksum mismatch');
  });

  it('a missing index in the middle of the log is refused', async () => {
    await seed();
    await withRawDb(async (db) => {
      await db.del(rawEntryKey(3));
    });
    await expectCorrupt((await openStore()).load(), 'entry record at index 4', 'entries 3..3 are missing');
  });

  it('a log that does not start at index 1 is refused', async () => {
    await seed();
    await withRawDb(async (db) => {
      await db.del(rawEntryKey(1));
    });
    await expectCorrupt((await openStore()).load(), 'index 2', 'must start at index 1');
  });

  it('a well-checksummed entry whose term goes backwards is refused', async () => {
    await seed();
    await withRawDb(async (db) => {
      const { key, value } = encodeEntry(entry(5, 1));
      await db.put(key, value);
    });
    await expectCorrupt((await openStore()).load(), 'index 5', 'below the previous entry');
  });

  it('a commit index beyond the last entry is refused (committed entries lost)', async () => {
    await seed();
    await withRawDb(async (db) => {
      await db.batch([6, 5, 4].map((i) => ({ type: 'del' as const, key: rawEntryKey(i) })));
    });
    await expectCorrupt((await openStore()).load(), 'hard-state record', 'commit index 4 is beyond the last stored entry 3');
  });

  it('a corrupt hard-state record is refused', async () => {
    await seed();
    await withRawDb(async (db) => {
      const value = Buffer.from((await db.get(RAW_HARD_STATE_KEY))!);
      value[value.length - 1]! ^= 0x80;
      await db.put(RAW_HARD_STATE_KEY, value);
    });
    await expectCorrupt((await openStore()).load(), 'hard-state record', 'checksum mismatch');
  });

  it('a corrupt metadata record is refused by load() and readMeta()', async () => {
    await seed();
    await withRawDb(async (db) => {
      const value = Buffer.from((await db.get(RAW_META_KEY))!);
      value[2]! ^= 0xff; // inside the stored checksum itself
      await db.put(RAW_META_KEY, value);
    });
    const s = await openStore();
    await expectCorrupt(s.load(), 'metadata record');
    await expectCorrupt(s.readMeta(), 'metadata record');
  });

  it('an unknown key is refused', async () => {
    await seed();
    await withRawDb(async (db) => {
      await db.put(Buffer.from('zz'), Buffer.from('hello'));
    });
    await expectCorrupt((await openStore()).load(), 'unknown record', '7a7a');
  });
});
