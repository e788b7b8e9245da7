// Unit tests for bench:kv's pure parts: key ownership, the etcd JSON bodies, the answer checks,
// the per-cell figures and the table, the cell operations on an in-memory store. No processes, no
// timing assertions.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BenchRequestError } from '../raft/cluster.js';
import type { ClosedLoopResult } from '../raft/load.js';
import { cellOperation, preload, type KvAccess } from './access.js';
import { cellFigures, cpuTable, errorLines, failedResult, kvTable, type CellRecord } from './report.js';
import {
  checkGet,
  checkModRevisions,
  checkPut,
  checkTxn,
  getBody,
  int64,
  keyName,
  ownedKeyIndex,
  parseOps,
  prefixEnd,
  prefixRangeBody,
  putBody,
  txnBody,
  type TxnOutcome,
} from './workload.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const header = (revision: string) => ({ cluster_id: '1', member_id: '2', revision, raft_term: '3' });

describe('parseOps', () => {
  it('accepts known operations in the given order', () => {
    expect(parseOps('txn, put,sget')).toEqual(['txn', 'put', 'sget']);
  });
  it('rejects unknown, duplicate and empty lists', () => {
    expect(() => parseOps('put,scan')).toThrow(/unknown operation "scan"/);
    expect(() => parseOps('get,get')).toThrow(/twice/);
    expect(() => parseOps(' , ')).toThrow(/no operation/);
  });
});

describe('keys and ownership', () => {
  it('zero-pads key names so they sort by index', () => {
    expect(keyName(7, 1000)).toBe('bench/kv/007');
    expect(keyName(999, 1000)).toBe('bench/kv/999');
    expect(() => keyName(1000, 1000)).toThrow(RangeError);
  });

  it('gives every worker only its own keys, all of them, and never one of another worker (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 700 }), (clients, extraKeys) => {
        const keyCount = clients + extraKeys;
        const owner = new Map<number, number>();
        for (let w = 0; w < clients; w++) {
          const seen = new Set<number>();
          const owned = Math.ceil((keyCount - w) / clients);
          for (let seq = 0; seq < owned * 2; seq++) {
            const k = ownedKeyIndex(w, seq, clients, keyCount);
            expect(k).toBeGreaterThanOrEqual(0);
            expect(k).toBeLessThan(keyCount);
            expect(owner.get(k) ?? w).toBe(w);
            owner.set(k, w);
            seen.add(k);
          }
          expect(seen.size).toBe(owned); // cycles through all its keys
        }
        expect(owner.size).toBe(keyCount); // every key has an owner
      }),
      { seed: 4242, numRuns: 60 },
    );
  });

  it('refuses more clients than keys', () => {
    expect(() => ownedKeyIndex(0, 0, 11, 10)).toThrow(/clients/);
  });

  it('computes etcd prefix ends', () => {
    expect([...prefixEnd(Uint8Array.of(0x61, 0x62))]).toEqual([0x61, 0x63]);
    expect([...prefixEnd(Uint8Array.of(0x61, 0xff))]).toEqual([0x62]);
    expect([...prefixEnd(Uint8Array.of(0xff, 0xff))]).toEqual([0]);
  });
});

describe('JSON bodies (etcd 3.4 gateway)', () => {
  it('encodes keys and values as base64 and int64 as strings', () => {
    expect(JSON.parse(putBody('k', 'dg=='))).toEqual({ key: b64('k'), value: 'dg==' });
    expect(JSON.parse(getBody('k', false))).toEqual({ key: b64('k') });
    expect(JSON.parse(getBody('k', true))).toEqual({ key: b64('k'), serializable: true });
    expect(JSON.parse(prefixRangeBody('ab'))).toEqual({ key: b64('ab'), range_end: b64('ac') });
    expect(JSON.parse(txnBody('k', 42, 'dg=='))).toEqual({
      compare: [{ key: b64('k'), target: 'MOD', result: 'EQUAL', mod_revision: '42' }],
      success: [{ request_put: { key: b64('k'), value: 'dg==' } }],
      failure: [{ request_range: { key: b64('k') } }],
    });
  });
});

describe('answer checks', () => {
  it('reads int64 as strings or numbers, absent as 0', () => {
    expect(int64('12')).toBe(12);
    expect(int64(12)).toBe(12);
    expect(int64(undefined)).toBe(0);
    expect(int64('1.5')).toBeNull();
    expect(int64('99999999999999999999')).toBeNull();
  });

  it('put: needs a header revision', () => {
    expect(checkPut({ header: header('5') })).toEqual({ ok: true, value: 5 });
    expect(checkPut({ header: {} }).ok).toBe(false);
    expect(checkPut('x').ok).toBe(false);
  });

  it('get: exactly the key, with a value of the expected size', () => {
    const value = Buffer.alloc(256, 1).toString('base64');
    const good = { header: header('9'), kvs: [{ key: b64('k'), value, mod_revision: '3' }], count: '1' };
    expect(checkGet(good, 'k', 256)).toEqual({ ok: true, value: 9 });
    expect(checkGet({ header: header('9'), count: '0' }, 'k', 256)).toMatchObject({ ok: false, code: 'MISSING_KEY' });
    expect(checkGet({ ...good, kvs: [{ key: b64('other'), value }] }, 'k', 256)).toMatchObject({ ok: false, code: 'BAD_ANSWER' });
    expect(checkGet(good, 'k', 255)).toMatchObject({ ok: false, code: 'BAD_VALUE' });
  });

  it('txn: applied at the header revision, or a conflict with the current mod_revision', () => {
    expect(checkTxn({ header: header('11'), succeeded: true, responses: [{ response_put: { header: header('11') } }] })).toEqual({
      ok: true,
      value: { kind: 'applied', revision: 11 },
    });
    expect(
      checkTxn({ header: header('11'), responses: [{ response_range: { kvs: [{ key: b64('k'), mod_revision: '7' }], count: '1' } }] }),
    ).toEqual({ ok: true, value: { kind: 'conflict', modRevision: 7 } });
    expect(checkTxn({ header: header('11'), succeeded: true, responses: [] }).ok).toBe(false);
    expect(checkTxn({ header: header('11'), responses: [{ response_range: {} }] }).ok).toBe(false);
  });

  it('mod revisions: every expected key, by name', () => {
    const body = { kvs: [{ key: b64('a'), mod_revision: '2' }, { key: b64('b'), mod_revision: '3' }], count: '2' };
    const checked = checkModRevisions(body, 2);
    expect(checked.ok && [...checked.value]).toEqual([
      ['a', 2],
      ['b', 3],
    ]);
    expect(checkModRevisions(body, 3)).toMatchObject({ ok: false, code: 'MISSING_KEY' });
  });
});

describe('cell figures and table', () => {
  const result = (perSec: number, p50: number, errors = 0, errorsByCode: Record<string, number> = {}): ClosedLoopResult => ({
    concurrency: 1,
    measuredMs: 1000,
    acked: perSec,
    ackedPerSec: perSec,
    errors,
    errorsByCode,
    latency: { count: perSec, minMs: p50, p50Ms: p50, p90Ms: p50, p99Ms: p50 * 2, maxMs: p50 * 3, meanMs: p50 },
    clientCpuMs: 1,
    undrained: 0,
  });
  const rec = (system: CellRecord['system'], round: number, r: ClosedLoopResult): CellRecord => ({
    system,
    op: 'put',
    clients: 1,
    round,
    result: r,
    serverCpuMs: 100,
    loadAverage1m: 0,
  });

  it('takes medians across rounds and sums errors by code; errors flag the cell', () => {
    const records = [
      rec('etcd', 1, result(100, 1)),
      rec('etcd', 2, result(300, 3)),
      rec('etcd', 3, result(200, 2)),
      rec('ballot', 1, result(400, 1, 2, { HTTP_503: 2 })),
      rec('ballot', 2, result(400, 1, 1, { HTTP_503: 1 })),
    ];
    const etcd = cellFigures(records, 'etcd', 'put', 1);
    expect(etcd).toMatchObject({ rounds: 3, opsPerSec: 200, p50Ms: 2, p99Ms: 4, errors: 0, flagged: false, serverCpuUsPerOp: 500, clientCpuUsPerOp: 5 });
    const ballot = cellFigures(records, 'ballot', 'put', 1);
    expect(ballot).toMatchObject({ errors: 3, errorsByCode: { HTTP_503: 3 }, flagged: true });
    expect(cellFigures(records, 'ballot-native', 'put', 1)).toBeNull();

    // A round that could not start flags the cell but stays out of the medians.
    const withFailed = [...records, rec('etcd', 4, failedResult(1, 'CELL_FAILED'))];
    expect(cellFigures(withFailed, 'etcd', 'put', 1)).toMatchObject({ rounds: 4, roundsMeasured: 3, opsPerSec: 200, errors: 1, flagged: true });
    const never = cellFigures([rec('ballot-native', 1, failedResult(1, 'NOT_RUN'))], 'ballot-native', 'put', 1);
    expect(never?.opsPerSec).toBeNaN();
    expect(kvTable(['put'], [1], ['ballot-native'], () => never).split('\n')[2]).toMatch(/^put\s+1\s+n\/a!\s+n\/a\s+n\/a$/);

    const lookup = (s: CellRecord['system'], op: CellRecord['op'], c: number) => cellFigures(records, s, op, c);
    const table = kvTable(['put'], [1], ['etcd', 'ballot', 'ballot-native'], lookup);
    const row = table.split('\n')[2] ?? '';
    expect(row).toMatch(/^put\s+1\s+200\s+2\s+4\s+400!\s+1\s+2\s+2\.00x\s+n\/a\s+n\/a\s+n\/a\s+n\/a$/);
    expect(cpuTable(['put'], [1], ['etcd', 'ballot'], lookup).split('\n')[2]).toMatch(/^put\s+1\s+500\s+250$/);
    expect(errorLines(['put'], [1], ['etcd', 'ballot'], lookup)).toEqual([
      '! Ballot (JSON) put c=1: 3 error(s) in 2 round(s) (HTTP_503 x3)',
    ]);
  });
});

describe('cell operations on an in-memory store', () => {
  /** A KvAccess over a map with a global revision, like etcd's MVCC (enough for the bench's checks). */
  class MemoryAccess implements KvAccess {
    readonly label = 'memory';
    revision = 0;
    readonly mods = new Map<string, number>();
    readonly calls: string[] = [];
    async put(_w: number, key: string): Promise<void> {
      this.calls.push(`put ${key}`);
      this.mods.set(key, ++this.revision);
    }
    async get(_w: number, key: string, serializable: boolean): Promise<void> {
      this.calls.push(`${serializable ? 'sget' : 'get'} ${key}`);
      if (!this.mods.has(key)) throw new BenchRequestError('MISSING_KEY', key);
    }
    async txn(_w: number, key: string, expected: number): Promise<TxnOutcome> {
      this.calls.push(`txn ${key}`);
      const mod = this.mods.get(key) ?? 0;
      if (mod !== expected) return { kind: 'conflict', modRevision: mod };
      this.mods.set(key, ++this.revision);
      return { kind: 'applied', revision: this.revision };
    }
    async modRevisions(): Promise<ReadonlyMap<string, number>> {
      return new Map(this.mods);
    }
    async close(): Promise<void> {}
  }

  it('preloads every key once', async () => {
    const mem = new MemoryAccess();
    await preload(mem, 50, 8, 4);
    expect(mem.mods.size).toBe(50);
    expect(mem.calls.length).toBe(50);
  });

  it('workers read and write only their own keys', async () => {
    const mem = new MemoryAccess();
    await preload(mem, 10, 4, 4);
    mem.calls.length = 0;
    const get = await cellOperation(mem, 'sget', 3, 10);
    for (let i = 0; i < 4; i++) await get(1);
    expect(mem.calls).toEqual(['sget bench/kv/1', 'sget bench/kv/4', 'sget bench/kv/7', 'sget bench/kv/1']);
  });

  it('txn: compare-and-put succeeds on the cached mod_revision; a write from elsewhere is a counted conflict, then it recovers', async () => {
    const mem = new MemoryAccess();
    await preload(mem, 4, 2, 2);
    const txn = await cellOperation(mem, 'txn', 2, 4);
    await txn(0); // bench/kv/0
    await txn(0); // bench/kv/2
    await txn(0); // bench/kv/0 again: its cached revision is the one the first txn created
    await mem.put(0, 'bench/kv/2'); // a write the bench did not make (lost or applied twice, in a real run)
    await expect(txn(0)).rejects.toMatchObject({ code: 'COMPARE_FAILED' });
    await expect(txn(0)).resolves.toBeUndefined(); // bench/kv/0
    await expect(txn(0)).resolves.toBeUndefined(); // bench/kv/2: the failure branch refreshed the cache
  });
});
