// bench tradeoffs — side by side with etcd: the same closed-loop client (bench/kv JsonKvAccess:
// HTTP/1.1 keep-alive, one socket per client, POST /v3/kv/{put,range} with base64 keys and values,
// every answer checked) drives a 3-member `ballot kv serve` and a real 3-member etcd with the same
// heartbeat and election timeout, fsync on both, the same keys and value size, in interleaved
// cells (for each round and operation, both systems in an order that alternates, so a noisy
// machine affects both alike): put, linearizable get (ReadIndex on both, Raft §6.4 of Ongaro's
// thesis), serializable get (the member's own store, no quorum round). Then the leader of each is
// SIGKILLed etcdFailoverKills times, interleaved. Every figure gets the ratio Ballot/etcd.
// No etcd binary, or --no-etcd: the section says it was skipped (not an error).

import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { EtcdCluster } from '../raft/etcd.js';
import { median } from '../raft/latency.js';
import { runClosedLoop, type ClosedLoopResult } from '../raft/load.js';
import { formatRatio, formatValue } from '../raft/table.js';
import { cellOperation, preload } from '../kv/access.js';
import { JsonKvAccess } from '../kv/json-access.js';
import { failedResult } from '../kv/report.js';
import { KEY_PREFIX, type KvOp } from '../kv/workload.js';
import {
  ballotCluster,
  etcdCluster,
  etcdOf,
  failoverCycleMs,
  killInterleaved,
  startSubjects,
  subjectDistribution,
  type ClusterSpec,
  type FailoverDistribution,
  type FailoverSubject,
} from './failover.js';
import type { EtcdComparisonRow, EtcdMetric, EtcdSectionResult, EtcdSideFigures, TradeoffIo, TradeoffSettings } from './types.js';

export type EtcdSystem = 'ballot' | 'etcd';

/** The closed-loop figures and the bench:kv operation behind each. */
export const ETCD_OP_METRICS: readonly { readonly metric: Exclude<EtcdMetric, 'failover'>; readonly op: KvOp }[] = [
  { metric: 'put', op: 'put' },
  { metric: 'linearizable-get', op: 'get' },
  { metric: 'serializable-get', op: 'sget' },
];

export const ETCD_METRIC_TITLES: Readonly<Record<EtcdMetric, string>> = {
  put: 'put',
  'linearizable-get': 'get, linearizable',
  'serializable-get': 'get, serializable',
  failover: 'failover (SIGKILL leader -> first write)',
};

/** Rounds of every cell (medians across them): one in --quick, three otherwise. */
export function etcdRounds(settings: TradeoffSettings): number {
  return settings.quick ? 1 : 3;
}

/** One measured window of one system. */
export interface EtcdCellRecord {
  readonly system: EtcdSystem;
  readonly metric: Exclude<EtcdMetric, 'failover'>;
  readonly round: number;
  readonly result: ClosedLoopResult;
  readonly loadAverage1m: number;
}

/** Medians across the rounds that measured (a cell that could not start has measuredMs 0 and only adds its error). */
export function cellSide(records: readonly EtcdCellRecord[], system: EtcdSystem, metric: EtcdMetric): EtcdSideFigures {
  const mine = records.filter((r) => r.system === system && r.metric === metric);
  const ran = mine.filter((r) => r.result.measuredMs > 0 && r.result.acked > 0);
  const med = (f: (r: EtcdCellRecord) => number): number | null => (ran.length === 0 ? null : median(ran.map(f)));
  return {
    opsPerSec: med((r) => r.result.ackedPerSec),
    p50Ms: med((r) => r.result.latency.p50Ms),
    p99Ms: med((r) => r.result.latency.p99Ms),
    errors: mine.reduce((n, r) => n + r.result.errors, 0),
  };
}

/** A failover distribution as a side of the comparison (no throughput; failures count as errors). */
export function failoverSide(d: FailoverDistribution | null): EtcdSideFigures {
  if (d === null) return { opsPerSec: null, p50Ms: null, p99Ms: null, errors: 0 };
  return { opsPerSec: null, p50Ms: d.p50Ms, p99Ms: d.p99Ms, errors: d.failures.length };
}

const ratio = (a: number | null, b: number | null): number | null =>
  a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0 ? null : a / b;

/** The comparison rows: the three operations (ratio of ops/s), then failover (ratio of the p50s) when measured. */
export function etcdComparisonRows(
  records: readonly EtcdCellRecord[],
  failover: { readonly ballot: FailoverDistribution; readonly etcd: FailoverDistribution } | null,
): EtcdComparisonRow[] {
  const rows: EtcdComparisonRow[] = ETCD_OP_METRICS.map(({ metric }) => {
    const ballot = cellSide(records, 'ballot', metric);
    const etcd = cellSide(records, 'etcd', metric);
    return { metric, ballot, etcd, ratio: ratio(ballot.opsPerSec, etcd.opsPerSec) };
  });
  if (failover !== null) {
    const ballot = failoverSide(failover.ballot);
    const etcd = failoverSide(failover.etcd);
    rows.push({ metric: 'failover', ballot, etcd, ratio: ratio(ballot.p50Ms, etcd.p50Ms) });
  }
  return rows;
}

const fmt = (v: number | null): string => (v === null ? 'n/a' : formatValue(v));

/** The section's markdown table (ops/s, p50, p99 per side, the ratio) with the settings it ran with. */
export function etcdMarkdown(
  rows: readonly EtcdComparisonRow[],
  context: { readonly version: string; readonly rounds: number; readonly settings: TradeoffSettings; readonly failoverKills: number },
): string {
  const s = context.settings;
  const table = [
    '| figure | Ballot ops/s | Ballot p50 ms | Ballot p99 ms | etcd ops/s | etcd p50 ms | etcd p99 ms | Ballot/etcd |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const flag = (side: EtcdSideFigures): string => (side.errors > 0 ? ` (${side.errors} err)` : '');
      const head = r.metric === 'failover' ? 'p50' : 'ops/s';
      return (
        `| ${ETCD_METRIC_TITLES[r.metric]} | ${fmt(r.ballot.opsPerSec)}${flag(r.ballot)} | ${fmt(r.ballot.p50Ms)} | ${fmt(r.ballot.p99Ms)} | ` +
        `${fmt(r.etcd.opsPerSec)}${flag(r.etcd)} | ${fmt(r.etcd.p50Ms)} | ${fmt(r.etcd.p99Ms)} | ` +
        `${r.ratio === null ? 'n/a' : `${formatRatio(r.ratio, 1)} (${head})`} |`
      );
    }),
  ];
  return [
    `etcd ${context.version} and Ballot, 3 members each on this machine, heartbeat ${s.heartbeatMs} ms, election timeout ` +
      `${s.electionTimeoutMs} ms, fsync on. The same client on both: the etcd v3 JSON API over HTTP/1.1 keep-alive, ` +
      `${s.clients} closed-loop clients talking to the leader, ${s.keys} keys of ${s.valueBytes} bytes, every answer checked; ` +
      `${context.rounds} round${context.rounds === 1 ? '' : 's'} of ${s.warmupMs} ms warm-up + ${s.durationMs} ms per cell, cells interleaved, medians across rounds. ` +
      `Failover: ${context.failoverKills} leader SIGKILL${context.failoverKills === 1 ? '' : 's'} per system, interleaved. Ratio: Ballot/etcd of ops/s (above 1: Ballot faster) ` +
      `and of the failover p50 (above 1: Ballot slower).`,
    '',
    ...table,
    '',
    'A linearizable get costs a ReadIndex round (the leader confirms with a quorum that it still leads, Raft thesis §6.4) ' +
      'before it answers; a serializable get answers from the member\'s own store, so it is cheaper and may be stale.',
  ].join('\n');
}

/** Starting and stopping two clusters, preloading the keys. */
const SETUP_MS = 12_000;
/** Catch-up check, connecting and draining, per cell. */
const CELL_OVERHEAD_MS = 1500;

export function estimateEtcdMs(settings: TradeoffSettings): number {
  if (!settings.etcd) return 0;
  const cells = etcdRounds(settings) * ETCD_OP_METRICS.length * 2;
  return SETUP_MS + cells * (settings.warmupMs + settings.durationMs + CELL_OVERHEAD_MS) + settings.etcdFailoverKills * 2 * failoverCycleMs(settings.electionTimeoutMs);
}

/** One cell: waits until every member caught up, opens the JSON client to the leader, runs the closed loop. */
async function measureCell(cluster: EtcdCluster, system: EtcdSystem, op: KvOp, settings: TradeoffSettings): Promise<ClosedLoopResult> {
  await cluster.waitCaughtUp(60_000);
  const access = new JsonKvAccess({
    label: system,
    endpoints: [cluster.clientAddress(await cluster.waitForLeader(30_000))],
    clients: settings.clients,
    valueBytes: settings.valueBytes,
  });
  try {
    await access.warm();
    const operation = await cellOperation(access, op, settings.clients, settings.keys);
    return await runClosedLoop({ concurrency: settings.clients, warmupMs: settings.warmupMs, durationMs: settings.durationMs, op: operation });
  } finally {
    await access.close();
  }
}

/** etcd: Ballot and a real etcd, the same client and workload, interleaved; put, linearizable get, serializable get, failover. */
export async function runEtcdSection(settings: TradeoffSettings, io: TradeoffIo): Promise<EtcdSectionResult> {
  const detected = await etcdOf(settings);
  if (!detected.found) {
    const why = settings.etcd ? 'etcd not installed' : '--no-etcd';
    io.progress.note(`etcd: skipped (${detected.reason})`);
    return { section: 'etcd', found: false, reason: detected.reason, markdown: `skipped: ${why} (${detected.reason}).` };
  }
  const spec: ClusterSpec = {
    io,
    settings,
    workDir: join(io.workDir, 'etcd'),
    heartbeatMs: settings.heartbeatMs,
    electionTimeoutMs: settings.electionTimeoutMs,
  };
  const clusters = [
    { name: 'ballot' as const, cluster: ballotCluster(spec) },
    { name: 'etcd' as const, cluster: etcdCluster(spec, detected.binary) },
  ];
  const rounds = etcdRounds(settings);
  const records: EtcdCellRecord[] = [];
  let subjects: FailoverSubject[] = [];
  try {
    subjects = await startSubjects(clusters, io, 'etcd');
    const broken = subjects.find((s) => s.broken !== null);
    if (broken !== undefined) throw new Error(`${broken.name}: ${broken.broken ?? ''}`);

    for (const { name, cluster } of clusters) {
      io.progress.stage(`etcd: ${name}: preloading ${settings.keys} keys of ${settings.valueBytes} bytes`);
      const access = new JsonKvAccess({
        label: name,
        endpoints: [cluster.clientAddress(await cluster.waitForLeader(30_000))],
        clients: 32,
        valueBytes: settings.valueBytes,
      });
      try {
        await preload(access, settings.keys, 32, 32);
        await access.modRevisions(KEY_PREFIX, settings.keys); // every key is there
      } finally {
        await access.close();
      }
    }

    const cellMs = settings.warmupMs + settings.durationMs + CELL_OVERHEAD_MS;
    const total = rounds * ETCD_OP_METRICS.length * clusters.length;
    let cellNo = 0;
    let slot = 0;
    for (let round = 1; round <= rounds; round++) {
      for (const { metric, op } of ETCD_OP_METRICS) {
        const order = slot++ % 2 === 0 ? clusters : [...clusters].reverse();
        for (const { name, cluster } of order) {
          cellNo++;
          io.progress.stage(`etcd: round ${round}/${rounds} ${name} ${ETCD_METRIC_TITLES[metric]} (cell ${cellNo}/${total})`, (total - cellNo + 1) * cellMs);
          let result: ClosedLoopResult;
          try {
            result = await measureCell(cluster, name, op, settings);
          } catch (err) {
            io.progress.note(`etcd: ${name} ${metric} round ${round} could not run: ${err instanceof Error ? err.message : String(err)}`);
            result = failedResult(settings.clients, 'CELL_FAILED');
          }
          records.push({ system: name, metric, round, result, loadAverage1m: loadavg()[0] ?? 0 });
          if (result.errors > 0) io.progress.note(`etcd: ${name} ${metric} round ${round}: ${result.errors} errors ${JSON.stringify(result.errorsByCode)}`);
        }
      }
    }

    if (settings.etcdFailoverKills > 0) {
      await killInterleaved(subjects, settings.etcdFailoverKills, io, 'etcd failover', failoverCycleMs(settings.electionTimeoutMs));
    }
  } catch (err) {
    // A cluster that cannot start is reported, not fatal to the bench: the section says why.
    const reason = `the comparison could not run: ${err instanceof Error ? err.message : String(err)}`;
    io.progress.note(`etcd: ${reason}`);
    return { section: 'etcd', found: false, reason, markdown: `not measured: ${reason}` };
  } finally {
    await Promise.all(clusters.map((c) => c.cluster.stop()));
  }

  const side = (name: EtcdSystem): FailoverSubject | undefined => subjects.find((s) => s.name === name);
  const b = side('ballot');
  const e = side('etcd');
  const failover = settings.etcdFailoverKills > 0 && b !== undefined && e !== undefined ? { ballot: subjectDistribution(b), etcd: subjectDistribution(e) } : null;
  const rows = etcdComparisonRows(records, failover);
  for (const r of rows) {
    io.progress.note(
      `etcd: ${ETCD_METRIC_TITLES[r.metric]}: Ballot ${fmt(r.metric === 'failover' ? r.ballot.p50Ms : r.ballot.opsPerSec)}, ` +
        `etcd ${fmt(r.metric === 'failover' ? r.etcd.p50Ms : r.etcd.opsPerSec)}${r.metric === 'failover' ? ' ms p50' : ' ops/s'}, ratio ${r.ratio === null ? 'n/a' : r.ratio.toFixed(2)}`,
    );
  }
  return {
    section: 'etcd',
    found: true,
    version: detected.version,
    rows,
    markdown: etcdMarkdown(rows, { version: detected.version, rounds, settings, failoverKills: settings.etcdFailoverKills }),
  };
}
