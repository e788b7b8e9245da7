// KvClient: Ballot's TypeScript client library. It implements KvService over the native protocol
// (native/protocol.ts), so code above the store calls the same interface whether it runs inside a
// member or talks to a cluster.
//
// - One WebSocket to one member at a time, pipelined: every call in flight shares it, several
//   requests per frame. The client prefers the leader (status() names it, memberList() gives its
//   client URL): a write served by a follower costs a forwarding hop.
// - Failure: a lost connection, or NO_LEADER / LEADER_CHANGED / STOPPED / TIMEOUT / QUEUE_FULL,
//   moves the client to another endpoint (with a bounded backoff) and retries within the call's
//   deadline (the call's opts.timeoutMs, else the client's timeoutMs; each attempt tells the
//   member its own deadline, at most attemptTimeoutMs):
//     reads (range, status, lists, time-to-live, keep-alive) are idempotent: retried;
//     writes (put, deleteRange, txn, compact, leaseGrant, leaseRevoke) carry this client's session
//     (thesis §6.3: registered once, one seq per write, the same seq on every retry, ackedSeq = the
//     highest seq below which every write is answered or given up): the store applies a seq at
//     most once and answers a retry with the first outcome, so retrying after TIMEOUT,
//     LEADER_CHANGED or a lost connection is safe;
//     membership changes are retried only when they were certainly not proposed.
// - Watches survive reconnects: the client remembers the last revision it delivered and resumes
//   from the next one on the new connection, dropping anything at or below it (no duplicates,
//   no gaps); the sink sees one `created` and, at the end, one `canceled`.
// - close() ends every socket and timer.
//
// Bounds: requests in flight per connection (maxInFlight; more wait in a queue of maxQueued, beyond
// it QUEUE_FULL), session writes not yet answered (maxPendingWrites, below the store's remembered
// outcomes per session, 1024: a retry always finds its first outcome; more wait in the same queue), one request's size (REQUEST_TOO_LARGE before sending), frame size, the backoff
// (25 ms doubling to 500 ms), attempts (until the deadline), watch resumes without progress (3).

import { WebSocket, type RawData } from 'ws';
import type { Logger } from 'pino';
import { KvError, toKvError, type KvErrorCode } from '../errors.js';
import type {
  Answer,
  CompactRequest,
  DeleteRangeRequest,
  DeleteRangeResult,
  KeyValue,
  KvService,
  LeaseGrantRequest,
  LeaseGrantResult,
  LeaseKeepAliveResult,
  LeaseTimeToLiveResult,
  Member,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  ReadOptions,
  SessionRef,
  StatusResult,
  TxnRequest,
  TxnResult,
  WatchCreateRequest,
  WatchHandle,
  WatchResponse,
  WatchSink,
  WriteOptions,
  Bytes,
} from '../types.js';
import {
  DEFAULT_LIMITS,
  DEFAULT_MAX_RESPONSE_FRAME_BYTES,
  FrameWriter,
  NATIVE_PATH,
  decodeFrame,
  encodeMessage,
  errorOf,
  parseRequest,
  parseResponse,
  tooLargeMessage,
  type NativeOp,
  type ResponseMessage,
} from '../native/protocol.js';
import { prefixRange, toBytes } from './keys.js';

export interface KvClientOptions {
  /** Client URLs of members (http://host:port, as etcd's --endpoints; ws:// also accepted). */
  readonly endpoints: readonly string[];
  /** Deadline of one call, retries included. Default 10 000. */
  readonly timeoutMs?: number;
  /** The most one attempt may take (the member is told so; it answers TIMEOUT). Default 4000. */
  readonly attemptTimeoutMs?: number;
  /** Default 2000. */
  readonly connectTimeoutMs?: number;
  /** Connect to the leader when it is known. Default true. */
  readonly preferLeader?: boolean;
  /** Requests in flight on a connection (the server's default bound). Default 4096. */
  readonly maxInFlight?: number;
  /**
   * Session writes sent and not yet answered, retries included. Default 1000: below the store's
   * bound on remembered outcomes per session (1024), so a retried seq always finds its outcome.
   */
  readonly maxPendingWrites?: number;
  /** Calls waiting for an in-flight slot. Default 100 000; beyond: QUEUE_FULL. */
  readonly maxQueued?: number;
  /** Ping interval; a member that misses a pong by the next ping is left. Default 3000. */
  readonly keepAliveMs?: number;
  readonly maxRequestBytes?: number;
  readonly maxFrameBytes?: number;
  readonly logger?: Logger;
}

type Kind = 'read' | 'write' | 'once';

const RETRYABLE: ReadonlySet<KvErrorCode> = new Set<KvErrorCode>(['NO_LEADER', 'LEADER_CHANGED', 'STOPPED', 'TIMEOUT', 'QUEUE_FULL']);
/** Errors after which this member is not worth asking again right now. */
const MOVE_ON: ReadonlySet<KvErrorCode> = new Set<KvErrorCode>(['NO_LEADER', 'LEADER_CHANGED', 'STOPPED']);
/** Errors that prove the request was not proposed (a retry cannot apply it twice). */
const NOT_PROPOSED: ReadonlySet<KvErrorCode> = new Set<KvErrorCode>(['NO_LEADER', 'QUEUE_FULL']);

/** The socket went away before the answer came (the request may or may not have been executed). */
class ConnectionLost extends KvError {
  constructor(
    url: string,
    /** False when the request was never written to the socket. */
    readonly sent: boolean,
  ) {
    super('STOPPED', `connection to ${url} lost${sent ? ' before the answer came' : ''}`);
  }
}

interface Pending {
  readonly resolve: (answer: unknown) => void;
  readonly reject: (e: KvError) => void;
  readonly deadlineMs: number;
}

interface StreamHandler {
  onMessage(m: ResponseMessage): void;
  onLost(e: KvError): void;
}

const SWEEP_MS = 250;

/** One WebSocket to one member: pipelined calls matched by id, streams (watch, snapshot) by id. */
class Conn {
  private nextId = 1;
  readonly pending = new Map<number, Pending>();
  readonly streams = new Map<number, StreamHandler>();
  private readonly writer: FrameWriter;
  private readonly timer: NodeJS.Timeout;
  private ticks = 0;
  private alive = true;
  closed = false;
  private gone = false;
  private killTimer: NodeJS.Timeout | null = null;
  /** No new calls; closes once its calls are answered. */
  retired = false;
  readonly closedPromise: Promise<void>;

  private constructor(
    readonly url: string,
    private readonly ws: WebSocket,
    private readonly maxRequestBytes: number,
    maxFrameBytes: number,
    keepAliveMs: number,
    private readonly onGone: (c: Conn) => void,
    private readonly onSlotFree: () => void,
    private readonly log: Logger | undefined,
  ) {
    this.writer = new FrameWriter((frame) => {
      if (ws.readyState === ws.OPEN) ws.send(frame);
    }, maxFrameBytes);
    this.closedPromise = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('message', (data: RawData) => this.onFrame(data));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => this.lost());
    ws.on('error', () => undefined); // 'close' follows
    const pingEvery = Math.max(1, Math.round(keepAliveMs / SWEEP_MS));
    this.timer = setInterval(() => {
      this.sweep();
      if (++this.ticks % pingEvery === 0 && ws.readyState === ws.OPEN) {
        if (!this.alive) {
          ws.terminate();
          return;
        }
        this.alive = false;
        ws.ping();
      }
    }, SWEEP_MS);
  }

  static open(
    url: string,
    timeoutMs: number,
    limits: { maxRequestBytes: number; maxFrameBytes: number; keepAliveMs: number },
    onGone: (c: Conn) => void,
    onSlotFree: () => void,
    log: Logger | undefined,
  ): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: DEFAULT_MAX_RESPONSE_FRAME_BYTES + 1024, handshakeTimeout: timeoutMs });
      let settled = false;
      const timer = setTimeout(() => fail(new KvError('STOPPED', `cannot connect to ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (e: KvError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        ws.terminate();
        reject(e);
      };
      ws.once('error', (e) => fail(new KvError('STOPPED', `cannot connect to ${url}: ${e.message}`)));
      ws.once('unexpected-response', (_req, res) => fail(new KvError('STOPPED', `cannot connect to ${url}: HTTP ${res.statusCode}`)));
      ws.once('close', () => fail(new KvError('STOPPED', `cannot connect to ${url}: closed`)));
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.removeAllListeners();
        resolve(new Conn(url, ws, limits.maxRequestBytes, limits.maxFrameBytes, limits.keepAliveMs, onGone, onSlotFree, log));
      });
    });
  }

  get busy(): number {
    return this.pending.size;
  }

  /** Sends one request; rejects with KvError (ConnectionLost when the socket goes). */
  call(op: NativeOp, args: readonly unknown[], deadlineMs: number): Promise<unknown> {
    if (this.closed) return Promise.reject(new ConnectionLost(this.url, false));
    const id = this.nextId++;
    const bytes = encodeMessage({ id, op, args });
    if (bytes.byteLength > this.maxRequestBytes) return Promise.reject(new KvError('REQUEST_TOO_LARGE', tooLargeMessage(bytes.byteLength, this.maxRequestBytes)));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadlineMs });
      this.writer.push(bytes);
    });
  }

  /** Starts a stream (watch, snapshot); returns its id. */
  stream(op: NativeOp, args: readonly unknown[], handler: StreamHandler): number {
    const id = this.nextId++;
    if (this.closed) {
      queueMicrotask(() => handler.onLost(new ConnectionLost(this.url, false)));
      return id;
    }
    this.streams.set(id, handler);
    this.writer.push(encodeMessage({ id, op, args }));
    return id;
  }

  /** Forgets a stream (frames still in flight for it are dropped). */
  detach(id: number): void {
    this.streams.delete(id);
    this.maybeFinishRetired();
  }

  /** A message that expects no answer (snapshotAck) or whose answer is ignored (watchCancel). */
  notify(op: NativeOp, args: readonly unknown[]): void {
    if (this.closed) return;
    const id = this.nextId++;
    if (op !== 'snapshotAck') this.pending.set(id, { resolve: () => undefined, reject: () => undefined, deadlineMs: Date.now() + 10_000 });
    this.writer.push(encodeMessage({ id, op, args }));
  }

  private onFrame(data: RawData): void {
    const frame = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    try {
      decodeFrame(frame, (value) => {
        const m = parseResponse(value);
        if (m === null) throw new KvError('INTERNAL', 'malformed response from the member');
        const p = this.pending.get(m.id);
        if (p !== undefined) {
          this.pending.delete(m.id);
          this.onSlotFree();
          if ('ok' in m) {
            if (m.ok) p.resolve(m.answer);
            else p.reject(errorOf(m));
          }
        } else {
          const h = this.streams.get(m.id);
          if (h !== undefined) {
            try {
              h.onMessage(m);
            } catch (e) {
              this.log?.warn({ err: (e as Error).message }, 'a watch sink threw; the watch goes on');
            }
          }
        }
      });
    } catch {
      this.ws.terminate(); // a member speaking garbage is left; calls are retried elsewhere
    }
    this.maybeFinishRetired();
  }

  private maybeFinishRetired(): void {
    if (this.retired && this.pending.size === 0 && this.streams.size === 0) this.close();
  }

  /** Rejects calls past their deadline (a backstop: the member is told the deadline and answers TIMEOUT itself). */
  private sweep(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadlineMs < now) {
        this.pending.delete(id);
        this.onSlotFree();
        p.reject(new KvError('TIMEOUT', `no answer from ${this.url} within the deadline`));
      }
    }
    this.maybeFinishRetired();
  }

  private lost(): void {
    if (this.gone) return;
    this.gone = true;
    this.closed = true;
    clearInterval(this.timer);
    this.writer.discard();
    const pending = [...this.pending.values()];
    const streams = [...this.streams.values()];
    this.pending.clear();
    this.streams.clear();
    for (const p of pending) p.reject(new ConnectionLost(this.url, true));
    for (const s of streams) s.onLost(new ConnectionLost(this.url, true));
    this.onGone(this);
  }

  close(): void {
    if (this.ws.readyState !== this.ws.CLOSED && this.ws.readyState !== this.ws.CLOSING) {
      this.writer.flush();
      this.ws.close(1000, 'client done');
      // A member that does not complete the closing handshake is cut.
      this.killTimer = setTimeout(() => this.ws.terminate(), 1000);
      this.ws.once('close', () => {
        if (this.killTimer !== null) clearTimeout(this.killTimer);
      });
    }
    this.lost();
  }
}

/** Turns a client URL (http://h:p, https://, ws://, wss://) into the native endpoint's ws URL. */
export function nativeUrl(endpoint: string): string {
  const u = new URL(endpoint.includes('://') ? endpoint : `http://${endpoint}`);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  if (u.pathname === '/' || u.pathname === '') u.pathname = NATIVE_PATH;
  return u.toString();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** A watch as the client keeps it across connections. */
class ClientWatch implements WatchHandle {
  /** The highest revision delivered (or known to be covered, by `created` or a progress notification). */
  lastRevision: number;
  created = false;
  finished = false;
  cancelRequested = false;
  conn: Conn | null = null;
  streamId = -1;
  /** Resumes since the last delivered response (bounds a loop of cancels). */
  resumesWithoutProgress = 0;
  attempts = 0;
  /** Starts since the last delivered response (the resume backoff). */
  failedStarts = 0;

  constructor(
    readonly watchId: number,
    readonly req: WatchCreateRequest,
    private readonly sink: WatchSink,
    private readonly client: KvClient,
  ) {
    this.lastRevision = req.startRevision !== undefined && req.startRevision > 0 ? req.startRevision - 1 : 0;
  }

  /** The request to send now: the original, or a resume from the next revision. */
  request(): WatchCreateRequest {
    const { watchId: _ignored, ...rest } = this.req;
    if (!this.created && this.lastRevision === 0) return rest;
    return { ...rest, startRevision: this.lastRevision + 1 };
  }

  deliver(r: WatchResponse): void {
    this.resumesWithoutProgress = 0;
    this.failedStarts = 0;
    this.sink.send(r.watchId === this.watchId ? r : { ...r, watchId: this.watchId });
  }

  finish(r: Partial<WatchResponse> & { readonly cancelReason: string }, header: WatchResponse['header'] | null): void {
    if (this.finished) return;
    this.finished = true;
    this.client.forgetWatch(this);
    this.sink.send({
      header: header ?? { clusterId: '', memberId: '', revision: this.lastRevision, raftTerm: 0 },
      watchId: this.watchId,
      canceled: true,
      events: [],
      ...r,
    });
  }

  onMessage(m: ResponseMessage): void {
    if (this.finished) return;
    if ('ok' in m) {
      if (m.ok) return;
      this.conn?.detach(this.streamId);
      this.conn = null;
      const e = errorOf(m);
      if (RETRYABLE.has(e.code)) this.client.resumeLater(this);
      else this.finish({ cancelReason: e.message }, null);
      return;
    }
    if (!('watch' in m)) return;
    const w = m.watch;
    if (w.canceled === true) {
      this.conn?.detach(this.streamId);
      this.conn = null;
      // Final when asked for, when the start revision is gone, or when the first attempt was refused;
      // otherwise (the member stopping, a slow-watcher cancel) resume from the next revision.
      const final = this.cancelRequested || w.compactRevision !== undefined || (!this.created && this.attempts <= 1) || this.resumesWithoutProgress >= 3;
      if (final) this.finish({ cancelReason: w.cancelReason ?? 'canceled', ...(w.compactRevision !== undefined ? { compactRevision: w.compactRevision } : {}) }, w.header);
      else {
        this.resumesWithoutProgress++;
        this.client.resumeLater(this);
      }
      return;
    }
    if (w.created === true) {
      if (this.created) {
        this.failedStarts = 0; // a resumed stream is up; the sink already had its `created`
        return;
      }
      this.created = true;
      if (this.lastRevision === 0) this.lastRevision = w.header.revision;
      this.deliver(w);
      return;
    }
    if (w.events.length === 0) {
      // Progress: every event up to header.revision was delivered.
      if (w.header.revision > this.lastRevision) this.lastRevision = w.header.revision;
      this.deliver(w);
      return;
    }
    let events = w.events;
    if (events[0]!.kv.modRevision <= this.lastRevision) {
      events = events.filter((e) => e.kv.modRevision > this.lastRevision);
      if (events.length === 0) return;
    }
    this.lastRevision = events[events.length - 1]!.kv.modRevision;
    this.deliver(events === w.events ? w : { ...w, events });
  }

  onLost(): void {
    this.conn = null;
    if (!this.finished) this.client.resumeLater(this);
  }

  cancel(reason?: string): void {
    if (this.finished) return;
    this.cancelRequested = true;
    const conn = this.conn;
    const done = (): void => {
      // The member's canceled response normally came first (it is sent before the answer).
      conn?.detach(this.streamId);
      this.finish({ cancelReason: reason ?? 'canceled by the client' }, null);
    };
    if (conn !== null && !conn.closed) conn.call('watchCancel', [this.streamId], Date.now() + 5000).then(done, done);
    else done();
  }

  requestProgress(): void {
    if (this.conn !== null && !this.conn.closed) this.conn.notify('watchProgress', [this.streamId]);
  }
}

/** What the client did to get answers (for tests, benchmarks and logs). */
export interface KvClientStats {
  /** Attempts repeated after a retryable error or a lost connection. */
  retries: number;
  /** Connections opened (the first one included). */
  connects: number;
  /** Watch streams started again after a reconnect or a member's cancel. */
  watchResumes: number;
  /** Writes answered from a session retry (same seq sent more than once). */
  retriedWrites: number;
}

export class KvClient implements KvService {
  readonly stats: KvClientStats = { retries: 0, connects: 0, watchResumes: 0, retriedWrites: 0 };
  private readonly endpoints: string[];
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly preferLeader: boolean;
  private readonly maxInFlight: number;
  private readonly maxPendingWrites: number;
  private readonly writeWaiting: (() => void)[] = [];
  private readonly maxQueued: number;
  private readonly limits: { maxRequestBytes: number; maxFrameBytes: number; keepAliveMs: number };
  private readonly log: Logger | undefined;

  private current: Conn | null = null;
  private connecting: Promise<Conn> | null = null;
  private readonly conns = new Set<Conn>();
  /** Where the next connection attempt starts in the endpoint list (rotates past failures). */
  private cursor = 0;
  private leaderUrl: string | null = null;
  private knownTerm = 0;
  private leaderCheck: NodeJS.Timeout | null = null;
  private closed = false;

  private readonly waiting: (() => void)[] = [];

  // Session (thesis §6.3).
  private session: Promise<number> | null = null;
  private nextSeq = 1;
  /** Seqs sent and not yet answered or given up. */
  private readonly outstanding = new Set<number>();
  private ackedSeq = 0;

  private nextWatchId = 1;
  private readonly watches = new Set<ClientWatch>();
  private readonly resumeTimers = new Set<NodeJS.Timeout>();

  private constructor(opts: KvClientOptions) {
    if (opts.endpoints.length === 0) throw new KvError('BAD_REQUEST', 'KvClient needs at least one endpoint');
    this.endpoints = opts.endpoints.map(nativeUrl);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 4000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    this.preferLeader = opts.preferLeader ?? true;
    this.maxInFlight = opts.maxInFlight ?? 4096;
    this.maxPendingWrites = opts.maxPendingWrites ?? 1000;
    this.maxQueued = opts.maxQueued ?? 100_000;
    this.limits = {
      maxRequestBytes: opts.maxRequestBytes ?? DEFAULT_LIMITS.maxRequestBytes,
      maxFrameBytes: opts.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes,
      keepAliveMs: opts.keepAliveMs ?? 3000,
    };
    this.log = opts.logger;
  }

  /** Connects to one of the endpoints (the leader when it is known) and returns the client. */
  static async connect(opts: KvClientOptions): Promise<KvClient> {
    const c = new KvClient(opts);
    try {
      await c.connection(Date.now() + c.timeoutMs);
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  /** The ws URL of the member this client talks to now (null while reconnecting). */
  get endpoint(): string | null {
    return this.current?.url ?? null;
  }

  // -------------------------------------------------------------------------------------------
  // Connections and leader discovery

  private connection(deadlineMs: number): Promise<Conn> {
    if (this.closed) return Promise.reject(new KvError('STOPPED', 'the client is closed'));
    if (this.current !== null && !this.current.closed) return Promise.resolve(this.current);
    this.connecting ??= this.discover(deadlineMs).finally(() => (this.connecting = null));
    return this.connecting;
  }

  private candidates(): string[] {
    const list: string[] = [];
    if (this.leaderUrl !== null) list.push(this.leaderUrl);
    for (let i = 0; i < this.endpoints.length; i++) list.push(this.endpoints[(this.cursor + i) % this.endpoints.length]!);
    return [...new Set(list)];
  }

  private async openConn(url: string, deadlineMs: number): Promise<Conn> {
    const conn = await Conn.open(
      url,
      Math.max(50, Math.min(this.connectTimeoutMs, deadlineMs - Date.now())),
      this.limits,
      (c) => this.onConnGone(c),
      () => this.onAnswered(),
      this.log,
    );
    if (this.closed) {
      conn.close();
      throw new KvError('STOPPED', 'the client is closed');
    }
    this.conns.add(conn);
    this.stats.connects++;
    return conn;
  }

  private async discover(deadlineMs: number): Promise<Conn> {
    let backoffMs = 25;
    const errors: string[] = [];
    for (;;) {
      for (const url of this.candidates()) {
        if (this.closed) throw new KvError('STOPPED', 'the client is closed');
        if (Date.now() >= deadlineMs) break;
        let conn: Conn;
        try {
          conn = await this.openConn(url, deadlineMs);
        } catch (e) {
          errors.push((e as Error).message);
          if (url === this.leaderUrl) this.leaderUrl = null;
          continue;
        }
        if (this.preferLeader) conn = await this.towardLeader(conn, deadlineMs);
        this.install(conn);
        return conn;
      }
      if (Date.now() >= deadlineMs || this.closed) {
        throw new KvError('STOPPED', `cannot reach any member (${this.endpoints.join(', ')}): ${errors.slice(-3).join('; ')}`);
      }
      await sleep(Math.min(backoffMs, deadlineMs - Date.now()));
      backoffMs = Math.min(backoffMs * 2, 500);
    }
  }

  /** Asks `conn`'s member who leads; returns a connection to the leader when it is another member and reachable. */
  private async towardLeader(conn: Conn, deadlineMs: number): Promise<Conn> {
    const url = await this.findLeaderUrl(conn, deadlineMs).catch(() => null);
    if (url === null) {
      this.scheduleLeaderCheck(1000);
      return conn;
    }
    if (url === conn.url) return conn;
    try {
      const leader = await this.openConn(url, deadlineMs);
      conn.close();
      return leader;
    } catch {
      return conn;
    }
  }

  /** The leader's native URL as `conn`'s member knows it, or null (no leader, or no client URL published yet). */
  private async findLeaderUrl(conn: Conn, deadlineMs: number): Promise<string | null> {
    const d = Math.min(deadlineMs, Date.now() + 1000);
    const status = (await conn.call('status', [], d)) as Answer<StatusResult>;
    this.noteTerm(status.header.raftTerm);
    if (status.result.leader === '') return null;
    if (status.result.leader === status.header.memberId) {
      this.leaderUrl = conn.url;
      return conn.url;
    }
    const list = (await conn.call('memberList', [], d)) as Answer<{ readonly members: readonly Member[] }>;
    const leader = list.result.members.find((m) => m.id === status.result.leader);
    const clientUrl = leader?.clientUrls[0];
    if (clientUrl === undefined) return null;
    this.leaderUrl = nativeUrl(clientUrl);
    return this.leaderUrl;
  }

  private install(conn: Conn): void {
    const old = this.current;
    this.current = conn;
    if (old !== null && old !== conn) this.retire(old);
    for (const w of this.watches) if (w.conn === null && !w.finished) this.startWatch(w, conn);
    this.wakeWaiters();
  }

  /** New calls go elsewhere; the old connection closes once its calls are answered; its watches move now. */
  private retire(conn: Conn): void {
    conn.retired = true;
    for (const w of this.watches) {
      if (w.conn === conn) {
        conn.notify('watchCancel', [w.streamId]);
        conn.detach(w.streamId);
        w.conn = null;
        // Started again on the next connection (install() does it at once when it is the caller).
        this.resumeLater(w, 0);
      }
    }
    if (conn.busy === 0 && conn.streams.size === 0) conn.close();
  }

  private onConnGone(c: Conn): void {
    this.conns.delete(c);
    if (this.current === c) {
      this.current = null;
      if (this.leaderUrl === c.url) this.leaderUrl = null;
      this.cursor = (this.endpoints.indexOf(c.url) + 1) % this.endpoints.length;
      if (this.cursor < 0) this.cursor = 0;
    }
    this.wakeWaiters();
  }

  /** Leaves the current member (it cannot serve): the next call connects elsewhere. */
  private moveOn(c: Conn): void {
    if (this.current !== c) return;
    this.current = null;
    if (this.leaderUrl === c.url) this.leaderUrl = null;
    const i = this.endpoints.indexOf(c.url);
    this.cursor = i < 0 ? (this.cursor + 1) % this.endpoints.length : (i + 1) % this.endpoints.length;
    this.retire(c);
  }

  private noteTerm(term: number): void {
    if (term > this.knownTerm) {
      const hadTerm = this.knownTerm > 0;
      this.knownTerm = term;
      if (hadTerm && this.preferLeader) this.scheduleLeaderCheck(0);
    }
  }

  /** Checks (once, in the background) whether the leader moved, and moves there. */
  private scheduleLeaderCheck(delayMs: number): void {
    if (this.leaderCheck !== null || this.closed || !this.preferLeader) return;
    this.leaderCheck = setTimeout(() => {
      void (async () => {
        const conn = this.current;
        let again = false;
        try {
          if (conn === null || conn.closed) return;
          const deadline = Date.now() + 2000;
          const url = await this.findLeaderUrl(conn, deadline);
          // No leader yet, or it has not published its client URLs: look again in a while.
          again = url === null;
          if (url === null || url === conn.url || this.closed || this.current !== conn) return;
          const leader = await this.openConn(url, deadline);
          if (this.current !== conn || this.closed) {
            leader.close();
            return;
          }
          this.log?.debug({ from: conn.url, to: url }, 'moving to the leader');
          this.install(leader);
        } catch {
          // stay where we are; the next failure rediscovers
        } finally {
          this.leaderCheck = null;
          if (again) this.scheduleLeaderCheck(1000);
        }
      })();
    }, delayMs);
    this.leaderCheck.unref();
  }

  private wakeWaiters(): void {
    const c = this.current;
    while (this.waiting.length > 0 && (c === null || c.busy < this.maxInFlight)) this.waiting.shift()!();
  }

  // -------------------------------------------------------------------------------------------
  // Calls, retries, sessions

  /**
   * One call with its retries until `callTimeoutMs` (default: the client's timeoutMs). `args` builds
   * each attempt's arguments from the attempt's own deadline (told to the member).
   */
  private async invoke(
    op: NativeOp,
    kind: Kind,
    args: (attemptTimeoutMs: number) => readonly unknown[],
    onAttemptError?: (e: KvError) => void,
    callTimeoutMs?: number,
  ): Promise<unknown> {
    const deadlineMs = Date.now() + (callTimeoutMs ?? this.timeoutMs);
    let backoffMs = 25;
    let retried = false;
    for (;;) {
      let conn: Conn | null = null;
      let err: KvError;
      try {
        conn = await this.connection(deadlineMs);
        while (conn.busy >= this.maxInFlight) {
          await this.slot(deadlineMs);
          conn = await this.connection(deadlineMs);
        }
        const attemptMs = Math.max(1, Math.min(this.attemptTimeoutMs, deadlineMs - Date.now()));
        const answer = (await conn.call(op, args(attemptMs), Date.now() + attemptMs + 500)) as Answer<unknown>;
        this.noteTerm(answer.header.raftTerm);
        if (retried) this.stats.retriedWrites++;
        return answer;
      } catch (e) {
        err = toKvError(e);
      }
      onAttemptError?.(err);
      if (err.leaderUrl !== null) {
        try {
          this.leaderUrl = nativeUrl(err.leaderUrl); // a member named the leader: try it first next
        } catch {
          // not a URL: ignore the hint
        }
      }
      const certainlyNotExecuted = NOT_PROPOSED.has(err.code) || (err instanceof ConnectionLost && !err.sent);
      const retry = RETRYABLE.has(err.code) && (kind !== 'once' || certainlyNotExecuted);
      if (conn !== null && (MOVE_ON.has(err.code) || err instanceof ConnectionLost)) this.moveOn(conn);
      if (!retry || this.closed || Date.now() + backoffMs >= deadlineMs) throw err;
      this.log?.debug({ op, code: err.code, err: err.message }, 'retrying');
      this.stats.retries++;
      if (kind === 'write') retried = true;
      await sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, 500);
    }
  }

  /** Waits until a session write is settled (bounded queue: maxQueued). */
  private writeSlot(): Promise<void> {
    if (this.closed) return Promise.reject(new KvError('STOPPED', 'the client is closed'));
    if (this.writeWaiting.length >= this.maxQueued) return Promise.reject(new KvError('QUEUE_FULL', `more than ${this.maxQueued} writes waiting`));
    return new Promise<void>((resolve) => this.writeWaiting.push(resolve));
  }

  /** Waits for an in-flight slot on the current connection (bounded queue). */
  private slot(deadlineMs: number): Promise<void> {
    if (this.waiting.length >= this.maxQueued) return Promise.reject(new KvError('QUEUE_FULL', `more than ${this.maxQueued} calls waiting for the connection`));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(wake);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new KvError('TIMEOUT', 'no in-flight slot within the deadline'));
      }, Math.max(0, deadlineMs - Date.now()));
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.waiting.push(wake);
    });
  }

  private onAnswered(): void {
    const c = this.current;
    if (this.waiting.length > 0 && c !== null && c.busy < this.maxInFlight) this.waiting.shift()!();
  }

  private clientId(): Promise<number> {
    this.session ??= (this.invoke('registerSession', 'write', (t) => [{ timeoutMs: t }]) as Promise<Answer<{ readonly clientId: number }>>).then(
      (a) => a.result.clientId,
      (e: unknown) => {
        this.session = null;
        throw e;
      },
    );
    return this.session;
  }

  /**
   * A write under this client's session: one seq for every attempt. A SESSION_EXPIRED answer to
   * a write that cannot have been applied registers a new session and goes on; after an attempt
   * whose outcome is unknown it is thrown (retrying under a new session could apply it twice).
   */
  private async write<T>(op: NativeOp, opts: WriteOptions | undefined, args: (o: WriteOptions) => readonly unknown[]): Promise<T> {
    const callMs = opts?.timeoutMs;
    if (opts?.session !== undefined) {
      const session = opts.session;
      return (await this.invoke(op, 'write', (t) => args({ session, timeoutMs: t }), undefined, callMs)) as T;
    }
    for (let renewals = 0; ; renewals++) {
      const clientId = await this.clientId();
      while (this.outstanding.size >= this.maxPendingWrites) await this.writeSlot();
      const seq = this.nextSeq++;
      this.outstanding.add(seq);
      let maybeApplied = false;
      try {
        return (await this.invoke(
          op,
          'write',
          (t) => args({ session: { clientId, seq, ackedSeq: this.ackedSeq } satisfies SessionRef, timeoutMs: t }),
          (err) => {
            if (err.code === 'TIMEOUT' || err.code === 'LEADER_CHANGED' || (err instanceof ConnectionLost && err.sent)) maybeApplied = true;
          },
          callMs,
        )) as T;
      } catch (e) {
        const err = toKvError(e);
        if (err.code !== 'SESSION_EXPIRED' || maybeApplied || renewals >= 1) throw err;
        if (this.session !== null && (await this.session.catch(() => -1)) === clientId) this.session = null;
      } finally {
        this.settleSeq(seq);
      }
    }
  }

  /** seq was answered or given up: it will never be sent again. */
  private settleSeq(seq: number): void {
    this.outstanding.delete(seq);
    this.writeWaiting.shift()?.();
    let a = this.ackedSeq;
    while (a + 1 < this.nextSeq && !this.outstanding.has(a + 1)) a++;
    this.ackedSeq = a;
  }

  private async read<T>(op: NativeOp, kind: Kind, args: (attemptTimeoutMs: number) => readonly unknown[], callTimeoutMs?: number): Promise<T> {
    return (await this.invoke(op, kind, args, undefined, callTimeoutMs)) as T;
  }

  // -------------------------------------------------------------------------------------------
  // KvService

  range(req: RangeRequest, opts?: ReadOptions): Promise<Answer<RangeResult>> {
    return this.read('range', 'read', (t) => [req, { timeoutMs: t }], opts?.timeoutMs);
  }
  put(req: PutRequest, opts?: WriteOptions): Promise<Answer<PutResult>> {
    return this.write('put', opts, (o) => [req, o]);
  }
  deleteRange(req: DeleteRangeRequest, opts?: WriteOptions): Promise<Answer<DeleteRangeResult>> {
    return this.write('deleteRange', opts, (o) => [req, o]);
  }
  txn(req: TxnRequest, opts?: WriteOptions): Promise<Answer<TxnResult>> {
    return this.write('txn', opts, (o) => [req, o]);
  }
  compact(req: CompactRequest, opts?: WriteOptions): Promise<Answer<Record<string, never>>> {
    return this.write('compact', opts, (o) => [req, o]);
  }
  leaseGrant(req: LeaseGrantRequest, opts?: WriteOptions): Promise<Answer<LeaseGrantResult>> {
    return this.write('leaseGrant', opts, (o) => [req, o]);
  }
  leaseRevoke(id: number, opts?: WriteOptions): Promise<Answer<Record<string, never>>> {
    return this.write('leaseRevoke', opts, (o) => [id, o]);
  }
  /** Renewing twice renews once more: retried like a read. */
  leaseKeepAlive(id: number): Promise<Answer<LeaseKeepAliveResult>> {
    return this.read('leaseKeepAlive', 'read', () => [id]);
  }
  leaseTimeToLive(id: number, keys: boolean): Promise<Answer<LeaseTimeToLiveResult>> {
    return this.read('leaseTimeToLive', 'read', () => [id, keys]);
  }
  leaseLeases(): Promise<Answer<{ readonly ids: readonly number[] }>> {
    return this.read('leaseLeases', 'read', () => []);
  }
  memberList(): Promise<Answer<{ readonly members: readonly Member[] }>> {
    return this.read('memberList', 'read', () => []);
  }
  memberAdd(peerUrls: readonly string[], isLearner: boolean): Promise<Answer<{ readonly member: Member; readonly members: readonly Member[] }>> {
    return this.read('memberAdd', 'once', () => [peerUrls, isLearner]);
  }
  memberRemove(id: string): Promise<Answer<{ readonly members: readonly Member[] }>> {
    return this.read('memberRemove', 'once', () => [id]);
  }
  memberPromote(id: string): Promise<Answer<{ readonly members: readonly Member[] }>> {
    return this.read('memberPromote', 'once', () => [id]);
  }
  status(): Promise<Answer<StatusResult>> {
    return this.read('status', 'read', () => []);
  }
  /** Registers a new session on the store (the client's own writes use one it registers by itself). */
  registerSession(opts?: WriteOptions): Promise<Answer<{ readonly clientId: number }>> {
    return this.read('registerSession', 'once', (t) => [{ timeoutMs: t }], opts?.timeoutMs);
  }

  /** Starts a watch; throws KvError BAD_REQUEST at once for a malformed request (as the service does). */
  watch(req: WatchCreateRequest, sink: WatchSink): WatchHandle {
    if (this.closed) throw new KvError('STOPPED', 'the client is closed');
    const checked = parseRequest({ id: 0, op: 'watch', args: [req] });
    if ('error' in checked) throw new KvError('BAD_REQUEST', checked.error);
    const w = new ClientWatch(req.watchId !== undefined && req.watchId > 0 ? req.watchId : this.nextWatchId++, req, sink, this);
    this.watches.add(w);
    const c = this.current;
    if (c !== null && !c.closed) this.startWatch(w, c);
    else this.resumeLater(w, 0);
    return w;
  }

  private startWatch(w: ClientWatch, conn: Conn): void {
    if (w.attempts > 0) this.stats.watchResumes++;
    w.attempts++;
    w.conn = conn;
    w.streamId = conn.stream('watch', [w.request()], w);
  }

  /** @internal Starts `w` again on the current (or next) connection after a short wait. */
  resumeLater(w: ClientWatch, delayMs?: number): void {
    if (this.closed || w.finished) return;
    // Backoff while starts keep failing: 50 ms doubling to 1 s; a delivered response resets it.
    delayMs ??= Math.min(1000, 50 * 2 ** Math.min(5, w.failedStarts));
    w.failedStarts++;
    const timer = setTimeout(() => {
      this.resumeTimers.delete(timer);
      if (this.closed || w.finished || w.conn !== null) return;
      this.connection(Date.now() + this.timeoutMs).then(
        (c) => {
          if (!w.finished && w.conn === null && !this.closed) this.startWatch(w, c);
        },
        () => this.resumeLater(w, 500),
      );
    }, delayMs);
    this.resumeTimers.add(timer);
  }

  /** @internal */
  forgetWatch(w: ClientWatch): void {
    this.watches.delete(w);
  }

  /** The store's backup image from the member this client talks to; not resumed across reconnects. */
  async *snapshot(): AsyncIterable<Uint8Array> {
    const conn = await this.connection(Date.now() + this.timeoutMs);
    const chunks: Uint8Array[] = [];
    let done = false;
    let failure: KvError | null = null;
    let wake: (() => void) | null = null;
    const id = conn.stream('snapshot', [], {
      onMessage: (m) => {
        if ('chunk' in m) chunks.push(m.chunk);
        else if ('ok' in m) {
          if (m.ok) done = true;
          else failure = errorOf(m);
          conn.detach(id);
        }
        wake?.();
      },
      onLost: (e) => {
        failure = e;
        wake?.();
      },
    });
    try {
      for (;;) {
        const chunk = chunks.shift();
        if (chunk !== undefined) {
          conn.notify('snapshotAck', [id]);
          yield chunk;
          continue;
        }
        if (failure !== null) throw failure;
        if (done) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      conn.detach(id);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Conveniences (the CLI and benchmarks use them)

  /** The key's current value, or null (linearizable unless serializable is set). */
  async get(key: string | Bytes, opts: { readonly serializable?: boolean; readonly revision?: number } = {}): Promise<KeyValue | null> {
    const a = await this.range({ key: toBytes(key), ...opts });
    return a.result.kvs[0] ?? null;
  }

  /** Every key under `prefix`, in key order. */
  async getPrefix(prefix: string | Bytes, opts: { readonly serializable?: boolean; readonly revision?: number; readonly limit?: number } = {}): Promise<readonly KeyValue[]> {
    const a = await this.range({ ...prefixRange(prefix), ...opts });
    return a.result.kvs;
  }

  /** Puts a string or bytes value; returns the revision it created. */
  async set(key: string | Bytes, value: string | Bytes, opts: { readonly lease?: number } = {}): Promise<number> {
    const a = await this.put({ key: toBytes(key), value: toBytes(value), ...opts });
    return a.header.revision;
  }

  /** Ends every connection, timer and watch (watches get no further message). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.leaderCheck !== null) clearTimeout(this.leaderCheck);
    for (const t of this.resumeTimers) clearTimeout(t);
    this.resumeTimers.clear();
    for (const w of this.watches) w.finished = true;
    this.watches.clear();
    const conns = [...this.conns];
    const closed = conns.map((c) => c.closedPromise);
    for (const c of conns) c.close();
    this.current = null;
    while (this.waiting.length > 0) this.waiting.shift()!();
    while (this.writeWaiting.length > 0) this.writeWaiting.shift()!();
    await Promise.all(closed);
  }
}
