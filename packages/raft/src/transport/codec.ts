// The peer wire format: msgpack frames carried as binary WebSocket messages.
//
// A connection is one-way for Raft traffic: the dialing node sends, the accepting node receives.
//
//   dialer → acceptor   hello     {type: 'hello', version: 1, clusterId, from, to}
//   acceptor → dialer   hello-ack {type: 'hello-ack', version: 1, from}
//   dialer → acceptor   batch     [Message, Message, ...]   (a msgpack array of message maps)
//
// Messages are msgpack maps whose keys are exactly the fields of their variant in core/types.ts;
// entries are maps {index, term, type, data} with `data` as msgpack bin. Nothing a peer sends
// reaches the core before validateMessage() has checked every field's type (a peer may be buggy,
// from another version, or not a peer at all).

import { Packr } from 'msgpackr';
import { RaftError } from '../core/errors.js';
import type { Entry, Message, MessageType, NodeId, SnapshotMeta } from '../core/types.js';

export const WIRE_VERSION = 1;

/** Longest node or cluster id accepted off the wire. */
export const MAX_ID_CHARS = 256;

const packr = new Packr({ useRecords: false });

export interface Hello {
  readonly type: 'hello';
  readonly version: number;
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
}

export interface HelloAck {
  readonly type: 'hello-ack';
  readonly version: number;
  readonly from: NodeId;
}

function bad(message: string): RaftError {
  return new RaftError('BAD_REQUEST', message);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes one message (the unit the transport coalesces into frames). Only the variant's own
 * fields are written, so whatever else an in-memory object carries never reaches the wire.
 */
export function encodeMessage(message: Message): Buffer {
  const wire: Record<string, unknown> = { type: message.type, from: message.from, to: message.to, term: message.term };
  const src = message as unknown as Record<string, unknown>;
  for (const key of MESSAGE_FIELDS[message.type]) wire[key] = src[key];
  if (message.type === 'AppendEntries') {
    wire['entries'] = message.entries.map((e) => ({ index: e.index, term: e.term, type: e.type, data: e.data }));
  }
  // RequestVote.force is optional in memory (leadership transfer) but always on the wire.
  if (message.type === 'RequestVote') wire['force'] = message.force === true;
  if (message.type === 'InstallSnapshot') {
    const { index, term, config } = message.meta;
    wire['meta'] = { index, term, config: { voters: [...config.voters], learners: [...config.learners] } };
  }
  return packr.pack(wire);
}

/**
 * A batch frame from messages already encoded with encodeMessage(): a msgpack array header
 * followed by the encodings, so the sender can bound a frame's bytes before building it.
 */
export function frameFromEncoded(encoded: readonly Uint8Array[]): Buffer {
  const n = encoded.length;
  let header: Buffer;
  if (n < 16) {
    header = Buffer.from([0x90 | n]); // fixarray
  } else if (n <= 0xffff) {
    header = Buffer.allocUnsafe(3); // array 16
    header[0] = 0xdc;
    header.writeUInt16BE(n, 1);
  } else {
    header = Buffer.allocUnsafe(5); // array 32
    header[0] = 0xdd;
    header.writeUInt32BE(n, 1);
  }
  return Buffer.concat([header, ...encoded]);
}

/** Encodes a batch of messages as one frame. */
export function encodeBatch(messages: readonly Message[]): Buffer {
  return frameFromEncoded(messages.map(encodeMessage));
}

export function encodeHello(hello: Omit<Hello, 'type' | 'version'>): Buffer {
  const frame: Hello = { type: 'hello', version: WIRE_VERSION, clusterId: hello.clusterId, from: hello.from, to: hello.to };
  return packr.pack(frame);
}

export function encodeHelloAck(from: NodeId): Buffer {
  const frame: HelloAck = { type: 'hello-ack', version: WIRE_VERSION, from };
  return packr.pack(frame);
}

// ---------------------------------------------------------------------------------------------
// Decoding and validation

function unpack(frame: Uint8Array): unknown {
  try {
    return packr.unpack(frame);
  } catch (e) {
    throw bad(`frame is not valid msgpack: ${(e as Error).message}`);
  }
}

/** Decodes a batch frame; every message is validated. Throws RaftError('BAD_REQUEST'). */
export function decodeBatch(frame: Uint8Array): Message[] {
  const body = unpack(frame);
  if (!Array.isArray(body)) throw bad('batch frame is not an array');
  return body.map((m, i) => {
    try {
      return validateMessage(m);
    } catch (e) {
      if (e instanceof RaftError) throw bad(`message ${i} of the batch: ${e.message}`);
      throw e;
    }
  });
}

export function decodeHello(frame: Uint8Array): Hello {
  const x = unpack(frame);
  const o = exactObject(x, ['type', 'version', 'clusterId', 'from', 'to'], 'hello');
  if (o['type'] !== 'hello') throw bad('expected a hello frame');
  return {
    type: 'hello',
    version: nonNegInt(o, 'version'),
    clusterId: id(o, 'clusterId'),
    from: id(o, 'from'),
    to: id(o, 'to'),
  };
}

export function decodeHelloAck(frame: Uint8Array): HelloAck {
  const x = unpack(frame);
  const o = exactObject(x, ['type', 'version', 'from'], 'hello-ack');
  if (o['type'] !== 'hello-ack') throw bad('expected a hello-ack frame');
  return { type: 'hello-ack', version: nonNegInt(o, 'version'), from: id(o, 'from') };
}

/** A plain object with exactly these own keys (no more, no fewer). */
function exactObject(x: unknown, keys: readonly string[], what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x) || x instanceof Uint8Array) {
    throw bad(`${what} is not a map`);
  }
  const own = Object.keys(x);
  if (own.length !== keys.length || !keys.every((k) => Object.hasOwn(x, k))) {
    throw bad(`${what} has fields [${own.join(', ')}], expected [${keys.join(', ')}]`);
  }
  return x as Record<string, unknown>;
}

function nonNegInt(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw bad(`${key} must be a non-negative integer, got ${describe(v)}`);
  }
  return v;
}

function bool(o: Record<string, unknown>, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw bad(`${key} must be a boolean, got ${describe(v)}`);
  return v;
}

function id(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS) {
    throw bad(`${key} must be a non-empty string of at most ${MAX_ID_CHARS} chars, got ${describe(v)}`);
  }
  return v;
}

function requestIds(o: Record<string, unknown>): number[] {
  const v = o['requestIds'];
  if (!Array.isArray(v)) throw bad(`requestIds must be an array, got ${describe(v)}`);
  for (const r of v) {
    if (typeof r !== 'number' || !Number.isSafeInteger(r)) throw bad(`requestIds holds a non-integer ${describe(r)}`);
  }
  return v.slice() as number[];
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${String(v)}`;
}

function validateEntry(x: unknown, expectedIndex: number): Entry {
  const o = exactObject(x, ['index', 'term', 'type', 'data'], 'entry');
  const index = nonNegInt(o, 'index');
  if (index !== expectedIndex) throw bad(`entry index ${index} breaks the run (expected ${expectedIndex})`);
  const term = nonNegInt(o, 'term');
  if (term < 1) throw bad(`entry ${index} has term 0`);
  const type = o['type'];
  if (type !== 'normal' && type !== 'noop' && type !== 'config') throw bad(`entry ${index} has unknown type ${describe(type)}`);
  const data = o['data'];
  if (!(data instanceof Uint8Array)) throw bad(`entry ${index} data must be binary, got ${describe(data)}`);
  // msgpackr hands out Buffers; the core's contract is a plain Uint8Array (same bytes, no copy).
  return { index, term, type, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

const MESSAGE_FIELDS: Readonly<Record<MessageType, readonly string[]>> = {
  RequestVote: ['preVote', 'lastLogIndex', 'lastLogTerm', 'force'],
  RequestVoteResponse: ['preVote', 'granted'],
  AppendEntries: ['prevLogIndex', 'prevLogTerm', 'entries', 'leaderCommit'],
  AppendEntriesResponse: ['success', 'index', 'conflictTerm', 'conflictIndex'],
  Heartbeat: ['commit', 'readRound'],
  HeartbeatResponse: ['readRound'],
  ReadIndex: ['requestIds'],
  ReadIndexResponse: ['requestIds', 'index'],
  InstallSnapshot: ['meta'],
  TimeoutNow: [],
};

function idList(o: Record<string, unknown>, key: string): string[] {
  const v = o[key];
  if (!Array.isArray(v)) throw bad(`${key} must be an array, got ${describe(v)}`);
  const out = v.map((_, i) => id({ [`${key}[${i}]`]: v[i] as unknown }, `${key}[${i}]`));
  if (new Set(out).size !== out.length) throw bad(`${key} repeats a node`);
  return out;
}

function validateSnapshotMeta(x: unknown): SnapshotMeta {
  const o = exactObject(x, ['index', 'term', 'config'], 'snapshot meta');
  const c = exactObject(o['config'], ['voters', 'learners'], 'snapshot config');
  const voters = idList(c, 'voters');
  const learners = idList(c, 'learners');
  if (voters.some((v) => learners.includes(v))) throw bad('snapshot config lists a node as voter and learner');
  return { index: nonNegInt(o, 'index'), term: nonNegInt(o, 'term'), config: { voters, learners } };
}

function isMessageType(t: unknown): t is MessageType {
  return typeof t === 'string' && Object.hasOwn(MESSAGE_FIELDS, t);
}

/**
 * Checks that `x` is exactly one Message variant of core/types.ts — every field present with the
 * right type and no other field — and returns a fresh copy of it. Throws RaftError('BAD_REQUEST')
 * naming the first problem. AppendEntries entries must run contiguously from prevLogIndex + 1.
 */
export function validateMessage(x: unknown): Message {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw bad(`message is not a map`);
  const type = (Object.hasOwn(x, 'type') ? (x as { type: unknown }).type : undefined) as unknown;
  if (!isMessageType(type)) throw bad(`unknown message type ${describe(type)}`);
  const o = exactObject(x, ['type', 'from', 'to', 'term', ...MESSAGE_FIELDS[type]], type);
  const base = { from: id(o, 'from'), to: id(o, 'to'), term: nonNegInt(o, 'term') };
  switch (type) {
    case 'RequestVote':
      return {
        type,
        ...base,
        preVote: bool(o, 'preVote'),
        lastLogIndex: nonNegInt(o, 'lastLogIndex'),
        lastLogTerm: nonNegInt(o, 'lastLogTerm'),
        force: bool(o, 'force'),
      };
    case 'RequestVoteResponse':
      return { type, ...base, preVote: bool(o, 'preVote'), granted: bool(o, 'granted') };
    case 'AppendEntries': {
      const prevLogIndex = nonNegInt(o, 'prevLogIndex');
      const raw = o['entries'];
      if (!Array.isArray(raw)) throw bad(`entries must be an array, got ${describe(raw)}`);
      const entries = raw.map((e, i) => validateEntry(e, prevLogIndex + 1 + i));
      return {
        type,
        ...base,
        prevLogIndex,
        prevLogTerm: nonNegInt(o, 'prevLogTerm'),
        entries,
        leaderCommit: nonNegInt(o, 'leaderCommit'),
      };
    }
    case 'AppendEntriesResponse':
      return {
        type,
        ...base,
        success: bool(o, 'success'),
        index: nonNegInt(o, 'index'),
        conflictTerm: nonNegInt(o, 'conflictTerm'),
        conflictIndex: nonNegInt(o, 'conflictIndex'),
      };
    case 'Heartbeat':
      return { type, ...base, commit: nonNegInt(o, 'commit'), readRound: nonNegInt(o, 'readRound') };
    case 'HeartbeatResponse':
      return { type, ...base, readRound: nonNegInt(o, 'readRound') };
    case 'ReadIndex':
      return { type, ...base, requestIds: requestIds(o) };
    case 'ReadIndexResponse':
      return { type, ...base, requestIds: requestIds(o), index: nonNegInt(o, 'index') };
    case 'InstallSnapshot':
      return { type, ...base, meta: validateSnapshotMeta(o['meta']) };
    case 'TimeoutNow':
      return { type, ...base };
  }
}
