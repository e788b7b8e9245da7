// The peer listener's own endpoints (beside ws /raft, owned by WsTransport, and ws /snapshot,
// owned by SnapshotStreamer):
//
//   ws  /kv/forward   followers' calls for the leader (service.ts ForwardedCall), pipelined:
//                     frames msgpack { id, call } → { id, ok: true, answer } | { id, ok: false,
//                     code, message }, answered in any order. One connection per follower and
//                     leader, opened on first use (the ws upgrade carries the cluster id).
//   GET /kv/cluster   JSON: cluster id, bootstrap configuration, members' peer URLs, leader —
//                     what a member started with --initial-cluster-state existing reads first.
//
// Forwarding is one hop. Bounds: requests in flight per follower (maxForwardsInFlight; past it
// QUEUE_FULL at once) and per incoming connection on the leader (the same bound; past it the
// leader answers QUEUE_FULL), frame size (maxFrameBytes). Outcomes: a call that could not be sent
// (no connection) certainly did nothing: NO_LEADER. A call sent on a connection that then broke
// may or may not have been applied: LEADER_CHANGED (a client retries with its session for
// exactly-once). No answer by the deadline: TIMEOUT (outcome unknown).

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Packr } from 'msgpackr';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { ClusterConfig, NodeId } from '@ballot/raft';
import { ETCD_MESSAGES, KvError, toKvError, type KvErrorCode } from '../errors.js';
import type { Answer } from '../types.js';
import type { ForwardedCall, Forwarder, NodeKvService } from './service.js';
import type { PeerBook } from './peers.js';

export const FORWARD_PATH = '/kv/forward';
export const CLUSTER_PATH = '/kv/cluster';
/** The upgrade header carrying the sender's cluster id (a member of another cluster is refused). */
export const CLUSTER_HEADER = 'x-ballot-cluster';

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

interface PendingForward {
  readonly resolve: (answer: Answer<unknown>) => void;
  readonly reject: (e: KvError) => void;
  readonly deadlineMs: number;
}

interface ForwardLink {
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly pending: Map<number, PendingForward>;
}

/** The follower's side: one pipelined ws connection to the leader's peer URL. */
export class WsForwarder implements Forwarder {
  private readonly links = new Map<string, ForwardLink>();
  private nextId = 1;
  private inFlight = 0;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly book: PeerBook,
    private readonly clusterId: string,
    private readonly maxForwardsInFlight = 16_384,
    private readonly maxFrameBytes = 64 * 1024 * 1024,
    private readonly onResult: (result: 'ok' | 'failed') => void = () => undefined,
  ) {}

  async forward(leader: NodeId, call: ForwardedCall, timeoutMs: number): Promise<Answer<unknown>> {
    const base = this.book.baseUrl(leader);
    if (base === undefined || this.closed) throw new KvError('NO_LEADER', `${ETCD_MESSAGES.NO_LEADER} (the leader ${leader}'s peer URL is unknown here)`);
    if (this.inFlight >= this.maxForwardsInFlight) throw new KvError('QUEUE_FULL', `${this.inFlight} requests are already being forwarded to the leader`);
    this.inFlight++;
    try {
      const answer = await this.send(`${base.replace(/^http/, 'ws')}${FORWARD_PATH}`, call, timeoutMs);
      this.onResult('ok');
      return answer;
    } catch (e) {
      this.onResult('failed');
      throw toKvError(e);
    } finally {
      this.inFlight--;
    }
  }

  private link(url: string): ForwardLink {
    const existing = this.links.get(url);
    if (existing !== undefined && existing.ws.readyState <= WebSocket.OPEN) return existing;
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: this.maxFrameBytes, headers: { [CLUSTER_HEADER]: this.clusterId } });
    const pending = new Map<number, PendingForward>();
    const opened = new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (e) => reject(e));
    });
    opened.catch(() => undefined);
    const link: ForwardLink = { ws, opened, pending };
    ws.on('message', (data: RawData) => {
      let reply: ForwardReply & { readonly id: number };
      try {
        reply = packr.unpack(toBuffer(data)) as ForwardReply & { readonly id: number };
      } catch {
        ws.terminate();
        return;
      }
      // Whatever answers at the leader's peer URL may not be a Ballot member: check the shape.
      if (typeof reply !== 'object' || reply === null || !Number.isSafeInteger(reply.id)) {
        ws.terminate();
        return;
      }
      const p = pending.get(reply.id);
      if (p === undefined) return; // timed out meanwhile
      pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.answer);
      else p.reject(new KvError(reply.code, reply.message));
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (this.links.get(url) === link) this.links.delete(url);
      for (const p of pending.values()) {
        p.reject(new KvError('LEADER_CHANGED', `${ETCD_MESSAGES.LEADER_CHANGED} (the connection to the leader closed with the request in flight; its outcome is unknown)`));
      }
      pending.clear();
    });
    this.links.set(url, link);
    return link;
  }

  private async send(url: string, call: ForwardedCall, timeoutMs: number): Promise<Answer<unknown>> {
    const link = this.link(url);
    try {
      await link.opened;
    } catch (e) {
      if (this.links.get(url) === link) this.links.delete(url);
      throw new KvError('NO_LEADER', `${ETCD_MESSAGES.NO_LEADER} (the leader is unreachable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (link.ws.readyState !== WebSocket.OPEN) throw new KvError('NO_LEADER', `${ETCD_MESSAGES.NO_LEADER} (the connection to the leader is closing)`);
    const id = this.nextId++;
    const frame = packr.pack({ id, call });
    if (frame.byteLength > this.maxFrameBytes) throw new KvError('REQUEST_TOO_LARGE', `${ETCD_MESSAGES.REQUEST_TOO_LARGE} (forwarded frame of ${frame.byteLength} bytes)`);
    return new Promise<Answer<unknown>>((resolve, reject) => {
      link.pending.set(id, { resolve, reject, deadlineMs: Date.now() + timeoutMs });
      this.ensureSweeper();
      link.ws.send(frame);
    });
  }

  /** Fails forwarded calls past their deadline (TIMEOUT: the outcome is unknown). */
  private ensureSweeper(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      let any = false;
      for (const link of this.links.values()) {
        for (const [id, p] of link.pending) {
          any = true;
          if (p.deadlineMs > now) continue;
          link.pending.delete(id);
          p.reject(new KvError('TIMEOUT', `${ETCD_MESSAGES.TIMEOUT} (forwarded to the leader, no answer in time; its outcome is unknown)`));
        }
      }
      if (!any && this.sweeper !== null) {
        clearInterval(this.sweeper);
        this.sweeper = null;
      }
    }, 100);
    this.sweeper.unref();
  }

  close(): void {
    this.closed = true;
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const link of this.links.values()) link.ws.terminate();
    this.links.clear();
  }
}

/**
 * The leader's side: accepts ws /kv/forward upgrades from members of this cluster and answers
 * every call with handleForwarded (which never forwards again). Returns a close function.
 */
export function attachForwardServer(
  server: Server,
  ctx: { readonly service: NodeKvService; readonly clusterId: string; readonly maxFrameBytes: number; readonly maxInFlightPerConnection: number; readonly logger?: Logger },
): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: ctx.maxFrameBytes });
  let closing = false;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (new URL(req.url ?? '/', 'http://peer').pathname !== FORWARD_PATH) return;
    if (closing || req.headers[CLUSTER_HEADER] !== ctx.clusterId) {
      socket.end(`HTTP/1.1 ${closing ? '503 Service Unavailable' : '403 Forbidden'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serveForwards(ws, ctx));
  });
  return {
    close(): void {
      closing = true;
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}

function serveForwards(ws: WebSocket, ctx: { readonly service: NodeKvService; readonly maxInFlightPerConnection: number; readonly logger?: Logger }): void {
  let inFlight = 0;
  const reply = (id: number, r: ForwardReply): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(packr.pack({ id, ...r }));
  };
  const fail = (id: number, e: unknown): void => {
    const k = toKvError(e);
    reply(id, { ok: false, code: k.code, message: k.message });
  };
  ws.on('error', (e) => ctx.logger?.debug({ err: e.message }, 'forward connection error'));
  ws.on('message', (data: RawData) => {
    let frame: { id: number; call: ForwardedCall };
    try {
      frame = packr.unpack(toBuffer(data)) as { id: number; call: ForwardedCall };
      if (typeof frame !== 'object' || frame === null || !Number.isSafeInteger(frame.id)) throw new Error('no request id');
    } catch (e) {
      // Without an id nothing can be answered: the peer is broken; drop its connection.
      ctx.logger?.warn({ err: (e as Error).message }, 'malformed forward frame: closing that connection');
      ws.close(1007, 'malformed forward frame');
      return;
    }
    const { id, call } = frame;
    if (typeof call !== 'object' || call === null || !FORWARD_METHODS.has(call.method) || !Array.isArray(call.args)) {
      return fail(id, new KvError('BAD_REQUEST', 'malformed forwarded request: not a forwarded call'));
    }
    if (inFlight >= ctx.maxInFlightPerConnection) return fail(id, new KvError('QUEUE_FULL', `${inFlight} forwarded requests already in flight on this connection`));
    inFlight++;
    ctx.service.handleForwarded(call).then(
      (answer) => {
        inFlight--;
        reply(id, { ok: true, answer });
      },
      (e: unknown) => {
        inFlight--;
        fail(id, e);
      },
    );
  });
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Handles the peer listener's own HTTP routes; returns false for anything else. */
export function handlePeerRequest(req: IncomingMessage, res: ServerResponse, ctx: { readonly cluster: () => ClusterInfo }): boolean {
  const path = new URL(req.url ?? '/', 'http://peer').pathname;
  if (path !== CLUSTER_PATH || req.method !== 'GET') return false;
  req.resume();
  const body = JSON.stringify(ctx.cluster());
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
  return true;
}

