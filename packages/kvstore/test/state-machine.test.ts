import { afterEach, describe, expect, it } from 'vitest';
import { KvStateMachine } from '../src/state/machine.js';
import type { RevisionEvents, TxnResult, PutResult, DeleteRangeResult } from '../src/types.js';
import { LogFeeder, td, te, tempDir } from './state-helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(dir?: string): Promise<{ sm: KvStateMachine; dir: string }> {
  let d = dir;
  if (d === undefined) {
    const t = tempDir();
    cleanups.push(() => t.cleanup());
    d = t.dir;
  }
  const sm = await KvStateMachine.open({ dir: d });
  cleanups.push(() => sm.close());
  return { sm, dir: d };
}

describe('KvStateMachine basics', () => {
  it('put, range, delete move the revision once per write and emit events', async () => {
    const { sm } = await open();
    const events: RevisionEvents[] = [];
    sm.on('events', (e) => events.push(e));
    const f = new LogFeeder(sm);
    const o1 = f.apply({ op: 'put', req: { key: te('a'), value: te('1') } });
    expect(o1).toMatchObject({ ok: true, revision: 2 }); // etcd: an empty store is at revision 1
    const o2 = f.apply({ op: 'put', req: { key: te('a'), value: te('2'), prevKv: true } });
    expect(o2.ok && (o2.result as PutResult).prevKv?.modRevision).toBe(2);
    f.apply({ op: 'put', req: { key: te('b'), value: te('x') } });
    const r = await sm.range({ key: te('a'), rangeEnd: te('c') });
    expect(r.count).toBe(2);
    expect(r.kvs.map((kv) => [td(kv.key), td(kv.value), kv.createRevision, kv.modRevision, kv.version])).toEqual([
      ['a', '2', 2, 3, 2],
      ['b', 'x', 4, 4, 1],
    ]);
    const d = f.apply({ op: 'deleteRange', req: { key: te('a'), rangeEnd: te('z'), prevKv: true } });
    expect(d).toMatchObject({ ok: true, revision: 5 });
    expect(d.ok && (d.result as DeleteRangeResult).deleted).toBe(2);
    // Deleting nothing creates no revision.
    expect(f.apply({ op: 'deleteRange', req: { key: te('a') } })).toMatchObject({ ok: true, revision: 5 });
    expect(events.map((e) => [e.revision, e.events.map((x) => x.type)])).toEqual([
      [2, ['put']],
      [3, ['put']],
      [4, ['put']],
      [5, ['delete', 'delete']],
    ]);
    // Historical reads from disk.
    expect((await sm.range({ key: te('a'), rangeEnd: te('z'), revision: 1 })).kvs).toEqual([]);
    const old = await sm.range({ key: te('a'), rangeEnd: te('z'), revision: 3 });
    expect(old.kvs.map((kv) => td(kv.value))).toEqual(['2']);
    const old3 = await sm.range({ key: te('a'), rangeEnd: te('z'), revision: 4 });
    expect(old3.kvs.map((kv) => td(kv.value))).toEqual(['2', 'x']);
    await expect(sm.range({ key: te('a'), revision: 9 })).rejects.toMatchObject({ code: 'FUTURE_REV' });
  });

  it('txn: compares decide the branch, one revision for all writes, reads see earlier writes', async () => {
    const { sm } = await open();
    const f = new LogFeeder(sm);
    f.apply({ op: 'put', req: { key: te('k'), value: te('v') } });
    const o = f.apply({
      op: 'txn',
      req: {
        compare: [{ result: 'equal', target: 'value', key: te('k'), value: te('v') }],
        success: [{ put: { key: te('k'), value: te('w') } }, { put: { key: te('n'), value: te('1') } }, { range: { key: te('k') } }],
        failure: [],
      },
    });
    expect(o).toMatchObject({ ok: true, revision: 3 });
    const res = (o.ok ? o.result : null) as TxnResult;
    expect(res.succeeded).toBe(true);
    const read = res.responses[2]!;
    expect('range' in read && td(read.range.kvs[0]!.value)).toBe('w');
    // A read-only txn creates no revision; a failing compare takes the failure branch.
    const o2 = f.apply({ op: 'txn', req: { compare: [{ result: 'greater', target: 'version', key: te('k'), version: 5 }], success: [], failure: [{ range: { key: te('n') } }] } });
    expect(o2).toMatchObject({ ok: true, revision: 3 });
    expect((o2.ok ? (o2.result as TxnResult) : null)?.succeeded).toBe(false);
    // A put on a lease that does not exist fails the whole txn, changing nothing.
    const o3 = f.apply({ op: 'txn', req: { compare: [], success: [{ put: { key: te('z'), value: te('1') } }, { put: { key: te('y'), value: te('1'), lease: 77 } }], failure: [] } });
    expect(o3).toMatchObject({ ok: false, code: 'LEASE_NOT_FOUND', revision: 3 });
    expect((await sm.range({ key: te('z') })).count).toBe(0);
  });

  it('persists with the applied index and skips replayed entries after reopening', async () => {
    const t = tempDir();
    cleanups.push(() => t.cleanup());
    const sm = await KvStateMachine.open({ dir: t.dir });
    const f = new LogFeeder(sm);
    const entries = [];
    for (let i = 0; i < 20; i++) {
      const e = f.entryFor({ op: 'put', req: { key: te(`k${i % 5}`), value: te(`v${i}`) } });
      entries.push(e);
      sm.apply(e);
    }
    await sm.close();
    const sm2 = await KvStateMachine.open({ dir: t.dir });
    cleanups.push(() => sm2.close());
    expect(sm2.appliedIndex).toBe(20);
    expect(sm2.revision).toBe(21);
    for (const e of entries) sm2.apply(e); // replay: all skipped
    expect(sm2.revision).toBe(21);
    const r = await sm2.range({ key: te('k'), rangeEnd: te('l') });
    expect(r.kvs.map((kv) => [td(kv.key), td(kv.value), kv.version])).toEqual([
      ['k0', 'v15', 4],
      ['k1', 'v16', 4],
      ['k2', 'v17', 4],
      ['k3', 'v18', 4],
      ['k4', 'v19', 4],
    ]);
    expect(td((await sm2.range({ key: te('k0'), revision: 7 })).kvs[0]!.value)).toBe('v5');
  });
});

describe('KvStateMachine leases, put flags, compaction, history', () => {
  it('lease grant picks deterministic ids; revoke deletes every attached key in one revision', async () => {
    const { sm } = await open();
    const events: RevisionEvents[] = [];
    sm.on('events', (e) => events.push(e));
    const f = new LogFeeder(sm);
    f.noop();
    const g1 = f.apply({ op: 'leaseGrant', id: 0, ttlSec: 30 });
    expect(g1).toMatchObject({ ok: true, result: { id: 2, ttlSec: 30 } }); // the entry's index
    expect(f.apply({ op: 'leaseGrant', id: 4, ttlSec: 0 })).toMatchObject({ ok: true, result: { id: 4, ttlSec: 1 } });
    expect(f.apply({ op: 'leaseGrant', id: 0, ttlSec: 5 })).toMatchObject({ ok: true, result: { id: 5 } }); // index 4 is taken: next free
    expect(f.apply({ op: 'leaseGrant', id: 4, ttlSec: 5 })).toMatchObject({ ok: false, code: 'LEASE_EXISTS' });
    f.apply({ op: 'put', req: { key: te('x'), value: te('1'), lease: 2 } });
    f.apply({ op: 'put', req: { key: te('y'), value: te('1'), lease: 2 } });
    f.apply({ op: 'put', req: { key: te('z'), value: te('1'), lease: 4 } });
    // Moving a key to another lease detaches it from the first.
    f.apply({ op: 'put', req: { key: te('y'), value: te('2'), lease: 4 } });
    // ignoreLease keeps the lease, ignoreValue the value.
    f.apply({ op: 'put', req: { key: te('z'), value: te('new'), ignoreLease: true } });
    f.apply({ op: 'put', req: { key: te('x'), value: te(''), ignoreValue: true, lease: 4 } });
    expect(f.apply({ op: 'put', req: { key: te('nope'), value: te(''), ignoreValue: true } })).toMatchObject({ ok: false, code: 'KEY_NOT_FOUND' });
    const leases = sm.leases();
    expect([...leases.keys()].sort()).toEqual([2, 4, 5]);
    expect(leases.get(2)!.keys.map(td)).toEqual([]);
    expect(leases.get(4)!.keys.map(td)).toEqual(['x', 'y', 'z']);
    expect(sm.lease(4)?.keys.map(td)).toEqual(['x', 'y', 'z']);
    expect(sm.lease(4)?.ttlSec).toBe(1);
    expect(sm.lease(3)).toBeUndefined();
    expect((await sm.range({ key: te('x') })).kvs.map((kv) => [td(kv.value), kv.lease])).toEqual([['1', 4]]);
    expect((await sm.range({ key: te('z') })).kvs.map((kv) => [td(kv.value), kv.lease])).toEqual([['new', 4]]);
    const before = sm.revision;
    events.length = 0;
    expect(f.apply({ op: 'leaseRevoke', id: 4, expired: true })).toMatchObject({ ok: true, revision: before + 1 });
    expect(events).toHaveLength(1);
    expect(events[0]!.events.map((e) => [e.type, td(e.kv.key), e.prevKv ? td(e.prevKv.value) : null])).toEqual([
      ['delete', 'x', '1'],
      ['delete', 'y', '2'],
      ['delete', 'z', 'new'],
    ]);
    // Revoking a lease without keys creates no revision; an unknown one fails.
    expect(f.apply({ op: 'leaseRevoke', id: 2 })).toMatchObject({ ok: true, revision: before + 1 });
    expect(f.apply({ op: 'leaseRevoke', id: 2 })).toMatchObject({ ok: false, code: 'LEASE_NOT_FOUND' });
    expect([...sm.leases().keys()]).toEqual([5]);
  });

  it("compaction: etcd's COMPACTED and FUTURE_REV errors; reads at the compacted revision still work", async () => {
    const { sm: first, dir } = await open();
    let sm = first;
    let f = new LogFeeder(sm);
    for (let i = 1; i <= 5; i++) f.apply({ op: 'put', req: { key: te('k'), value: te(`v${i}`) } }); // revisions 2..6
    f.apply({ op: 'deleteRange', req: { key: te('k') } }); // revision 7
    f.apply({ op: 'put', req: { key: te('k'), value: te('again') } }); // revision 8, a new generation
    expect(f.apply({ op: 'compact', revision: 9 })).toMatchObject({ ok: false, code: 'FUTURE_REV' });
    expect(f.apply({ op: 'compact', revision: 4 })).toMatchObject({ ok: true, revision: 8 });
    expect(f.apply({ op: 'compact', revision: 4 })).toMatchObject({ ok: false, code: 'COMPACTED', message: 'mvcc: required revision has been compacted' });
    await expect(sm.range({ key: te('k'), revision: 3 })).rejects.toMatchObject({ code: 'COMPACTED' });
    expect((await sm.range({ key: te('k'), revision: 4 })).kvs.map((kv) => td(kv.value))).toEqual(['v3']);
    expect((await sm.range({ key: te('k'), revision: 7 })).kvs).toEqual([]);
    expect(() => sm.history(3)).toThrow(/compacted/);
    const hist: RevisionEvents[] = [];
    for await (const e of sm.history(4)) hist.push(e); // the compaction revision itself is replayable
    expect(hist.map((e) => [e.revision, e.events[0]!.type, e.events[0]!.prevKv ? td(e.events[0]!.prevKv.value) : null])).toEqual([
      [4, 'put', null], // its previous version was compacted away
      [5, 'put', 'v3'],
      [6, 'put', 'v4'],
      [7, 'delete', 'v5'],
      [8, 'put', null],
    ]);
    // Compacting to the delete keeps the delete (revision 7 stays complete for watchers)...
    expect(f.apply({ op: 'compact', revision: 7 })).toMatchObject({ ok: true });
    await sm.close(); // the kept tombstone is the first record of its generation on disk: reload it
    sm = await KvStateMachine.open({ dir });
    cleanups.push(() => sm.close());
    f = new LogFeeder(sm, f.index, f.log);
    expect(sm.compactedRevision).toBe(7);
    const at7: RevisionEvents[] = [];
    for await (const e of sm.history(7, 7)) at7.push(e);
    expect(at7.map((e) => [e.revision, e.events.map((x) => x.type)])).toEqual([[7, ['delete']]]);
    expect((await sm.range({ key: te('k'), revision: 7 })).kvs).toEqual([]);
    // ...and compacting past it drops the old generation entirely; the live one stays, also after a restart.
    expect(f.apply({ op: 'compact', revision: 8 })).toMatchObject({ ok: true });
    expect((await sm.range({ key: te('k'), revision: 8 })).kvs.map((kv) => [td(kv.value), kv.createRevision, kv.version])).toEqual([['again', 8, 1]]);
    expect(await sm.dbSizeBytes()).toBeGreaterThan(0);
  });

  it('range: prefix, from-key, limit with more, sort, keys only, count only', async () => {
    const { sm } = await open();
    const f = new LogFeeder(sm);
    for (const [k, v] of [['p/b', '3'], ['p/a', '1'], ['p/c', '2'], ['q', '0']] as const) f.apply({ op: 'put', req: { key: te(k), value: te(v) } });
    f.apply({ op: 'put', req: { key: te('p/a'), value: te('9') } });
    const keys = (r: { kvs: readonly { key: Uint8Array }[] }): string[] => r.kvs.map((kv) => td(kv.key));
    expect(keys(await sm.range({ key: te('p/'), rangeEnd: te('p0') }))).toEqual(['p/a', 'p/b', 'p/c']);
    expect(keys(await sm.range({ key: te('p/b'), rangeEnd: Uint8Array.of(0) }))).toEqual(['p/b', 'p/c', 'q']);
    const lim = await sm.range({ key: te('p/'), rangeEnd: te('p0'), limit: 2 });
    expect([keys(lim), lim.more, lim.count]).toEqual([['p/a', 'p/b'], true, 3]);
    expect(keys(await sm.range({ key: te('p/'), rangeEnd: te('p0'), sortOrder: 'descend' }))).toEqual(['p/c', 'p/b', 'p/a']);
    expect(keys(await sm.range({ key: te('p/'), rangeEnd: te('p0'), sortTarget: 'value' }))).toEqual(['p/c', 'p/b', 'p/a']);
    expect(keys(await sm.range({ key: te('p/'), rangeEnd: te('p0'), sortTarget: 'mod', sortOrder: 'descend', limit: 1 }))).toEqual(['p/a']);
    const ko = await sm.range({ key: te('p/'), rangeEnd: te('p0'), keysOnly: true });
    expect(ko.kvs.every((kv) => kv.value.length === 0 && kv.version > 0)).toBe(true);
    expect(await sm.range({ key: te('p/'), rangeEnd: te('p0'), countOnly: true, limit: 1 })).toEqual({ kvs: [], more: false, count: 3 });
    await expect(sm.range({ key: te('') })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(sm.range({ key: te('p'), revision: -1 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(sm.range({ key: te('p'), limit: 1.5 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});
