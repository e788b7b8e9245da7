// Snapshot files (storage/snapshot.ts) and log compaction / snapshot installs in both log
// storages: round trips, corruption refused with STORAGE_CORRUPT naming the file or record,
// temp files cleaned at open, pruning, and restarts after compaction and install.

import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { RaftError } from '../src/core/errors.js';
import type { Entry, SnapshotMeta } from '../src/core/types.js';
import { LevelLogStorage } from '../src/storage/leveldb.js';
import { MemoryLogStorage } from '../src/storage/memory.js';
import { SnapshotStore, snapshotFileName, verifySnapshotFile } from '../src/storage/snapshot.js';
import type { LogStorage } from '../src/storage/types.js';
import { SNAPSHOT_KEY } from '../src/storage/codec.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ballot-snap-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const CONFIG = { voters: ['n1', 'n2', 'n3'], learners: ['n4'] };
function meta(index: number, term: number): SnapshotMeta {
  return { index, term, config: CONFIG };
}
function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}
function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: 'normal', data: Uint8Array.of(i & 0xff, 7) });
  return out;
}

describe('snapshot files', () => {
  it('round-trips header and multi-chunk data, verified; the name carries index and term', async () => {
    const store = await SnapshotStore.open(await tempDir());
    const data = bytes(700_000, 3); // several read chunks
    const chunks = [data.subarray(0, 1000), data.subarray(1000, 300_000), data.subarray(300_000)];
    const v = await store.write({ meta: meta(42, 3), addresses: { n1: '127.0.0.1:1', n4: '127.0.0.1:4' } }, chunks);
    expect(v.path.endsWith(snapshotFileName(42, 3))).toBe(true);
    expect(v.dataBytes).toBe(data.length);
    const again = await store.verify(42, 3);
    expect(again.header).toEqual({ meta: meta(42, 3), addresses: { n1: '127.0.0.1:1', n4: '127.0.0.1:4' } });
    expect((await collect(store.readData(again))).equals(Buffer.from(data))).toBe(true);
    // Empty data is a valid snapshot too.
    const empty = await store.write({ meta: meta(43, 3), addresses: {} }, []);
    expect(empty.dataBytes).toBe(0);
    expect((await collect(store.readData(await store.verify(43, 3)))).length).toBe(0);
  });

  it('refuses a flipped bit, a torn file, a wrong name or a missing file with STORAGE_CORRUPT naming the file', async () => {
    const dir = await tempDir();
    const store = await SnapshotStore.open(dir);
    const v = await store.write({ meta: meta(10, 2), addresses: {} }, [bytes(5000, 1)]);
    const good = await readFile(v.path);

    const expectCorrupt = async (p: Promise<unknown>, what: RegExp): Promise<void> => {
      const err = await p.then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(RaftError);
      expect((err as RaftError).code).toBe('STORAGE_CORRUPT');
      expect((err as RaftError).message).toContain(v.path);
      expect((err as RaftError).message).toMatch(what);
    };
    for (const at of [3, 20, 2000, good.length - 3]) {
      const bad = Buffer.from(good);
      bad[at]! ^= 0x10;
      await writeFile(v.path, bad);
      await expectCorrupt(store.verify(10, 2), /magic|checksum|header|footer/);
    }
    await writeFile(v.path, good.subarray(0, good.length - 100));
    await expectCorrupt(store.verify(10, 2), /torn|truncated|checksum|fit/);
    // The right bytes under another snapshot's name.
    await writeFile(v.path, good);
    const other = join(dir, snapshotFileName(11, 2));
    await writeFile(other, good);
    const err = await store.verify(11, 2).then(() => null, (e: unknown) => e as RaftError);
    expect(err?.code).toBe('STORAGE_CORRUPT');
    expect(err?.message).toContain(other);
    await rm(other);
    const missing = await store.verify(10, 9).then(() => null, (e: unknown) => e as RaftError);
    expect(missing?.code).toBe('STORAGE_CORRUPT');
    expect(missing?.message).toContain(join(dir, snapshotFileName(10, 9)));
    expect(missing?.message).toMatch(/missing/);
    expect((await verifySnapshotFile(v.path)).index).toBe(10);
  });

  it('open() deletes leftover temp files; an aborted writer leaves nothing; prune keeps the current and keep-1 older', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'snap-7-1-abc.tmp'), 'half a snapshot');
    const store = await SnapshotStore.open(dir, { keep: 2 });
    expect(await readdir(dir)).toEqual([]);
    const w = await store.begin('incoming');
    await w.write(0, bytes(100, 2));
    await expect(w.write(50, bytes(10, 2))).rejects.toThrow(/offset 50, expected 100/);
    await w.abort();
    expect(await readdir(dir)).toEqual([]);

    for (const i of [5, 10, 15, 20]) await store.write({ meta: meta(i, 1), addresses: {} }, [bytes(10, i)]);
    // 20 is newer than the current (15): an install in progress is kept only with keepNewer.
    await store.prune({ index: 15, term: 1 }, true);
    expect((await store.list()).map((s) => s.index)).toEqual([10, 15, 20]);
    await store.prune({ index: 15, term: 1 });
    expect((await store.list()).map((s) => s.index)).toEqual([10, 15]);
  });

  it('a received file whose header is not the expected snapshot is refused and removed', async () => {
    const dir = await tempDir();
    const store = await SnapshotStore.open(dir);
    const v = await store.write({ meta: meta(10, 2), addresses: {} }, [bytes(100, 1)]);
    const w = await store.begin('incoming');
    await w.write(0, await readFile(v.path));
    await expect(w.finish(meta(10, 3))).rejects.toThrow(/expected 10\/3/);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

type Opened = { store: LogStorage; reopen: () => Promise<LogStorage> };
const storages: Record<string, () => Promise<Opened>> = {
  memory: async () => {
    let m = new MemoryLogStorage();
    return {
      store: m,
      reopen: async () => {
        await m.close();
        m = m.reopen();
        return m;
      },
    };
  },
  leveldb: async () => {
    const dir = await tempDir();
    let s = await LevelLogStorage.open(dir);
    return {
      store: s,
      reopen: async () => {
        await s.close();
        s = await LevelLogStorage.open(dir);
        return s;
      },
    };
  },
};

describe.each(Object.keys(storages))('%s log storage: compaction and snapshot install', (kind) => {
  it('compacts atomically with a trailing window, keeps appending, and restarts from the snapshot', async () => {
    const { store, reopen } = await storages[kind]!();
    await store.save({ hardState: { term: 2, vote: 'n1', commit: 30 }, entries: [...entries(1, 20, 1), ...entries(21, 40, 2)] });
    await store.compact!(meta(30, 2), 25, { term: 2, vote: 'n1', commit: 30 });
    await store.save({ hardState: null, entries: entries(41, 45, 2) });
    let r = await (await reopen()).load();
    expect(r.snapshot).toEqual(meta(30, 2));
    expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 20 }, (_, i) => 26 + i));
    expect(r.hardState.commit).toBe(30);
    const s2 = await reopen();
    // Entries at or before the snapshot are committed: a save there is a caller bug.
    await expect(s2.save({ hardState: null, entries: entries(30, 31, 3) })).rejects.toThrow(/at or before the snapshot/);
    // An older snapshot is refused; the next one discards everything up to it.
    await expect(s2.compact!(meta(20, 1), 20)).rejects.toThrow(/older/);
    await expect(s2.compact!(meta(50, 2), 50)).rejects.toThrow(/past the last stored entry/);
    await s2.compact!(meta(44, 2), 44);
    // A conflicting suffix after the snapshot still truncates.
    await s2.save({ hardState: { term: 3, vote: null, commit: 44 }, entries: entries(45, 46, 3) });
    r = await (await reopen()).load();
    expect(r.snapshot).toEqual(meta(44, 2));
    expect(r.entries.map((e) => [e.index, e.term])).toEqual([[45, 3], [46, 3]]);
  });

  it('a snapshot install resets the log in one batch with the hard state, and a commit saved lazily is raised to the snapshot', async () => {
    const { store, reopen } = await storages[kind]!();
    await store.save({ hardState: { term: 1, vote: 'n2', commit: 3 }, entries: entries(1, 10, 1) });
    await store.save({ hardState: { term: 5, vote: null, commit: 100 }, entries: entries(101, 102, 5), snapshot: meta(100, 4) });
    let r = await (await reopen()).load();
    expect(r.snapshot).toEqual(meta(100, 4));
    expect(r.entries.map((e) => e.index)).toEqual([101, 102]);
    expect(r.hardState).toEqual({ term: 5, vote: null, commit: 100 });
    // Install with no new entries, then appends continue after it (term check against the snapshot's term).
    const s = await reopen();
    await s.save({ hardState: { term: 6, vote: null, commit: 90 }, entries: [], snapshot: meta(200, 6) });
    await expect(s.save({ hardState: null, entries: entries(201, 201, 5) })).rejects.toThrow(/below its predecessor/);
    await s.save({ hardState: null, entries: entries(201, 203, 6) });
    r = await (await reopen()).load();
    expect(r.entries.map((e) => e.index)).toEqual([201, 202, 203]);
    expect(r.hardState.commit).toBe(200); // the stored 90 is below the snapshot: raised
    await expect((await reopen()).save({ hardState: null, entries: [], snapshot: meta(150, 6) })).rejects.toThrow(/older/);
  });
});

describe('leveldb snapshot record corruption', () => {
  it('a corrupt snapshot record or a gap after the snapshot is refused with STORAGE_CORRUPT', async () => {
    const dir = await tempDir();
    const s = await LevelLogStorage.open(dir);
    await s.save({ hardState: { term: 1, vote: null, commit: 10 }, entries: entries(1, 10, 1) });
    await s.compact(meta(8, 1), 8);
    await s.close();
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const good = (await db.get(SNAPSHOT_KEY))!;
    const bad = Buffer.from(good);
    bad[bad.length - 1]! ^= 1;
    await db.put(SNAPSHOT_KEY, bad);
    await db.close();
    await expect(LevelLogStorage.open(dir)).rejects.toThrow(/snapshot record.*checksum/);

    // A snapshot record pointing before a gap: entries 9..10 exist, the snapshot says 5.
    const db2 = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db2.put(SNAPSHOT_KEY, good);
    await db2.close();
    const s2 = await LevelLogStorage.open(dir);
    await s2.close();
    const { encodeSnapshotMeta } = await import('../src/storage/codec.js');
    const db3 = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db3.put(SNAPSHOT_KEY, encodeSnapshotMeta(meta(5, 1)));
    await db3.close();
    const s3 = await LevelLogStorage.open(dir);
    const err = await s3.load().then(() => null, (e: unknown) => e as RaftError);
    await s3.close();
    expect(err?.code).toBe('STORAGE_CORRUPT');
    expect(err?.message).toMatch(/entries 6\.\.8 after the snapshot at 5 are missing/);
  });
});
