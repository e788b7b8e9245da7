// etcd v3 JSON <-> the store's types (types.ts), in both directions.
//
// etcd's JSON gateway (grpc-gateway over the v3 protobuf messages) writes: proto field names in
// snake_case (except the fields etcd's .proto files spell in camelCase: ID, TTL, grantedTTL, dbSize,
// raftIndex, peerURLs, clientURLs, isLearner, ...), int64 as decimal strings, bytes as standard
// padded base64, enums by name, and omits every zero value (0, "", false, empty lists).
// On input it accepts int64 as a string or a number and enums by name or number.
//
// Ballot is stricter than etcd on input: an unknown field, a wrong type, bad base64 or a number
// outside the safe-integer range is a 400 whose message names the field (etcd ignores unknown
// fields). Every decoder below throws only KvError('BAD_REQUEST', ...).

import { KvError } from '../errors.js';
import type {
  Bytes,
  Compare,
  CompareResult,
  CompactRequest,
  DeleteRangeRequest,
  DeleteRangeResult,
  KeyValue,
  LeaseGrantRequest,
  LeaseGrantResult,
  LeaseKeepAliveResult,
  LeaseTimeToLiveResult,
  Member,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  SortOrder,
  SortTarget,
  StatusResult,
  TxnRequest,
  TxnResult,
  WatchCreateRequest,
  WatchEvent,
  WatchResponse,
} from '../types.js';

/** A JSON value as JSON.parse returns it. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** Nested txns deeper than this are refused (bounds the decoder's recursion). */
export const MAX_TXN_DEPTH = 32;

// ---------------------------------------------------------------------------------------------
// Enum tables (proto enum names and numbers, as etcd's .proto files define them)

const SORT_ORDERS: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const COMPARE_RESULTS: readonly CompareResult[] = ['equal', 'greater', 'less', 'not_equal'];
const COMPARE_TARGETS = ['version', 'create', 'mod', 'value', 'lease'] as const;
const WATCH_FILTERS = ['noput', 'nodelete'] as const;

// ---------------------------------------------------------------------------------------------
// Reading fields, with messages that name the field

function bad(field: string, what: string): KvError {
  return new KvError('BAD_REQUEST', `bad request: field "${field}" ${what}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

function join(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

/**
 * Checks that `v` is a JSON object whose fields are all in `allowed` (null counts as absent, as
 * in etcd) and returns it. `path` names the object in error messages ('' for the body).
 */
function object(v: unknown, path: string, allowed: readonly string[]): Readonly<Record<string, unknown>> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new KvError('BAD_REQUEST', `bad request: ${path === '' ? 'the body' : `field "${path}"`} must be a JSON object, got ${describe(v)}`);
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw new KvError('BAD_REQUEST', `bad request: unknown field "${join(path, k)}" (expected one of: ${allowed.join(', ')})`);
    }
  }
  return o;
}

/** 1 for each character of the standard base64 alphabet (RFC 4648 §4), by char code. */
const BASE64_ALPHABET = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_ALPHABET[ch.charCodeAt(0)] = 1;
const PAD = 0x3d; // '='

/**
 * Whether `s` is standard padded base64: whole groups of four alphabet characters, the last
 * group possibly ending in "=" or "==" (what /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
 * accepts; a table walk is about 3x faster than that regex on a 256-byte value).
 */
export function isBase64(s: string): boolean {
  const n = s.length;
  if (n % 4 !== 0) return false;
  let end = n;
  if (n > 0 && s.charCodeAt(n - 1) === PAD) end = s.charCodeAt(n - 2) === PAD ? n - 2 : n - 1;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || BASE64_ALPHABET[c] === 0) return false;
  }
  return true;
}

function bytes(o: Readonly<Record<string, unknown>>, name: string, path: string): Bytes | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  const field = join(path, name);
  if (typeof v !== 'string') throw bad(field, `must be a base64 string, got ${describe(v)}`);
  if (!isBase64(v)) throw bad(field, 'is not valid base64 (standard alphabet, padded with "=")');
  // Decoded straight into a Uint8Array of its own (not a slice of Buffer's shared pool, which a
  // stored value must not keep alive): one allocation, no copy.
  const size = Buffer.byteLength(v, 'base64');
  const out = new Uint8Array(size);
  const written = Buffer.from(out.buffer, 0, size).write(v, 'base64');
  return written === size ? out : out.subarray(0, written);
}

function int(o: Readonly<Record<string, unknown>>, name: string, path: string, min = 0): number | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  const field = join(path, name);
  let n: number;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw bad(field, `must be an integer, got ${v}`);
    n = v;
  } else if (typeof v === 'string') {
    if (!/^-?[0-9]{1,20}$/.test(v)) throw bad(field, `must be an integer (a number or a decimal string), got ${describe(v)}`);
    n = Number(v);
  } else {
    throw bad(field, `must be an integer (a number or a decimal string), got ${describe(v)}`);
  }
  if (!Number.isSafeInteger(n)) throw bad(field, `is out of range: Ballot keeps int64 fields within +-(2^53 - 1), got ${String(v)}`);
  if (n < min) throw bad(field, `must be >= ${min}, got ${n}`);
  return n;
}

function bool(o: Readonly<Record<string, unknown>>, name: string, path: string): boolean | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw bad(join(path, name), `must be true or false, got ${describe(v)}`);
  return v;
}

function enumOf<T extends string>(
  o: Readonly<Record<string, unknown>>,
  name: string,
  path: string,
  values: readonly T[],
): T | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  const field = join(path, name);
  const names = values.map((x) => x.toUpperCase());
  if (typeof v === 'string') {
    const i = names.indexOf(v);
    if (i < 0) throw bad(field, `must be one of ${names.join(', ')}, got ${describe(v)}`);
    return values[i];
  }
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < values.length) return values[v];
  throw bad(field, `must be one of ${names.join(', ')} (or its number 0..${values.length - 1}), got ${describe(v)}`);
}

function array(o: Readonly<Record<string, unknown>>, name: string, path: string): readonly unknown[] {
  const v = o[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(join(path, name), `must be an array, got ${describe(v)}`);
  return v;
}

/** A member id: uint64 as a decimal string (or a safe-integer number) -> 16 hex digits. */
function memberId(o: Readonly<Record<string, unknown>>, name: string, path: string): string {
  const v = o[name];
  const field = join(path, name);
  let n: bigint;
  if (typeof v === 'string' && /^[0-9]{1,20}$/.test(v)) n = BigInt(v);
  else if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
  else if (v === undefined || v === null) throw bad(field, 'is required (a member id)');
  else throw bad(field, `must be a member id (a decimal uint64 string), got ${describe(v)}`);
  if (n <= 0n || n >= 1n << 64n) throw bad(field, `must be a member id between 1 and 2^64 - 1, got ${String(v)}`);
  return n.toString(16).padStart(16, '0');
}

function requireKey(key: Bytes | undefined): Bytes {
  if (key === undefined || key.length === 0) throw new KvError('BAD_REQUEST', 'etcdserver: key is not provided');
  return key;
}

// ---------------------------------------------------------------------------------------------
// Requests: JSON -> types

const RANGE_FIELDS = [
  'key', 'range_end', 'limit', 'revision', 'sort_order', 'sort_target', 'serializable', 'keys_only', 'count_only',
  'min_mod_revision', 'max_mod_revision', 'min_create_revision', 'max_create_revision',
] as const;

export function decodeRangeRequest(v: unknown, path = ''): RangeRequest {
  const o = object(v, path, RANGE_FIELDS);
  for (const f of ['min_mod_revision', 'max_mod_revision', 'min_create_revision', 'max_create_revision']) {
    if ((int(o, f, path) ?? 0) !== 0) throw bad(join(path, f), 'is not supported by Ballot (filter the result on the client)');
  }
  const key = requireKey(bytes(o, 'key', path));
  return strip({
    key,
    rangeEnd: bytes(o, 'range_end', path),
    limit: int(o, 'limit', path),
    revision: int(o, 'revision', path),
    sortOrder: enumOf(o, 'sort_order', path, SORT_ORDERS),
    sortTarget: enumOf(o, 'sort_target', path, SORT_TARGETS),
    serializable: bool(o, 'serializable', path),
    keysOnly: bool(o, 'keys_only', path),
    countOnly: bool(o, 'count_only', path),
  });
}

export function decodePutRequest(v: unknown, path = ''): PutRequest {
  const o = object(v, path, ['key', 'value', 'lease', 'prev_kv', 'ignore_value', 'ignore_lease']);
  return strip({
    key: requireKey(bytes(o, 'key', path)),
    value: bytes(o, 'value', path) ?? new Uint8Array(0),
    lease: int(o, 'lease', path),
    prevKv: bool(o, 'prev_kv', path),
    ignoreValue: bool(o, 'ignore_value', path),
    ignoreLease: bool(o, 'ignore_lease', path),
  });
}

export function decodeDeleteRangeRequest(v: unknown, path = ''): DeleteRangeRequest {
  const o = object(v, path, ['key', 'range_end', 'prev_kv']);
  return strip({
    key: requireKey(bytes(o, 'key', path)),
    rangeEnd: bytes(o, 'range_end', path),
    prevKv: bool(o, 'prev_kv', path),
  });
}

const COMPARE_UNION = { version: 'version', create: 'create_revision', mod: 'mod_revision', value: 'value', lease: 'lease' } as const;

export function decodeCompare(v: unknown, path: string): Compare {
  const o = object(v, path, ['result', 'target', 'key', 'range_end', ...Object.values(COMPARE_UNION)]);
  const result = enumOf(o, 'result', path, COMPARE_RESULTS) ?? 'equal';
  const target = enumOf(o, 'target', path, COMPARE_TARGETS) ?? 'version';
  for (const [t, f] of Object.entries(COMPARE_UNION)) {
    if (t !== target && o[f] !== undefined && o[f] !== null) {
      throw bad(join(path, f), `does not match the compare target ${target.toUpperCase()} (set "target": "${t.toUpperCase()}")`);
    }
  }
  const base = strip({ result, key: requireKey(bytes(o, 'key', path)), rangeEnd: bytes(o, 'range_end', path) });
  switch (target) {
    case 'version':
      return { ...base, target, version: int(o, 'version', path) ?? 0 };
    case 'create':
      return { ...base, target, createRevision: int(o, 'create_revision', path) ?? 0 };
    case 'mod':
      return { ...base, target, modRevision: int(o, 'mod_revision', path) ?? 0 };
    case 'value':
      return { ...base, target, value: bytes(o, 'value', path) ?? new Uint8Array(0) };
    case 'lease':
      return { ...base, target, lease: int(o, 'lease', path) ?? 0 };
  }
}

const OP_FIELDS = ['request_range', 'request_put', 'request_delete_range', 'request_txn'] as const;

function decodeRequestOp(v: unknown, path: string, depth: number): RequestOp {
  const o = object(v, path, OP_FIELDS);
  const given = OP_FIELDS.filter((f) => o[f] !== undefined && o[f] !== null);
  if (given.length !== 1) {
    throw new KvError('BAD_REQUEST', `bad request: field "${path}" must have exactly one of ${OP_FIELDS.join(', ')}${given.length ? `, got ${given.join(' and ')}` : ''}`);
  }
  const f = given[0]!;
  const p = join(path, f);
  switch (f) {
    case 'request_range':
      return { range: decodeRangeRequest(o[f], p) };
    case 'request_put':
      return { put: decodePutRequest(o[f], p) };
    case 'request_delete_range':
      return { deleteRange: decodeDeleteRangeRequest(o[f], p) };
    case 'request_txn':
      return { txn: decodeTxnRequestAt(o[f], p, depth + 1) };
  }
}

function decodeTxnRequestAt(v: unknown, path: string, depth: number): TxnRequest {
  if (depth > MAX_TXN_DEPTH) throw bad(path, `nests txns deeper than ${MAX_TXN_DEPTH} levels`);
  const o = object(v, path, ['compare', 'success', 'failure']);
  return {
    compare: array(o, 'compare', path).map((c, i) => decodeCompare(c, `${join(path, 'compare')}[${i}]`)),
    success: array(o, 'success', path).map((c, i) => decodeRequestOp(c, `${join(path, 'success')}[${i}]`, depth)),
    failure: array(o, 'failure', path).map((c, i) => decodeRequestOp(c, `${join(path, 'failure')}[${i}]`, depth)),
  };
}

export function decodeTxnRequest(v: unknown, path = ''): TxnRequest {
  return decodeTxnRequestAt(v, path, 0);
}

export function decodeCompactRequest(v: unknown): CompactRequest {
  const o = object(v, '', ['revision', 'physical']);
  return strip({ revision: int(o, 'revision', '') ?? 0, physical: bool(o, 'physical', '') });
}

export function decodeLeaseGrantRequest(v: unknown): LeaseGrantRequest {
  const o = object(v, '', ['TTL', 'ID']);
  // etcd raises a TTL below its minimum to the minimum; a negative one is treated as 0 likewise.
  return strip({ ttlSec: Math.max(0, int(o, 'TTL', '', Number.MIN_SAFE_INTEGER) ?? 0), id: int(o, 'ID', '') });
}

/** {"ID": lease id} (revoke, keepalive). */
export function decodeLeaseIdRequest(v: unknown): number {
  const o = object(v, '', ['ID']);
  return int(o, 'ID', '') ?? 0;
}

export function decodeLeaseTimeToLiveRequest(v: unknown): { readonly id: number; readonly keys: boolean } {
  const o = object(v, '', ['ID', 'keys']);
  return { id: int(o, 'ID', '') ?? 0, keys: bool(o, 'keys', '') ?? false };
}

/** Bodies with no fields (leases, member list, status): only checks there is nothing unknown. */
export function decodeEmptyRequest(v: unknown): void {
  object(v, '', []);
}

export function decodeMemberAddRequest(v: unknown): { readonly peerUrls: readonly string[]; readonly isLearner: boolean } {
  const o = object(v, '', ['peerURLs', 'isLearner']);
  const peerUrls = array(o, 'peerURLs', '').map((u, i) => {
    if (typeof u !== 'string' || u === '') throw bad(`peerURLs[${i}]`, `must be a URL string, got ${describe(u)}`);
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw bad(`peerURLs[${i}]`, `is not a URL: ${describe(u)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw bad(`peerURLs[${i}]`, `must be an http(s) URL, got ${describe(u)}`);
    return u;
  });
  if (peerUrls.length === 0) throw bad('peerURLs', 'must list at least one peer URL');
  return { peerUrls, isLearner: bool(o, 'isLearner', '') ?? false };
}

/** {"ID": member id} (remove, promote) -> 16 hex digits. */
export function decodeMemberIdRequest(v: unknown): string {
  return memberId(object(v, '', ['ID']), 'ID', '');
}

export type WatchStreamRequest =
  | { readonly type: 'create'; readonly req: WatchCreateRequest }
  | { readonly type: 'cancel'; readonly watchId: number }
  | { readonly type: 'progress' };

const WATCH_CREATE_FIELDS = ['key', 'range_end', 'start_revision', 'progress_notify', 'filters', 'prev_kv', 'watch_id', 'fragment'];

/** One message of a /v3/watch stream (etcd's WatchRequest: exactly one of its three requests). */
export function decodeWatchRequest(v: unknown): WatchStreamRequest {
  const o = object(v, '', ['create_request', 'cancel_request', 'progress_request']);
  const given = ['create_request', 'cancel_request', 'progress_request'].filter((f) => o[f] !== undefined && o[f] !== null);
  if (given.length !== 1) {
    throw new KvError('BAD_REQUEST', `bad request: a watch request must have exactly one of create_request, cancel_request, progress_request${given.length ? `, got ${given.join(' and ')}` : ''}`);
  }
  if (given[0] === 'cancel_request') {
    const c = object(o.cancel_request, 'cancel_request', ['watch_id']);
    return { type: 'cancel', watchId: int(c, 'watch_id', 'cancel_request') ?? 0 };
  }
  if (given[0] === 'progress_request') {
    object(o.progress_request, 'progress_request', []);
    return { type: 'progress' };
  }
  const p = 'create_request';
  const c = object(o.create_request, p, WATCH_CREATE_FIELDS);
  if (bool(c, 'fragment', p)) throw bad(`${p}.fragment`, 'is not supported by Ballot (responses are never fragmented)');
  const filters = array(c, 'filters', p).map((f, i) => enumOf({ [`filters[${i}]`]: f }, `filters[${i}]`, p, WATCH_FILTERS) ?? failFilter(f, i));
  return {
    type: 'create',
    req: strip({
      key: requireKey(bytes(c, 'key', p)),
      rangeEnd: bytes(c, 'range_end', p),
      startRevision: int(c, 'start_revision', p),
      progressNotify: bool(c, 'progress_notify', p),
      filters: filters.length > 0 ? filters : undefined,
      prevKv: bool(c, 'prev_kv', p),
      watchId: int(c, 'watch_id', p),
    }),
  };
}

function failFilter(f: unknown, i: number): never {
  throw bad(`create_request.filters[${i}]`, `must be NOPUT or NODELETE, got ${describe(f)}`);
}

/** Drops undefined properties so decoded objects compare equal to hand-written ones. */
function strip<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as T;
}

// ---------------------------------------------------------------------------------------------
// Requests: types -> JSON (what an etcd JSON client sends; used by tests and JSON clients)

function b64(b: Bytes): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** Sets `o[name] = v` unless v is a zero value (grpc-gateway omits them). */
function put(o: JsonObject, name: string, v: Json | undefined): void {
  if (v === undefined || v === null || v === 0 || v === false || v === '') return;
  if (Array.isArray(v) && v.length === 0) return;
  o[name] = v;
}

function i64(n: number | undefined): string | undefined {
  return n === undefined || n === 0 ? undefined : String(n);
}

function optBytes(b: Bytes | undefined): string | undefined {
  return b === undefined || b.length === 0 ? undefined : b64(b);
}

export function encodeRangeRequest(r: RangeRequest): JsonObject {
  const o: JsonObject = {};
  put(o, 'key', b64(r.key));
  put(o, 'range_end', optBytes(r.rangeEnd));
  put(o, 'limit', i64(r.limit));
  put(o, 'revision', i64(r.revision));
  if (r.sortOrder && r.sortOrder !== 'none') o.sort_order = r.sortOrder.toUpperCase();
  if (r.sortTarget && r.sortTarget !== 'key') o.sort_target = r.sortTarget.toUpperCase();
  put(o, 'serializable', r.serializable);
  put(o, 'keys_only', r.keysOnly);
  put(o, 'count_only', r.countOnly);
  return o;
}

export function encodePutRequest(r: PutRequest): JsonObject {
  const o: JsonObject = {};
  put(o, 'key', b64(r.key));
  put(o, 'value', optBytes(r.value));
  put(o, 'lease', i64(r.lease));
  put(o, 'prev_kv', r.prevKv);
  put(o, 'ignore_value', r.ignoreValue);
  put(o, 'ignore_lease', r.ignoreLease);
  return o;
}

export function encodeDeleteRangeRequest(r: DeleteRangeRequest): JsonObject {
  const o: JsonObject = {};
  put(o, 'key', b64(r.key));
  put(o, 'range_end', optBytes(r.rangeEnd));
  put(o, 'prev_kv', r.prevKv);
  return o;
}

function encodeCompare(c: Compare): JsonObject {
  const o: JsonObject = {};
  if (c.result !== 'equal') o.result = c.result.toUpperCase();
  if (c.target !== 'version') o.target = c.target.toUpperCase();
  put(o, 'key', b64(c.key));
  put(o, 'range_end', optBytes(c.rangeEnd));
  switch (c.target) {
    case 'version': put(o, 'version', i64(c.version)); break;
    case 'create': put(o, 'create_revision', i64(c.createRevision)); break;
    case 'mod': put(o, 'mod_revision', i64(c.modRevision)); break;
    case 'value': put(o, 'value', optBytes(c.value)); break;
    case 'lease': put(o, 'lease', i64(c.lease)); break;
  }
  return o;
}

function encodeRequestOp(op: RequestOp): JsonObject {
  if ('range' in op) return { request_range: encodeRangeRequest(op.range) };
  if ('put' in op) return { request_put: encodePutRequest(op.put) };
  if ('deleteRange' in op) return { request_delete_range: encodeDeleteRangeRequest(op.deleteRange) };
  return { request_txn: encodeTxnRequest(op.txn) };
}

export function encodeTxnRequest(t: TxnRequest): JsonObject {
  const o: JsonObject = {};
  put(o, 'compare', t.compare.map(encodeCompare));
  put(o, 'success', t.success.map(encodeRequestOp));
  put(o, 'failure', t.failure.map(encodeRequestOp));
  return o;
}

export function encodeWatchCreateRequest(r: WatchCreateRequest): JsonObject {
  const c: JsonObject = {};
  put(c, 'key', b64(r.key));
  put(c, 'range_end', optBytes(r.rangeEnd));
  put(c, 'start_revision', i64(r.startRevision));
  put(c, 'progress_notify', r.progressNotify);
  put(c, 'filters', r.filters?.map((f) => f.toUpperCase()));
  put(c, 'prev_kv', r.prevKv);
  put(c, 'watch_id', i64(r.watchId));
  return { create_request: c };
}

// ---------------------------------------------------------------------------------------------
// Responses: types -> JSON

/** 16 hex digits -> etcd's decimal uint64 string. */
export function hexIdToDecimal(hex: string): string {
  if (!/^[0-9a-f]{1,16}$/i.test(hex)) return '0';
  return BigInt(`0x${hex}`).toString();
}

function nonZeroId(hex: string): string | undefined {
  const d = hexIdToDecimal(hex);
  return d === '0' ? undefined : d;
}

export function encodeHeader(h: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  put(o, 'cluster_id', nonZeroId(h.clusterId));
  put(o, 'member_id', nonZeroId(h.memberId));
  put(o, 'revision', i64(h.revision));
  put(o, 'raft_term', i64(h.raftTerm));
  return o;
}

export function encodeKeyValue(kv: KeyValue): JsonObject {
  const o: JsonObject = {};
  put(o, 'key', optBytes(kv.key));
  put(o, 'create_revision', i64(kv.createRevision));
  put(o, 'mod_revision', i64(kv.modRevision));
  put(o, 'version', i64(kv.version));
  put(o, 'value', optBytes(kv.value));
  put(o, 'lease', i64(kv.lease));
  return o;
}

function withHeader(h: ResponseHeader | undefined, o: JsonObject): JsonObject {
  return h === undefined ? o : { header: encodeHeader(h), ...o };
}

export function encodeRangeResult(r: RangeResult, h?: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  put(o, 'kvs', r.kvs.map(encodeKeyValue));
  put(o, 'more', r.more);
  put(o, 'count', i64(r.count));
  return withHeader(h, o);
}

export function encodePutResult(r: PutResult, h?: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  if (r.prevKv) o.prev_kv = encodeKeyValue(r.prevKv);
  return withHeader(h, o);
}

export function encodeDeleteRangeResult(r: DeleteRangeResult, h?: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  put(o, 'deleted', i64(r.deleted));
  put(o, 'prev_kvs', r.prevKvs.map(encodeKeyValue));
  return withHeader(h, o);
}

/**
 * A txn's responses. etcd fills each nested range/put/delete response's header with the revision
 * only, and leaves a nested txn's header empty. That revision is the store's as the op saw it: the
 * txn's new revision once any earlier op of the txn (or this one) wrote something, the revision
 * before the txn until then (a range before the first put shows the old revision).
 */
interface TxnWalk {
  readonly before: number;
  readonly after: number;
  wrote: boolean;
}

function txnWrites(responses: readonly ResponseOp[]): boolean {
  return responses.some((op) =>
    'put' in op ? true : 'deleteRange' in op ? op.deleteRange.deleted > 0 : 'txn' in op ? txnWrites(op.txn.responses) : false,
  );
}

function revisionHeader(w: TxnWalk): JsonObject {
  const rev = w.wrote ? w.after : w.before;
  return rev === 0 ? {} : { revision: String(rev) };
}

function encodeResponseOp(op: ResponseOp, w: TxnWalk): JsonObject {
  if ('range' in op) return { response_range: { header: revisionHeader(w), ...encodeRangeResult(op.range) } };
  if ('put' in op) {
    w.wrote = true;
    return { response_put: { header: revisionHeader(w), ...encodePutResult(op.put) } };
  }
  if ('deleteRange' in op) {
    if (op.deleteRange.deleted > 0) w.wrote = true;
    return { response_delete_range: { header: revisionHeader(w), ...encodeDeleteRangeResult(op.deleteRange) } };
  }
  return { response_txn: { header: {}, ...encodeTxnBody(op.txn, w) } };
}

function encodeTxnBody(r: TxnResult, w: TxnWalk): JsonObject {
  const o: JsonObject = {};
  put(o, 'succeeded', r.succeeded);
  put(o, 'responses', r.responses.map((op) => encodeResponseOp(op, w)));
  return o;
}

export function encodeTxnResult(r: TxnResult, h: ResponseHeader): JsonObject {
  const wrote = txnWrites(r.responses);
  return withHeader(h, encodeTxnBody(r, { before: wrote ? h.revision - 1 : h.revision, after: h.revision, wrote: false }));
}

export function encodeLeaseGrantResult(r: LeaseGrantResult, h: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  put(o, 'ID', i64(r.id));
  put(o, 'TTL', i64(r.ttlSec));
  return withHeader(h, o);
}

export function encodeLeaseKeepAliveResult(r: LeaseKeepAliveResult, h: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  put(o, 'ID', i64(r.id));
  put(o, 'TTL', i64(r.ttlSec));
  return withHeader(h, o);
}

export function encodeLeaseTimeToLiveResult(r: LeaseTimeToLiveResult, h: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  put(o, 'ID', i64(r.id));
  put(o, 'TTL', r.ttlSec === 0 ? undefined : String(r.ttlSec));
  put(o, 'grantedTTL', i64(r.grantedTtlSec));
  put(o, 'keys', r.keys.map(b64));
  return withHeader(h, o);
}

export function encodeLeaseLeasesResult(r: { readonly ids: readonly number[] }, h: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  put(o, 'leases', r.ids.map((id) => ({ ID: String(id) })));
  return withHeader(h, o);
}

export function encodeMember(m: Member): JsonObject {
  const o: JsonObject = {};
  put(o, 'ID', nonZeroId(m.id));
  put(o, 'name', m.name);
  put(o, 'peerURLs', [...m.peerUrls]);
  put(o, 'clientURLs', [...m.clientUrls]);
  put(o, 'isLearner', m.isLearner);
  return o;
}

/** Member list/add/remove/promote. etcd's cluster service leaves the header's revision unset (0, omitted); so does Ballot. */
export function encodeMembersResult(
  r: { readonly member?: Member; readonly members: readonly Member[] },
  h: ResponseHeader,
): JsonObject {
  const o: JsonObject = {};
  if (r.member) o.member = encodeMember(r.member);
  put(o, 'members', r.members.map(encodeMember));
  return withHeader({ ...h, revision: 0 }, o);
}

export function encodeStatusResult(r: StatusResult, h: ResponseHeader): JsonObject {
  const o: JsonObject = {};
  put(o, 'version', r.version);
  put(o, 'dbSize', i64(r.dbSize));
  put(o, 'leader', nonZeroId(r.leader));
  put(o, 'raftIndex', i64(r.raftIndex));
  put(o, 'raftTerm', i64(r.raftTerm));
  put(o, 'raftAppliedIndex', i64(r.raftAppliedIndex));
  put(o, 'errors', [...r.errors]);
  put(o, 'isLearner', r.isLearner);
  return withHeader(h, o);
}

export function encodeWatchEvent(e: WatchEvent): JsonObject {
  const o: JsonObject = {};
  if (e.type === 'delete') o.type = 'DELETE';
  o.kv = encodeKeyValue(e.kv);
  if (e.prevKv) o.prev_kv = encodeKeyValue(e.prevKv);
  return o;
}

export function encodeWatchResponse(r: WatchResponse): JsonObject {
  const o: JsonObject = { header: encodeHeader(r.header) };
  put(o, 'watch_id', i64(r.watchId));
  put(o, 'created', r.created);
  put(o, 'canceled', r.canceled);
  put(o, 'compact_revision', i64(r.compactRevision));
  put(o, 'cancel_reason', r.cancelReason);
  put(o, 'events', r.events.map(encodeWatchEvent));
  return o;
}

// ---------------------------------------------------------------------------------------------
// Responses: JSON -> types (for JSON clients and tests; lenient about absent zero values)

function respObject(v: unknown, what: string): Readonly<Record<string, unknown>> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new KvError('BAD_REQUEST', `bad response: ${what} must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

function respInt(o: Readonly<Record<string, unknown>>, name: string): number {
  return int(o, name, '', Number.MIN_SAFE_INTEGER) ?? 0;
}

function decimalIdToHex(v: unknown): string {
  if (typeof v !== 'string' || !/^[0-9]{1,20}$/.test(v)) return '0000000000000000';
  return BigInt(v).toString(16).padStart(16, '0');
}

export function decodeHeader(v: unknown): ResponseHeader {
  const o = respObject(v, 'header');
  return { clusterId: decimalIdToHex(o.cluster_id), memberId: decimalIdToHex(o.member_id), revision: respInt(o, 'revision'), raftTerm: respInt(o, 'raft_term') };
}

export function decodeKeyValue(v: unknown): KeyValue {
  const o = respObject(v, 'kv');
  return {
    key: bytes(o, 'key', '') ?? new Uint8Array(0),
    createRevision: respInt(o, 'create_revision'),
    modRevision: respInt(o, 'mod_revision'),
    version: respInt(o, 'version'),
    value: bytes(o, 'value', '') ?? new Uint8Array(0),
    lease: respInt(o, 'lease'),
  };
}

export function decodeRangeResult(v: unknown): RangeResult {
  const o = respObject(v, 'range response');
  return { kvs: array(o, 'kvs', '').map(decodeKeyValue), more: o.more === true, count: respInt(o, 'count') };
}

export function decodePutResult(v: unknown): PutResult {
  const o = respObject(v, 'put response');
  return o.prev_kv ? { prevKv: decodeKeyValue(o.prev_kv) } : {};
}

export function decodeDeleteRangeResult(v: unknown): DeleteRangeResult {
  const o = respObject(v, 'delete response');
  return { deleted: respInt(o, 'deleted'), prevKvs: array(o, 'prev_kvs', '').map(decodeKeyValue) };
}

export function decodeTxnResult(v: unknown): TxnResult {
  const o = respObject(v, 'txn response');
  const responses = array(o, 'responses', '').map((x): ResponseOp => {
    const r = respObject(x, 'response op');
    if (r.response_range) return { range: decodeRangeResult(r.response_range) };
    if (r.response_put) return { put: decodePutResult(r.response_put) };
    if (r.response_delete_range) return { deleteRange: decodeDeleteRangeResult(r.response_delete_range) };
    return { txn: decodeTxnResult(r.response_txn) };
  });
  return { succeeded: o.succeeded === true, responses };
}

export function decodeWatchEvent(v: unknown): WatchEvent {
  const o = respObject(v, 'event');
  const e: WatchEvent = { type: o.type === 'DELETE' ? 'delete' : 'put', kv: decodeKeyValue(o.kv) };
  return o.prev_kv ? { ...e, prevKv: decodeKeyValue(o.prev_kv) } : e;
}

export function decodeWatchResponse(v: unknown): WatchResponse {
  const o = respObject(v, 'watch response');
  return strip({
    header: decodeHeader(o.header),
    watchId: respInt(o, 'watch_id'),
    created: o.created === true ? true : undefined,
    canceled: o.canceled === true ? true : undefined,
    cancelReason: typeof o.cancel_reason === 'string' && o.cancel_reason !== '' ? o.cancel_reason : undefined,
    compactRevision: respInt(o, 'compact_revision') || undefined,
    events: array(o, 'events', '').map(decodeWatchEvent),
  });
}
