// The life of one member's OS process, shared by `ballot raft node` and `ballot kv serve`:
// start the node (or exit non-zero saying why), stop it gracefully on SIGTERM/SIGINT (exit 0),
// stop it at once after a fatal error (exit 1; a node never continues after a failed fsync), and
// never hang while stopping (exit 1 after a bounded wait). Logs are pino JSON lines on stdout
// (pretty only when stdout is a terminal).

import pino, { type LevelWithSilent, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { isRaftError } from '../core/errors.js';

/** Why a node refused to start; `exitCode` is what the process exits with. */
export class NodeStartError extends Error {
  override readonly name = 'NodeStartError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Exit codes of `ballot raft node` (and `ballot kv serve`). */
export const EXIT = {
  OK: 0,
  FATAL: 1,
  USAGE: 2,
  STORAGE_CORRUPT: 3,
  WRONG_DATA_DIR: 4,
} as const;

/** The exit code for an error thrown while starting: a corrupt log or snapshot is 3, the rest 1 unless the error says. */
export function startError(e: unknown): NodeStartError {
  if (e instanceof NodeStartError) return e;
  if (isRaftError(e) && e.code === 'STORAGE_CORRUPT') return new NodeStartError(e.message, EXIT.STORAGE_CORRUPT);
  return new NodeStartError(e instanceof Error ? e.message : String(e), EXIT.FATAL);
}

/** pino to stdout: JSON lines, pretty only when stdout is a terminal. Synchronous, so nothing is lost on exit. */
export function createNodeLogger(level: LevelWithSilent, base: Record<string, unknown>): Logger {
  const stream = process.stdout.isTTY ? pretty({ colorize: true, sync: true }) : pino.destination({ dest: 1, sync: true });
  return pino({ level, base }, stream);
}

/** What a member process runs: a node with a Raft driver that may fail fatally. */
export interface RunnableNode {
  readonly driver: { on(event: 'fatal', listener: (e: Error) => void): unknown };
  /** Graceful stop (a leader hands leadership over first). */
  shutdown(): Promise<void>;
  /** Immediate stop. */
  close(): Promise<void>;
}

export interface RunNodeProcessOptions<N extends RunnableNode> {
  /** Names the process in stderr lines, e.g. `ballot raft node n1`. */
  readonly title: string;
  readonly log: Logger;
  readonly start: () => Promise<N>;
  /** Log "stopped" once the node is stopped (when its own close() does not). */
  readonly logStopped?: boolean;
  /** Bound on a stop; past it the process exits 1 saying so. Default 10 s. */
  readonly stopTimeoutMs?: number;
}

/** Starts the node and keeps the process alive until a signal or a fatal error ends it (by process.exit). */
export async function runNodeUntilSignal<N extends RunnableNode>(opts: RunNodeProcessOptions<N>): Promise<never> {
  const { log, title } = opts;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  let node: N;
  try {
    node = await opts.start();
  } catch (e) {
    const err = startError(e);
    log.fatal({ exitCode: err.exitCode }, err.message);
    process.stderr.write(`${title}: refusing to start: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  let stopping = false;
  const stop = (signal: string, code: number): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    // Kept referenced: if stopping hangs with no other handle left, the process must still end
    // here, saying why, rather than with Node's cryptic exit 13 (an unsettled top-level await).
    setTimeout(() => {
      log.error({ signal }, `stopping did not finish within ${stopTimeoutMs / 1000} s; exiting anyway`);
      process.exit(EXIT.FATAL);
    }, stopTimeoutMs);
    (signal === 'fatal' ? node.close() : node.shutdown()).then(
      () => {
        if (opts.logStopped === true) log.info('stopped');
        process.exit(code);
      },
      (e: unknown) => {
        log.error({ err: e }, 'error while stopping');
        process.exit(EXIT.FATAL);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM', EXIT.OK));
  process.once('SIGINT', () => stop('SIGINT', EXIT.OK));
  node.driver.on('fatal', (e) => {
    process.stderr.write(`${title}: fatal: ${e.message}\n`);
    stop('fatal', EXIT.FATAL);
  });
  // Keep the process alive until a signal arrives.
  return new Promise<never>(() => undefined);
}
