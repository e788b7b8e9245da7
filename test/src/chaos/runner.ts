// runChaos(): one chaos run, start to verdict.
//
//   validate → create the out folder (absent or empty) → start the cluster → wait for a leader →
//   workload setup → start recording → nemesis + workload for durationMs (the progress line) →
//   stop the workload → heal everything → wait for a leader → final reads → close the history →
//   check → summarize → write nemesis.jsonl, results.json, plots/, check.json, timeline.html, report.html →
//   stop the cluster → the results JSON as the last stdout line.
//
// Every process the run starts belongs to the ChaosCluster, which stops each one by PID; the run
// calls cluster.stop() in a finally block, so an exception, a failed check or an interrupt (the io's
// AbortSignal, aborted by SIGINT/SIGTERM) all leave no member behind. (The members also run with
// --parent-pid: if this process dies outright, they stop by themselves.) A run that fails or is
// interrupted still writes what it has (history, results.json with `error`) and reports exit 2.

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MODELS, pairOperations, renderTimeline, type HistoryEvent, type ModelName } from '../checker/index.js';
import { ChaosCluster } from './cluster.js';
import { Nemesis } from './nemesis.js';
import { writeRunPlots } from './plots.js';
import { formatCount, ProgressLine, RateMeter } from './progress.js';
import { FileHistoryRecorder } from './recorder.js';
import { writeReport } from './report.js';
import { summarize, type RunSummary } from './results.js';
import { MAX_NODES, scheduleFaults } from './schedule.js';
import type { AppliedWindow, ChaosOptions, ChaosResults, RecordedEvent, WorkloadContext, WorkloadVerdict } from './types.js';
import { toHistoryEvents } from './workloads/common.js';
import { workloadFor } from './workloads/index.js';

/** Where a run writes. stdout gets whole lines (a newline is added); stderr gets raw text (the progress line uses \r). */
export interface ChaosIo {
  readonly stdout: (line: string) => void;
  readonly stderr: (text: string) => void;
  /** stderr is a terminal: the progress line is rewritten in place. */
  readonly isTTY: boolean;
  /** Aborted on SIGINT/SIGTERM: the run stops every process, writes what it has and ends with exit 2. */
  readonly signal?: AbortSignal;
}

/** Bounds of the phases that wait on the cluster. */
export const RUNNER_TIMEOUTS = {
  /** Every member started and answering, all naming the same leader (ChaosCluster.waitReady). */
  readyMs: 30_000,
  /** The same, again after the faults healed (restarted members included), before the final reads. */
  leaderAfterHealMs: 30_000,
  /** Workload setup (e.g. the bank's accounts written). */
  setupMs: 30_000,
  /** Final reads (each workload retries its reads within its own bound; this is the outer one). */
  finalReadsMs: 60_000,
  /** After the workload's signal aborts, its run() must return within this (in-flight calls finish). */
  workloadStopMs: 15_000,
} as const;

/** How often the progress line is redrawn on a terminal, and how often the leader is asked. */
const TTY_REDRAW_MS = 250;
const PLAIN_TICK_MS = 1000;
const LEADER_POLL_MS = 1000;

/** The run was stopped by SIGINT/SIGTERM (io.signal). */
class Interrupted extends Error {
  constructor(reason: unknown) {
    super(reason instanceof Error ? reason.message : 'interrupted');
    this.name = 'Interrupted';
  }
}

/** Rejects with Interrupted as soon as `signal` aborts (the promise itself goes on; the finally block stops the processes). */
function interruptible<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(new Interrupted(signal.reason));
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => reject(new Interrupted(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Rejects after `ms` with a message naming the phase. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveSleep) => {
    if (signal?.aborted === true) return resolveSleep();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolveSleep();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Options a run cannot start with (the CLI checks the same; this guards programmatic callers). */
export function checkChaosOptions(o: ChaosOptions): void {
  const bad = (what: string): never => {
    throw new Error(`chaos: ${what}`);
  };
  if (!Number.isInteger(o.nodes) || o.nodes < 2 || o.nodes > MAX_NODES) bad(`nodes must be an integer in 2..${MAX_NODES}, got ${o.nodes}`);
  if (o.nemeses.length > 0 && o.nodes < 3) bad(`faults need at least 3 nodes, got ${o.nodes}`);
  if (!Number.isInteger(o.durationMs) || o.durationMs <= 0) bad(`durationMs must be a positive integer, got ${o.durationMs}`);
  if (!(o.ratePerSec > 0)) bad(`ratePerSec must be positive, got ${o.ratePerSec}`);
  if (!Number.isInteger(o.concurrency) || o.concurrency < 1) bad(`concurrency must be a positive integer, got ${o.concurrency}`);
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) bad(`seed must be a non-negative integer, got ${o.seed}`);
  if (!Number.isInteger(o.keys) || o.keys < 1) bad(`keys must be a positive integer, got ${o.keys}`);
  if (o.electionTimeoutMs < 5 * o.heartbeatIntervalMs) bad('electionTimeoutMs must be at least 5 x heartbeatIntervalMs');
  if (o.outDir.trim() === '') bad('outDir is empty');
}

/** Creates the out folder; refuses one that exists and is not empty (a run never mixes with another's files). */
export async function prepareOutDir(outDir: string): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await readdir(outDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`--out ${outDir}: ${(err as Error).message}`);
  }
  if (entries.length > 0) throw new Error(`--out ${outDir}: the folder is not empty (${entries.length} entries); give a new or empty folder`);
  await mkdir(join(outDir, 'plots'), { recursive: true });
}

/**
 * results.unsafe: the deliberate-bug flags the members run with, and the settings under which an
 * anomaly is expected rather than a bug: lease reads while clocks drift, and serializable reads
 * (any member answers from its own store, so a read may be stale by design and the history is not
 * meant to be linearizable; the checker still checks it, to show the anomalies).
 */
export function unsafeFlags(o: Pick<ChaosOptions, 'unsafeStaleReads' | 'unsafeNoFsync' | 'readMode' | 'nemeses'>): string[] {
  const flags: string[] = [];
  if (o.unsafeStaleReads) flags.push('unsafe-stale-reads');
  if (o.unsafeNoFsync) flags.push('unsafe-no-fsync');
  if (o.readMode === 'lease' && o.nemeses.includes('clock')) flags.push('lease-reads-under-clock-skew');
  if (o.readMode === 'serializable') flags.push('serializable-reads');
  return flags;
}

/** Said after the verdict's summary of a run with serializable reads. */
export const SERIALIZABLE_NOTE = 'reads were serializable (--read-mode serializable): they are not meant to be linearizable';

/** Counts completions of the recorder's events incrementally (a cursor, never a rescan). */
class CompletionCounter {
  ok = 0;
  fail = 0;
  info = 0;
  private cursor = 0;

  constructor(private readonly meter: RateMeter) {}

  advance(events: readonly RecordedEvent[]): void {
    let n = 0;
    for (; this.cursor < events.length; this.cursor++) {
      const t = events[this.cursor]?.type;
      if (t === 'ok') this.ok++;
      else if (t === 'fail') this.fail++;
      else if (t === 'info') this.info++;
      else continue;
      n++;
    }
    if (n > 0) this.meter.add(n);
  }
}

/**
 * The run's validity once `error` is known: an error makes a valid or unknown run 'unknown', but a
 * verdict of false was proven from the history and stands (the error is reported beside it, in
 * results.error; exit 1).
 */
export function validWithError(valid: ChaosResults['valid'], error: string | undefined): ChaosResults['valid'] {
  if (valid === false) return false;
  return error === undefined ? valid : 'unknown';
}

/**
 * A check of a history with nothing in it cannot fail, so it proves nothing. A run counts as
 * checked only if its workload phase (before the final reads) has at least one ok operation and,
 * for register and bank (whose anomalies are seen by reads), at least one ok read. Otherwise a
 * valid verdict becomes 'unknown' (exit 2), with a check 'ok-operations' saying why; a false one stands.
 */
export function requireOkOperations(
  verdict: WorkloadVerdict,
  events: readonly RecordedEvent[],
  workloadEventCount: number,
  workload: ChaosOptions['workload'],
): WorkloadVerdict {
  let ok = 0;
  let okReads = 0;
  for (let i = 0; i < Math.min(workloadEventCount, events.length); i++) {
    const e = events[i];
    if (e === undefined || e.type !== 'ok') continue;
    ok++;
    if (e.f === 'read') okReads++;
  }
  const needsRead = workload === 'register' || workload === 'bank';
  const missing =
    ok === 0
      ? 'no operation of the workload phase completed ok (at least one is required)'
      : needsRead && okReads === 0
        ? `no read of the workload phase completed ok (a ${workload} run needs at least one)`
        : null;
  if (missing === null) return verdict;
  const check = { name: 'ok-operations', valid: 'unknown' as const, summary: missing };
  return {
    ...verdict,
    valid: verdict.valid === false ? false : 'unknown',
    checks: [...verdict.checks, check],
    summary: verdict.valid === false ? `${verdict.summary}; ${missing}` : `unknown: ${missing}, so the check proves nothing (${verdict.summary})`,
  };
}

/** The verdict of a run that never reached its check. */
function noVerdict(reason: string): WorkloadVerdict {
  return { valid: 'unknown', checks: [], summary: `not checked: ${reason}`, anomalies: [], anomalyCount: 0 };
}

const EMPTY_SUMMARY = (durationMs: number): RunSummary => ({
  durationMs,
  ops: 0,
  counts: { ok: 0, fail: 0, info: 0 },
  byFunction: {},
  latencyMs: { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 },
  throughputPerSec: 0,
  windows: [],
});

/** Lists the files under `dir`, relative to it, sorted (the nodes' data folders are summarized as one entry each). */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        if (/^nodes\/[^/]+\/data$/.test(path)) out.push(`${path}/`);
        else await walk(path);
      } else out.push(path);
    }
  };
  await walk('');
  return out.sort();
}

/** Runs one chaos experiment (see the header); never throws: a failure is results.error (exit 2). */
export async function runChaos(options: ChaosOptions, io: ChaosIo): Promise<ChaosResults> {
  const signal = io.signal;
  const progress = new ProgressLine({ write: io.stderr, isTTY: io.isTTY });
  const outDir = resolve(options.outDir);
  const log = (msg: string): void => {
    progress.endLine();
    io.stderr(`chaos: ${msg}\n`);
  };
  let outCreated = false;
  let cluster: ChaosCluster | undefined;
  let recorder: FileHistoryRecorder | undefined;
  let nemesis: Nemesis | undefined;
  const workloadAbort = new AbortController();
  let verdict: WorkloadVerdict | undefined;
  let checkMs = 0;
  let error: string | undefined;
  let results: ChaosResults | undefined;
  let stopError: string | undefined;

  try {
    checkChaosOptions(options);
    const workload = workloadFor(options.workload);
    await prepareOutDir(outDir);
    outCreated = true;

    progress.phase(`starting ${options.nodes} nodes (${options.workload} workload, nemeses ${options.nemeses.join(',') || 'none'}, seed ${options.seed}) in ${outDir}`);
    // Not interruptible: start() returns quickly (it does not wait for the members), and the
    // cluster must be in hand to be stopped.
    cluster = await ChaosCluster.start({
      outDir,
      nodes: options.nodes,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      electionTimeoutMs: options.electionTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs,
      readMode: options.readMode === 'lease' ? 'lease' : 'read-index',
      unsafeStaleReads: options.unsafeStaleReads,
      unsafeNoFsync: options.unsafeNoFsync,
      debugClock: options.nemeses.includes('clock'),
      seed: options.seed,
      log,
    });
    progress.phase('waiting for a leader');
    const firstLeader = await interruptible(cluster.waitReady(RUNNER_TIMEOUTS.readyMs), signal);
    log(`leader ${firstLeader}`);

    const schedule = scheduleFaults({ seed: options.seed, durationMs: options.durationMs, nodeCount: options.nodes, nemeses: options.nemeses });
    recorder = new FileHistoryRecorder(join(outDir, 'history.jsonl'));
    const ctx: WorkloadContext = {
      endpoints: cluster.endpoints,
      names: cluster.names,
      concurrency: options.concurrency,
      ratePerSec: options.ratePerSec,
      seed: options.seed,
      readMode: options.readMode,
      requestTimeoutMs: options.requestTimeoutMs,
      recorder,
      signal: workloadAbort.signal,
      outDir,
      log,
      keys: options.keys,
    };
    progress.phase(`${options.workload} workload: setup`);
    await interruptible(withTimeout(workload.setup(ctx), RUNNER_TIMEOUTS.setupMs, 'workload setup'), signal);

    // The clock of the history and of the fault windows starts here.
    nemesis = new Nemesis(cluster, schedule, { log });
    recorder.start();
    nemesis.start(performance.now());
    progress.phase(`running for ${(options.durationMs / 1000).toFixed(1)} s: ${schedule.windows.length} fault window(s)`);
    const running = workload.run(ctx);
    const failed: { error?: unknown } = {};
    running.catch((e: unknown) => {
      failed.error = e;
    });
    await watchProgress(options, progress, recorder, cluster, nemesis, signal, failed, firstLeader);
    if (failed.error !== undefined) throw failed.error;

    workloadAbort.abort(new Error('workload phase over'));
    await interruptible(withTimeout(running, RUNNER_TIMEOUTS.workloadStopMs, 'stopping the workload'), signal);
    progress.phase('healing');
    await interruptible(nemesis.stopAndHealAll(), signal);
    progress.phase('waiting for a leader');
    const leader = await interruptible(cluster.waitReady(RUNNER_TIMEOUTS.leaderAfterHealMs), signal);
    log(`leader ${leader}`);
    progress.phase('final reads');
    const workloadEventCount = recorder.events.length;
    await interruptible(withTimeout(workload.finalReads(ctx), RUNNER_TIMEOUTS.finalReadsMs, 'final reads'), signal);
    await recorder.close();

    progress.phase(`checking ${formatCount(recorder.events.length)} events`);
    const checkStarted = performance.now();
    const checked = await interruptible(workload.check(ctx, options.checkBudgetMs), signal);
    verdict = requireOkOperations(checked, recorder.events, workloadEventCount, options.workload);
    checkMs = Math.round(performance.now() - checkStarted);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    progress.endLine();
    io.stderr(`chaos: ${err instanceof Interrupted ? 'interrupted' : 'failed'}: ${error}\n`);
  } finally {
    progress.endLine();
    workloadAbort.abort(new Error('run over'));
    // Whatever happened, write what exists, then stop every process.
    try {
      if (nemesis !== undefined && error !== undefined) await withTimeout(nemesis.stopAndHealAll(), 10_000, 'healing').catch(() => {});
      if (recorder !== undefined) await recorder.close().catch(() => {});
      results = await finish(options, outDir, outCreated, recorder, nemesis, verdict, checkMs, error, log);
    } finally {
      if (cluster !== undefined) {
        progress.phase('stopping the cluster');
        try {
          await cluster.stop();
        } catch (err) {
          stopError = `stopping the cluster: ${(err as Error).message}`;
        }
      }
    }
  }
  let final: ChaosResults = results ?? (await finish(options, outDir, false, undefined, undefined, undefined, 0, error ?? 'no results', log));
  if (cluster !== undefined) {
    const crashes = cluster.describeUnexpectedExits();
    final = { ...final, pids: cluster.pids(), ...(crashes.length > 0 ? { crashes } : {}) };
  }
  if (stopError !== undefined) {
    log(stopError);
    final = { ...final, valid: validWithError(final.valid, stopError), error: final.error === undefined ? stopError : `${final.error}; ${stopError}` };
  }
  if (outCreated) {
    const files = await listFiles(outDir).catch(() => final.files);
    final = { ...final, files };
    await writeFile(join(outDir, 'results.json'), `${JSON.stringify(final, null, 2)}\n`).catch(() => {});
  }
  results = final;
  reportVerdict(results, io);
  io.stdout(JSON.stringify(results));
  return results;
}

/** Redraws the progress line until the workload phase is over (or interrupted, or the workload failed). */
async function watchProgress(
  options: ChaosOptions,
  progress: ProgressLine,
  recorder: FileHistoryRecorder,
  cluster: ChaosCluster,
  nemesis: Nemesis,
  signal: AbortSignal | undefined,
  failed: { error?: unknown },
  initialLeader: string | null,
): Promise<void> {
  const started = performance.now();
  const meter = new RateMeter();
  const counter = new CompletionCounter(meter);
  let leader: string | null = initialLeader;
  let leaderAskedMs = -Infinity;
  let asking = false;
  const tickMs = progress.isTTY ? TTY_REDRAW_MS : PLAIN_TICK_MS;
  for (;;) {
    const elapsedMs = performance.now() - started;
    counter.advance(recorder.events);
    if (!asking && elapsedMs - leaderAskedMs >= LEADER_POLL_MS) {
      asking = true;
      leaderAskedMs = elapsedMs;
      void cluster
        .leader()
        .then((l) => {
          leader = l;
        })
        .catch(() => {})
        .finally(() => {
          asking = false;
        });
    }
    const active = nemesis.current();
    progress.update(
      {
        elapsedMs: Math.min(elapsedMs, options.durationMs),
        durationMs: options.durationMs,
        counts: { ok: counter.ok, fail: counter.fail, info: counter.info },
        ratePerSec: meter.perSecond(),
        fault: active === null ? null : `${active.kind} ${active.description}`,
        leader,
      },
      elapsedMs >= options.durationMs,
    );
    if (elapsedMs >= options.durationMs || failed.error !== undefined) return;
    if (signal?.aborted === true) throw new Interrupted(signal.reason);
    await sleep(Math.min(tickMs, options.durationMs - elapsedMs), signal);
  }
}

/** Summarizes and writes every file of the run; returns its results (never throws: a failure to write is reported in `error`). */
async function finish(
  options: ChaosOptions,
  outDir: string,
  outCreated: boolean,
  recorder: FileHistoryRecorder | undefined,
  nemesis: Nemesis | undefined,
  verdictIn: WorkloadVerdict | undefined,
  checkMs: number,
  errorIn: string | undefined,
  log: (msg: string) => void,
): Promise<ChaosResults> {
  let error = errorIn;
  const events = recorder?.events ?? [];
  const applied: readonly AppliedWindow[] = nemesis?.applied() ?? [];
  let summary: RunSummary = EMPTY_SUMMARY(options.durationMs);
  try {
    summary = summarize({ events, applied, durationMs: options.durationMs });
  } catch (err) {
    error ??= `summarizing the history: ${(err as Error).message}`;
  }
  const verdict = verdictIn ?? noVerdict(error ?? 'the run ended before its check');
  // The checker's full result (the failing key's whole sub-history, the linearization of every key)
  // goes to check.json; results.json and the stdout line keep the verdict's readable parts.
  const { linearizability, ...checkedVerdict } = verdict;
  const readableVerdict =
    options.readMode === 'serializable' && verdictIn !== undefined ? { ...checkedVerdict, summary: `${checkedVerdict.summary}; ${SERIALIZABLE_NOTE}` } : checkedVerdict;
  let results: ChaosResults = {
    valid: validWithError(verdict.valid, error),
    workload: options.workload,
    seed: options.seed,
    nodes: options.nodes,
    nemeses: options.nemeses,
    readMode: options.readMode,
    unsafe: unsafeFlags(options),
    ...summary,
    verdict: readableVerdict,
    checkMs,
    outDir,
    files: [],
    ...(error === undefined ? {} : { error }),
  };
  if (!outCreated) return results;
  try {
    await writeFile(join(outDir, 'nemesis.jsonl'), applied.map((w) => JSON.stringify(w)).join('\n') + (applied.length > 0 ? '\n' : ''));
    await writeFile(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    if (events.length > 0) {
      await writeRunPlots(outDir, { events, applied, durationMs: options.durationMs, title: `${options.workload}, seed ${options.seed}` });
    }
    if (linearizability !== undefined) {
      await writeFile(join(outDir, 'check.json'), `${JSON.stringify(linearizability, checkJsonReplacer, 2)}\n`);
      if (verdict.model !== undefined) await writeTimeline(outDir, verdict, options, events);
    }
    await writeReport(outDir, results, { options });
  } catch (err) {
    const message = `writing the run's files: ${(err as Error).message}`;
    log(message);
    if (results.error === undefined) results = { ...results, valid: validWithError(results.valid, message), error: message };
  }
  return results;
}

/** JSON has no Infinity (an indeterminate completion: null) and no Map (linearizations: key -> op ids). */
function checkJsonReplacer(_key: string, v: unknown): unknown {
  if (v === Infinity) return null;
  if (v instanceof Map) return Object.fromEntries([...(v as Map<string, readonly { readonly id: number }[]>)].map(([k, ops]) => [k, ops.map((o) => o.id)]));
  return v;
}

/**
 * The recorded events of the checked model's functions, as the checker's events, from memory (the
 * recorder holds every event it wrote). Line numbers stay those of history.jsonl (index + 1), so
 * the timeline and the file agree.
 */
export function timelineEvents(recorded: readonly RecordedEvent[], modelName: ModelName): HistoryEvent[] {
  const functions: ReadonlySet<string> = MODELS[modelName].functions;
  return toHistoryEvents(recorded).filter((e) => functions.has(e.f));
}

/** timeline.html: the checked history (the operations of the checked model), lanes per key. */
async function writeTimeline(outDir: string, verdict: WorkloadVerdict, options: ChaosOptions, recorded: readonly RecordedEvent[]): Promise<void> {
  const result = verdict.linearizability;
  const modelName = verdict.model;
  if (result === undefined || modelName === undefined) return;
  const events = timelineEvents(recorded, modelName);
  const ops = pairOperations(events);
  const title = `ballot chaos: ${options.workload}, ${options.nodes} nodes, nemeses ${options.nemeses.join(',') || 'none'}, seed ${options.seed}`;
  await writeFile(join(outDir, 'timeline.html'), renderTimeline({ events, ops, result, title }));
}

/** A few lines for people on stderr: the verdict, the numbers, where to look. */
function reportVerdict(r: ChaosResults, io: ChaosIo): void {
  const word = r.valid === false ? 'INVALID' : r.error !== undefined ? 'ERROR' : r.valid === true ? 'VALID' : 'UNKNOWN';
  io.stderr(
    `chaos: ${word}: ${r.verdict.summary}\n` +
      `chaos: ${formatCount(r.ops)} ops (ok ${formatCount(r.counts.ok)}, fail ${formatCount(r.counts.fail)}, info ${formatCount(r.counts.info)}), ` +
      `${r.throughputPerSec}/s, latency p50 ${r.latencyMs.p50} ms p99 ${r.latencyMs.p99} ms, check ${r.checkMs} ms\n`,
  );
  for (const a of r.verdict.anomalies.slice(0, 5)) io.stderr(`chaos:   ${a}\n`);
  if (r.verdict.anomalyCount > 5) io.stderr(`chaos:   ... ${r.verdict.anomalyCount - 5} more in results.json\n`);
  for (const c of r.crashes ?? []) io.stderr(`chaos: member crashed (not a fault of the nemesis): ${c}\n`);
  if (r.error !== undefined) io.stderr(`chaos: error: ${r.error}\n`);
  io.stderr(`chaos: report ${join(r.outDir, 'report.html')}\n`);
}
