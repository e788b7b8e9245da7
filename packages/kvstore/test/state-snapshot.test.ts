// Snapshots (Raft's InstallSnapshot and restart) and backup files: an image taken from one store
// and restored into another gives equal reads at every retained revision, even when the first
// store kept applying while the image was being read; restore is idempotent; backups detect damage.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KvStateMachine } from '../src/state/machine.js';
import { readBackup, restoreBackupInto, writeBackup } from '../src/state/backup.js';
import type { RangeResult, RevisionEvents } from '../src/types.js';
import { LogFeeder, td, te, tempDir } from './state-helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fresh(): Promise<{ sm: KvStateMachine; dir: string }> {
  const t = tempDir('kv-snap-');
  cleanups.push(() => t.cleanup());
  const sm = await KvStateMachine.open({ dir: t.dir });
  cleanups.push(() => sm.close());
  return { sm, dir: t.dir };
}

const ALL = { key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0) };

function show(r: RangeResult): string[] {
  return r.kvs.map((kv) => `${td(kv.key)}=${td(kv.value)}@${kv.createRevision}/${kv.modRevision}/v${kv.version}/l${kv.lease}`);
}

/** A store with history: puts, deletes, a txn, a lease with keys, a session, a compaction. */
function populate(f: LogFeeder): void {
  const grant = f.apply({ op: 'leaseGrant', id: 0, ttlSec: 30 });
  const leaseId = grant.ok ? (grant.result as { id: number }).id : 0;
  for (let i = 0; i < 40; i++) f.apply({ op: 'put', req: { key: te(`key/${i % 7}`), value: te(`v${i}`) } });
  f.apply({ op: 'put', req: { key: te('leased'), value: te('L'), lease: leaseId } });
  f.apply({ op: 'deleteRange', req: { key: te('key/3') } });
  f.apply({ op: 'txn', req: { compare: [], success: [{ put: { key: te('t1'), value: te('a') } }, { deleteRange: { key: te('key/4') } }], failure: [] } });
  f.apply({ op: 'registerSession' });
  f.apply({ op: 'compact', revision: 20 });
  f.apply({ op: 'publish', memberId: 'aaaaaaaaaaaaaaaa', name: 'm1', clientUrls: ['http://127.0.0.1:1'] });
  for (let i = 0; i < 5; i++) f.apply({ op: 'put', req: { key: te(`late/${i}`), value: te('x'.repeat(1000)) } });
}

/** A populated store and its snapshot image (copied chunks) at its applied index. */
async function populatedSnapshot(): Promise<{ a: KvStateMachine; at: { index: number; term: number }; chunks: Uint8Array[] }> {
  const { sm: a } = await fresh();
  populate(new LogFeeder(a));
  const at = { index: a.appliedIndex, term: 1 };
  const chunks: Uint8Array[] = [];
  for await (const c of a.snapshot(at)) chunks.push(Uint8Array.from(c));
  return { a, at, chunks };
}

async function expectSameState(a: KvStateMachine, b: KvStateMachine, atRevision: number): Promise<void> {
  expect(b.revision).toBe(atRevision);
  expect(b.compactedRevision).toBe(a.compactedRevision);
  for (let r = a.compactedRevision; r <= atRevision; r++) {
    expect(show(await b.range({ ...ALL, revision: r })), `revision ${r}`).toEqual(show(await a.range({ ...ALL, revision: r })));
  }
  const ha: RevisionEvents[] = [];
  const hb: RevisionEvents[] = [];
  for await (const e of a.history(a.compactedRevision + 1, atRevision)) ha.push(e);
  for await (const e of b.history(b.compactedRevision + 1, atRevision)) hb.push(e);
  expect(hb).toEqual(ha);
}

describe('snapshot and restore', () => {
  it('an image captured mid-stream restores to exactly the captured state, while the source keeps applying', async () => {
    const { sm: a } = await fresh();
    const f = new LogFeeder(a);
    populate(f);
    const at = { index: a.appliedIndex, term: 1 };
    const revAt = a.revision;
    const image = a.snapshot(at); // captured now, read later
    const expectedAt = show(await a.range(ALL));
    // The source goes on: more writes, a compaction, before the image is read.
    for (let i = 0; i < 30; i++) f.apply({ op: 'put', req: { key: te(`key/${i % 3}`), value: te(`after${i}`) } });
    f.apply({ op: 'deleteRange', req: { key: te('late/'), rangeEnd: te('late0') } });
    const chunks: Uint8Array[] = [];
    for await (const c of image) {
      expect(c.byteLength).toBeLessThanOrEqual(1024 * 1024);
      chunks.push(Uint8Array.from(c));
    }
    const { sm: b } = await fresh();
    // Re-chunk arbitrarily (a file or socket cuts the stream anywhere).
    const whole = Buffer.concat(chunks);
    async function* rechunked(): AsyncGenerator<Uint8Array> {
      for (let off = 0; off < whole.length; off += 777) yield whole.subarray(off, off + 777);
    }
    await b.restore(at, rechunked());
    expect(b.appliedIndex).toBe(at.index);
    expect(b.revision).toBe(revAt);
    expect(show(await b.range(ALL))).toEqual(expectedAt);
    expect([...b.leases().values()].map((l) => l.keys.map(td))).toEqual([['leased']]);
    expect(b.members().get('aaaaaaaaaaaaaaaa')?.name).toBe('m1');
    expect(b.sessionCount).toBe(1);
    // Both replicas then apply the same later entries and agree at every retained revision.
    const later = f.log.filter((e) => e.index > at.index);
    for (const e of later) b.apply(e);
    await expectSameState(a, b, a.revision);
  });

  it('restore is idempotent: at or below the persisted applied index it keeps the state', async () => {
    const { a, at, chunks } = await populatedSnapshot();
    const { sm: b, dir } = await fresh();
    async function* data(): AsyncGenerator<Uint8Array> {
      yield* chunks;
    }
    await b.restore(at, data());
    await b.close();
    const b2 = await KvStateMachine.open({ dir });
    cleanups.push(() => b2.close());
    expect(b2.appliedIndex).toBe(at.index);
    await b2.restore(at, data()); // again, as the driver does after a crash: nothing changes
    await expectSameState(a, b2, a.revision);
  });

  it('reads of the disk during a restore wait for it and answer from the new state (no half-restored answers)', async () => {
    const { a, at, chunks } = await populatedSnapshot();
    const whole = Buffer.concat(chunks);
    // b has its own, different history.
    const { sm: b } = await fresh();
    const fb = new LogFeeder(b);
    for (let i = 0; i < 10; i++) fb.apply({ op: 'put', req: { key: te(`b/${i}`), value: te('old') } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield whole.subarray(0, 100);
      await gate; // the restore is now in the middle of rewriting b's database
      yield whole.subarray(100);
    }
    const restoring = b.restore(at, slow());
    await new Promise((r) => setTimeout(r, 20));
    // b's own history (revisions 2..11) was readable when asked; the restore replaces it by a's, in
    // which those revisions are compacted: the answer must say so, not list half of either.
    const hist = (async () => {
      const out: RevisionEvents[] = [];
      for await (const e of b.history(2)) out.push(e);
      return out;
    })();
    hist.catch(() => undefined);
    const old = b.range({ ...ALL, revision: 5 }); // readable in b's old state, compacted in the new one
    old.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    release();
    await restoring;
    await expect(hist).rejects.toMatchObject({ code: 'COMPACTED' });
    const expected: RevisionEvents[] = [];
    for await (const e of a.history(a.compactedRevision)) expected.push(e);
    const got: RevisionEvents[] = [];
    for await (const e of b.history(a.compactedRevision)) got.push(e);
    expect(got).toEqual(expected);
    await expect(old).rejects.toMatchObject({ code: 'COMPACTED' }); // not INTERNAL (a record missing)
  });

  it('a truncated or corrupt image is refused', async () => {
    const { sm: a } = await fresh();
    populate(new LogFeeder(a));
    const chunks: Uint8Array[] = [];
    for await (const c of a.snapshot({ index: a.appliedIndex, term: 1 })) chunks.push(Uint8Array.from(c));
    const whole = Buffer.concat(chunks);
    const { sm: b } = await fresh();
    async function* cut(): AsyncGenerator<Uint8Array> {
      yield whole.subarray(0, whole.length - 10);
    }
    await expect(b.restore({ index: a.appliedIndex, term: 1 }, cut())).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
  });
});

describe('backup files', () => {
  it('save, verify and restore into a fresh store at applied index 0, keeping revisions and leases', async () => {
    const { sm: a } = await fresh();
    populate(new LogFeeder(a));
    const t = tempDir('kv-backup-');
    cleanups.push(() => t.cleanup());
    const file = join(t.dir, 'backup.db');
    const parts: Uint8Array[] = [];
    for await (const c of writeBackup(a)) parts.push(Uint8Array.from(c));
    writeFileSync(file, Buffer.concat(parts));
    const { header } = await readBackup(file);
    expect(header).toEqual({ revision: a.revision, appliedIndex: a.appliedIndex, appliedTerm: 1 });

    const dir = join(t.dir, 'restored');
    const r = await restoreBackupInto(file, dir);
    expect(r.revision).toBe(a.revision);
    const b = await KvStateMachine.open({ dir });
    cleanups.push(() => b.close());
    expect(b.appliedIndex).toBe(0);
    expect(b.sessionCount).toBe(0); // sessions belong to the old cluster's log
    expect(b.members().size).toBe(0);
    expect([...b.leases().keys()]).toEqual([...a.leases().keys()]);
    for (let rev = a.compactedRevision; rev <= a.revision; rev++) {
      expect(show(await b.range({ ...ALL, revision: rev }))).toEqual(show(await a.range({ ...ALL, revision: rev })));
    }
    // A new cluster's log applies on top and continues the revisions.
    const f = new LogFeeder(b, 0);
    expect(f.apply({ op: 'put', req: { key: te('new'), value: te('1') } })).toMatchObject({ ok: true, revision: a.revision + 1 });
    await expect(restoreBackupInto(file, dir)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('detects a flipped byte, a truncated file and a foreign file', async () => {
    const { sm: a } = await fresh();
    populate(new LogFeeder(a));
    const t = tempDir('kv-backup-');
    cleanups.push(() => t.cleanup());
    const file = join(t.dir, 'b.db');
    const parts: Uint8Array[] = [];
    for await (const c of writeBackup(a)) parts.push(Uint8Array.from(c));
    const good = Buffer.concat(parts);
    const flipped = Buffer.from(good);
    const mid = Math.floor(good.length / 2);
    flipped[mid] = flipped[mid]! ^ 0x40;
    writeFileSync(file, flipped);
    await expect(readBackup(file)).rejects.toThrow(/checksum mismatch/);
    writeFileSync(file, good.subarray(0, good.length - 7));
    await expect(readBackup(file)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    writeFileSync(file, Buffer.from('hello, this is not a backup at all, not even close. '.repeat(4)));
    await expect(readBackup(file)).rejects.toThrow(/bad magic/);
    writeFileSync(file, good);
    expect(readFileSync(file).length).toBe(good.length);
    await expect(readBackup(file)).resolves.toBeTruthy();
  });
});
