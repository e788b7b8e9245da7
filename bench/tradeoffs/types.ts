// bench tradeoffs — the contract between the orchestrator (run.ts, matrix.ts, report.ts) and the
// sections it calls (faults.ts, failover.ts, etcd.ts). run.ts resolves every size (quick or full,
// flags win) into one TradeoffSettings; a section uses those numbers as given, reports progress
// through io.progress, starts processes only through io.supervisor (or runChaos, whose members get
// --parent-pid io.parentPid), keeps scratch files under <io.workDir>/<section>/, and never writes
// into the output folder: run.ts writes results.json, report.md and the plots from what the
// sections return.

import type { Progress } from '../raft/progress.js';
import type { Supervisor } from '../raft/supervisor.js';

/** The read modes compared (the names of @ballot/chaos's READ_MODES). */
export const TRADEOFF_READ_MODES = ['linearizable', 'lease', 'serializable'] as const;
export type TradeoffReadMode = (typeof TRADEOFF_READ_MODES)[number];

export const TRADEOFF_SECTIONS = ['matrix', 'faults', 'failover', 'etcd'] as const;
export type TradeoffSection = (typeof TRADEOFF_SECTIONS)[number];

/** Every size and knob of one run, already resolved (quick defaults applied, flags win). */
export interface TradeoffSettings {
  readonly quick: boolean;
  readonly sections: readonly TradeoffSection[];
  /** Seed of every seeded choice (the chaos schedule, the op mix). */
  readonly seed: number;
  /** Fixed mixed workload: fraction of operations that are reads (the rest are puts). */
  readonly readRatio: number;
  readonly valueBytes: number;
  /** Keys preloaded and cycled through. */
  readonly keys: number;
  /** Closed-loop clients of a matrix cell and of an etcd comparison cell. */
  readonly clients: number;
  /** Measurement window of one closed-loop cell (matrix and etcd), after warmupMs. */
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Members' timing (etcd's flag names); failover uses electionTimeoutsMs instead. */
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  /** faults: one chaos run (nemesis partition, same seed) per read mode, this long, on this many nodes. */
  readonly faultsNodes: number;
  readonly faultsDurationMs: number;
  readonly faultsRatePerSec: number;
  readonly faultsConcurrency: number;
  /** failover: leader SIGKILLs per election timeout, and the election timeouts (heartbeat = timeout / 10). */
  readonly failoverKills: number;
  readonly electionTimeoutsMs: readonly number[];
  /** etcd: compare with etcd at all (--no-etcd turns it off), its binary, leader SIGKILLs per system. */
  readonly etcd: boolean;
  readonly etcdBin: string;
  readonly etcdFailoverKills: number;
  /** The built CLI (packages/cli/dist/bin.js) run as `node <ballotBin> kv serve ...`. */
  readonly ballotBin: string;
  /** --log-level of every kv serve. */
  readonly logLevel: string;
}

/** What run.ts hands every section. */
export interface TradeoffIo {
  /** stage(label, expectedMs) for the progress line, note(line) for a line of its own (stderr). */
  readonly progress: Progress;
  /** Tracks every process a section spawns; all are SIGKILLed by PID on any exit of the bench. */
  readonly supervisor: Supervisor;
  /** Scratch (data dirs, logs, chaos run folders): use <workDir>/<section>/. Removed after a successful run unless --keep-data. */
  readonly workDir: string;
  /** Pass as --parent-pid to every `kv serve` (the bench's own pid: no member outlives a killed bench). */
  readonly parentPid: number;
}

/** A section's entry point and its duration estimate (for the "expected about N min" line). */
export type SectionRunner<R> = (settings: TradeoffSettings, io: TradeoffIo) => Promise<R>;
export type SectionEstimate = (settings: TradeoffSettings) => number;

// ---- faults.ts: runFaultsSection, estimateFaultsMs ----

export interface OutcomeTally {
  readonly ok: number;
  readonly fail: number;
  readonly info: number;
}

/** One fault window (or quiet stretch) of one read mode's chaos run. */
export interface FaultWindowAvailability {
  readonly id: number;
  /** 'quiet' or the fault kind ('partition-halves', ...). */
  readonly kind: string;
  readonly description: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly counts: OutcomeTally;
  /** ok / invoked in the window; null when nothing was invoked. */
  readonly availability: number | null;
  /** The same for operations sent to the minority side / the majority side (null when not a partition or nothing sent). */
  readonly minorityAvailability: number | null;
  readonly majorityAvailability: number | null;
}

export interface FaultsModeResult {
  readonly readMode: TradeoffReadMode;
  /** The checker's verdict on the run's history. */
  readonly valid: true | false | 'unknown';
  readonly verdictSummary: string;
  /** Reads the checker or a direct comparison flags as stale. */
  readonly staleReads: number;
  /** Completed operations, and over the whole run by outcome. */
  readonly ops: number;
  readonly counts: OutcomeTally;
  /** ok / invoked over the fault windows only (null when none). */
  readonly faultAvailability: number | null;
  readonly windows: readonly FaultWindowAvailability[];
  /** Set when this mode's run failed (the others go on). */
  readonly error?: string;
}

export interface FaultsSectionResult {
  readonly section: 'faults';
  readonly nodes: number;
  readonly seed: number;
  readonly durationMs: number;
  readonly modes: readonly FaultsModeResult[];
  /** The section's tables and notes for report.md (markdown, no top heading). */
  readonly markdown: string;
}

// ---- failover.ts: runFailoverSection, estimateFailoverMs ----

export interface FailoverTimeoutResult {
  readonly electionTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly kills: number;
  /** Time from SIGKILL of the leader to the first acknowledged write, one per successful kill, ms. */
  readonly samplesMs: readonly number[];
  /** Why the other kills gave no sample. */
  readonly failures: readonly string[];
  /** Over samplesMs; null when there is none. */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

export interface FailoverSectionResult {
  readonly section: 'failover';
  readonly nodes: number;
  readonly byTimeout: readonly FailoverTimeoutResult[];
  readonly markdown: string;
}

// ---- etcd.ts: runEtcdSection, estimateEtcdMs ----

export const ETCD_METRICS = ['put', 'linearizable-get', 'serializable-get', 'failover'] as const;
export type EtcdMetric = (typeof ETCD_METRICS)[number];

export interface EtcdSideFigures {
  /** Closed-loop throughput (null for failover). */
  readonly opsPerSec: number | null;
  /** Latency of acknowledged ops, or failover times (ms). */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly errors: number;
}

export interface EtcdComparisonRow {
  readonly metric: EtcdMetric;
  readonly ballot: EtcdSideFigures;
  readonly etcd: EtcdSideFigures;
  /** Ballot / etcd of the headline figure: opsPerSec for operations, p50Ms for failover; null if either is missing. */
  readonly ratio: number | null;
}

export type EtcdSectionResult =
  | {
      readonly section: 'etcd';
      readonly found: true;
      readonly version: string;
      readonly rows: readonly EtcdComparisonRow[];
      readonly markdown: string;
    }
  | { readonly section: 'etcd'; readonly found: false; readonly reason: string; readonly markdown: string };
