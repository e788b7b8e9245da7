// JsonKvClient: one member's etcd v3 JSON API (POST /v3/kv/range, /v3/kv/put, /v3/kv/txn,
// /v3/maintenance/status), as the chaos workloads need it. Unlike KvClient (packages/kvstore), it
// never retries, never moves to another member and has no session: one call is one HTTP request
// with a deadline, and what came back is classified for the history (Jepsen's ok / fail / info):
//
//   ok    the member answered 200.
//   fail  the call certainly had no effect:
//           - any failed read (a read changes nothing, so it is simply left out of the history);
//           - a 4xx refusal (bad request, QUEUE_FULL's 429 back-pressure, ...): refused before proposing;
//           - NO_LEADER (503 "etcdserver: no leader"): the member refuses before proposing, and a
//             follower reports it only when the forward to the leader could not even be sent
//             (packages/kvstore/src/server/peer.ts);
//           - connection refused: nothing was sent.
//   info  it may or may not have taken effect: no answer within requestTimeoutMs, a connection
//         lost mid-call, LEADER_CHANGED, TIMEOUT, STOPPED and any other 5xx.
//
// Keys and values are strings here (UTF-8; base64 on the wire is the codec's business). The request
// bodies are encoded and the answers decoded by the store's own codec (`etcdJson`), so this client
// speaks exactly the gateway's dialect. HTTP keep-alive comes from fetch's shared connection pool.

import {
  ETCD_MESSAGES,
  etcdJson,
  prefixRange,
  type Compare,
  type CompareResult,
  type KeyValue,
  type KvErrorCode,
  type RequestOp,
  type ResponseOp,
} from '@ballot/kvstore';
import type { CallOutcome } from './types.js';

export interface JsonKvClientOptions {
  /** Deadline of one call (one HTTP request, body included); past it the outcome is info (fail for a read). */
  readonly requestTimeoutMs: number;
}

/** One key as read: strings for key and value, and etcd's per-key revisions. */
export interface KvEntry {
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision: number;
  /** Puts since the key was (re)created: 0 only for an absent key. */
  readonly version: number;
}

export interface GetResult {
  /** null when the key is absent. */
  readonly value: string | null;
  /** 0 when absent. */
  readonly modRevision: number;
  readonly version: number;
  /** The store's revision when it answered (response header). */
  readonly revision: number;
  /** The member said the answer may be stale (a serializable read). */
  readonly stale: boolean;
}

export interface RangeEntries {
  readonly entries: readonly KvEntry[];
  readonly revision: number;
  readonly stale: boolean;
}

export interface WriteResult {
  /** The store's revision after the write (response header). */
  readonly revision: number;
}

/** One comparison of a txn guard (etcd's Compare), on one key. `result` defaults to 'equal'. */
export type TxnCompare =
  | { readonly key: string; readonly target: 'value'; readonly value: string; readonly result?: CompareResult }
  | { readonly key: string; readonly target: 'mod'; readonly modRevision: number; readonly result?: CompareResult }
  | { readonly key: string; readonly target: 'version'; readonly version: number; readonly result?: CompareResult };

/** One operation of a txn branch. */
export type TxnOp =
  | { readonly type: 'put'; readonly key: string; readonly value: string }
  | { readonly type: 'get'; readonly key: string }
  | { readonly type: 'delete'; readonly key: string };

/** The answer to one TxnOp, in branch order. */
export type TxnOpResult =
  | { readonly type: 'put' }
  | { readonly type: 'get'; readonly entries: readonly KvEntry[] }
  | { readonly type: 'delete'; readonly deleted: number };

export interface TxnOutcome {
  readonly succeeded: boolean;
  readonly results: readonly TxnOpResult[];
  readonly revision: number;
}

export interface MemberStatus {
  /** This member's id (etcd's decimal uint64 string). */
  readonly memberId: string;
  /** The leader's id as this member knows it (decimal), null when none. */
  readonly leader: string | null;
  readonly raftTerm: number;
  readonly raftIndex: number;
  readonly raftAppliedIndex: number;
  readonly revision: number;
  /** Why the member cannot serve, if it cannot. */
  readonly errors: readonly string[];
}

/** The parts of a failed call that decide its classification. */
export type CallFailure =
  /** The member answered with an HTTP error. */
  | { readonly kind: 'http'; readonly status: number; readonly message: string }
  /** No answer within the deadline. */
  | { readonly kind: 'timeout'; readonly timeoutMs: number }
  /** The connection could not be made (nothing was sent). */
  | { readonly kind: 'refused'; readonly detail: string }
  /** The connection broke, or the answer was unreadable: the request may have arrived. */
  | { readonly kind: 'lost'; readonly detail: string };

/** Socket error codes that prove the request was never sent (the connection was not established). */
const NOT_SENT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

/** Codes recognised from the error body's message (etcd's wording) or the HTTP status. */
const MESSAGE_CODES = ['NO_LEADER', 'LEADER_CHANGED', 'TIMEOUT'] as const satisfies readonly (keyof typeof ETCD_MESSAGES)[];

/** The store's error code behind an HTTP error answer, when it can be told; null otherwise. */
export function errorCodeOf(status: number, message: string): KvErrorCode | null {
  if (status === 429) return 'QUEUE_FULL';
  for (const code of MESSAGE_CODES) if (message.startsWith(ETCD_MESSAGES[code])) return code;
  if (status === 504) return 'TIMEOUT';
  return null;
}

/**
 * Jepsen's classification of a failed call (see the top of this file): 'fail' when it certainly had
 * no effect, 'info' when it may have. The error text says the code (when known) and the message.
 */
export function classifyFailure(failure: CallFailure, isRead: boolean): CallOutcome<never> {
  let error: string;
  let certain: boolean;
  switch (failure.kind) {
    case 'http': {
      const code = errorCodeOf(failure.status, failure.message);
      error = `${code ?? `HTTP ${failure.status}`}: ${failure.message}`;
      certain = (failure.status >= 400 && failure.status < 500) || code === 'NO_LEADER' || code === 'QUEUE_FULL';
      break;
    }
    case 'timeout':
      error = `TIMEOUT: no answer within ${failure.timeoutMs} ms`;
      certain = false;
      break;
    case 'refused':
      error = `REFUSED: ${failure.detail}`;
      certain = true;
      break;
    case 'lost':
      error = `LOST: ${failure.detail}`;
      certain = false;
      break;
  }
  return certain || isRead ? { type: 'fail', error } : { type: 'info', error };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (s: string): Uint8Array => encoder.encode(s);
const text = (b: Uint8Array): string => decoder.decode(b);

function entryOf(kv: KeyValue): KvEntry {
  return { key: text(kv.key), value: text(kv.value), modRevision: kv.modRevision, createRevision: kv.createRevision, version: kv.version };
}

function compareOf(c: TxnCompare): Compare {
  const base = { result: c.result ?? 'equal', key: bytes(c.key) } as const;
  switch (c.target) {
    case 'value':
      return { ...base, target: 'value', value: bytes(c.value) };
    case 'mod':
      return { ...base, target: 'mod', modRevision: c.modRevision };
    case 'version':
      return { ...base, target: 'version', version: c.version };
  }
}

function requestOpOf(op: TxnOp): RequestOp {
  switch (op.type) {
    case 'put':
      return { put: { key: bytes(op.key), value: bytes(op.value) } };
    case 'get':
      return { range: { key: bytes(op.key) } };
    case 'delete':
      return { deleteRange: { key: bytes(op.key) } };
  }
}

function resultOf(r: ResponseOp): TxnOpResult {
  if ('range' in r) return { type: 'get', entries: r.range.kvs.map(entryOf) };
  if ('deleteRange' in r) return { type: 'delete', deleted: r.deleteRange.deleted };
  return { type: 'put' };
}

/** A decimal id string, or null for absent / "0". */
function idOrNull(v: unknown): string | null {
  return typeof v === 'string' && /^[0-9]+$/.test(v) && v !== '0' ? v : null;
}

function intField(o: Readonly<Record<string, unknown>>, name: string): number {
  const v = o[name];
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : 0;
  return Number.isSafeInteger(n) ? n : 0;
}

interface RawAnswer {
  readonly body: unknown;
  readonly stale: boolean;
}

/** One member's etcd v3 JSON API; every method is one attempt, classified (never throws). */
export class JsonKvClient {
  readonly requestTimeoutMs: number;

  constructor(
    /** The member's client URL, e.g. http://127.0.0.1:2379 (no trailing slash needed). */
    readonly endpoint: string,
    options: JsonKvClientOptions,
  ) {
    if (!(options.requestTimeoutMs > 0)) throw new RangeError(`requestTimeoutMs must be positive, got ${options.requestTimeoutMs}`);
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.endpoint = endpoint.replace(/\/+$/, '');
  }

  /** One key; value null when absent. `serializable`: answered from the member's local state (may be stale). */
  async get(key: string, options: { readonly serializable?: boolean } = {}): Promise<CallOutcome<GetResult>> {
    const r = await this.call('/v3/kv/range', etcdJson.encodeRangeRequest({ key: bytes(key), serializable: options.serializable === true }), true);
    if (r.type !== 'ok') return r;
    return this.decode(true, () => {
      const header = etcdJson.decodeHeader((r.value.body as Record<string, unknown>)['header']);
      const kv = etcdJson.decodeRangeResult(r.value.body).kvs[0];
      return {
        value: kv === undefined ? null : text(kv.value),
        modRevision: kv?.modRevision ?? 0,
        version: kv?.version ?? 0,
        revision: header.revision,
        stale: r.value.stale,
      };
    });
  }

  /** Every key starting with `prefix`, in key order. */
  async range(prefix: string, options: { readonly serializable?: boolean } = {}): Promise<CallOutcome<RangeEntries>> {
    const request = etcdJson.encodeRangeRequest({ ...prefixRange(prefix), serializable: options.serializable === true });
    const r = await this.call('/v3/kv/range', request, true);
    if (r.type !== 'ok') return r;
    return this.decode(true, () => ({
      entries: etcdJson.decodeRangeResult(r.value.body).kvs.map(entryOf),
      revision: etcdJson.decodeHeader((r.value.body as Record<string, unknown>)['header']).revision,
      stale: r.value.stale,
    }));
  }

  async put(key: string, value: string): Promise<CallOutcome<WriteResult>> {
    const r = await this.call('/v3/kv/put', etcdJson.encodePutRequest({ key: bytes(key), value: bytes(value) }), false);
    if (r.type !== 'ok') return r;
    return this.decode(false, () => ({ revision: etcdJson.decodeHeader((r.value.body as Record<string, unknown>)['header']).revision }));
  }

  /** etcd's txn: if every compare holds, run `success`, else `failure`. ok whichever branch ran. */
  async txn(compares: readonly TxnCompare[], success: readonly TxnOp[], failure: readonly TxnOp[] = []): Promise<CallOutcome<TxnOutcome>> {
    const request = etcdJson.encodeTxnRequest({
      compare: compares.map(compareOf),
      success: success.map(requestOpOf),
      failure: failure.map(requestOpOf),
    });
    const r = await this.call('/v3/kv/txn', request, false);
    if (r.type !== 'ok') return r;
    return this.decode(false, () => {
      const t = etcdJson.decodeTxnResult(r.value.body);
      return {
        succeeded: t.succeeded,
        results: t.responses.map(resultOf),
        revision: etcdJson.decodeHeader((r.value.body as Record<string, unknown>)['header']).revision,
      };
    });
  }

  /**
   * Compare-and-set: `next` only if the key holds `expected` (null: only if the key is absent, by
   * version == 0, since etcd's value compare on an absent key is false). ok with true when it was
   * set, ok with false when the comparison failed (nothing written).
   */
  async cas(key: string, expected: string | null, next: string): Promise<CallOutcome<boolean>> {
    const compare: TxnCompare = expected === null ? { key, target: 'version', version: 0 } : { key, target: 'value', value: expected };
    const r = await this.txn([compare], [{ type: 'put', key, value: next }]);
    return r.type === 'ok' ? { type: 'ok', value: r.value.succeeded } : r;
  }

  /** /v3/maintenance/status: who this member thinks leads, its Raft indexes. */
  async status(): Promise<CallOutcome<MemberStatus>> {
    const r = await this.call('/v3/maintenance/status', {}, true);
    if (r.type !== 'ok') return r;
    return this.decode(true, () => {
      const o = (r.value.body ?? {}) as Record<string, unknown>;
      const h = (o['header'] ?? {}) as Record<string, unknown>;
      const errors = Array.isArray(o['errors']) ? (o['errors'] as unknown[]).map(String) : [];
      return {
        memberId: idOrNull(h['member_id']) ?? '0',
        leader: idOrNull(o['leader']),
        raftTerm: intField(o, 'raftTerm'),
        raftIndex: intField(o, 'raftIndex'),
        raftAppliedIndex: intField(o, 'raftAppliedIndex'),
        revision: intField(h, 'revision'),
        errors,
      };
    });
  }

  /** A 200 answer that cannot be decoded: the write reached the member, so info (a read: fail). */
  private decode<T>(isRead: boolean, f: () => T): CallOutcome<T> {
    try {
      return { type: 'ok', value: f() };
    } catch (e) {
      return classifyFailure({ kind: 'lost', detail: `unreadable answer: ${(e as Error).message}` }, isRead);
    }
  }

  /** One POST with the deadline; the body parsed as JSON. */
  private async call(path: string, body: unknown, isRead: boolean): Promise<CallOutcome<RawAnswer>> {
    const timeoutMs = this.requestTimeoutMs;
    let answerText: string;
    let status: number;
    let stale: boolean;
    try {
      const res = await fetch(`${this.endpoint}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      stale = res.headers.get('ballot-read-consistency') === 'serializable';
      answerText = await res.text();
    } catch (e) {
      return classifyFailure(failureOf(e, timeoutMs), isRead);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(answerText);
    } catch {
      parsed = undefined;
    }
    if (status !== 200) {
      const o = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
      const message = typeof o['message'] === 'string' ? o['message'] : typeof o['error'] === 'string' ? o['error'] : answerText.slice(0, 200);
      return classifyFailure({ kind: 'http', status, message }, isRead);
    }
    if (typeof parsed !== 'object' || parsed === null) {
      return classifyFailure({ kind: 'lost', detail: `a 200 answer that is not a JSON object: ${answerText.slice(0, 100)}` }, isRead);
    }
    return { type: 'ok', value: { body: parsed, stale } };
  }
}

/** What a thrown fetch error means: deadline, never connected, or lost mid-call. */
export function failureOf(e: unknown, timeoutMs: number): CallFailure {
  const err = e as { name?: unknown; message?: unknown; cause?: unknown; code?: unknown };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return { kind: 'timeout', timeoutMs };
  // fetch (undici) reports socket errors as TypeError('fetch failed') with the cause attached.
  const cause = (err.cause ?? err) as { code?: unknown; message?: unknown; errors?: unknown };
  const codes = [cause.code, ...(Array.isArray(cause.errors) ? (cause.errors as { code?: unknown }[]).map((x) => x.code) : [])];
  const code = codes.find((c): c is string => typeof c === 'string');
  const detail = `${code ?? (typeof err.name === 'string' ? err.name : 'error')} ${String(cause.message ?? err.message ?? e)}`.trim();
  if (code !== undefined && codes.every((c) => typeof c === 'string' && NOT_SENT_CODES.has(c))) return { kind: 'refused', detail };
  return { kind: 'lost', detail };
}
