// The history a checker reads: Jepsen-style JSON Lines, one event per line.
//
//   {"process":3,"type":"invoke","f":"write","key":"k1","value":5,"time":1200}
//   {"process":3,"type":"ok","f":"write","key":"k1","value":5,"time":3400}
//
// Every operation is an `invoke` followed, on the same process, by one completion:
//   ok   - it happened; a read's ok value is the value read (null when the key was absent);
//   fail - it certainly did NOT happen (e.g. a compare-and-set whose comparison failed);
//   info - indeterminate (timeout, connection lost): it may or may not have happened, and if it
//          did, it took effect at some moment after its invoke - possibly long after.
// An invoke with no completion at all (the client died) is treated like `info`.
// A compare-and-set's value is `[expected, new]`.
//
// Two families of functions, one per model (`ballot check --model`):
//   register: read, write, cas           (as above)
//   kv:       put, get, delete, txn      (the store's operations on one key)
//     put    invoke value: the value to store. The ok value is not checked.
//     get    ok value: the value read, null when the key is absent.
//     delete ok value: optional; when a number it is the count deleted (1 or 0) and is checked.
//     txn    one key, etcd-style compare/then/else. Invoke value:
//              {"compare": {"value": V} | {"version": N}, "then": [KvStep...], "else": [KvStep...]}
//            where a KvStep is {"f":"put","value":V} | {"f":"get"} | {"f":"delete"}.
//            "compare" is an equality test of the key's current value (null = absent) or of its
//            version (etcd's per-key version: 0 when absent, +1 per put, back to 0 on delete).
//            (etcd's mod_revision is a global counter: it cannot be checked key by key, so it is
//            not offered.) The ok value is {"succeeded": bool, "results": [...]} with one result
//            per step of the branch taken (a get's value; null for put; a delete's count), or
//            "results" omitted/null when the client did not record them. A txn whose compare
//            was false is `ok` with succeeded false - `fail` still means "did not happen".
//
// Real-time order is the order of lines: operation A precedes B when A's completion line comes
// before B's invoke line. `time` (nanoseconds) is kept for display only.

/** A JSON value as found in a history (register contents, read results). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [k: string]: JsonValue };

export type EventType = 'invoke' | 'ok' | 'fail' | 'info';
export type RegisterFunction = 'read' | 'write' | 'cas';
export type KvFunction = 'put' | 'get' | 'delete' | 'txn';
export type OpFunction = RegisterFunction | KvFunction;

/** One step of a txn branch (see the format above). */
export type KvStep = { readonly f: 'put'; readonly value: JsonValue } | { readonly f: 'get' } | { readonly f: 'delete' };
/** A txn on one key: if compare holds, run `then`, else `else`. */
export interface KvTxn {
  readonly compare: { readonly target: 'value'; readonly value: JsonValue } | { readonly target: 'version'; readonly version: number };
  readonly then: readonly KvStep[];
  readonly else: readonly KvStep[];
}
/** What a txn returned: which branch ran, and (when recorded) one result per step of it. */
export interface KvTxnOutput {
  readonly succeeded: boolean;
  readonly results: readonly JsonValue[] | null;
}

/** One line of a history file, validated. `line` is 1-based. */
export interface HistoryEvent {
  readonly process: number;
  readonly type: EventType;
  readonly f: OpFunction;
  readonly key: string;
  readonly value: JsonValue;
  readonly timeNs: number;
  readonly line: number;
}

export type HistoryErrorCode =
  | 'malformed-json' // the line is not JSON
  | 'bad-field' // a field is missing or has the wrong type
  | 'no-open-invoke' // an ok/fail/info on a process with no operation open
  | 'already-open' // an invoke on a process whose previous operation has not completed
  | 'mismatched-completion'; // the completion names another f or key than its invoke

/** Bad input. `line` is the 1-based line of the history that is wrong. */
export class HistoryError extends Error {
  override readonly name = 'HistoryError';
  constructor(
    readonly code: HistoryErrorCode,
    readonly line: number,
    detail: string,
  ) {
    super(`line ${line}: ${detail}`);
  }
}

/** Fields every operation has, whatever its function. */
interface OpBase {
  /** Position among the history's (non-failed) operations, 0-based; unique. */
  readonly id: number;
  readonly process: number;
  readonly key: string;
  /** 'ok': it happened, between invoke and completion. 'info': it may have happened, any time after invoke. */
  readonly status: 'ok' | 'info';
  /** Index of the invoke event in the history (real-time order). */
  readonly invokeIndex: number;
  /** Index of the completion event; Infinity when indeterminate (it may take effect arbitrarily late). */
  readonly completeIndex: number;
  readonly invokeLine: number;
  /** null when the operation never completed. */
  readonly completeLine: number | null;
  readonly invokeTimeNs: number;
  readonly completeTimeNs: number | null;
}

/** A paired operation. A read's `output` is undefined when it is indeterminate (nothing was observed). */
export type Operation =
  | (OpBase & { readonly f: 'read'; readonly output: JsonValue | undefined })
  | (OpBase & { readonly f: 'write'; readonly value: JsonValue })
  | (OpBase & { readonly f: 'cas'; readonly expected: JsonValue; readonly next: JsonValue })
  | (OpBase & { readonly f: 'put'; readonly value: JsonValue })
  | (OpBase & { readonly f: 'get'; readonly output: JsonValue | undefined })
  /** output: the deleted count when recorded as a number, else undefined (not checked). */
  | (OpBase & { readonly f: 'delete'; readonly output: number | undefined })
  | (OpBase & { readonly f: 'txn'; readonly txn: KvTxn; readonly output: KvTxnOutput | undefined });

const EVENT_TYPES: ReadonlySet<string> = new Set<EventType>(['invoke', 'ok', 'fail', 'info']);
const OP_FUNCTIONS: ReadonlySet<string> = new Set<OpFunction>(['read', 'write', 'cas', 'put', 'get', 'delete', 'txn']);

/** Validates a txn invoke value; returns an error detail, or the txn. */
export function parseTxn(value: JsonValue): KvTxn | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'a txn invoke\'s "value" must be {compare, then, else}';
  const o = value as { readonly [k: string]: JsonValue };
  const c = o['compare'];
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'a txn\'s "compare" must be {"value": V} or {"version": N}';
  const cmp = c as { readonly [k: string]: JsonValue };
  let compare: KvTxn['compare'];
  if (Object.keys(cmp).length === 1 && 'value' in cmp) compare = { target: 'value', value: cmp['value'] ?? null };
  else if (Object.keys(cmp).length === 1 && typeof cmp['version'] === 'number' && Number.isSafeInteger(cmp['version'])) {
    compare = { target: 'version', version: cmp['version'] };
  } else return 'a txn\'s "compare" must be {"value": V} or {"version": N}';
  const steps = (name: 'then' | 'else'): KvStep[] | string => {
    const list = o[name] ?? [];
    if (!Array.isArray(list)) return `a txn's "${name}" must be an array of steps`;
    const out: KvStep[] = [];
    for (const s of list as readonly JsonValue[]) {
      const step = (typeof s === 'object' && s !== null && !Array.isArray(s) ? s : {}) as { readonly [k: string]: JsonValue };
      if (step['f'] === 'put') out.push({ f: 'put', value: step['value'] ?? null });
      else if (step['f'] === 'get' || step['f'] === 'delete') out.push({ f: step['f'] });
      else return `a txn step must be {"f":"put","value":V}, {"f":"get"} or {"f":"delete"}`;
    }
    return out;
  };
  const then = steps('then');
  if (typeof then === 'string') return then;
  const els = steps('else');
  if (typeof els === 'string') return els;
  return { compare, then, else: els };
}

/** A txn's ok value, or undefined when it is not {succeeded, results?}. */
function parseTxnOutput(value: JsonValue): KvTxnOutput | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as { readonly [k: string]: JsonValue };
  const succeeded = o['succeeded'];
  const results = o['results'] ?? null;
  if (typeof succeeded !== 'boolean' || (results !== null && !Array.isArray(results))) return undefined;
  return { succeeded, results: results as readonly JsonValue[] | null };
}

/** Parses one line (1-based `line` for error messages). */
export function parseEvent(text: string, line: number): HistoryEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new HistoryError('malformed-json', line, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new HistoryError('bad-field', line, 'an event must be a JSON object');
  }
  const o = raw as Record<string, unknown>;
  const process = o['process'];
  if (typeof process !== 'number' || !Number.isSafeInteger(process) || process < 0) {
    throw new HistoryError('bad-field', line, '"process" must be a non-negative integer');
  }
  const type = o['type'];
  if (typeof type !== 'string' || !EVENT_TYPES.has(type)) {
    throw new HistoryError('bad-field', line, '"type" must be one of invoke, ok, fail, info');
  }
  const f = o['f'];
  if (typeof f !== 'string' || !OP_FUNCTIONS.has(f)) {
    throw new HistoryError('bad-field', line, '"f" must be one of read, write, cas, put, get, delete, txn');
  }
  const key = o['key'];
  if (typeof key !== 'string') throw new HistoryError('bad-field', line, '"key" must be a string');
  const time = o['time'];
  if (typeof time !== 'number' || !Number.isFinite(time)) {
    throw new HistoryError('bad-field', line, '"time" must be a number (nanoseconds)');
  }
  const value = (o['value'] ?? null) as JsonValue;
  if (f === 'cas' && type === 'invoke' && !(Array.isArray(value) && value.length === 2)) {
    throw new HistoryError('bad-field', line, 'a cas invoke\'s "value" must be [expected, new]');
  }
  if (f === 'txn' && type === 'invoke') {
    const txn = parseTxn(value);
    if (typeof txn === 'string') throw new HistoryError('bad-field', line, txn);
  }
  if (f === 'txn' && type === 'ok' && parseTxnOutput(value) === undefined) {
    throw new HistoryError('bad-field', line, 'a txn\'s ok "value" must be {"succeeded": bool, "results": [...]|null}');
  }
  return { process, type: type as EventType, f: f as OpFunction, key, value, timeNs: time, line };
}

/** Parses a whole JSON Lines text; blank lines are skipped (but still counted for line numbers). */
export function parseHistory(text: string): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] ?? '';
    if (l.trim() === '') continue;
    events.push(parseEvent(l, i + 1));
  }
  return events;
}

/**
 * Pairs each invoke with its process's next completion. Failed operations are dropped (they did
 * not happen); info completions and missing completions become indeterminate operations.
 */
export function pairOperations(events: readonly HistoryEvent[]): Operation[] {
  const open = new Map<number, { readonly event: HistoryEvent; readonly index: number }>();
  const ops: Operation[] = [];
  const emit = (inv: HistoryEvent, invokeIndex: number, done: HistoryEvent | null, doneIndex: number): void => {
    const base: OpBase = {
      id: ops.length,
      process: inv.process,
      key: inv.key,
      status: done !== null && done.type === 'ok' ? 'ok' : 'info',
      invokeIndex,
      completeIndex: done !== null && done.type === 'ok' ? doneIndex : Infinity,
      invokeLine: inv.line,
      completeLine: done === null ? null : done.line,
      invokeTimeNs: inv.timeNs,
      completeTimeNs: done === null ? null : done.timeNs,
    };
    if (inv.f === 'read') {
      ops.push({ ...base, f: 'read', output: done !== null && done.type === 'ok' ? done.value : undefined });
    } else if (inv.f === 'write') {
      ops.push({ ...base, f: 'write', value: inv.value });
    } else if (inv.f === 'put') {
      ops.push({ ...base, f: 'put', value: inv.value });
    } else if (inv.f === 'get') {
      ops.push({ ...base, f: 'get', output: done !== null && done.type === 'ok' ? done.value : undefined });
    } else if (inv.f === 'delete') {
      const v = done !== null && done.type === 'ok' ? done.value : undefined;
      ops.push({ ...base, f: 'delete', output: typeof v === 'number' ? v : undefined });
    } else if (inv.f === 'txn') {
      const txn = parseTxn(inv.value) as KvTxn; // validated by parseEvent
      ops.push({ ...base, f: 'txn', txn, output: done !== null && done.type === 'ok' ? parseTxnOutput(done.value) : undefined });
    } else {
      const pair = inv.value as readonly JsonValue[];
      ops.push({ ...base, f: 'cas', expected: pair[0] ?? null, next: pair[1] ?? null });
    }
  };
  events.forEach((e, index) => {
    const pending = open.get(e.process);
    if (e.type === 'invoke') {
      if (pending !== undefined) {
        throw new HistoryError(
          'already-open',
          e.line,
          `process ${e.process} invokes again while its operation from line ${pending.event.line} is still open`,
        );
      }
      open.set(e.process, { event: e, index });
      return;
    }
    if (pending === undefined) {
      throw new HistoryError('no-open-invoke', e.line, `an "${e.type}" on process ${e.process} without an open invoke`);
    }
    if (pending.event.f !== e.f || pending.event.key !== e.key) {
      throw new HistoryError(
        'mismatched-completion',
        e.line,
        `completion ${e.f} ${JSON.stringify(e.key)} does not match the invoke on line ${pending.event.line} (${pending.event.f} ${JSON.stringify(pending.event.key)})`,
      );
    }
    open.delete(e.process);
    if (e.type !== 'fail') emit(pending.event, pending.index, e, index);
  });
  // Operations still open at the end never returned: indeterminate.
  for (const p of [...open.values()].sort((a, b) => a.index - b.index)) emit(p.event, p.index, null, Infinity);
  // Keep ids in invoke order so that sub-histories read naturally.
  ops.sort((a, b) => a.invokeIndex - b.invokeIndex);
  return ops.map((op, id) => ({ ...op, id }));
}

/** Renders events back to JSON Lines (the inverse of parseHistory, for generated histories). */
export function formatHistory(events: readonly Omit<HistoryEvent, 'line'>[]): string {
  return events
    .map((e) => JSON.stringify({ process: e.process, type: e.type, f: e.f, key: e.key, value: e.value, time: e.timeNs }))
    .join('\n');
}
