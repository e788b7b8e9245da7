// bench:raft — Ballot's Raft log against a real etcd cluster, side by side, in one run on this machine.
//
//   node bench/dist/raft/run.js [--quick] [--duration-s 10] [--warmup-s 3] [--rounds 3]
//        [--concurrency 1,16,256] [--kills 20] [--tick-ms 100] [--election-ticks 10] [--no-etcd]
//
// 1. fdatasync cost of this machine's disk (context for commit latency).
// 2. A 3-node Ballot cluster (real `ballot raft node` processes, LevelDB with fsync, ws transport)
//    and, if installed, a 3-member etcd cluster, both on loopback with OS-assigned ports.
// 3. Leader failover, interleaved Ballot/etcd: SIGKILL the leader, time to the first commit
//    acknowledged by the new leader; the killed member is restarted and caught up each time.
// 4. Closed-loop proposers (256-byte payloads) at each concurrency, Ballot and etcd phases
//    interleaved (the order alternates), each phase a warm-up then a fixed measurement window,
//    repeated for several rounds; medians across rounds are reported.
// Prints a table (metric, Ballot, etcd, ratio) and writes JSON to bench/results/raft-<timestamp>.json.

import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { BallotCluster } from './ballot.js';
import {
  addClusterOptions,
  etcdReference,
  exitAfter,
  machineInfo,
  machineLine,
  nonNegativeInt,
  positiveInt,
  requireBallotBin,
  resultsHeader,
  runMain,
  startBenchRun,
  writeResults,
  type ClusterSettings,
} from './cli-common.js';
import type { BenchCluster } from './cluster.js';
import { EtcdCluster } from './etcd.js';
import { maxProbesInFlight, measureFailover, type FailoverSample } from './failover.js';
import { measureFdatasync } from './fsync.js';
import { runClosedLoop } from './load.js';
import { comparisonRows, failoverFigures, throughputFigures, type PhaseRecord, type SystemName } from './report.js';
import { processCpuMs } from './supervisor.js';
import { formatComparison, formatValue } from './table.js';

interface Settings extends ClusterSettings {
  readonly durationS: number;
  readonly warmupS: number;
  readonly rounds: number;
  readonly concurrency: readonly number[];
  readonly kills: number;
  readonly ballot: boolean;
  readonly quick: boolean;
}

const nonNegativeNumber = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a non-negative number');
  return n;
};
const intList = (value: string): number[] => value.split(',').map((v) => positiveInt(v.trim()));

function parseSettings(argv: readonly string[]): Settings {
  const program = new Command('bench:raft')
    .description("Ballot's Raft log vs a real etcd cluster on this machine: throughput, commit latency, failover")
    .option('--quick', 'a short smoke run: --duration-s 3 --warmup-s 1 --rounds 1 --kills 5 (explicit flags win)', false)
    .option('--duration-s <s>', 'measurement window of each phase, seconds', nonNegativeNumber, 10)
    .option('--warmup-s <s>', 'warm-up before each window, seconds', nonNegativeNumber, 3)
    .option('--rounds <n>', 'rounds of every (system, concurrency) phase; medians across rounds are reported', positiveInt, 3)
    .option('--concurrency <list>', 'closed-loop proposer counts', intList, [1, 16, 256])
    .option('--kills <n>', 'leader SIGKILLs per system for the failover measurement', nonNegativeInt, 20);
  addClusterOptions(program, 'info').option('--no-ballot', 'skip Ballot (to check the harness against etcd alone)');
  program.parse([...argv], { from: 'user' });
  const o = program.opts<Settings>();
  const quickDefault = <T>(key: string, quickValue: T, value: T): T =>
    o.quick && program.getOptionValueSource(key) !== 'cli' ? quickValue : value;
  return {
    ...o,
    durationS: quickDefault('durationS', 3, o.durationS),
    warmupS: quickDefault('warmupS', 1, o.warmupS),
    rounds: quickDefault('rounds', 1, o.rounds),
    kills: quickDefault('kills', 5, o.kills),
  };
}

/**
 * The expected duration, stated up front (measured: a failover cycle - kill, election, restart,
 * catch-up - takes about 1.5 election timeouts plus 1.5 s here); the hard limit is twice this plus two minutes.
 */
function expectedDurationMs(s: Settings, systems: number): number {
  const startup = 5000 * systems;
  const failoverCycle = s.tickMs * s.electionTicks * 1.5 + 1500;
  const phase = (s.warmupS + s.durationS) * 1000 + 1000;
  return 5000 + startup + s.kills * systems * failoverCycle + s.rounds * s.concurrency.length * systems * phase;
}

function cpuSnapshot(cluster: BenchCluster): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, pid] of cluster.pids()) {
    const ms = processCpuMs(pid);
    if (ms !== null) out.set(name, ms);
  }
  return out;
}

function rssMb(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? null : Number(m[1]) / 1024;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const s = parseSettings(process.argv.slice(2));
  const run = startBenchRun('ballot-bench-raft-', s.keepData);
  const { progress, supervisor, workDir } = run;

  if (s.ballot) requireBallotBin(s.ballotBin);
  const etcd = await etcdReference(s);
  const systems = (etcd.found ? 1 : 0) + (s.ballot ? 1 : 0);
  if (systems === 0) throw new Error('nothing to measure: Ballot skipped and etcd unavailable');
  const expectedMs = expectedDurationMs(s, systems);
  const hardLimitMs = expectedMs * 2 + 120_000;
  progress.note(
    `bench:raft: ${s.rounds} round(s) x concurrency ${s.concurrency.join(',')} x (${s.warmupS}s warm-up + ${s.durationS}s), ` +
      `${s.kills} leader kills per system; expected duration about ${Math.ceil(expectedMs / 60_000)} min ` +
      `(stops itself after ${Math.ceil(hardLimitMs / 60_000)} min)`,
  );
  progress.note(etcd.found ? `reference: etcd ${etcd.version} (${etcd.binary})` : `reference: NONE — ${etcd.reason}`);
  progress.note(`work dir: ${workDir}`);
  exitAfter(hardLimitMs, `bench:raft: hard time limit of ${Math.ceil(hardLimitMs / 60_000)} min reached`);

  const startedAt = new Date();
  const loadStart = loadavg();

  progress.stage('fdatasync cost');
  const fsyncStart = measureFdatasync(workDir);

  const electionTimeoutMs = s.tickMs * s.electionTicks;
  const clusters: BenchCluster[] = [];
  if (s.ballot) {
    clusters.push(
      new BallotCluster({
        supervisor,
        binPath: s.ballotBin,
        workDir,
        size: 3,
        tickMs: s.tickMs,
        electionTicks: s.electionTicks,
        heartbeatTicks: s.heartbeatTicks,
        logLevel: s.logLevel,
      }),
    );
  }
  if (etcd.found) {
    clusters.push(
      new EtcdCluster({
        supervisor,
        binary: etcd.binary,
        workDir,
        size: 3,
        heartbeatMs: s.tickMs * s.heartbeatTicks,
        electionTimeoutMs,
      }),
    );
  }
  for (const c of clusters) {
    progress.stage(`starting ${c.system} (3 members)`);
    await c.start();
    await c.waitForLeader(30_000);
  }

  // Failover, interleaved: one kill of each system in turn.
  const failovers = new Map<SystemName, FailoverSample[]>(clusters.map((c) => [c.system, []]));
  if (s.kills > 0) {
    const pairs = await Promise.all(
      clusters.map(async (cluster) => ({ cluster, client: await cluster.openClient(2 * maxProbesInFlight(), s.payloadBytes) })),
    );
    const cycleMs = electionTimeoutMs * 1.5 + 1500;
    for (let k = 1; k <= s.kills; k++) {
      for (const [i, { cluster, client }] of pairs.entries()) {
        progress.stage(
          `failover ${cluster.system}: kill ${k}/${s.kills}`,
          ((s.kills - k + 1) * pairs.length - i) * cycleMs,
        );
        const sample = await measureFailover(cluster, client);
        failovers.get(cluster.system)?.push(sample);
        if (!sample.ok) progress.note(`failover ${cluster.system} kill ${k}: ${sample.reason}`);
      }
    }
    await Promise.all(pairs.map((p) => p.client.close()));
  }

  // Throughput and latency, interleaved and alternating the order.
  const phases: PhaseRecord[] = [];
  const phaseMs = (s.warmupS + s.durationS) * 1000 + 1000;
  const totalPhases = s.rounds * s.concurrency.length * clusters.length;
  let phaseNo = 0;
  for (let round = 1; round <= s.rounds; round++) {
    for (const [ci, concurrency] of s.concurrency.entries()) {
      const order = (round + ci) % 2 === 0 ? clusters : [...clusters].reverse();
      for (const c of order) {
        phaseNo++;
        await c.waitCaughtUp(60_000);
        const client = await c.openClient(concurrency, s.payloadBytes);
        await client.warm(c.members);
        const label = `round ${round}/${s.rounds} ${c.system} c=${concurrency} (phase ${phaseNo}/${totalPhases})`;
        progress.stage(`${label} warm-up`, (totalPhases - phaseNo + 1) * phaseMs);
        let cpuBefore = new Map<string, number>();
        const serverCpuMs: Record<string, number> = {};
        const result = await runClosedLoop({
          concurrency,
          warmupMs: s.warmupS * 1000,
          durationMs: s.durationS * 1000,
          op: (w) => client.propose(w),
          onWindowStart: () => {
            cpuBefore = cpuSnapshot(c);
            progress.stage(`${label} measuring`, (totalPhases - phaseNo) * phaseMs + s.durationS * 1000);
          },
          onWindowEnd: () => {
            for (const [name, ms] of cpuSnapshot(c)) {
              const before = cpuBefore.get(name);
              if (before !== undefined) serverCpuMs[name] = ms - before;
            }
          },
        });
        await client.close();
        phases.push({ system: c.system, round, concurrency, result, serverCpuMs, loadAverage1m: loadavg()[0] ?? 0 });
        if (result.errors > 0) progress.note(`${label}: ${result.errors} errors ${JSON.stringify(result.errorsByCode)}`);
      }
    }
  }

  const rss: Record<string, Record<string, number | null>> = {};
  for (const c of clusters) {
    rss[c.system] = Object.fromEntries([...c.pids()].map(([name, pid]) => [name, rssMb(pid)]));
  }
  progress.stage('stopping clusters');
  for (const c of clusters) await c.stop();
  progress.stage('fdatasync cost, again');
  const fsyncEnd = measureFdatasync(workDir);
  progress.stop();

  // Report.
  const rows = comparisonRows(
    s.concurrency,
    (system, concurrency) => throughputFigures(phases, system, concurrency),
    (system) => failoverFigures(failovers.get(system) ?? []),
  );
  const table = formatComparison('Ballot', 'etcd', rows);
  const finishedAt = new Date();
  const lines = [
    '',
    `bench:raft — 3 members each, loopback, ${s.payloadBytes}-byte proposals, closed loop; ` +
      `${s.rounds} round(s) x ${s.durationS}s windows (after ${s.warmupS}s warm-up), medians across rounds`,
    `reference: ${etcd.found ? `etcd ${etcd.version}, JSON gateway POST /v3/kv/put, keep-alive HTTP/1.1` : `none (${etcd.reason})`}`,
    `election timeout: Ballot ${s.electionTicks} ticks x ${s.tickMs} ms = ${electionTimeoutMs} ms (randomized per the core)` +
      (etcd.found ? `; etcd --election-timeout ${electionTimeoutMs} --heartbeat-interval ${s.tickMs * s.heartbeatTicks} --pre-vote` : ''),
    `fdatasync of a ${fsyncStart.writeBytes}-byte write on this disk (${fsyncStart.latency.count} samples before / after the run): ` +
      `median ${formatValue(fsyncStart.latency.p50Ms)} / ${formatValue(fsyncEnd.latency.p50Ms)} ms, ` +
      `p99 ${formatValue(fsyncStart.latency.p99Ms)} / ${formatValue(fsyncEnd.latency.p99Ms)} ms`,
    machineLine(loadStart),
    `1-minute load average at the end of each phase: ${formatValue(Math.min(...phases.map((p) => p.loadAverage1m)))}` +
      `..${formatValue(Math.max(...phases.map((p) => p.loadAverage1m)))}; failed requests inside windows: ` +
      clusters.map((c) => `${c.system} ${phases.filter((p) => p.system === c.system).reduce((n, p) => n + p.result.errors, 0)}`).join(', '),
    '',
    table,
    '',
  ];
  process.stdout.write(lines.join('\n'));

  writeResults(s.resultsDir, 'raft', startedAt, {
    ...resultsHeader('raft', 'raft/run.js', startedAt, finishedAt),
    settings: s,
    machine: machineInfo(loadStart),
    fdatasync: { beforeRun: fsyncStart, afterRun: fsyncEnd },
    reference: etcd,
    clusters: Object.fromEntries(clusters.map((c) => [c.system, c.describe()])),
    figures: {
      throughput: Object.fromEntries(
        clusters.map((c) => [c.system, Object.fromEntries(s.concurrency.map((k) => [k, throughputFigures(phases, c.system, k)]))]),
      ),
      failover: Object.fromEntries(clusters.map((c) => [c.system, failoverFigures(failovers.get(c.system) ?? [])])),
    },
    rows,
    table,
    memberRssMbAtEnd: rss,
    phases,
    failoverSamples: Object.fromEntries(failovers),
  });
  run.succeeded = true;
}

runMain('bench:raft', main);
