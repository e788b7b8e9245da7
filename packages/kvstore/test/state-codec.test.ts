// The log's command codec: round trips, garbage never throws anything but KvError BAD_REQUEST, and
// validateCommand enforces etcd's rules (txn op count, duplicate keys, sizes) before proposing.

import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { KvError, LIMITS } from '../src/errors.js';
import { decodeCommand, encodeCommand, validateCommand } from '../src/state/codec.js';
import { KvStateMachine } from '../src/state/machine.js';
import type { Command, CommandEnvelope, RequestOp } from '../src/types.js';
import { te, tempDir } from './state-helpers.js';

const SEED = Number(process.env['KV_PROP_SEED'] ?? 4004);

function codeOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    if (!(e instanceof KvError)) throw e;
    return e.code;
  }
}

const samples: Command[] = [
  { op: 'put', req: { key: te('k'), value: te('v'), lease: 7, prevKv: true, ignoreValue: false } },
  { op: 'deleteRange', req: { key: te('a'), rangeEnd: te('b'), prevKv: true } },
  {
    op: 'txn',
    req: {
      compare: [
        { result: 'equal', target: 'value', key: te('k'), value: te('v') },
        { result: 'less', target: 'mod', key: te('a'), rangeEnd: Uint8Array.of(0), modRevision: 9 },
      ],
      success: [{ range: { key: te('k'), limit: 3, sortOrder: 'descend', sortTarget: 'mod', keysOnly: true } }, { txn: { compare: [], success: [], failure: [{ put: { key: te('z'), value: te('') } }] } }],
      failure: [{ deleteRange: { key: te('q') } }],
    },
  },
  { op: 'compact', revision: 12 },
  { op: 'leaseGrant', id: 0, ttlSec: 60 },
  { op: 'leaseRevoke', id: 5, expired: true },
  { op: 'registerSession' },
  { op: 'publish', memberId: '8e9e05c52164694d', name: 'infra1', clientUrls: ['http://127.0.0.1:2379'] },
];

/** Bytes as strings so Buffer and Uint8Array compare equal. */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return `b:${Buffer.from(v).toString('hex')}`;
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, norm(x)]));
  return v;
}

describe('encodeCommand / decodeCommand', () => {
  it('round-trips every command kind, with and without a session', () => {
    for (const cmd of samples) {
      const env: CommandEnvelope = { requestId: 'm-1-1', timeMs: 1_700_000_000_000, cmd };
      expect(norm(decodeCommand(encodeCommand(env)))).toEqual(norm(env));
      const withSession: CommandEnvelope = { ...env, session: { clientId: 3, seq: 9, ackedSeq: 8 } };
      expect(norm(decodeCommand(encodeCommand(withSession)))).toEqual(norm(withSession));
    }
  });

  it('random bytes and random msgpack values decode or fail with BAD_REQUEST, never anything else', () => {
    const packr = new Packr({ useRecords: false });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.anything({ withTypedArray: true, withMap: true, withSet: true, withBigInt: true, withDate: true }).map((v) => {
            try {
              return packr.pack(v) as Uint8Array;
            } catch {
              return Uint8Array.of(0xc1);
            }
          }),
          // Near misses: a valid command with one field replaced by something random.
          fc.tuple(fc.constantFrom(...samples), fc.constantFrom('requestId', 'timeMs', 'cmd', 'session'), fc.anything()).map(([cmd, field, junk]) => {
            const env: Record<string, unknown> = { requestId: 'r', timeMs: 1, cmd };
            env[field] = junk;
            try {
              return packr.pack(env) as Uint8Array;
            } catch {
              return Uint8Array.of(0xc1);
            }
          }),
        ),
        (bytes) => {
          const code = codeOf(() => decodeCommand(bytes));
          expect(code === null || code === 'BAD_REQUEST').toBe(true);
        },
      ),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('apply() skips an undecodable entry (the applied index moves, nothing else)', async () => {
    const t = tempDir('kv-codec-');
    const sm = await KvStateMachine.open({ dir: t.dir });
    try {
      let outcomes = 0;
      sm.on('outcome', () => outcomes++);
      sm.apply({ index: 1, term: 1, type: 'normal', data: Uint8Array.of(1, 2, 3, 0xff) });
      expect(sm.appliedIndex).toBe(1);
      expect(sm.revision).toBe(1); // an empty store is at revision 1, as etcd's
      expect(outcomes).toBe(0);
    } finally {
      await sm.close();
      t.cleanup();
    }
  });
});

describe('validateCommand', () => {
  const put = (k: string): RequestOp => ({ put: { key: te(k), value: te('v') } });
  const del = (k: string, end?: string): RequestOp => ({ deleteRange: { key: te(k), ...(end !== undefined ? { rangeEnd: te(end) } : {}) } });
  const txn = (success: RequestOp[], failure: RequestOp[] = []): Command => ({ op: 'txn', req: { compare: [], success, failure } });

  it("refuses more than etcd's 128 ops per branch", () => {
    const ops = Array.from({ length: LIMITS.maxTxnOps }, (_, i) => put(`k${i}`));
    expect(codeOf(() => validateCommand(txn(ops)))).toBeNull();
    expect(codeOf(() => validateCommand(txn([...ops, put('one-more')])))).toBe('TOO_MANY_OPS');
  });

  it('refuses a key put twice or put inside a deleted range in one branch; nested branches may each put it', () => {
    expect(codeOf(() => validateCommand(txn([put('a'), put('a')])))).toBe('DUPLICATE_KEY');
    expect(codeOf(() => validateCommand(txn([put('b'), del('a', 'c')])))).toBe('DUPLICATE_KEY');
    expect(codeOf(() => validateCommand(txn([put('c'), del('a', 'c')])))).toBeNull(); // c is outside [a, c)
    expect(codeOf(() => validateCommand(txn([put('a')], [put('a')])))).toBeNull(); // different branches
    const nested: RequestOp = { txn: { compare: [], success: [put('x')], failure: [put('x')] } };
    expect(codeOf(() => validateCommand(txn([nested])))).toBeNull();
    expect(codeOf(() => validateCommand(txn([nested, put('x')])))).toBe('DUPLICATE_KEY');
    // One branch of a nested txn puts what the other deletes: only one of them runs.
    const putOrDelete: RequestOp = { txn: { compare: [], success: [put('y')], failure: [del('y')] } };
    expect(codeOf(() => validateCommand(txn([putOrDelete])))).toBeNull();
    expect(codeOf(() => validateCommand(txn([putOrDelete, put('y')])))).toBe('DUPLICATE_KEY');
    expect(codeOf(() => validateCommand(txn([del('a', 'z'), { txn: { compare: [], success: [put('q')], failure: [] } }])))).toBe('DUPLICATE_KEY');
    expect(codeOf(() => validateCommand(txn([del('a'), del('a')])))).toBeNull(); // deletes may overlap
  });

  it('refuses empty keys, negative numbers, historical reads inside a txn and oversized requests', () => {
    expect(codeOf(() => validateCommand({ op: 'put', req: { key: te(''), value: te('v') } }))).toBe('BAD_REQUEST');
    expect(codeOf(() => validateCommand(txn([{ range: { key: te('a'), revision: 3 } }])))).toBe('BAD_REQUEST');
    expect(codeOf(() => validateCommand(txn([{ range: { key: te('a'), limit: -1 } }])))).toBe('BAD_REQUEST');
    expect(codeOf(() => validateCommand({ op: 'put', req: { key: te('k'), value: new Uint8Array(LIMITS.maxRequestBytes + 1) } }))).toBe('REQUEST_TOO_LARGE');
    expect(codeOf(() => validateCommand({ op: 'leaseGrant', id: 0, ttlSec: LIMITS.maxLeaseTtlSec + 1 }))).toBe('LEASE_TTL_TOO_LARGE');
    expect(codeOf(() => validateCommand({ op: 'put', req: { key: te('k'), value: te('v'), ignoreValue: true } }))).toBe('BAD_REQUEST');
    expect(codeOf(() => validateCommand({ op: 'put', req: { key: te('k'), value: te(''), lease: 3, ignoreLease: true } }))).toBe('BAD_REQUEST');
    for (const cmd of samples) expect(codeOf(() => validateCommand(cmd))).toBeNull();
  });
});
