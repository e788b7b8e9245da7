// Snapshot files: the state machine's image at a log index (§7, thesis §5.1), kept next to the log.
//
// The core knows only a snapshot's metadata (index, term, configuration); the bytes live here, one
// file per snapshot in `<data-dir>/snapshots/`:
//
//   snap-<index, 20 digits>-<term, 20 digits>.snap
//
// File format (version 1), all integers big-endian:
//
//   magic "BALLOTSN" (8) ‖ version u8 (= 1) ‖ headerBytes u32 ‖ header (msgpack)
//   ‖ data (the state machine's bytes, opaque here)
//   ‖ dataBytes u64 ‖ crc32c u32
//
//   header = [index, term, voters[], learners[], addresses {id: "host:port"}]
//
// The CRC32C covers every byte before it (magic through dataBytes), so a flipped bit anywhere, a
// torn (short) file or a file renamed to another snapshot's name is detected; the name's index and
// term must match the header's. `addresses` is the driver's address book as of the snapshot (where
// each member of `config` listens), so a node restored from a snapshot can still reach members
// whose config entries were compacted away.
//
// Crash safety: a snapshot is written to a `*.tmp` file, fsynced, renamed to its final name, and
// the directory is fsynced. A crash leaves either no file or the whole file; leftover `*.tmp` files
// are deleted when the store opens. Which snapshot the node restarts from is decided by the log
// storage (its snapshot record, written after the file is durable), not by what files exist here:
// a file newer than that record (a crash between the two writes, or an install that never
// finished) is ignored and pruned. A corrupt snapshot is never used: verify() throws
// RaftError('STORAGE_CORRUPT') naming the file.
//
// Retention: prune() keeps the snapshot the log storage points at and the `keep - 1` newest older
// ones (default keep = 2), and deletes the rest. A sender streaming an older file keeps its open
// file handle, which stays readable after the name is unlinked (POSIX).

import { crc32c } from '@node-rs/crc32';
import { randomBytes } from 'node:crypto';
import { open, mkdir, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { RaftError } from '../core/errors.js';
import type { ClusterConfig, NodeId, SnapshotMeta } from '../core/types.js';

export const SNAPSHOT_MAGIC = Buffer.from('BALLOTSN', 'ascii');
export const SNAPSHOT_FORMAT_VERSION = 1;
/** magic + version + headerBytes. */
const PREFIX_BYTES = SNAPSHOT_MAGIC.length + 1 + 4;
/** dataBytes u64 + crc32c u32. */
export const SNAPSHOT_FOOTER_BYTES = 12;
/** Bound on the msgpack header (a config of many members and their addresses still fits easily). */
export const MAX_SNAPSHOT_HEADER_BYTES = 1 << 20;
/** Reads of snapshot files (verify, restore) go in pieces of this size: memory stays bounded. */
export const SNAPSHOT_READ_CHUNK_BYTES = 256 * 1024;
/** Default number of snapshot files kept (the current one and the previous one). */
export const DEFAULT_SNAPSHOTS_KEPT = 2;

const NAME = /^snap-(\d{20})-(\d{20})\.snap$/;
const packr = new Packr({ useRecords: false });

/** What a snapshot file's header says: the core's metadata plus the members' addresses. */
export interface SnapshotHeader {
  readonly meta: SnapshotMeta;
  /** Where members listen ("host:port"), as the driver knew it when the snapshot was taken. */
  readonly addresses: Readonly<Record<NodeId, string>>;
}

export interface SnapshotInfo {
  readonly index: number;
  readonly term: number;
  readonly path: string;
}

/** A verified snapshot file: its header, where its data section lies, and its size. */
export interface VerifiedSnapshot extends SnapshotInfo {
  readonly header: SnapshotHeader;
  /** Byte offset of the data section in the file. */
  readonly dataOffset: number;
  readonly dataBytes: number;
  /** Size of the whole file (what a snapshot stream transfers). */
  readonly fileBytes: number;
}

export function snapshotFileName(index: number, term: number): string {
  return `snap-${String(index).padStart(20, '0')}-${String(term).padStart(20, '0')}.snap`;
}

function corruptSnapshot(path: string, problem: string): RaftError {
  return new RaftError(
    'STORAGE_CORRUPT',
    `corrupt snapshot file ${path}: ${problem}. Refusing to use it; restore this node's data directory ` +
      `from a replica or remove it and re-add the node.`,
  );
}

/** The first bytes of a snapshot file, up to the data section. */
export function encodeSnapshotPrefix(header: SnapshotHeader): Buffer {
  const { meta, addresses } = header;
  const body = packr.pack([meta.index, meta.term, [...meta.config.voters], [...meta.config.learners], { ...addresses }]);
  if (body.length > MAX_SNAPSHOT_HEADER_BYTES) {
    throw new RaftError('BAD_REQUEST', `snapshot header of ${body.length} bytes exceeds ${MAX_SNAPSHOT_HEADER_BYTES}`);
  }
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES + body.length);
  SNAPSHOT_MAGIC.copy(prefix, 0);
  prefix[SNAPSHOT_MAGIC.length] = SNAPSHOT_FORMAT_VERSION;
  prefix.writeUInt32BE(body.length, SNAPSHOT_MAGIC.length + 1);
  body.copy(prefix, PREFIX_BYTES);
  return prefix;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function idList(x: unknown): NodeId[] | null {
  if (!Array.isArray(x) || !x.every((v) => typeof v === 'string' && v !== '')) return null;
  return x as NodeId[];
}

/** Decodes the msgpack header body; null if it is not a well-formed header. */
function decodeHeaderBody(body: Buffer): SnapshotHeader | null {
  let x: unknown;
  try {
    x = packr.unpack(body);
  } catch {
    return null;
  }
  if (!Array.isArray(x) || x.length !== 5) return null;
  const [index, term, votersRaw, learnersRaw, addressesRaw] = x as unknown[];
  const voters = idList(votersRaw);
  const learners = idList(learnersRaw);
  if (!isNonNegInt(index) || !isNonNegInt(term) || voters === null || learners === null) return null;
  if (typeof addressesRaw !== 'object' || addressesRaw === null || Array.isArray(addressesRaw)) return null;
  const addresses: Record<NodeId, string> = {};
  for (const [id, a] of Object.entries(addressesRaw as Record<string, unknown>)) {
    if (typeof a !== 'string') return null;
    addresses[id] = a;
  }
  const config: ClusterConfig = { voters, learners };
  return { meta: { index, term, config }, addresses };
}

/**
 * Reads and checks a whole snapshot file (header, size, checksum), in bounded pieces. Throws
 * RaftError('STORAGE_CORRUPT') naming the file for anything wrong with it.
 */
export async function verifySnapshotFile(path: string): Promise<VerifiedSnapshot> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw corruptSnapshot(path, `cannot open: ${(e as Error).message}`);
  }
  try {
    const fileBytes = (await fh.stat()).size;
    if (fileBytes < PREFIX_BYTES + SNAPSHOT_FOOTER_BYTES) throw corruptSnapshot(path, `only ${fileBytes} bytes (torn write?)`);
    const prefix = Buffer.alloc(PREFIX_BYTES);
    await readExactly(fh, prefix, 0);
    if (!prefix.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw corruptSnapshot(path, 'not a snapshot file (bad magic)');
    const version = prefix[SNAPSHOT_MAGIC.length]!;
    if (version !== SNAPSHOT_FORMAT_VERSION) throw corruptSnapshot(path, `unknown format version ${version}`);
    const headerBytes = prefix.readUInt32BE(SNAPSHOT_MAGIC.length + 1);
    const dataOffset = PREFIX_BYTES + headerBytes;
    if (headerBytes > MAX_SNAPSHOT_HEADER_BYTES || dataOffset + SNAPSHOT_FOOTER_BYTES > fileBytes) {
      throw corruptSnapshot(path, `header length ${headerBytes} does not fit a file of ${fileBytes} bytes`);
    }
    const footer = Buffer.alloc(SNAPSHOT_FOOTER_BYTES);
    await readExactly(fh, footer, fileBytes - SNAPSHOT_FOOTER_BYTES);
    const dataBytesBig = footer.readBigUInt64BE(0);
    const dataBytes = fileBytes - SNAPSHOT_FOOTER_BYTES - dataOffset;
    if (dataBytesBig !== BigInt(dataBytes)) {
      throw corruptSnapshot(path, `footer says ${dataBytesBig} data bytes, the file holds ${dataBytes} (torn or truncated)`);
    }
    // The checksum covers everything before it.
    let crc = 0;
    const buf = Buffer.allocUnsafe(SNAPSHOT_READ_CHUNK_BYTES);
    const end = fileBytes - 4;
    for (let pos = 0; pos < end; ) {
      const n = Math.min(buf.length, end - pos);
      await readExactly(fh, buf.subarray(0, n), pos);
      crc = crc32c(buf.subarray(0, n), crc);
      pos += n;
    }
    const stored = footer.readUInt32BE(8);
    if (stored !== crc) {
      throw corruptSnapshot(path, `checksum mismatch (stored crc32c 0x${stored.toString(16).padStart(8, '0')}, computed 0x${crc.toString(16).padStart(8, '0')})`);
    }
    const headerBody = Buffer.alloc(headerBytes);
    await readExactly(fh, headerBody, PREFIX_BYTES);
    const header = decodeHeaderBody(headerBody);
    if (header === null) throw corruptSnapshot(path, 'checksum matches but the header is malformed (writer bug?)');
    return { index: header.meta.index, term: header.meta.term, path, header, dataOffset, dataBytes, fileBytes };
  } finally {
    await fh.close();
  }
}

async function readExactly(fh: FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new RaftError('STORAGE_CORRUPT', `unexpected end of file at ${position + done}`);
    done += bytesRead;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * A snapshot file being written (by this node's state machine, or received from the leader):
 * bytes go to a temp file; finish() fsyncs, verifies and renames it into place.
 */
export class SnapshotWriter {
  /** Bytes written so far (the offset the next write must start at). */
  written = 0;
  private crc = 0;
  private done = false;

  constructor(
    private readonly store: SnapshotStore,
    private readonly fh: FileHandle,
    /** The temp file's path. */
    readonly tempPath: string,
  ) {}

  /** Appends raw file bytes at `offset` (must equal `written`; the stream is strictly sequential). */
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    if (this.done) throw new RaftError('STOPPED', `snapshot writer ${this.tempPath} is closed`);
    if (offset !== this.written) {
      throw new RaftError('BAD_REQUEST', `snapshot write at offset ${offset}, expected ${this.written}`);
    }
    let pos = 0;
    while (pos < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, pos, bytes.length - pos, offset + pos);
      pos += bytesWritten;
    }
    this.written += bytes.length;
    this.crc = crc32c(bytes, this.crc);
  }

  /** CRC32C of everything written so far. */
  get checksum(): number {
    return this.crc;
  }

  /**
   * Makes the file durable, verifies it as a snapshot file (and, if given, that its metadata is
   * `expect`), and renames it to its final name. On failure the temp file is deleted.
   */
  async finish(expect?: SnapshotMeta): Promise<VerifiedSnapshot> {
    if (this.done) throw new RaftError('STOPPED', `snapshot writer ${this.tempPath} is closed`);
    this.done = true;
    try {
      await this.fh.sync();
      await this.fh.close();
      const v = await verifySnapshotFile(this.tempPath);
      if (expect !== undefined && !sameMeta(v.header.meta, expect)) {
        throw corruptSnapshot(this.tempPath, `holds snapshot ${v.index}/${v.term}, expected ${expect.index}/${expect.term} with the same configuration`);
      }
      const path = join(this.store.dir, snapshotFileName(v.index, v.term));
      await rename(this.tempPath, path);
      await fsyncDir(this.store.dir);
      return { ...v, path };
    } catch (e) {
      await rm(this.tempPath, { force: true }).catch(() => undefined);
      throw e;
    }
  }

  /** Gives up: closes and deletes the temp file. Idempotent. */
  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.fh.close().catch(() => undefined);
    }
    await rm(this.tempPath, { force: true }).catch(() => undefined);
  }
}

export function sameMeta(a: SnapshotMeta, b: SnapshotMeta): boolean {
  const same = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return a.index === b.index && a.term === b.term && same(a.config.voters, b.config.voters) && same(a.config.learners, b.config.learners);
}

export interface SnapshotStoreOptions {
  /** Snapshot files kept by prune(): the current one and the newest older ones. Default 2 (min 1). */
  readonly keep?: number;
}

export class SnapshotStore {
  readonly keep: number;

  private constructor(
    /** The directory holding the snapshot files. */
    readonly dir: string,
    opts: SnapshotStoreOptions,
  ) {
    this.keep = Math.max(1, opts.keep ?? DEFAULT_SNAPSHOTS_KEPT);
  }

  /** Opens (creating) the directory and deletes leftover temp files of writes a crash interrupted. */
  static async open(dir: string, opts: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(dir)) {
      if (name.endsWith('.tmp')) await rm(join(dir, name), { force: true });
    }
    return new SnapshotStore(dir, opts);
  }

  /** Snapshot files by (index, term), oldest first (not verified: see verify()). */
  async list(): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for (const name of await readdir(this.dir)) {
      const m = NAME.exec(name);
      if (m) out.push({ index: Number(m[1]), term: Number(m[2]), path: join(this.dir, name) });
    }
    return out.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  pathOf(index: number, term: number): string {
    return join(this.dir, snapshotFileName(index, term));
  }

  /**
   * Verifies the file of snapshot (index, term) and checks its header names the same snapshot.
   * Throws STORAGE_CORRUPT (naming the file) if it is missing, torn or corrupt.
   */
  async verify(index: number, term: number): Promise<VerifiedSnapshot> {
    const path = this.pathOf(index, term);
    const exists = await stat(path).then(() => true, () => false);
    if (!exists) throw corruptSnapshot(path, `missing: the log storage records snapshot ${index}/${term} but its file is gone`);
    const v = await verifySnapshotFile(path);
    if (v.index !== index || v.term !== term) {
      throw corruptSnapshot(path, `header says snapshot ${v.index}/${v.term}, the file name says ${index}/${term}`);
    }
    return v;
  }

  /** Starts a new snapshot file in a temp file (see SnapshotWriter). */
  async begin(tag: string): Promise<SnapshotWriter> {
    const safeTag = tag.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
    const tempPath = join(this.dir, `${safeTag}-${randomBytes(6).toString('hex')}.tmp`);
    const fh = await open(tempPath, 'wx');
    return new SnapshotWriter(this, fh, tempPath);
  }

  /**
   * Writes a snapshot: header, then the state machine's bytes as `data` yields them (each chunk is
   * written before the next is pulled, so memory stays at one chunk), then the footer; fsync,
   * rename, directory fsync. Returns the verified file.
   */
  async write(header: SnapshotHeader, data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<VerifiedSnapshot> {
    const w = await this.begin(`snap-${header.meta.index}-${header.meta.term}`);
    try {
      await w.write(0, encodeSnapshotPrefix(header));
      const dataStart = w.written;
      for await (const chunk of data) await w.write(w.written, chunk);
      const footer = Buffer.allocUnsafe(SNAPSHOT_FOOTER_BYTES);
      footer.writeBigUInt64BE(BigInt(w.written - dataStart), 0);
      const crc = crc32c(footer.subarray(0, 8), w.checksum);
      await w.write(w.written, footer.subarray(0, 8));
      footer.writeUInt32BE(crc, 8);
      await w.write(w.written, footer.subarray(8));
    } catch (e) {
      await w.abort();
      throw e;
    }
    return w.finish(header.meta);
  }

  /**
   * The data section of a verified snapshot, in pieces of at most SNAPSHOT_READ_CHUNK_BYTES (what
   * StateMachine.restore() consumes). Each piece is a fresh buffer the consumer may keep.
   */
  async *readData(v: VerifiedSnapshot): AsyncGenerator<Uint8Array> {
    const fh = await open(v.path, 'r');
    try {
      const end = v.dataOffset + v.dataBytes;
      for (let pos = v.dataOffset; pos < end; ) {
        const n = Math.min(SNAPSHOT_READ_CHUNK_BYTES, end - pos);
        const buf = Buffer.allocUnsafe(n);
        await readExactly(fh, buf, pos);
        pos += n;
        yield new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * Deletes snapshot files other than `current` and the keep - 1 newest files older than it.
   * Files newer than `current` are deleted too unless `keepNewer` (an install may be in progress).
   */
  async prune(current: { index: number; term: number } | null, keepNewer = false): Promise<string[]> {
    const all = await this.list();
    const older = all.filter((s) => current === null || s.index < current.index || (s.index === current.index && s.term < current.term));
    const keepOlder = new Set(older.slice(Math.max(0, older.length - (this.keep - 1))).map((s) => s.path));
    const removed: string[] = [];
    for (const s of all) {
      const isCurrent = current !== null && s.index === current.index && s.term === current.term;
      const isNewer = current !== null && !isCurrent && !older.includes(s);
      if (isCurrent || keepOlder.has(s.path) || (isNewer && keepNewer)) continue;
      if (current === null && keepNewer) continue;
      await rm(s.path, { force: true });
      removed.push(s.path);
    }
    if (removed.length > 0) await fsyncDir(this.dir);
    return removed;
  }
}
