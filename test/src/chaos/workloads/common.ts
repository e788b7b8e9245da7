// What every workload's clients share: pinned workers, open-loop pacing, recording an operation,
// retrying the final reads, and the linearizability verdict.
//
// Workers (Jepsen's client processes). Worker w (0..concurrency-1) is pinned to node w % N, so a
// minority partition still gets traffic and shows up in the history. A worker never has two
// operations in flight. Its operations are recorded under a process id from recorder.newProcess();
// after an `info` (the operation may still take effect, at any later time) the worker goes on
// under a new process id, as Jepsen does, because the checker pairs one open operation per process.
//
// Pacing is open loop: operations start on a schedule, not when the previous one ends, so a slow
// cluster gets the same offered load as a fast one (a closed loop would quietly back off exactly
// when the cluster is in trouble). Each worker offers ratePerSec / concurrency operations a second;
// the gap before its next start is the mean gap times a seeded jitter in [0.5, 1.5), and the first
// start is at a seeded offset within one gap so workers do not fire in lockstep. A worker whose
// operation overran its slot starts the next one at once and does not make up the missed slots
// (it never has two in flight). When the workload's signal aborts, no new operation starts; those
// in flight finish (each is bounded by the client's requestTimeoutMs).
//
// Randomness: every choice is drawn from SimRandom(deriveSeed(seed, salt, worker)), never
// Math.random, so the same seed gives every worker the same sequence of choices.

import { setMaxListeners } from 'node:events';
import { SimRandom, deriveSeed } from '@ballot/raft';
import {
  checkHistory,
  describeCall,
  MODELS,
  pairOperations,
  type CheckResult,
  type HistoryEvent,
  type ModelName,
  type Operation,
  type OpFunction,
} from '../../checker/index.js';
import { JsonKvClient } from '../client.js';
import type { CallOutcome, JsonValue, RecordedEvent, WorkloadContext, WorkloadVerdict } from '../types.js';

/** Bound of the final reads' retries, unless told otherwise. */
export const FINAL_READ_TIMEOUT_MS = 30_000;
/** Pause between two attempts of a final read. */
export const FINAL_READ_RETRY_MS = 100;
/** Anomaly lines a verdict keeps (anomalyCount says how many in all). */
export const MAX_ANOMALIES = 100;

/** One client worker, pinned to one node. */
export interface Worker {
  /** 0..concurrency-1. */
  readonly index: number;
  /** index % nodes. */
  readonly nodeIndex: number;
  /** The node's name (recorded with every operation). */
  readonly node: string;
  readonly client: JsonKvClient;
  /** This worker's own seeded randomness (op mix, keys, pacing jitter). */
  readonly random: SimRandom;
  /** The process id its operations are recorded under now (a new one after each info). */
  readonly process: number;
  /**
   * Records `f key value` as invoked now, runs `call`, records its outcome, and moves to a new
   * process id when the outcome is info. Returns the outcome.
   */
  perform(f: string, key: string, value: JsonValue, call: () => Promise<CallOutcome<JsonValue>>): Promise<CallOutcome<JsonValue>>;
}

/** One JsonKvClient per node, index i = node i. */
export function clientsFor(ctx: Pick<WorkloadContext, 'endpoints' | 'requestTimeoutMs'>): JsonKvClient[] {
  return ctx.endpoints.map((e) => new JsonKvClient(e, { requestTimeoutMs: ctx.requestTimeoutMs }));
}

/**
 * The ctx.concurrency workers, worker w pinned to node w % N. `salt` separates the random streams
 * of different uses of one seed (e.g. writers and watchers of one workload).
 */
export function pinnedWorkers(ctx: WorkloadContext, salt: number, clients: readonly JsonKvClient[] = clientsFor(ctx)): Worker[] {
  const n = ctx.endpoints.length;
  if (n === 0) throw new RangeError('a workload needs at least one node');
  if (!Number.isSafeInteger(ctx.concurrency) || ctx.concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${ctx.concurrency}`);
  return Array.from({ length: ctx.concurrency }, (_, index) => {
    const nodeIndex = index % n;
    const node = ctx.names[nodeIndex] ?? `node${nodeIndex}`;
    let process = ctx.recorder.newProcess();
    const worker: Worker = {
      index,
      nodeIndex,
      node,
      client: clients[nodeIndex] as JsonKvClient,
      random: new SimRandom(deriveSeed(ctx.seed, salt, index)),
      get process() {
        return process;
      },
      async perform(f, key, value, call) {
        const op = ctx.recorder.invoke(process, f, key, value, node);
        let outcome: CallOutcome<JsonValue>;
        try {
          outcome = await call();
        } catch (e) {
          // A bug in the call, not an answer of the store: the operation may have been sent.
          outcome = { type: 'info', error: `CLIENT: ${(e as Error).message}` };
        }
        op.complete(outcome);
        if (outcome.type === 'info') process = ctx.recorder.newProcess();
        return outcome;
      },
    };
    return worker;
  });
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Mean gap between two starts of one worker, in ms, for ratePerSec overall over `concurrency` workers. */
export function meanGapMs(ratePerSec: number, concurrency: number): number {
  if (!(ratePerSec > 0)) throw new RangeError(`ratePerSec must be positive, got ${ratePerSec}`);
  return (1000 * concurrency) / ratePerSec;
}

/**
 * Runs `step` on every worker at the paced rate until ctx.signal aborts (see the top of the file);
 * resolves when every worker has finished its last operation. If a step throws (e.g. the recorder's
 * bound is reached), the other workers stop too and the error is rethrown.
 */
export async function runPaced(ctx: WorkloadContext, workers: readonly Worker[], step: (worker: Worker) => Promise<void>): Promise<void> {
  const gapMs = meanGapMs(ctx.ratePerSec, ctx.concurrency);
  const stop = new AbortController();
  // Every worker waits in at most one sleep() at a time, and each sleep holds one 'abort' listener
  // on stop.signal: at most workers.length listeners. Node warns (MaxListenersExceededWarning) past
  // 10 on an EventTarget, so the bound is raised to exactly that count (--concurrency > 10).
  setMaxListeners(Math.max(workers.length, 1), stop.signal);
  const onAbort = (): void => stop.abort();
  if (ctx.signal.aborted) return;
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  let firstError: unknown;
  const loop = async (w: Worker): Promise<void> => {
    let nextStartMs = performance.now() + w.random.float() * gapMs;
    while (!stop.signal.aborted) {
      await sleep(nextStartMs - performance.now(), stop.signal);
      if (stop.signal.aborted) break;
      await step(w);
      nextStartMs = Math.max(nextStartMs + gapMs * (0.5 + w.random.float()), performance.now());
    }
  };
  try {
    await Promise.all(
      workers.map((w) =>
        loop(w).catch((e: unknown) => {
          firstError ??= e;
          stop.abort();
        }),
      ),
    );
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
  if (firstError !== undefined) throw firstError;
}

export interface RetryOptions {
  /** Give up after this long (default 30 s); the last outcome is returned. */
  readonly timeoutMs?: number;
  /** Pause between attempts (default 100 ms). */
  readonly intervalMs?: number;
  /** Stops retrying at once. */
  readonly signal?: AbortSignal;
}

/**
 * Calls `attempt` until it is ok or the time is up; returns the ok outcome, or the last failed one.
 * For the final reads: reads have no effect, so retrying them is safe; each attempt should be
 * recorded (a failed read is a `fail` in the history, which the checker leaves out).
 */
export async function retryUntilOk<T>(attempt: () => Promise<CallOutcome<T>>, options: RetryOptions = {}): Promise<CallOutcome<T>> {
  const deadline = performance.now() + (options.timeoutMs ?? FINAL_READ_TIMEOUT_MS);
  for (;;) {
    const outcome = await attempt();
    if (outcome.type === 'ok' || performance.now() >= deadline || options.signal?.aborted === true) return outcome;
    await sleep(Math.min(options.intervalMs ?? FINAL_READ_RETRY_MS, deadline - performance.now()), options.signal);
  }
}

/** The recorded events as the checker's events (line = index + 1, as in history.jsonl). */
export function toHistoryEvents(events: readonly RecordedEvent[]): HistoryEvent[] {
  return events.map((e, i) => ({ process: e.process, type: e.type, f: e.f as OpFunction, key: e.key, value: e.value, timeNs: e.time, line: i + 1 }));
}

/** Keeps the first MAX_ANOMALIES lines; the count says how many in all. */
export function capAnomalies(lines: readonly string[]): { readonly anomalies: readonly string[]; readonly anomalyCount: number } {
  return { anomalies: lines.slice(0, MAX_ANOMALIES), anomalyCount: lines.length };
}

/** "p3 write 5 (lines 12-40)": an operation as an anomaly line names it. */
export function describeOp(op: Operation): string {
  const lines = op.completeLine === null ? `line ${op.invokeLine}, never completed` : `lines ${op.invokeLine}-${op.completeLine}`;
  return `p${op.process} ${describeCall(op)}${op.status === 'info' ? ' (indeterminate)' : ''} (${lines})`;
}

/** Where the search for a linearization got stuck, as lines for people. */
export function describeFailure(result: Extract<CheckResult, { valid: false }>): string[] {
  const { key, point, subHistory } = result;
  const tail = point.linearized.slice(-5);
  return [
    `key ${JSON.stringify(key)} is not linearizable (${subHistory.length} operations on it): ${describeOp(point.overdue)} had returned, but no order of the pending operations lets it take effect`,
    `key ${JSON.stringify(key)}: the longest linearizable prefix has ${point.linearized.length} operations, ending ${tail.length === 0 ? '(none)' : tail.map(describeOp).join(', ')}; state then ${point.stateAfter}`,
    ...point.stuck.slice(0, 10).map((op) => `key ${JSON.stringify(key)}: pending there, none could go next: ${describeOp(op)}`),
  ];
}

/** The linearizability check of the recorded history with `model`, as a verdict's parts. */
export function checkLinearizability(
  events: readonly RecordedEvent[],
  model: ModelName,
  timeBudgetMs: number,
): { readonly check: WorkloadVerdict['checks'][number]; readonly result: CheckResult | null; readonly anomalies: readonly string[] } {
  let ops: Operation[];
  try {
    ops = pairOperations(toHistoryEvents(events));
  } catch (e) {
    // The recorder wrote an unpairable history: a bug of the runner, which proves nothing either way.
    const summary = `the history cannot be checked: ${(e as Error).message}`;
    return { check: { name: 'linearizability', valid: 'unknown', summary }, result: null, anomalies: [summary] };
  }
  const started = performance.now();
  const options = { timeBudgetMs, recordLinearizations: true } as const;
  const result = model === 'kv' ? checkHistory(ops, { ...options, model: MODELS.kv }) : checkHistory(ops, { ...options, model: MODELS.register });
  const ms = Math.round(performance.now() - started);
  const size = `${result.ops} operations on ${result.keys} keys, ${ms} ms`;
  if (result.valid === true) return { check: { name: 'linearizability', valid: true, summary: `linearizable (${model} model; ${size})` }, result, anomalies: [] };
  if (result.valid === 'unknown') {
    return {
      check: { name: 'linearizability', valid: 'unknown', summary: `unknown: the ${timeBudgetMs} ms budget ran out after ${result.keysChecked} of ${result.keys} keys (${size})` },
      result,
      anomalies: [],
    };
  }
  return {
    check: { name: 'linearizability', valid: false, summary: `NOT linearizable: key ${JSON.stringify(result.key)} (${model} model; ${size})` },
    result,
    anomalies: describeFailure(result),
  };
}
