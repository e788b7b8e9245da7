// `ballot chaos-soak` (`npm run chaos:soak -- --total-minutes 60`): chaos runs with seeds S, S+1, ...
// one after another, each in <out>/seed-<N>, until the time is used up. A run is started only if it is
// expected to finish in time: its expected wall time is the longest one measured so far times 1.25 (before the
// first, the workload duration plus SOAK_RUN_OVERHEAD_MS). After each run one line on stderr; at the
// end a table (seed, verdict, ops, availability, folder) on stderr, soak.json in the out folder, and
// the summary as the last stdout line.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ChaosIo } from './runner.js';
import type { ChaosOptions, ChaosResults } from './types.js';

/**
 * Wall time a run needs beyond its workload phase (start, leader, setup, heal, final reads, check,
 * plots, stop) before the soak has measured one: the soak never starts a run it expects not to finish.
 */
export const SOAK_RUN_OVERHEAD_MS = 20_000;
/** Once runs were measured, the next is expected to take up to the longest of them times this. */
export const SOAK_ESTIMATE_MARGIN = 1.25;

/** `ballot chaos-soak`: the chaos options of every run, the seeds from `seedFrom` on, until `totalMs` is used up. */
export interface SoakOptions {
  readonly totalMs: number;
  readonly seedFrom: number;
  /** Options of each run; `seed` and `outDir` are set per run (outDir = <outRoot>/seed-<N>). */
  readonly run: Omit<ChaosOptions, 'seed' | 'outDir'>;
  /** Folder holding one folder per run, and soak.json. */
  readonly outRoot: string;
}

export interface SoakRunSummary {
  readonly seed: number;
  readonly valid: true | false | 'unknown';
  readonly ops: number;
  /** ok / all operations over the whole run; null when no operation ran. */
  readonly availability: number | null;
  readonly outDir: string;
  readonly wallMs: number;
  readonly anomalyCount: number;
  readonly error?: string;
}

export interface SoakSummary {
  readonly runs: readonly SoakRunSummary[];
  readonly valid: number;
  readonly invalid: number;
  readonly unknown: number;
  readonly totalMs: number;
  readonly outRoot: string;
  /** Set when the soak was interrupted (SIGINT/SIGTERM) or failed. */
  readonly error?: string;
}

export type RunChaos = (options: ChaosOptions, io: ChaosIo) => Promise<ChaosResults>;

/** Read through a call: the signal changes while runs are awaited. */
function aborted(io: ChaosIo): boolean {
  return io.signal?.aborted === true;
}

function verdictWord(v: true | false | 'unknown', error?: string): string {
  if (v === false) return 'INVALID';
  if (error !== undefined) return 'ERROR';
  return v === true ? 'valid' : 'unknown';
}

function percent(a: number | null): string {
  return a === null ? '-' : `${(a * 100).toFixed(1)}%`;
}

/** The summary table, one row per run (fixed-width columns). */
export function formatSoakTable(runs: readonly SoakRunSummary[]): string {
  const rows = [
    ['seed', 'verdict', 'ops', 'availability', 'anomalies', 'wall s', 'folder'],
    ...runs.map((r) => [
      String(r.seed),
      verdictWord(r.valid, r.error),
      String(r.ops),
      percent(r.availability),
      String(r.anomalyCount),
      (r.wallMs / 1000).toFixed(1),
      r.outDir,
    ]),
  ];
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ')).join('\n');
}

/** What one run's results say, for the soak's table. */
export function soakRowOf(results: ChaosResults, wallMs: number): SoakRunSummary {
  const { ok, fail, info } = results.counts;
  const all = ok + fail + info;
  return {
    seed: results.seed,
    valid: results.valid,
    ops: results.ops,
    availability: all === 0 ? null : ok / all,
    outDir: results.outDir,
    wallMs: Math.round(wallMs),
    anomalyCount: results.verdict.anomalyCount,
    ...(results.error === undefined ? {} : { error: results.error }),
  };
}

/**
 * Runs the soak. Each run's own last stdout line (its results JSON) is kept out of the soak's stdout,
 * whose last line is the soak summary; the runs' progress goes to stderr as usual.
 */
export async function runSoak(options: SoakOptions, io: ChaosIo, runChaos: RunChaos, now: () => number = () => performance.now()): Promise<SoakSummary> {
  const startedMs = now();
  const runs: SoakRunSummary[] = [];
  await mkdir(options.outRoot, { recursive: true });
  // Expected wall time of the next run: before any, duration + overhead; then the longest measured
  // run with a margin of SOAK_ESTIMATE_MARGIN (a run under faults varies a little from seed to seed).
  let longestMeasuredMs = 0;
  let longestRunMs = options.run.durationMs + SOAK_RUN_OVERHEAD_MS;
  let error: string | undefined;
  for (let seed = options.seedFrom; ; seed++) {
    const elapsedMs = now() - startedMs;
    if (aborted(io)) {
      error = `interrupted after ${runs.length} run(s)`;
      break;
    }
    if (elapsedMs + longestRunMs > options.totalMs) {
      io.stderr(
        `chaos-soak: ${((options.totalMs - elapsedMs) / 1000).toFixed(0)} s left, a run takes up to ${(longestRunMs / 1000).toFixed(0)} s: done\n`,
      );
      break;
    }
    const outDir = join(options.outRoot, `seed-${seed}`);
    io.stderr(`chaos-soak: run ${runs.length + 1}, seed ${seed}, ${outDir} (${(elapsedMs / 1000).toFixed(0)}/${(options.totalMs / 1000).toFixed(0)} s used)\n`);
    const runStartedMs = now();
    const results = await runChaos({ ...options.run, seed, outDir }, { ...io, stdout: () => {} });
    const wallMs = now() - runStartedMs;
    longestMeasuredMs = Math.max(longestMeasuredMs, wallMs);
    longestRunMs = longestMeasuredMs * SOAK_ESTIMATE_MARGIN;
    const row = soakRowOf(results, wallMs);
    runs.push(row);
    io.stderr(
      `chaos-soak: seed ${seed}: ${verdictWord(row.valid, row.error)}, ${row.ops} ops, availability ${percent(row.availability)}, ` +
        `${(wallMs / 1000).toFixed(1)} s${row.error === undefined ? '' : ` (${row.error})`}\n`,
    );
    if (aborted(io)) {
      error = `interrupted during seed ${seed}`;
      break;
    }
  }
  const summary: SoakSummary = {
    runs,
    valid: runs.filter((r) => r.valid === true && r.error === undefined).length,
    invalid: runs.filter((r) => r.valid === false).length,
    unknown: runs.filter((r) => r.valid === 'unknown' || (r.error !== undefined && r.valid !== false)).length,
    totalMs: Math.round(now() - startedMs),
    outRoot: options.outRoot,
    ...(error === undefined ? {} : { error }),
  };
  io.stderr(`\n${formatSoakTable(runs)}\n\n`);
  io.stderr(`chaos-soak: ${runs.length} run(s): ${summary.valid} valid, ${summary.invalid} invalid, ${summary.unknown} unknown or failed\n`);
  await writeFile(join(options.outRoot, 'soak.json'), `${JSON.stringify(summary, null, 2)}\n`);
  io.stdout(JSON.stringify(summary));
  return summary;
}
