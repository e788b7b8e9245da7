// The numbers of a chaos run, computed from its recorded history and the fault windows as applied:
// outcome counts (overall and per function), latency percentiles of ok operations, throughput, and
// availability per fault window and per quiet stretch between windows. Pure functions: no I/O.
//
// Rules (stated here once, and in the README):
// - An operation is an invoke and its completion, paired by process id (a process has at most one
//   operation in flight, as in Jepsen). An invoke that never completed counts as `info` (it may or
//   may not have taken effect). A completion with no open invoke of its process is ignored.
// - Latency = completion time - invoke time, of `ok` operations only, in ms. Percentiles are
//   nearest-rank: the p-th percentile of n sorted latencies is the ceil(p/100 * n)-th smallest.
//   With no ok operation every figure is 0 and count is 0.
// - Throughput = ok operations completed within [0, durationMs] per second of durationMs (the final
//   reads after the workload are counted in `counts` but not in the throughput).
// - Windows tile [0, durationMs]: the fault windows (clamped to it, in start order, each starting no
//   earlier than the previous one ended; a window still open ends at durationMs) and the quiet
//   stretches between them (empty stretches are left out). An operation belongs to the window it was
//   invoked in ([startMs, endMs); the last window also takes an invoke at exactly durationMs).
//   Availability = ok / (ok + fail + info) of those operations; null when none was invoked there.
//   Operations invoked after durationMs (the final reads) belong to no window.

import type { AppliedWindow, ChaosResults, LatencySummary, OutcomeCounts, RecordedEvent, WindowStats } from './types.js';

export type Outcome = 'ok' | 'fail' | 'info';

/** One operation of a recorded history: its invoke and completion. */
export interface RecordedOp {
  readonly process: number;
  readonly f: string;
  readonly key: string;
  readonly node?: string;
  /** 'info' also for an invoke that never completed (`pending` true). */
  readonly outcome: Outcome;
  readonly pending: boolean;
  readonly invokeMs: number;
  /** null when pending. */
  readonly completeMs: number | null;
  /** completeMs - invokeMs; null when pending. */
  readonly latencyMs: number | null;
}

const NS_PER_MS = 1e6;

/** Pairs invokes with completions by process; operations come out in invoke order. */
export function recordedOps(events: readonly RecordedEvent[]): RecordedOp[] {
  const ops: (RecordedOp | null)[] = [];
  const open = new Map<number, { readonly index: number; readonly event: RecordedEvent }>();
  for (const e of events) {
    if (e.type === 'invoke') {
      // A second invoke of a process before its completion: the first stays pending (info).
      const prior = open.get(e.process);
      if (prior !== undefined) ops[prior.index] = pendingOp(prior.event);
      open.set(e.process, { index: ops.length, event: e });
      ops.push(null);
      continue;
    }
    const inv = open.get(e.process);
    if (inv === undefined) continue;
    open.delete(e.process);
    const invokeMs = inv.event.time / NS_PER_MS;
    const completeMs = e.time / NS_PER_MS;
    ops[inv.index] = {
      process: e.process,
      f: inv.event.f,
      key: inv.event.key,
      ...(inv.event.node !== undefined ? { node: inv.event.node } : {}),
      outcome: e.type,
      pending: false,
      invokeMs,
      completeMs,
      latencyMs: completeMs - invokeMs,
    };
  }
  for (const { index, event } of open.values()) ops[index] = pendingOp(event);
  return ops.filter((op): op is RecordedOp => op !== null);
}

function pendingOp(e: RecordedEvent): RecordedOp {
  return {
    process: e.process,
    f: e.f,
    key: e.key,
    ...(e.node !== undefined ? { node: e.node } : {}),
    outcome: 'info',
    pending: true,
    invokeMs: e.time / NS_PER_MS,
    completeMs: null,
    latencyMs: null,
  };
}

function emptyCounts(): { ok: number; fail: number; info: number } {
  return { ok: 0, fail: 0, info: 0 };
}

/** Counts of outcomes. */
export function countOutcomes(ops: readonly RecordedOp[]): OutcomeCounts {
  const c = emptyCounts();
  for (const op of ops) c[op.outcome]++;
  return c;
}

/** The nearest-rank percentile (0 < p <= 100) of ascending `sorted`; 0 when empty. */
export function nearestRank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? 0;
}

/** Rounds to 1 µs so results.json stays readable. */
function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Latency percentiles (nearest-rank) of the given latencies in ms. */
export function latencySummary(latenciesMs: readonly number[]): LatencySummary {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: roundMs(nearestRank(sorted, 50)),
    p90: roundMs(nearestRank(sorted, 90)),
    p99: roundMs(nearestRank(sorted, 99)),
    p999: roundMs(nearestRank(sorted, 99.9)),
    max: roundMs(sorted.at(-1) ?? 0),
  };
}

/** A stretch of the run: a fault window as applied, or a quiet stretch between them. */
export interface RunWindow {
  readonly id: number;
  readonly kind: WindowStats['kind'];
  readonly description: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly error?: string;
}

/**
 * The fault windows clamped to [0, durationMs] and made disjoint (in start order), with the quiet
 * stretches between them; together they tile [0, durationMs]. Quiet stretches have id 0.
 */
export function runWindows(applied: readonly AppliedWindow[], durationMs: number): RunWindow[] {
  const end = Math.max(0, durationMs);
  const sorted = [...applied].sort((a, b) => a.startMs - b.startMs || a.id - b.id);
  const out: RunWindow[] = [];
  let cursor = 0;
  let lastFaultId: number | null = null;
  for (const w of sorted) {
    const startMs = Math.min(Math.max(w.startMs, cursor), end);
    const endMs = Math.min(Math.max(w.endMs ?? end, startMs), end);
    if (startMs > cursor) out.push(quiet(cursor, startMs, lastFaultId, w.id));
    out.push({
      id: w.id,
      kind: w.kind,
      description: w.description,
      startMs,
      endMs,
      ...(w.error !== undefined ? { error: w.error } : {}),
    });
    cursor = endMs;
    lastFaultId = w.id;
  }
  if (cursor < end || out.length === 0) out.push(quiet(cursor, end, lastFaultId, null));
  return out;
}

function quiet(startMs: number, endMs: number, after: number | null, before: number | null): RunWindow {
  const description =
    after === null && before === null
      ? 'quiet (no fault)'
      : after === null
        ? `quiet (lead-in, before #${before})`
        : before === null
          ? `quiet (recovery, after #${after})`
          : `quiet (between #${after} and #${before})`;
  return { id: 0, kind: 'quiet', description, startMs, endMs };
}

/** Index of the window an invoke at `ms` belongs to, or -1 (see the rules at the top). */
function windowIndexOf(windows: readonly RunWindow[], ms: number): number {
  let lo = 0;
  let hi = windows.length - 1;
  const last = windows[hi];
  if (last === undefined || ms < 0 || ms > last.endMs) return -1;
  if (ms === last.endMs) return hi;
  // Binary search for the window with startMs <= ms < endMs (zero-length windows hold nothing).
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const w = windows[mid];
    if (w === undefined) return -1;
    if (ms < w.startMs) hi = mid - 1;
    else if (ms >= w.endMs) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** Operation counts and availability per window (windows as runWindows made them). */
export function windowStats(ops: readonly RecordedOp[], windows: readonly RunWindow[]): WindowStats[] {
  const counts = windows.map(() => emptyCounts());
  for (const op of ops) {
    const i = windowIndexOf(windows, op.invokeMs);
    const c = counts[i];
    if (c !== undefined) c[op.outcome]++;
  }
  return windows.map((w, i) => {
    const c = counts[i] ?? emptyCounts();
    const total = c.ok + c.fail + c.info;
    return {
      id: w.id,
      kind: w.kind,
      description: w.error === undefined ? w.description : `${w.description} (error: ${w.error})`,
      startMs: roundMs(w.startMs),
      endMs: roundMs(w.endMs),
      counts: c,
      availability: total === 0 ? null : c.ok / total,
    };
  });
}

export interface SummaryInput {
  readonly events: readonly RecordedEvent[];
  readonly applied: readonly AppliedWindow[];
  /** Length of the workload phase (the schedule's duration). */
  readonly durationMs: number;
}

/** The parts of ChaosResults that come from the history and the windows. */
export type RunSummary = Pick<ChaosResults, 'durationMs' | 'ops' | 'counts' | 'byFunction' | 'latencyMs' | 'throughputPerSec' | 'windows'>;

/** Counts, latency, throughput and per-window availability of a run (rules at the top of this file). */
export function summarize(input: SummaryInput): RunSummary {
  const ops = recordedOps(input.events);
  const byFunction = new Map<string, { ok: number; fail: number; info: number }>();
  const okLatencies: number[] = [];
  let okInDuration = 0;
  for (const op of ops) {
    let c = byFunction.get(op.f);
    if (c === undefined) byFunction.set(op.f, (c = emptyCounts()));
    c[op.outcome]++;
    if (op.outcome === 'ok' && op.latencyMs !== null) {
      okLatencies.push(op.latencyMs);
      if (op.completeMs !== null && op.completeMs <= input.durationMs) okInDuration++;
    }
  }
  const counts = countOutcomes(ops);
  return {
    durationMs: input.durationMs,
    ops: ops.length,
    counts,
    // fromEntries defines own properties, so even a function named "__proto__" is an ordinary key.
    byFunction: Object.fromEntries([...byFunction.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    latencyMs: latencySummary(okLatencies),
    throughputPerSec: input.durationMs > 0 ? Math.round((okInDuration / (input.durationMs / 1000)) * 100) / 100 : 0,
    windows: windowStats(ops, runWindows(input.applied, input.durationMs)),
  };
}
