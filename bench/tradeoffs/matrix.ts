// bench tradeoffs, the matrix: what linearizability costs in throughput and latency when nothing
// fails. One fixed mixed workload (a fraction readRatio of reads, the rest puts, keys drawn from a
// seeded PRNG per worker) runs closed loop (bench/raft/load.ts) against real `ballot kv serve`
// clusters (bench/raft/etcd.ts's EtcdCluster in its 'ballot' form) over the etcd v3 JSON API
// (bench/kv/json-access.ts), for every cell of
//
//   read mode {linearizable, lease, serializable} x cluster size {1,3,5,7} x fsync {on,off} x batching {on,off}
//
// and, on 3 members with fsync and batching on, throughput against the number of clients per read
// mode. Read modes map onto the server like this (Raft thesis §6.4): linearizable = ReadIndex
// (--read-mode read-index; the leader confirms it still leads with a heartbeat round before it
// answers), lease = --read-mode lease (§6.4.1: the leader answers alone while its lease holds),
// serializable = the request's serializable flag (any member answers from its own applied state).
// linearizable and serializable share a cluster; lease needs its own (a server flag). Cells that
// need the same server configuration run on one cluster, which is then stopped (by PID) and its
// data removed.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { deriveSeed, SimRandom } from '@ballot/raft';
import { BenchRequestError } from '../raft/cluster.js';
import { EtcdCluster } from '../raft/etcd.js';
import { LatencyRecorder } from '../raft/latency.js';
import { runClosedLoop, type ClosedLoopResult } from '../raft/load.js';
import { processCpuMs } from '../raft/supervisor.js';
import { JsonKvAccess, type Endpoint } from '../kv/json-access.js';
import { KEY_PREFIX, keyName } from '../kv/workload.js';
import { TRADEOFF_READ_MODES, type TradeoffIo, type TradeoffReadMode, type TradeoffSettings } from './types.js';

export const CLUSTER_SIZES = [1, 3, 5, 7] as const;

/** One cell of the matrix: how clients read and how the cluster is configured. */
export interface MatrixCell {
  readonly readMode: TradeoffReadMode;
  readonly nodes: number;
  readonly fsync: boolean;
  readonly batching: boolean;
}

/** What the matrix section measures, on top of the shared settings. */
export interface MatrixSettings {
  readonly readModes: readonly TradeoffReadMode[];
  readonly nodes: readonly number[];
  readonly fsync: readonly boolean[];
  readonly batching: readonly boolean[];
  /** Client counts of the throughput-vs-clients sweep (3 members, fsync and batching on). */
  readonly sweepClients: readonly number[];
  /** Members of the sweep's cluster. */
  readonly sweepNodes: number;
  /** Worker w talks to member w mod N ('spread', as an etcd client balancing its endpoints), or every worker to the leader. */
  readonly target: ClientTarget;
  /** Client placements the sweep is run with (the matrix uses `target`). */
  readonly sweepTargets: readonly ClientTarget[];
}

/** Where closed-loop workers send their requests. */
export type ClientTarget = 'spread' | 'leader';

/** A server configuration: the cells that share one cluster. */
export interface ServerConfig {
  readonly nodes: number;
  readonly fsync: boolean;
  readonly batching: boolean;
  /** --read-mode of every member: lease for lease reads, read-index otherwise. */
  readonly serverReadMode: 'read-index' | 'lease';
}

export const serverConfigOf = (cell: MatrixCell): ServerConfig => ({
  nodes: cell.nodes,
  fsync: cell.fsync,
  batching: cell.batching,
  serverReadMode: cell.readMode === 'lease' ? 'lease' : 'read-index',
});

export const configKey = (c: ServerConfig): string =>
  `n${c.nodes}-fsync-${c.fsync ? 'on' : 'off'}-batch-${c.batching ? 'on' : 'off'}-${c.serverReadMode}`;

export const cellLabel = (c: MatrixCell): string =>
  `${c.readMode}, ${c.nodes} node${c.nodes === 1 ? '' : 's'}, fsync ${c.fsync ? 'on' : 'off'}, batching ${c.batching ? 'on' : 'off'}`;

/** The full cross product, in a stable order (mode, size, fsync, batching). */
export function matrixCells(m: Pick<MatrixSettings, 'readModes' | 'nodes' | 'fsync' | 'batching'>): MatrixCell[] {
  const out: MatrixCell[] = [];
  for (const readMode of m.readModes)
    for (const nodes of m.nodes)
      for (const fsync of m.fsync) for (const batching of m.batching) out.push({ readMode, nodes, fsync, batching });
  return out;
}

/** One closed-loop run of the mixed workload on one cluster. */
export interface MeasureJob {
  readonly kind: 'matrix' | 'sweep';
  readonly cell: MatrixCell;
  readonly clients: number;
  readonly target: ClientTarget;
}

/**
 * Every job, grouped by the server configuration it needs (one cluster start per group). A sweep
 * point with the matrix's own client count on a cell the matrix already measures is not run twice.
 */
export function planJobs(m: MatrixSettings, clients: number): { readonly config: ServerConfig; readonly jobs: readonly MeasureJob[] }[] {
  const groups = new Map<string, { config: ServerConfig; jobs: MeasureJob[] }>();
  const add = (job: MeasureJob): void => {
    const config = serverConfigOf(job.cell);
    const key = configKey(config);
    const g = groups.get(key) ?? { config, jobs: [] };
    groups.set(key, g);
    if (g.jobs.some((j) => sameCell(j.cell, job.cell) && j.clients === job.clients && j.target === job.target)) return;
    g.jobs.push(job);
  };
  for (const cell of matrixCells(m)) add({ kind: 'matrix', cell, clients, target: m.target });
  for (const target of m.sweepTargets)
    for (const readMode of m.readModes)
      for (const c of m.sweepClients) add({ kind: 'sweep', cell: { readMode, nodes: m.sweepNodes, fsync: true, batching: true }, clients: c, target });
  return [...groups.values()];
}

export const sameCell = (a: MatrixCell, b: MatrixCell): boolean =>
  a.readMode === b.readMode && a.nodes === b.nodes && a.fsync === b.fsync && a.batching === b.batching;

/** Milliseconds of overhead per cell besides warm-up and window (connecting, catch-up check, drain). */
const CELL_OVERHEAD_MS = 800;

export function estimateMatrixMs(s: TradeoffSettings, m: MatrixSettings): number {
  let ms = 0;
  for (const g of planJobs(m, s.clients)) {
    ms += 2500 + 600 * g.config.nodes + preloadMs(s.keys, g.config);
    ms += g.jobs.length * (s.warmupMs + s.durationMs + CELL_OVERHEAD_MS);
  }
  return ms;
}

const preloadMs = (keys: number, c: ServerConfig): number => Math.ceil(keys / PRELOAD_TXN_PUTS) * (c.fsync ? 30 : 10);

// ---- figures ----

/** A point of a latency CDF: `fraction` of the acknowledged operations took at most `ms`. */
export interface CdfPoint {
  readonly ms: number;
  readonly fraction: number;
}

export interface CellFigures {
  readonly measuredMs: number;
  /** Acknowledged operations per second (reads + writes) inside the window. */
  readonly opsPerSec: number;
  readonly reads: number;
  readonly writes: number;
  readonly errors: number;
  readonly errorsByCode: Readonly<Record<string, number>>;
  /** Every acknowledged operation, ms (nearest rank). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly readP50Ms: number | null;
  readonly readP99Ms: number | null;
  readonly writeP50Ms: number | null;
  readonly writeP99Ms: number | null;
  /** The latency CDF at CDF_FRACTIONS. */
  readonly cdf: readonly CdfPoint[];
  /** The bench client's own CPU, % of one core: near 100 means the client capped the cell. */
  readonly clientCpuPercent: number;
  /** CPU of all members together over the window, % of one core (null when /proc could not be read). */
  readonly serverCpuPercent: number | null;
  /** Requests still in flight when the drain timed out. */
  readonly undrained: number;
}

export interface MatrixResult extends MatrixCell {
  readonly kind: 'matrix' | 'sweep';
  readonly clients: number;
  readonly target: ClientTarget;
  /** null when the cell could not run (error says why). */
  readonly figures: CellFigures | null;
  readonly error?: string;
}

export interface MatrixSectionResult {
  readonly section: 'matrix';
  readonly settings: MatrixSettings;
  readonly results: readonly MatrixResult[];
  /** Clusters started, with their flags. */
  readonly clusters: readonly { readonly config: string; readonly startMs: number; readonly describe: Readonly<Record<string, unknown>> }[];
}

/** Fractions at which the CDF is sampled: dense in the tail, where the modes differ. */
export const CDF_FRACTIONS: readonly number[] = [
  0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1,
];

/**
 * Latency of operations acknowledged while `measuring` is on, split by kind. Bounded: past
 * maxSamples per kind, LatencyRecorder keeps a uniform reservoir (its stated behaviour).
 */
export class MixedLatency {
  measuring = false;
  readonly reads = new LatencyRecorder({ maxSamples: 500_000 });
  readonly writes = new LatencyRecorder({ maxSamples: 500_000 });
  readonly all = new LatencyRecorder({ maxSamples: 1_000_000 });

  record(kind: 'read' | 'write', ms: number): void {
    if (!this.measuring) return;
    (kind === 'read' ? this.reads : this.writes).record(ms);
    this.all.record(ms);
  }
}

/** Figures of one cell from the closed loop's counts and the split latencies. */
export function cellFigures(loop: ClosedLoopResult, lat: MixedLatency, serverCpuMs: number | null = null): CellFigures {
  const pct = (r: LatencyRecorder, p: number): number | null => (r.count === 0 ? null : r.percentile(p));
  const all = (p: number): number => lat.all.percentile(p); // NaN when nothing was acknowledged
  return {
    measuredMs: loop.measuredMs,
    opsPerSec: loop.ackedPerSec,
    reads: lat.reads.count,
    writes: lat.writes.count,
    errors: loop.errors,
    errorsByCode: loop.errorsByCode,
    p50Ms: all(50),
    p99Ms: all(99),
    p999Ms: all(99.9),
    readP50Ms: pct(lat.reads, 50),
    readP99Ms: pct(lat.reads, 99),
    writeP50Ms: pct(lat.writes, 50),
    writeP99Ms: pct(lat.writes, 99),
    cdf: lat.all.count === 0 ? [] : CDF_FRACTIONS.map((f) => ({ ms: all(f * 100), fraction: f })),
    clientCpuPercent: loop.measuredMs > 0 ? (100 * loop.clientCpuMs) / loop.measuredMs : 0,
    serverCpuPercent: serverCpuMs === null || loop.measuredMs <= 0 ? null : (100 * serverCpuMs) / loop.measuredMs,
    undrained: loop.undrained,
  };
}

// ---- running ----

/** Puts per preload transaction (one Raft entry each: 1000 keys in 10 commits, not 1000). */
const PRELOAD_TXN_PUTS = 100;

/** `kv serve` flags of one server configuration (after the cluster's own etcd-named flags). */
export function serverArgs(c: ServerConfig, s: Pick<TradeoffSettings, 'logLevel'>, parentPid: number): string[] {
  return [
    '--log-level', s.logLevel,
    '--parent-pid', String(parentPid),
    '--read-mode', c.serverReadMode,
    ...(c.fsync ? [] : ['--unsafe-no-fsync']),
    ...(c.batching ? [] : ['--max-batch-entries', '1']),
  ];
}

/** Writes every key of the workload once (valueBytes each), PRELOAD_TXN_PUTS per transaction, then checks they are all there. */
async function preloadKeys(access: JsonKvAccess, keys: number, valueBytes: number): Promise<void> {
  const value = Buffer.alloc(valueBytes, 0x61).toString('base64');
  for (let first = 0; first < keys; first += PRELOAD_TXN_PUTS) {
    const puts: string[] = [];
    for (let i = first; i < Math.min(keys, first + PRELOAD_TXN_PUTS); i++) {
      puts.push(`{"request_put":{"key":"${Buffer.from(keyName(i, keys)).toString('base64')}","value":"${value}"}}`);
    }
    const answer = await access.post(0, '/v3/kv/txn', `{"compare":[],"success":[${puts.join(',')}],"failure":[]}`);
    if (typeof answer !== 'object' || answer === null || (answer as { succeeded?: unknown }).succeeded !== true) {
      throw new BenchRequestError('PRELOAD_FAILED', `preload txn answered ${JSON.stringify(answer).slice(0, 200)}`);
    }
  }
  await access.modRevisions(KEY_PREFIX, keys);
}

/**
 * The mixed workload of one cell: worker w draws, from its own PRNG (seed, w), whether its next
 * operation is a read (probability readRatio) and which key; the same seed gives every cell the
 * same sequence of operations per worker.
 */
export function mixedOperation(
  access: JsonKvAccess,
  readMode: TradeoffReadMode,
  s: Pick<TradeoffSettings, 'seed' | 'readRatio' | 'keys'>,
  clients: number,
  lat: MixedLatency,
): (worker: number) => Promise<void> {
  const rngs = Array.from({ length: clients }, (_, w) => new SimRandom(deriveSeed(s.seed, w)));
  const names = Array.from({ length: s.keys }, (_, i) => keyName(i, s.keys));
  const serializable = readMode === 'serializable';
  return async (w) => {
    const rng = rngs[w] as SimRandom;
    const read = rng.float() < s.readRatio;
    const key = names[Math.floor(rng.float() * names.length)] as string;
    const t0 = performance.now();
    if (read) await access.get(w, key, serializable);
    else await access.put(w, key);
    lat.record(read ? 'read' : 'write', performance.now() - t0);
  };
}

const errorText = (err: unknown): string =>
  err instanceof BenchRequestError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);

/** Runs every cell (one cluster per server configuration, stopped by PID after its cells). */
export async function runMatrixSection(
  s: TradeoffSettings,
  m: MatrixSettings,
  io: TradeoffIo,
  keepData = false,
): Promise<MatrixSectionResult> {
  const groups = planJobs(m, s.clients);
  const total = groups.reduce((n, g) => n + g.jobs.length, 0);
  const cellMs = s.warmupMs + s.durationMs + CELL_OVERHEAD_MS;
  const results: MatrixResult[] = [];
  const clusters: MatrixSectionResult['clusters'][number][] = [];
  let done = 0;
  for (const [gi, g] of groups.entries()) {
    const key = configKey(g.config);
    const dir = join(io.workDir, 'matrix', key);
    const cluster = new EtcdCluster({
      supervisor: io.supervisor,
      binary: process.execPath,
      argvPrefix: [s.ballotBin, 'kv', 'serve'],
      system: 'ballot',
      readinessPath: '/health',
      workDir: dir,
      size: g.config.nodes,
      heartbeatMs: s.heartbeatMs,
      electionTimeoutMs: s.electionTimeoutMs,
      extraArgs: serverArgs(g.config, s, io.parentPid),
    });
    let pending = [...g.jobs];
    try {
      io.progress.stage(`matrix: cluster ${gi + 1}/${groups.length} (${key}): starting ${g.config.nodes} member(s), preloading ${s.keys} keys`);
      const t0 = performance.now();
      await cluster.start();
      const leader = await cluster.waitForLeader(30_000);
      clusters.push({ config: key, startMs: Math.round(performance.now() - t0), describe: cluster.describe() });
      const preloadAccess = new JsonKvAccess({ label: 'ballot', endpoints: [cluster.clientAddress(leader)], clients: 1, valueBytes: s.valueBytes });
      try {
        await preloadKeys(preloadAccess, s.keys, s.valueBytes);
      } finally {
        await preloadAccess.close();
      }
      for (const job of g.jobs) {
        pending = pending.slice(1);
        done++;
        const label = `matrix ${done}/${total}: ${cellLabel(job.cell)}, ${job.clients} client(s)${job.kind === 'sweep' ? ` (sweep, ${job.target === 'leader' ? 'to the leader' : 'spread'})` : ''}`;
        io.progress.stage(label, cellMs);
        try {
          const figures = await measureJob(cluster, job, s);
          results.push({ ...job.cell, kind: job.kind, clients: job.clients, target: job.target, figures });
          io.progress.note(
            `${label}: ${Math.round(figures.opsPerSec)} ops/s, p50 ${figures.p50Ms.toFixed(2)} ms, p99 ${figures.p99Ms.toFixed(2)} ms, ` +
              `p99.9 ${figures.p999Ms.toFixed(2)} ms${figures.errors > 0 ? `, ${figures.errors} errors ${JSON.stringify(figures.errorsByCode)}` : ''}`,
          );
        } catch (err) {
          results.push({ ...job.cell, kind: job.kind, clients: job.clients, target: job.target, figures: null, error: errorText(err) });
          io.progress.note(`${label}: FAILED: ${errorText(err)}`);
        }
      }
    } catch (err) {
      // The cluster did not start or preload: its remaining cells are recorded as failed.
      io.progress.note(`matrix: cluster ${key} FAILED: ${errorText(err)}`);
      for (const job of pending) {
        done++;
        results.push({ ...job.cell, kind: job.kind, clients: job.clients, target: job.target, figures: null, error: `cluster ${key}: ${errorText(err)}` });
      }
    } finally {
      await cluster.stop();
      if (!keepData) rmSync(join(dir, 'ballot'), { recursive: true, force: true }); // data dirs; the logs stay in workDir
    }
  }
  return { section: 'matrix', settings: m, results, clusters };
}

/** CPU time of every running member together (from /proc), or null if one cannot be read. */
function membersCpuMs(cluster: EtcdCluster): number | null {
  let total = 0;
  for (const pid of cluster.pids().values()) {
    const ms = processCpuMs(pid);
    if (ms === null) return null;
    total += ms;
  }
  return total;
}

async function measureJob(cluster: EtcdCluster, job: MeasureJob, s: TradeoffSettings): Promise<CellFigures> {
  await cluster.waitCaughtUp(60_000);
  const endpoints: Endpoint[] =
    job.target === 'leader' ? [cluster.clientAddress(await cluster.waitForLeader(30_000))] : cluster.members.map((n) => cluster.clientAddress(n));
  const access = new JsonKvAccess({ label: 'ballot', endpoints, clients: job.clients, valueBytes: s.valueBytes, requestTimeoutMs: 5000 });
  try {
    await access.warm();
    const lat = new MixedLatency();
    let cpuBefore: number | null = null;
    let serverCpuMs: number | null = null;
    const loop = await runClosedLoop({
      concurrency: job.clients,
      warmupMs: s.warmupMs,
      durationMs: s.durationMs,
      op: mixedOperation(access, job.cell.readMode, s, job.clients, lat),
      drainTimeoutMs: 10_000,
      onWindowStart: () => {
        lat.measuring = true;
        cpuBefore = membersCpuMs(cluster);
      },
      onWindowEnd: () => {
        lat.measuring = false;
        const after = membersCpuMs(cluster);
        serverCpuMs = cpuBefore === null || after === null ? null : after - cpuBefore;
      },
    });
    return cellFigures(loop, lat, serverCpuMs);
  } finally {
    await access.close();
  }
}

/** The read modes in the order tables and plots show them. */
export const READ_MODE_ORDER: readonly TradeoffReadMode[] = TRADEOFF_READ_MODES;
