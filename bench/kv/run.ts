// bench:kv — Ballot's key-value store against a real etcd, side by side, in one run on this machine.
//
//   node bench/dist/kv/run.js [--quick] [--duration-ms 5000] [--warmup-ms 1000] [--rounds 3]
//        [--clients 1,64,256] [--ops put,get,sget,txn] [--keys 1000] [--target leader|spread]
//        [--native-connections 1] [--no-etcd] [--no-ballot] [--no-native]
//
// 1. A 3-member etcd and 3 `ballot kv serve` processes (etcd's flag names), loopback, free ports,
//    the same heartbeat and election timeout; 1000 keys preloaded with 256-byte values on each.
// 2. The same closed-loop client (access.ts: worker w cycles through the keys it owns) drives
//    etcd and Ballot over the same etcd v3 JSON API (keep-alive HTTP agents, same code), and
//    Ballot over its native protocol (KvClient): put, linearizable get, serializable get, txn
//    (compare mod_revision then put, Kubernetes' update), at each client count.
// 3. Cells are interleaved: for each (round, operation, clients) every system runs one window,
//    in an order that rotates, so a noisy machine affects all sides alike; medians across rounds.
// Every answer is checked; failed requests are counted per cell by code and the cell is flagged.
// Prints a table (ops/s, p50, p99, ratio to etcd), the members' CPU per operation, and writes JSON
// to bench/results/kv-<timestamp>.json.
//
// What is the same on both sides: the client code and its keep-alive agents (one socket per
// client), the member the JSON clients talk to (the leader by default), heartbeat and election
// timeout, log level warn, fsync on. What differs: etcd runs with --pre-vote (Ballot's Raft core
// pre-votes by default); the native client (one pipelined WebSocket, a session on every write, the
// client's own leader discovery and retries) has no etcd counterpart here (etcd's is gRPC). The
// bench client is one Node process: its CPU per cell is printed, since at high client counts on
// a small machine it can cap both sides.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { promisify } from 'node:util';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  addClusterOptions,
  etcdReference,
  exitAfter,
  machineInfo,
  machineLine,
  positiveInt,
  resultsHeader,
  runMain,
  startBenchRun,
  writeResults,
  type ClusterSettings,
} from '../raft/cli-common.js';
import { EtcdCluster } from '../raft/etcd.js';
import { BenchRequestError } from '../raft/cluster.js';
import { runClosedLoop, type ClosedLoopResult } from '../raft/load.js';
import { processCpuMs } from '../raft/supervisor.js';
import { cellOperation, preload, type KvAccess } from './access.js';
import { JsonKvAccess, type Endpoint } from './json-access.js';
import { loadKvClient, NativeKvAccess, type NativeClientFactory } from './native-access.js';
import { cellFigures, cpuTable, errorLines, failedResult, kvTable, KV_SYSTEM_TITLES, type CellRecord, type KvSystem } from './report.js';
import { KV_OP_LABELS, KV_OPS, parseOps, type KvOp } from './workload.js';

interface Settings extends ClusterSettings {
  readonly quick: boolean;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly rounds: number;
  readonly clients: readonly number[];
  readonly ops: readonly KvOp[];
  readonly keys: number;
  readonly target: 'leader' | 'spread';
  readonly nativeConnections: number;
  readonly ballot: boolean;
  readonly native: boolean;
}

const intList = (value: string): number[] => value.split(',').map((v) => positiveInt(v.trim()));
const opList = (value: string): KvOp[] => {
  try {
    return parseOps(value);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
};

function parseSettings(argv: readonly string[]): Settings {
  const program = new Command('bench:kv')
    .description("Ballot's key-value store vs a real etcd on this machine: the same closed-loop client over etcd's JSON API, and Ballot's native protocol")
    .option('--quick', 'a short smoke run: --duration-ms 2000 --warmup-ms 500 --rounds 1 (explicit flags win)', false)
    .option('--duration-ms <ms>', 'measurement window of each cell', positiveInt, 5000)
    .option('--warmup-ms <ms>', 'warm-up before each window (not measured)', positiveInt, 1000)
    .option('--rounds <n>', 'rounds of every cell; medians across rounds are reported', positiveInt, 3)
    .option('--clients <list>', 'closed-loop client counts', intList, [1, 64, 256])
    .option('--ops <list>', `operations: ${KV_OPS.map((o) => `${o} = ${KV_OP_LABELS[o]}`).join(', ')}`, opList, [...KV_OPS])
    .option('--keys <n>', 'keys preloaded (256-byte values by default) and cycled through', positiveInt, 1000)
    .addOption(
      new Option('--target <where>', 'JSON clients talk to the leader, or spread over every member (worker w -> member w mod 3)')
        .choices(['leader', 'spread'])
        .default('leader'),
    )
    .option('--native-connections <n>', 'KvClients (WebSockets) the native workers share; requests are pipelined', positiveInt, 1)
    .option('--no-native', "skip Ballot's native protocol");
  addClusterOptions(program, 'warn').option('--no-ballot', 'skip Ballot (to check the harness against etcd alone)');
  program.parse([...argv], { from: 'user' });
  const o = program.opts<Settings>();
  const quickDefault = <T>(key: string, quickValue: T, value: T): T =>
    o.quick && program.getOptionValueSource(key) !== 'cli' ? quickValue : value;
  const s: Settings = {
    ...o,
    durationMs: quickDefault('durationMs', 2000, o.durationMs),
    warmupMs: quickDefault('warmupMs', 500, o.warmupMs),
    rounds: quickDefault('rounds', 1, o.rounds),
  };
  const tooMany = s.clients.find((c) => c > s.keys);
  if (tooMany !== undefined) throw new InvalidArgumentError(`--clients ${tooMany} exceeds --keys ${s.keys}: every client owns at least one key`);
  return s;
}

/** Whether `ballot kv serve` exists in the built CLI (it lands during issue 4), or why not. */
async function detectBallotKv(s: Settings): Promise<{ readonly found: true } | { readonly found: false; readonly reason: string }> {
  if (!s.ballot) return { found: false, reason: 'skipped (--no-ballot)' };
  if (!existsSync(s.ballotBin)) return { found: false, reason: `${s.ballotBin} not found: build first (npm run build), or pass --ballot-bin` };
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [s.ballotBin, 'kv', 'serve', '--help'], { timeout: 15_000 });
    // An unknown command prints the top-level help (exit 0): look for etcd's flags in the answer.
    if (!stdout.includes('--initial-cluster')) return { found: false, reason: `'${s.ballotBin}' has no 'kv serve' command yet` };
    return { found: true };
  } catch (err) {
    return { found: false, reason: `'ballot kv serve --help' failed (${err instanceof Error ? err.message.split('\n')[0] : String(err)})` };
  }
}

/** Seconds of overhead per cell besides warm-up and window (catch-up check, connecting, drain). */
const CELL_OVERHEAD_MS = 1500;

function expectedDurationMs(s: Settings, clusters: number, systems: number): number {
  const cells = s.rounds * s.ops.length * s.clients.length * systems;
  return 5000 + clusters * 15_000 + cells * (s.warmupMs + s.durationMs + CELL_OVERHEAD_MS);
}

async function main(): Promise<void> {
  const s = parseSettings(process.argv.slice(2));
  const run = startBenchRun('ballot-bench-kv-', s.keepData);
  const { progress, supervisor, workDir } = run;

  const etcd = await etcdReference(s);
  const ballot = await detectBallotKv(s);
  const native: { readonly found: true; readonly factory: NativeClientFactory } | { readonly found: false; readonly reason: string } =
    !ballot.found
      ? { found: false, reason: 'Ballot not measured' }
      : s.native
        ? await loadKvClient()
        : { found: false, reason: 'skipped (--no-native)' };
  const systems: KvSystem[] = [
    ...(etcd.found ? (['etcd'] as const) : []),
    ...(ballot.found ? (['ballot'] as const) : []),
    ...(native.found ? (['ballot-native'] as const) : []),
  ];
  if (systems.length === 0) throw new Error('nothing to measure: etcd unavailable and Ballot skipped or unavailable');
  const clusterCount = (etcd.found ? 1 : 0) + (ballot.found ? 1 : 0);
  const expectedMs = expectedDurationMs(s, clusterCount, systems.length);
  const hardLimitMs = expectedMs * 2 + 120_000;
  progress.note(
    `bench:kv: ${s.rounds} round(s) x ops ${s.ops.join(',')} x clients ${s.clients.join(',')} x ${systems.length} system(s), ` +
      `each cell ${s.warmupMs} ms warm-up + ${s.durationMs} ms; expected about ${Math.ceil(expectedMs / 60_000)} min ` +
      `(stops itself after ${Math.ceil(hardLimitMs / 60_000)} min)`,
  );
  progress.note(etcd.found ? `reference: etcd ${etcd.version} (${etcd.binary})` : `reference: NONE — ${etcd.reason}`);
  if (!ballot.found) progress.note(`Ballot: NOT MEASURED — ${ballot.reason}`);
  else if (!native.found) progress.note(`Ballot native protocol: NOT MEASURED — ${native.reason}`);
  progress.note(`work dir: ${workDir}`);
  exitAfter(hardLimitMs, `bench:kv: hard time limit of ${Math.ceil(hardLimitMs / 60_000)} min reached`);

  const startedAt = new Date();
  const loadStart = loadavg();
  const common = {
    supervisor,
    workDir,
    size: 3,
    heartbeatMs: s.tickMs * s.heartbeatTicks,
    electionTimeoutMs: s.tickMs * s.electionTicks,
  };
  const clusters = new Map<'etcd' | 'ballot', EtcdCluster>();
  if (etcd.found) clusters.set('etcd', new EtcdCluster({ ...common, binary: etcd.binary }));
  if (ballot.found) {
    clusters.set(
      'ballot',
      new EtcdCluster({
        ...common,
        system: 'ballot',
        binary: process.execPath,
        argvPrefix: [s.ballotBin, 'kv', 'serve'],
        readinessPath: '/health',
        extraArgs: ['--log-level', s.logLevel],
      }),
    );
  }
  for (const [name, c] of clusters) {
    progress.stage(`starting ${name} (3 members)`);
    await c.start();
    await c.waitForLeader(30_000);
  }

  const endpointsOf = async (c: EtcdCluster): Promise<Endpoint[]> =>
    s.target === 'leader' ? [c.clientAddress(await c.waitForLeader(30_000))] : c.members.map((m) => c.clientAddress(m));
  const clientUrls = (c: EtcdCluster): string[] =>
    c.members.map((m) => {
      const { host, port } = c.clientAddress(m);
      return `http://${host}:${port}`;
    });

  for (const [name, c] of clusters) {
    progress.stage(`${name}: preloading ${s.keys} keys of ${s.payloadBytes} bytes`);
    const access = new JsonKvAccess({ label: name, endpoints: await endpointsOf(c), clients: 32, valueBytes: s.payloadBytes });
    try {
      await preload(access, s.keys, 32, 32);
      await access.modRevisions('bench/kv/', s.keys); // every key is there
    } finally {
      await access.close();
    }
  }

  const clusterOf = (system: KvSystem): EtcdCluster => {
    const c = clusters.get(system === 'etcd' ? 'etcd' : 'ballot');
    if (c === undefined) throw new Error(`no cluster for ${system}`);
    return c;
  };
  const openAccess = async (system: KvSystem, clients: number): Promise<KvAccess> => {
    const c = clusterOf(system);
    if (system === 'ballot-native') {
      if (!native.found) throw new Error('native client not available');
      return NativeKvAccess.open(native.factory, clientUrls(c), {
        workers: clients,
        connections: s.nativeConnections,
        valueBytes: s.payloadBytes,
      });
    }
    const access = new JsonKvAccess({ label: system, endpoints: await endpointsOf(c), clients, valueBytes: s.payloadBytes });
    await access.warm();
    return access;
  };
  const cpuOf = (c: EtcdCluster): number | null => {
    let total = 0;
    for (const pid of c.pids().values()) {
      const ms = processCpuMs(pid);
      if (ms === null) return null;
      total += ms;
    }
    return total;
  };

  const measureCell = async (
    system: KvSystem,
    op: KvOp,
    clients: number,
    label: string,
  ): Promise<{ readonly result: ClosedLoopResult; readonly serverCpuMs: number | null }> => {
    const c = clusterOf(system);
    progress.stage(label, s.warmupMs + s.durationMs + CELL_OVERHEAD_MS);
    await c.waitCaughtUp(60_000);
    const access = await openAccess(system, clients);
    let cpuBefore: number | null = null;
    let serverCpuMs: number | null = null;
    try {
      const operation = await cellOperation(access, op, clients, s.keys);
      const result = await runClosedLoop({
        concurrency: clients,
        warmupMs: s.warmupMs,
        durationMs: s.durationMs,
        op: operation,
        onWindowStart: () => {
          cpuBefore = cpuOf(c);
        },
        onWindowEnd: () => {
          const after = cpuOf(c);
          serverCpuMs = cpuBefore === null || after === null ? null : after - cpuBefore;
        },
      });
      return { result, serverCpuMs };
    } finally {
      await access.close();
    }
  };

  const disabled = new Map<KvSystem, string>();
  const records: CellRecord[] = [];
  const cellMs = s.warmupMs + s.durationMs + CELL_OVERHEAD_MS;
  const totalCells = s.rounds * s.ops.length * s.clients.length * systems.length;
  let cellNo = 0;
  let slot = 0;
  for (let round = 1; round <= s.rounds; round++) {
    for (const op of s.ops) {
      for (const clients of s.clients) {
        // Rotate the order of systems from one slot to the next.
        const order = systems.map((_, i) => systems[(i + slot) % systems.length] as KvSystem);
        slot++;
        for (const system of order) {
          cellNo++;
          const label = `round ${round}/${s.rounds} ${KV_SYSTEM_TITLES[system]} ${KV_OP_LABELS[op]} c=${clients} (cell ${cellNo}/${totalCells}, ~${Math.ceil(((totalCells - cellNo + 1) * cellMs) / 60_000)} min left)`;
          const why = disabled.get(system);
          if (why !== undefined) {
            records.push({ system, op, clients, round, result: failedResult(clients, 'NOT_RUN'), serverCpuMs: null, loadAverage1m: loadavg()[0] ?? 0 });
            continue;
          }
          let result: ClosedLoopResult;
          let serverCpuMs: number | null = null;
          try {
            ({ result, serverCpuMs } = await measureCell(system, op, clients, label));
          } catch (err) {
            // The cell could not even start (cluster not caught up, client cannot connect): it is
            // recorded as failed and the system's remaining cells are not run (they show as failed).
            const message = err instanceof Error ? err.message : String(err);
            disabled.set(system, message);
            progress.note(`${label}: FAILED to start, ${KV_SYSTEM_TITLES[system]} is not measured further: ${message}`);
            result = failedResult(clients, err instanceof BenchRequestError ? err.code : 'CELL_FAILED');
          }
          records.push({ system, op, clients, round, result, serverCpuMs, loadAverage1m: loadavg()[0] ?? 0 });
          if (result.measuredMs === 0) continue;
          const flag = result.errors > 0 || result.undrained > 0;
          progress.note(
            `${label}: ${Math.round(result.ackedPerSec)} ops/s, p50 ${result.latency.p50Ms.toFixed(2)} ms, p99 ${result.latency.p99Ms.toFixed(2)} ms, ` +
              `bench client CPU ${Math.round((100 * result.clientCpuMs) / result.measuredMs)}% of a core` +
              (flag ? ` — FLAGGED: ${result.errors} errors ${JSON.stringify(result.errorsByCode)}, ${result.undrained} undrained` : ''),
          );
        }
      }
    }
  }

  progress.stage('stopping clusters');
  for (const c of clusters.values()) await c.stop();
  progress.stop();

  const figures = (system: KvSystem, op: KvOp, clients: number) => cellFigures(records, system, op, clients);
  const table = kvTable(s.ops, s.clients, systems, figures);
  const cpu = cpuTable(s.ops, s.clients, systems, figures);
  const flagged = errorLines(s.ops, s.clients, systems, figures);
  const finishedAt = new Date();
  const lines = [
    '',
    `bench:kv — 3 members each, loopback, ${s.keys} keys, ${s.payloadBytes}-byte values, closed loop; ` +
      `${s.rounds} round(s) x ${s.durationMs} ms windows (after ${s.warmupMs} ms warm-up), medians across rounds`,
    `JSON clients: etcd v3 JSON API, HTTP/1.1 keep-alive, one socket per client, sent to ${s.target === 'leader' ? 'the leader' : 'every member in turn'}` +
      (native.found ? `; native: KvClient, ${s.nativeConnections} pipelined WebSocket(s), leader discovery by the client` : ''),
    `reference: ${etcd.found ? `etcd ${etcd.version}` : `none (${etcd.reason})`}; Ballot: ${ballot.found ? 'ballot kv serve' : `not measured (${ballot.reason})`}` +
      (ballot.found && !native.found ? `; native protocol not measured (${native.reason})` : ''),
    `heartbeat ${common.heartbeatMs} ms, election timeout ${common.electionTimeoutMs} ms on both`,
    machineLine(loadStart),
    '',
    table,
    '',
    cpu,
    '',
    flagged.length === 0 ? 'every request in every window succeeded and passed its checks' : `cells marked "!" had failed requests:\n${flagged.join('\n')}`,
    '',
  ];
  process.stdout.write(lines.join('\n'));

  writeResults(s.resultsDir, 'kv', startedAt, {
    ...resultsHeader('kv', 'kv/run.js', startedAt, finishedAt),
    settings: s,
    machine: machineInfo(loadStart),
    reference: etcd,
    ballot,
    native: native.found ? { found: true } : native,
    clusters: Object.fromEntries([...clusters].map(([name, c]) => [name, c.describe()])),
    figures: Object.fromEntries(
      systems.map((sys) => [
        sys,
        Object.fromEntries(s.ops.map((op) => [op, Object.fromEntries(s.clients.map((c) => [c, figures(sys, op, c)]))])),
      ]),
    ),
    table,
    cpuTable: cpu,
    flagged,
    cells: records,
  });
  run.succeeded = true;
}

runMain('bench:kv', main);
