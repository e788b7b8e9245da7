// The etcd v3 JSON API client of bench:kv, identical for etcd and Ballot: HTTP/1.1 keep-alive
// agents (one socket per concurrent worker per member, as HTTP/1.1 has no pipelining in Node),
// POST /v3/kv/{put,range,txn} with base64 keys and values; every answer is parsed and checked.

import { Agent } from 'node:http';
import { BenchRequestError, postOverAgent, randomPayload, warmAgent, type HostPort } from '../raft/cluster.js';
import type { KvAccess } from './access.js';
import {
  checkGet,
  checkModRevisions,
  checkPut,
  checkTxn,
  getBody,
  prefixRangeBody,
  putBody,
  txnBody,
  type Checked,
  type TxnOutcome,
} from './workload.js';

export type Endpoint = HostPort;

export interface JsonKvAccessOptions {
  readonly label: string;
  /** Worker w talks to endpoints[w mod length] (one entry: every worker to that member). */
  readonly endpoints: readonly Endpoint[];
  /** Workers that will run at once (sizes the socket pool). */
  readonly clients: number;
  readonly valueBytes: number;
  readonly requestTimeoutMs?: number;
}

export class JsonKvAccess implements KvAccess {
  readonly label: string;
  private readonly agent: Agent;
  private readonly values: readonly string[];
  private readonly timeoutMs: number;

  constructor(private readonly opts: JsonKvAccessOptions) {
    this.label = opts.label;
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.clients + 8, maxFreeSockets: opts.clients + 8 });
    // One fixed random value per worker (base64 once, so encoding costs nothing during the run).
    this.values = Array.from({ length: Math.max(1, opts.clients) }, () => Buffer.from(randomPayload(opts.valueBytes)).toString('base64'));
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
  }

  private endpoint(worker: number): Endpoint {
    return this.opts.endpoints[worker % this.opts.endpoints.length] as Endpoint;
  }

  private value(worker: number): string {
    return this.values[worker % this.values.length] as string;
  }

  /** POSTs a JSON body; resolves with the parsed answer of a 200, rejects with a BenchRequestError otherwise. */
  async post(worker: number, path: string, body: string): Promise<unknown> {
    const { status, text } = await postOverAgent(this.agent, this.endpoint(worker), path, Buffer.from(body, 'utf8'), this.timeoutMs);
    if (status !== 200) throw new BenchRequestError(`HTTP_${status}`, text.slice(0, 300));
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new BenchRequestError('BAD_JSON', text.slice(0, 300));
    }
  }

  private async call<T>(worker: number, path: string, body: string, check: (answer: unknown) => Checked<T>): Promise<T> {
    const checked = check(await this.post(worker, path, body));
    if (!checked.ok) throw new BenchRequestError(checked.code, checked.message);
    return checked.value;
  }

  async put(worker: number, key: string): Promise<void> {
    await this.call(worker, '/v3/kv/put', putBody(key, this.value(worker)), checkPut);
  }

  async get(worker: number, key: string, serializable: boolean): Promise<void> {
    await this.call(worker, '/v3/kv/range', getBody(key, serializable), (a) => checkGet(a, key, this.opts.valueBytes));
  }

  txn(worker: number, key: string, expectedModRevision: number): Promise<TxnOutcome> {
    return this.call(worker, '/v3/kv/txn', txnBody(key, expectedModRevision, this.value(worker)), checkTxn);
  }

  modRevisions(prefix: string, count: number): Promise<ReadonlyMap<string, number>> {
    return this.call(0, '/v3/kv/range', prefixRangeBody(prefix), (a) => checkModRevisions(a, count));
  }

  /** Opens a kept-alive socket per member ahead of the measurement (GET /health). */
  async warm(): Promise<void> {
    await warmAgent(this.agent, this.opts.endpoints, '/health');
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
