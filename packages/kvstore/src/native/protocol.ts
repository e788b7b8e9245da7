// Ballot's native client protocol: msgpackr messages over one WebSocket per client and member
// (path /ballot/v1), pipelined (many requests in flight, answered in any order, matched by id)
// and with watches multiplexed on the same socket.
//
//   client → server  { id, op, args }                 op = a KvService method name (see NATIVE_OPS)
//   server → client  { id, ok: true, answer }          the method's Answer
//                    { id, ok: false, code, message, leaderUrl? }   a KvError
//                    { id, watch: WatchResponse }      one of a watch's stream (op 'watch'; 'created' first)
//                    { id, chunk: Uint8Array }         one of a snapshot's chunks (op 'snapshot'; then ok)
//
// One WebSocket frame carries one or more messages, each packed on its own and concatenated
// (msgpack values are self-delimiting; the receiver reads them with unpackMultiple). A sender
// collects what it produced in one event-loop turn into one frame (fewer frames and syscalls
// under load, no added wait when idle), never more than maxFrameBytes per frame.
//
// Bounds: a frame's size (the receiver's maxPayload: above it the socket is closed with 1009),
// one request's size (LIMITS.maxRequestBytes: above it that request is answered REQUEST_TOO_LARGE),
// requests in flight per connection (above it: QUEUE_FULL), watches per connection, and the
// bytes a server queues for a client that does not read (above it: the connection is closed).

import { Packr, unpackMultiple } from 'msgpackr';
import { ETCD_MESSAGES, KvError, LIMITS, type KvErrorCode } from '../errors.js';
import type { WatchResponse } from '../types.js';

export const NATIVE_PATH = '/ballot/v1';

/** Every op a client may send: KvService's methods, plus the watch and snapshot stream controls. */
export const NATIVE_OPS = [
  'range',
  'put',
  'deleteRange',
  'txn',
  'compact',
  'leaseGrant',
  'leaseRevoke',
  'leaseKeepAlive',
  'leaseTimeToLive',
  'leaseLeases',
  'memberList',
  'memberAdd',
  'memberRemove',
  'memberPromote',
  'status',
  'registerSession',
  /** args [WatchCreateRequest]; answered by a stream of { id, watch } (created first, canceled last). */
  'watch',
  /** args [id of the 'watch' request]; answered ok; the stream ends with a canceled response. */
  'watchCancel',
  /** args [id of the 'watch' request]; answered ok; the stream gets a progress notification. */
  'watchProgress',
  /** args []; answered by { id, chunk } messages, then ok. The server sends up to SNAPSHOT_WINDOW chunks ahead. */
  'snapshot',
  /** args [id of the 'snapshot' request]: the client consumed one chunk (credit for one more). Not answered. */
  'snapshotAck',
] as const;
export type NativeOp = (typeof NATIVE_OPS)[number];
const OP_SET: ReadonlySet<string> = new Set(NATIVE_OPS);

/** Chunks a snapshot stream may have unacknowledged (bounded memory on both sides). */
export const SNAPSHOT_WINDOW = 4;

export interface RequestMessage {
  readonly id: number;
  readonly op: NativeOp;
  readonly args: readonly unknown[];
}

export type ResponseMessage =
  | { readonly id: number; readonly ok: true; readonly answer: unknown }
  | { readonly id: number; readonly ok: false; readonly code: KvErrorCode; readonly message: string; readonly leaderUrl?: string }
  | { readonly id: number; readonly watch: WatchResponse }
  | { readonly id: number; readonly chunk: Uint8Array };

export interface NativeLimits {
  /** Largest frame a receiver accepts (ws maxPayload) and a sender builds. */
  readonly maxFrameBytes: number;
  /** Largest single request message (etcd's --max-request-bytes plus room for the envelope). */
  readonly maxRequestBytes: number;
}

/** Room for the message envelope (id, op, options) around a request of etcd's maximum size. */
export const ENVELOPE_ALLOWANCE_BYTES = 64 * 1024;

export const DEFAULT_LIMITS: NativeLimits = {
  maxRequestBytes: LIMITS.maxRequestBytes + ENVELOPE_ALLOWANCE_BYTES,
  // Two maximal requests per frame: a batch of small requests splits well below it.
  maxFrameBytes: 2 * (LIMITS.maxRequestBytes + ENVELOPE_ALLOWANCE_BYTES),
};

/** Largest response frame (range results may be large, as in etcd whose default receive limit is unbounded). */
export const DEFAULT_MAX_RESPONSE_FRAME_BYTES = 64 * 1024 * 1024;

// copyBuffers: decoded keys and values get their own memory, so a stored key never keeps a
// whole received frame alive. useRecords off: plain maps, readable by any msgpack decoder.
const packr = new Packr({ useRecords: false, copyBuffers: true });

export function encodeMessage(m: RequestMessage | ResponseMessage): Buffer {
  return packr.pack(m);
}

/**
 * Decodes one frame into its messages, calling `onMessage(value, bytes)` for each (bytes = the
 * message's encoded size, for per-request limits). Throws KvError BAD_REQUEST on bytes that are
 * not a sequence of msgpack values.
 */
export function decodeFrame(frame: Uint8Array, onMessage: (value: unknown, bytes: number) => void): void {
  const values: { value: unknown; bytes: number }[] = [];
  try {
    unpackMultiple(frame, (value: unknown, start?: number, end?: number) => {
      values.push({ value, bytes: start !== undefined && end !== undefined ? end - start : frame.byteLength });
    });
  } catch (e) {
    throw new KvError('BAD_REQUEST', `malformed frame: ${(e as Error).message}`);
  }
  for (const v of values) onMessage(v.value, v.bytes);
}

/**
 * Collects encoded messages and sends them as frames once per event-loop turn (setImmediate),
 * each frame at most maxFrameBytes (a message larger than that alone is sent alone: the caller
 * checks sizes before pushing). Bound: what one turn produces (callers bound their in-flight work).
 */
export class FrameWriter {
  private parts: Buffer[] = [];
  private bytes = 0;
  private scheduled: NodeJS.Immediate | null = null;

  constructor(
    private readonly sendFrame: (frame: Buffer) => void,
    private readonly maxFrameBytes: number,
  ) {}

  push(message: Buffer): void {
    if (this.bytes > 0 && this.bytes + message.byteLength > this.maxFrameBytes) this.flush();
    this.parts.push(message);
    this.bytes += message.byteLength;
    this.scheduled ??= setImmediate(this.flush);
  }

  readonly flush = (): void => {
    if (this.scheduled !== null) {
      clearImmediate(this.scheduled);
      this.scheduled = null;
    }
    if (this.parts.length === 0) return;
    const frame = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    this.sendFrame(frame);
  };

  /** Drops what is queued (the socket is gone). */
  discard(): void {
    if (this.scheduled !== null) clearImmediate(this.scheduled);
    this.scheduled = null;
    this.parts = [];
    this.bytes = 0;
  }
}

export function tooLargeMessage(bytes: number, limit: number): string {
  return `${ETCD_MESSAGES.REQUEST_TOO_LARGE} (${bytes} bytes > ${limit})`;
}

// ---------------------------------------------------------------------------------------------
// Validation of what a peer sent: the server never hands the service a value of the wrong shape,
// the client never trusts a server's frame blindly. Unknown fields are refused (as the JSON
// gateway does), so nothing unexpected reaches the Raft log.

type Check = (v: unknown, path: string) => string | null;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isSafeNonNeg = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

const bytes: Check = (v, p) => (v instanceof Uint8Array ? null : `${p} must be bytes`);
const nonNeg: Check = (v, p) => (isSafeNonNeg(v) ? null : `${p} must be a non-negative integer`);
const bool: Check = (v, p) => (typeof v === 'boolean' ? null : `${p} must be a boolean`);
const str: Check = (v, p) => (typeof v === 'string' ? null : `${p} must be a string`);
const oneOf =
  (...values: readonly string[]): Check =>
  (v, p) =>
    typeof v === 'string' && values.includes(v) ? null : `${p} must be one of ${values.join(', ')}`;
const arrayOf =
  (item: Check, maxItems: number): Check =>
  (v, p) => {
    if (!Array.isArray(v)) return `${p} must be an array`;
    if (v.length > maxItems) return `${p} has more than ${maxItems} items`;
    for (let i = 0; i < v.length; i++) {
      const e = item(v[i], `${p}[${i}]`);
      if (e !== null) return e;
    }
    return null;
  };

function object(required: Readonly<Record<string, Check>>, optional: Readonly<Record<string, Check>> = {}): Check {
  return (v, p) => {
    if (!isObj(v)) return `${p} must be an object`;
    for (const k in v) {
      const value = v[k];
      const check = required[k] ?? optional[k];
      if (check === undefined) return `${p}: unknown field "${k}"`;
      if (value === undefined && optional[k] !== undefined) continue;
      const e = check(value, `${p}.${k}`);
      if (e !== null) return e;
    }
    for (const k in required) if (!(k in v) || v[k] === undefined) return `${p}.${k} is required`;
    return null;
  };
}

const rangeRequest = object(
  { key: bytes },
  {
    rangeEnd: bytes,
    limit: nonNeg,
    revision: nonNeg,
    sortOrder: oneOf('none', 'ascend', 'descend'),
    sortTarget: oneOf('key', 'version', 'create', 'mod', 'value'),
    serializable: bool,
    keysOnly: bool,
    countOnly: bool,
  },
);
const putRequest = object({ key: bytes, value: bytes }, { lease: nonNeg, prevKv: bool, ignoreValue: bool, ignoreLease: bool });
const deleteRangeRequest = object({ key: bytes }, { rangeEnd: bytes, prevKv: bool });

const compareTargets: Readonly<Record<string, [string, Check]>> = {
  version: ['version', nonNeg],
  create: ['createRevision', nonNeg],
  mod: ['modRevision', nonNeg],
  value: ['value', bytes],
  lease: ['lease', nonNeg],
};
const compare: Check = (v, p) => {
  if (!isObj(v)) return `${p} must be an object`;
  const target = compareTargets[String(v['target'])];
  if (target === undefined) return `${p}.target must be one of ${Object.keys(compareTargets).join(', ')}`;
  return object({ result: oneOf('equal', 'greater', 'less', 'not_equal'), key: bytes, target: str, [target[0]]: target[1] }, { rangeEnd: bytes })(v, p);
};

/** Nesting bound for txns (a frame is bounded anyway; this bounds the validator's recursion). */
const MAX_TXN_DEPTH = 16;
const requestOp =
  (depth: number): Check =>
  (v, p) => {
    if (!isObj(v)) return `${p} must be an object`;
    const keys = Object.keys(v);
    if (keys.length !== 1) return `${p} must have exactly one of range, put, deleteRange, txn`;
    const k = keys[0]!;
    const value = v[k];
    switch (k) {
      case 'range':
        return rangeRequest(value, `${p}.range`);
      case 'put':
        return putRequest(value, `${p}.put`);
      case 'deleteRange':
        return deleteRangeRequest(value, `${p}.deleteRange`);
      case 'txn':
        return depth >= MAX_TXN_DEPTH ? `${p}: txns nested deeper than ${MAX_TXN_DEPTH}` : txnRequest(depth + 1)(value, `${p}.txn`);
      default:
        return `${p}: unknown operation "${k}"`;
    }
  };
// The op-count limit (etcd's 128, counted over nested txns) is the service's; this only bounds array sizes.
const MAX_ARRAY_ITEMS = 10_000;
function txnRequest(depth: number): Check {
  return object({
    compare: arrayOf(compare, MAX_ARRAY_ITEMS),
    success: arrayOf(requestOp(depth), MAX_ARRAY_ITEMS),
    failure: arrayOf(requestOp(depth), MAX_ARRAY_ITEMS),
  });
}
const sessionRef = object({ clientId: nonNeg, seq: nonNeg, ackedSeq: nonNeg });
const writeOptions = object({}, { session: sessionRef, timeoutMs: nonNeg });
const readOptions = object({}, { timeoutMs: nonNeg });
const compactRequest = object({ revision: nonNeg }, { physical: bool });
const leaseGrantRequest = object({ ttlSec: nonNeg }, { id: nonNeg });
const watchCreateRequest = object(
  { key: bytes },
  {
    rangeEnd: bytes,
    startRevision: nonNeg,
    progressNotify: bool,
    filters: arrayOf(oneOf('noput', 'nodelete'), 2),
    prevKv: bool,
    watchId: nonNeg,
  },
);
const memberId: Check = (v, p) => (typeof v === 'string' && /^[0-9a-f]{1,16}$/.test(v) ? null : `${p} must be a member id (hex)`);
const urls = arrayOf(str, 64);

/** For each op: the checks of its positional args; a trailing optional arg may be absent or undefined. */
const ARG_CHECKS: Readonly<Record<NativeOp, { readonly required: readonly Check[]; readonly optional: readonly Check[] }>> = {
  range: { required: [rangeRequest], optional: [readOptions] },
  put: { required: [putRequest], optional: [writeOptions] },
  deleteRange: { required: [deleteRangeRequest], optional: [writeOptions] },
  txn: { required: [txnRequest(0)], optional: [writeOptions] },
  compact: { required: [compactRequest], optional: [writeOptions] },
  leaseGrant: { required: [leaseGrantRequest], optional: [writeOptions] },
  leaseRevoke: { required: [nonNeg], optional: [writeOptions] },
  leaseKeepAlive: { required: [nonNeg], optional: [] },
  leaseTimeToLive: { required: [nonNeg, bool], optional: [] },
  leaseLeases: { required: [], optional: [] },
  memberList: { required: [], optional: [] },
  memberAdd: { required: [urls, bool], optional: [] },
  memberRemove: { required: [memberId], optional: [] },
  memberPromote: { required: [memberId], optional: [] },
  status: { required: [], optional: [] },
  registerSession: { required: [], optional: [writeOptions] },
  watch: { required: [watchCreateRequest], optional: [] },
  watchCancel: { required: [nonNeg], optional: [] },
  watchProgress: { required: [nonNeg], optional: [] },
  snapshot: { required: [], optional: [] },
  snapshotAck: { required: [nonNeg], optional: [] },
};

/** Checks a decoded request message: a RequestMessage, or an error (with the id when one was readable). */
export function parseRequest(v: unknown): RequestMessage | { readonly id: number | null; readonly error: string } {
  if (!isObj(v)) return { id: null, error: 'a request must be a map { id, op, args }' };
  const id = v['id'];
  if (!isSafeNonNeg(id)) return { id: null, error: 'request id must be a non-negative integer' };
  const op = v['op'];
  if (typeof op !== 'string' || !OP_SET.has(op)) return { id, error: `unknown op ${JSON.stringify(String(op)).slice(0, 64)}` };
  const args = v['args'];
  if (!Array.isArray(args)) return { id, error: 'args must be an array' };
  const checks = ARG_CHECKS[op as NativeOp];
  const n = checks.required.length;
  if (args.length < n || args.length > n + checks.optional.length) return { id, error: `${op} takes ${n}${checks.optional.length > 0 ? `-${n + checks.optional.length}` : ''} args, got ${args.length}` };
  for (let i = 0; i < args.length; i++) {
    const a: unknown = args[i];
    if (i >= n && a === undefined) continue;
    const check = i < n ? checks.required[i]! : checks.optional[i - n]!;
    const e = check(a, `${op}.args[${i}]`);
    if (e !== null) return { id, error: e };
  }
  return { id, op: op as NativeOp, args };
}

const ERROR_CODES: ReadonlySet<string> = new Set<KvErrorCode>([
  'BAD_REQUEST', 'REQUEST_TOO_LARGE', 'TOO_MANY_OPS', 'DUPLICATE_KEY', 'COMPACTED', 'FUTURE_REV', 'KEY_NOT_FOUND',
  'LEASE_NOT_FOUND', 'LEASE_EXISTS', 'LEASE_TTL_TOO_LARGE', 'MEMBER_NOT_FOUND', 'MEMBER_EXISTS', 'PEER_URL_EXISTS',
  'MEMBER_NOT_LEARNER', 'LEARNER_NOT_READY', 'SESSION_EXPIRED', 'NO_LEADER', 'LEADER_CHANGED', 'TIMEOUT', 'QUEUE_FULL',
  'IN_PROGRESS', 'STOPPED', 'STORAGE_CORRUPT', 'INTERNAL',
]);

/**
 * Checks a decoded response message's envelope (the client trusts a member's answer bodies, which
 * come from the same KvService types). Returns null when the message is not a response.
 */
export function parseResponse(v: unknown): ResponseMessage | null {
  if (!isObj(v) || !isSafeNonNeg(v['id'])) return null;
  if (v['ok'] === true) return 'answer' in v ? (v as ResponseMessage) : null;
  if (v['ok'] === false) {
    const code = v['code'];
    if (typeof code !== 'string' || !ERROR_CODES.has(code) || typeof v['message'] !== 'string') return null;
    if (v['leaderUrl'] !== undefined && typeof v['leaderUrl'] !== 'string') return null;
    return v as ResponseMessage;
  }
  if (isObj(v['watch'])) return v as ResponseMessage;
  if (v['chunk'] instanceof Uint8Array) return v as ResponseMessage;
  return null;
}

/** A response message as the KvError it carries (ok:false), for the client. */
export function errorOf(m: { readonly code: KvErrorCode; readonly message: string; readonly leaderUrl?: string }): KvError {
  return new KvError(m.code, m.message, m.leaderUrl ?? null);
}
