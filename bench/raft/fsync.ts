// The cost of making a small write durable on this machine: write + fdatasync in a loop, in the
// directory the clusters keep their data in. Context for commit latencies: every commit needs at
// least one such sync on a quorum of members.

import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { LatencyRecorder, type LatencySummary } from './latency.js';

export interface FsyncResult {
  readonly dir: string;
  readonly writeBytes: number;
  readonly latency: LatencySummary;
}

export function measureFdatasync(dir: string, samples = 500, writeBytes = 256): FsyncResult {
  const file = join(dir, 'fdatasync-probe');
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(writeBytes, 0xab);
  const recorder = new LatencyRecorder();
  try {
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      recorder.record(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return { dir, writeBytes, latency: recorder.summary() };
}
