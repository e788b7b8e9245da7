// Turns raw measurements (several rounds per phase, one sample per failover) into the figures we
// quote: medians across rounds, failover percentiles, and the comparison rows. Pure, so it is unit-tested.

import type { FailoverSample } from './failover.js';
import { median, percentileOfSorted } from './latency.js';
import type { ClosedLoopResult } from './load.js';
import type { ComparisonRow } from './table.js';

export type SystemName = 'ballot' | 'etcd';

export interface PhaseRecord {
  readonly system: SystemName;
  readonly round: number;
  readonly concurrency: number;
  readonly result: ClosedLoopResult;
  /** CPU time (ms) each member process used during the measurement window. */
  readonly serverCpuMs: Readonly<Record<string, number>>;
  /** The machine's 1-minute load average when the phase ended (the machine is shared). */
  readonly loadAverage1m: number;
}

export interface ThroughputFigures {
  readonly rounds: number;
  /** Medians across rounds. */
  readonly commitsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Total CPU of all members divided by commits, in microseconds (median across rounds). */
  readonly serverCpuUsPerCommit: number;
  /** Client (benchmark process) CPU per commit, in microseconds (median across rounds). */
  readonly clientCpuUsPerCommit: number;
  readonly errors: number;
}

export function throughputFigures(
  records: readonly PhaseRecord[],
  system: SystemName,
  concurrency: number,
): ThroughputFigures | null {
  const mine = records.filter((r) => r.system === system && r.concurrency === concurrency);
  if (mine.length === 0) return null;
  const perCommit = (cpuMs: number, acked: number): number => (acked === 0 ? Number.NaN : (cpuMs * 1000) / acked);
  return {
    rounds: mine.length,
    commitsPerSec: median(mine.map((r) => r.result.ackedPerSec)),
    p50Ms: median(mine.map((r) => r.result.latency.p50Ms)),
    p99Ms: median(mine.map((r) => r.result.latency.p99Ms)),
    serverCpuUsPerCommit: median(
      mine.map((r) => perCommit(Object.values(r.serverCpuMs).reduce((a, b) => a + b, 0), r.result.acked)),
    ),
    clientCpuUsPerCommit: median(mine.map((r) => perCommit(r.result.clientCpuMs, r.result.acked))),
    errors: mine.reduce((sum, r) => sum + r.result.errors, 0),
  };
}

export interface FailoverFigures {
  readonly attempted: number;
  readonly succeeded: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export function failoverFigures(samples: readonly FailoverSample[]): FailoverFigures | null {
  if (samples.length === 0) return null;
  const ms = samples.flatMap((s) => (s.ok ? [s.ms] : [])).sort((a, b) => a - b);
  return {
    attempted: samples.length,
    succeeded: ms.length,
    p50Ms: percentileOfSorted(ms, 50),
    p99Ms: percentileOfSorted(ms, 99),
    maxMs: ms.length === 0 ? Number.NaN : (ms[ms.length - 1] as number),
  };
}

/** The comparison table's rows: per concurrency commits/s, p50, p99, server and client CPU per commit; then failover. */
export function comparisonRows(
  concurrencies: readonly number[],
  throughput: (system: SystemName, concurrency: number) => ThroughputFigures | null,
  failover: (system: SystemName) => FailoverFigures | null,
): ComparisonRow[] {
  const rows: ComparisonRow[] = [];
  const pick = <T>(value: T | null, f: (v: T) => number): number | null => (value === null ? null : f(value));
  for (const c of concurrencies) {
    const b = throughput('ballot', c);
    const e = throughput('etcd', c);
    rows.push({ metric: `commits/s, ${c} proposer${c === 1 ? '' : 's'}`, unit: '/s', subject: pick(b, (v) => v.commitsPerSec), reference: pick(e, (v) => v.commitsPerSec) });
    rows.push({ metric: `  p50 commit latency, c=${c}`, unit: 'ms', subject: pick(b, (v) => v.p50Ms), reference: pick(e, (v) => v.p50Ms) });
    rows.push({ metric: `  p99 commit latency, c=${c}`, unit: 'ms', subject: pick(b, (v) => v.p99Ms), reference: pick(e, (v) => v.p99Ms) });
    rows.push({ metric: `  server CPU per commit, c=${c}`, unit: 'us', subject: pick(b, (v) => v.serverCpuUsPerCommit), reference: pick(e, (v) => v.serverCpuUsPerCommit) });
    rows.push({ metric: `  client CPU per commit, c=${c}`, unit: 'us', subject: pick(b, (v) => v.clientCpuUsPerCommit), reference: pick(e, (v) => v.clientCpuUsPerCommit) });
  }
  const bf = failover('ballot');
  const ef = failover('etcd');
  rows.push({ metric: 'failover p50 (SIGKILL leader -> first commit)', unit: 'ms', subject: pick(bf, (v) => v.p50Ms), reference: pick(ef, (v) => v.p50Ms) });
  rows.push({ metric: 'failover p99', unit: 'ms', subject: pick(bf, (v) => v.p99Ms), reference: pick(ef, (v) => v.p99Ms) });
  rows.push({ metric: 'failovers measured', unit: 'n', subject: pick(bf, (v) => v.succeeded), reference: pick(ef, (v) => v.succeeded) });
  return rows;
}
