// Sequential specifications the checker linearizes against. A model is a pure step function over
// immutable states: given a state and an operation with its observed result, it returns the state
// after the operation, or undefined when the operation could not have returned that result from
// that state. `stateKey` turns a state into a string so that (linearized set, state) pairs can be
// memoized.

import type { JsonValue, KvStep, OpFunction, Operation } from './history.js';

export interface Model<S> {
  readonly name: string;
  /** The operation functions this model understands; a history using others is bad input for it. */
  readonly functions: ReadonlySet<OpFunction>;
  readonly init: S;
  /** The state after `op`, or undefined when `op`'s observed result is impossible in `state`. */
  step(state: S, op: Operation): S | undefined;
  /** Equal states must give equal keys. */
  stateKey(state: S): string;
}

/** Structural equality of JSON values (object keys compared in their written order). */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * A single register: its state is the value held, null when absent.
 *   read  -> ok only if it saw the current value (an indeterminate read observed nothing: always ok)
 *   write -> sets the value
 *   cas   -> [expected, new]: allowed only when the current value equals expected; sets new
 * (A cas whose comparison failed is recorded as `fail` and never reaches the model.)
 */
export const registerModel: Model<JsonValue> = {
  name: 'register',
  functions: new Set<OpFunction>(['read', 'write', 'cas']),
  init: null,
  step(state, op) {
    switch (op.f) {
      case 'read':
        return op.output === undefined || jsonEqual(op.output, state) ? state : undefined;
      case 'write':
        return op.value;
      case 'cas':
        return jsonEqual(op.expected, state) ? op.next : undefined;
      default:
        return undefined; // not a register operation (see `functions`)
    }
  },
  stateKey(state) {
    return JSON.stringify(state);
  },
};

/**
 * Many registers, one per key: the whole key-value map. The checker does not need it (it splits a
 * history per key and uses registerModel); the brute-force reference checker uses it to check a
 * history as one object, which independently confirms that splitting per key is sound.
 */
export const kvRegisterModel: Model<ReadonlyMap<string, JsonValue>> = {
  name: 'kv-register',
  functions: registerModel.functions,
  init: new Map(),
  step(state, op) {
    const next = registerModel.step(state.get(op.key) ?? null, op);
    if (next === undefined) return undefined;
    const m = new Map(state);
    if (next === null) m.delete(op.key);
    else m.set(op.key, next);
    return m;
  },
  stateKey(state) {
    return JSON.stringify([...state.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  },
};

/**
 * One key of the key-value store: its value (null when absent) and etcd's per-key version (0 when
 * absent, +1 on every put, back to 0 on delete).
 */
export interface KvKeyState {
  readonly value: JsonValue;
  readonly version: number;
}

const ABSENT: KvKeyState = { value: null, version: 0 };

/** Runs one step on `state`; returns the new state and what the step returns. */
function applyKvStep(state: KvKeyState, step: KvStep): { readonly state: KvKeyState; readonly result: JsonValue } {
  switch (step.f) {
    case 'put':
      return { state: { value: step.value, version: state.version + 1 }, result: null };
    case 'get':
      return { state, result: state.value };
    case 'delete':
      return { state: ABSENT, result: state.version > 0 ? 1 : 0 };
  }
}

/** Does an observed step result agree with the model's? A put's result is never checked. */
function stepResultMatches(step: KvStep, observed: JsonValue, expected: JsonValue): boolean {
  if (step.f === 'put') return true;
  if (step.f === 'delete' && typeof observed !== 'number') return true; // count not recorded
  return jsonEqual(observed, expected);
}

/**
 * The store's operations on one key:
 *   put    -> sets the value, version + 1
 *   get    -> ok only if it saw the current value (null when absent)
 *   delete -> removes the key; a recorded count must be 1 if it was present, else 0
 *   txn    -> compare (value or version equality) picks the branch; a recorded `succeeded` must
 *             match the comparison and recorded results must match each step of the branch
 * An indeterminate get observed nothing; an indeterminate delete/txn may have had its effect.
 */
export const kvModel: Model<KvKeyState> = {
  name: 'kv',
  functions: new Set<OpFunction>(['put', 'get', 'delete', 'txn']),
  init: ABSENT,
  step(state, op) {
    switch (op.f) {
      case 'put':
        return applyKvStep(state, { f: 'put', value: op.value }).state;
      case 'get':
        return op.output === undefined || jsonEqual(op.output, state.value) ? state : undefined;
      case 'delete': {
        const r = applyKvStep(state, { f: 'delete' });
        return op.output === undefined || op.output === r.result ? r.state : undefined;
      }
      case 'txn': {
        const c = op.txn.compare;
        const holds = c.target === 'value' ? jsonEqual(state.value, c.value) : state.version === c.version;
        const out = op.output;
        if (out !== undefined && out.succeeded !== holds) return undefined;
        const branch = holds ? op.txn.then : op.txn.else;
        if (out !== undefined && out.results !== null && out.results.length !== branch.length) return undefined;
        let s = state;
        for (let i = 0; i < branch.length; i++) {
          const step = branch[i] as KvStep;
          const r = applyKvStep(s, step);
          if (out !== undefined && out.results !== null && !stepResultMatches(step, out.results[i] ?? null, r.result)) return undefined;
          s = r.state;
        }
        return s;
      }
      default:
        return undefined; // not a key-value operation (see `functions`)
    }
  },
  stateKey(state) {
    return JSON.stringify([state.value, state.version]);
  },
};

/**
 * Any per-key model lifted to the whole map of keys (each key starts at the model's init). Used by
 * the brute-force reference checker to check a history as one object.
 */
export function multiKeyModel<S>(model: Model<S>): Model<ReadonlyMap<string, S>> {
  return {
    name: `multi-key ${model.name}`,
    functions: model.functions,
    init: new Map(),
    step(state, op) {
      const next = model.step(state.get(op.key) ?? model.init, op);
      if (next === undefined) return undefined;
      const m = new Map(state);
      m.set(op.key, next);
      return m;
    },
    stateKey(state) {
      const keys = [...state.keys()].sort();
      return JSON.stringify(keys.map((k) => [k, model.stateKey(state.get(k) as S)]));
    },
  };
}

/** Models selectable by name (`ballot check --model`). */
export const MODELS = { register: registerModel, kv: kvModel } as const;
export type ModelName = keyof typeof MODELS;
