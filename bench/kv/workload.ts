// bench:kv workloads, the pure part: which key a worker touches, the etcd v3 JSON bodies every
// system receives, and the checks every answer must pass before it counts. No I/O here, so it is
// unit-tested (workload.test.ts); json-access.ts and native-access.ts do the sending.

/** The measured operations (CLI names). */
export const KV_OPS = ['put', 'get', 'sget', 'txn'] as const;
export type KvOp = (typeof KV_OPS)[number];

export const KV_OP_LABELS: Readonly<Record<KvOp, string>> = {
  put: 'put',
  get: 'get (linearizable)',
  sget: 'get (serializable)',
  txn: 'txn (mod_revision CAS + put)',
};

export function isKvOp(value: string): value is KvOp {
  return (KV_OPS as readonly string[]).includes(value);
}

/** Parses "put,get,..." (no duplicates, at least one). */
export function parseOps(list: string): KvOp[] {
  const ops = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (ops.length === 0) throw new RangeError(`no operation in "${list}"; choose from ${KV_OPS.join(',')}`);
  const out: KvOp[] = [];
  for (const op of ops) {
    if (!isKvOp(op)) throw new RangeError(`unknown operation "${op}"; choose from ${KV_OPS.join(',')}`);
    if (out.includes(op)) throw new RangeError(`operation "${op}" given twice`);
    out.push(op);
  }
  return out;
}

/** The bench's keys: `bench/kv/0000` .. (zero-padded so they sort in index order). */
export const KEY_PREFIX = 'bench/kv/';

export function keyName(index: number, keyCount: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= keyCount) throw new RangeError(`key index ${index} outside [0, ${keyCount})`);
  return `${KEY_PREFIX}${String(index).padStart(String(keyCount - 1).length, '0')}`;
}

/**
 * The key index of a worker's seq-th operation. Worker w owns the keys k with k mod clients = w
 * and cycles through them, so no two workers ever write the same key: a compare-and-put on
 * mod_revision then only fails if a write was lost or applied twice (counted as an error).
 * Requires clients <= keyCount (every worker owns at least one key).
 */
export function ownedKeyIndex(worker: number, seq: number, clients: number, keyCount: number): number {
  if (!Number.isInteger(clients) || clients < 1 || clients > keyCount) {
    throw new RangeError(`clients must be within [1, ${keyCount}] (one key per client at least), got ${clients}`);
  }
  if (!Number.isInteger(worker) || worker < 0 || worker >= clients) throw new RangeError(`worker ${worker} outside [0, ${clients})`);
  const owned = Math.floor((keyCount - 1 - worker) / clients) + 1;
  return worker + clients * (seq % owned);
}

/** etcd's prefix end: the prefix with its last byte below 0xff incremented, trailing 0xff bytes dropped. */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Uint8Array.of(0); // every byte was 0xff: etcd's "to the end of the keyspace"
}

const b64 = (bytes: Uint8Array | string): string =>
  (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('base64');

// The JSON bodies (etcd 3.4's gateway: proto field names, bytes base64, int64 as decimal strings).

export function putBody(key: string, valueB64: string): string {
  return `{"key":"${b64(key)}","value":"${valueB64}"}`;
}

export function getBody(key: string, serializable: boolean): string {
  return serializable ? `{"key":"${b64(key)}","serializable":true}` : `{"key":"${b64(key)}"}`;
}

/** Every key under the prefix, for reading the current mod_revisions before a txn cell. */
export function prefixRangeBody(prefix: string): string {
  const p = Buffer.from(prefix, 'utf8');
  return `{"key":"${b64(p)}","range_end":"${b64(prefixEnd(p))}"}`;
}

/** Kubernetes' update: if mod_revision(key) = expected then put else read the key. */
export function txnBody(key: string, expectedModRevision: number, valueB64: string): string {
  const k = b64(key);
  return (
    `{"compare":[{"key":"${k}","target":"MOD","result":"EQUAL","mod_revision":"${expectedModRevision}"}],` +
    `"success":[{"request_put":{"key":"${k}","value":"${valueB64}"}}],` +
    `"failure":[{"request_range":{"key":"${k}"}}]}`
  );
}

// Checks of the answers. Every answer is checked; anything unexpected is an error with a code.

export type Checked<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly code: string; readonly message: string };

const fail = (code: string, message: string): { readonly ok: false; readonly code: string; readonly message: string } => ({
  ok: false,
  code,
  message,
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An int64 from JSON (decimal string, as grpc-gateway writes it, or a number); absent = 0 (proto3 default). */
export function int64(value: unknown): number | null {
  if (value === undefined) return 0;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : null;
  }
  return null;
}

function headerRevision(body: Record<string, unknown>): Checked<number> {
  if (!isRecord(body.header)) return fail('BAD_ANSWER', 'no header');
  const rev = int64(body.header.revision);
  if (rev === null || rev < 1) return fail('BAD_ANSWER', `bad header.revision ${JSON.stringify(body.header.revision)}`);
  return { ok: true, value: rev };
}

/** A put's answer: its header names the revision the put created. */
export function checkPut(body: unknown): Checked<number> {
  if (!isRecord(body)) return fail('BAD_ANSWER', 'answer is not an object');
  return headerRevision(body);
}

/** A single-key get: exactly that key, with a value of the expected length. */
export function checkGet(body: unknown, key: string, valueBytes: number): Checked<number> {
  if (!isRecord(body)) return fail('BAD_ANSWER', 'answer is not an object');
  const rev = headerRevision(body);
  if (!rev.ok) return rev;
  const kvs = body.kvs;
  if (!Array.isArray(kvs) || kvs.length !== 1 || int64(body.count) !== 1) {
    return fail('MISSING_KEY', `expected 1 kv for ${key}, got count ${JSON.stringify(body.count)}`);
  }
  const kv: unknown = kvs[0];
  if (!isRecord(kv) || kv.key !== b64(key)) return fail('BAD_ANSWER', `answer names another key than ${key}`);
  if (typeof kv.value !== 'string' || Buffer.byteLength(kv.value, 'base64') !== valueBytes) {
    return fail('BAD_VALUE', `value of ${key} is not ${valueBytes} bytes`);
  }
  return rev;
}

/** key -> mod_revision of every kv in a range answer; the count must match the kvs returned. */
export function checkModRevisions(body: unknown, expectedCount: number): Checked<ReadonlyMap<string, number>> {
  if (!isRecord(body) || !Array.isArray(body.kvs)) return fail('BAD_ANSWER', 'range answer has no kvs');
  if (body.kvs.length !== expectedCount || int64(body.count) !== expectedCount) {
    return fail('MISSING_KEY', `expected ${expectedCount} keys, got ${body.kvs.length} (count ${JSON.stringify(body.count)})`);
  }
  const out = new Map<string, number>();
  for (const kv of body.kvs as unknown[]) {
    if (!isRecord(kv) || typeof kv.key !== 'string') return fail('BAD_ANSWER', 'kv without key');
    const mod = int64(kv.mod_revision);
    if (mod === null || mod < 1) return fail('BAD_ANSWER', `bad mod_revision ${JSON.stringify(kv.mod_revision)}`);
    out.set(Buffer.from(kv.key, 'base64').toString('utf8'), mod);
  }
  return { ok: true, value: out };
}

/** A txn's outcome: the put happened (at the header's revision) or the compare failed (the key's current mod_revision). */
export type TxnOutcome = { readonly kind: 'applied'; readonly revision: number } | { readonly kind: 'conflict'; readonly modRevision: number };

export function checkTxn(body: unknown): Checked<TxnOutcome> {
  if (!isRecord(body)) return fail('BAD_ANSWER', 'answer is not an object');
  const rev = headerRevision(body);
  if (!rev.ok) return rev;
  const responses = body.responses;
  if (!Array.isArray(responses) || responses.length !== 1 || !isRecord(responses[0])) {
    return fail('BAD_ANSWER', 'txn answer needs exactly one response');
  }
  const response = responses[0];
  if (body.succeeded === true) {
    if (!isRecord(response.response_put)) return fail('BAD_ANSWER', 'succeeded txn without response_put');
    return { ok: true, value: { kind: 'applied', revision: rev.value } };
  }
  const range = response.response_range;
  if (!isRecord(range) || !Array.isArray(range.kvs) || range.kvs.length !== 1 || !isRecord(range.kvs[0])) {
    return fail('BAD_ANSWER', 'failed txn without the key in response_range');
  }
  const mod = int64(range.kvs[0].mod_revision);
  if (mod === null || mod < 1) return fail('BAD_ANSWER', 'failed txn: bad mod_revision');
  return { ok: true, value: { kind: 'conflict', modRevision: mod } };
}
