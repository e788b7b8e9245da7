// Streaming a snapshot file from the leader to a follower (§7 InstallSnapshot, thesis §5.3).
//
// The core only emits InstallSnapshot{meta}; the bytes go here, on their own WebSocket path
// `/snapshot` of the node's HTTP server, dialled by the sender for each transfer. A separate
// connection rather than extra frame types on the peer transport (/raft), because:
//   - a multi-megabyte snapshot must not sit in front of heartbeats and AppendEntries in the
//     peer link's queue (head-of-line blocking would cost the leader its followers' leases);
//   - flow control needs acknowledgements on the same connection, and /raft links are one-way;
//   - the transfer has its own life cycle (offer, resume, verify) that Raft messages do not.
//
// Protocol (msgpack maps in binary frames; `t` is the frame type):
//
//   sender → receiver  offer  {t, v: 1, clusterId, from, to, term, meta, fileBytes}
//   receiver → sender  accept {t, offset}        bytes of this very transfer it already holds
//                      refuse {t, reason}        wrong cluster/node, unknown sender, or a bad
//                                                offer (no retry)
//   sender → receiver  chunk  {t, offset, data, crc}   data <= chunkBytes, crc = CRC32C(data)
//   receiver → sender  ack    {t, offset}        bytes written so far, after this chunk
//   receiver → sender  done   {t}                whole file verified, switched in as a snapshot
//                                                file, and InstallSnapshot stepped into its core
//                      failed {t, reason}        the whole file did not verify (no retry)
//
// Flow control: at most `windowChunks` chunks are unacknowledged, so the sender holds at most
// windowChunks x chunkBytes in memory and the receiver one chunk (it writes chunks in order).
// Resuming: the receiver keeps a transfer's temp file for `partialTtlMs` after its connection
// drops; a new offer for the same transfer (same sender, snapshot and size) is accepted at the
// offset already written, and the sender continues from there. The receiver keeps one incoming
// transfer at a time (a new offer for another snapshot replaces it). A receiver that crashes
// loses its temp file (temp files are deleted when the snapshot store opens): the next attempt
// starts from 0, and the node restarted cleanly on its old state. The temp file is fsynced,
// verified (size, checksum, header = the offered meta) and renamed into place before `done`.
//
// Sender retries: a dropped connection, or no acknowledgement for `idleTimeoutMs`, is retried up
// to `maxAttempts` times with exponential backoff; then send() rejects and the driver reports the
// snapshot failed to the core (which will try again later).

import { crc32c } from '@node-rs/crc32';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { open, type FileHandle } from 'node:fs/promises';
import { Packr } from 'msgpackr';
import { pino, type Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { RaftError } from '../core/errors.js';
import type { InstallSnapshot, NodeId, SnapshotMeta } from '../core/types.js';
import type { SnapshotStore, SnapshotWriter, VerifiedSnapshot } from '../storage/snapshot.js';
import type { SnapshotSender } from './driver.js';

export const SNAPSHOT_STREAM_PATH = '/snapshot';
export const SNAPSHOT_STREAM_VERSION = 1;

export const SNAPSHOT_STREAM_DEFAULTS = {
  /** Bytes per chunk frame. */
  chunkBytes: 256 * 1024,
  /** Unacknowledged chunks in flight per transfer. */
  windowChunks: 4,
  /** Connection attempts per send() before it fails. */
  maxAttempts: 6,
  retryMinMs: 100,
  retryMaxMs: 2000,
  /** A transfer with no acknowledgement for this long is cut and retried. */
  idleTimeoutMs: 10_000,
  /** The receiver keeps a partial transfer this long after its connection dropped, for a resume. */
  partialTtlMs: 60_000,
  /** Outgoing transfers at once; more are refused (reported failed, retried later by the core). */
  maxConcurrentSends: 4,
} as const;

/** Largest chunk a receiver accepts, whatever the sender's chunkBytes. */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;

export interface SnapshotStreamerOptions {
  readonly clusterId: string;
  readonly nodeId: NodeId;
  /** The node's HTTP server; the streamer handles its upgrades on '/snapshot' only. */
  readonly server: Server;
  readonly store: SnapshotStore;
  /** Where a peer listens ("host:port"), for sending. */
  readonly addressOf: (id: NodeId) => string | undefined;
  /** Receiver: a whole, verified snapshot file arrived with its InstallSnapshot (the driver steps it). */
  readonly onSnapshot: (message: InstallSnapshot, file: VerifiedSnapshot) => void;
  readonly chunkBytes?: number;
  readonly windowChunks?: number;
  readonly maxAttempts?: number;
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  readonly idleTimeoutMs?: number;
  readonly partialTtlMs?: number;
  readonly maxConcurrentSends?: number;
  readonly logger?: Logger;
}

export interface SnapshotStreamStats {
  readonly sending: number;
  readonly sentChunks: number;
  readonly sentBytes: number;
  /** Transfers (attempts) that resumed at a non-zero offset, and the bytes they did not resend. */
  readonly resumedAttempts: number;
  readonly resumedBytes: number;
  readonly failedSends: number;
  readonly completedSends: number;
  readonly receivedSnapshots: number;
  readonly incoming: { readonly from: NodeId; readonly index: number; readonly written: number; readonly fileBytes: number } | null;
}

type Frame =
  | { t: 'offer'; v: number; clusterId: string; from: NodeId; to: NodeId; term: number; meta: SnapshotMeta; fileBytes: number }
  | { t: 'accept'; offset: number }
  | { t: 'refuse'; reason: string }
  | { t: 'chunk'; offset: number; data: Uint8Array; crc: number }
  | { t: 'ack'; offset: number }
  | { t: 'done' }
  | { t: 'failed'; reason: string };

const packr = new Packr({ useRecords: false });

function encode(f: Frame): Buffer {
  return packr.pack(f);
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isId = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= 256;
const isIdList = (x: unknown): x is string[] => Array.isArray(x) && x.every(isId);

/** Decodes and validates a frame; null if malformed (the connection is then closed). */
function decode(raw: RawData): Frame | null {
  let x: unknown;
  try {
    x = packr.unpack(toBuffer(raw));
  } catch {
    return null;
  }
  if (typeof x !== 'object' || x === null) return null;
  const o = x as Record<string, unknown>;
  switch (o['t']) {
    case 'offer': {
      const meta = o['meta'] as Record<string, unknown> | null;
      const config = (meta?.['config'] ?? null) as Record<string, unknown> | null;
      if (!isNat(o['v']) || !isId(o['clusterId']) || !isId(o['from']) || !isId(o['to']) || !isNat(o['term']) || !isNat(o['fileBytes'])) return null;
      if (meta === null || typeof meta !== 'object' || !isNat(meta['index']) || !isNat(meta['term'])) return null;
      if (config === null || typeof config !== 'object' || !isIdList(config['voters']) || !isIdList(config['learners'])) return null;
      return {
        t: 'offer',
        v: o['v'],
        clusterId: o['clusterId'],
        from: o['from'],
        to: o['to'],
        term: o['term'],
        fileBytes: o['fileBytes'],
        meta: { index: meta['index'], term: meta['term'], config: { voters: config['voters'], learners: config['learners'] } },
      };
    }
    case 'accept':
    case 'ack':
      return isNat(o['offset']) ? { t: o['t'], offset: o['offset'] } : null;
    case 'refuse':
    case 'failed':
      return typeof o['reason'] === 'string' ? { t: o['t'], reason: o['reason'] } : null;
    case 'chunk':
      return isNat(o['offset']) && o['data'] instanceof Uint8Array && isNat(o['crc']) ? { t: 'chunk', offset: o['offset'], data: o['data'], crc: o['crc'] } : null;
    case 'done':
      return { t: 'done' };
    default:
      return null;
  }
}

/** One incoming transfer (at most one at a time). */
interface Incoming {
  readonly key: string;
  readonly from: NodeId;
  readonly message: InstallSnapshot;
  readonly fileBytes: number;
  readonly writer: SnapshotWriter;
  ws: WebSocket | null;
  ttlTimer: NodeJS.Timeout | null;
  /** Writes run one at a time, in arrival order. */
  chain: Promise<void>;
  finishing: boolean;
}

/** Thrown inside a send attempt: whether another attempt may help. */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
  ) {
    super(message);
  }
}

export class SnapshotStreamer implements SnapshotSender {
  private readonly log: Logger;
  private readonly wss: WebSocketServer;
  private readonly chunkBytes: number;
  private readonly windowChunks: number;
  private readonly maxAttempts: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly idleTimeoutMs: number;
  private readonly partialTtlMs: number;
  private readonly maxConcurrentSends: number;
  private incoming: Incoming | null = null;
  private readonly sockets = new Set<WebSocket>();
  private closed = false;
  private sending = 0;
  private counters = { sentChunks: 0, sentBytes: 0, resumedAttempts: 0, resumedBytes: 0, failedSends: 0, completedSends: 0, receivedSnapshots: 0 };

  constructor(private readonly opts: SnapshotStreamerOptions) {
    const d = SNAPSHOT_STREAM_DEFAULTS;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.chunkBytes = opts.chunkBytes ?? d.chunkBytes;
    this.windowChunks = opts.windowChunks ?? d.windowChunks;
    this.maxAttempts = opts.maxAttempts ?? d.maxAttempts;
    this.retryMinMs = opts.retryMinMs ?? d.retryMinMs;
    this.retryMaxMs = opts.retryMaxMs ?? d.retryMaxMs;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? d.idleTimeoutMs;
    this.partialTtlMs = opts.partialTtlMs ?? d.partialTtlMs;
    this.maxConcurrentSends = opts.maxConcurrentSends ?? d.maxConcurrentSends;
    if (!(this.chunkBytes >= 1 && this.chunkBytes <= MAX_CHUNK_BYTES)) throw new RaftError('BAD_REQUEST', `chunkBytes must be in [1, ${MAX_CHUNK_BYTES}]`);
    if (!(this.windowChunks >= 1) || !(this.maxAttempts >= 1)) throw new RaftError('BAD_REQUEST', 'windowChunks and maxAttempts must be >= 1');
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_CHUNK_BYTES + 1024 });
    opts.server.on('upgrade', this.onUpgrade);
  }

  stats(): SnapshotStreamStats {
    const inc = this.incoming;
    return {
      sending: this.sending,
      ...this.counters,
      incoming: inc === null ? null : { from: inc.from, index: inc.message.meta.index, written: inc.writer.written, fileBytes: inc.fileBytes },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.opts.server.off('upgrade', this.onUpgrade);
    for (const ws of this.sockets) ws.terminate();
    const inc = this.incoming;
    this.incoming = null;
    if (inc !== null) {
      if (inc.ttlTimer !== null) clearTimeout(inc.ttlTimer);
      await inc.chain.catch(() => undefined);
      if (!inc.finishing) await inc.writer.abort();
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // -------------------------------------------------------------------------------------------
  // Sending.

  async send(message: InstallSnapshot, file: VerifiedSnapshot): Promise<void> {
    if (this.closed) throw new RaftError('STOPPED', 'snapshot streamer is closed');
    if (this.sending >= this.maxConcurrentSends) {
      throw new RaftError('QUEUE_FULL', `${this.sending} snapshot transfers already running (maxConcurrentSends)`);
    }
    if (file.index !== message.meta.index || file.term !== message.meta.term) {
      throw new RaftError('BAD_REQUEST', `file ${file.index}/${file.term} is not snapshot ${message.meta.index}/${message.meta.term}`);
    }
    this.sending++;
    // One handle for every attempt: the file stays readable even if pruned meanwhile (POSIX).
    let fh: FileHandle | null = null;
    try {
      fh = await open(file.path, 'r');
      for (let attempt = 1; ; attempt++) {
        if (this.closed) throw new RaftError('STOPPED', 'snapshot streamer is closed');
        try {
          await this.attempt(message, file, fh, attempt);
          this.counters.completedSends++;
          return;
        } catch (e) {
          const retry = e instanceof AttemptError ? e.retry : false;
          if (!retry || attempt >= this.maxAttempts || this.closed) throw e;
          const delayMs = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
          this.log.info({ to: message.to, attempt, err: (e as Error).message, delayMs: Math.round(delayMs) }, 'snapshot stream interrupted; retrying');
          await new Promise((r) => setTimeout(r, delayMs));
        }
      }
    } catch (e) {
      this.counters.failedSends++;
      throw e;
    } finally {
      this.sending--;
      await fh?.close().catch(() => undefined);
    }
  }

  /** One connection: offer, resume at the accepted offset, stream with a window, await done. */
  private attempt(message: InstallSnapshot, file: VerifiedSnapshot, fh: FileHandle, attempt: number): Promise<void> {
    const address = this.opts.addressOf(message.to);
    if (address === undefined) return Promise.reject(new AttemptError(`no address known for ${message.to}`, false));
    const total = file.fileBytes;
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`ws://${address}${SNAPSHOT_STREAM_PATH}`, { perMessageDeflate: false, maxPayload: 64 * 1024, handshakeTimeout: this.idleTimeoutMs });
      this.sockets.add(ws);
      let settled = false;
      let accepted = false;
      let sentOffset = 0;
      let ackedOffset = 0;
      let reading = false;
      let idle: NodeJS.Timeout | null = null;
      const finish = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        if (idle !== null) clearTimeout(idle);
        this.sockets.delete(ws);
        if (err === null) ws.close(1000, 'done');
        else ws.terminate();
        if (err === null) resolve();
        else reject(err);
      };
      const touch = (): void => {
        if (idle !== null) clearTimeout(idle);
        idle = setTimeout(() => finish(new AttemptError(`no progress from ${message.to} for ${this.idleTimeoutMs} ms`, true)), this.idleTimeoutMs);
      };
      // Sends chunks while the window allows; one file read at a time.
      const pump = (): void => {
        if (settled || !accepted || reading) return;
        if (sentOffset >= total || sentOffset - ackedOffset >= this.windowChunks * this.chunkBytes) return;
        reading = true;
        const n = Math.min(this.chunkBytes, total - sentOffset);
        const buf = Buffer.allocUnsafe(n);
        const at = sentOffset;
        readFully(fh, buf, at).then(
          () => {
            reading = false;
            if (settled) return;
            ws.send(encode({ t: 'chunk', offset: at, data: buf, crc: crc32c(buf) }), { binary: true });
            sentOffset = at + n;
            this.counters.sentChunks++;
            this.counters.sentBytes += n;
            pump();
          },
          (e: unknown) => finish(new AttemptError(`cannot read ${file.path}: ${(e as Error).message}`, false)),
        );
      };
      ws.on('open', () => {
        touch();
        ws.send(
          encode({ t: 'offer', v: SNAPSHOT_STREAM_VERSION, clusterId: this.opts.clusterId, from: message.from, to: message.to, term: message.term, meta: message.meta, fileBytes: total }),
          { binary: true },
        );
      });
      ws.on('message', (raw: RawData) => {
        const f = decode(raw);
        if (f === null) return finish(new AttemptError('malformed frame from the receiver', true));
        touch();
        switch (f.t) {
          case 'accept':
            if (accepted || f.offset > total) return finish(new AttemptError(`unexpected accept at ${f.offset}`, true));
            accepted = true;
            sentOffset = ackedOffset = f.offset;
            if (f.offset > 0) {
              this.counters.resumedAttempts++;
              this.counters.resumedBytes += f.offset;
              this.log.info({ to: message.to, offset: f.offset, total, attempt }, 'snapshot stream resumed');
            }
            pump();
            return;
          case 'ack':
            if (!accepted || f.offset > sentOffset || f.offset < ackedOffset) return finish(new AttemptError(`ack at ${f.offset} outside [${ackedOffset}, ${sentOffset}]`, true));
            ackedOffset = f.offset;
            pump();
            return;
          case 'done':
            return finish(ackedOffset === total ? null : new AttemptError(`done before every byte was acknowledged (${ackedOffset}/${total})`, true));
          case 'refuse':
            return finish(new AttemptError(`${message.to} refused the snapshot: ${f.reason}`, false));
          case 'failed':
            return finish(new AttemptError(`${message.to} could not verify the snapshot: ${f.reason}`, false));
          default:
            return finish(new AttemptError(`unexpected ${f.t} frame from the receiver`, true));
        }
      });
      ws.on('error', (e: Error) => this.log.debug({ to: message.to, err: e.message }, 'snapshot stream socket error'));
      ws.on('close', (code: number, reason: Buffer) => finish(new AttemptError(`connection to ${message.to} closed (${code} ${reason.toString()}) at ${ackedOffset}/${total} bytes`, true)));
    });
  }

  // -------------------------------------------------------------------------------------------
  // Receiving.

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://peer').pathname;
    } catch {
      return;
    }
    if (path !== SNAPSHOT_STREAM_PATH) return; // other paths belong to the node and the transport
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
  };

  private onConnection(ws: WebSocket): void {
    this.sockets.add(ws);
    let inc: Incoming | null = null;
    const refuse = (reason: string): void => {
      this.log.warn({ reason }, 'refused a snapshot stream');
      if (ws.readyState === WebSocket.OPEN) ws.send(encode({ t: 'refuse', reason }));
      ws.close(4000, 'refused');
    };
    ws.on('message', (raw: RawData) => {
      const f = decode(raw);
      if (f === null) return refuse('malformed frame');
      if (inc === null) {
        if (f.t !== 'offer') return refuse(`expected an offer, got ${f.t}`);
        void this.onOffer(ws, f).then(
          (accepted) => {
            inc = accepted;
          },
          (e: unknown) => refuse((e as Error).message),
        );
        return;
      }
      if (f.t !== 'chunk') return refuse(`expected a chunk, got ${f.t}`);
      this.onChunk(ws, inc, f);
    });
    ws.on('error', (e: Error) => this.log.debug({ err: e.message }, 'snapshot receiver socket error'));
    ws.on('close', () => {
      this.sockets.delete(ws);
      const current = this.incoming;
      if (current !== null && current.ws === ws) {
        current.ws = null;
        // Keep the partial file for a resume, for a while.
        current.ttlTimer = setTimeout(() => {
          if (this.incoming === current && current.ws === null && !current.finishing) {
            this.incoming = null;
            this.log.info({ from: current.from, written: current.writer.written }, 'dropping a partial snapshot transfer');
            void current.chain.then(() => current.writer.abort());
          }
        }, this.partialTtlMs);
        current.ttlTimer.unref();
      }
    });
  }

  private async onOffer(ws: WebSocket, f: Extract<Frame, { t: 'offer' }>): Promise<Incoming> {
    if (f.v !== SNAPSHOT_STREAM_VERSION) throw new Error(`stream version ${f.v} unsupported (this node speaks ${SNAPSHOT_STREAM_VERSION})`);
    if (f.clusterId !== this.opts.clusterId) throw new Error('cluster id mismatch');
    if (f.to !== this.opts.nodeId) throw new Error(`offer addressed to ${f.to}, this is ${this.opts.nodeId}`);
    // As on /raft: only a node this one knows of (a member, or the leader it was told about).
    if (this.opts.addressOf(f.from) === undefined) throw new Error(`unknown sender ${f.from}`);
    const key = `${f.from}/${f.meta.index}/${f.meta.term}/${f.fileBytes}`;
    const current = this.incoming;
    if (current !== null && current.key === key && !current.finishing) {
      // A resume: the same transfer, on a new connection.
      if (current.ttlTimer !== null) clearTimeout(current.ttlTimer);
      current.ttlTimer = null;
      if (current.ws !== null && current.ws !== ws) current.ws.terminate();
      current.ws = ws;
      await current.chain;
      ws.send(encode({ t: 'accept', offset: current.writer.written }));
      return current;
    }
    if (current !== null) {
      // Another transfer replaces it (at most one incoming at a time).
      this.incoming = null;
      if (current.ttlTimer !== null) clearTimeout(current.ttlTimer);
      current.ws?.terminate();
      await current.chain.catch(() => undefined);
      if (!current.finishing) await current.writer.abort();
    }
    const writer = await this.opts.store.begin(`incoming-${f.meta.index}-${f.meta.term}`);
    const inc: Incoming = {
      key,
      from: f.from,
      message: { type: 'InstallSnapshot', from: f.from, to: f.to, term: f.term, meta: f.meta },
      fileBytes: f.fileBytes,
      writer,
      ws,
      ttlTimer: null,
      chain: Promise.resolve(),
      finishing: false,
    };
    this.incoming = inc;
    ws.send(encode({ t: 'accept', offset: 0 }));
    return inc;
  }

  private onChunk(ws: WebSocket, inc: Incoming, f: Extract<Frame, { t: 'chunk' }>): void {
    inc.chain = inc.chain.then(async () => {
      if (this.incoming !== inc || inc.ws !== ws || inc.finishing) return; // replaced or resumed elsewhere
      if (f.data.length > MAX_CHUNK_BYTES || f.offset !== inc.writer.written || f.offset + f.data.length > inc.fileBytes) {
        ws.terminate(); // out of sequence: the sender reconnects and resumes from what we hold
        return;
      }
      if (crc32c(f.data) !== f.crc) {
        this.log.warn({ from: inc.from, offset: f.offset }, 'snapshot chunk checksum mismatch: dropping the connection');
        ws.terminate();
        return;
      }
      await inc.writer.write(f.offset, f.data);
      if (ws.readyState === WebSocket.OPEN) ws.send(encode({ t: 'ack', offset: inc.writer.written }));
      if (inc.writer.written < inc.fileBytes) return;
      inc.finishing = true;
      this.incoming = null;
      let file: VerifiedSnapshot;
      try {
        file = await inc.writer.finish(inc.message.meta);
      } catch (e) {
        this.log.error({ from: inc.from, err: (e as Error).message }, 'received snapshot failed verification');
        if (ws.readyState === WebSocket.OPEN) ws.send(encode({ t: 'failed', reason: (e as Error).message }));
        ws.close(1000, 'failed');
        return;
      }
      this.counters.receivedSnapshots++;
      this.log.info({ from: inc.from, index: file.index, term: file.term, fileBytes: file.fileBytes }, 'received snapshot');
      try {
        this.opts.onSnapshot(inc.message, file);
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'snapshot handler failed');
        if (ws.readyState === WebSocket.OPEN) ws.send(encode({ t: 'failed', reason: (e as Error).message }));
        ws.close(1000, 'failed');
        return;
      }
      if (ws.readyState === WebSocket.OPEN) ws.send(encode({ t: 'done' }));
      ws.close(1000, 'done');
    }).catch((e: unknown) => {
      this.log.error({ err: (e as Error).message }, 'writing a snapshot chunk failed');
      ws.terminate();
    });
  }
}

async function readFully(fh: FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${position + done}`);
    done += bytesRead;
  }
}
