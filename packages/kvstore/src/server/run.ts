// The process entry of `ballot kv serve`: starts one member, stops it gracefully on SIGTERM/SIGINT
// (exit 0), and exits non-zero when it cannot start (2: bad flags, 3: corrupt log or snapshot,
// 4: a data dir of another member or cluster, 1: anything else) or hits a fatal error while
// running (1: e.g. a failed fsync; the member never continues after one). The same process life
// (@ballot/raft's runNodeUntilSignal), exit codes and log shape (pino JSON lines; pretty when
// stdout is a terminal) as `ballot raft node`.
//
// With --parent-pid the member also stops, as on SIGTERM, once that process is gone: a chaos run
// or a bench that is itself killed (SIGKILL leaves it no time to clean up) leaves no member behind.

import { createNodeLogger, runNodeUntilSignal } from '@ballot/raft';
import type { LevelWithSilent } from 'pino';
import type { KvServeOptions } from './flags.js';
import { KvNode } from './node.js';

const PARENT_CHECK_INTERVAL_MS = 500;

export async function runKvServe(opts: KvServeOptions): Promise<void> {
  const log = createNodeLogger((opts.logLevel ?? 'info') as LevelWithSilent, { member: opts.name });
  if (opts.parentPid !== undefined) watchParent(opts.parentPid, log);
  // KvNode.close() logs "stopped" itself.
  await runNodeUntilSignal({ title: `ballot kv serve ${opts.name}`, log, start: () => KvNode.start(opts, log) });
}

/** Sends this process SIGTERM (a graceful stop) once `pid` no longer exists. */
function watchParent(pid: number, log: { warn(obj: object, msg: string): void }): void {
  const timer = setInterval(() => {
    try {
      process.kill(pid, 0);
    } catch (e) {
      // EPERM: the PID exists but belongs to someone else (it was reused): the parent is gone too.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ESRCH' && code !== 'EPERM') return;
      clearInterval(timer);
      log.warn({ parentPid: pid }, 'the parent process is gone (--parent-pid): stopping');
      process.kill(process.pid, 'SIGTERM');
    }
  }, PARENT_CHECK_INTERVAL_MS);
  timer.unref();
}
