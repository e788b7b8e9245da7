// Sequential specifications the checker linearizes against. A model is a pure step function over
// immutable states: given a state and an operation with its observed result, it returns the state
// after the operation, or undefined when the operation could not have returned that result from
// that state. `stateKey` turns a state into a string so that (linearized set, state) pairs can be
// memoized.

import type { JsonValue, Operation } from './history.js';

export interface Model<S> {
  readonly name: string;
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
  init: null,
  step(state, op) {
    switch (op.f) {
      case 'read':
        return op.output === undefined || jsonEqual(op.output, state) ? state : undefined;
      case 'write':
        return op.value;
      case 'cas':
        return jsonEqual(op.expected, state) ? op.next : undefined;
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

/** Models selectable by name (`ballot check --model`). */
export const MODELS = { register: registerModel } as const;
export type ModelName = keyof typeof MODELS;
