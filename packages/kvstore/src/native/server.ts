// The server side of the native protocol (protocol.ts): accepts WebSocket upgrades on
// /ballot/v1 of a member's client HTTP server and serves each connection's requests from the
// member's KvService — pipelined (answers leave as soon as they are ready, in any order, several
// per frame), with watches and snapshot streams multiplexed on the same socket.
//
// Bounds and behaviour at each:
// - frame size: ws maxPayload = maxFrameBytes; a bigger frame closes the socket (1009);
// - one request: maxRequestBytes; a bigger one is answered REQUEST_TOO_LARGE (the socket stays);
// - requests in flight per connection: maxInFlight; more are answered QUEUE_FULL (the client
//   library never sends more than that, so only foreign clients see it);
// - watches per connection: maxWatches; more are answered QUEUE_FULL;
// - bytes queued to a client that does not read: maxBufferedBytes (plus the frame being sent);
//   above it the connection is terminated (its watches are canceled; a KvClient resumes them from where it was);
// - a response larger than maxResponseFrameBytes is replaced by a REQUEST_TOO_LARGE error;
// - liveness: a ping every keepAliveMs; no pong by the next one terminates the connection.
// Watches are flow-controlled (the hub's FlowControlledSink): while more than watchHighWaterBytes
// wait in the socket, watch sinks say they are not writable and the hub buffers (bounded there,
// a watcher too far behind is canceled with a reason and the client resumes it).

import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { KvError, toKvError } from '../errors.js';
import type { KvService, WatchHandle, WatchResponse } from '../types.js';
import {
  DEFAULT_LIMITS,
  DEFAULT_MAX_RESPONSE_FRAME_BYTES,
  FrameWriter,
  NATIVE_PATH,
  SNAPSHOT_WINDOW,
  decodeFrame,
  encodeMessage,
  parseRequest,
  tooLargeMessage,
  type NativeOp,
  type ResponseMessage,
} from './protocol.js';

export interface NativeServerOptions {
  readonly maxFrameBytes?: number;
  readonly maxRequestBytes?: number;
  readonly maxResponseFrameBytes?: number;
  /** Default 4096. */
  readonly maxInFlight?: number;
  /** Default 10 000 (the hub has its own global bound). */
  readonly maxWatches?: number;
  /** Bytes queued to the client (before the next frame) above which it is disconnected. Default 16 MiB. */
  readonly maxBufferedBytes?: number;
  /** Bytes queued in the socket above which watch sinks report congestion. Default 1 MiB. */
  readonly watchHighWaterBytes?: number;
  /** Default 30 000; 0 disables pings. */
  readonly keepAliveMs?: number;
  /** Default 1024. */
  readonly maxConnections?: number;
  readonly logger?: Logger;
}

export interface NativeServer {
  /** Open connections. */
  readonly connections: number;
  /** Stops accepting upgrades, terminates every connection (their watches are canceled). */
  close(): Promise<void>;
}

interface WatchState {
  handle: WatchHandle | null;
  done: boolean;
}

interface SnapshotState {
  credits: number;
  wake: (() => void) | null;
  stopped: boolean;
}

/** Methods answered by calling the service directly with the message's args. */
type UnaryOp = Exclude<NativeOp, 'watch' | 'watchCancel' | 'watchProgress' | 'snapshot' | 'snapshotAck'>;

class Connection {
  private readonly writer: FrameWriter;
  private inFlight = 0;
  private readonly watches = new Map<number, WatchState>();
  private readonly snapshots = new Map<number, SnapshotState>();
  private readonly drainListeners = new Set<() => void>();
  private drainCheckPending = false;
  closed = false;
  alive = true;

  constructor(
    readonly ws: WebSocket,
    private readonly service: KvService,
    private readonly limits: Required<Omit<NativeServerOptions, 'logger' | 'keepAliveMs' | 'maxConnections'>>,
    private readonly log: Logger | undefined,
    private readonly remote: string,
  ) {
    this.writer = new FrameWriter((frame) => this.sendFrame(frame), limits.maxResponseFrameBytes);
    ws.on('message', (data: RawData, isBinary: boolean) => this.onFrame(data, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('error', (e) => this.log?.debug({ remote, err: e.message }, 'native connection error'));
  }

  private sendFrame(frame: Buffer): void {
    if (this.closed) return;
    // The bound applies to what is already queued: one frame (at most maxResponseFrameBytes) may
    // always go out on top of it, so a large answer alone never trips it.
    if (this.ws.bufferedAmount > this.limits.maxBufferedBytes) {
      this.log?.warn({ remote: this.remote, bufferedBytes: this.ws.bufferedAmount }, 'native client does not read its answers: closing the connection');
      this.ws.terminate();
      return;
    }
    const congested = this.drainListeners.size > 0 && !this.drainCheckPending;
    if (congested) this.drainCheckPending = true;
    this.ws.send(frame, congested ? () => this.checkDrain() : undefined);
  }

  /** Watch sinks may take more while the socket holds less than the high-water mark. */
  get writable(): boolean {
    return !this.closed && this.ws.bufferedAmount < this.limits.watchHighWaterBytes;
  }

  private checkDrain(): void {
    this.drainCheckPending = false;
    if (this.closed || this.drainListeners.size === 0) return;
    if (this.writable) {
      for (const l of [...this.drainListeners]) l();
    } else {
      // Still congested: check again when the next write completes.
      this.drainCheckPending = true;
      setTimeout(() => this.checkDrain(), 10);
    }
  }

  private respond(m: ResponseMessage): void {
    if (this.closed) return;
    let bytes = encodeMessage(m);
    if (bytes.byteLength > this.limits.maxResponseFrameBytes) {
      bytes = encodeMessage({
        id: m.id,
        ok: false,
        code: 'REQUEST_TOO_LARGE',
        message: `response too large: ${bytes.byteLength} bytes > ${this.limits.maxResponseFrameBytes} (use a limit, keysOnly or countOnly)`,
      });
    }
    this.writer.push(bytes);
  }

  private fail(id: number, e: unknown): void {
    const err = toKvError(e);
    this.respond(err.leaderUrl !== null ? { id, ok: false, code: err.code, message: err.message, leaderUrl: err.leaderUrl } : { id, ok: false, code: err.code, message: err.message });
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    if (!isBinary) {
      this.ws.close(1003, 'binary msgpack frames only');
      return;
    }
    const frame = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    try {
      decodeFrame(frame, (value, bytes) => this.onMessage(value, bytes));
    } catch (e) {
      this.log?.debug({ remote: this.remote, err: (e as Error).message }, 'malformed native frame: closing');
      this.ws.close(1007, 'malformed frame');
    }
  }

  private onMessage(value: unknown, bytes: number): void {
    const m = parseRequest(value);
    if ('error' in m) {
      if (m.id === null) throw new KvError('BAD_REQUEST', m.error); // no id to answer: the frame is garbage
      this.respond({ id: m.id, ok: false, code: 'BAD_REQUEST', message: m.error });
      return;
    }
    if (bytes > this.limits.maxRequestBytes) {
      this.respond({ id: m.id, ok: false, code: 'REQUEST_TOO_LARGE', message: tooLargeMessage(bytes, this.limits.maxRequestBytes) });
      return;
    }
    switch (m.op) {
      case 'watch':
        return this.startWatch(m.id, m.args);
      case 'watchCancel':
      case 'watchProgress': {
        const w = this.watches.get(m.args[0] as number);
        if (w?.handle != null && !w.done) {
          if (m.op === 'watchCancel') w.handle.cancel('canceled by the client');
          else w.handle.requestProgress();
        }
        this.respond({ id: m.id, ok: true, answer: null });
        return;
      }
      case 'snapshot':
        return this.startSnapshot(m.id);
      case 'snapshotAck': {
        const s = this.snapshots.get(m.args[0] as number);
        if (s !== undefined) {
          s.credits = Math.min(SNAPSHOT_WINDOW, s.credits + 1);
          s.wake?.();
        }
        return;
      }
      default:
        return this.call(m.id, m.op, m.args);
    }
  }

  private call(id: number, op: UnaryOp, args: readonly unknown[]): void {
    if (this.inFlight >= this.limits.maxInFlight) {
      this.respond({ id, ok: false, code: 'QUEUE_FULL', message: `too many requests in flight on this connection (max ${this.limits.maxInFlight})` });
      return;
    }
    this.inFlight++;
    let p: Promise<unknown>;
    try {
      // parseRequest checked each arg's shape against the method's signature.
      const method = this.service[op] as (...a: unknown[]) => Promise<unknown>;
      p = method.apply(this.service, args as unknown[]);
    } catch (e) {
      this.inFlight--;
      this.fail(id, e);
      return;
    }
    p.then(
      (answer) => {
        this.inFlight--;
        this.respond({ id, ok: true, answer });
      },
      (e: unknown) => {
        this.inFlight--;
        this.fail(id, e);
      },
    );
  }

  private startWatch(id: number, args: readonly unknown[]): void {
    if (this.watches.has(id)) {
      this.respond({ id, ok: false, code: 'BAD_REQUEST', message: `watch request id ${id} is already in use on this connection` });
      return;
    }
    if (this.watches.size >= this.limits.maxWatches) {
      this.respond({ id, ok: false, code: 'QUEUE_FULL', message: `too many watches on this connection (max ${this.limits.maxWatches})` });
      return;
    }
    const state: WatchState = { handle: null, done: false };
    this.watches.set(id, state);
    const conn = this;
    const sink = {
      get writable(): boolean {
        return conn.writable;
      },
      onDrain: (listener: () => void): (() => void) => {
        this.drainListeners.add(listener);
        return () => this.drainListeners.delete(listener);
      },
      send: (watch: WatchResponse): void => {
        if (state.done) return;
        if (watch.canceled === true) {
          state.done = true;
          this.watches.delete(id);
        }
        this.respond({ id, watch });
      },
    };
    try {
      const handle = this.service.watch(args[0] as Parameters<KvService['watch']>[0], sink);
      if (state.done) return;
      state.handle = handle;
      if (this.closed) this.cancelWatch(state);
    } catch (e) {
      state.done = true;
      this.watches.delete(id);
      this.fail(id, e);
    }
  }

  private cancelWatch(w: WatchState): void {
    if (w.done) return;
    w.done = true;
    try {
      w.handle?.cancel('connection closed');
    } catch (e) {
      this.log?.warn({ err: (e as Error).message }, 'watch cancel failed');
    }
  }

  private startSnapshot(id: number): void {
    if (this.snapshots.has(id)) {
      this.respond({ id, ok: false, code: 'BAD_REQUEST', message: `snapshot request id ${id} is already in use on this connection` });
      return;
    }
    const s: SnapshotState = { credits: SNAPSHOT_WINDOW, wake: null, stopped: false };
    this.snapshots.set(id, s);
    void (async () => {
      try {
        for await (const chunk of this.service.snapshot()) {
          while (s.credits === 0 && !s.stopped) await new Promise<void>((resolve) => (s.wake = resolve));
          s.wake = null;
          if (s.stopped) return;
          s.credits--;
          this.respond({ id, chunk });
        }
        this.respond({ id, ok: true, answer: null });
      } catch (e) {
        this.fail(id, e);
      } finally {
        this.snapshots.delete(id);
      }
    })();
  }

  /** The socket closed: cancel its watches and streams; answers still pending are dropped. */
  onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.discard();
    this.drainListeners.clear();
    for (const w of this.watches.values()) this.cancelWatch(w);
    this.watches.clear();
    for (const s of this.snapshots.values()) {
      s.stopped = true;
      s.wake?.();
    }
  }
}

/**
 * Serves the native protocol on `server`'s upgrades to NATIVE_PATH (other paths are left to
 * their own handlers, as the Raft transport does with '/raft').
 */
export function attachNativeServer(server: Server, service: KvService, opts: NativeServerOptions = {}): NativeServer {
  const limits = {
    maxFrameBytes: opts.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes,
    maxRequestBytes: opts.maxRequestBytes ?? DEFAULT_LIMITS.maxRequestBytes,
    maxResponseFrameBytes: opts.maxResponseFrameBytes ?? DEFAULT_MAX_RESPONSE_FRAME_BYTES,
    maxInFlight: opts.maxInFlight ?? 4096,
    maxWatches: opts.maxWatches ?? 10_000,
    maxBufferedBytes: opts.maxBufferedBytes ?? 16 * 1024 * 1024,
    watchHighWaterBytes: opts.watchHighWaterBytes ?? 1024 * 1024,
  };
  const maxConnections = opts.maxConnections ?? 1024;
  const keepAliveMs = opts.keepAliveMs ?? 30_000;
  const log = opts.logger;
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: limits.maxFrameBytes });
  const conns = new Set<Connection>();
  let closing: Promise<void> | null = null;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://client').pathname;
    } catch {
      return;
    }
    if (path !== NATIVE_PATH) return;
    if (closing !== null || conns.size >= maxConnections) {
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (closing !== null) {
        ws.terminate();
        return;
      }
      const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
      const conn = new Connection(ws, service, limits, log, remote);
      conns.add(conn);
      ws.on('close', () => {
        conns.delete(conn);
        conn.onClosed();
      });
    });
  };
  server.on('upgrade', onUpgrade);

  const pinger =
    keepAliveMs > 0
      ? setInterval(() => {
          for (const c of conns) {
            if (!c.alive) {
              log?.info('native client did not answer a ping: closing');
              c.ws.terminate();
              continue;
            }
            c.alive = false;
            c.ws.ping();
          }
        }, keepAliveMs)
      : null;
  pinger?.unref();

  return {
    get connections() {
      return conns.size;
    },
    close(): Promise<void> {
      closing ??= (async () => {
        server.off('upgrade', onUpgrade);
        if (pinger !== null) clearInterval(pinger);
        const closed = [...conns].map((c) => new Promise<void>((resolve) => (c.ws.readyState === c.ws.CLOSED ? resolve() : c.ws.once('close', () => resolve()))));
        for (const c of conns) {
          c.onClosed();
          c.ws.terminate();
        }
        await Promise.all(closed);
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })();
      return closing;
    },
  };
}
