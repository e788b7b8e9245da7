// The Raft node process: one LevelDB log, one RaftDriver, and one HTTP server on --listen that
// carries everything:
//
//   GET  /status    JSON: role, term, leader, commit/applied/last index, followers' progress,
//                   the applied-log digest and the transport's counters
//   POST /propose   body = raw bytes → 200 {"index","term"} once applied here; errors carry the
//                   HTTP status of their RaftError code, NOT_LEADER (421) names the leader and its address
//   GET  /read      → 200 {"index"} once a linearizable read barrier (thesis §6.4) has passed here
//   ws   /client    pipelined msgpack requests {id, op:'propose', data} | {id, op:'read'}
//   ws   /raft      the peer transport (WsTransport owns these upgrades)
//
// Followers do not forward proposals; they redirect (NOT_LEADER + the leader's address), so a
// client always knows which node accepted its write and never pays two hops.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomInt } from 'node:crypto';
import { Packr } from 'msgpackr';
import pino, { type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';

import { HTTP_STATUS, RaftError, isRaftError } from '../core/errors.js';
import type { NodeId, ReadMode } from '../core/types.js';
import { LevelLogStorage } from '../storage/leveldb.js';
import { WsTransport } from '../transport/ws.js';
import { AppliedDigest } from './digest.js';
import { RaftDriver, type ProposeAck, type ReadAck } from './driver.js';

export interface NodeServerOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  /** Directory of this node's LevelDB (created if missing). */
  readonly dataDir: string;
  readonly listenHost: string;
  readonly listenPort: number;
  /** Every member's id → "host:port" (peer transport and client API share the address). Includes `id`. */
  readonly peers: Readonly<Record<NodeId, string>>;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly readMode: ReadMode;
  readonly logger: Logger;
  /** Bound on proposals held by the driver (queued + awaiting apply); past it: QUEUE_FULL. */
  readonly maxQueuedProposals?: number;
  /** Bound on one request body / client frame. Default 1 MiB. */
  readonly maxRequestBytes?: number;
  /** Bound on one /client connection's unanswered requests; past it: QUEUE_FULL for that request. Default 4096. */
  readonly maxInflightPerClient?: number;
  /** Deadline of an HTTP/ws request. Default 10 000 ms. */
  readonly requestTimeoutMs?: number;
}

/** Why a node refused to start; `exitCode` is what the process exits with. */
export class NodeStartError extends Error {
  override readonly name = 'NodeStartError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Exit codes of `ballot raft node`. */
export const EXIT = {
  OK: 0,
  FATAL: 1,
  USAGE: 2,
  STORAGE_CORRUPT: 3,
  WRONG_DATA_DIR: 4,
} as const;

/** Client frames on ws /client. */
export type ClientRequest =
  | { readonly id: number; readonly op: 'propose'; readonly data: Uint8Array }
  | { readonly id: number; readonly op: 'read' };
export type ClientResponse =
  | { readonly id: number; readonly ok: true; readonly index: number; readonly term?: number }
  | {
      readonly id: number;
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      readonly leader?: string;
      readonly leaderAddress?: string;
    };

const packr = new Packr({ useRecords: false });

export class NodeServer {
  private closing: Promise<void> | null = null;
  private readonly clientSockets = new Set<WebSocket>();

  private constructor(
    private readonly opts: NodeServerOptions,
    private readonly http: Server,
    private readonly clientWss: WebSocketServer,
    readonly driver: RaftDriver,
    private readonly transport: WsTransport,
    private readonly digest: AppliedDigest,
    /** The address actually bound ("host:port"). */
    readonly address: string,
  ) {}

  /**
   * Opens the log, checks it belongs to this cluster and node, verifies every record, and starts
   * serving. Throws NodeStartError (exitCode 3 for a corrupt log, 4 for a foreign data dir).
   */
  static async start(opts: NodeServerOptions): Promise<NodeServer> {
    const log = opts.logger;
    let storage: LevelLogStorage;
    try {
      storage = await LevelLogStorage.open(opts.dataDir);
    } catch (e) {
      throw startError(e);
    }
    let restored;
    try {
      const meta = await storage.readMeta();
      if (meta === null) {
        await storage.writeMeta({ clusterId: opts.clusterId, nodeId: opts.id });
      } else if (meta.clusterId !== opts.clusterId || meta.nodeId !== opts.id) {
        throw new NodeStartError(
          `data directory ${opts.dataDir} belongs to node ${meta.nodeId} of cluster ${meta.clusterId}, ` +
            `not node ${opts.id} of cluster ${opts.clusterId}; refusing to start`,
          EXIT.WRONG_DATA_DIR,
        );
      }
      restored = await storage.load();
    } catch (e) {
      await storage.close().catch(() => undefined);
      throw startError(e);
    }
    log.info(
      { dataDir: opts.dataDir, lastIndex: restored.entries.length, ...restored.hardState },
      'log loaded and verified',
    );

    const http = createServer();
    const transport = new WsTransport({
      clusterId: opts.clusterId,
      nodeId: opts.id,
      peers: opts.peers,
      server: http,
      logger: log.child({ component: 'transport' }),
    });
    const digest = new AppliedDigest();
    const driver = new RaftDriver({
      config: {
        id: opts.id,
        peers: Object.keys(opts.peers),
        electionTicks: opts.electionTicks,
        heartbeatTicks: opts.heartbeatTicks,
        readMode: opts.readMode,
        // The core's only randomness (election jitter); a fresh seed per process start.
        randomSeed: randomInt(0, 2 ** 31 - 1),
      },
      storage,
      transport,
      stateMachine: digest,
      restored,
      tickMs: opts.tickMs,
      defaultTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      logger: log.child({ component: 'driver' }),
      ...(opts.maxQueuedProposals !== undefined ? { maxQueuedProposals: opts.maxQueuedProposals } : {}),
    });
    const clientWss = new WebSocketServer({ noServer: true, maxPayload: opts.maxRequestBytes ?? 1 << 20 });

    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(opts.listenPort, opts.listenHost, () => {
        http.off('error', reject);
        resolve();
      });
    }).catch(async (e: unknown) => {
      await storage.close().catch(() => undefined);
      throw new NodeStartError(`cannot listen on ${opts.listenHost}:${opts.listenPort}: ${(e as Error).message}`, EXIT.FATAL);
    });
    const bound = http.address();
    const address = typeof bound === 'object' && bound !== null ? `${opts.listenHost}:${bound.port}` : String(bound);

    const node = new NodeServer(opts, http, clientWss, driver, transport, digest, address);
    http.on('request', (req, res) => node.onRequest(req, res));
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => node.onUpgrade(req, socket, head));
    try {
      await driver.start();
    } catch (e) {
      await node.close();
      throw startError(e);
    }
    log.info({ address, id: opts.id, peers: opts.peers, clusterId: opts.clusterId }, 'listening');
    return node;
  }

  /** Stops serving, then the driver (which closes the transport and the storage). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const ws of this.clientSockets) ws.terminate();
      this.clientWss.close();
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.http.closeAllConnections();
      await this.driver.stop();
      await closed;
    })();
    return this.closing;
  }

  status(): Record<string, unknown> {
    const st = this.driver.status();
    return {
      id: st.id,
      role: st.role,
      term: st.term,
      leader: st.leader,
      leaderAddress: st.leader === null ? null : (this.opts.peers[st.leader] ?? null),
      commit: st.commit,
      applied: st.applied,
      lastIndex: st.lastIndex,
      lastTerm: st.lastTerm,
      vote: st.vote,
      progress: st.progress,
      appliedDigest: this.digest.hex,
      appliedCount: this.digest.count,
      appliedNormalCount: this.digest.normalCount,
      pendingProposals: st.pendingProposals,
      pendingReads: st.pendingReads,
      running: st.running,
      transport: this.transport.stats(),
      clusterId: this.opts.clusterId,
      address: this.address,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://node');
    const route = `${req.method ?? 'GET'} ${url.pathname}`;
    switch (route) {
      case 'GET /status':
        return sendJson(res, 200, this.status());
      case 'POST /propose':
        readBody(req, this.opts.maxRequestBytes ?? 1 << 20).then(
          (body) =>
            this.driver.propose(body, timeoutOf(url)).then(
              (ack) => sendJson(res, 200, { index: ack.index, term: ack.term }),
              (e: unknown) => this.sendError(res, e),
            ),
          (e: unknown) => this.sendError(res, e),
        );
        return;
      case 'GET /read':
        this.driver.read(timeoutOf(url)).then(
          (ack) => sendJson(res, 200, { index: ack.index }),
          (e: unknown) => this.sendError(res, e),
        );
        return;
      default:
        if (['/status', '/propose', '/read'].includes(url.pathname)) {
          return sendJson(res, 405, { code: 'BAD_REQUEST', message: `method ${req.method} not allowed on ${url.pathname}` });
        }
        return sendJson(res, 404, { code: 'BAD_REQUEST', message: `no such endpoint: ${url.pathname}` });
    }
  }

  private errorBody(e: unknown): { status: number; body: Omit<Extract<ClientResponse, { ok: false }>, 'id' | 'ok'> } {
    if (!isRaftError(e)) {
      this.opts.logger.error({ err: e }, 'request failed unexpectedly');
      return { status: 500, body: { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) } };
    }
    const leader = e.leaderHint ?? undefined;
    const leaderAddress = leader !== undefined ? this.opts.peers[leader] : undefined;
    return {
      status: HTTP_STATUS[e.code],
      body: {
        code: e.code,
        message: e.message,
        ...(leader !== undefined ? { leader } : {}),
        ...(leaderAddress !== undefined ? { leaderAddress } : {}),
      },
    };
  }

  private sendError(res: ServerResponse, e: unknown): void {
    const { status, body } = this.errorBody(e);
    sendJson(res, status, body);
  }

  // ---------------------------------------------------------------------------------------------
  // WebSocket clients

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://node').pathname;
    if (path === '/raft') return; // the transport's
    if (path !== '/client' || this.closing) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    this.clientWss.handleUpgrade(req, socket, head, (ws) => this.onClient(ws));
  }

  private onClient(ws: WebSocket): void {
    this.clientSockets.add(ws);
    const maxInflight = this.opts.maxInflightPerClient ?? 4096;
    let inflight = 0;
    const reply = (r: ClientResponse): void => {
      if (ws.readyState === ws.OPEN) ws.send(packr.pack(r));
    };
    const fail = (id: number, e: unknown): void => {
      reply({ id, ok: false, ...this.errorBody(e).body });
    };
    ws.on('close', () => this.clientSockets.delete(ws));
    ws.on('error', (e) => this.opts.logger.debug({ err: e }, 'client socket error'));
    ws.on('message', (raw: RawData, isBinary: boolean) => {
      const req = isBinary ? decodeClientRequest(raw) : null;
      if (req === null) {
        this.opts.logger.warn('malformed /client frame: closing that connection');
        ws.close(1007, 'malformed request frame');
        return;
      }
      if (inflight >= maxInflight) {
        fail(req.id, new RaftError('QUEUE_FULL', `${inflight} requests already in flight on this connection`));
        return;
      }
      inflight++;
      const done = (): void => {
        inflight--;
      };
      const pending: Promise<ProposeAck | ReadAck> =
        req.op === 'propose' ? this.driver.propose(req.data) : this.driver.read();
      pending.then(
        (ack) => {
          done();
          reply('term' in ack ? { id: req.id, ok: true, index: ack.index, term: ack.term } : { id: req.id, ok: true, index: ack.index });
        },
        (e: unknown) => {
          done();
          fail(req.id, e);
        },
      );
    });
  }
}

function decodeClientRequest(raw: RawData): ClientRequest | null {
  let value: unknown;
  try {
    const bytes = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
    value = packr.unpack(bytes);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'number' || !Number.isSafeInteger(v.id)) return null;
  if (v.op === 'read') return { id: v.id, op: 'read' };
  if (v.op === 'propose' && v.data instanceof Uint8Array) return { id: v.id, op: 'propose', data: v.data };
  return null;
}

function timeoutOf(url: URL): { timeoutMs?: number } {
  const t = Number(url.searchParams.get('timeoutMs'));
  return Number.isFinite(t) && t > 0 ? { timeoutMs: t } : {};
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a request body of at most maxBytes (BAD_REQUEST beyond: the bound protects the node's memory). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        reject(new RaftError('BAD_REQUEST', `request body exceeds ${maxBytes} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function startError(e: unknown): NodeStartError {
  if (e instanceof NodeStartError) return e;
  if (isRaftError(e) && e.code === 'STORAGE_CORRUPT') return new NodeStartError(e.message, EXIT.STORAGE_CORRUPT);
  return new NodeStartError(e instanceof Error ? e.message : String(e), EXIT.FATAL);
}

/** pino to stdout: JSON lines, pretty only when stdout is a terminal. Synchronous, so nothing is lost on exit. */
export function createNodeLogger(level: LevelWithSilent, base: Record<string, unknown>): Logger {
  const stream = process.stdout.isTTY ? pretty({ colorize: true, sync: true }) : pino.destination({ dest: 1, sync: true });
  return pino({ level, base }, stream);
}

/**
 * The process entry of `ballot raft node`: starts the node, stops it gracefully on SIGTERM/SIGINT
 * (exit 0), and exits non-zero when it cannot start (3: corrupt log, 4: foreign data dir) or hits a
 * fatal error while running (1: e.g. a failed fsync; the node never continues after one).
 */
export async function runNodeProcess(opts: NodeServerOptions): Promise<never> {
  const log = opts.logger;
  let node: NodeServer;
  try {
    node = await NodeServer.start(opts);
  } catch (e) {
    const err = startError(e);
    log.fatal({ exitCode: err.exitCode }, err.message);
    process.stderr.write(`ballot raft node ${opts.id}: refusing to start: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  const shutdown = (signal: string, code: number): void => {
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(code), 5000);
    force.unref();
    node.close().then(
      () => {
        log.info('stopped');
        process.exit(code);
      },
      (e: unknown) => {
        log.error({ err: e }, 'error while stopping');
        process.exit(EXIT.FATAL);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM', EXIT.OK));
  process.once('SIGINT', () => shutdown('SIGINT', EXIT.OK));
  node.driver.on('fatal', (e) => {
    process.stderr.write(`ballot raft node ${opts.id}: fatal: ${e.message}\n`);
    shutdown('fatal', EXIT.FATAL);
  });
  // Keep the process alive until a signal arrives.
  return new Promise<never>(() => undefined);
}
