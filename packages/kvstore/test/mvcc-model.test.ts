// Model-based property test of the MVCC store: random sequences of every operation (put, delete,
// txn with nested txns, compaction, historical ranges, leases, restarts with and without a flush)
// run against KvStateMachine and against a deliberately simple in-memory model that keeps a full
// copy of the key space for every revision. After every step the outcomes, the emitted events and
// the reads must agree. fast-check's seed is fixed (KV_PROP_SEED overrides it) and printed on failure.

import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entry } from '@ballot/raft';
import { KvStateMachine } from '../src/state/machine.js';
import { validateCommand } from '../src/state/codec.js';
import { toKvError } from '../src/errors.js';
import type {
  Command,
  CommandOutcome,
  Compare,
  KeyValue,
  RangeRequest,
  RangeResult,
  RequestOp,
  ResponseOp,
  RevisionEvents,
  TxnRequest,
} from '../src/types.js';
import { LogFeeder, td, te, tempDir } from './state-helpers.js';

const SEED = Number(process.env['KV_PROP_SEED'] ?? 20261121);
const KEYS = ['a', 'ab', 'b', 'c', 'd'];

// ---------------------------------------------------------------------------------------------
// The model: etcd's semantics written as plainly as possible.

interface MKv {
  readonly key: string;
  readonly value: string;
  readonly create: number;
  readonly mod: number;
  readonly version: number;
  readonly lease: number;
}
type MState = ReadonlyMap<string, MKv>;
type MOutcome = { ok: true; revision: number; result: unknown } | { ok: false; revision: number; code: string };

class Model {
  /** etcd's store starts at revision 1 (empty); the first write makes revision 2. */
  revision = 1;
  compacted = 0;
  /** history[r] = the key space after revision r. */
  readonly history: MState[] = [new Map(), new Map()];
  readonly leases = new Map<number, number>();
  /** Events per revision, as [type, key, value] in order. */
  readonly events = new Map<number, [string, string, string][]>();

  get state(): MState {
    return this.history[this.revision]!;
  }

  apply(cmd: Command, index: number): MOutcome {
    try {
      validateCommand(cmd);
    } catch (e) {
      return { ok: false, revision: this.revision, code: toKvError(e).code };
    }
    const fail = (code: string): MOutcome => ({ ok: false, revision: this.revision, code });
    switch (cmd.op) {
      case 'put':
      case 'deleteRange':
      case 'txn': {
        const txn: TxnRequest =
          cmd.op === 'txn' ? cmd.req : { compare: [], success: [cmd.op === 'put' ? { put: cmd.req } : { deleteRange: cmd.req }], failure: [] };
        const pre = this.state;
        const path = decide(pre, txn);
        const bad = checkPuts(pre, txn, path, this.leases);
        if (bad) return fail(bad);
        const work = new Map(pre);
        const evs: [string, string, string][] = [];
        const res = runTxn(work, txn, path, this.revision + 1, evs);
        if (evs.length > 0) {
          this.revision++;
          this.history.push(work);
          this.events.set(this.revision, evs);
        }
        const result = cmd.op === 'txn' ? res : respToResult(res.responses[0]!);
        return { ok: true, revision: this.revision, result };
      }
      case 'compact':
        if (cmd.revision <= this.compacted) return fail('COMPACTED');
        if (cmd.revision > this.revision) return fail('FUTURE_REV');
        this.compacted = cmd.revision;
        return { ok: true, revision: this.revision, result: {} };
      case 'leaseGrant': {
        let id = cmd.id === 0 ? index : cmd.id;
        if (cmd.id !== 0 && this.leases.has(id)) return fail('LEASE_EXISTS');
        while (this.leases.has(id)) id++;
        this.leases.set(id, Math.max(1, cmd.ttlSec));
        return { ok: true, revision: this.revision, result: { id, ttlSec: Math.max(1, cmd.ttlSec) } };
      }
      case 'leaseRevoke': {
        if (!this.leases.has(cmd.id)) return fail('LEASE_NOT_FOUND');
        this.leases.delete(cmd.id);
        const doomed = [...this.state.values()].filter((kv) => kv.lease === cmd.id).map((kv) => kv.key).sort();
        if (doomed.length > 0) {
          const work = new Map(this.state);
          for (const k of doomed) work.delete(k);
          this.revision++;
          this.history.push(work);
          this.events.set(this.revision, doomed.map((k) => ['delete', k, '']));
        }
        return { ok: true, revision: this.revision, result: {} };
      }
      default:
        throw new Error(`model: ${cmd.op} not modelled`);
    }
  }

  range(req: RangeRequest): { ok: true; result: RangeResult } | { ok: false; code: string } {
    const at = req.revision ?? 0;
    if (at > this.revision) return { ok: false, code: 'FUTURE_REV' };
    if (at > 0 && at < this.compacted) return { ok: false, code: 'COMPACTED' };
    return { ok: true, result: rangeOf(this.history[at === 0 ? this.revision : at]!, req) };
  }
}

function inRangeOf(key: string, rangeEnd: string | undefined, k: string): boolean {
  if (rangeEnd === undefined || rangeEnd === '') return k === key;
  if (rangeEnd === '\0') return k >= key;
  return k >= key && k < rangeEnd;
}

function toKv(m: MKv): KeyValue {
  return { key: te(m.key), value: te(m.value), createRevision: m.create, modRevision: m.mod, version: m.version, lease: m.lease };
}

function rangeOf(state: MState, req: RangeRequest): RangeResult {
  const end = req.rangeEnd === undefined ? undefined : td(req.rangeEnd);
  let kvs = [...state.values()].filter((kv) => inRangeOf(td(req.key), end, kv.key)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const count = kvs.length;
  if (req.countOnly) return { kvs: [], more: false, count };
  const target = req.sortTarget ?? 'key';
  let order = req.sortOrder ?? 'none';
  if (order === 'none' && target !== 'key') order = 'ascend';
  if (order !== 'none') {
    const sign = order === 'descend' ? -1 : 1;
    const field = (kv: MKv): number | string =>
      target === 'key' ? kv.key : target === 'value' ? kv.value : target === 'version' ? kv.version : target === 'create' ? kv.create : kv.mod;
    kvs = [...kvs].sort((a, b) => {
      const x = field(a);
      const y = field(b);
      return sign * (x < y ? -1 : x > y ? 1 : 0);
    });
  }
  const limit = req.limit ?? 0;
  if (limit > 0) kvs = kvs.slice(0, limit);
  return { kvs: kvs.map((kv) => ({ ...toKv(kv), ...(req.keysOnly ? { value: new Uint8Array(0) } : {}) })), more: limit > 0 && count > limit, count };
}

interface Path {
  succeeded: boolean;
  nested: Path[];
}

function compareHolds(state: MState, c: Compare): boolean {
  const end = c.rangeEnd === undefined ? undefined : td(c.rangeEnd);
  const kvs = [...state.values()].filter((kv) => inRangeOf(td(c.key), end, kv.key));
  const one = (kv: MKv | null): boolean => {
    let x: number;
    switch (c.target) {
      case 'value': {
        if (kv === null) return false;
        x = Buffer.compare(te(kv.value), c.value);
        break;
      }
      case 'version':
        x = (kv?.version ?? 0) - c.version;
        break;
      case 'create':
        x = (kv?.create ?? 0) - c.createRevision;
        break;
      case 'mod':
        x = (kv?.mod ?? 0) - c.modRevision;
        break;
      case 'lease':
        x = (kv?.lease ?? 0) - c.lease;
        break;
    }
    return c.result === 'equal' ? x === 0 : c.result === 'not_equal' ? x !== 0 : c.result === 'greater' ? x > 0 : x < 0;
  };
  return kvs.length === 0 ? one(null) : kvs.every(one);
}

function decide(state: MState, t: TxnRequest): Path {
  const succeeded = t.compare.every((c) => compareHolds(state, c));
  return { succeeded, nested: (succeeded ? t.success : t.failure).flatMap((op) => ('txn' in op ? [decide(state, op.txn)] : [])) };
}

function checkPuts(state: MState, t: TxnRequest, p: Path, leases: ReadonlyMap<number, number>): string | null {
  let n = 0;
  for (const op of p.succeeded ? t.success : t.failure) {
    if ('put' in op) {
      const l = op.put.lease ?? 0;
      if (l !== 0 && !leases.has(l)) return 'LEASE_NOT_FOUND';
    } else if ('txn' in op) {
      const bad = checkPuts(state, op.txn, p.nested[n++]!, leases);
      if (bad) return bad;
    }
  }
  return null;
}

function runTxn(work: Map<string, MKv>, t: TxnRequest, p: Path, rev: number, evs: [string, string, string][]): { succeeded: boolean; responses: ResponseOp[] } {
  let n = 0;
  const responses: ResponseOp[] = [];
  for (const op of p.succeeded ? t.success : t.failure) responses.push(runOp(work, op, p, () => n++, rev, evs));
  return { succeeded: p.succeeded, responses };
}

function runOp(work: Map<string, MKv>, op: RequestOp, p: Path, next: () => number, rev: number, evs: [string, string, string][]): ResponseOp {
  if ('range' in op) return { range: rangeOf(work, op.range) };
  if ('put' in op) {
    const k = td(op.put.key);
    const prev = work.get(k);
    const kv: MKv = { key: k, value: td(op.put.value), create: prev?.create ?? rev, mod: rev, version: (prev?.version ?? 0) + 1, lease: op.put.lease ?? 0 };
    work.set(k, kv);
    evs.push(['put', k, kv.value]);
    return { put: op.put.prevKv && prev ? { prevKv: toKv(prev) } : {} };
  }
  if ('deleteRange' in op) {
    const end = op.deleteRange.rangeEnd === undefined ? undefined : td(op.deleteRange.rangeEnd);
    const doomed = [...work.values()].filter((kv) => inRangeOf(td(op.deleteRange.key), end, kv.key)).sort((a, b) => (a.key < b.key ? -1 : 1));
    for (const kv of doomed) {
      work.delete(kv.key);
      evs.push(['delete', kv.key, '']);
    }
    return { deleteRange: { deleted: doomed.length, prevKvs: op.deleteRange.prevKv ? doomed.map(toKv) : [] } };
  }
  return { txn: runTxn(work, op.txn, p.nested[next()]!, rev, evs) };
}

function respToResult(r: ResponseOp): unknown {
  return 'put' in r ? r.put : 'deleteRange' in r ? r.deleteRange : 'range' in r ? r.range : r.txn;
}

/** Bytes as strings, so results compare structurally (Buffer vs Uint8Array does not matter). */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return `b:${td(v)}`;
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = norm(x);
    return out;
  }
  return v;
}

function normOutcome(o: CommandOutcome): unknown {
  return o.ok ? norm({ ok: true, revision: o.revision, result: o.result }) : { ok: false, revision: o.revision, code: o.code };
}

// ---------------------------------------------------------------------------------------------
// Random operations.

type Op =
  | { readonly t: 'cmd'; readonly cmd: Command }
  | { readonly t: 'grant' }
  | { readonly t: 'putLease'; readonly key: string; readonly value: string; readonly pick: number }
  | { readonly t: 'revoke'; readonly pick: number }
  | { readonly t: 'compact'; readonly back: number }
  | { readonly t: 'range'; readonly req: RangeRequest; readonly revPick: number | null }
  | { readonly t: 'restart'; readonly crash: boolean };

const key = fc.constantFrom(...KEYS);
const value = fc.constantFrom('x', 'y', 'zz', '');
const rangeEnd = fc.option(fc.constantFrom('b', 'c', 'e', 'ab\0', '\0'), { nil: undefined });

const rangeReq: fc.Arbitrary<RangeRequest> = fc.record(
  {
    key,
    rangeEnd,
    limit: fc.integer({ min: 0, max: 3 }),
    sortOrder: fc.constantFrom('none', 'ascend', 'descend') as fc.Arbitrary<'none' | 'ascend' | 'descend'>,
    sortTarget: fc.constantFrom('key', 'version', 'create', 'mod', 'value') as fc.Arbitrary<'key' | 'version' | 'create' | 'mod' | 'value'>,
    keysOnly: fc.boolean(),
    countOnly: fc.boolean(),
  },
  { requiredKeys: ['key'] },
).map((r) => ({ ...r, key: te(r.key), ...(r.rangeEnd !== undefined ? { rangeEnd: te(r.rangeEnd) } : {}) }) as RangeRequest);

const compare: fc.Arbitrary<Compare> = fc
  .tuple(key, rangeEnd, fc.constantFrom('equal', 'greater', 'less', 'not_equal') as fc.Arbitrary<Compare['result']>, fc.integer({ min: 0, max: 6 }), value)
  .chain(([k, end, result, n, v]) =>
    fc.constantFrom<Compare>(
      { result, key: te(k), ...(end ? { rangeEnd: te(end) } : {}), target: 'version', version: n },
      { result, key: te(k), ...(end ? { rangeEnd: te(end) } : {}), target: 'mod', modRevision: n * 3 },
      { result, key: te(k), target: 'create', createRevision: n * 3 },
      { result, key: te(k), target: 'value', value: te(v) },
      { result, key: te(k), target: 'lease', lease: 0 },
    ),
  );

const leafOp: fc.Arbitrary<RequestOp> = fc.oneof(
  fc.record({ key, value, prevKv: fc.boolean() }).map((p) => ({ put: { key: te(p.key), value: te(p.value), prevKv: p.prevKv } })),
  fc.record({ key, rangeEnd, prevKv: fc.boolean() }).map((d) => ({
    deleteRange: { key: te(d.key), ...(d.rangeEnd ? { rangeEnd: te(d.rangeEnd) } : {}), prevKv: d.prevKv },
  })),
  rangeReq.map((r) => ({ range: { ...r, revision: 0 } })),
);

const txn = (depth: number): fc.Arbitrary<TxnRequest> =>
  fc.record({
    compare: fc.array(compare, { maxLength: 2 }),
    success: fc.array(depth > 0 ? fc.oneof({ weight: 4, arbitrary: leafOp }, { weight: 1, arbitrary: txn(depth - 1).map((t) => ({ txn: t })) }) : leafOp, { maxLength: 3 }),
    failure: fc.array(leafOp, { maxLength: 3 }),
  });

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ key, value }).map((p): Op => ({ t: 'cmd', cmd: { op: 'put', req: { key: te(p.key), value: te(p.value), prevKv: true } } })) },
  {
    weight: 2,
    arbitrary: fc.record({ key, rangeEnd }).map((d): Op => ({ t: 'cmd', cmd: { op: 'deleteRange', req: { key: te(d.key), ...(d.rangeEnd ? { rangeEnd: te(d.rangeEnd) } : {}), prevKv: true } } })),
  },
  { weight: 3, arbitrary: txn(1).map((t): Op => ({ t: 'cmd', cmd: { op: 'txn', req: t } })) },
  { weight: 1, arbitrary: fc.constant<Op>({ t: 'grant' }) },
  { weight: 2, arbitrary: fc.record({ key, value, pick: fc.nat(5) }).map((p): Op => ({ t: 'putLease', ...p })) },
  { weight: 1, arbitrary: fc.nat(5).map((pick): Op => ({ t: 'revoke', pick })) },
  { weight: 1, arbitrary: fc.nat(6).map((back): Op => ({ t: 'compact', back })) },
  { weight: 3, arbitrary: fc.record({ req: rangeReq, revPick: fc.option(fc.nat(40), { nil: null }) }).map((r): Op => ({ t: 'range', ...r })) },
  { weight: 1, arbitrary: fc.boolean().map((crash): Op => ({ t: 'restart', crash })) },
);

// ---------------------------------------------------------------------------------------------

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function runSequence(ops: readonly Op[]): Promise<void> {
  const t = tempDir('kv-model-');
  let sm = await KvStateMachine.open({ dir: t.dir });
  try {
    const model = new Model();
    const log: Entry[] = [];
    let feeder = new LogFeeder(sm, 0, log);
    let seen: RevisionEvents[] = [];
    const listen = (m: KvStateMachine): void => void m.on('events', (e) => seen.push(e));
    listen(sm);
    const step = async (cmd: Command): Promise<CommandOutcome> => {
      const before = seen.length;
      const revBefore = model.revision;
      const o = feeder.apply(cmd);
      const want = model.apply(cmd, feeder.index);
      expect(normOutcome(o)).toEqual(norm(want));
      // Events: one RevisionEvents for the new revision (if any), with the model's events in order.
      const got = seen.slice(before).map((e) => [e.revision, e.events.map((x) => [x.type, td(x.kv.key), td(x.kv.value)])]);
      expect(got).toEqual(model.revision > revBefore ? [[model.revision, model.events.get(model.revision)]] : []);
      expect(sm.revision).toBe(model.revision);
      return o;
    };
    for (const o of ops) {
      switch (o.t) {
        case 'cmd':
          await step(o.cmd);
          break;
        case 'grant':
          await step({ op: 'leaseGrant', id: 0, ttlSec: 10 });
          break;
        case 'putLease': {
          const ids = [...model.leases.keys()];
          const lease = ids.length === 0 ? 999 : ids[o.pick % ids.length]!;
          await step({ op: 'put', req: { key: te(o.key), value: te(o.value), lease } });
          break;
        }
        case 'revoke': {
          const ids = [...model.leases.keys()];
          await step({ op: 'leaseRevoke', id: ids.length === 0 ? 12345 : ids[o.pick % ids.length]! });
          break;
        }
        case 'compact':
          await step({ op: 'compact', revision: Math.max(0, model.revision - o.back) });
          break;
        case 'range': {
          const req = o.revPick === null ? o.req : { ...o.req, revision: o.revPick % (model.revision + 2) };
          const want = model.range(req);
          let got: unknown;
          try {
            got = { ok: true, result: norm(await sm.range(req)) };
          } catch (e) {
            got = { ok: false, code: toKvError(e).code };
          }
          expect(got).toEqual(want.ok ? { ok: true, result: norm(want.result) } : want);
          break;
        }
        case 'restart': {
          if (o.crash) await sm.abandon();
          else await sm.close();
          sm = await KvStateMachine.open({ dir: t.dir });
          expect(sm.appliedIndex).toBeLessThanOrEqual(log.length);
          if (!o.crash) expect(sm.appliedIndex).toBe(log.length);
          // Replay the log from the start: entries the store already has are skipped.
          seen = [];
          listen(sm);
          for (const e of log) sm.apply(e);
          seen = [];
          feeder = new LogFeeder(sm, log.length, log);
          expect(sm.revision).toBe(model.revision);
          expect(sm.compactedRevision).toBe(model.compacted);
          expect(norm(await sm.range({ key: te('\0'), rangeEnd: te('\0') }))).toEqual(norm(rangeOf(model.state, { key: te('\0'), rangeEnd: te('\0') })));
          break;
        }
      }
    }
    // Every retained revision reads as the model says, and history() replays the model's events.
    for (let r = Math.max(1, model.compacted); r <= model.revision; r++) {
      const all = { key: te('\0'), rangeEnd: te('\0'), revision: r };
      expect(norm(await sm.range(all))).toEqual(norm(rangeOf(model.history[r]!, all)));
    }
    // The compaction revision itself stays complete (etcd serves a watch from it).
    const from = Math.max(1, model.compacted);
    const hist: RevisionEvents[] = [];
    for await (const re of sm.history(from)) hist.push(re);
    const expected = [...model.events.entries()].filter(([r]) => r >= from).sort((a, b) => a[0] - b[0]);
    expect(hist.map((e) => [e.revision, e.events.map((x) => [x.type, td(x.kv.key), td(x.kv.value)])])).toEqual(expected);
    if (model.compacted > 1) expect(() => sm.history(model.compacted - 1)).toThrow(/compacted/);
    // A snapshot of the store restored into a second store reads the same at every retained revision.
    const t2 = tempDir('kv-model-copy-');
    const copy = await KvStateMachine.open({ dir: t2.dir });
    try {
      await copy.restore({ index: sm.appliedIndex, term: 1 }, sm.snapshot({ index: sm.appliedIndex, term: 1 }));
      expect([copy.revision, copy.compactedRevision, [...copy.leases().keys()]]).toEqual([sm.revision, sm.compactedRevision, [...sm.leases().keys()]]);
      for (let r = Math.max(1, model.compacted); r <= model.revision; r++) {
        const all = { key: te('\0'), rangeEnd: te('\0'), revision: r };
        expect(norm(await copy.range(all))).toEqual(norm(await sm.range(all)));
      }
      const copied: RevisionEvents[] = [];
      for await (const re of copy.history(from)) copied.push(re);
      expect(copied).toEqual(hist);
    } finally {
      await copy.close();
      t2.cleanup();
    }
  } finally {
    await sm.close();
    t.cleanup();
  }
}

describe('MVCC store against a model (fast-check)', () => {
  it('agrees with the model on every operation, read and restart', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 20, maxLength: 100, size: 'max' }), async (ops) => {
        await runSequence(ops);
      }),
      { seed: SEED, numRuns: Number(process.env['KV_PROP_RUNS'] ?? 50) },
    );
  }, 120_000);
});
