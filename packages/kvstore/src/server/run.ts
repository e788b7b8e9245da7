// The process entry of `ballot kv serve`: starts one member, stops it gracefully on SIGTERM/SIGINT
// (exit 0), and exits non-zero when it cannot start (2: bad flags, 3: corrupt log or snapshot,
// 4: a data dir of another member or cluster, 1: anything else) or hits a fatal error while
// running (1: e.g. a failed fsync; the member never continues after one). The same exit codes and
// log shape (pino JSON lines; pretty when stdout is a terminal) as `ballot raft node`.

import { EXIT, NodeStartError, createNodeLogger } from '@ballot/raft';
import type { LevelWithSilent } from 'pino';
import type { KvServeOptions } from './flags.js';
import { KvNode } from './node.js';

export async function runKvServe(opts: KvServeOptions): Promise<void> {
  const log = createNodeLogger((opts.logLevel ?? 'info') as LevelWithSilent, { member: opts.name });
  let node: KvNode;
  try {
    node = await KvNode.start(opts, log);
  } catch (e) {
    const err = e instanceof NodeStartError ? e : new NodeStartError(e instanceof Error ? e.message : String(e), EXIT.FATAL);
    log.fatal({ exitCode: err.exitCode }, err.message);
    process.stderr.write(`ballot kv serve ${opts.name}: refusing to start: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  let stopping = false;
  const stop = (signal: string, code: number): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    // Kept referenced: if stopping hangs, the process still ends here, saying why.
    setTimeout(() => {
      log.error({ signal }, 'stopping did not finish within 10 s; exiting anyway');
      process.exit(EXIT.FATAL);
    }, 10_000);
    (signal === 'fatal' ? node.close() : node.shutdown()).then(
      () => process.exit(code),
      (e: unknown) => {
        log.error({ err: e }, 'error while stopping');
        process.exit(EXIT.FATAL);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM', EXIT.OK));
  process.once('SIGINT', () => stop('SIGINT', EXIT.OK));
  node.driver.on('fatal', (e) => {
    process.stderr.write(`ballot kv serve ${opts.name}: fatal: ${e.message}\n`);
    stop('fatal', EXIT.FATAL);
  });
  // Runs until a signal arrives.
  await new Promise<never>(() => undefined);
}
