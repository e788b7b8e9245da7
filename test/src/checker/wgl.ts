// The linearizability search: the algorithm of Wing & Gong (1993), with the memoization Lowe added
// in "Testing for linearizability" (2017), and the per-key split that P-compositionality allows.
//
// The question: is there a total order of the operations that (1) respects real time - if A
// completed before B was invoked, A comes first - and (2) is a legal run of the sequential model?
//
// How the search works. Lay the history out as a list of entries in real-time order: every
// operation has a CALL entry (its invoke) and a RETURN entry (its completion). Walk the list:
//
//  * At a CALL entry for operation X, try "X takes effect now": X has been invoked and every
//    operation before it in the list (still unlinearized) was invoked too, so each of them could
//    go first. If the model accepts X from the current state, remove X's call and return entries
//    from the list (X is linearized), remember the choice on a stack, and restart from the front.
//    If not, move on to the next entry - maybe another pending operation must go first.
//  * At a RETURN entry for operation X, X is not linearized yet but it already returned: it had
//    to take effect before this point. None of the choices at this point worked, so undo the most
//    recent choice (pop the stack, put its entries back) and try the entry after it instead.
//  * When every operation that certainly happened is linearized, a linearization exists. When
//    there is nothing left to undo, none exists.
//
// Memoization (Lowe's key idea). Two search paths that reach the same set of linearized operations
// with the same model state have the same future, so the second one is pointless. We store every
// (bitset of linearized operations, model state) pair reached and skip a choice that leads to one
// already seen. This turns an exponential search into one that is usually quick in practice.
//
// Indeterminate operations (info, or never completed) may have taken effect at any moment after
// their invoke, or never. Their RETURN entries go at the very end of the list, so they never force
// a backtrack; and they do not have to be linearized for the search to succeed.
//
// P-compositionality. A history of many independent registers (keys) is linearizable iff the
// sub-history of each key is. So we split by key and search each small sub-history alone, which
// is exponentially cheaper than searching the whole history at once.

import type { JsonValue, Operation } from './history.js';
import { registerModel, type Model } from './models.js';

/** Where the search got stuck, in the deepest configuration it reached. */
export interface FailurePoint {
  /** The longest sequence of operations the search could linearize (in linearization order). */
  readonly linearized: readonly Operation[];
  /** The model state after `linearized`, rendered by the model's stateKey. */
  readonly stateAfter: string;
  /** Operations pending at that point (invoked, not linearized): none of them can take effect next. */
  readonly stuck: readonly Operation[];
  /** The pending operation that had already returned there, so it had to take effect before that point. */
  readonly overdue: Operation;
}

export type KeyResult =
  | { readonly valid: true; readonly linearization: readonly Operation[] }
  | { readonly valid: false; readonly point: FailurePoint }
  | { readonly valid: 'unknown' };

export type CheckResult =
  | {
      readonly valid: true;
      readonly ops: number;
      readonly keys: number;
      /** Each key's linearization, only with `recordLinearizations` (for the HTML timeline). */
      readonly linearizations?: ReadonlyMap<string, readonly Operation[]>;
    }
  | {
      readonly valid: false;
      readonly ops: number;
      readonly keys: number;
      /** The failing key with the fewest operations. */
      readonly key: string;
      readonly subHistory: readonly Operation[];
      readonly point: FailurePoint;
      /** With `recordLinearizations`: the linearizations of the keys checked before the failing one. */
      readonly linearizations?: ReadonlyMap<string, readonly Operation[]>;
    }
  | { readonly valid: 'unknown'; readonly ops: number; readonly keys: number; readonly keysChecked: number };

export interface CheckOptions<S> {
  /** The per-key model (default: register). */
  readonly model?: Model<S>;
  /** Give up with 'unknown' after this long (default: no limit). */
  readonly timeBudgetMs?: number;
  /** Return each checked key's linearization in the result (default false: they cost memory). */
  readonly recordLinearizations?: boolean;
}

/** A list entry: an operation's call or return, linked to its neighbours and its partner. */
interface Entry {
  readonly kind: 'call' | 'return';
  readonly op: Operation;
  /** Index of op within the sub-history: its bit in the linearized set. */
  readonly bit: number;
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

/** How often (in loop iterations) the search looks at the clock. */
const DEADLINE_CHECK_EVERY_STEPS = 1024;

/**
 * Searches one key's operations for a linearization. `deadlineMs` is a performance.now() instant
 * (Infinity for none). Operations must all be on one object the model describes.
 */
export function checkOperations<S>(allOps: readonly Operation[], model: Model<S>, deadlineMs = Infinity): KeyResult {
  // A read that never returned observed nothing and changes nothing: it cannot make a history
  // invalid, so leave it out of the search (it would only add choices).
  const ops = allOps.filter((op) => !((op.f === 'read' || op.f === 'get') && op.output === undefined));
  if (ops.length === 0) return { valid: true, linearization: [] };
  // Build the entry list in real-time order: calls at their invoke index, returns at their
  // completion index (Infinity for indeterminate operations, so they sort last).
  const entries: { readonly at: number; readonly entry: Entry }[] = [];
  ops.forEach((op, bit) => {
    const call: Entry = { kind: 'call', op, bit, match: null, prev: null, next: null };
    const ret: Entry = { kind: 'return', op, bit, match: call, prev: null, next: null };
    call.match = ret;
    entries.push({ at: op.invokeIndex, entry: call }, { at: op.completeIndex, entry: ret });
  });
  entries.sort((a, b) => a.at - b.at);
  const head: Entry = { kind: 'call', op: ops[0] as Operation, bit: -1, match: null, prev: null, next: null };
  let last = head;
  for (const { entry } of entries) {
    last.next = entry;
    entry.prev = last;
    last = entry;
  }

  // Linearizing X removes its two entries; undoing puts them back exactly where they were.
  const lift = (call: Entry): void => {
    for (const e of [call, call.match as Entry]) {
      (e.prev as Entry).next = e.next;
      if (e.next !== null) e.next.prev = e.prev;
    }
  };
  const unlift = (call: Entry): void => {
    for (const e of [call.match as Entry, call]) {
      (e.prev as Entry).next = e;
      if (e.next !== null) e.next.prev = e;
    }
  };

  const linearized = new Uint32Array(Math.ceil(ops.length / 32) || 1);
  const setBit = (b: number): void => void (linearized[b >>> 5] = (linearized[b >>> 5] ?? 0) | (1 << (b & 31)));
  const clearBit = (b: number): void => void (linearized[b >>> 5] = (linearized[b >>> 5] ?? 0) & ~(1 << (b & 31)));
  const seen = new Set<string>();
  const stack: { readonly call: Entry; readonly stateBefore: S }[] = [];

  let state = model.init;
  // Operations that certainly happened and are not linearized yet; the search succeeds at 0.
  let mustRemaining = ops.filter((op) => op.status === 'ok').length;
  let best: FailurePoint | null = null;
  let cur = head.next;
  let steps = 0;

  while (mustRemaining > 0) {
    if (steps++ % DEADLINE_CHECK_EVERY_STEPS === 0 && performance.now() >= deadlineMs) return { valid: 'unknown' };
    // A completed, unlinearized operation's return entry always lies ahead while mustRemaining > 0.
    if (cur === null) throw new Error('checker invariant: ran off the entry list with operations left');

    if (cur.kind === 'call') {
      const after = model.step(state, cur.op);
      if (after !== undefined) {
        setBit(cur.bit);
        const memoKey = `${linearized.join(',')}|${model.stateKey(after)}`;
        if (!seen.has(memoKey)) {
          // A new configuration: commit to "cur takes effect now" and start again from the front.
          seen.add(memoKey);
          stack.push({ call: cur, stateBefore: state });
          state = after;
          if (cur.op.status === 'ok') mustRemaining--;
          lift(cur);
          cur = head.next;
          continue;
        }
        clearBit(cur.bit); // already explored from here: try the next entry instead
      }
      cur = cur.next;
      continue;
    }

    // A return entry: its operation had to take effect by now, and no pending choice works.
    if (best === null || stack.length > best.linearized.length) best = failurePoint(head, cur, stack, state, model);
    const top = stack.pop();
    if (top === undefined) return { valid: false, point: best };
    state = top.stateBefore;
    clearBit(top.call.bit);
    if (top.call.op.status === 'ok') mustRemaining++;
    unlift(top.call);
    cur = top.call.next;
  }
  return { valid: true, linearization: stack.map((s) => s.call.op) };
}

function failurePoint<S>(
  head: Entry,
  stoppedAt: Entry,
  stack: readonly { readonly call: Entry }[],
  state: S,
  model: Model<S>,
): FailurePoint {
  const stuck: Operation[] = [];
  for (let e = head.next; e !== null && e !== stoppedAt; e = e.next) if (e.kind === 'call') stuck.push(e.op);
  return { linearized: stack.map((s) => s.call.op), stateAfter: model.stateKey(state), stuck, overdue: stoppedAt.op };
}

/** Splits operations per key (P-compositionality), each list in invoke order. */
export function splitByKey(ops: readonly Operation[]): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, [op]);
    else list.push(op);
  }
  return byKey;
}

/**
 * Checks a key-value history: each key is an independent object of the model. Keys are checked
 * smallest first, so the first failing key found is the smallest failing one. An exhausted time
 * budget gives 'unknown' - never 'valid' - unless a key already proved the history invalid.
 */
export function checkHistory<S = JsonValue>(ops: readonly Operation[], options: CheckOptions<S> = {}): CheckResult {
  const model = (options.model ?? registerModel) as Model<S>;
  const deadlineMs = options.timeBudgetMs === undefined ? Infinity : performance.now() + options.timeBudgetMs;
  const byKey = [...splitByKey(ops)].sort(([, a], [, b]) => a.length - b.length);
  const summary = { ops: ops.length, keys: byKey.length };
  let keysChecked = 0;
  const linearizations = new Map<string, readonly Operation[]>();
  const extra = (): { readonly linearizations?: ReadonlyMap<string, readonly Operation[]> } =>
    options.recordLinearizations === true ? { linearizations } : {};
  for (const [key, subHistory] of byKey) {
    const r = checkOperations(subHistory, model, deadlineMs);
    if (r.valid === 'unknown') return { valid: 'unknown', ...summary, keysChecked };
    if (r.valid === false) return { valid: false, ...summary, key, subHistory, point: r.point, ...extra() };
    if (options.recordLinearizations === true) linearizations.set(key, r.linearization);
    keysChecked++;
  }
  return { valid: true, ...summary, ...extra() };
}
