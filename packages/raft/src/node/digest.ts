// The state machine of a bare `ballot raft node` process: it remembers nothing but a running
// hash of every entry it applied and how many. Two nodes that applied the same log prefix show the
// same digest at the same applied index, which is what "state machine safety" (§5.4.3, Figure 3)
// looks like from outside: tests and the status table compare digests across nodes.
//
// Snapshot image (StateMachine.snapshot/restore): msgpack [1, index, digest (bin 32), entries,
// normalEntries], a few dozen bytes; restore() refuses anything larger than 64 KiB.

import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { RaftError } from '../core/errors.js';
import type { Entry } from '../core/types.js';
import type { SnapshotPoint, StateMachine } from './driver.js';

const packr = new Packr({ useRecords: false });
const IMAGE_VERSION = 1;
const MAX_IMAGE_BYTES = 64 * 1024;

const ENTRY_TYPE_CODE = { normal: 0, noop: 1, config: 2 } as const;

export class AppliedDigest implements StateMachine {
  private digest: Buffer = Buffer.alloc(32);
  private index = 0;
  private entries = 0;
  private normalEntries = 0;

  /** digest_i = sha256(digest_{i-1} ‖ index ‖ term ‖ type ‖ data), digest_0 = 32 zero bytes. */
  apply(entry: Entry): void {
    if (entry.index !== this.index + 1) {
      throw new Error(`applied-log digest: entry ${entry.index} applied after ${this.index}`);
    }
    const header = Buffer.allocUnsafe(17);
    header.writeBigUInt64BE(BigInt(entry.index), 0);
    header.writeBigUInt64BE(BigInt(entry.term), 8);
    header.writeUInt8(ENTRY_TYPE_CODE[entry.type], 16);
    this.digest = createHash('sha256').update(this.digest).update(header).update(entry.data).digest();
    this.index = entry.index;
    this.entries++;
    if (entry.type === 'normal') this.normalEntries++;
  }

  /** The image at this moment (captured synchronously: a copy of a few fields). */
  snapshot(at: SnapshotPoint): AsyncIterable<Uint8Array> {
    if (at.index !== this.index) throw new Error(`applied-log digest: snapshot asked at ${at.index}, applied ${this.index}`);
    const image = packr.pack([IMAGE_VERSION, this.index, this.digest, this.entries, this.normalEntries]);
    return (async function* () {
      yield new Uint8Array(image.buffer, image.byteOffset, image.byteLength);
    })();
  }

  async restore(at: SnapshotPoint, data: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of data) {
      size += chunk.byteLength;
      if (size > MAX_IMAGE_BYTES) throw new RaftError('STORAGE_CORRUPT', `applied-log digest image exceeds ${MAX_IMAGE_BYTES} bytes`);
      parts.push(Buffer.from(chunk));
    }
    let x: unknown;
    try {
      x = packr.unpack(Buffer.concat(parts));
    } catch (e) {
      throw new RaftError('STORAGE_CORRUPT', `applied-log digest image is not msgpack: ${(e as Error).message}`);
    }
    const ok =
      Array.isArray(x) &&
      x.length === 5 &&
      x[0] === IMAGE_VERSION &&
      x[1] === at.index &&
      x[2] instanceof Uint8Array &&
      x[2].length === 32 &&
      Number.isSafeInteger(x[3]) &&
      Number.isSafeInteger(x[4]);
    if (!ok) throw new RaftError('STORAGE_CORRUPT', `applied-log digest image does not describe index ${at.index}`);
    const [, index, digest, entries, normalEntries] = x as [number, number, Uint8Array, number, number];
    this.digest = Buffer.from(digest);
    this.index = index;
    this.entries = entries;
    this.normalEntries = normalEntries;
  }

  /** Hex digest of every entry applied so far (all zeros before the first). */
  get hex(): string {
    return this.digest.toString('hex');
  }

  get appliedIndex(): number {
    return this.index;
  }

  /** Entries applied (normal and no-op). */
  get count(): number {
    return this.entries;
  }

  /** Client entries applied. */
  get normalCount(): number {
    return this.normalEntries;
  }
}
