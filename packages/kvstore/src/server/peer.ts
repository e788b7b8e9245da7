// The peer listener's own endpoints (beside ws /raft, owned by WsTransport, and ws /snapshot,
// owned by SnapshotStreamer):
//
//   POST /kv/forward   a follower's call for the leader (service.ts ForwardedCall), msgpack body;
//                      answers msgpack { ok: true, answer } | { ok: false, code, message }.
//   GET  /kv/cluster   JSON: cluster id, bootstrap configuration, members' peer URLs, leader —
//                      what a member started with --initial-cluster-state existing reads first.
//
// Forwarding is one hop over a keep-alive HTTP agent (bounded sockets, bounded requests in flight
// per member: past maxForwardsInFlight a request is refused with QUEUE_FULL). A request that
// could not be delivered (connection refused) certainly did nothing: NO_LEADER. One whose
// connection broke after it was sent may or may not have been applied: LEADER_CHANGED (the
// client retries with its session for exactly-once).

import { Agent, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { Packr } from 'msgpackr';
import type { ClusterConfig, NodeId } from '@ballot/raft';
import { ETCD_MESSAGES, KvError, toKvError, type KvErrorCode } from '../errors.js';
import type { Answer } from '../types.js';
import type { ForwardedCall, Forwarder, NodeKvService } from './service.js';
import type { PeerBook } from './peers.js';

export const FORWARD_PATH = '/kv/forward';
export const CLUSTER_PATH = '/kv/cluster';

const packr = new Packr({ useRecords: false, moreTypes: false });

const FORWARD_METHODS = new Set<ForwardedCall['method']>(['write', 'leaseKeepAlive', 'leaseTimeToLive', 'leaseLeases', 'memberAdd', 'memberRemove', 'memberPromote']);

type ForwardReply = { readonly ok: true; readonly answer: Answer<unknown> } | { readonly ok: false; readonly code: KvErrorCode; readonly message: string };

/** What GET /kv/cluster answers. */
export interface ClusterInfo {
  readonly clusterId: string;
  readonly bootstrap: ClusterConfig;
  readonly config: ClusterConfig;
  readonly peers: Readonly<Record<NodeId, readonly string[]>>;
  readonly leader: NodeId | null;
}

export class HttpForwarder implements Forwarder {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 });
  private inFlight = 0;

  constructor(
    private readonly book: PeerBook,
    private readonly clusterId: string,
    private readonly maxForwardsInFlight = 16_384,
    private readonly onResult: (result: 'ok' | 'failed') => void = () => undefined,
  ) {}

  async forward(leader: NodeId, call: ForwardedCall, timeoutMs: number): Promise<Answer<unknown>> {
    const base = this.book.baseUrl(leader);
    if (base === undefined) throw new KvError('NO_LEADER', `${ETCD_MESSAGES.NO_LEADER} (the leader ${leader}'s peer URL is unknown here)`);
    if (this.inFlight >= this.maxForwardsInFlight) throw new KvError('QUEUE_FULL', `${this.inFlight} requests are already being forwarded to the leader`);
    this.inFlight++;
    try {
      const reply = await this.post(`${base}${FORWARD_PATH}`, packr.pack(call), timeoutMs);
      if (reply.ok) {
        this.onResult('ok');
        return reply.answer;
      }
      this.onResult('failed');
      throw new KvError(reply.code, reply.message);
    } catch (e) {
      if (!(e instanceof KvError)) this.onResult('failed');
      throw toKvError(e);
    } finally {
      this.inFlight--;
    }
  }

  private post(url: string, body: Uint8Array, timeoutMs: number): Promise<ForwardReply> {
    return new Promise<ForwardReply>((resolve, reject) => {
      let sent = false;
      const req = request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/msgpack', 'content-length': body.byteLength, 'x-ballot-cluster': this.clusterId },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new KvError('LEADER_CHANGED', `${ETCD_MESSAGES.LEADER_CHANGED} (the forwarded request's answer was cut: ${e.message}; its outcome is unknown)`)));
          res.on('end', () => {
            try {
              const v = packr.unpack(Buffer.concat(chunks)) as ForwardReply;
              if (typeof v !== 'object' || v === null || typeof v.ok !== 'boolean') throw new Error('malformed reply');
              resolve(v);
            } catch (e) {
              reject(new KvError('INTERNAL', `the leader answered a forwarded request with HTTP ${res.statusCode} and an unreadable body: ${(e as Error).message}`));
            }
          });
        },
      );
      req.setTimeout(timeoutMs, () => {
        req.destroy(new KvError('TIMEOUT', `${ETCD_MESSAGES.TIMEOUT} (forwarded to the leader, no answer within ${timeoutMs} ms; its outcome is unknown)`));
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof KvError) return reject(e);
        if (!sent || e.code === 'ECONNREFUSED' || e.code === 'EHOSTUNREACH') {
          return reject(new KvError('NO_LEADER', `${ETCD_MESSAGES.NO_LEADER} (the leader is unreachable: ${e.code ?? e.message})`));
        }
        reject(new KvError('LEADER_CHANGED', `${ETCD_MESSAGES.LEADER_CHANGED} (connection to the leader lost after the request was sent: ${e.code ?? e.message}; its outcome is unknown)`));
      });
      req.on('finish', () => (sent = true));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Handles the peer listener's own routes; returns false for anything else. */
export function handlePeerRequest(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: { readonly service: NodeKvService; readonly clusterId: string; readonly cluster: () => ClusterInfo; readonly maxBodyBytes: number },
): boolean {
  const path = new URL(req.url ?? '/', 'http://peer').pathname;
  if (path === CLUSTER_PATH && req.method === 'GET') {
    const body = JSON.stringify(ctx.cluster());
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  }
  if (path !== FORWARD_PATH || req.method !== 'POST') return false;
  const reply = (r: ForwardReply, status = 200): void => {
    const bytes = packr.pack(r);
    if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/msgpack', 'content-length': bytes.byteLength });
    res.end(bytes);
  };
  const fail = (e: unknown): void => {
    const k = toKvError(e);
    reply({ ok: false, code: k.code, message: k.message });
  };
  if (req.headers['x-ballot-cluster'] !== ctx.clusterId) {
    req.resume();
    fail(new KvError('BAD_REQUEST', `forwarded request from another cluster (${String(req.headers['x-ballot-cluster'])}, this is ${ctx.clusterId})`));
    return true;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > ctx.maxBodyBytes) {
      tooLarge = true;
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (tooLarge) return fail(new KvError('REQUEST_TOO_LARGE', `${ETCD_MESSAGES.REQUEST_TOO_LARGE} (forwarded body of ${size} bytes)`));
    let call: ForwardedCall;
    try {
      const v = packr.unpack(Buffer.concat(chunks)) as ForwardedCall;
      if (typeof v !== 'object' || v === null || !FORWARD_METHODS.has(v.method) || !Array.isArray(v.args)) throw new Error('not a forwarded call');
      call = v;
    } catch (e) {
      return fail(new KvError('BAD_REQUEST', `malformed forwarded request: ${(e as Error).message}`));
    }
    ctx.service.handleForwarded(call).then((answer) => reply({ ok: true, answer }), fail);
  });
  req.on('error', () => undefined);
  return true;
}

/** A stopping member's answer on the peer listener: nothing was done (STOPPED), in the forward reply's format. */
export function refuseStopping(res: ServerResponse): void {
  const bytes = packr.pack({ ok: false, code: 'STOPPED', message: 'the leader is stopping; nothing was proposed' } satisfies ForwardReply);
  res.writeHead(503, { 'content-type': 'application/msgpack', 'content-length': bytes.byteLength, connection: 'close' });
  res.end(bytes);
}
