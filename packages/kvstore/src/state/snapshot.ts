// The snapshot image of the store: a stream of length-prefixed msgpack frames.
//
//   frame 0:      the header (format, applied index and term, revision, compacted revision, clock)
//   frames 1..n:  arrays of [LevelDB key, value] pairs, in key order (every record but the metadata)
//   last frame:   { end: true, pairs: N } so a truncated image is detected
//
// Each frame is a 4-byte big-endian length and that many bytes of msgpack. The consumer may cut
// the stream into chunks anywhere (files, sockets): readSnapshotFrames reassembles the frames.
// Memory stays bounded on both sides: the writer holds one page of the LevelDB iterator (at most
// 1000 records or about SNAPSHOT_FRAME_BYTES) and its frame; the reader one frame plus one chunk.

import { KvError } from '../errors.js';
import { packr } from '../mvcc/store.js';

export interface SnapshotImageHeader {
  readonly format: 1;
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  readonly compactedRevision: number;
  readonly clockMs: number;
}

/** Records per iterator page, hence per frame (the iterator also stops a page at FRAME_BYTES). */
const PAGE_RECORDS = 1000;
/** The iterator's byte budget per page: frames stay about this big (a single larger record goes alone). */
export const SNAPSHOT_FRAME_BYTES = 512 * 1024;
/** Chunks handed to the consumer are at most this big. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Refuse frames larger than this when reading (a corrupt length must not allocate gigabytes). */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** The part of a LevelDB iterator the writer uses. */
export interface PairIterator {
  nextv(size: number): Promise<[Uint8Array, Uint8Array][]>;
  close(): Promise<void>;
}

function frame(payload: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, 4);
  return out;
}

function* chunks(bytes: Uint8Array): Generator<Uint8Array> {
  for (let off = 0; off < bytes.length; off += SNAPSHOT_CHUNK_BYTES) yield bytes.subarray(off, off + SNAPSHOT_CHUNK_BYTES);
}

export async function* writeSnapshotFrames(
  header: SnapshotImageHeader,
  iterator: Promise<PairIterator>,
  skipKey: Uint8Array,
): AsyncGenerator<Uint8Array> {
  const it = await iterator;
  try {
    yield frame(packr.pack(header));
    let total = 0;
    for (;;) {
      // One page of the iterator (at most PAGE_RECORDS records, about its byte budget) is one frame.
      const page = await it.nextv(PAGE_RECORDS);
      if (page.length === 0) break;
      const pairs = page.filter(([k]) => !(k.length === skipKey.length && Buffer.compare(k, skipKey) === 0));
      total += pairs.length;
      if (pairs.length > 0) yield* chunks(frame(packr.pack(pairs)));
    }
    yield frame(packr.pack({ end: true, pairs: total }));
  } finally {
    await it.close();
  }
}

/** Reads an image: returns its header after handing every page of pairs to `onPairs`, in order. */
export async function readSnapshotFrames(
  data: AsyncIterable<Uint8Array>,
  onPairs: (pairs: [Uint8Array, Uint8Array][]) => Promise<void>,
): Promise<SnapshotImageHeader> {
  let buf: Buffer = Buffer.alloc(0);
  let header: SnapshotImageHeader | null = null;
  let total = 0;
  let ended = false;
  const corrupt = (why: string): KvError => new KvError('STORAGE_CORRUPT', `kv snapshot image: ${why}`);
  for await (const chunk of data) {
    buf = buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 4) break;
      const len = buf.readUInt32BE(0);
      if (len > MAX_FRAME_BYTES) throw corrupt(`frame of ${len} bytes`);
      if (buf.length < 4 + len) break;
      if (ended) throw corrupt('data after the end frame');
      let body: unknown;
      try {
        body = packr.unpack(buf.subarray(4, 4 + len));
      } catch (e) {
        throw corrupt(`undecodable frame (${e instanceof Error ? e.message : String(e)})`);
      }
      buf = buf.subarray(4 + len);
      if (header === null) {
        const h = body as Partial<SnapshotImageHeader>;
        if (h.format !== 1 || typeof h.revision !== 'number') throw corrupt('bad header');
        header = h as SnapshotImageHeader;
      } else if (Array.isArray(body)) {
        total += body.length;
        await onPairs(body as [Uint8Array, Uint8Array][]);
      } else {
        const end = body as { end?: boolean; pairs?: number };
        if (end.end !== true || end.pairs !== total) throw corrupt(`end frame says ${String(end.pairs)} records, read ${total}`);
        ended = true;
      }
    }
  }
  if (header === null || !ended || buf.length > 0) throw corrupt('truncated');
  return header;
}
