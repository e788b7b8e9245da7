// The native protocol's codec: frames of concatenated msgpack messages, the per-turn frame
// writer and its size bound, and the validation of what a peer sends (never a throw, never a
// wrongly shaped value through).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import {
  DEFAULT_LIMITS,
  FrameWriter,
  NATIVE_OPS,
  decodeFrame,
  encodeMessage,
  parseRequest,
  parseResponse,
  type RequestMessage,
} from '../src/native/protocol.js';
import { prefixEnd, prefixRange, toBytes } from '../src/client/keys.js';
import { nativeUrl } from '../src/client/client.js';
import { KvError, LIMITS } from '../src/errors.js';

const SEED = 0x5eed4;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function decodeAll(frame: Uint8Array): { value: unknown; bytes: number }[] {
  const out: { value: unknown; bytes: number }[] = [];
  decodeFrame(frame, (value, bytes) => out.push({ value, bytes }));
  return out;
}

describe('native protocol frames', () => {
  it('a frame of several messages decodes to the same messages, each with its own size', () => {
    const msgs: RequestMessage[] = [
      { id: 1, op: 'put', args: [{ key: enc('a'), value: enc('x'.repeat(300)) }, { session: { clientId: 7, seq: 1, ackedSeq: 0 } }] },
      { id: 2, op: 'range', args: [{ key: enc('a'), rangeEnd: enc('b'), limit: 10 }] },
      { id: 3, op: 'status', args: [] },
    ];
    const parts = msgs.map(encodeMessage);
    const got = decodeAll(Buffer.concat(parts));
    expect(got.map((g) => g.bytes)).toEqual(parts.map((p) => p.byteLength));
    // Bytes come back as Buffers (Uint8Arrays): compare through JSON, where both print alike.
    const plain = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? [...x] : (x as { type?: string; data?: number[] })?.type === 'Buffer' ? (x as { data: number[] }).data : x));
    expect(plain(got.map((g) => parseRequest(g.value)))).toBe(plain(msgs));
    const put = parseRequest(got[0]!.value) as RequestMessage;
    const req = put.args[0] as { key: Uint8Array; value: Uint8Array };
    expect(req.key).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(req.value).toString()).toBe('x'.repeat(300));
  });

  it('garbage bytes are a BAD_REQUEST KvError, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeAll(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(KvError);
          expect((e as KvError).code).toBe('BAD_REQUEST');
        }
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('the frame writer sends one frame per turn and splits at the frame bound', async () => {
    const frames: Buffer[] = [];
    const w = new FrameWriter((f) => frames.push(f), 1000);
    const small = Array.from({ length: 10 }, (_, i) => encodeMessage({ id: i, op: 'status', args: [] }));
    for (const m of small) w.push(m);
    expect(frames).toHaveLength(0); // nothing before the turn ends
    await new Promise((r) => setImmediate(r));
    expect(frames).toHaveLength(1);
    expect(decodeAll(frames[0]!)).toHaveLength(10);

    frames.length = 0;
    const big = Array.from({ length: 5 }, (_, i) => encodeMessage({ id: i, op: 'put', args: [{ key: enc('k'), value: new Uint8Array(400) }] }));
    for (const m of big) w.push(m);
    await new Promise((r) => setImmediate(r));
    // 5 messages of ~420 bytes under a 1000-byte bound: 2 + 2 + 1.
    expect(frames.map((f) => decodeAll(f).length)).toEqual([2, 2, 1]);
    for (const f of frames) expect(f.byteLength).toBeLessThanOrEqual(1000);
    const ids = frames.flatMap((f) => decodeAll(f).map((m) => (m.value as { id: number }).id));
    expect(ids).toEqual([0, 1, 2, 3, 4]); // order kept
    w.discard();
  });

  it('default limits leave room for one request of etcd maximum size plus its envelope', () => {
    expect(DEFAULT_LIMITS.maxRequestBytes).toBeGreaterThan(LIMITS.maxRequestBytes);
    expect(DEFAULT_LIMITS.maxFrameBytes).toBeGreaterThanOrEqual(DEFAULT_LIMITS.maxRequestBytes);
  });
});

describe('request validation', () => {
  const ok = (v: unknown): RequestMessage => {
    const r = parseRequest(v);
    if ('error' in r) throw new Error(r.error);
    return r;
  };
  const err = (v: unknown): string => {
    const r = parseRequest(v);
    if (!('error' in r)) throw new Error('accepted: ' + JSON.stringify(v));
    return r.error;
  };

  it('accepts every op with well-formed args', () => {
    const key = enc('k');
    const samples: Record<(typeof NATIVE_OPS)[number], unknown[]> = {
      range: [{ key, rangeEnd: enc('z'), limit: 5, revision: 3, sortOrder: 'descend', sortTarget: 'mod', serializable: true, keysOnly: false, countOnly: false }, { timeoutMs: 100 }],
      put: [{ key, value: key, lease: 0, prevKv: true }, { session: { clientId: 1, seq: 2, ackedSeq: 1 }, timeoutMs: 5 }],
      deleteRange: [{ key, rangeEnd: enc('z'), prevKv: true }],
      txn: [
        {
          compare: [
            { result: 'equal', target: 'value', key, value: key },
            { result: 'less', target: 'mod', key, modRevision: 9, rangeEnd: enc('z') },
          ],
          success: [{ put: { key, value: key } }, { txn: { compare: [], success: [{ range: { key } }], failure: [] } }],
          failure: [{ deleteRange: { key } }],
        },
      ],
      compact: [{ revision: 4, physical: true }],
      leaseGrant: [{ ttlSec: 10, id: 0 }],
      leaseRevoke: [5],
      leaseKeepAlive: [5],
      leaseTimeToLive: [5, true],
      leaseLeases: [],
      memberList: [],
      memberAdd: [['http://127.0.0.1:1'], false],
      memberRemove: ['00000000000000ab'],
      memberPromote: ['ab'],
      status: [],
      registerSession: [],
      watch: [{ key, rangeEnd: enc('z'), startRevision: 3, prevKv: true, progressNotify: true, filters: ['noput'] }],
      watchCancel: [1],
      watchProgress: [1],
      snapshot: [],
      snapshotAck: [1],
    };
    for (const op of NATIVE_OPS) expect(ok({ id: 1, op, args: samples[op] }).op).toBe(op);
    // a trailing optional arg may be undefined (msgpackr keeps undefined)
    expect(ok({ id: 2, op: 'range', args: [{ key, limit: undefined }, undefined] }).id).toBe(2);
  });

  it('refuses wrong shapes with a message naming the field, keeping the id to answer', () => {
    const key = enc('k');
    expect(err({ id: 3, op: 'put', args: [{ key: 'k', value: key }] })).toMatch(/put\.args\[0\]\.key must be bytes/);
    expect(err({ id: 3, op: 'put', args: [{ key }] })).toMatch(/value is required/);
    expect(err({ id: 3, op: 'put', args: [{ key, value: key, extra: 1 }] })).toMatch(/unknown field "extra"/);
    expect(err({ id: 3, op: 'range', args: [{ key, limit: -1 }] })).toMatch(/limit must be a non-negative integer/);
    expect(err({ id: 3, op: 'range', args: [{ key, sortOrder: 'up' }] })).toMatch(/sortOrder must be one of/);
    expect(err({ id: 3, op: 'txn', args: [{ compare: [{ result: 'equal', target: 'nope', key }], success: [], failure: [] }] })).toMatch(/target must be one of/);
    expect(err({ id: 3, op: 'txn', args: [{ compare: [], success: [{ put: { key, value: key }, range: { key } }], failure: [] }] })).toMatch(/exactly one/);
    expect(err({ id: 3, op: 'leaseTimeToLive', args: [1] })).toMatch(/takes 2 args/);
    expect(err({ id: 3, op: 'memberRemove', args: ['xyz'] })).toMatch(/member id/);
    expect(err({ id: 3, op: 'bogus', args: [] })).toMatch(/unknown op/);
    const r = parseRequest({ id: 3, op: 'bogus', args: [] });
    expect('error' in r && r.id).toBe(3);
    expect(parseRequest({ op: 'status', args: [] })).toEqual({ id: null, error: expect.stringMatching(/request id/) });
    expect(parseRequest([1, 2])).toEqual({ id: null, error: expect.any(String) });
  });

  it('deeply nested txns are refused, not recursed without bound', () => {
    let txn: unknown = { compare: [], success: [], failure: [] };
    for (let i = 0; i < 40; i++) txn = { compare: [], success: [{ txn }], failure: [] };
    expect(err({ id: 1, op: 'txn', args: [txn] })).toMatch(/nested deeper/);
  });

  it('never throws on arbitrary decoded values', () => {
    const anyValue = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.constantFrom(...NATIVE_OPS),
        fc.string(),
        fc.integer(),
        fc.double(),
        fc.boolean(),
        fc.constant(null),
        fc.constant(undefined),
        fc.uint8Array({ maxLength: 8 }),
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(fc.constantFrom('key', 'value', 'rangeEnd', 'compare', 'success', 'failure', 'put', 'txn', 'target', 'result', 'x'), tie('v'), { maxKeys: 4 }),
      ),
    })).v;
    fc.assert(
      fc.property(fc.record({ id: fc.oneof(fc.nat(), fc.string()), op: fc.constantFrom(...NATIVE_OPS, 'nope'), args: fc.array(anyValue, { maxLength: 3 }) }), anyValue, (m, v) => {
        // round-trip through msgpack as a peer would send it
        for (const x of [m, v]) {
          const r = parseRequest(decodeAll(pack(x))[0]!.value);
          expect(r).toBeTypeOf('object');
        }
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it('parses responses and refuses malformed ones', () => {
    expect(parseResponse({ id: 1, ok: true, answer: null })).not.toBeNull();
    expect(parseResponse({ id: 1, ok: false, code: 'NO_LEADER', message: 'x', leaderUrl: 'http://a' })).not.toBeNull();
    expect(parseResponse({ id: 1, ok: false, code: 'NOPE', message: 'x' })).toBeNull();
    expect(parseResponse({ id: 1, watch: { watchId: 1, events: [] } })).not.toBeNull();
    expect(parseResponse({ id: 1, chunk: new Uint8Array(2) })).not.toBeNull();
    expect(parseResponse({ id: -1, ok: true, answer: 1 })).toBeNull();
    expect(parseResponse('x')).toBeNull();
  });
});

describe('client helpers', () => {
  it('prefixEnd and prefixRange follow etcd', () => {
    expect([...prefixEnd(enc('abc'))]).toEqual([...enc('abd')]);
    expect([...prefixEnd(new Uint8Array([0x61, 0xff, 0xff]))]).toEqual([0x62]);
    expect([...prefixEnd(new Uint8Array([0xff]))]).toEqual([0]);
    expect(prefixRange('')).toEqual({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) });
    expect([...prefixRange('a/').rangeEnd]).toEqual([...enc('a0')]);
    expect(toBytes('é')).toEqual(new Uint8Array([0xc3, 0xa9]));
  });

  it('endpoints become native ws URLs', () => {
    expect(nativeUrl('http://127.0.0.1:2379')).toBe('ws://127.0.0.1:2379/ballot/v1');
    expect(nativeUrl('https://h:1')).toBe('wss://h:1/ballot/v1');
    expect(nativeUrl('127.0.0.1:5')).toBe('ws://127.0.0.1:5/ballot/v1');
    expect(nativeUrl('http://0.0.0.0:7')).toBe('ws://127.0.0.1:7/ballot/v1');
    expect(nativeUrl('ws://h:2/other')).toBe('ws://h:2/other');
  });
});
