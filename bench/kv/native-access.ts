// Ballot's native protocol (msgpackr over one WebSocket, pipelined) through the TypeScript client
// library, KvClient, for the same workloads and the same checks as the JSON API. Workers share
// `connections` KvClients (worker w uses client w mod connections): requests are pipelined, so one
// connection carries many workers, as Ballot's own components will use it.

import { randomPayload, BenchRequestError } from '../raft/cluster.js';
import type { KvAccess } from './access.js';
import { prefixEnd, type TxnOutcome } from './workload.js';

// What the bench uses of KvClient (which implements KvService from @ballot/kvstore's types.ts),
// written out structurally: the client is loaded at run time, so building bench/ does not wait for
// (or break with) the kvstore package; these shapes are the contract's, in the same names.
interface NativeHeader {
  readonly revision: number;
}
interface NativeKv {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly modRevision: number;
}
interface NativeRangeRequest {
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  readonly serializable?: boolean;
}
interface NativeRangeResult {
  readonly kvs: readonly NativeKv[];
  readonly count: number;
}
type NativeResponseOp = { readonly range: NativeRangeResult } | { readonly put: unknown };

export interface NativeClient {
  put(req: { readonly key: Uint8Array; readonly value: Uint8Array }): Promise<{ readonly header: NativeHeader }>;
  range(req: NativeRangeRequest): Promise<{ readonly header: NativeHeader; readonly result: NativeRangeResult }>;
  txn(req: {
    readonly compare: readonly [{ readonly key: Uint8Array; readonly target: 'mod'; readonly result: 'equal'; readonly modRevision: number }];
    readonly success: readonly [{ readonly put: { readonly key: Uint8Array; readonly value: Uint8Array } }];
    readonly failure: readonly [{ readonly range: NativeRangeRequest }];
  }): Promise<{ readonly header: NativeHeader; readonly result: { readonly succeeded: boolean; readonly responses: readonly NativeResponseOp[] } }>;
  close(): Promise<void>;
}

export interface NativeClientFactory {
  connect(opts: { readonly endpoints: readonly string[]; readonly timeoutMs?: number }): Promise<NativeClient>;
}

/** KvClient from @ballot/kvstore, or why it cannot be used (not built yet, not exported). */
export async function loadKvClient(): Promise<{ readonly found: true; readonly factory: NativeClientFactory } | { readonly found: false; readonly reason: string }> {
  try {
    // A computed specifier: resolved at run time only (tsc does not need the package built).
    const specifier: string = '@ballot/kvstore';
    const mod = (await import(specifier)) as Record<string, unknown>;
    const candidate = mod.KvClient as { connect?: unknown } | undefined;
    if ((typeof candidate === 'function' || typeof candidate === 'object') && candidate !== null && typeof candidate.connect === 'function') {
      return { found: true, factory: candidate as unknown as NativeClientFactory };
    }
    return { found: false, reason: '@ballot/kvstore does not export KvClient.connect (yet)' };
  } catch (err) {
    return { found: false, reason: `cannot load @ballot/kvstore: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** A KvError (or any error with a string code) as a counted BenchRequestError. */
function asBenchError(err: unknown): BenchRequestError {
  if (err instanceof BenchRequestError) return err;
  const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : 'CLIENT_ERROR';
  return new BenchRequestError(code, err instanceof Error ? err.message : String(err));
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class NativeKvAccess implements KvAccess {
  readonly label = 'ballot-native';
  private readonly values: readonly Uint8Array[];
  private readonly keyBytes = new Map<string, Uint8Array>();

  private constructor(
    private readonly clients: readonly NativeClient[],
    workers: number,
    private readonly valueBytes: number,
  ) {
    this.values = Array.from({ length: Math.max(1, workers) }, () => randomPayload(valueBytes));
  }

  static async open(
    factory: NativeClientFactory,
    endpoints: readonly string[],
    opts: { readonly workers: number; readonly connections: number; readonly valueBytes: number; readonly timeoutMs?: number },
  ): Promise<NativeKvAccess> {
    const clients: NativeClient[] = [];
    try {
      for (let i = 0; i < opts.connections; i++) {
        clients.push(await factory.connect({ endpoints, timeoutMs: opts.timeoutMs ?? 10_000 }));
      }
    } catch (err) {
      await Promise.all(clients.map((c) => c.close()));
      throw err;
    }
    return new NativeKvAccess(clients, opts.workers, opts.valueBytes);
  }

  private client(worker: number): NativeClient {
    return this.clients[worker % this.clients.length] as NativeClient;
  }

  private key(key: string): Uint8Array {
    let bytes = this.keyBytes.get(key);
    if (bytes === undefined) {
      bytes = enc.encode(key);
      this.keyBytes.set(key, bytes);
    }
    return bytes;
  }

  private value(worker: number): Uint8Array {
    return this.values[worker % this.values.length] as Uint8Array;
  }

  private static revisionOf(header: { readonly revision: number }): number {
    if (!Number.isSafeInteger(header.revision) || header.revision < 1) {
      throw new BenchRequestError('BAD_ANSWER', `bad header.revision ${String(header.revision)}`);
    }
    return header.revision;
  }

  async put(worker: number, key: string): Promise<void> {
    try {
      const answer = await this.client(worker).put({ key: this.key(key), value: this.value(worker) });
      NativeKvAccess.revisionOf(answer.header);
    } catch (err) {
      throw asBenchError(err);
    }
  }

  async get(worker: number, key: string, serializable: boolean): Promise<void> {
    try {
      const answer = await this.client(worker).range({ key: this.key(key), serializable });
      NativeKvAccess.revisionOf(answer.header);
      const { kvs, count } = answer.result;
      if (kvs.length !== 1 || count !== 1) throw new BenchRequestError('MISSING_KEY', `expected 1 kv for ${key}, got ${kvs.length}`);
      const kv = kvs[0];
      if (kv === undefined || dec.decode(kv.key) !== key) throw new BenchRequestError('BAD_ANSWER', `answer names another key than ${key}`);
      if (kv.value.length !== this.valueBytes) throw new BenchRequestError('BAD_VALUE', `value of ${key} is not ${this.valueBytes} bytes`);
    } catch (err) {
      throw asBenchError(err);
    }
  }

  async txn(worker: number, key: string, expectedModRevision: number): Promise<TxnOutcome> {
    try {
      const k = this.key(key);
      const answer = await this.client(worker).txn({
        compare: [{ key: k, target: 'mod', result: 'equal', modRevision: expectedModRevision }],
        success: [{ put: { key: k, value: this.value(worker) } }],
        failure: [{ range: { key: k } }],
      });
      const revision = NativeKvAccess.revisionOf(answer.header);
      const [response] = answer.result.responses;
      if (answer.result.responses.length !== 1 || response === undefined) throw new BenchRequestError('BAD_ANSWER', 'txn answer needs exactly one response');
      if (answer.result.succeeded) {
        if (!('put' in response)) throw new BenchRequestError('BAD_ANSWER', 'succeeded txn without a put response');
        return { kind: 'applied', revision };
      }
      if (!('range' in response) || response.range.kvs.length !== 1) throw new BenchRequestError('BAD_ANSWER', 'failed txn without the key');
      return { kind: 'conflict', modRevision: (response.range.kvs[0] as { readonly modRevision: number }).modRevision };
    } catch (err) {
      throw asBenchError(err);
    }
  }

  async modRevisions(prefix: string, count: number): Promise<ReadonlyMap<string, number>> {
    try {
      const p = enc.encode(prefix);
      const answer = await this.client(0).range({ key: p, rangeEnd: prefixEnd(p) });
      const { kvs } = answer.result;
      if (kvs.length !== count || answer.result.count !== count) {
        throw new BenchRequestError('MISSING_KEY', `expected ${count} keys, got ${kvs.length} (count ${answer.result.count})`);
      }
      return new Map(kvs.map((kv) => [dec.decode(kv.key), kv.modRevision]));
    } catch (err) {
      throw asBenchError(err);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}
