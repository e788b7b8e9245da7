// What the benchmark needs from a cluster under test: Ballot's Raft node processes and the etcd
// reference implement the same interface, so the load and failover logic is shared and identical.

import { request, type Agent } from 'node:http';

/** A failed request, with a stable code for counting (the server's code, or a client-side one). */
export class BenchRequestError extends Error {
  override readonly name = 'BenchRequestError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A client able to run closed-loop proposers against one cluster. */
export interface ProposeClient {
  /**
   * Proposes one payload (the worker's 256 bytes) and resolves once the cluster acknowledged it
   * as committed. Follows leader redirects; rejects with BenchRequestError on any other failure.
   */
  propose(worker: number): Promise<void>;
  /** One attempt at one member, no redirect: true if that member acknowledged a commit. */
  tryProposeAt(member: string, timeoutMs: number): Promise<boolean>;
  /** Opens connections to the given members ahead of time (so connecting is not measured). */
  warm(members: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

export interface BenchCluster {
  readonly system: 'ballot' | 'etcd';
  readonly members: readonly string[];
  /** The leader election timeout the cluster was configured with (base value, before randomization). */
  readonly electionTimeoutMs: number;
  start(): Promise<void>;
  /** Resolves with the leader's name once every running member agrees on one leader. */
  waitForLeader(timeoutMs: number): Promise<string>;
  /** Resolves once every member (running or not) runs and has applied the leader's commit index. */
  waitCaughtUp(timeoutMs: number): Promise<void>;
  /** PIDs of running members, by name. */
  pids(): ReadonlyMap<string, number>;
  /** SIGKILL by PID; resolves once the process is gone. */
  kill(member: string): Promise<void>;
  /** Starts a stopped member again on the same data directory and address. */
  restart(member: string): Promise<void>;
  openClient(concurrency: number, payloadBytes: number): Promise<ProposeClient>;
  stop(): Promise<void>;
  /** Configuration worth recording in the results. */
  describe(): Readonly<Record<string, unknown>>;
}

/** Random payload bytes (fixed per worker, so generating them costs nothing during the run). */
export function randomPayload(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = Math.floor(Math.random() * 256);
  return out;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Default bound on an answer's body read by postOverAgent (a 1000-key range of 256-byte values is ~0.5 MB). */
export const MAX_ANSWER_BYTES = 8 * 2 ** 20;

/**
 * POSTs a JSON body over a keep-alive agent (the benchmarks' JSON clients, fair to both sides);
 * resolves with the status and text of any answer; rejects with a BenchRequestError when no answer
 * comes within `timeoutMs` (CLIENT_TIMEOUT), the connection fails (DISCONNECTED) or the body passes
 * `maxAnswerBytes` (ANSWER_TOO_LARGE).
 */
export function postOverAgent(
  agent: Agent,
  { host, port }: HostPort,
  path: string,
  body: Buffer,
  timeoutMs: number,
  maxAnswerBytes = MAX_ANSWER_BYTES,
): Promise<{ readonly status: number; readonly text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host, port, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxAnswerBytes) {
            req.destroy(new BenchRequestError('ANSWER_TOO_LARGE', `more than ${maxAnswerBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => reject(err instanceof BenchRequestError ? err : new BenchRequestError('DISCONNECTED', err.message)));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new BenchRequestError('CLIENT_TIMEOUT', `no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(err instanceof BenchRequestError ? err : new BenchRequestError('DISCONNECTED', err.message)));
    req.end(body);
  });
}

/** Leaves a kept-alive socket per endpoint in the agent's pool (a GET of `path`, answer discarded; failures ignored). */
export async function warmAgent(agent: Agent, endpoints: readonly HostPort[], path: string): Promise<void> {
  await Promise.all(
    endpoints.map(
      ({ host, port }) =>
        new Promise<void>((resolve) => {
          const req = request({ agent, host, port, path }, (res) => {
            res.resume();
            res.on('end', () => resolve());
          });
          req.setTimeout(2000, () => req.destroy());
          req.on('error', () => resolve());
          req.end();
        }),
    ),
  );
}

/** GET a JSON document with a timeout; throws on non-2xx. */
export async function getJson(url: string, timeoutMs = 1000): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return (await res.json()) as unknown;
}

/** POST a JSON body and parse the JSON answer; throws on non-2xx. */
export async function postJson(url: string, body: unknown, timeoutMs = 1000): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`POST ${url}: HTTP ${res.status}`);
  return (await res.json()) as unknown;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The last lines of a log file, for error messages. */
export async function tailOf(file: string, lines = 15): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  try {
    const text = await readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
