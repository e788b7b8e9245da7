// The Raft log's command encoding (msgpackr) and the checks every command passes.
//
// decodeCommand turns bytes from the log into a CommandEnvelope whose every field has the type
// types.ts promises, or throws KvError BAD_REQUEST (never anything else): the state machine can
// then rely on the shapes and never throw while applying. validateCommand checks the rules etcd
// enforces before proposing (sizes, txn op counts, duplicate keys, ranges of numbers); the server
// calls it to refuse a bad request before it reaches the log, and apply() calls it again so a
// command that slipped through still fails deterministically instead of corrupting anything.

import { Packr } from 'msgpackr';
import { ETCD_MESSAGES, KvError, LIMITS } from '../errors.js';
import type {
  Command,
  CommandEnvelope,
  Compare,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  SessionRef,
  SortOrder,
  SortTarget,
  TxnRequest,
} from '../types.js';
import { inRange, keyString, toKeyRange, type KeyRange, type KeyString } from '../mvcc/keys.js';

/**
 * No shared structures (every entry decodes alone, on any replica); 64-bit ints as numbers;
 * copyBuffers: keys and values get their own memory instead of pointing into the entry's bytes
 * (which may be a slice of a large network frame that the store would otherwise keep alive).
 */
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number', mapsAsObjects: true, copyBuffers: true });

/** How deep txns may nest (bounds recursion on garbage and in apply). */
export const MAX_TXN_DEPTH = 16;

export function encodeCommand(env: CommandEnvelope): Uint8Array {
  return packr.pack(env);
}

export function decodeCommand(bytes: Uint8Array): CommandEnvelope {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (e) {
    throw bad(`undecodable command (${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    return parseEnvelope(raw);
  } catch (e) {
    if (e instanceof KvError) throw e;
    throw bad(`malformed command (${e instanceof Error ? e.message : String(e)})`);
  }
}

function bad(message: string): KvError {
  return new KvError('BAD_REQUEST', message);
}

// ---------------------------------------------------------------------------------------------
// Shape checks: from unknown to the typed command, field by field.

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) throw bad(`${what}: expected a map`);
  return v as Obj;
}

function int(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw bad(`${what}: expected a safe integer`);
  return v;
}

function optInt(o: Obj, field: string, what: string): number | undefined {
  const v = o[field];
  return v === undefined || v === null ? undefined : int(v, `${what}.${field}`);
}

function bytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(`${what}: expected bytes`);
  return v;
}

function optBytes(o: Obj, field: string, what: string): Uint8Array | undefined {
  const v = o[field];
  return v === undefined || v === null ? undefined : bytes(v, `${what}.${field}`);
}

function optBool(o: Obj, field: string, what: string): boolean | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw bad(`${what}.${field}: expected a boolean`);
  return v;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw bad(`${what}: expected a string`);
  return v;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], what: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw bad(`${what}: expected one of ${allowed.join(', ')}`);
  return v as T;
}

function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw bad(`${what}: expected an array`);
  return v;
}

function parseEnvelope(raw: unknown): CommandEnvelope {
  const o = obj(raw, 'envelope');
  const requestId = str(o['requestId'], 'requestId');
  const timeMs = int(o['timeMs'], 'timeMs');
  const session = o['session'] === undefined || o['session'] === null ? undefined : parseSession(o['session']);
  const cmd = parseCommand(o['cmd']);
  return session === undefined ? { requestId, timeMs, cmd } : { requestId, timeMs, session, cmd };
}

function parseSession(raw: unknown): SessionRef {
  const o = obj(raw, 'session');
  return { clientId: int(o['clientId'], 'session.clientId'), seq: int(o['seq'], 'session.seq'), ackedSeq: int(o['ackedSeq'], 'session.ackedSeq') };
}

function parseCommand(raw: unknown): Command {
  const o = obj(raw, 'cmd');
  const op = str(o['op'], 'cmd.op');
  switch (op) {
    case 'put':
      return { op, req: parsePut(o['req'], 'put') };
    case 'deleteRange':
      return { op, req: parseDelete(o['req'], 'deleteRange') };
    case 'txn':
      return { op, req: parseTxn(o['req'], 'txn', 0) };
    case 'compact':
      return { op, revision: int(o['revision'], 'compact.revision') };
    case 'leaseGrant':
      return { op, id: int(o['id'], 'leaseGrant.id'), ttlSec: int(o['ttlSec'], 'leaseGrant.ttlSec') };
    case 'leaseRevoke': {
      const expired = optBool(o, 'expired', 'leaseRevoke');
      const id = int(o['id'], 'leaseRevoke.id');
      return expired === undefined ? { op, id } : { op, id, expired };
    }
    case 'registerSession':
      return { op };
    case 'publish': {
      const urls = arr(o['clientUrls'], 'publish.clientUrls').map((u, i) => str(u, `publish.clientUrls[${i}]`));
      return { op, memberId: str(o['memberId'], 'publish.memberId'), name: str(o['name'], 'publish.name'), clientUrls: urls };
    }
    default:
      throw bad(`unknown command op ${JSON.stringify(op).slice(0, 40)}`);
  }
}

/** Copies only the known fields, so an entry never carries surprises into the state machine. */
function parseRange(raw: unknown, what: string): RangeRequest {
  const o = obj(raw, what);
  const r: { -readonly [K in keyof RangeRequest]: RangeRequest[K] } = { key: bytes(o['key'], `${what}.key`) };
  const rangeEnd = optBytes(o, 'rangeEnd', what);
  if (rangeEnd !== undefined) r.rangeEnd = rangeEnd;
  const limit = optInt(o, 'limit', what);
  if (limit !== undefined) r.limit = limit;
  const revision = optInt(o, 'revision', what);
  if (revision !== undefined) r.revision = revision;
  if (o['sortOrder'] !== undefined && o['sortOrder'] !== null) r.sortOrder = oneOf<SortOrder>(o['sortOrder'], ['none', 'ascend', 'descend'], `${what}.sortOrder`);
  if (o['sortTarget'] !== undefined && o['sortTarget'] !== null)
    r.sortTarget = oneOf<SortTarget>(o['sortTarget'], ['key', 'version', 'create', 'mod', 'value'], `${what}.sortTarget`);
  for (const f of ['serializable', 'keysOnly', 'countOnly'] as const) {
    const b = optBool(o, f, what);
    if (b !== undefined) r[f] = b;
  }
  return r;
}

function parsePut(raw: unknown, what: string): PutRequest {
  const o = obj(raw, what);
  const r: { -readonly [K in keyof PutRequest]: PutRequest[K] } = { key: bytes(o['key'], `${what}.key`), value: bytes(o['value'], `${what}.value`) };
  const lease = optInt(o, 'lease', what);
  if (lease !== undefined) r.lease = lease;
  for (const f of ['prevKv', 'ignoreValue', 'ignoreLease'] as const) {
    const b = optBool(o, f, what);
    if (b !== undefined) r[f] = b;
  }
  return r;
}

function parseDelete(raw: unknown, what: string): DeleteRangeRequest {
  const o = obj(raw, what);
  const r: { -readonly [K in keyof DeleteRangeRequest]: DeleteRangeRequest[K] } = { key: bytes(o['key'], `${what}.key`) };
  const rangeEnd = optBytes(o, 'rangeEnd', what);
  if (rangeEnd !== undefined) r.rangeEnd = rangeEnd;
  const prevKv = optBool(o, 'prevKv', what);
  if (prevKv !== undefined) r.prevKv = prevKv;
  return r;
}

function parseCompare(raw: unknown, what: string): Compare {
  const o = obj(raw, what);
  const result = oneOf(o['result'], ['equal', 'greater', 'less', 'not_equal'] as const, `${what}.result`);
  const key = bytes(o['key'], `${what}.key`);
  const rangeEnd = optBytes(o, 'rangeEnd', what);
  const base = rangeEnd === undefined ? { result, key } : { result, key, rangeEnd };
  const target = oneOf(o['target'], ['version', 'create', 'mod', 'value', 'lease'] as const, `${what}.target`);
  switch (target) {
    case 'version':
      return { ...base, target, version: int(o['version'], `${what}.version`) };
    case 'create':
      return { ...base, target, createRevision: int(o['createRevision'], `${what}.createRevision`) };
    case 'mod':
      return { ...base, target, modRevision: int(o['modRevision'], `${what}.modRevision`) };
    case 'value':
      return { ...base, target, value: bytes(o['value'], `${what}.value`) };
    case 'lease':
      return { ...base, target, lease: int(o['lease'], `${what}.lease`) };
  }
}

function parseOp(raw: unknown, what: string, depth: number): RequestOp {
  const o = obj(raw, what);
  const present = ['range', 'put', 'deleteRange', 'txn'].filter((f) => o[f] !== undefined && o[f] !== null);
  if (present.length !== 1) throw bad(`${what}: expected exactly one of range, put, deleteRange, txn`);
  switch (present[0]) {
    case 'range':
      return { range: parseRange(o['range'], `${what}.range`) };
    case 'put':
      return { put: parsePut(o['put'], `${what}.put`) };
    case 'deleteRange':
      return { deleteRange: parseDelete(o['deleteRange'], `${what}.deleteRange`) };
    default:
      return { txn: parseTxn(o['txn'], `${what}.txn`, depth + 1) };
  }
}

function parseTxn(raw: unknown, what: string, depth: number): TxnRequest {
  if (depth > MAX_TXN_DEPTH) throw bad(`${what}: txns nested deeper than ${MAX_TXN_DEPTH}`);
  const o = obj(raw, what);
  const list = (f: string): unknown[] => (o[f] === undefined || o[f] === null ? [] : arr(o[f], `${what}.${f}`));
  return {
    compare: list('compare').map((c, i) => parseCompare(c, `${what}.compare[${i}]`)),
    success: list('success').map((op, i) => parseOp(op, `${what}.success[${i}]`, depth)),
    failure: list('failure').map((op, i) => parseOp(op, `${what}.failure[${i}]`, depth)),
  };
}

// ---------------------------------------------------------------------------------------------
// Semantic checks (etcd's, before proposing).

/** Throws KvError when etcd would refuse the command before proposing it. */
export function validateCommand(cmd: Command): void {
  switch (cmd.op) {
    case 'put':
      checkPut(cmd.req);
      checkSize(cmd.req.key.length + cmd.req.value.length);
      return;
    case 'deleteRange':
      checkKey(cmd.req.key);
      return;
    case 'txn':
      checkTxn(cmd.req, 0);
      checkSize(txnBytes(cmd.req));
      return;
    case 'compact':
      if (cmd.revision < 0) throw bad('compaction revision must not be negative');
      return;
    case 'leaseGrant':
      if (cmd.id < 0) throw bad('lease id must not be negative');
      if (cmd.ttlSec > LIMITS.maxLeaseTtlSec) throw new KvError('LEASE_TTL_TOO_LARGE', ETCD_MESSAGES.LEASE_TTL_TOO_LARGE);
      return;
    case 'leaseRevoke':
      if (cmd.id <= 0) throw new KvError('LEASE_NOT_FOUND', ETCD_MESSAGES.LEASE_NOT_FOUND);
      return;
    case 'registerSession':
      return;
    case 'publish':
      if (cmd.memberId.length === 0 || cmd.memberId.length > 64) throw bad('publish: bad member id');
      if (cmd.name.length > 1024 || cmd.clientUrls.length > 64 || cmd.clientUrls.some((u) => u.length > 1024)) throw bad('publish: attributes too large');
      return;
  }
}

function checkSize(n: number): void {
  if (n > LIMITS.maxRequestBytes) throw new KvError('REQUEST_TOO_LARGE', ETCD_MESSAGES.REQUEST_TOO_LARGE);
}

function checkKey(key: Uint8Array): void {
  if (key.length === 0) throw bad('etcdserver: key is not provided');
}

function checkPut(p: PutRequest): void {
  checkKey(p.key);
  if (p.lease !== undefined && p.lease < 0) throw bad('lease id must not be negative');
  // etcd refuses a value or lease given together with the flag that says to keep the old one.
  if (p.ignoreValue && p.value.length > 0) throw bad('etcdserver: value is provided');
  if (p.ignoreLease && (p.lease ?? 0) !== 0) throw bad('etcdserver: lease is provided');
}

function checkRange(r: RangeRequest): void {
  checkKey(r.key);
  if (r.limit !== undefined && r.limit < 0) throw bad('range limit must not be negative');
  if (r.revision !== undefined && r.revision < 0) throw bad('range revision must not be negative');
}

function checkTxn(t: TxnRequest, depth: number): void {
  if (depth > MAX_TXN_DEPTH) throw bad(`txns nested deeper than ${MAX_TXN_DEPTH}`);
  if (t.compare.length > LIMITS.maxTxnOps || t.success.length > LIMITS.maxTxnOps || t.failure.length > LIMITS.maxTxnOps)
    throw new KvError('TOO_MANY_OPS', ETCD_MESSAGES.TOO_MANY_OPS);
  for (const c of t.compare) checkKey(c.key);
  for (const branch of [t.success, t.failure]) {
    for (const op of branch) {
      if ('range' in op) {
        checkRange(op.range);
        // apply() is synchronous and old revisions live on disk: a txn reads the current revision only.
        if (op.range.revision !== undefined && op.range.revision !== 0)
          throw bad('a range inside a txn reads the current revision only (revision must be 0)');
      } else if ('put' in op) checkPut(op.put);
      else if ('deleteRange' in op) checkKey(op.deleteRange.key);
      else checkTxn(op.txn, depth + 1);
    }
    checkDuplicates(branch);
  }
}

/**
 * etcd's rule: one branch of a txn may not put the same key twice, nor put a key that one of its
 * deletes covers (the order inside the txn would matter). A nested txn's writes count with its
 * parent's; its two branches never both run, so they may write the same key (a put in one, a put
 * or delete in the other). Returns the keys the branch may put and the ranges it may delete.
 */
function checkDuplicates(branch: readonly RequestOp[]): { readonly puts: Set<KeyString>; readonly dels: KeyRange[] } {
  const puts = new Set<KeyString>();
  const dels: KeyRange[] = [];
  const dup = (): KvError => new KvError('DUPLICATE_KEY', ETCD_MESSAGES.DUPLICATE_KEY);
  const deleted = (k: KeyString): boolean => dels.some((d) => inRange(d, k));
  for (const op of branch) if ('deleteRange' in op) dels.push(toKeyRange(op.deleteRange.key, op.deleteRange.rangeEnd));
  // Nested txns first: their puts must not clash with this branch's writes so far.
  for (const op of branch) {
    if (!('txn' in op)) continue;
    const then = checkDuplicates(op.txn.success);
    const otherwise = checkDuplicates(op.txn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || deleted(k)) throw dup();
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if ((puts.has(k) && !then.puts.has(k)) || deleted(k)) throw dup();
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  // Then this branch's own puts, against everything.
  for (const op of branch) {
    if (!('put' in op)) continue;
    const k = keyString(op.put.key);
    if (puts.has(k) || deleted(k)) throw dup();
    puts.add(k);
  }
  return { puts, dels };
}

function txnBytes(t: TxnRequest): number {
  let n = 0;
  for (const c of t.compare) n += c.key.length + (c.rangeEnd?.length ?? 0) + (c.target === 'value' ? c.value.length : 0) + 16;
  for (const op of [...t.success, ...t.failure]) {
    if ('put' in op) n += op.put.key.length + op.put.value.length + 16;
    else if ('range' in op) n += op.range.key.length + (op.range.rangeEnd?.length ?? 0) + 16;
    else if ('deleteRange' in op) n += op.deleteRange.key.length + (op.deleteRange.rangeEnd?.length ?? 0) + 16;
    else n += txnBytes(op.txn);
  }
  return n;
}
