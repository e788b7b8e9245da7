// The state machine of a bare `ballot raft node` process: it remembers nothing but a running
// hash of every entry it applied and how many. Two nodes that applied the same log prefix show the
// same digest at the same applied index, which is what "state machine safety" (§5.4.3, Figure 3)
// looks like from outside: tests and the status table compare digests across nodes.

import { createHash } from 'node:crypto';
import type { Entry } from '../core/types.js';
import type { StateMachine } from './driver.js';

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
