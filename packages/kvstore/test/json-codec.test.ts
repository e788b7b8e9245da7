// The etcd v3 JSON codecs: requests decoded strictly with messages naming the field, requests
// and responses encoded in etcd's exact shapes (recorded from etcd 3.4.23's gateway), and
// decode(encode(x)) = x for random requests.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { KvError } from '../src/errors.js';
import {
  isBase64,
  decodeCompactRequest,
  decodeDeleteRangeRequest,
  decodeLeaseGrantRequest,
  decodeLeaseTimeToLiveRequest,
  decodeMemberAddRequest,
  decodeMemberIdRequest,
  decodePutRequest,
  decodeRangeRequest,
  decodeRangeResult,
  decodeTxnRequest,
  decodeTxnResult,
  decodeWatchRequest,
  decodeWatchResponse,
  encodeDeleteRangeRequest,
  encodeDeleteRangeResult,
  encodeLeaseGrantResult,
  encodeLeaseTimeToLiveResult,
  encodeMembersResult,
  encodePutRequest,
  encodePutResult,
  encodeRangeRequest,
  encodeRangeResult,
  encodeStatusResult,
  encodeTxnRequest,
  encodeTxnResult,
  encodeWatchCreateRequest,
  encodeWatchResponse,
  hexIdToDecimal,
  MAX_TXN_DEPTH,
} from '../src/json/codec.js';
import { JsonObjectSplitter } from '../src/json/gateway.js';
import type { Compare, RangeRequest, RequestOp, ResponseHeader, TxnRequest, TxnResult, WatchResponse } from '../src/types.js';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** etcd 3.4.23's header for cluster 11949701667633242533 / member 12410532418012413470 (recorded). */
const H: ResponseHeader = {
  clusterId: BigInt('11949701667633242533').toString(16),
  memberId: BigInt('12410532418012413470').toString(16),
  revision: 3,
  raftTerm: 2,
};
const HJ = { cluster_id: '11949701667633242533', member_id: '12410532418012413470', revision: '3', raft_term: '2' };

function badRequest(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KvError);
    expect((e as KvError).code).toBe('BAD_REQUEST');
    return (e as KvError).message;
  }
  throw new Error('expected a BAD_REQUEST');
}

describe('request decoding', () => {
  it('reads every range field, int64 as strings or numbers, enums by name or number', () => {
    expect(
      decodeRangeRequest({
        key: b64('a'), range_end: b64('z'), limit: '10', revision: 7, sort_order: 'DESCEND', sort_target: 3,
        serializable: true, keys_only: false, count_only: null, min_mod_revision: '0',
      }),
    ).toEqual({
      key: enc('a'), rangeEnd: enc('z'), limit: 10, revision: 7, sortOrder: 'descend', sortTarget: 'mod', serializable: true, keysOnly: false,
    });
  });

  it('an empty or absent key is etcd\'s "key is not provided"', () => {
    expect(badRequest(() => decodeRangeRequest({}))).toBe('etcdserver: key is not provided');
    expect(badRequest(() => decodePutRequest({ key: '', value: b64('v') }))).toBe('etcdserver: key is not provided');
    expect(badRequest(() => decodeDeleteRangeRequest({ key: null }))).toBe('etcdserver: key is not provided');
  });

  it('refuses unknown fields, wrong types, bad base64, out-of-range numbers, naming the field', () => {
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), bogus: 1 }))).toMatch(/unknown field "bogus"/);
    expect(badRequest(() => decodeRangeRequest({ key: 'YQ' }))).toMatch(/field "key" is not valid base64/);
    expect(badRequest(() => decodeRangeRequest({ key: '!!!!' }))).toMatch(/field "key" is not valid base64/);
    expect(badRequest(() => decodeRangeRequest({ key: 5 }))).toMatch(/field "key" must be a base64 string, got number 5/);
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), limit: 1.5 }))).toMatch(/field "limit" must be an integer/);
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), limit: 'abc' }))).toMatch(/field "limit" must be an integer/);
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), revision: '9999999999999999999' }))).toMatch(/field "revision" is out of range/);
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), revision: '-2' }))).toMatch(/field "revision" must be >= 0/);
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), keys_only: 'true' }))).toMatch(/field "keys_only" must be true or false/);
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), sort_order: 'UP' }))).toMatch(/field "sort_order" must be one of NONE, ASCEND, DESCEND/);
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), sort_target: 9 }))).toMatch(/field "sort_target"/);
    expect(badRequest(() => decodeRangeRequest({ key: b64('a'), min_mod_revision: '3' }))).toMatch(/field "min_mod_revision" is not supported/);
    expect(badRequest(() => decodeRangeRequest([]))).toMatch(/the body must be a JSON object, got an array/);
    expect(badRequest(() => decodeRangeRequest('x'))).toMatch(/the body must be a JSON object/);
  });

  it('reads put, deleterange, compaction, leases and members', () => {
    expect(decodePutRequest({ key: b64('k'), value: b64('v'), lease: '77', prev_kv: true, ignore_lease: true })).toEqual({
      key: enc('k'), value: enc('v'), lease: 77, prevKv: true, ignoreLease: true,
    });
    expect(decodePutRequest({ key: b64('k') })).toEqual({ key: enc('k'), value: new Uint8Array(0) });
    expect(decodeDeleteRangeRequest({ key: 'AA==', range_end: 'AA==', prev_kv: true })).toEqual({
      key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), prevKv: true,
    });
    expect(decodeCompactRequest({ revision: '3', physical: true })).toEqual({ revision: 3, physical: true });
    expect(decodeLeaseGrantRequest({ TTL: '30', ID: '77' })).toEqual({ ttlSec: 30, id: 77 });
    expect(decodeLeaseGrantRequest({ TTL: -5 })).toEqual({ ttlSec: 0 });
    expect(badRequest(() => decodeLeaseGrantRequest({ ttl: 5 }))).toMatch(/unknown field "ttl" \(expected one of: TTL, ID\)/);
    expect(decodeLeaseTimeToLiveRequest({ ID: 5, keys: true })).toEqual({ id: 5, keys: true });
    expect(decodeMemberIdRequest({ ID: '12410532418012413470' })).toBe(BigInt('12410532418012413470').toString(16));
    expect(decodeMemberIdRequest({ ID: '1' })).toBe('0000000000000001');
    expect(badRequest(() => decodeMemberIdRequest({}))).toMatch(/field "ID" is required/);
    expect(badRequest(() => decodeMemberIdRequest({ ID: '18446744073709551616' }))).toMatch(/field "ID" must be a member id between/);
    expect(decodeMemberAddRequest({ peerURLs: ['http://127.0.0.1:1'], isLearner: true })).toEqual({ peerUrls: ['http://127.0.0.1:1'], isLearner: true });
    expect(badRequest(() => decodeMemberAddRequest({ peerURLs: ['nope'] }))).toMatch(/field "peerURLs\[0\]" is not a URL/);
    expect(badRequest(() => decodeMemberAddRequest({}))).toMatch(/field "peerURLs" must list at least one/);
  });

  it('reads txns: compares by target, ops, nesting; names the nested field on error', () => {
    const t = decodeTxnRequest({
      compare: [
        { key: b64('a'), result: 'EQUAL', target: 'VALUE', value: b64('1') },
        { key: b64('a'), result: 'NOT_EQUAL', target: 'VERSION', version: '1' },
        { key: b64('a'), target: 'CREATE' },
        { key: b64('a'), target: 'MOD', result: 'GREATER', mod_revision: 1 },
        { key: b64('a'), target: 'LEASE', result: 'LESS', lease: '1', range_end: 'AA==' },
      ],
      success: [
        { request_put: { key: b64('b'), value: b64('2'), prev_kv: true } },
        { request_range: { key: b64('a') } },
        { request_delete_range: { key: b64('z') } },
        { request_txn: {} },
      ],
    });
    expect(t).toEqual({
      compare: [
        { result: 'equal', key: enc('a'), target: 'value', value: enc('1') },
        { result: 'not_equal', key: enc('a'), target: 'version', version: 1 },
        { result: 'equal', key: enc('a'), target: 'create', createRevision: 0 },
        { result: 'greater', key: enc('a'), target: 'mod', modRevision: 1 },
        { result: 'less', key: enc('a'), rangeEnd: new Uint8Array([0]), target: 'lease', lease: 1 },
      ],
      success: [
        { put: { key: enc('b'), value: enc('2'), prevKv: true } },
        { range: { key: enc('a') } },
        { deleteRange: { key: enc('z') } },
        { txn: { compare: [], success: [], failure: [] } },
      ],
      failure: [],
    });
    expect(decodeTxnRequest({})).toEqual({ compare: [], success: [], failure: [] });
    expect(badRequest(() => decodeTxnRequest({ compare: [{ key: b64('a'), result: 'BOGUS' }] }))).toMatch(/field "compare\[0\]\.result" must be one of EQUAL, GREATER, LESS, NOT_EQUAL/);
    expect(badRequest(() => decodeTxnRequest({ compare: [{ key: b64('a'), target: 'VALUE', version: '2' }] }))).toMatch(/field "compare\[0\]\.version" does not match the compare target VALUE/);
    expect(badRequest(() => decodeTxnRequest({ success: [{ request_txn: { failure: [{ request_put: { key: 'x' } }] } }] }))).toMatch(
      /field "success\[0\]\.request_txn\.failure\[0\]\.request_put\.key" is not valid base64/,
    );
    expect(badRequest(() => decodeTxnRequest({ success: [{}] }))).toMatch(/field "success\[0\]" must have exactly one of request_range/);
    expect(badRequest(() => decodeTxnRequest({ success: [{ request_put: { key: b64('a') }, request_range: { key: b64('a') } }] }))).toMatch(/got request_range and request_put/);
    expect(badRequest(() => decodeTxnRequest({ success: {} }))).toMatch(/field "success" must be an array/);
    let deep: unknown = {};
    for (let i = 0; i <= MAX_TXN_DEPTH; i++) deep = { success: [{ request_txn: deep }] };
    expect(badRequest(() => decodeTxnRequest(deep))).toMatch(/nests txns deeper than/);
  });

  it('reads the three watch requests', () => {
    expect(decodeWatchRequest({ create_request: { key: b64('w'), range_end: 'AA==', start_revision: '2', prev_kv: true, filters: ['NOPUT', 1], watch_id: '5', progress_notify: true } })).toEqual({
      type: 'create',
      req: { key: enc('w'), rangeEnd: new Uint8Array([0]), startRevision: 2, prevKv: true, filters: ['noput', 'nodelete'], watchId: 5, progressNotify: true },
    });
    expect(decodeWatchRequest({ cancel_request: { watch_id: '3' } })).toEqual({ type: 'cancel', watchId: 3 });
    expect(decodeWatchRequest({ progress_request: {} })).toEqual({ type: 'progress' });
    expect(badRequest(() => decodeWatchRequest({}))).toMatch(/exactly one of create_request, cancel_request, progress_request/);
    expect(badRequest(() => decodeWatchRequest({ create_request: { key: b64('w'), filters: ['NOPE'] } }))).toMatch(/field "create_request.filters\[0\]" must be one of NOPUT, NODELETE/);
    expect(badRequest(() => decodeWatchRequest({ create_request: { key: '!!' } }))).toMatch(/field "create_request.key" is not valid base64/);
  });
});

describe('response encoding: etcd 3.4.23 shapes (recorded from its gateway)', () => {
  const kv = { key: enc('foo'), createRevision: 2, modRevision: 3, version: 2, value: enc('baz'), lease: 0 };
  it('range, put, deleterange: int64 as strings, zero values omitted', () => {
    expect(encodeRangeResult({ kvs: [kv], more: false, count: 1 }, H)).toEqual({
      header: HJ, kvs: [{ key: 'Zm9v', create_revision: '2', mod_revision: '3', version: '2', value: 'YmF6' }], count: '1',
    });
    expect(encodeRangeResult({ kvs: [], more: false, count: 0 }, H)).toEqual({ header: HJ });
    expect(encodeRangeResult({ kvs: [{ ...kv, value: new Uint8Array(0) }], more: true, count: 5 }, H)).toEqual({
      header: HJ, kvs: [{ key: 'Zm9v', create_revision: '2', mod_revision: '3', version: '2' }], more: true, count: '5',
    });
    expect(encodePutResult({}, H)).toEqual({ header: HJ });
    expect(encodePutResult({ prevKv: { ...kv, lease: 77 } }, H)).toEqual({
      header: HJ, prev_kv: { key: 'Zm9v', create_revision: '2', mod_revision: '3', version: '2', value: 'YmF6', lease: '77' },
    });
    expect(encodeDeleteRangeResult({ deleted: 0, prevKvs: [] }, H)).toEqual({ header: HJ });
    expect(encodeDeleteRangeResult({ deleted: 1, prevKvs: [kv] }, H)).toMatchObject({ deleted: '1', prev_kvs: [{ key: 'Zm9v' }] });
  });

  it('txn: nested headers carry the revision only, a nested txn header is empty', () => {
    const r: TxnResult = {
      succeeded: true,
      responses: [{ put: {} }, { range: { kvs: [kv], more: false, count: 1 } }, { deleteRange: { deleted: 0, prevKvs: [] } }, { txn: { succeeded: true, responses: [] } }],
    };
    expect(JSON.stringify(encodeTxnResult(r, { ...H, revision: 16 }))).toBe(
      JSON.stringify({
        header: { ...HJ, revision: '16' },
        succeeded: true,
        responses: [
          { response_put: { header: { revision: '16' } } },
          { response_range: { header: { revision: '16' }, kvs: [{ key: 'Zm9v', create_revision: '2', mod_revision: '3', version: '2', value: 'YmF6' }], count: '1' } },
          { response_delete_range: { header: { revision: '16' } } },
          { response_txn: { header: {}, succeeded: true } },
        ],
      }),
    );
    expect(encodeTxnResult({ succeeded: false, responses: [] }, H)).toEqual({ header: HJ });
    // A range before the txn's first write shows the revision before the txn (recorded from etcd).
    expect(encodeTxnResult({ succeeded: false, responses: [{ range: { kvs: [], more: false, count: 0 } }, { put: {} }] }, { ...H, revision: 11 })).toEqual({
      header: { ...HJ, revision: '11' },
      responses: [{ response_range: { header: { revision: '10' } } }, { response_put: { header: { revision: '11' } } }],
    });
  });

  it('leases, members, status: etcd\'s camelCase names', () => {
    expect(encodeLeaseGrantResult({ id: 77, ttlSec: 30 }, H)).toEqual({ header: HJ, ID: '77', TTL: '30' });
    expect(encodeLeaseTimeToLiveResult({ id: 77, ttlSec: 29, grantedTtlSec: 30, keys: [enc('l')] }, H)).toEqual({
      header: HJ, ID: '77', TTL: '29', grantedTTL: '30', keys: ['bA=='],
    });
    expect(encodeLeaseTimeToLiveResult({ id: 78, ttlSec: -1, grantedTtlSec: 0, keys: [] }, H)).toEqual({ header: HJ, ID: '78', TTL: '-1' });
    const m = { id: H.memberId, name: 'e1', peerUrls: ['http://127.0.0.1:53191'], clientUrls: ['http://127.0.0.1:43851'], isLearner: false };
    const l = { id: BigInt('14567152914206320967').toString(16), name: '', peerUrls: ['http://127.0.0.1:1'], clientUrls: [], isLearner: true };
    const { revision: _omitted, ...HJnoRev } = HJ;
    expect(encodeMembersResult({ member: l, members: [m, l] }, H)).toEqual({
      header: HJnoRev,
      member: { ID: '14567152914206320967', peerURLs: ['http://127.0.0.1:1'], isLearner: true },
      members: [
        { ID: '12410532418012413470', name: 'e1', peerURLs: ['http://127.0.0.1:53191'], clientURLs: ['http://127.0.0.1:43851'] },
        { ID: '14567152914206320967', peerURLs: ['http://127.0.0.1:1'], isLearner: true },
      ],
    });
    expect(encodeStatusResult({ version: '3.4.23', dbSize: 24576, leader: H.memberId, raftIndex: 11, raftTerm: 2, raftAppliedIndex: 11, isLearner: false, errors: [] }, H)).toEqual({
      header: HJ, version: '3.4.23', dbSize: '24576', leader: '12410532418012413470', raftIndex: '11', raftTerm: '2', raftAppliedIndex: '11',
    });
  });

  it('watch responses: PUT omitted (enum 0), DELETE by name, compact_revision', () => {
    const del: WatchResponse = {
      header: { ...H, revision: 7 }, watchId: 0,
      events: [{ type: 'delete', kv: { key: enc('w'), createRevision: 0, modRevision: 7, version: 0, value: new Uint8Array(0), lease: 0 }, prevKv: { ...kv, key: enc('w') } }],
    };
    expect(encodeWatchResponse(del)).toEqual({
      header: { ...HJ, revision: '7' },
      events: [{ type: 'DELETE', kv: { key: 'dw==', mod_revision: '7' }, prev_kv: { key: 'dw==', create_revision: '2', mod_revision: '3', version: '2', value: 'YmF6' } }],
    });
    expect(encodeWatchResponse({ header: H, watchId: 5, created: true, events: [] })).toEqual({ header: HJ, watch_id: '5', created: true });
    expect(encodeWatchResponse({ header: H, watchId: 0, canceled: true, compactRevision: 5, events: [] })).toEqual({ header: HJ, canceled: true, compact_revision: '5' });
    expect(decodeWatchResponse(encodeWatchResponse(del))).toEqual(del);
  });

  it('member ids are decimal uint64 strings', () => {
    expect(hexIdToDecimal('ffffffffffffffff')).toBe('18446744073709551615');
    expect(hexIdToDecimal('0000000000000001')).toBe('1');
  });
});

// ---------------------------------------------------------------------------------------------
// Round trips and robustness (fast-check, fixed seeds printed on failure)

const bytesArb = fc.uint8Array({ minLength: 1, maxLength: 12 });
const optBytes = fc.option(bytesArb, { nil: undefined });
const nat = fc.option(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { nil: undefined });
const optTrue = fc.option(fc.constant(true), { nil: undefined });

function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const rangeArb: fc.Arbitrary<RangeRequest> = fc
  .record({
    key: bytesArb, rangeEnd: optBytes, limit: nat, revision: nat,
    sortOrder: fc.option(fc.constantFrom('ascend' as const, 'descend' as const), { nil: undefined }),
    sortTarget: fc.option(fc.constantFrom('version' as const, 'create' as const, 'mod' as const, 'value' as const), { nil: undefined }),
    serializable: optTrue, keysOnly: optTrue, countOnly: optTrue,
  })
  .map(clean);
const putArb = fc.record({ key: bytesArb, value: bytesArb, lease: nat, prevKv: optTrue, ignoreValue: optTrue, ignoreLease: optTrue }).map(clean);
const delArb = fc.record({ key: bytesArb, rangeEnd: optBytes, prevKv: optTrue }).map(clean);
const compareArb: fc.Arbitrary<Compare> = fc
  .tuple(
    fc.record({ result: fc.constantFrom('equal' as const, 'greater' as const, 'less' as const, 'not_equal' as const), key: bytesArb, rangeEnd: optBytes }).map(clean),
    fc.oneof(
      fc.nat().map((version) => ({ target: 'version' as const, version })),
      fc.nat().map((createRevision) => ({ target: 'create' as const, createRevision })),
      fc.nat().map((modRevision) => ({ target: 'mod' as const, modRevision })),
      bytesArb.map((value) => ({ target: 'value' as const, value })),
      fc.nat().map((lease) => ({ target: 'lease' as const, lease })),
    ),
  )
  .map(([a, b]) => ({ ...a, ...b }));
const txnArb: fc.Arbitrary<TxnRequest> = fc.letrec<{ txn: TxnRequest; op: RequestOp }>((tie) => ({
  txn: fc.record({
    compare: fc.array(compareArb, { maxLength: 3 }),
    success: fc.array(tie('op'), { maxLength: 3 }),
    failure: fc.array(tie('op'), { maxLength: 3 }),
  }),
  op: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    rangeArb.map((range) => ({ range })),
    putArb.map((put) => ({ put })),
    delArb.map((deleteRange) => ({ deleteRange })),
    tie('txn').map((txn) => ({ txn })),
  ),
})).txn;

describe('round trips', () => {
  it('decode(encode(request)) = request for range, put, deleterange, txn, watch', () => {
    fc.assert(
      fc.property(rangeArb, putArb, delArb, txnArb, (r, p, d, t) => {
        // Through JSON text, as a client would send them.
        const wire = <T>(x: T): unknown => JSON.parse(JSON.stringify(x)) as unknown;
        expect(decodeRangeRequest(wire(encodeRangeRequest(r)))).toEqual(r);
        expect(decodePutRequest(wire(encodePutRequest(p)))).toEqual(p);
        expect(decodeDeleteRangeRequest(wire(encodeDeleteRangeRequest(d)))).toEqual(d);
        expect(decodeTxnRequest(wire(encodeTxnRequest(t)))).toEqual(t);
        const w = clean({ key: r.key, rangeEnd: r.rangeEnd, startRevision: r.revision, prevKv: r.keysOnly });
        expect(decodeWatchRequest(wire(encodeWatchCreateRequest(w)))).toEqual({ type: 'create', req: w });
      }),
      { seed: 4242, numRuns: 300 },
    );
  });

  it('isBase64 accepts exactly standard padded base64 (the language of the regex it replaced)', () => {
    const regex = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
    // Strings near the boundary: alphabet characters, padding, base64url's and other strays.
    const near = fc.string({ unit: fc.constantFrom('A', 'z', '0', '+', '/', '=', '-', '_', ' ', '\u00e9', '\n'), maxLength: 12 });
    fc.assert(
      fc.property(near, (s) => {
        expect(isBase64(s)).toBe(regex.test(s));
      }),
      { seed: 4711, numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(isBase64(Buffer.from(b).toString('base64'))).toBe(true);
      }),
      { seed: 4712, numRuns: 300 },
    );
    for (const s of ['', 'AA==', 'AAA=', 'AAAA']) expect(isBase64(s)).toBe(true);
    for (const s of ['=', '====', 'A===', 'AB=C', 'AAA', 'AA-_', 'AAAAA===']) expect(isBase64(s)).toBe(false);
  });

  it('decodeX(encodeX(result)) = result for range and txn results', () => {
    const kvArb = fc.record({
      key: bytesArb, createRevision: fc.nat(), modRevision: fc.nat(), version: fc.nat(),
      value: fc.uint8Array({ maxLength: 8 }), lease: fc.nat(),
    });
    fc.assert(
      fc.property(fc.array(kvArb, { maxLength: 4 }), fc.boolean(), fc.nat(), (kvs, more, count) => {
        const r = { kvs, more, count };
        expect(decodeRangeResult(JSON.parse(JSON.stringify(encodeRangeResult(r, H))))).toEqual(r);
        const t: TxnResult = { succeeded: more, responses: [{ range: r }, { put: {} }, { txn: { succeeded: true, responses: [] } }] };
        expect(decodeTxnResult(JSON.parse(JSON.stringify(encodeTxnResult(t, H))))).toEqual(t);
      }),
      { seed: 77, numRuns: 200 },
    );
  });

  it('decoders throw nothing but KvError BAD_REQUEST on arbitrary JSON', () => {
    const decoders = [decodeRangeRequest, decodePutRequest, decodeDeleteRangeRequest, decodeTxnRequest, decodeCompactRequest,
      decodeLeaseGrantRequest, decodeLeaseTimeToLiveRequest, decodeMemberAddRequest, decodeMemberIdRequest, decodeWatchRequest];
    const keys = fc.constantFrom('key', 'range_end', 'value', 'limit', 'revision', 'sort_order', 'compare', 'success', 'failure',
      'request_put', 'request_txn', 'target', 'result', 'TTL', 'ID', 'keys', 'peerURLs', 'create_request', 'cancel_request', 'watch_id', 'filters');
    const json = fc.letrec<{ v: unknown }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.constantFrom(null, true, false, 0, -1, 1.5, 2 ** 60, '', 'YQ==', '!!', '12', 'EQUAL', 'VALUE', 'NOPUT', 'http://x:1'),
        fc.string(),
        fc.array(tie('v'), { maxLength: 3 }),
        fc.dictionary(keys, tie('v'), { maxKeys: 4 }),
      ),
    })).v;
    fc.assert(
      fc.property(json, (v) => {
        for (const d of decoders) {
          try {
            d(v);
          } catch (e) {
            if (!(e instanceof KvError) || e.code !== 'BAD_REQUEST') throw new Error(`${d.name} threw ${String(e)}`);
          }
        }
      }),
      { seed: 99, numRuns: 2000 },
    );
  });
});

describe('JsonObjectSplitter (the /v3/watch and /v3/lease/keepalive request streams)', () => {
  it('splits concatenated objects across chunk boundaries, strings with braces and escapes included', () => {
    const s = new JsonObjectSplitter(1000);
    const text = '{"a":"}{\\"x"} \n{"b":[1,{"c":2}]}{"d":"\\\\"}';
    const out: string[] = [];
    for (const ch of text) out.push(...s.push(ch));
    expect(out.map((t) => JSON.parse(t) as unknown)).toEqual([{ a: '}{"x' }, { b: [1, { c: 2 }] }, { d: '\\' }]);
    expect(s.idle).toBe(true);
  });

  it('refuses a non-object at the top level and an object over the bound', () => {
    expect(() => new JsonObjectSplitter(1000).push('[1]')).toThrow(/sequence of JSON objects/);
    const s = new JsonObjectSplitter(10);
    expect(() => s.push('{"aaaaaaaaaaaaaaaaa')).toThrow(/request is too large/);
  });
});
