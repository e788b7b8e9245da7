// The on-disk record format of the LevelDB log (see leveldb.ts for how records are used).
//
// Keys sort the way the log does, so one ordered scan reads the whole log back:
//
//   0x01                      hard state   (term, vote, commit)
//   0x02                      metadata     (clusterId, nodeId)
//   0x03 ‖ index as u64 BE    log entry    (8-byte big-endian, so byte order = index order)
//   0x04                      snapshot     (the latest snapshot the log starts after; see snapshot.ts)
//
// Every value is one record:
//
//   version (1 byte, = 1) ‖ CRC32C (4 bytes, big-endian) ‖ body (msgpack)
//
// The checksum covers key ‖ version ‖ body, so a value copied under another key (another index),
// a flipped bit, or a torn/garbled value is detected. Bodies are msgpack arrays:
//
//   hard state  [term, vote | null, commit]
//   metadata    [clusterId, nodeId]
//   entry       [index, term, type (0 = normal, 1 = noop, 2 = config), data (bin)]
//   snapshot    [index, term, voters[], learners[]]   (written only once a snapshot exists)
//
// The entry body repeats the index of its key: a cheap second witness that the record is where
// it belongs. Decoding checks every field's type; any mismatch is a corrupt record.

import { crc32c } from '@node-rs/crc32';
import { Packr } from 'msgpackr';
import { RaftError } from '../core/errors.js';
import type { Entry, EntryType, HardState, SnapshotMeta } from '../core/types.js';
import type { StorageMeta } from './types.js';

export const RECORD_FORMAT_VERSION = 1;
/** version byte + CRC32C. */
export const RECORD_HEADER_BYTES = 5;

export const KEY_PREFIX_HARD_STATE = 0x01;
export const KEY_PREFIX_META = 0x02;
export const KEY_PREFIX_ENTRY = 0x03;
export const KEY_PREFIX_SNAPSHOT = 0x04;
/** prefix byte + u64 big-endian index. */
export const ENTRY_KEY_BYTES = 9;

export const HARD_STATE_KEY: Buffer = Buffer.from([KEY_PREFIX_HARD_STATE]);
export const META_KEY: Buffer = Buffer.from([KEY_PREFIX_META]);
export const SNAPSHOT_KEY: Buffer = Buffer.from([KEY_PREFIX_SNAPSHOT]);

// Standard msgpack maps/arrays only: no record extension, so the format is readable by any
// msgpack decoder.
const packr = new Packr({ useRecords: false });

export function entryKey(index: number): Buffer {
  if (!Number.isSafeInteger(index) || index < 1) {
    throw new RangeError(`entry index must be a positive safe integer, got ${index}`);
  }
  const key = Buffer.allocUnsafe(ENTRY_KEY_BYTES);
  key[0] = KEY_PREFIX_ENTRY;
  key.writeBigUInt64BE(BigInt(index), 1);
  return key;
}

/** The index in an entry key, or null if the key is not a well-formed entry key. */
export function indexOfEntryKey(key: Uint8Array): number | null {
  if (key.length !== ENTRY_KEY_BYTES || key[0] !== KEY_PREFIX_ENTRY) return null;
  const index = Buffer.from(key.buffer, key.byteOffset, key.byteLength).readBigUInt64BE(1);
  if (index < 1n || index > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(index);
}

/** Human-readable name of a key for error messages, e.g. `entry 7 (key 030000000000000007)`. */
export function describeKey(key: Uint8Array): string {
  const hex = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
  if (key.length === 1 && key[0] === KEY_PREFIX_HARD_STATE) return `hard-state record (key ${hex})`;
  if (key.length === 1 && key[0] === KEY_PREFIX_META) return `metadata record (key ${hex})`;
  if (key.length === 1 && key[0] === KEY_PREFIX_SNAPSHOT) return `snapshot record (key ${hex})`;
  const index = indexOfEntryKey(key);
  if (index !== null) return `entry record at index ${index} (key ${hex})`;
  return `unknown record (key ${hex})`;
}

/** CRC32C over key ‖ version ‖ body, chained without concatenating. */
function checksum(key: Uint8Array, version: number, body: Uint8Array): number {
  return crc32c(body, crc32c(Uint8Array.of(version), crc32c(key)));
}

function encodeRecord(key: Uint8Array, body: unknown): Buffer {
  const packed = packr.pack(body);
  const value = Buffer.allocUnsafe(RECORD_HEADER_BYTES + packed.length);
  value[0] = RECORD_FORMAT_VERSION;
  value.writeUInt32BE(checksum(key, RECORD_FORMAT_VERSION, packed), 1);
  packed.copy(value, RECORD_HEADER_BYTES);
  return value;
}

/** Why a record failed to decode; the caller names the record and the data directory. */
class RecordError extends Error {}

/** Checks the header and checksum and returns the decoded msgpack body. */
function decodeRecord(key: Uint8Array, value: Uint8Array): unknown {
  if (value.length < RECORD_HEADER_BYTES + 1) {
    throw new RecordError(`value is ${value.length} bytes, shorter than a record (torn write?)`);
  }
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const version = buf[0]!;
  if (version !== RECORD_FORMAT_VERSION) {
    throw new RecordError(`unknown record format version ${version} (expected ${RECORD_FORMAT_VERSION})`);
  }
  const stored = buf.readUInt32BE(1);
  const body = buf.subarray(RECORD_HEADER_BYTES);
  const computed = checksum(key, version, body);
  if (stored !== computed) {
    throw new RecordError(
      `checksum mismatch (stored crc32c 0x${stored.toString(16).padStart(8, '0')}, ` +
        `computed 0x${computed.toString(16).padStart(8, '0')})`,
    );
  }
  try {
    return packr.unpack(body);
  } catch (e) {
    // Only reachable if the checksum matched a body that is not msgpack: a writer bug.
    throw new RecordError(`checksum matches but the body is not valid msgpack: ${(e as Error).message}`);
  }
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** A view of the same bytes as a plain Uint8Array (msgpackr hands out Buffers). */
export function asPlainBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const ENTRY_TYPE_CODES: Readonly<Record<EntryType, number>> = { normal: 0, noop: 1, config: 2 };
const ENTRY_TYPES_BY_CODE: readonly EntryType[] = ['normal', 'noop', 'config'];

export function encodeEntry(entry: Entry): { key: Buffer; value: Buffer } {
  const key = entryKey(entry.index);
  const value = encodeRecord(key, [entry.index, entry.term, ENTRY_TYPE_CODES[entry.type], entry.data]);
  return { key, value };
}

export function encodeHardState(hs: HardState): Buffer {
  return encodeRecord(HARD_STATE_KEY, [hs.term, hs.vote, hs.commit]);
}

export function encodeMeta(meta: StorageMeta): Buffer {
  return encodeRecord(META_KEY, [meta.clusterId, meta.nodeId]);
}

export function encodeSnapshotMeta(meta: SnapshotMeta): Buffer {
  return encodeRecord(SNAPSHOT_KEY, [meta.index, meta.term, [...meta.config.voters], [...meta.config.learners]]);
}

/**
 * Decoding failures are reported as STORAGE_CORRUPT naming the record and the directory: a node
 * must refuse to start rather than serve data it cannot vouch for.
 */
export function corrupt(dir: string, key: Uint8Array | null, problem: string): RaftError {
  const what = key === null ? 'store' : describeKey(key);
  return new RaftError(
    'STORAGE_CORRUPT',
    `corrupt Raft log in ${dir}: ${what}: ${problem}. Refusing to start; ` +
      `restore this node's data directory from a replica or remove it and re-add the node.`,
  );
}

function decodeWith<T>(dir: string, key: Uint8Array, value: Uint8Array, shape: (body: unknown) => T): T {
  try {
    return shape(decodeRecord(key, value));
  } catch (e) {
    if (e instanceof RecordError) throw corrupt(dir, key, e.message);
    throw e;
  }
}

export function decodeEntry(dir: string, key: Uint8Array, value: Uint8Array): Entry {
  const keyIndex = indexOfEntryKey(key);
  if (keyIndex === null) throw corrupt(dir, key, 'malformed entry key');
  return decodeWith(dir, key, value, (body) => {
    if (!Array.isArray(body) || body.length !== 4) throw new RecordError('entry body is not a 4-element array');
    const [index, term, typeCode, data] = body as unknown[];
    if (index !== keyIndex) throw new RecordError(`entry body says index ${String(index)}, key says ${keyIndex}`);
    if (!isNonNegInt(term) || term < 1) throw new RecordError(`entry term ${String(term)} is not a positive integer`);
    const type = typeof typeCode === 'number' ? ENTRY_TYPES_BY_CODE[typeCode] : undefined;
    if (type === undefined) throw new RecordError(`unknown entry type code ${String(typeCode)}`);
    if (!(data instanceof Uint8Array)) throw new RecordError('entry data is not binary');
    return { index: keyIndex, term, type, data: asPlainBytes(data) };
  });
}

export function decodeHardState(dir: string, value: Uint8Array): HardState {
  return decodeWith(dir, HARD_STATE_KEY, value, (body) => {
    if (!Array.isArray(body) || body.length !== 3) throw new RecordError('hard-state body is not a 3-element array');
    const [term, vote, commit] = body as unknown[];
    if (!isNonNegInt(term)) throw new RecordError(`term ${String(term)} is not a non-negative integer`);
    if (vote !== null && typeof vote !== 'string') throw new RecordError('vote is neither null nor a node id');
    if (!isNonNegInt(commit)) throw new RecordError(`commit ${String(commit)} is not a non-negative integer`);
    return { term, vote, commit };
  });
}

export function decodeMeta(dir: string, value: Uint8Array): StorageMeta {
  return decodeWith(dir, META_KEY, value, (body) => {
    if (!Array.isArray(body) || body.length !== 2) throw new RecordError('metadata body is not a 2-element array');
    const [clusterId, nodeId] = body as unknown[];
    if (typeof clusterId !== 'string' || typeof nodeId !== 'string') {
      throw new RecordError('clusterId and nodeId must be strings');
    }
    return { clusterId, nodeId };
  });
}

export function decodeSnapshotMeta(dir: string, value: Uint8Array): SnapshotMeta {
  return decodeWith(dir, SNAPSHOT_KEY, value, (body) => {
    if (!Array.isArray(body) || body.length !== 4) throw new RecordError('snapshot body is not a 4-element array');
    const [index, term, voters, learners] = body as unknown[];
    if (!isNonNegInt(index) || index < 1) throw new RecordError(`snapshot index ${String(index)} is not a positive integer`);
    if (!isNonNegInt(term) || term < 1) throw new RecordError(`snapshot term ${String(term)} is not a positive integer`);
    const ids = (x: unknown): x is string[] => Array.isArray(x) && x.every((v) => typeof v === 'string' && v !== '');
    if (!ids(voters) || !ids(learners)) throw new RecordError('snapshot configuration lists are not lists of node ids');
    return { index, term, config: { voters, learners } };
  });
}

/** Index and term of a log's last entry (0, 0 when empty). */
export interface LogTail {
  readonly index: number;
  readonly term: number;
}

/**
 * Checks a save batch against the stored log's tail (both storages share these rules): entries
 * are contiguous, indexes positive, terms non-decreasing (also across an append to the stored
 * tail), and the first entry either extends the log (lastIndex + 1) or replaces a suffix
 * (index <= lastIndex). A gap or a falling term would store a log Raft cannot produce: that is a
 * caller bug, so fail loudly before writing anything.
 */
export function checkSaveBatch(entries: readonly Entry[], tail: LogTail): void {
  const first = entries[0];
  if (first === undefined) return;
  const lastIndex = tail.index;
  if (!Number.isSafeInteger(first.index) || first.index < 1 || first.index > lastIndex + 1) {
    throw new RaftError(
      'BAD_REQUEST',
      `save: first entry index ${first.index} would leave a gap after stored last index ${lastIndex}`,
    );
  }
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.index !== first.index + i) {
      throw new RaftError('BAD_REQUEST', `save: entries are not contiguous at position ${i} (index ${e.index})`);
    }
    if (!Number.isSafeInteger(e.term) || e.term < 1) {
      throw new RaftError('BAD_REQUEST', `save: entry ${e.index} has invalid term ${e.term}`);
    }
    const prevTerm = i > 0 ? entries[i - 1]!.term : e.index === lastIndex + 1 ? tail.term : 0;
    if (e.term < prevTerm) {
      throw new RaftError('BAD_REQUEST', `save: entry ${e.index} has term ${e.term} below its predecessor's ${prevTerm}`);
    }
    if (e.type !== 'normal' && e.type !== 'noop' && e.type !== 'config') {
      throw new RaftError('BAD_REQUEST', `save: entry ${e.index} has unknown type ${String(e.type)}`);
    }
    if (!(e.data instanceof Uint8Array)) {
      throw new RaftError('BAD_REQUEST', `save: entry ${e.index} data is not a Uint8Array`);
    }
  }
}
