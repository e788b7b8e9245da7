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
// Real-time order is the order of lines: operation A precedes B when A's completion line comes
// before B's invoke line. `time` (nanoseconds) is kept for display only.

/** A JSON value as found in a history (register contents, read results). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [k: string]: JsonValue };

export type EventType = 'invoke' | 'ok' | 'fail' | 'info';
export type OpFunction = 'read' | 'write' | 'cas';

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
  | (OpBase & { readonly f: 'cas'; readonly expected: JsonValue; readonly next: JsonValue });

const EVENT_TYPES: ReadonlySet<string> = new Set<EventType>(['invoke', 'ok', 'fail', 'info']);
const OP_FUNCTIONS: ReadonlySet<string> = new Set<OpFunction>(['read', 'write', 'cas']);

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
    throw new HistoryError('bad-field', line, '"f" must be one of read, write, cas');
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
