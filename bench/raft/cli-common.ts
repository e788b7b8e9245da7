// What the bench:raft entry points (run.ts, memory.ts) share: option parsers, the cluster options
// both take (timing, binaries, where results go), the work directory with its cleanup on every exit
// path, writing the JSON results, and the exit codes of main().

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, type Command } from 'commander';
import { detectEtcd, type EtcdDetection } from './etcd.js';
import { Progress } from './progress.js';
import { Supervisor } from './supervisor.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
};
export const nonNegativeInt = (value: string): number => (value === '0' ? 0 : positiveInt(value));

/** The settings addClusterOptions adds. */
export interface ClusterSettings {
  readonly payloadBytes: number;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly etcd: boolean;
  readonly etcdBin: string;
  readonly ballotBin: string;
  readonly resultsDir: string;
  readonly keepData: boolean;
  readonly logLevel: string;
}

/** Adds the payload, timing, binary, results and log options of both clusters to `program`. */
export function addClusterOptions(program: Command, defaultLogLevel: string): Command {
  return program
    .option('--payload-bytes <n>', 'bytes per proposal', positiveInt, 256)
    .option('--tick-ms <ms>', 'Ballot tick; etcd heartbeat = tick-ms x heartbeat-ticks', positiveInt, 100)
    .option('--election-ticks <n>', 'Ballot election timeout in ticks; etcd --election-timeout = tick-ms x this', positiveInt, 10)
    .option('--heartbeat-ticks <n>', 'Ballot heartbeat interval in ticks', positiveInt, 1)
    .option('--no-etcd', 'skip the etcd reference')
    .option('--etcd-bin <path>', 'etcd binary', 'etcd')
    .option('--ballot-bin <path>', 'the ballot CLI entry', join(repoRoot, 'packages/cli/dist/bin.js'))
    .option('--results-dir <dir>', 'where the JSON goes', join(repoRoot, 'bench/results'))
    .option('--keep-data', 'keep data directories and logs after a successful run', false)
    .option('--log-level <level>', 'Ballot nodes --log-level', defaultLogLevel);
}

export function requireBallotBin(ballotBin: string): void {
  if (!existsSync(ballotBin)) throw new Error(`${ballotBin} not found: build first (npm run build), or pass --ballot-bin`);
}

/** The etcd reference, unless --no-etcd. */
export async function etcdReference(s: ClusterSettings): Promise<EtcdDetection> {
  return s.etcd ? await detectEtcd(s.etcdBin) : { found: false, reason: 'skipped (--no-etcd)' };
}

export interface BenchRun {
  readonly progress: Progress;
  readonly supervisor: Supervisor;
  /** A fresh temporary directory for data directories and logs. */
  readonly workDir: string;
  /** Set last: on exit the work dir is removed only after a successful run (and without --keep-data). */
  succeeded: boolean;
}

/**
 * Creates the progress line, the supervisor and the work dir, and installs the supervisor's
 * cleanup: on any exit every started process is stopped by PID and the work dir removed or kept.
 */
export function startBenchRun(workDirPrefix: string, keepData: boolean): BenchRun {
  const run: BenchRun = {
    progress: new Progress(),
    supervisor: new Supervisor(),
    workDir: mkdtempSync(join(tmpdir(), workDirPrefix)),
    succeeded: false,
  };
  run.supervisor.installCleanupHandlers(() => {
    run.progress.stop();
    if (run.succeeded && !keepData) rmSync(run.workDir, { recursive: true, force: true });
    else process.stderr.write(`data directories and logs kept in ${run.workDir}\n`);
  });
  return run;
}

/** Writes `json` to <resultsDir>/<name>-<startedAt>.json and prints the path. */
/**
 * Ends the process with exit 2 after `limitMs`, saying why (`reason`), whatever the run is doing
 * (the exit handlers stop every member by PID). Unreferenced: a run that finishes exits normally.
 */
export function exitAfter(limitMs: number, reason: string): void {
  setTimeout(() => {
    process.stderr.write(`\n${reason}; stopping every member by PID\n`);
    process.exit(2);
  }, limitMs).unref();
}

/** The machine a run was measured on, as results files record it (load averages when given). */
export function machineInfo(loadAverageStart?: readonly number[]): Record<string, unknown> {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? null,
    totalMemMb: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    node: process.version,
    ...(loadAverageStart !== undefined ? { loadAverageStart, loadAverageEnd: loadavg() } : {}),
  };
}

/** The report's machine line: cores, CPU model, the load average at the start and now. */
export function machineLine(loadAverageStart: readonly number[]): string {
  return (
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average at start ${loadAverageStart.map((l) => l.toFixed(2)).join(' ')}, ` +
    `at end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`
  );
}

/** The fields every results file starts with; `script` is the entry point under bench/dist, e.g. 'raft/run.js'. */
export function resultsHeader(benchmark: string, script: string, startedAt: Date, finishedAt: Date): Record<string, string> {
  return {
    benchmark,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    command: ['node', `bench/dist/${script}`, ...process.argv.slice(2)].join(' '),
  };
}

export function writeResults(resultsDir: string, name: string, startedAt: Date, json: unknown): void {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${name}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
}

/** Runs a benchmark's main and exits: 0 when it resolved, 1 (stack on stderr) when it failed. */
export function runMain(name: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`\n${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
