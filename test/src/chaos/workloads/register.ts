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
// retried until ok (bounded by FINAL_READ_TIMEOUT_MS) and recorded, failed attempts included.

import type { Workload, WorkloadContext, WorkloadVerdict, JsonValue, CallOutcome } from '../types.js';
import type { JsonKvClient } from '../client.js';
import { checkLinearizability, capAnomalies, clientsFor, pinnedWorkers, retryUntilOk, runPaced, FINAL_READ_TIMEOUT_MS, type Worker } from './common.js';

export const REGISTER_DEFAULT_KEYS = 10;
/** Probabilities of each function (the rest: cas). */
export const REGISTER_MIX = { read: 0.5, write: 0.25, cas: 0.25 } as const;
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
}

export class RegisterWorkload implements Workload {
  readonly name = 'register' as const;
  /** Next value per key (values are unique per key). */
  private readonly nextValue = new Map<string, number>();
  /** The value last seen on each key, for cas expectations. */
  private readonly lastSeen = new Map<string, JsonValue>();

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

  /** One linearizable read of every key on every node (nodes in parallel), each retried until ok. */
  async finalReads(ctx: WorkloadContext): Promise<void> {
    const keys = this.keysOf(ctx);
    const clients = clientsFor(ctx);
    await Promise.all(
      clients.map(async (client, i) => {
        const node = ctx.names[i] ?? `node${i}`;
        let process = ctx.recorder.newProcess();
        for (const key of keys) {
          await retryUntilOk(
            async (): Promise<CallOutcome<JsonValue>> => {
              const op = ctx.recorder.invoke(process, 'read', key, null, node);
              const out = await readRegister(client, key, false);
              op.complete(out);
              if (out.type === 'info') process = ctx.recorder.newProcess(); // reads are never info; kept for safety
              return out;
            },
            { timeoutMs: FINAL_READ_TIMEOUT_MS },
          );
        }
      }),
    );
  }

  /** Linearizability of the register history (checker's register model). */
  async check(ctx: WorkloadContext, timeBudgetMs: number): Promise<WorkloadVerdict> {
    return registerVerdict(ctx, timeBudgetMs);
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

/** The verdict on ctx.recorder's register history. */
export function registerVerdict(ctx: Pick<WorkloadContext, 'recorder'>, timeBudgetMs: number): WorkloadVerdict {
  const { check, result, anomalies } = checkLinearizability(ctx.recorder.events, 'register', timeBudgetMs);
  return {
    valid: check.valid,
    checks: [check],
    summary: check.summary,
    ...capAnomalies(anomalies),
    ...(result === null ? {} : { linearizability: result }),
    model: 'register',
  };
}
