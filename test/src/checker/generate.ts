// Histories for tests and benchmarks: clients run against a sequential key-value register under
// random concurrency, so the history is linearizable by construction. Every random choice comes
// from a "tape" of numbers (fast-check can shrink it), so a history is reproducible from its tape.
//
// Injections add a few sequential operations that make any history certainly non-linearizable.

import type { HistoryEvent, JsonValue, OpFunction } from './history.js';

export type GeneratedEvent = Omit<HistoryEvent, 'line'>;

export interface GenerateOptions {
  readonly processes: number;
  readonly keys: number;
  /** Writes and cas draw values from 0 .. values-1 (few values make cas succeed often). */
  readonly values: number;
  /**
   * Which object the clients run against: 'register' (read/write/cas, the default) or 'kv' (the
   * store's put/get/delete/txn on one key, see history.ts).
   */
  readonly model?: 'register' | 'kv';
}

/** The sequential object behind a generated history: one key's state, and how each operation runs on it. */
interface SequentialKey {
  value: JsonValue;
  version: number;
}

/** Runs one kv step (put/get/delete) on `k`; returns its result. Written apart from models.ts on purpose. */
function runKvStep(k: SequentialKey, step: JsonValue): JsonValue {
  const s = step as { readonly f: string; readonly value?: JsonValue };
  if (s.f === 'put') {
    k.value = s.value ?? null;
    k.version++;
    return null;
  }
  if (s.f === 'get') return k.value;
  const deleted = k.version > 0 ? 1 : 0;
  k.value = null;
  k.version = 0;
  return deleted;
}

/** The input of a kv operation drawn from `v`: a txn compares value or version, then writes or reads. */
function kvInput(f: OpFunction, v: number): JsonValue {
  if (f === 'put') return v;
  if (f !== 'txn') return null;
  return {
    compare: v % 2 === 0 ? { value: v === 0 ? null : v - 1 } : { version: v % 3 },
    then: [{ f: 'put', value: v }, { f: 'get' }],
    else: v % 3 === 0 ? [{ f: 'delete' }] : [{ f: 'get' }],
  };
}

interface Pending {
  readonly pid: number;
  readonly f: OpFunction;
  readonly key: string;
  readonly input: JsonValue;
  /** Set when the operation took effect on the register: what it returned, or that its cas failed. */
  effect: { readonly result: JsonValue; readonly ok: boolean } | null;
}

/**
 * Runs the tape. Each number picks one action: invoke on an idle client, make a pending operation
 * take effect on the register, complete one (ok, or fail if it did not take effect), or crash one
 * (info; a crashed operation may still take effect later, and its client is replaced by a new
 * process id, as in Jepsen). At the end every live operation takes effect and completes.
 */
export function generateHistory(tape: readonly number[], options: GenerateOptions): GeneratedEvent[] {
  const register = new Map<string, JsonValue>();
  const store = new Map<string, SequentialKey>();
  const kv = options.model === 'kv';
  const events: GeneratedEvent[] = [];
  const clients: (Pending | null)[] = Array.from({ length: options.processes }, () => null);
  const pids = Array.from({ length: options.processes }, (_, i) => i);
  let nextPid = options.processes;
  const zombies: Pending[] = []; // crashed (info) operations that have not taken effect
  const emit = (pid: number, type: HistoryEvent['type'], p: Pending, value: JsonValue): void => {
    events.push({ process: pid, type, f: p.f, key: p.key, value, timeNs: (events.length + 1) * 1000 });
  };
  const takeEffect = (p: Pending): void => {
    if (kv) {
      const k = store.get(p.key) ?? { value: null, version: 0 };
      store.set(p.key, k);
      if (p.f === 'txn') {
        const t = p.input as { readonly compare: { readonly value?: JsonValue; readonly version?: number }; readonly then: JsonValue[]; readonly else: JsonValue[] };
        const holds = 'value' in t.compare ? JSON.stringify(t.compare.value) === JSON.stringify(k.value) : t.compare.version === k.version;
        const results = (holds ? t.then : t.else).map((step) => runKvStep(k, step));
        p.effect = { result: { succeeded: holds, results }, ok: true };
      } else {
        const result = runKvStep(k, { f: p.f, value: p.input });
        p.effect = { result: p.f === 'put' ? p.input : result, ok: true };
      }
      return;
    }
    const current = register.get(p.key) ?? null;
    if (p.f === 'read') p.effect = { result: current, ok: true };
    else if (p.f === 'write') {
      register.set(p.key, p.input);
      p.effect = { result: p.input, ok: true };
    } else {
      const [expected, next] = p.input as readonly JsonValue[];
      const ok = JSON.stringify(expected ?? null) === JSON.stringify(current);
      if (ok) register.set(p.key, next ?? null);
      p.effect = { result: p.input, ok };
    }
  };
  const complete = (slot: number, p: Pending): void => {
    const e = p.effect;
    if (e === null || !e.ok) emit(p.pid, 'fail', p, p.input); // did not happen (or its comparison failed)
    else emit(p.pid, 'ok', p, e.result);
    clients[slot] = null;
  };

  for (const n of tape) {
    const action = n % 4;
    const arg = Math.floor(n / 4);
    const busy = clients.flatMap((c, slot) => (c === null ? [] : [{ c, slot }]));
    if (action === 0) {
      const slot = arg % options.processes;
      if (clients[slot] !== null) continue;
      const fs: readonly OpFunction[] = kv ? ['get', 'put', 'delete', 'txn'] : ['read', 'write', 'cas'];
      const f: OpFunction = fs[arg % fs.length] ?? 'read';
      const key = `k${Math.floor(arg / fs.length) % options.keys}`;
      const v = Math.floor(arg / (fs.length * options.keys)) % options.values;
      const input: JsonValue = kv ? kvInput(f, v) : f === 'read' ? null : f === 'write' ? v : [v % 2 === 0 ? null : v - 1, v];
      const p: Pending = { pid: pids[slot] ?? slot, f, key, input, effect: null };
      clients[slot] = p;
      emit(p.pid, 'invoke', p, input);
    } else if (action === 1) {
      const candidates = [...busy.map((b) => b.c).filter((c) => c.effect === null), ...zombies];
      const p = candidates[arg % Math.max(1, candidates.length)];
      if (p === undefined) continue;
      takeEffect(p);
      const z = zombies.indexOf(p);
      if (z >= 0) zombies.splice(z, 1);
    } else if (action === 2) {
      const b = busy[arg % Math.max(1, busy.length)];
      if (b === undefined) continue;
      if (b.c.effect === null && arg % 2 === 0) takeEffect(b.c);
      complete(b.slot, b.c);
    } else {
      const b = busy[arg % Math.max(1, busy.length)];
      if (b === undefined) continue;
      emit(b.c.pid, 'info', b.c, b.c.input);
      if (b.c.effect === null) zombies.push(b.c);
      clients[b.slot] = null;
      pids[b.slot] = nextPid++;
    }
  }
  clients.forEach((c, slot) => {
    if (c === null) return;
    if (c.effect === null) takeEffect(c);
    complete(slot, c);
  });
  return events;
}

/** Inserts the given operations (each an adjacent invoke+ok pair) before the events at `positions`. */
function insertSequential(
  events: readonly GeneratedEvent[],
  inserts: readonly { readonly at: number; readonly f: OpFunction; readonly key: string; readonly value: JsonValue }[],
  pid: number,
): GeneratedEvent[] {
  const out: GeneratedEvent[] = [];
  const pushOp = (i: (typeof inserts)[number]): void => {
    const isRead = i.f === 'read' || i.f === 'get';
    out.push({ process: pid, type: 'invoke', f: i.f, key: i.key, value: isRead ? null : i.value, timeNs: 0 });
    out.push({ process: pid, type: 'ok', f: i.f, key: i.key, value: i.value, timeNs: 0 });
  };
  let next = 0;
  for (let p = 0; p <= events.length; p++) {
    while (next < inserts.length && (inserts[next]?.at ?? Infinity) <= p) pushOp(inserts[next++] as (typeof inserts)[number]);
    const e = events[p];
    if (e !== undefined) out.push(e);
  }
  return out.map((e, i) => ({ ...e, timeNs: (i + 1) * 1000 }));
}

const freshPid = (events: readonly GeneratedEvent[]): number => 1 + Math.max(-1, ...events.map((e) => e.process));
const sortedPositions = (events: readonly GeneratedEvent[], picks: readonly number[]): number[] =>
  picks.map((x) => x % (events.length + 1)).sort((a, b) => a - b);

/** The functions an injection uses to write and read: register write/read, or kv put/get. */
export interface InjectFunctions {
  readonly write: 'write' | 'put';
  readonly read: 'read' | 'get';
}
const REGISTER_FNS: InjectFunctions = { write: 'write', read: 'read' };
export const KV_INJECT_FUNCTIONS: InjectFunctions = { write: 'put', read: 'get' };

/**
 * A stale read: on `key`, write a fresh value A, then (strictly later) write a fresh value B, then
 * (strictly later) read A. No other operation writes A, so in every order respecting real time
 * the read sees B or something written after it: certainly not linearizable.
 */
export function injectStaleRead(
  events: readonly GeneratedEvent[],
  key: string,
  picks: readonly [number, number, number],
  fns: InjectFunctions = REGISTER_FNS,
): GeneratedEvent[] {
  const [a, b, c] = sortedPositions(events, picks) as [number, number, number];
  return insertSequential(
    events,
    [
      { at: a, f: fns.write, key, value: 'stale-A' },
      { at: b, f: fns.write, key, value: 'stale-B' },
      { at: c, f: fns.read, key, value: 'stale-A' },
    ],
    freshPid(events),
  );
}

/**
 * A lost write: on a key nobody else uses, a write is acknowledged and a later read finds the key
 * absent. Certainly not linearizable.
 */
export function injectLostWrite(
  events: readonly GeneratedEvent[],
  picks: readonly [number, number],
  fns: InjectFunctions = REGISTER_FNS,
): GeneratedEvent[] {
  const [a, b] = sortedPositions(events, picks) as [number, number];
  return insertSequential(
    events,
    [
      { at: a, f: fns.write, key: 'lost', value: 'L' },
      { at: b, f: fns.read, key: 'lost', value: null },
    ],
    freshPid(events),
  );
}
