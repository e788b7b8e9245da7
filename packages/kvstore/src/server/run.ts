// The process entry of `ballot kv serve`: starts one member, stops it gracefully on SIGTERM/SIGINT
// (exit 0), and exits non-zero when it cannot start (2: bad flags, 3: corrupt log or snapshot,
// 4: a data dir of another member or cluster, 1: anything else) or hits a fatal error while
// running (1: e.g. a failed fsync; the member never continues after one). The same process life
// (@ballot/raft's runNodeUntilSignal), exit codes and log shape (pino JSON lines; pretty when
// stdout is a terminal) as `ballot raft node`.

import { createNodeLogger, runNodeUntilSignal } from '@ballot/raft';
import type { LevelWithSilent } from 'pino';
import type { KvServeOptions } from './flags.js';
import { KvNode } from './node.js';

export async function runKvServe(opts: KvServeOptions): Promise<void> {
  const log = createNodeLogger((opts.logLevel ?? 'info') as LevelWithSilent, { member: opts.name });
  // KvNode.close() logs "stopped" itself.
  await runNodeUntilSignal({ title: `ballot kv serve ${opts.name}`, log, start: () => KvNode.start(opts, log) });
}
