// A reference checker for tiny histories: try every order of the operations that respects real
// time, literally. It shares no code with the search in wgl.ts and checks the history as one
// object (all keys together), so agreeing with it also confirms the per-key split. Exponential:
// use it on a handful of operations only.

import type { JsonValue, Operation } from './history.js';
import { kvRegisterModel, type Model } from './models.js';

/** Largest history bruteForceLinearizable accepts (8! orders times 2^k subsets is already plenty). */
export const BRUTE_FORCE_MAX_OPS = 10;

/** True iff some order of the operations respects real time and is a legal run of the model. */
export function bruteForceLinearizable<S = ReadonlyMap<string, JsonValue>>(
  ops: readonly Operation[],
  model: Model<S> = kvRegisterModel as unknown as Model<S>,
): boolean {
  if (ops.length > BRUTE_FORCE_MAX_OPS) throw new RangeError(`brute force is for <= ${BRUTE_FORCE_MAX_OPS} operations`);
  // An indeterminate operation either happened or did not: try every subset of them.
  const maybe = ops.filter((op) => op.status === 'info');
  for (let mask = 0; mask < 1 << maybe.length; mask++) {
    const chosen = ops.filter((op) => op.status === 'ok' || (mask & (1 << maybe.indexOf(op))) !== 0);
    if (someOrderWorks(chosen, [], model.init, model)) return true;
  }
  return false;
}

/** Extends `order` with every remaining operation whose real-time predecessors are all placed. */
function someOrderWorks<S>(rest: readonly Operation[], order: readonly Operation[], state: S, model: Model<S>): boolean {
  if (rest.length === 0) return true;
  for (const op of rest) {
    // op may go next only if no other remaining operation completed before op was invoked.
    const blocked = rest.some((other) => other !== op && other.completeIndex < op.invokeIndex);
    if (blocked) continue;
    const after = model.step(state, op);
    if (after === undefined) continue;
    if (someOrderWorks(rest.filter((o) => o !== op), [...order, op], after, model)) return true;
  }
  return false;
}
