// Backup files (`ballot kv snapshot save FILE` / `ballot kv snapshot restore FILE --data-dir D`).
//
// A backup is the store's snapshot image (snapshot.ts) between a header and a checksum trailer:
//
//   "BALLOTKV" | format u32 | revision u64 | appliedIndex u64 | appliedTerm u64     (header, 36 bytes)
//   the snapshot image stream                                                      (body)
//   "BKVTRAIL" | bodyBytes u64 | crc32c u32 of header and body                       (trailer, 20 bytes)
//
// (Numbers big-endian.) CRC32C is the same checksum the Raft snapshot files use. readBackup checks
// the whole file before it hands out any data; restoreBackupInto builds a fresh store from it at
// applied index 0 (a new cluster's log applies on top), keeping revisions, keys and leases.

import { open as openFile, stat } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { crc32c } from '@node-rs/crc32';
import { KvError } from '../errors.js';
import { KvStateMachine } from './machine.js';

const MAGIC = Buffer.from('BALLOTKV', 'latin1');
const TRAILER_MAGIC = Buffer.from('BKVTRAIL', 'latin1');
const FORMAT = 1;
export const BACKUP_HEADER_BYTES = 36;
export const BACKUP_TRAILER_BYTES = 20;
const READ_BYTES = 256 * 1024;

export interface BackupHeader {
  readonly revision: number;
  readonly appliedIndex: number;
  readonly appliedTerm: number;
}

function u64(buf: Buffer, n: number, off: number): void {
  buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), off);
  buf.writeUInt32BE(n >>> 0, off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * 0x1_0000_0000 + buf.readUInt32BE(off + 4);
}

/** The store's image as a backup file's bytes, streamed (bounded memory), ending with the checksum. */
export async function* writeBackup(sm: KvStateMachine): AsyncGenerator<Uint8Array> {
  // Between two applies, the state is that of appliedIndex: exactly what snapshot() captures.
  const at = { index: sm.appliedIndex, term: sm.appliedTerm };
  const revision = sm.revision;
  const image = sm.snapshot(at);
  const header = Buffer.alloc(BACKUP_HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(FORMAT, 8);
  u64(header, revision, 12);
  u64(header, at.index, 20);
  u64(header, at.term, 28);
  let crc = crc32c(header);
  let bodyBytes = 0;
  yield header;
  for await (const chunk of image) {
    crc = crc32c(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), crc);
    bodyBytes += chunk.byteLength;
    yield chunk;
  }
  const trailer = Buffer.alloc(BACKUP_TRAILER_BYTES);
  TRAILER_MAGIC.copy(trailer, 0);
  u64(trailer, bodyBytes, 8);
  trailer.writeUInt32BE(crc >>> 0, 16);
  yield trailer;
}

function corrupt(file: string, why: string): KvError {
  return new KvError('STORAGE_CORRUPT', `backup ${file}: ${why}`);
}

/**
 * Verifies a backup file (magic, format, length, checksum) and returns its header and its image,
 * streamed from the file on demand. Throws KvError STORAGE_CORRUPT if anything is off.
 */
export async function readBackup(file: string): Promise<{ readonly header: BackupHeader; readonly data: AsyncIterable<Uint8Array> }> {
  const size = (await stat(file)).size;
  if (size < BACKUP_HEADER_BYTES + BACKUP_TRAILER_BYTES) throw corrupt(file, `too short (${size} bytes)`);
  const fh = await openFile(file, 'r');
  let header: BackupHeader;
  const bodyBytes = size - BACKUP_HEADER_BYTES - BACKUP_TRAILER_BYTES;
  try {
    const head = Buffer.alloc(BACKUP_HEADER_BYTES);
    await fh.read(head, 0, BACKUP_HEADER_BYTES, 0);
    if (!head.subarray(0, 8).equals(MAGIC)) throw corrupt(file, 'not a Ballot kv backup (bad magic)');
    if (head.readUInt32BE(8) !== FORMAT) throw corrupt(file, `unknown format ${head.readUInt32BE(8)}`);
    header = { revision: readU64(head, 12), appliedIndex: readU64(head, 20), appliedTerm: readU64(head, 28) };
    const trailer = Buffer.alloc(BACKUP_TRAILER_BYTES);
    await fh.read(trailer, 0, BACKUP_TRAILER_BYTES, size - BACKUP_TRAILER_BYTES);
    if (!trailer.subarray(0, 8).equals(TRAILER_MAGIC)) throw corrupt(file, 'truncated (no trailer)');
    if (readU64(trailer, 8) !== bodyBytes) throw corrupt(file, `body is ${bodyBytes} bytes, trailer says ${readU64(trailer, 8)}`);
    let crc = crc32c(head);
    const buf = Buffer.alloc(READ_BYTES);
    for (let off = BACKUP_HEADER_BYTES; off < BACKUP_HEADER_BYTES + bodyBytes; ) {
      const want = Math.min(READ_BYTES, BACKUP_HEADER_BYTES + bodyBytes - off);
      const { bytesRead } = await fh.read(buf, 0, want, off);
      if (bytesRead === 0) throw corrupt(file, 'short read');
      crc = crc32c(buf.subarray(0, bytesRead), crc);
      off += bytesRead;
    }
    const stored = trailer.readUInt32BE(16);
    if ((crc >>> 0) !== stored) throw corrupt(file, `checksum mismatch (stored crc32c 0x${stored.toString(16)}, computed 0x${(crc >>> 0).toString(16)})`);
  } finally {
    await fh.close();
  }
  async function* data(): AsyncGenerator<Uint8Array> {
    const f = await openFile(file, 'r');
    try {
      for (let off = BACKUP_HEADER_BYTES; off < BACKUP_HEADER_BYTES + bodyBytes; ) {
        const want = Math.min(READ_BYTES, BACKUP_HEADER_BYTES + bodyBytes - off);
        const chunk = Buffer.alloc(want);
        const { bytesRead } = await f.read(chunk, 0, want, off);
        if (bytesRead === 0) throw corrupt(file, 'short read');
        off += bytesRead;
        yield chunk.subarray(0, bytesRead);
      }
    } finally {
      await f.close();
    }
  }
  return { header, data: data() };
}

/**
 * Creates a fresh store in `dir` (which must not exist or be empty) from a backup: same keys,
 * revisions and leases, applied index 0, no sessions, no published member attributes.
 */
export async function restoreBackupInto(file: string, dir: string): Promise<{ readonly revision: number; readonly keys: number }> {
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new KvError('BAD_REQUEST', `restore: ${dir} exists and is not empty`);
  const { data } = await readBackup(file);
  const sm = await KvStateMachine.open({ dir });
  try {
    await sm.replaceState(data, 0, 0, true);
    const keys = (await sm.range({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0), countOnly: true })).count;
    return { revision: sm.revision, keys };
  } finally {
    await sm.close();
  }
}
