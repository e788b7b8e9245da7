// The chaos runner's shared vocabulary: what a run is asked to do (ChaosOptions), the fault schedule
// drawn from its seed (FaultWindow), the cluster the nemesis acts on (ChaosTarget), the workloads
// (Workload), and what a run reports (ChaosResults). Each module of src/chaos implements one part:
//
//   cluster.ts   ChaosCluster: real `ballot kv serve` processes behind a ProxyNetwork (a ChaosTarget)
//   schedule.ts  scheduleFaults(): the fault windows, a pure function of the seed
//   nemesis.ts   Nemesis: applies the windows to a ChaosTarget on time, and heals everything at the end
//   client.ts    JsonKvClient: one member's etcd v3 JSON API, one attempt per call, outcome classified
//   recorder.ts  HistoryRecorder: every operation's invoke and completion, to history.jsonl
//   workloads/   register, bank, watch: generate load, run final reads, judge the history
//   results.ts   summarize(): counts, latency percentiles, availability per fault window
//   plots.ts     vega-lite plots (rendered to SVG by vega) and the run's report.html
//   runner.ts    runChaos(): the whole run, its progress line, its output folder and verdict

import type { JsonValue } from '../checker/index.js';
import type { ProxyNetwork } from '../proxy/index.js';

export type { JsonValue };

export const NEMESIS_NAMES = ['partition', 'kill', 'pause', 'clock', 'latency', 'reset'] as const;
/** A family of faults `--nemesis` can name. */
export type NemesisName = (typeof NEMESIS_NAMES)[number];

export const WORKLOAD_NAMES = ['register', 'bank', 'watch'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

/**
 * How clients read. linearizable: the server's ReadIndex (safe); lease: the server's --read-mode lease
 * (the leader answers alone while its lease holds; unsafe under clock drift); serializable: the
 * request's serializable flag (any member answers from its own store; may be stale by design).
 */
export const READ_MODES = ['linearizable', 'lease', 'serializable'] as const;
export type ReadMode = (typeof READ_MODES)[number];

/**
 * One fault, as drawn from the seed. Nodes are indexes into the run's node list (so the same seed
 * gives the same schedule for any node names); 'leader' is resolved when the fault is applied.
 */
export type FaultSpec =
  /** The nodes split in two groups (a minority and a majority); no traffic between them. */
  | { readonly kind: 'partition-halves'; readonly minority: readonly number[] }
  /**
   * Whoever leads when the window opens is cut off from every other node. With leaderClockRate (drawn
   * only when 'clock' is a nemesis too), its clock is first slowed to that rate and set back to 1 at
   * heal: a slow leader's tick-based read lease outlives the majority's election (--read-mode lease).
   */
  | { readonly kind: 'partition-isolate-leader'; readonly leaderClockRate?: number }
  /** Two halves that only one node (the bridge, order[middle]) can talk to both of. */
  | { readonly kind: 'partition-bridge'; readonly order: readonly number[] }
  /** Each node sees a majority, but no two nodes see the same one (Jepsen's majorities-ring). */
  | { readonly kind: 'partition-majorities-ring'; readonly order: readonly number[] }
  /** Bytes from `from` to `to` are dropped; the reverse direction still flows. */
  | { readonly kind: 'partition-one-way'; readonly from: number | 'leader'; readonly to: number }
  /** SIGKILL these nodes when the window opens; start them again (same data dir) when it closes. */
  | { readonly kind: 'kill'; readonly nodes: readonly (number | 'leader')[] }
  /** SIGSTOP these nodes when the window opens; SIGCONT when it closes. */
  | { readonly kind: 'pause'; readonly nodes: readonly (number | 'leader')[] }
  /** Per node clock skew and rate (POST /debug/clock); back to {0, 1} when the window closes. */
  | { readonly kind: 'clock'; readonly changes: readonly { readonly node: number; readonly skewMs: number; readonly rate: number }[] }
  /** Every directed link gets this latency (and uniform jitter up to jitterMs) until the window closes. */
  | { readonly kind: 'latency'; readonly latencyMs: number; readonly jitterMs: number }
  /** Every open peer connection is reset when the window opens (the window is only its marker). */
  | { readonly kind: 'reset' };

export type FaultKind = FaultSpec['kind'];

/** One window of the schedule: the fault holds from startMs to endMs after the workload starts. */
export interface FaultWindow {
  /** 1, 2, ... in start order. */
  readonly id: number;
  readonly startMs: number;
  readonly endMs: number;
  readonly fault: FaultSpec;
}

export interface Schedule {
  readonly seed: number;
  readonly durationMs: number;
  readonly nemeses: readonly NemesisName[];
  readonly nodeCount: number;
  readonly windows: readonly FaultWindow[];
}

/** A window as it was actually applied: times measured, 'leader' resolved to a name. */
export interface AppliedWindow {
  readonly id: number;
  readonly kind: FaultKind;
  /** Milliseconds after the workload started, as measured when applying and healing. */
  readonly startMs: number;
  /** null while the fault holds. */
  endMs: number | null;
  /** Node names the fault touched. */
  readonly nodes: readonly string[];
  /** One line for people: "isolate n3 (the leader)", "SIGKILL n1, n4", "n2 clock +800 ms x1.5". */
  readonly description: string;
  /** Set when applying or healing failed (the run goes on; the window says why). */
  error?: string;
}

/** What the nemesis acts on. ChaosCluster implements it over real processes. */
export interface ChaosTarget {
  /** Node names, index i = node i of the schedule. */
  readonly names: readonly string[];
  readonly network: ProxyNetwork;
  /** The member a majority of the answering members name as leader, or null (short timeouts; never throws). */
  leader(): Promise<string | null>;
  /** SIGKILL by PID, resolves once the process has exited. */
  kill(name: string): Promise<void>;
  /** Starts a killed node again with the same flags and data dir (does not wait until it serves). */
  restart(name: string): Promise<void>;
  /** SIGSTOP by PID. */
  pause(name: string): void;
  /** SIGCONT by PID. */
  resume(name: string): void;
  /** POST /debug/clock on the member (the cluster must run with --unsafe-debug-clock). */
  setClock(name: string, clock: { readonly skewMs: number; readonly rate: number }): Promise<void>;
}

/** Outcome of one client call, classified for the history (see recorder.ts). */
export type CallOutcome<T> =
  | { readonly type: 'ok'; readonly value: T }
  /** Certainly did not happen (NO_LEADER, QUEUE_FULL, a refused request, a read that failed). */
  | { readonly type: 'fail'; readonly error: string }
  /** May or may not have happened (timeout, connection lost, LEADER_CHANGED, ...). */
  | { readonly type: 'info'; readonly error: string };

/** One line of history.jsonl (the checker's format, history.ts, plus `node` and `error` for people). */
export interface RecordedEvent {
  readonly process: number;
  readonly type: 'invoke' | 'ok' | 'fail' | 'info';
  /** register: read, write, cas; kv: put, get, delete, txn; bank: transfer, read; ... */
  readonly f: string;
  readonly key: string;
  readonly value: JsonValue;
  /** Nanoseconds since the workload started. */
  readonly time: number;
  /** The member the call went to. */
  readonly node?: string;
  /** Why a call ended fail or info. */
  readonly error?: string;
}

/** The completion side of one recorded invoke; exactly one call per invoke. */
export interface OpRecord {
  complete(outcome: CallOutcome<JsonValue>): void;
}

/**
 * Records operations in real-time order (events are appended as they happen, so line order is
 * real-time order, which is what the checker relies on). Bounded: see recorder.ts.
 */
export interface HistoryRecorder {
  /** Records the invoke now; the returned handle records its completion. */
  invoke(process: number, f: string, key: string, value: JsonValue, node?: string): OpRecord;
  /** A process id never used before (Jepsen: after an `info`, a worker goes on as a new process). */
  newProcess(): number;
  /** Every event so far, in order. */
  readonly events: readonly RecordedEvent[];
}

/** Everything a workload needs; the runner builds it. */
export interface WorkloadContext {
  /** Client URL of every node, index i = node i (http://127.0.0.1:port). */
  readonly endpoints: readonly string[];
  readonly names: readonly string[];
  /** Client workers; worker w talks to node w % nodes (Jepsen-style: minorities get traffic too). */
  readonly concurrency: number;
  /** Target operations per second over all workers (open loop, bounded by the workers). */
  readonly ratePerSec: number;
  readonly seed: number;
  readonly readMode: ReadMode;
  /** Deadline of one call; past it the outcome is `info` (or `fail` for a read). */
  readonly requestTimeoutMs: number;
  readonly recorder: HistoryRecorder;
  /** Aborted when the workload phase ends; run() must then return promptly (in-flight calls may finish). */
  readonly signal: AbortSignal;
  /** Folder of the run, for workload-specific files (e.g. watch-events.jsonl). */
  readonly outDir: string;
  /** Progress notes for the log (never stdout). */
  readonly log: (msg: string) => void;
  /** Keys of the register workload ("r0".."r{keys-1}"; ChaosOptions.keys). Absent: 10. */
  readonly keys?: number;
}

export interface WorkloadVerdict {
  readonly valid: true | false | 'unknown';
  /** Which check decided: 'linearizability', 'bank-total', 'watch-exactly-once', ... */
  readonly checks: readonly { readonly name: string; readonly valid: true | false | 'unknown'; readonly summary: string }[];
  /** One line for people. */
  readonly summary: string;
  /** Anomalies found, each one line (capped at 100; the count says how many in all). */
  readonly anomalies: readonly string[];
  readonly anomalyCount: number;
  /** The linearizability result, when one was checked (for the timeline). */
  readonly linearizability?: import('../checker/index.js').CheckResult;
  /** Model name passed to the checker for the timeline ('register' | 'kv'). */
  readonly model?: import('../checker/index.js').ModelName;
}

export interface Workload {
  readonly name: WorkloadName;
  /** Before the clock starts (e.g. open the bank's accounts); retried until done or throws. */
  setup(ctx: WorkloadContext): Promise<void>;
  /** Generates operations until ctx.signal aborts; records every one. */
  run(ctx: WorkloadContext): Promise<void>;
  /** After the faults heal: the final reads (recorded too), on every node. */
  finalReads(ctx: WorkloadContext): Promise<void>;
  /** Judges the recorded history (and any workload files). */
  check(ctx: WorkloadContext, timeBudgetMs: number): Promise<WorkloadVerdict>;
}

export interface ChaosOptions {
  readonly nodes: number;
  readonly workload: WorkloadName;
  readonly nemeses: readonly NemesisName[];
  readonly durationMs: number;
  readonly ratePerSec: number;
  readonly concurrency: number;
  readonly seed: number;
  /** Output folder (created; must be empty or absent). */
  readonly outDir: string;
  readonly readMode: ReadMode;
  /** Deliberate-bug server flags, passed to every member. */
  readonly unsafeStaleReads: boolean;
  readonly unsafeNoFsync: boolean;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Budget of the linearizability check; past it the verdict is 'unknown'. */
  readonly checkBudgetMs: number;
  /** Keys of the register workload. */
  readonly keys: number;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export interface OutcomeCounts {
  readonly ok: number;
  readonly fail: number;
  readonly info: number;
}

export interface WindowStats {
  readonly id: number;
  readonly kind: FaultKind | 'quiet';
  readonly description: string;
  readonly startMs: number;
  readonly endMs: number;
  /** Operations invoked in the window. */
  readonly counts: OutcomeCounts;
  /** ok / (ok + fail + info); null when no operation was invoked in it. */
  readonly availability: number | null;
}

export interface ChaosResults {
  readonly valid: true | false | 'unknown';
  readonly workload: WorkloadName;
  readonly seed: number;
  readonly nodes: number;
  readonly nemeses: readonly NemesisName[];
  readonly readMode: ReadMode;
  readonly unsafe: readonly string[];
  readonly durationMs: number;
  /** Completed operations (invokes with a completion; pending ones count as info). */
  readonly ops: number;
  readonly counts: OutcomeCounts;
  readonly byFunction: Readonly<Record<string, OutcomeCounts>>;
  /** Latency of ok operations, ms. */
  readonly latencyMs: LatencySummary;
  readonly throughputPerSec: number;
  /** Fault windows and the quiet stretches between them. */
  readonly windows: readonly WindowStats[];
  readonly verdict: WorkloadVerdict;
  readonly checkMs: number;
  readonly outDir: string;
  /** Files written, relative to outDir. */
  readonly files: readonly string[];
  /** Set when the run itself failed (exit 2), or when a step after an invalid verdict failed (the verdict and exit 1 stand). */
  readonly error?: string;
  /** Every member process the run started (restarts included), each stopped by the end of the run. */
  readonly pids?: readonly number[];
  /**
   * Members that exited without the nemesis or the runner asking, one line each (name, pid, status,
   * time, cause if known). A crash does not change the verdict; its log tail is in nodes/<name>.log.
   */
  readonly crashes?: readonly string[];
}
