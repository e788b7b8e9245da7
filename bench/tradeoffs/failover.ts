// bench tradeoffs — failover: how long a 3-member cluster cannot take a write after its leader
// dies, for several election timeouts (heartbeat = timeout / 10, as etcd's tuning guide advises).
//
// For each election timeout: a 3-member `ballot kv serve` cluster (every member with --parent-pid,
// so none outlives a killed bench) and, when etcd is installed, a 3-member etcd with the same
// heartbeat and election timeout. The leader is SIGKILLed `failoverKills` times per system,
// interleaved (Ballot kill 1, etcd kill 1, Ballot kill 2, ...), and restarted after each
// measurement. One sample = the time from the SIGKILL to the first write (POST /v3/kv/put over the
// etcd v3 JSON API, the same client code for both) acknowledged by a surviving member
// (bench/raft/failover.ts measureFailover: probes every 5 ms to each survivor).
//
// What it teaches (Raft §5.2, §9.3 of Ongaro's thesis): a follower waits a randomized election
// timeout in [T, 2T] before it campaigns, so the unavailability after a leader crash grows with T;
// a smaller T fails over faster but risks spurious elections when heartbeats are delayed.

import { join } from 'node:path';
import type { ProposeClient } from '../raft/cluster.js';
import { EtcdCluster, detectEtcd, type EtcdClusterOptions, type EtcdDetection } from '../raft/etcd.js';
import { maxProbesInFlight, measureFailover, type FailoverSample } from '../raft/failover.js';
import { percentileOfSorted } from '../raft/latency.js';
import { formatRatio, formatValue } from '../raft/table.js';
import type { FailoverSectionResult, FailoverTimeoutResult, TradeoffIo, TradeoffSettings } from './types.js';

/** Bytes of the value each failover probe writes. */
const PROBE_VALUE_BYTES = 256;

/** Members of every failover cluster (the smallest that survives the loss of its leader). */
export const FAILOVER_MEMBERS = 3;

/** Heartbeat for an election timeout: a tenth of it (etcd's guidance), at least 1 ms. */
export function heartbeatForTimeout(electionTimeoutMs: number): number {
  return Math.max(1, Math.round(electionTimeoutMs / 10));
}

/** The distribution of failover times of one system at one election timeout. */
export interface FailoverDistribution {
  readonly kills: number;
  /** ms from SIGKILL to the first acknowledged write, in the order measured. */
  readonly samplesMs: readonly number[];
  readonly failures: readonly string[];
  readonly minMs: number | null;
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

/** Ballot's figures (the contract's fields) plus min/p90 and etcd side by side at the same timeout. */
export interface FailoverTimeoutDetail extends FailoverTimeoutResult {
  readonly minMs: number | null;
  readonly p90Ms: number | null;
  /** etcd at the same heartbeat and election timeout; null when etcd was not measured. */
  readonly etcd: FailoverDistribution | null;
  /** Ballot p50 / etcd p50; null when either is missing. */
  readonly ratioP50: number | null;
}

export interface FailoverSectionDetail extends FailoverSectionResult {
  readonly byTimeout: readonly FailoverTimeoutDetail[];
  /** The etcd reference: its version, or why it was not measured. */
  readonly etcd: EtcdDetection;
}

/** Percentiles (nearest rank) of the successful samples; the failures are listed as reasons. */
export function failoverDistribution(samples: readonly FailoverSample[], extraFailures: readonly string[] = []): FailoverDistribution {
  const samplesMs = samples.flatMap((s) => (s.ok ? [s.ms] : []));
  const failures = [...samples.flatMap((s) => (s.ok ? [] : [`kill of ${s.killed}: ${s.reason}`])), ...extraFailures];
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const pick = (p: number): number | null => (sorted.length === 0 ? null : percentileOfSorted(sorted, p));
  return {
    kills: samples.length,
    samplesMs,
    failures,
    minMs: sorted.length === 0 ? null : (sorted[0] as number),
    p50Ms: pick(50),
    p90Ms: pick(90),
    p99Ms: pick(99),
    maxMs: sorted.length === 0 ? null : (sorted[sorted.length - 1] as number),
  };
}

/** a / b when both are finite numbers and b > 0, else null. */
export function ratioOf(a: number | null, b: number | null): number | null {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return null;
  return a / b;
}

/** Combines Ballot's and etcd's distributions at one timeout into the section's row. */
export function timeoutDetail(
  electionTimeoutMs: number,
  ballot: FailoverDistribution,
  etcd: FailoverDistribution | null,
): FailoverTimeoutDetail {
  return {
    electionTimeoutMs,
    heartbeatMs: heartbeatForTimeout(electionTimeoutMs),
    kills: ballot.kills,
    samplesMs: ballot.samplesMs,
    failures: ballot.failures,
    p50Ms: ballot.p50Ms,
    p99Ms: ballot.p99Ms,
    maxMs: ballot.maxMs,
    minMs: ballot.minMs,
    p90Ms: ballot.p90Ms,
    etcd,
    ratioP50: etcd === null ? null : ratioOf(ballot.p50Ms, etcd.p50Ms),
  };
}

/** The clusters the tradeoff sections compare: Ballot's `kv serve` (etcd's flag names) or etcd itself. */
export interface ClusterSpec {
  readonly io: TradeoffIo;
  readonly settings: TradeoffSettings;
  readonly workDir: string;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
}

/** What both systems' clusters take from a spec: FAILOVER_MEMBERS members with its timing, in its folder. */
function clusterBase(spec: ClusterSpec): Pick<EtcdClusterOptions, 'supervisor' | 'workDir' | 'size' | 'heartbeatMs' | 'electionTimeoutMs'> {
  return {
    supervisor: spec.io.supervisor,
    workDir: spec.workDir,
    size: FAILOVER_MEMBERS,
    heartbeatMs: spec.heartbeatMs,
    electionTimeoutMs: spec.electionTimeoutMs,
  };
}

export function ballotCluster(spec: ClusterSpec): EtcdCluster {
  return new EtcdCluster({
    ...clusterBase(spec),
    system: 'ballot',
    binary: process.execPath,
    argvPrefix: [spec.settings.ballotBin, 'kv', 'serve'],
    readinessPath: '/health',
    extraArgs: ['--log-level', spec.settings.logLevel, '--parent-pid', String(spec.io.parentPid)],
  });
}

export function etcdCluster(spec: ClusterSpec, binary: string): EtcdCluster {
  return new EtcdCluster({ ...clusterBase(spec), binary });
}

/** The etcd reference of a tradeoff run: detected unless the settings turn it off. */
export async function etcdOf(settings: TradeoffSettings): Promise<EtcdDetection> {
  return settings.etcd ? await detectEtcd(settings.etcdBin) : { found: false, reason: 'skipped (--no-etcd)' };
}

/** Expected length of one kill cycle: settle, election (mean 1.5 T), restart and catch-up of the killed member. */
export function failoverCycleMs(electionTimeoutMs: number): number {
  return Math.round(electionTimeoutMs * 1.5 + 2500);
}

/** Starting a pair of 3-member clusters and stopping them. */
const CLUSTER_PAIR_OVERHEAD_MS = 8000;

export function estimateFailoverMs(settings: TradeoffSettings): number {
  const systems = settings.etcd ? 2 : 1;
  return settings.electionTimeoutsMs.reduce(
    (sum, t) => sum + CLUSTER_PAIR_OVERHEAD_MS + settings.failoverKills * systems * failoverCycleMs(t),
    0,
  );
}

/** A started cluster with its failover probe client. */
export interface FailoverSubject {
  readonly name: 'ballot' | 'etcd';
  readonly cluster: EtcdCluster;
  client: ProposeClient | null;
  readonly samples: FailoverSample[];
  /** Set when the cluster cannot go on (start-up failed, a member did not come back): no more kills. */
  broken: string | null;
}

/** Starts each cluster in turn and waits for its leader; a cluster that cannot start is marked broken (the others go on). */
export async function startSubjects(
  clusters: readonly { readonly name: 'ballot' | 'etcd'; readonly cluster: EtcdCluster }[],
  io: TradeoffIo,
  label: string,
): Promise<FailoverSubject[]> {
  const subjects: FailoverSubject[] = clusters.map((c) => ({ ...c, client: null, samples: [], broken: null }));
  for (const s of subjects) {
    io.progress.stage(`${label}: starting ${s.name} (${FAILOVER_MEMBERS} members)`);
    try {
      await s.cluster.start();
      await s.cluster.waitForLeader(30_000);
    } catch (err) {
      s.broken = `start-up failed: ${err instanceof Error ? err.message : String(err)}`;
      io.progress.note(`${label}: ${s.name} ${s.broken}`);
    }
  }
  return subjects;
}

/**
 * Interleaved kills: kill k of each subject in turn, k = 1..kills (samples appended to
 * subject.samples). A subject whose measurement throws (a member did not come back, no leader) is
 * measured no further; the others go on. Opens the probe clients and closes them again.
 */
export async function killInterleaved(subjects: readonly FailoverSubject[], kills: number, io: TradeoffIo, label: string, cycleMs: number): Promise<void> {
  try {
    for (const s of subjects) {
      if (s.broken !== null) continue;
      try {
        s.client = await s.cluster.openClient(2 * maxProbesInFlight(), PROBE_VALUE_BYTES);
      } catch (err) {
        s.broken = `no client: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
    for (let k = 1; k <= kills; k++) {
      for (const [i, s] of subjects.entries()) {
        if (s.broken !== null || s.client === null) continue;
        io.progress.stage(`${label}: ${s.name} kill ${k}/${kills}`, ((kills - k + 1) * subjects.length - i) * cycleMs);
        try {
          const sample = await measureFailover(s.cluster, s.client);
          s.samples.push(sample);
          if (!sample.ok) io.progress.note(`${label}: ${s.name} kill ${k}: ${sample.reason}`);
        } catch (err) {
          s.broken = `kill ${k}: ${err instanceof Error ? err.message : String(err)}`;
          io.progress.note(`${label}: ${s.name} not measured further: ${s.broken}`);
        }
      }
    }
  } finally {
    for (const s of subjects) {
      await s.client?.close();
      s.client = null;
    }
  }
}

/** The distribution of one subject's samples, its breakage listed among the failures. */
export function subjectDistribution(s: FailoverSubject): FailoverDistribution {
  return failoverDistribution(s.samples, s.broken === null ? [] : [s.broken]);
}

const fmt = (ms: number | null): string => (ms === null ? 'n/a' : formatValue(ms));

/** The section's markdown: one row per election timeout, Ballot's distribution, etcd's, the ratio of the medians. */
export function failoverMarkdown(byTimeout: readonly FailoverTimeoutDetail[], etcd: EtcdDetection): string {
  const withEtcd = etcd.found;
  const head = [
    '| election timeout | heartbeat | Ballot samples | min | p50 | p90 | max |' + (withEtcd ? ' etcd samples | etcd p50 | etcd p90 | etcd max | Ballot/etcd p50 |' : ''),
    '|---:|---:|---:|---:|---:|---:|---:|' + (withEtcd ? '---:|---:|---:|---:|---:|' : ''),
  ];
  const rows = byTimeout.map((r) => {
    const e = r.etcd;
    const ballot = `| ${r.electionTimeoutMs} ms | ${r.heartbeatMs} ms | ${r.samplesMs.length}/${r.kills} | ${fmt(r.minMs)} | ${fmt(r.p50Ms)} | ${fmt(r.p90Ms)} | ${fmt(r.maxMs)} |`;
    if (!withEtcd) return ballot;
    const etcdCells =
      e === null
        ? ' n/a | n/a | n/a | n/a | n/a |'
        : ` ${e.samplesMs.length}/${e.kills} | ${fmt(e.p50Ms)} | ${fmt(e.p90Ms)} | ${fmt(e.maxMs)} | ${formatRatio(r.p50Ms, e.p50Ms)} |`;
    return ballot + etcdCells;
  });
  const failures = byTimeout.flatMap((r) => [
    ...r.failures.map((f) => `- Ballot, timeout ${r.electionTimeoutMs} ms: ${f}`),
    ...(r.etcd?.failures ?? []).map((f) => `- etcd, timeout ${r.electionTimeoutMs} ms: ${f}`),
  ]);
  return [
    `Leader SIGKILLed, then the time until a surviving member acknowledges a write (POST /v3/kv/put over the etcd v3 JSON API, ` +
      `probes every 5 ms to each survivor), in ms; the killed member is restarted after each sample. ${FAILOVER_MEMBERS} members, ` +
      `heartbeat = election timeout / 10. ` +
      (withEtcd ? `etcd ${etcd.version} with the same timing, kills interleaved with Ballot's.` : `etcd: ${etcd.reason}.`),
    '',
    ...head,
    ...rows,
    ...(failures.length === 0 ? [] : ['', 'Kills without a sample:', ...failures]),
    '',
    'A follower campaigns after a randomized election timeout in [T, 2T] (Raft §5.2), so a leader crash costs about ' +
      '1-2 T of write unavailability plus one round of voting: lowering T shortens failover, at the price of spurious ' +
      'elections when a heartbeat is late (a loaded machine, a GC pause).',
  ].join('\n');
}

/** failover: SIGKILL the leader `failoverKills` times per election timeout, Ballot and (when installed) etcd, interleaved. */
export async function runFailoverSection(settings: TradeoffSettings, io: TradeoffIo): Promise<FailoverSectionDetail> {
  const etcd = await etcdOf(settings);
  io.progress.note(`failover: ${etcd.found ? `etcd ${etcd.version} side by side` : `etcd not measured (${etcd.reason})`}`);
  const byTimeout: FailoverTimeoutDetail[] = [];
  for (const timeoutMs of settings.electionTimeoutsMs) {
    const spec: ClusterSpec = {
      io,
      settings,
      workDir: join(io.workDir, 'failover', `timeout-${timeoutMs}ms`),
      heartbeatMs: heartbeatForTimeout(timeoutMs),
      electionTimeoutMs: timeoutMs,
    };
    const clusters = [
      { name: 'ballot' as const, cluster: ballotCluster(spec) },
      ...(etcd.found ? [{ name: 'etcd' as const, cluster: etcdCluster(spec, etcd.binary) }] : []),
    ];
    const label = `failover T=${timeoutMs} ms`;
    let subjects: FailoverSubject[] = [];
    try {
      subjects = await startSubjects(clusters, io, label);
      await killInterleaved(subjects, settings.failoverKills, io, label, failoverCycleMs(timeoutMs));
    } finally {
      await Promise.all(clusters.map((c) => c.cluster.stop()));
    }
    const dist = (name: 'ballot' | 'etcd'): FailoverDistribution | null => {
      const s = subjects.find((x) => x.name === name);
      return s === undefined ? null : subjectDistribution(s);
    };
    const row = timeoutDetail(timeoutMs, dist('ballot') ?? failoverDistribution([], ['not measured']), dist('etcd'));
    byTimeout.push(row);
    io.progress.note(
      `${label}: Ballot p50 ${fmt(row.p50Ms)} ms (${row.samplesMs.length}/${row.kills})` +
        (row.etcd === null ? '' : `, etcd p50 ${fmt(row.etcd.p50Ms)} ms (${row.etcd.samplesMs.length}/${row.etcd.kills}), ratio ${formatRatio(row.p50Ms, row.etcd.p50Ms)}`),
    );
  }
  return { section: 'failover', nodes: FAILOVER_MEMBERS, byTimeout, etcd, markdown: failoverMarkdown(byTimeout, etcd) };
}
