// The register workload: many independent registers (keys "r0".."r{K-1}"), each read, written and
// compared-and-set by every worker, and the whole history checked for linearizability key by key
// (P-compositionality: checker/wgl.ts).
//
//   read   a range of the one key (serializable when the run's readMode is 'serializable', else
//          the server's linearizable read: ReadIndex, or its lease read under --read-mode lease);
//          recorded ok with the value read, null when the key is absent
//   write  a put of the key's next value
//   cas    a txn: if the key's value == expected then put the next value (expected null: if the key
//          is absent, by version == 0). Recorded [expected, next]; a false comparison wrote nothing,
//          so it is recorded `fail` (the checker's convention)
// Mix: read 50%, write 25%, cas 25%, and the key uniformly, from each worker's seeded stream.
//
// Values are JSON numbers, stored as their JSON text. Every value written to a key (by a write or
// a cas) is new for that key: one counter per key, 1, 2, 3, ... shared by the workers. Unique values
// make a stale or lost write impossible to explain away, and keep the checker's search small. A cas
// expects the value last seen on the key (by any worker's ok read, write or cas), so many succeed.
//
// Final reads: after the faults heal, one linearizable read of every key on every node, each
// retried until ok and recorded, failed attempts included. Nodes run in parallel, and so do the keys
// of one node (at most FINAL_READS_IN_FLIGHT per node); one deadline (FINAL_READ_TIMEOUT_MS) bounds
// all of a node's keys, so the phase takes at most that long whatever the key count. A key that a
// node never read ok makes the 'final-reads' check (and so the verdict) unknown, never valid.

import type { Workload, WorkloadContext, WorkloadVerdict, JsonValue, CallOutcome } from '../types.js';
import type { JsonKvClient } from '../client.js';
import { combineChecks } from './bank.js';
import { checkLinearizability, capAnomalies, clientsFor, pinnedWorkers, retryUntilOk, runPaced, FINAL_READ_TIMEOUT_MS, type Worker } from './common.js';

export const REGISTER_DEFAULT_KEYS = 10;
/** Probabilities of each function (the rest: cas). */
export const REGISTER_MIX = { read: 0.5, write: 0.25, cas: 0.25 } as const;
/** Final reads of one node in flight at once (each key is one read, retried until ok). */
export const FINAL_READS_IN_FLIGHT = 16;
/** Separates the register workers' random streams from other users of the run's seed. */
const REGISTER_SALT = 0x5e6;

/** The keys "r0".."r{count-1}". */
export function registerKeys(count = REGISTER_DEFAULT_KEYS): readonly string[] {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`the register workload needs at least one key, got ${count}`);
  return Array.from({ length: count }, (_, i) => `r${i}`);
}

/** A stored value as the history's JSON value: the number it encodes (a value the workload never writes is kept as its text). */
export function registerValueOf(stored: string | null): JsonValue {
  if (stored === null) return null;
  const n = Number(stored);
  return stored.trim() !== '' && Number.isFinite(n) ? n : stored;
}

export interface RegisterWorkloadOptions {
  /** Overrides ctx.keys. */
  readonly keys?: number;
  /** Deadline of one node's final reads, all keys together (default FINAL_READ_TIMEOUT_MS). */
  readonly finalReadTimeoutMs?: number;
}

/** Where the final reads are in the history, and which (node, key) pairs each need an ok one. */
export interface RegisterFinalReads {
  /** Index in the events where the final reads begin. */
  readonly fromIndex: number;
  readonly nodes: readonly string[];
  readonly keys: readonly string[];
}

export class RegisterWorkload implements Workload {
  readonly name = 'register' as const;
  /** Next value per key (values are unique per key). */
  private readonly nextValue = new Map<string, number>();
  /** The value last seen on each key, for cas expectations. */
  private readonly lastSeen = new Map<string, JsonValue>();
  /** Index of the first final read in the history, once finalReads began. */
  private finalFromIndex: number | null = null;

  constructor(private readonly options: RegisterWorkloadOptions = {}) {}

  keysOf(ctx: WorkloadContext): readonly string[] {
    return registerKeys(this.options.keys ?? ctx.keys ?? REGISTER_DEFAULT_KEYS);
  }

  /** Nothing to prepare: every register starts absent (null). */
  async setup(ctx: WorkloadContext): Promise<void> {
    this.keysOf(ctx); // validates the key count before the clock starts
  }

  async run(ctx: WorkloadContext): Promise<void> {
    const keys = this.keysOf(ctx);
    const serializable = ctx.readMode === 'serializable';
    const workers = pinnedWorkers(ctx, REGISTER_SALT);
    await runPaced(ctx, workers, (w) => this.step(w, keys, serializable));
  }

  /** One operation of one worker. */
  private async step(w: Worker, keys: readonly string[], serializable: boolean): Promise<void> {
    const key = w.random.pick(keys);
    const dice = w.random.float();
    if (dice < REGISTER_MIX.read) {
      const out = await w.perform('read', key, null, () => readRegister(w.client, key, serializable));
      if (out.type === 'ok') this.lastSeen.set(key, out.value);
    } else if (dice < REGISTER_MIX.read + REGISTER_MIX.write) {
      const value = this.fresh(key);
      const out = await w.perform('write', key, value, async () => okAs(await w.client.put(key, JSON.stringify(value)), value));
      if (out.type === 'ok') this.lastSeen.set(key, value);
    } else {
      const expected = this.lastSeen.get(key) ?? null;
      const next = this.fresh(key);
      const out = await w.perform('cas', key, [expected, next], async () => {
        const r = await w.client.cas(key, expected === null ? null : JSON.stringify(expected), JSON.stringify(next));
        if (r.type !== 'ok') return r;
        return r.value ? { type: 'ok', value: [expected, next] } : { type: 'fail', error: `CAS: the value was not ${JSON.stringify(expected)}` };
      });
      if (out.type === 'ok') this.lastSeen.set(key, next);
    }
  }

  private fresh(key: string): number {
    const v = (this.nextValue.get(key) ?? 0) + 1;
    this.nextValue.set(key, v);
    return v;
  }

  /**
   * One linearizable read of every key on every node, each retried until ok: nodes in parallel, a
   * node's keys FINAL_READS_IN_FLIGHT at a time, all of a node's keys under one deadline.
   */
  async finalReads(ctx: WorkloadContext): Promise<void> {
    const keys = this.keysOf(ctx);
    const clients = clientsFor(ctx);
    this.finalFromIndex = ctx.recorder.events.length;
    const timeoutMs = this.options.finalReadTimeoutMs ?? FINAL_READ_TIMEOUT_MS;
    await Promise.all(
      clients.map(async (client, i) => {
        const node = ctx.names[i] ?? `node${i}`;
        const deadline = performance.now() + timeoutMs;
        const queue = [...keys];
        const missing: string[] = [];
        // Each lane is one process (a process never has two operations open).
        const lane = async (): Promise<void> => {
          let process = ctx.recorder.newProcess();
          for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
            const k = key;
            const out = await retryUntilOk(
              async (): Promise<CallOutcome<JsonValue>> => {
                const op = ctx.recorder.invoke(process, 'read', k, null, node);
                const got = await readRegister(client, k, false);
                op.complete(got);
                if (got.type === 'info') process = ctx.recorder.newProcess(); // reads are never info; kept for safety
                return got;
              },
              { timeoutMs: Math.max(0, deadline - performance.now()) },
            );
            if (out.type !== 'ok') missing.push(`${k} (${out.error})`);
          }
        };
        await Promise.all(Array.from({ length: Math.min(FINAL_READS_IN_FLIGHT, keys.length) }, lane));
        if (missing.length > 0) ctx.log(`register: no ok final read on ${node} of ${missing.join(', ')}`);
      }),
    );
  }

  /** Linearizability of the register history (checker's register model). */
  async check(ctx: WorkloadContext, timeBudgetMs: number): Promise<WorkloadVerdict> {
    const final: RegisterFinalReads = { fromIndex: this.finalFromIndex ?? ctx.recorder.events.length, nodes: ctx.names, keys: this.keysOf(ctx) };
    return registerVerdict(ctx, timeBudgetMs, final);
  }
}

/** A read of one register, as the history records it (value JSON-decoded, null when absent). */
export async function readRegister(client: JsonKvClient, key: string, serializable: boolean): Promise<CallOutcome<JsonValue>> {
  const r = await client.get(key, { serializable });
  return r.type === 'ok' ? { type: 'ok', value: registerValueOf(r.value.value) } : r;
}

function okAs<T>(out: CallOutcome<T>, value: JsonValue): CallOutcome<JsonValue> {
  return out.type === 'ok' ? { type: 'ok', value } : out;
}

/** The 'final-reads' check: every node read every key ok after the heal ('unknown' when one did not). */
export function checkFinalReads(events: WorkloadContext['recorder']['events'], final: RegisterFinalReads): WorkloadVerdict['checks'][number] {
  const ok = new Set<string>();
  for (let i = final.fromIndex; i < events.length; i++) {
    const e = events[i];
    if (e !== undefined && e.type === 'ok' && e.f === 'read' && e.node !== undefined) ok.add(`${e.node}\u0000${e.key}`);
  }
  const without = final.nodes.map((n) => ({ node: n, keys: final.keys.filter((k) => !ok.has(`${n}\u0000${k}`)) })).filter((x) => x.keys.length > 0);
  const expected = final.nodes.length * final.keys.length;
  if (without.length === 0) return { name: 'final-reads', valid: true, summary: `an ok final read of each of ${final.keys.length} keys on each of ${final.nodes.length} nodes` };
  const missing = without.reduce((n, x) => n + x.keys.length, 0);
  const list = without.map((x) => `${x.node}: ${x.keys.length > 5 ? `${x.keys.slice(0, 5).join(', ')} and ${x.keys.length - 5} more` : x.keys.join(', ')}`).join('; ');
  return { name: 'final-reads', valid: 'unknown', summary: `${missing} of ${expected} final reads never returned ok (${list})` };
}

/**
 * The verdict on ctx.recorder's register history: linearizability, and with `final` the
 * 'final-reads' check (a missing final read makes the verdict unknown, never valid).
 */
export function registerVerdict(ctx: Pick<WorkloadContext, 'recorder'>, timeBudgetMs: number, final?: RegisterFinalReads): WorkloadVerdict {
  const { check, result, anomalies } = checkLinearizability(ctx.recorder.events, 'register', timeBudgetMs);
  const checks = final === undefined ? [check] : [check, checkFinalReads(ctx.recorder.events, final)];
  const valid = combineChecks(checks);
  const summary = valid === true ? checks.map((c) => c.summary).join('; ') : checks.filter((c) => c.valid !== true).map((c) => (c === check ? c.summary : `${c.name}: ${c.summary}`)).join('; ');
  return {
    valid,
    checks,
    summary,
    ...capAnomalies(anomalies),
    ...(result === null ? {} : { linearizability: result }),
    model: 'register',
  };
}
