// `ballot bench tradeoffs`: what linearizability costs, and what is lost without it, in one command.
//
//   ballot bench tradeoffs [--quick] [--out DIR] [--read-ratio 0.9] [--value-bytes 256] [--keys 1000]
//        [--clients 16] [--duration-ms 3000] [--no-etcd] [--sections matrix,faults,failover,etcd] ...
//
// Sections, in this order (each may be left out with --sections):
//   matrix    read mode x cluster size x fsync x batching under a fixed mixed workload, and throughput
//             against clients per read mode (matrix.ts)
//   faults    the same partition schedule from the chaos runner for every read mode: availability per
//             fault window, the checker's verdict, stale reads (faults.ts)
//   failover  SIGKILL the leader N times per election timeout: time to the first acknowledged write (failover.ts)
//   etcd      the same client and workload against a real etcd, interleaved: ratios Ballot/etcd (etcd.ts)
// The expected duration is printed up front, a progress line runs on stderr, and the output folder
// (default bench/results/tradeoffs-<iso>/) gets results.json, report.md and plots/*.svg + *.vl.json.
// Every process is started through one Supervisor (and every kv serve with --parent-pid <this pid>),
// so all are stopped by PID when the run ends, fails, or is interrupted.

import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { exitAfter, machineInfo, startBenchRun } from '../raft/cli-common.js';
import { estimateEtcdMs, runEtcdSection } from './etcd.js';
import { estimateFailoverMs, runFailoverSection } from './failover.js';
import { estimateFaultsMs, runFaultsSection } from './faults.js';
import { CLUSTER_SIZES, estimateMatrixMs, type ClientTarget, runMatrixSection, type MatrixSectionResult, type MatrixSettings } from './matrix.js';
import { plotSpecs, renderReport, writePlots, headlines, type TradeoffResults } from './report.js';
import {
  TRADEOFF_READ_MODES,
  TRADEOFF_SECTIONS,
  type EtcdSectionResult,
  type FailoverSectionResult,
  type FaultsSectionResult,
  type TradeoffIo,
  type TradeoffReadMode,
  type TradeoffSection,
  type TradeoffSettings,
} from './types.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

// ---- option parsers (commander names the flag in its error for a bad value) ----

const int = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  return n;
};
const ratio = (value: string): number => {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a number within [0, 1]');
  return n;
};
const list =
  <T>(parse: (v: string) => T, what: string) =>
  (value: string): T[] => {
    const items = value.split(',').map((v) => v.trim()).filter((v) => v.length > 0);
    if (items.length === 0) throw new InvalidArgumentError(`expected a comma-separated list of ${what}`);
    const out = items.map(parse);
    if (new Set(out.map(String)).size !== out.length) throw new InvalidArgumentError(`a value is given twice in "${value}"`);
    return out;
  };
const oneOf =
  <T extends string>(choices: readonly T[]) =>
  (v: string): T => {
    if (!(choices as readonly string[]).includes(v)) throw new InvalidArgumentError(`"${v}" is not one of ${choices.join(', ')}`);
    return v as T;
  };
const onOffValue = (v: string): boolean => {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new InvalidArgumentError(`"${v}" is not on or off`);
};

interface RawOptions {
  readonly quick: boolean;
  readonly out?: string;
  readonly sections: readonly TradeoffSection[];
  readonly seed: number;
  readonly readRatio: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly clients?: number;
  readonly durationMs?: number;
  readonly warmupMs?: number;
  readonly heartbeatInterval: number;
  readonly electionTimeout: number;
  readonly readModes: readonly TradeoffReadMode[];
  readonly nodes?: readonly number[];
  readonly fsync?: readonly boolean[];
  readonly batching?: readonly boolean[];
  readonly sweepClients?: readonly number[];
  readonly target: ClientTarget;
  readonly sweepTargets?: readonly ClientTarget[];
  readonly faultsNodes?: number;
  readonly faultsDurationMs?: number;
  readonly faultsRate?: number;
  readonly faultsConcurrency?: number;
  readonly failoverKills?: number;
  readonly electionTimeouts?: readonly number[];
  readonly etcd: boolean;
  readonly etcdBin: string;
  readonly etcdFailoverKills?: number;
  readonly ballotBin: string;
  readonly logLevel: string;
  readonly keepData: boolean;
}

/** Full and --quick sizes; an explicit flag wins over both. */
export const DEFAULTS = {
  full: {
    clients: 16, durationMs: 2500, warmupMs: 500,
    nodes: [...CLUSTER_SIZES] as number[], fsync: [true, false], batching: [true, false], sweepClients: [1, 4, 16, 64],
    sweepTargets: ['spread', 'leader'] as ClientTarget[],
    faultsNodes: 5, faultsDurationMs: 30_000, faultsRate: 200, faultsConcurrency: 10,
    failoverKills: 20, electionTimeouts: [300, 1000, 2000], etcdFailoverKills: 5,
  },
  quick: {
    clients: 16, durationMs: 800, warmupMs: 300,
    nodes: [1, 3], fsync: [true], batching: [true], sweepClients: [1, 16], sweepTargets: ['spread'] as ClientTarget[],
    faultsNodes: 3, faultsDurationMs: 5000, faultsRate: 100, faultsConcurrency: 6,
    failoverKills: 2, electionTimeouts: [300, 1000], etcdFailoverKills: 1,
  },
} as const;

export interface ResolvedRun {
  readonly settings: TradeoffSettings;
  readonly matrix: MatrixSettings;
  readonly outDir: string;
  readonly keepData: boolean;
}

export function resolveOptions(o: RawOptions): ResolvedRun {
  const d = o.quick ? DEFAULTS.quick : DEFAULTS.full;
  const clients = o.clients ?? d.clients;
  if (clients > o.keys) throw new InvalidArgumentError(`--clients ${clients} exceeds --keys ${o.keys}`);
  const settings: TradeoffSettings = {
    quick: o.quick,
    sections: o.sections,
    seed: o.seed,
    readRatio: o.readRatio,
    valueBytes: o.valueBytes,
    keys: o.keys,
    clients,
    durationMs: o.durationMs ?? d.durationMs,
    warmupMs: o.warmupMs ?? d.warmupMs,
    heartbeatMs: o.heartbeatInterval,
    electionTimeoutMs: o.electionTimeout,
    faultsNodes: o.faultsNodes ?? d.faultsNodes,
    faultsDurationMs: o.faultsDurationMs ?? d.faultsDurationMs,
    faultsRatePerSec: o.faultsRate ?? d.faultsRate,
    faultsConcurrency: o.faultsConcurrency ?? d.faultsConcurrency,
    failoverKills: o.failoverKills ?? d.failoverKills,
    electionTimeoutsMs: o.electionTimeouts ?? [...d.electionTimeouts],
    etcd: o.etcd,
    etcdBin: o.etcdBin,
    etcdFailoverKills: o.etcdFailoverKills ?? d.etcdFailoverKills,
    ballotBin: resolve(o.ballotBin),
    logLevel: o.logLevel,
  };
  const matrix: MatrixSettings = {
    readModes: o.readModes,
    nodes: o.nodes ?? [...d.nodes],
    fsync: o.fsync ?? [...d.fsync],
    batching: o.batching ?? [...d.batching],
    sweepClients: o.sweepClients ?? [...d.sweepClients],
    sweepNodes: 3,
    target: o.target,
    sweepTargets: o.sweepTargets ?? [...d.sweepTargets],
  };
  const tooMany = matrix.sweepClients.find((c) => c > o.keys);
  if (tooMany !== undefined) throw new InvalidArgumentError(`--sweep-clients ${tooMany} exceeds --keys ${o.keys}`);
  const outDir = resolve(o.out ?? join(repoRoot, 'bench/results', `tradeoffs-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  return { settings, matrix, outDir, keepData: o.keepData };
}

/** The expected duration of every selected section, ms. */
export function estimateMs(r: ResolvedRun): Readonly<Partial<Record<TradeoffSection, number>>> {
  const s = r.settings;
  const out: Partial<Record<TradeoffSection, number>> = {};
  if (s.sections.includes('matrix')) out.matrix = estimateMatrixMs(s, r.matrix);
  if (s.sections.includes('faults')) out.faults = estimateFaultsMs(s);
  if (s.sections.includes('failover')) out.failover = estimateFailoverMs(s);
  if (s.sections.includes('etcd')) out.etcd = estimateEtcdMs(s);
  return out;
}

const minutes = (ms: number): string => (ms < 120_000 ? `${Math.ceil(ms / 1000)} s` : `${(ms / 60_000).toFixed(1)} min`);

/** Runs the bench; resolves with the process exit code (0 every section ran, 1 a section failed). */
export async function runTradeoffs(r: ResolvedRun, argv: readonly string[]): Promise<number> {
  const s = r.settings;
  if (!existsSync(s.ballotBin)) throw new Error(`${s.ballotBin} not found: build first (npm run build), or pass --ballot-bin`);
  if (existsSync(r.outDir) && readdirSync(r.outDir).length > 0) throw new Error(`--out ${r.outDir} exists and is not empty`);
  mkdirSync(r.outDir, { recursive: true });

  const run = startBenchRun('ballot-bench-tradeoffs-', r.keepData);
  const io: TradeoffIo = { progress: run.progress, supervisor: run.supervisor, workDir: run.workDir, parentPid: process.pid };
  const estimates = estimateMs(r);
  const expectedMs = Object.values(estimates).reduce((a, b) => a + b, 0);
  const hardLimitMs = expectedMs * 2 + 120_000;
  io.progress.note(
    `bench tradeoffs${s.quick ? ' --quick' : ''}: sections ${s.sections.map((k) => `${k} ~${minutes(estimates[k] ?? 0)}`).join(', ')}; ` +
      `expected about ${minutes(expectedMs)} in all (stops itself after ${minutes(hardLimitMs)})`,
  );
  io.progress.note(`output: ${r.outDir}; scratch: ${run.workDir}`);
  exitAfter(hardLimitMs, `bench tradeoffs: hard time limit of ${minutes(hardLimitMs)} reached`);

  const startedAt = new Date();
  const loadStart = loadavg();
  const sectionErrors: Partial<Record<TradeoffSection, string>> = {};
  const attempt = async <T>(section: TradeoffSection, body: () => Promise<T>): Promise<T | null> => {
    if (!s.sections.includes(section)) return null;
    const t0 = Date.now();
    io.progress.note(`--- ${section} (expected ~${minutes(estimates[section] ?? 0)})`);
    try {
      return await body();
    } catch (err) {
      sectionErrors[section] = err instanceof Error ? err.message : String(err);
      io.progress.note(`${section} FAILED: ${sectionErrors[section]}`);
      return null;
    } finally {
      // Whatever the section left running is stopped by PID before the next one starts.
      await io.supervisor.stopAll();
      io.progress.note(`--- ${section} done in ${minutes(Date.now() - t0)}`);
    }
  };
  const matrix: MatrixSectionResult | null = await attempt('matrix', () => runMatrixSection(s, r.matrix, io, r.keepData));
  const faults: FaultsSectionResult | null = await attempt('faults', () => runFaultsSection(s, io));
  const failover: FailoverSectionResult | null = await attempt('failover', () => runFailoverSection(s, io));
  const etcd: EtcdSectionResult | null = await attempt('etcd', () => runEtcdSection(s, io));
  io.progress.stage('writing report and plots');

  const finishedAt = new Date();
  const base: TradeoffResults = {
    benchmark: 'tradeoffs',
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    elapsedMs: finishedAt.getTime() - startedAt.getTime(),
    expectedMs,
    command: ['ballot', 'bench', 'tradeoffs', ...argv].join(' '),
    settings: s,
    matrixSettings: r.matrix,
    machine: machineInfo(loadStart),
    matrix,
    faults,
    failover,
    etcd,
    sectionErrors,
    plots: [],
  };
  let plots: string[] = [];
  try {
    plots = await writePlots(r.outDir, plotSpecs(base));
  } catch (err) {
    io.progress.note(`plots FAILED: ${err instanceof Error ? err.message : String(err)}`);
  }
  const results: TradeoffResults = { ...base, plots };
  writeFileSync(join(r.outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(r.outDir, 'report.md'), renderReport(results));
  io.progress.stop();

  const lines = matrix === null ? [] : headlines(matrix.results, r.matrix, s.clients);
  process.stdout.write(
    [
      '',
      `bench tradeoffs: done in ${minutes(results.elapsedMs)} (expected ${minutes(expectedMs)})`,
      ...lines.map((l) => `- ${l}`),
      ...Object.entries(sectionErrors).map(([k, v]) => `! ${k} failed: ${v}`),
      `report: ${join(r.outDir, 'report.md')}`,
      `results: ${r.outDir}`,
      '',
    ].join('\n'),
  );
  run.succeeded = Object.keys(sectionErrors).length === 0;
  return run.succeeded ? 0 : 1;
}

/** Adds `bench tradeoffs` to the ballot CLI. */
export function registerBenchCommand(program: Command): void {
  const bench = program.command('bench').description('benchmarks that write a results folder (tables, JSON, plots)');
  bench
    .command('tradeoffs')
    .description(
      'consistency trade-offs: read mode x cluster size x fsync x batching, availability under partitions, failover, and etcd side by side',
    )
    .option('--quick', 'a small subset of every section (under 2 minutes; explicit flags win)', false)
    .option('--out <dir>', 'output folder (must be empty or absent; default bench/results/tradeoffs-<iso>)')
    .option('--sections <list>', `sections to run: ${TRADEOFF_SECTIONS.join(',')}`, list(oneOf(TRADEOFF_SECTIONS), 'sections'), [...TRADEOFF_SECTIONS])
    .option('--seed <n>', 'seed of the op mix and the chaos schedule', int(0), 1)
    .option('--read-ratio <r>', 'fraction of reads in the mixed workload', ratio, 0.9)
    .option('--value-bytes <n>', 'bytes per value', int(1), 256)
    .option('--keys <n>', 'keys preloaded and drawn from', int(1), 1000)
    .option('--clients <n>', 'closed-loop clients of a matrix (and etcd) cell (default 16)', int(1))
    .option('--duration-ms <ms>', 'measurement window of a cell (default 2500; quick 800)', int(1))
    .option('--warmup-ms <ms>', 'warm-up before each window (default 500; quick 300)', int(0))
    .option('--heartbeat-interval <ms>', 'members heartbeat (matrix, etcd cells)', int(1), 100)
    .option('--election-timeout <ms>', 'members election timeout (matrix, etcd cells)', int(1), 1000)
    .option('--read-modes <list>', 'read modes of the matrix', list(oneOf(TRADEOFF_READ_MODES), 'read modes'), [...TRADEOFF_READ_MODES])
    .option('--nodes <list>', 'cluster sizes of the matrix (default 1,3,5,7; quick 1,3)', list(int(1), 'sizes'))
    .option('--fsync <list>', 'fsync settings of the matrix: on,off (default on,off; quick on)', list(onOffValue, 'on/off'))
    .option('--batching <list>', 'batching settings of the matrix: on,off (default on,off; quick on)', list(onOffValue, 'on/off'))
    .option('--sweep-clients <list>', 'client counts of throughput vs clients (default 1,4,16,64; quick 1,16)', list(int(1), 'counts'))
    .addOption(new Option('--target <where>', 'matrix clients: worker w to member w mod N, or all to the leader').choices(['spread', 'leader']).default('spread'))
    .option('--sweep-targets <list>', 'client placements of the sweep: spread,leader (default both; quick spread)', list(oneOf(['spread', 'leader'] as const), 'placements'))
    .option('--faults-nodes <n>', 'members of the faults runs (default 5; quick 3)', int(3))
    .option('--faults-duration-ms <ms>', 'length of each faults run (default 30000; quick 5000)', int(1000))
    .option('--faults-rate <n>', 'target ops/s of each faults run (default 200; quick 100)', int(1))
    .option('--faults-concurrency <n>', 'workers of each faults run (default 10; quick 6)', int(1))
    .option('--failover-kills <n>', 'leader SIGKILLs per election timeout (default 20; quick 2)', int(1))
    .option('--election-timeouts <list>', 'election timeouts of the failover section, ms (default 300,1000,2000; quick 300,1000)', list(int(1), 'ms'))
    .option('--etcd-failover-kills <n>', 'leader SIGKILLs per system in the etcd comparison (default 5; quick 1)', int(1))
    .option('--no-etcd', 'skip etcd (the etcd section then says why)')
    .option('--etcd-bin <path>', 'etcd binary', 'etcd')
    .option('--ballot-bin <path>', 'the built ballot CLI', join(repoRoot, 'packages/cli/dist/bin.js'))
    .option('--log-level <level>', 'kv serve --log-level', 'warn')
    .option('--keep-data', 'keep the scratch folder (data dirs, logs, chaos runs) after a successful run', false)
    .action(async (raw: RawOptions) => {
      let resolved: ResolvedRun;
      try {
        resolved = resolveOptions(raw);
      } catch (err) {
        process.stderr.write(`bench tradeoffs: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(2);
      }
      try {
        const argv = process.argv.slice(process.argv.indexOf('tradeoffs') + 1);
        process.exitCode = await runTradeoffs(resolved, argv);
      } catch (err) {
        process.stderr.write(`\nbench tradeoffs failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 2;
      }
      process.exit(process.exitCode);
    });
}
