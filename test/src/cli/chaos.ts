// `ballot chaos` (one chaos run) and `ballot chaos-soak` (many seeds, one after another, for as long as
// asked). Both print progress on stderr and, as the last stdout line, one JSON object: a run's
// ChaosResults, or the soak's summary. Exit status: 0 valid, 1 invalid, 2 unknown, error or bad input.
//
// Every flag is validated here, before anything starts; a bad one is an error that names the flag
// (exit 2). The run itself is reached through `ChaosCliDeps`, so the parsing is testable without
// starting a cluster.

import { Command, CommanderError } from 'commander';
import {
  NEMESIS_NAMES,
  READ_MODES,
  WORKLOAD_NAMES,
  type ChaosOptions,
  type ChaosResults,
  type NemesisName,
  type ReadMode,
  type WorkloadName,
} from '../chaos/types.js';
import { runChaos, type ChaosIo } from '../chaos/runner.js';
import { MAX_NODES, parseNemeses } from '../chaos/schedule.js';
import { runSoak, SOAK_RUN_OVERHEAD_MS, type SoakOptions, type SoakSummary } from '../chaos/soak.js';

export type { ChaosIo, SoakOptions, SoakSummary };

export const EXIT_VALID = 0;
export const EXIT_INVALID = 1;
export const EXIT_UNKNOWN_OR_ERROR = 2;

/** How the commands reach the runner; tests pass their own. */
export interface ChaosCliDeps {
  readonly runChaos?: (options: ChaosOptions, io: ChaosIo) => Promise<ChaosResults>;
  readonly runSoak?: (options: SoakOptions, io: ChaosIo) => Promise<SoakSummary>;
  readonly io?: Omit<ChaosIo, 'signal'>;
  /** Ends the process with this status (default: sets process.exitCode, or process.exit for argument errors). */
  readonly exit?: (code: number) => void;
}

/** A flag's value is wrong: the message names the flag. */
export class ChaosUsageError extends Error {
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(`${flag}: ${message}`);
    this.name = 'ChaosUsageError';
  }
}

/** The flags as commander hands them over (strings, booleans, undefined when absent). */
export type RawChaosFlags = Readonly<Record<string, string | boolean | undefined>>;

/** Bounds of the numeric flags (inclusive). Wide enough for experiments, narrow enough to catch typos. */
export const LIMITS = {
  nodes: { min: 2, max: MAX_NODES },
  /** Seconds. */
  duration: { min: 0.5, max: 24 * 3600 },
  rate: { min: 0.1, max: 100_000 },
  concurrency: { min: 1, max: 1000 },
  keys: { min: 1, max: 100_000 },
  heartbeatIntervalMs: { min: 1, max: 60_000 },
  electionTimeoutMs: { min: 5, max: 600_000 },
  requestTimeoutMs: { min: 1, max: 600_000 },
  checkBudgetMs: { min: 0, max: 24 * 3600 * 1000 },
  totalMinutes: { min: 0.1, max: 7 * 24 * 60 },
} as const;

export const CHAOS_DEFAULTS = {
  nodes: '5',
  workload: 'register',
  nemesis: 'all',
  duration: '30',
  rate: '200',
  concurrency: '10',
  seed: '1',
  readMode: 'linearizable',
  keys: '10',
  heartbeatInterval: '50',
  electionTimeout: '500',
  requestTimeoutMs: '1000',
  checkBudgetMs: '60000',
} as const;

function str(raw: RawChaosFlags, key: string, flag: string): string {
  const v = raw[key];
  if (typeof v !== 'string') throw new ChaosUsageError(flag, 'a value is required');
  return v.trim();
}

function num(raw: RawChaosFlags, key: string, flag: string, bounds: { min: number; max: number }, integer: boolean): number {
  const text = str(raw, key, flag);
  const n = text === '' ? Number.NaN : Number(text);
  if (!Number.isFinite(n)) throw new ChaosUsageError(flag, `"${text}" is not a number`);
  if (integer && !Number.isInteger(n)) throw new ChaosUsageError(flag, `"${text}" is not a whole number`);
  if (n < bounds.min || n > bounds.max) throw new ChaosUsageError(flag, `${text} is out of range (${bounds.min}..${bounds.max})`);
  return n;
}

function oneOf<T extends string>(raw: RawChaosFlags, key: string, flag: string, names: readonly T[]): T {
  const v = str(raw, key, flag);
  const found = names.find((n) => n === v);
  if (found === undefined) throw new ChaosUsageError(flag, `"${v}" is not one of ${names.join(', ')}`);
  return found;
}

/** `partition,kill` | `all` | `none` → the nemesis names (schedule.ts parseNemeses), as a usage error naming the flag. */
export function parseNemesisList(text: string, flag = '--nemesis'): NemesisName[] {
  try {
    return parseNemeses(text);
  } catch (err) {
    throw new ChaosUsageError(flag, (err as Error).message.replace(/^--nemesis: /, ''));
  }
}

/** The default output folder: chaos-runs/<iso time>-seed<N> (colons left out, so it is a valid name everywhere). */
export function defaultOutDir(now: Date, seed: number, prefix = ''): string {
  const iso = now.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  return `chaos-runs/${prefix}${iso}-seed${seed}`;
}

/** Every chaos option except seed and outDir, validated. */
function parseRunFlags(raw: RawChaosFlags): Omit<ChaosOptions, 'seed' | 'outDir'> {
  const nodes = num(raw, 'nodes', '--nodes', LIMITS.nodes, true);
  const workload: WorkloadName = oneOf(raw, 'workload', '--workload', WORKLOAD_NAMES);
  const nemeses = parseNemesisList(str(raw, 'nemesis', '--nemesis'));
  if (nemeses.length > 0 && nodes < 3) {
    throw new ChaosUsageError('--nodes', `${nodes} node(s) cannot keep a majority through faults; use at least 3, or --nemesis none`);
  }
  const durationMs = Math.round(num(raw, 'duration', '--duration', LIMITS.duration, false) * 1000);
  const ratePerSec = num(raw, 'rate', '--rate', LIMITS.rate, false);
  const concurrency = num(raw, 'concurrency', '--concurrency', LIMITS.concurrency, true);
  const readMode: ReadMode = oneOf(raw, 'readMode', '--read-mode', READ_MODES);
  const keys = num(raw, 'keys', '--keys', LIMITS.keys, true);
  const heartbeatIntervalMs = num(raw, 'heartbeatInterval', '--heartbeat-interval', LIMITS.heartbeatIntervalMs, true);
  const electionTimeoutMs = num(raw, 'electionTimeout', '--election-timeout', LIMITS.electionTimeoutMs, true);
  if (electionTimeoutMs < 5 * heartbeatIntervalMs) {
    throw new ChaosUsageError('--election-timeout', `${electionTimeoutMs} must be at least 5 x --heartbeat-interval (${heartbeatIntervalMs})`);
  }
  const requestTimeoutMs = num(raw, 'requestTimeoutMs', '--request-timeout-ms', LIMITS.requestTimeoutMs, true);
  const checkBudgetMs = num(raw, 'checkBudgetMs', '--check-budget-ms', LIMITS.checkBudgetMs, true);
  return {
    nodes,
    workload,
    nemeses,
    durationMs,
    ratePerSec,
    concurrency,
    readMode,
    unsafeStaleReads: raw['unsafeStaleReads'] === true,
    unsafeNoFsync: raw['unsafeNoFsync'] === true,
    heartbeatIntervalMs,
    electionTimeoutMs,
    requestTimeoutMs,
    checkBudgetMs,
    keys,
  };
}

function parseSeed(raw: RawChaosFlags, key: string, flag: string): number {
  return num(raw, key, flag, { min: 0, max: Number.MAX_SAFE_INTEGER }, true);
}

function outFlag(raw: RawChaosFlags): string | undefined {
  const v = raw['out'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.trim() === '') throw new ChaosUsageError('--out', 'give a folder');
  return v;
}

/** `ballot chaos` flags → ChaosOptions; throws ChaosUsageError naming the first bad flag. */
export function parseChaosFlags(raw: RawChaosFlags, now: Date = new Date()): ChaosOptions {
  const run = parseRunFlags(raw);
  const seed = parseSeed(raw, 'seed', '--seed');
  return { ...run, seed, outDir: outFlag(raw) ?? defaultOutDir(now, seed) };
}

/** `ballot chaos-soak` flags → SoakOptions; throws ChaosUsageError naming the first bad flag. */
export function parseSoakFlags(raw: RawChaosFlags, now: Date = new Date()): SoakOptions {
  const run = parseRunFlags(raw);
  const totalMs = Math.round(num(raw, 'totalMinutes', '--total-minutes', LIMITS.totalMinutes, false) * 60_000);
  const seedFrom = parseSeed(raw, 'seedFrom', '--seed-from');
  if (totalMs < run.durationMs + SOAK_RUN_OVERHEAD_MS) {
    throw new ChaosUsageError(
      '--total-minutes',
      `${totalMs / 60_000} min cannot fit one run of --duration ${run.durationMs / 1000} s (it needs about ${(run.durationMs + SOAK_RUN_OVERHEAD_MS) / 1000} s)`,
    );
  }
  const iso = now.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  return { totalMs, seedFrom, run, outRoot: outFlag(raw) ?? `chaos-runs/soak-${iso}-seed${seedFrom}` };
}

/**
 * Exit status of a run's results. A verdict of false stands even when something failed after it
 * (stopping the cluster, writing the plots or the report: then `error` says what): the anomaly was
 * found in the history, so the exit is 1. Otherwise an error makes the run 2.
 */
export function exitCodeOf(results: Pick<ChaosResults, 'valid' | 'error'>): number {
  if (results.valid === false) return EXIT_INVALID;
  if (results.error !== undefined) return EXIT_UNKNOWN_OR_ERROR;
  return results.valid === true ? EXIT_VALID : EXIT_UNKNOWN_OR_ERROR;
}

/** Exit status of a soak: 1 if any run was invalid, else 2 if any was unknown or failed (or the soak was cut short), else 0. */
export function soakExitCode(summary: SoakSummary): number {
  if (summary.invalid > 0) return EXIT_INVALID;
  if (summary.unknown > 0 || summary.error !== undefined || summary.runs.some((r) => r.error !== undefined)) return EXIT_UNKNOWN_OR_ERROR;
  return summary.runs.length === 0 ? EXIT_UNKNOWN_OR_ERROR : EXIT_VALID;
}

const processIo: Omit<ChaosIo, 'signal'> = {
  stdout: (l) => void process.stdout.write(`${l}\n`),
  stderr: (t) => void process.stderr.write(t),
  isTTY: process.stderr.isTTY === true,
};

/**
 * An AbortSignal aborted by the first SIGINT or SIGTERM (the run then cleans up and exits 2); a second
 * one ends the process at once (exit 2; the members stop by themselves: they run with --parent-pid).
 */
function interruptSignal(stderr: (t: string) => void): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      stderr(`\nchaos: ${sig} again, exiting now\n`);
      process.exit(EXIT_UNKNOWN_OR_ERROR);
    }
    stderr(`\nchaos: ${sig}: stopping every process, writing what exists\n`);
    controller.abort(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function addRunOptions(cmd: Command): Command {
  const d = CHAOS_DEFAULTS;
  return cmd
    .option('--nodes <n>', `cluster members, each a separate process (${LIMITS.nodes.min}..${LIMITS.nodes.max}; at least 3 with a nemesis)`, d.nodes)
    .option('--workload <name>', `what the clients do: ${WORKLOAD_NAMES.join(' | ')}`, d.workload)
    .option('--nemesis <list>', `faults, comma-separated: ${NEMESIS_NAMES.join(',')} | all | none`, d.nemesis)
    .option('--duration <s>', 'seconds of workload under faults', d.duration)
    .option('--rate <ops/s>', 'operations started per second over all clients', d.rate)
    .option('--concurrency <n>', 'client workers (worker w talks to node w % nodes)', d.concurrency)
    .option('--read-mode <mode>', `how reads are served: ${READ_MODES.join(' | ')}`, d.readMode)
    .option('--keys <n>', 'keys of the register workload', d.keys)
    .option('--unsafe-stale-reads', 'DELIBERATE BUG on every member: answer linearizable reads locally, without ReadIndex')
    .option('--unsafe-no-fsync', 'DELIBERATE BUG on every member: acknowledge before the log is synced')
    .option('--heartbeat-interval <ms>', 'members\' Raft heartbeat interval', d.heartbeatInterval)
    .option('--election-timeout <ms>', 'members\' Raft election timeout', d.electionTimeout)
    .option('--request-timeout-ms <ms>', 'deadline of one client call (past it the call is indeterminate)', d.requestTimeoutMs)
    .option('--check-budget-ms <ms>', 'time budget of the linearizability check (past it: unknown); the check runs on this thread, so a Ctrl-C during it takes effect only when it ends (at most this long)', d.checkBudgetMs);
}

/** Adds `chaos` and `chaos-soak` to the `ballot` program. */
export function registerChaosCommands(program: Command, deps: ChaosCliDeps = {}): { chaos: Command; soak: Command } {
  const io = deps.io ?? processIo;
  const setExit =
    deps.exit ??
    ((code: number): void => {
      process.exitCode = code;
    });
  const argumentError = (err: CommanderError): void => {
    // Help and version exit 0; every argument error is bad input: exit 2.
    const code = err.exitCode === 0 ? 0 : EXIT_UNKNOWN_OR_ERROR;
    if (deps.exit !== undefined) {
      deps.exit(code);
      throw err;
    }
    process.exit(code);
  };
  const usage = (command: string, err: unknown): boolean => {
    if (!(err instanceof ChaosUsageError)) return false;
    io.stderr(`error: ${command} ${err.message}\n`);
    io.stdout(JSON.stringify({ valid: 'unknown', error: err.message, flag: err.flag }));
    setExit(EXIT_UNKNOWN_OR_ERROR);
    return true;
  };

  const chaos = addRunOptions(
    new Command('chaos').description(
      'Run a real cluster (one process per member, every peer link through a fault-injecting proxy) under a workload and a ' +
        'seeded fault schedule, record every operation, heal, read back and check the history. Writes history.jsonl, ' +
        'results.json, report.html, timeline.html, plots/ and nodes/ into --out. The last stdout line is the results JSON; ' +
        'exit 0 valid, 1 invalid, 2 unknown, error or bad input.',
    ),
  )
    .option('--seed <n>', 'seed of the fault schedule and the operation mix (same seed, same schedule)', CHAOS_DEFAULTS.seed)
    .option('--out <dir>', 'output folder, absent or empty (default chaos-runs/<time>-seed<N>)')
    .exitOverride(argumentError)
    .action(async (raw: RawChaosFlags) => {
      let options: ChaosOptions;
      try {
        options = parseChaosFlags(raw);
      } catch (err) {
        if (usage('chaos', err)) return;
        throw err;
      }
      const interrupt = interruptSignal(io.stderr);
      try {
        const results = await (deps.runChaos ?? runChaos)(options, { ...io, signal: interrupt.signal });
        setExit(exitCodeOf(results));
      } finally {
        interrupt.dispose();
      }
    });

  const soak = addRunOptions(
    new Command('chaos-soak').description(
      'Chaos runs with seeds --seed-from, --seed-from + 1, ... one after another until --total-minutes is used up (a run that ' +
        'cannot finish in time is not started). Prints a line per run, a summary table and, last, a JSON summary; exit 1 if ' +
        'any run was invalid, 2 if any was unknown or failed, else 0.',
    ),
  )
    .requiredOption('--total-minutes <min>', 'how long the soak may take, in minutes')
    .option('--seed-from <n>', 'first seed', '1')
    .option('--out <dir>', 'folder of the runs (one seed-<N> folder each; default chaos-runs/soak-<time>-seed<N>)')
    .exitOverride(argumentError)
    .action(async (raw: RawChaosFlags) => {
      let options: SoakOptions;
      try {
        options = parseSoakFlags(raw);
      } catch (err) {
        if (usage('chaos-soak', err)) return;
        throw err;
      }
      const interrupt = interruptSignal(io.stderr);
      try {
        const summary = await (deps.runSoak ?? ((o, i) => runSoak(o, i, runChaos)))(options, { ...io, signal: interrupt.signal });
        setExit(soakExitCode(summary));
      } finally {
        interrupt.dispose();
      }
    });

  program.addCommand(chaos);
  program.addCommand(soak);
  return { chaos, soak };
}
