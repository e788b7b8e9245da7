// bench:kv figures: medians across rounds per cell (system x operation x clients), errors summed
// and named, and the table (ops/s, p50, p99 per system; ratio to etcd). Pure, so it is unit-tested.

import type { ClosedLoopResult } from '../raft/load.js';
import { median } from '../raft/latency.js';
import { formatRatio, formatTable, formatValue } from '../raft/table.js';
import { KV_OP_LABELS, type KvOp } from './workload.js';

export const KV_SYSTEMS = ['etcd', 'ballot', 'ballot-native'] as const;
export type KvSystem = (typeof KV_SYSTEMS)[number];

export const KV_SYSTEM_TITLES: Readonly<Record<KvSystem, string>> = {
  etcd: 'etcd (JSON)',
  ballot: 'Ballot (JSON)',
  'ballot-native': 'Ballot (native)',
};

/** One measured cell of one round. */
export interface CellRecord {
  readonly system: KvSystem;
  readonly op: KvOp;
  readonly clients: number;
  readonly round: number;
  readonly result: ClosedLoopResult;
  /** CPU time (ms) all members used during the window; null when it could not be read. */
  readonly serverCpuMs: number | null;
  /** The machine's 1-minute load average when the cell ended (the machine may be shared). */
  readonly loadAverage1m: number;
}

/** The result of a cell that could not run (its client could not connect, ...): one error under `code`, nothing measured. */
export function failedResult(concurrency: number, code: string): ClosedLoopResult {
  return {
    concurrency,
    measuredMs: 0,
    acked: 0,
    ackedPerSec: 0,
    errors: 1,
    errorsByCode: { [code]: 1 },
    latency: { count: 0, minMs: Number.NaN, p50Ms: Number.NaN, p90Ms: Number.NaN, p99Ms: Number.NaN, maxMs: Number.NaN, meanMs: Number.NaN },
    clientCpuMs: 0,
    undrained: 0,
  };
}

export interface CellFigures {
  readonly rounds: number;
  /** Rounds that measured (the others could not start; see errorsByCode). */
  readonly roundsMeasured: number;
  /** Medians across the rounds measured. */
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Members' CPU per successful operation, microseconds (median across rounds; NaN if unknown). */
  readonly serverCpuUsPerOp: number;
  /** The bench process's CPU per successful operation, microseconds (median across rounds): a busy client caps both sides. */
  readonly clientCpuUsPerOp: number;
  /** Failed requests inside the windows, summed over rounds, and by code. */
  readonly errors: number;
  readonly errorsByCode: Readonly<Record<string, number>>;
  /** Requests still in flight when a cell's drain timeout expired, summed over rounds. */
  readonly undrained: number;
  /** True when any request failed or hung: the figures are not clean and are marked in the table. */
  readonly flagged: boolean;
}

export function cellFigures(records: readonly CellRecord[], system: KvSystem, op: KvOp, clients: number): CellFigures | null {
  const mine = records.filter((r) => r.system === system && r.op === op && r.clients === clients);
  if (mine.length === 0) return null;
  const errorsByCode: Record<string, number> = {};
  for (const r of mine) {
    for (const [code, n] of Object.entries(r.result.errorsByCode)) errorsByCode[code] = (errorsByCode[code] ?? 0) + n;
  }
  const errors = mine.reduce((n, r) => n + r.result.errors, 0);
  // Rounds whose cell could not start (failedResult) measured nothing: they flag the cell but do
  // not enter the medians; a cell no round could measure has NaN figures (shown as n/a!).
  const ran = mine.filter((r) => r.result.measuredMs > 0);
  const undrained = mine.reduce((n, r) => n + r.result.undrained, 0);
  return {
    rounds: mine.length,
    roundsMeasured: ran.length,
    opsPerSec: median(ran.map((r) => r.result.ackedPerSec)),
    p50Ms: median(ran.map((r) => r.result.latency.p50Ms)),
    p99Ms: median(ran.map((r) => r.result.latency.p99Ms)),
    serverCpuUsPerOp: median(
      ran.map((r) => (r.serverCpuMs === null || r.result.acked === 0 ? Number.NaN : (r.serverCpuMs * 1000) / r.result.acked)),
    ),
    clientCpuUsPerOp: median(ran.map((r) => (r.result.acked === 0 ? Number.NaN : (r.result.clientCpuMs * 1000) / r.result.acked))),
    errors,
    errorsByCode,
    undrained,
    flagged: errors > 0 || undrained > 0,
  };
}

export type FiguresLookup = (system: KvSystem, op: KvOp, clients: number) => CellFigures | null;

/**
 * One row per (operation, clients); per system ops/s (with "!" when the cell had errors), p50 and
 * p99 in ms; each non-etcd system also gets its throughput ratio to etcd.
 */
export function kvTable(ops: readonly KvOp[], clients: readonly number[], systems: readonly KvSystem[], figures: FiguresLookup): string {
  const header = ['workload', 'clients'];
  for (const s of systems) {
    const short = s === 'etcd' ? 'etcd' : s === 'ballot' ? 'ballot' : 'native';
    header.push(`${short} ops/s`, 'p50 ms', 'p99 ms');
    if (s !== 'etcd' && systems.includes('etcd')) header.push(`${short}/etcd`);
  }
  const rows: string[][] = [];
  for (const op of ops) {
    for (const c of clients) {
      const row = [KV_OP_LABELS[op], String(c)];
      const etcd = figures('etcd', op, c);
      for (const s of systems) {
        const f = figures(s, op, c);
        row.push(f === null ? 'n/a' : `${formatValue(f.opsPerSec)}${f.flagged ? '!' : ''}`);
        row.push(formatValue(f?.p50Ms ?? null), formatValue(f?.p99Ms ?? null));
        if (s !== 'etcd' && systems.includes('etcd')) row.push(formatRatio(f?.opsPerSec ?? null, etcd?.opsPerSec ?? null));
      }
      rows.push(row);
    }
  }
  return formatTable(header, rows);
}

/** One line per flagged cell: what failed, how often, by code. Empty when every request succeeded. */
export function errorLines(ops: readonly KvOp[], clients: readonly number[], systems: readonly KvSystem[], figures: FiguresLookup): string[] {
  const out: string[] = [];
  for (const s of systems) {
    for (const op of ops) {
      for (const c of clients) {
        const f = figures(s, op, c);
        if (f === null || !f.flagged) continue;
        const codes = Object.entries(f.errorsByCode)
          .sort((a, b) => b[1] - a[1])
          .map(([code, n]) => `${code} x${n}`)
          .join(', ');
        out.push(
          `! ${KV_SYSTEM_TITLES[s]} ${KV_OP_LABELS[op]} c=${c}: ${f.errors} error(s) in ${f.rounds} round(s)` +
            (f.roundsMeasured < f.rounds ? `, ${f.rounds - f.roundsMeasured} round(s) could not run` : '') +
            (codes === '' ? '' : ` (${codes})`) +
            (f.undrained > 0 ? `, ${f.undrained} still in flight at the end` : ''),
        );
      }
    }
  }
  return out;
}

/**
 * Members' CPU per successful operation (microseconds, all 3 members together), per system: less
 * sensitive than ops/s to other load on a shared machine, so it is printed next to the main table.
 */
export function cpuTable(ops: readonly KvOp[], clients: readonly number[], systems: readonly KvSystem[], figures: FiguresLookup): string {
  const header = ['server CPU per op (us)', 'clients', ...systems];
  const rows: string[][] = [];
  for (const op of ops) {
    for (const c of clients) {
      rows.push([KV_OP_LABELS[op], String(c), ...systems.map((sys) => formatValue(figures(sys, op, c)?.serverCpuUsPerOp ?? null))]);
    }
  }
  return formatTable(header, rows);
}
