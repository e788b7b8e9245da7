// The etcd v3 JSON gateway: the same paths, bodies and errors as etcd 3.4's grpc-gateway at /v3/,
// served from a KvService. Unary calls are one POST each; /v3/watch and /v3/lease/keepalive are
// long POSTs whose body is a sequence of JSON objects and whose answer is a stream of
// newline-terminated `{"result": ...}` objects, as etcd's gateway streams them.
//
// Bounds: a unary body is at most maxBodyBytes (else 400 "request is too large"); each message of
// a stream likewise; watch events stop flowing to a socket holding watchHighWaterBytes unsent (the
// hub buffers them, bounded, and cancels a watcher that falls too far behind, with a reason); a
// stream's unsent output is at most maxStreamBufferBytes (a client that does not read is cut off:
// its watches are canceled and the stream ends); at most
// maxWatchesPerStream watches and maxPendingKeepAlives queued keep-alives per stream (beyond: an
// error line, then the stream ends). Bad input is answered with a 4xx and etcd's error body;
// nothing a client sends can throw out of the handler.
//
// Differences from etcd 3.4's gateway that Ballot keeps (checked by json-etcd-compat.test.ts):
// - strict input: unknown fields, enum numbers outside the enum, a compare value field that does
//   not match its target, negative revisions/limits/ids, int64 beyond +-(2^53 - 1), and the
//   unsupported min/max_mod/create_revision filters and watch fragment are 400s (etcd ignores or
//   accepts them); parse errors name the field in Ballot's words instead of Go's;
// - statuses come from errors.ts KV_HTTP_STATUS: lease/member already exists 400/409 (etcd 412),
//   request timed out 504 (etcd 503), a bad first watch request 400 code 3 (etcd 500 code 2),
//   unknown /v3 paths 404 and non-POST 405 with a JSON error body (etcd: plain text);
// - a body may be 4/3 of --max-request-bytes + 512 KiB (base64 and field names); the decoded
//   request is bounded by --max-request-bytes as in etcd;
// - progress_request is answered per watcher (etcd: once, watch_id -1); cancel_reason is filled
//   (etcd 3.4 leaves it empty but for a duplicate watch id); a history replay may span
//   several responses (etcd batches it); a cancel for compaction carries the header's revision;
// - status has no dbSizeInUse; reads served locally carry `Ballot-Read-Consistency: serializable`;
// - only /v3 (no /v3beta, /v3alpha), no auth, alarms, defragment, hash, snapshot or move-leader
//   paths, no CORS headers.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

import { KV_GRPC_CODE, KV_HTTP_STATUS, KvError, LIMITS, toKvError } from '../errors.js';
import type { Answer, KvService, ResponseHeader, WatchHandle, WatchResponse } from '../types.js';
import type { FlowControlledSink } from '../watch/hub.js';
import {
  decodeCompactRequest,
  decodeDeleteRangeRequest,
  decodeEmptyRequest,
  decodeLeaseGrantRequest,
  decodeLeaseIdRequest,
  decodeLeaseTimeToLiveRequest,
  decodeMemberAddRequest,
  decodeMemberIdRequest,
  decodePutRequest,
  decodeRangeRequest,
  decodeTxnRequest,
  decodeWatchRequest,
  encodeDeleteRangeResult,
  encodeHeader,
  encodeLeaseGrantResult,
  encodeLeaseKeepAliveResult,
  encodeLeaseLeasesResult,
  encodeLeaseTimeToLiveResult,
  encodeMembersResult,
  encodePutResult,
  encodeRangeResult,
  encodeStatusResult,
  encodeTxnResult,
  encodeWatchResponse,
  type JsonObject,
  type WatchStreamRequest,
} from './codec.js';

export interface JsonGatewayOptions {
  /**
   * The largest request, as etcd counts it (the decoded protobuf message; etcd's
   * --max-request-bytes, default 1.5 MiB). A JSON body may be larger than the message it carries
   * (base64 is 4/3 of the bytes, plus field names), so the body limit is derived from it.
   */
  readonly maxRequestBytes?: number;
  /**
   * Unsent bytes a streaming response may hold before the client is cut off (its watches canceled,
   * the stream ended). Default 16 MiB. Watch events stop flowing at watchHighWaterBytes already
   * (the hub then buffers them per watcher, bounded), so this bound is a backstop.
   */
  readonly maxStreamBufferBytes?: number;
  /** Unsent bytes above which a watch stream asks the hub to hold events. Default 1 MiB. */
  readonly watchHighWaterBytes?: number;
  /** Watches one /v3/watch stream may hold. Default 1 000. */
  readonly maxWatchesPerStream?: number;
  /** Keep-alive messages of one stream waiting to be answered. Default 1 000. */
  readonly maxPendingKeepAlives?: number;
  readonly logger?: Logger;
}

/** The header Ballot adds when a read was served from local, possibly stale state. */
export const READ_CONSISTENCY_HEADER = 'Ballot-Read-Consistency';

/** Answers `req` if its path is under /v3/ and returns true; returns false for any other path. */
export type JsonGatewayHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

type Unary = (body: unknown) => Promise<{ readonly json: JsonObject; readonly stale: boolean }>;

/** The largest JSON body that can carry a message of `maxRequestBytes` (base64 + field names). */
export function maxBodyBytesFor(maxRequestBytes: number): number {
  return Math.ceil((maxRequestBytes * 4) / 3) + 512 * 1024;
}

export function createJsonGateway(service: KvService, opts: JsonGatewayOptions = {}): JsonGatewayHandler {
  const maxBodyBytes = maxBodyBytesFor(opts.maxRequestBytes ?? LIMITS.maxRequestBytes);
  const maxStreamBufferBytes = opts.maxStreamBufferBytes ?? 16 * 1024 * 1024;
  const maxWatchesPerStream = opts.maxWatchesPerStream ?? 1000;
  const watchHighWaterBytes = Math.min(opts.watchHighWaterBytes ?? 1024 * 1024, maxStreamBufferBytes);
  const maxPendingKeepAlives = opts.maxPendingKeepAlives ?? 1000;
  const logger = opts.logger;

  function unary<Req, Res>(
    decode: (body: unknown) => Req,
    call: (req: Req) => Promise<Answer<Res>>,
    encode: (result: Res, header: ResponseHeader) => JsonObject,
  ): Unary {
    return async (body) => {
      const answer = await call(decode(body));
      return { json: encode(answer.result, answer.header), stale: answer.stale === true };
    };
  }
  const headerOnly = (_: unknown, h: ResponseHeader): JsonObject => ({ header: encodeHeader(h) });

  const leaseRevoke = unary(decodeLeaseIdRequest, (id) => service.leaseRevoke(id), headerOnly);
  const leaseTimeToLive = unary(decodeLeaseTimeToLiveRequest, (r) => service.leaseTimeToLive(r.id, r.keys), encodeLeaseTimeToLiveResult);
  const leaseLeases = unary(decodeEmptyRequest, () => service.leaseLeases(), encodeLeaseLeasesResult);

  const routes: Readonly<Record<string, Unary>> = {
    '/v3/kv/range': unary(decodeRangeRequest, (r) => service.range(r), encodeRangeResult),
    '/v3/kv/put': unary(decodePutRequest, (r) => service.put(r), encodePutResult),
    '/v3/kv/deleterange': unary(decodeDeleteRangeRequest, (r) => service.deleteRange(r), encodeDeleteRangeResult),
    '/v3/kv/txn': unary(decodeTxnRequest, (r) => service.txn(r), encodeTxnResult),
    '/v3/kv/compaction': unary(decodeCompactRequest, (r) => service.compact(r), headerOnly),
    '/v3/lease/grant': unary(decodeLeaseGrantRequest, (r) => service.leaseGrant(r), encodeLeaseGrantResult),
    '/v3/lease/revoke': leaseRevoke,
    '/v3/kv/lease/revoke': leaseRevoke,
    '/v3/lease/timetolive': leaseTimeToLive,
    '/v3/kv/lease/timetolive': leaseTimeToLive,
    '/v3/lease/leases': leaseLeases,
    '/v3/kv/lease/leases': leaseLeases,
    '/v3/cluster/member/list': unary(decodeEmptyRequest, () => service.memberList(), encodeMembersResult),
    '/v3/cluster/member/add': unary(decodeMemberAddRequest, (r) => service.memberAdd(r.peerUrls, r.isLearner), encodeMembersResult),
    '/v3/cluster/member/remove': unary(decodeMemberIdRequest, (id) => service.memberRemove(id), encodeMembersResult),
    '/v3/cluster/member/promote': unary(decodeMemberIdRequest, (id) => service.memberPromote(id), encodeMembersResult),
    '/v3/maintenance/status': unary(decodeEmptyRequest, () => service.status(), encodeStatusResult),
  };

  function fail(res: ServerResponse, e: unknown, path: string): void {
    const err = toKvError(e);
    if (err.code === 'INTERNAL' || err.code === 'STORAGE_CORRUPT') logger?.error({ err, path }, 'json gateway: request failed');
    sendError(res, err);
  }

  async function serveUnary(req: IncomingMessage, res: ServerResponse, path: string, route: Unary): Promise<void> {
    let body: unknown;
    try {
      body = parseJson(await readBody(req, maxBodyBytes));
    } catch (e) {
      refuseBody(req, res, toKvError(e));
      return;
    }
    try {
      const { json, stale } = await route(body);
      sendJson(res, 200, json, stale ? { [READ_CONSISTENCY_HEADER]: 'serializable' } : {});
    } catch (e) {
      fail(res, e, path);
    }
  }

  return (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!path.startsWith('/v3/')) return false;
    // A client that goes away mid-request must not become an unhandled 'error' event.
    req.on('error', (err) => logger?.debug({ err, path }, 'json gateway: request stream error'));
    res.on('error', (err) => logger?.debug({ err, path }, 'json gateway: response stream error'));
    try {
      if (req.method !== 'POST') {
        req.resume();
        sendError(res, new KvError('BAD_REQUEST', `method ${String(req.method)} not allowed on ${path}: use POST`), 405, 12);
        return true;
      }
      const route = routes[path];
      if (route) {
        serveUnary(req, res, path, route).catch((e: unknown) => fail(res, e, path));
      } else if (path === '/v3/watch') {
        serveWatch(service, req, res, { maxBodyBytes, maxStreamBufferBytes, maxWatchesPerStream, watchHighWaterBytes, logger });
      } else if (path === '/v3/lease/keepalive') {
        serveKeepAlive(service, req, res, { maxBodyBytes, maxStreamBufferBytes, maxPendingKeepAlives });
      } else {
        req.resume();
        sendError(res, new KvError('BAD_REQUEST', `unknown path ${path}: not part of etcd's v3 JSON API`), 404, 12);
      }
    } catch (e) {
      fail(res, e, path);
    }
    return true;
  };
}

// ---------------------------------------------------------------------------------------------
// Bodies and answers

/** Reads the whole body, refusing one longer than maxBytes (KvError REQUEST_TOO_LARGE). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBytes) {
      reject(tooLarge(maxBytes));
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (c: Buffer): void => {
      total += c.length;
      if (total > maxBytes) {
        cleanup();
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, total));
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(new KvError('BAD_REQUEST', `bad request: the body could not be read: ${e.message}`));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function tooLarge(maxBytes: number): KvError {
  return new KvError('REQUEST_TOO_LARGE', `etcdserver: request is too large (the JSON body exceeds ${maxBytes} bytes)`);
}

/** Parses a body; an empty one is `{}` (as etcd's gateway reads it). */
function parseJson(buf: Buffer | string): unknown {
  const text = typeof buf === 'string' ? buf : buf.toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new KvError('BAD_REQUEST', `bad request: the body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Answers a request whose body was refused before it was read through: the rest of the body is
 * discarded (bounded in time: the connection is cut if the client keeps sending for 5 s more).
 */
function refuseBody(req: IncomingMessage, res: ServerResponse, err: KvError): void {
  if (!req.complete) {
    res.setHeader('Connection', 'close');
    req.resume();
    const timer = setTimeout(() => req.socket.destroy(), 5000);
    timer.unref();
    req.once('end', () => clearTimeout(timer));
    req.once('close', () => clearTimeout(timer));
  }
  sendError(res, err);
}

/** etcd's wording: errors of the mvcc layer reach the gateway prefixed by "etcdserver: ". */
function etcdMessage(err: KvError): string {
  return err.message.startsWith('mvcc: ') ? `etcdserver: ${err.message}` : err.message;
}

/** etcd's error body: {"error": msg, "message": msg, "code": gRPC code}. */
export function errorBody(err: KvError, grpcCode = KV_GRPC_CODE[err.code]): JsonObject {
  const msg = etcdMessage(err);
  return { error: msg, message: msg, code: grpcCode };
}

function sendError(res: ServerResponse, err: KvError, status = KV_HTTP_STATUS[err.code], grpcCode = KV_GRPC_CODE[err.code]): void {
  sendJson(res, status, errorBody(err, grpcCode), {});
}

function sendJson(res: ServerResponse, status: number, body: JsonObject, headers: Readonly<Record<string, string>>): void {
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

// ---------------------------------------------------------------------------------------------
// Streams

/**
 * Splits a stream of text into top-level JSON objects (`{...}{...}` with any whitespace between,
 * as Go's json.Decoder reads etcd's gateway streams). Throws KvError BAD_REQUEST on anything else
 * at the top level and REQUEST_TOO_LARGE for an object longer than maxChars.
 */
export class JsonObjectSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  constructor(private readonly maxChars: number) {}

  push(chunk: string): string[] {
    const out: string[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const ch = chunk[i];
      if (this.depth === 0) {
        if (ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t') {
          start = i + 1;
          continue;
        }
        if (ch !== '{') {
          throw new KvError('BAD_REQUEST', `bad request: the stream must be a sequence of JSON objects, got ${JSON.stringify(ch)}`);
        }
        start = i;
        this.depth = 1;
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === '\\') this.escaped = true;
        else if (ch === '"') this.inString = false;
        continue;
      }
      if (ch === '"') this.inString = true;
      else if (ch === '{' || ch === '[') this.depth++;
      else if (ch === '}' || ch === ']') {
        this.depth--;
        if (this.depth === 0) {
          out.push(this.buf + chunk.slice(start, i + 1));
          this.buf = '';
          start = i + 1;
        }
      }
    }
    if (this.depth > 0) {
      this.buf += chunk.slice(start);
      if (this.buf.length > this.maxChars) throw new KvError('REQUEST_TOO_LARGE', `etcdserver: request is too large (a stream message exceeds ${this.maxChars} bytes)`);
    }
    return out;
  }

  /** True when no object is partly read. */
  get idle(): boolean {
    return this.depth === 0;
  }
}

interface StreamOptions {
  readonly maxBodyBytes: number;
  readonly maxStreamBufferBytes: number;
}

/**
 * The shared shape of the two streams: messages in (parsed one by one), lines out. The first
 * message is checked before the 200 is sent, so a bad first request gets a plain 4xx answer;
 * a bad later one gets an error line and the stream ends.
 */
class Stream {
  started = false;
  ended = false;
  /** A message was read and accepted. */
  private received = false;
  private readonly splitter: JsonObjectSplitter;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly opts: StreamOptions,
    private readonly onMessage: (msg: unknown) => void,
    private readonly onEnd: () => void,
  ) {
    this.splitter = new JsonObjectSplitter(opts.maxBodyBytes);
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      if (this.ended) return;
      try {
        for (const text of this.splitter.push(chunk)) {
          if (this.ended) return;
          this.onMessage(parseJson(text));
          this.received = true;
        }
      } catch (e) {
        this.fail(toKvError(e));
      }
    });
    req.on('end', () => {
      // The client has sent everything; the answers keep flowing until it disconnects (as etcd).
      if (!this.received && !this.ended) this.fail(new KvError('BAD_REQUEST', 'bad request: the stream ended before its first request'));
      else if (!this.splitter.idle && !this.ended) this.fail(new KvError('BAD_REQUEST', 'bad request: the stream ended inside a JSON object'));
    });
    req.on('error', () => this.close());
    res.on('close', () => this.close());
  }

  /** Writes one `{"result": ...}` line; false if the stream is over (or was just cut off as too slow). */
  send(result: JsonObject): boolean {
    if (this.ended) return false;
    this.start();
    this.res.write(`${JSON.stringify({ result })}\n`);
    if (this.res.writableLength > this.opts.maxStreamBufferBytes) {
      this.fail(new KvError('QUEUE_FULL', `the client is too slow: more than ${this.opts.maxStreamBufferBytes} bytes of the stream unread`));
      return false;
    }
    return true;
  }

  start(): void {
    if (this.started || this.ended) return;
    this.started = true;
    this.res.writeHead(200, { 'Content-Type': 'application/json' });
    this.res.flushHeaders();
  }

  fail(err: KvError): void {
    if (this.ended) return;
    if (!this.started) {
      this.close();
      refuseBody(this.req, this.res, err);
      return;
    }
    this.res.write(`${JSON.stringify(errorBody(err))}\n`);
    this.close();
    this.res.end();
  }

  private close(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    if (!this.req.complete) this.req.resume();
    if (this.started && !this.res.writableEnded) this.res.end();
  }
}

/**
 * One /v3/watch stream. Watch ids are the stream's own, as in etcd: a client may choose one (a
 * duplicate is refused the way etcd refuses it), otherwise the next unused id from 0. The hub
 * numbers its watchers itself; responses are rewritten to the stream's ids.
 */
function serveWatch(
  service: KvService,
  req: IncomingMessage,
  res: ServerResponse,
  opts: StreamOptions & { readonly maxWatchesPerStream: number; readonly watchHighWaterBytes: number; readonly logger: Logger | undefined },
): void {
  /** Stream watch id -> the hub's handle (null while the hub is creating it). */
  const watches = new Map<number, WatchHandle | null>();
  let nextId = 0;
  let lastHeader: ResponseHeader | undefined;
  const cancelAll = (reason: string): void => {
    const all = [...watches.values()];
    watches.clear();
    for (const h of all) {
      try {
        h?.cancel(reason);
      } catch (e) {
        opts.logger?.warn({ err: e }, 'json gateway: watch cancel failed');
      }
    }
  };
  const stream: Stream = new Stream(req, res, opts, onMessage, () => cancelAll('the client closed the watch stream'));

  function create(m: Extract<WatchStreamRequest, { type: 'create' }>): void {
    const { watchId: chosen, ...rest } = m.req;
    if (chosen !== undefined && chosen !== 0 && watches.has(chosen)) {
      const dup: JsonObject = lastHeader ? { header: encodeHeader(lastHeader) } : {};
      stream.send({ ...dup, watch_id: '-1', created: true, canceled: true, cancel_reason: 'mvcc: duplicate watch ID provided on the WatchStream' });
      return;
    }
    if (watches.size >= opts.maxWatchesPerStream) {
      throw new KvError('QUEUE_FULL', `too many watches on one stream (at most ${opts.maxWatchesPerStream})`);
    }
    let id = chosen ?? 0;
    if (id === 0) {
      while (watches.has(nextId)) nextId++;
      id = nextId++;
    }
    watches.set(id, null);
    // Flow-controlled (watch/hub.ts FlowControlledSink): while the socket holds more than
    // watchHighWaterBytes unsent, the hub buffers this watcher's events (bounded; a watcher that
    // falls too far behind is canceled by the hub with a reason).
    let done = false;
    const sink: FlowControlledSink = {
      send: (r: WatchResponse): void => {
        if (done) return;
        lastHeader = r.header;
        if (r.canceled) {
          done = true;
          watches.delete(id);
        }
        stream.send(encodeWatchResponse({ ...r, watchId: id }));
      },
      get writable(): boolean {
        return !stream.ended && res.writableLength < opts.watchHighWaterBytes;
      },
      onDrain: (listener: () => void): (() => void) => {
        res.on('drain', listener);
        return () => res.off('drain', listener);
      },
    };
    let handle: WatchHandle;
    try {
      handle = service.watch(rest, sink);
    } catch (e) {
      // A request the service refuses before anything was sent: a plain 4xx on the first message.
      watches.delete(id);
      throw e;
    }
    stream.start();
    if (stream.ended) handle.cancel('the client closed the watch stream');
    else if (!done) watches.set(id, handle);
  }

  function onMessage(msg: unknown): void {
    const m = decodeWatchRequest(msg);
    switch (m.type) {
      case 'create':
        create(m);
        return;
      case 'cancel': {
        stream.start();
        // An unknown id is ignored, as etcd does.
        watches.get(m.watchId)?.cancel();
        return;
      }
      case 'progress':
        stream.start();
        for (const h of watches.values()) h?.requestProgress();
        return;
    }
  }
}

function serveKeepAlive(
  service: KvService,
  req: IncomingMessage,
  res: ServerResponse,
  opts: StreamOptions & { readonly maxPendingKeepAlives: number },
): void {
  let pending = 0;
  let chain: Promise<void> = Promise.resolve();
  let lastHeader: ResponseHeader | undefined;
  const stream: Stream = new Stream(req, res, opts, onMessage, () => undefined);

  function onMessage(msg: unknown): void {
    const id = decodeLeaseIdRequest(msg);
    if (pending >= opts.maxPendingKeepAlives) {
      throw new KvError('QUEUE_FULL', `too many keep-alives waiting on one stream (at most ${opts.maxPendingKeepAlives})`);
    }
    pending++;
    // Answered one at a time, in the order asked.
    chain = chain.then(async () => {
      try {
        const a = await service.leaseKeepAlive(id);
        lastHeader = a.header;
        stream.send(encodeLeaseKeepAliveResult(a.result, a.header));
      } catch (e) {
        const err = toKvError(e);
        if (err.code === 'LEASE_NOT_FOUND') {
          // etcd answers a keep-alive of an unknown lease with TTL 0 (omitted), not an error.
          const out: JsonObject = lastHeader ? { header: encodeHeader(lastHeader) } : {};
          stream.send({ ...out, ID: String(id) });
        } else {
          stream.fail(err);
        }
      } finally {
        pending--;
      }
    });
  }
}
