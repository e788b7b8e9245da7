// bench:raft:memory — do memory and disk stay bounded while a 3-node cluster commits a long stream
// of entries? Ballot with log compaction on (its defaults) and a real etcd cluster, side by side in
// one run on this machine, plus Ballot with compaction effectively off on a shorter stream.
//
//   node bench/dist/raft/memory.js [--quick] [--entries 1000000] [--concurrency 256]
//        [--uncompacted-entries 100000] [--max-minutes 40] [--no-etcd] [--keep-data]
//
// For each system: start 3 members (real processes, real disks, loopback, OS-assigned ports), then
// closed-loop proposers (256-byte payloads) until exactly --entries proposals were acknowledged as
// committed. Every --sample-ms each member's RSS (/proc/PID/status VmRSS) and the disk usage of its
// data directory (allocated blocks, like `du -s`) are sampled; max and final per member are reported.
// "final" is measured after every member applied the last entry and a few idle seconds passed.
// etcd is then defragmented (its bbolt file never shrinks otherwise) and measured again.
// Prints tables (metric, Ballot, etcd, ratio) and writes JSON to bench/results/raft-memory-<timestamp>.json.

import { lstat, readdir } from 'node:fs/promises';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { BallotCluster } from './ballot.js';
import {
  addClusterOptions,
  etcdReference,
  exitAfter,
  machineInfo,
  nonNegativeInt,
  positiveInt,
  requireBallotBin,
  resultsHeader,
  runMain,
  startBenchRun,
  writeResults,
  type ClusterSettings,
} from './cli-common.js';
import { BenchRequestError, getJson, isRecord, postJson, type BenchCluster } from './cluster.js';
import { EtcdCluster } from './etcd.js';
import {
  etaMs,
  formatDuration,
  memoryRows,
  parseVmRssBytes,
  samplesUpTo,
  summarizeMembers,
  type MemberSample,
  type RunFigures,
  type Sample,
} from './memory-stats.js';
import type { Progress } from './progress.js';
import { sleep } from './supervisor.js';
import { formatComparison } from './table.js';

/** Compaction effectively off: thresholds no run of this benchmark reaches. */
const NO_COMPACTION_ARGS = ['--snapshot-entries', '1000000000', '--snapshot-bytes', String(Number.MAX_SAFE_INTEGER)] as const;

/**
 * etcd's settings, chosen to match Ballot's defaults: a snapshot (and in-memory raft log
 * compaction, keeping 5,000 entries for slow followers — etcd's fixed catch-up window, Ballot's
 * default --snapshot-trailing-entries) every 10,000 entries = Ballot's --snapshot-entries default;
 * MVCC history compacted every 10 s keeping 10 s of revisions (periodic mode: etcd 3.4's revision
 * mode only compacts every 5 minutes, i.e. never inside a run this long). WAL retention is etcd's
 * default (--max-wals 5 files of 64 MiB).
 */
const ETCD_ARGS = ['--snapshot-count', '10000', '--auto-compaction-mode', 'periodic', '--auto-compaction-retention', '10s'] as const;

interface Settings extends ClusterSettings {
  readonly entries: number;
  readonly uncompactedEntries: number;
  readonly concurrency: number;
  readonly sampleMs: number;
  readonly settleMs: number;
  readonly maxMinutes: number;
  readonly quick: boolean;
}

function parseSettings(argv: readonly string[]): Settings {
  const program = new Command('bench:raft:memory')
    .description('RSS and data dir size of each member while a 3-node cluster commits a long stream of entries: Ballot vs etcd')
    .option('--quick', 'a shorter run: --entries 100000 (explicit flags win)', false)
    .option('--entries <n>', '256-byte proposals acknowledged per system', positiveInt, 1_000_000)
    .option('--uncompacted-entries <n>', 'entries for the extra Ballot run with compaction off (0: skip it)', nonNegativeInt, 100_000)
    .option('--concurrency <n>', 'closed-loop proposers', positiveInt, 256)
    .option('--sample-ms <ms>', 'sampling interval of RSS and data dir size', positiveInt, 1000)
    .option('--settle-ms <ms>', 'idle time after the last entry before the final sample', nonNegativeInt, 3000)
    .option('--max-minutes <n>', 'hard time limit of the whole run; a system still loading when its share runs out stops early (reported)', positiveInt, 40);
  addClusterOptions(program, 'warn');
  program.parse([...argv], { from: 'user' });
  const o = program.opts<Omit<Settings, never>>();
  const entries = o.quick && program.getOptionValueSource('entries') !== 'cli' ? 100_000 : o.entries;
  return { ...o, entries };
}

// ---- measuring ----

function rssBytes(pid: number): number | null {
  try {
    return parseVmRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return null;
  }
}

/** Disk usage of a directory tree (allocated blocks x 512, like `du -s`); files vanishing meanwhile are skipped. */
async function diskUsageBytes(dir: string): Promise<number | null> {
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path);
    } catch {
      return; // removed by a compaction between readdir and lstat
    }
    total += st.blocks * 512;
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = await readdir(path);
    } catch {
      return;
    }
    for (const name of names) await walk(join(path, name));
  };
  if (!existsSync(dir)) return null;
  await walk(dir);
  return total;
}

/** How to find a member's process and data directory. */
interface Subject {
  readonly cluster: BenchCluster;
  readonly dataDir: (member: string) => string;
}

async function sampleMembers(subject: Subject): Promise<Record<string, MemberSample>> {
  const pids = subject.cluster.pids();
  const out: Record<string, MemberSample> = {};
  await Promise.all(
    subject.cluster.members.map(async (name) => {
      const pid = pids.get(name);
      out[name] = {
        rssBytes: pid === undefined ? null : rssBytes(pid),
        diskBytes: await diskUsageBytes(subject.dataDir(name)),
      };
    }),
  );
  return out;
}

interface LoadOutcome {
  readonly done: number;
  readonly complete: boolean;
  readonly elapsedMs: number;
  readonly errors: number;
  readonly errorsByCode: Readonly<Record<string, number>>;
}

/** Stop a run after this many failed requests: the cluster is not making progress. */
const MAX_ERRORS = 10_000;

/**
 * Closed loop until exactly `total` proposals were acknowledged (a failed proposal is retried, so
 * it does not count), or `deadline` (epoch ms) passed, or MAX_ERRORS requests failed.
 */
async function proposeCount(
  propose: (worker: number) => Promise<void>,
  total: number,
  concurrency: number,
  deadline: number,
  onDone: () => void,
): Promise<Omit<LoadOutcome, 'elapsedMs'>> {
  let done = 0;
  let inFlight = 0;
  let errors = 0;
  const errorsByCode: Record<string, number> = {};
  const stop = (): boolean => Date.now() >= deadline || errors >= MAX_ERRORS;
  const worker = async (w: number): Promise<void> => {
    while (done + inFlight < total && !stop()) {
      inFlight++;
      try {
        await propose(w);
        done++;
        onDone();
      } catch (err) {
        errors++;
        const code = err instanceof BenchRequestError ? err.code : 'CLIENT_ERROR';
        errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
        await sleep(10);
      } finally {
        inFlight--;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return { done, complete: done >= total, errors, errorsByCode };
}

interface RunRecord {
  readonly label: string;
  readonly system: 'ballot' | 'etcd';
  readonly flags: readonly string[];
  readonly entriesTarget: number;
  readonly load: LoadOutcome;
  readonly entriesPerSec: number | null;
  readonly samples: readonly Sample[];
  readonly members: ReturnType<typeof summarizeMembers>;
  readonly finalStatus: Readonly<Record<string, unknown>>;
  /** etcd only: db sizes before defragmentation and data dirs after it. */
  readonly etcdDefrag?: Readonly<Record<string, { readonly dbSize: number | null; readonly dbSizeInUse: number | null; readonly diskBytesAfterDefrag: number | null; readonly rssBytesAfterDefrag: number | null }>>;
  readonly cluster: Readonly<Record<string, unknown>>;
  readonly loadAverageEnd: readonly number[];
}

const fmtMiB = (bytes: number | null): string => (bytes === null ? '?' : `${(bytes / 2 ** 20).toFixed(0)}`);

/** Starts the cluster, drives the load while sampling, settles, measures, stops it (also on failure). */
async function measure(
  label: string,
  subject: Subject,
  s: Settings,
  entries: number,
  deadline: number,
  progress: Progress,
  flags: readonly string[],
): Promise<RunRecord> {
  const { cluster } = subject;
  progress.stage(`${label}: starting 3 members`);
  try {
    await cluster.start();
    await cluster.waitForLeader(30_000);
    const client = await cluster.openClient(s.concurrency, s.payloadBytes);
    await client.warm(cluster.members);

    const samples: Sample[] = [];
    let done = 0;
    const t0 = Date.now();
    let sampling = false;
    let tick = 0;
    const tty = process.stderr.isTTY === true;
    const takeSample = async (): Promise<void> => {
      if (sampling) return; // the previous walk of the data dirs is still running
      sampling = true;
      try {
        const atDone = done;
        const members = await sampleMembers(subject);
        samples.push({ elapsedMs: Date.now() - t0, done: atDone, members });
        tick++;
        if (tty || tick % 5 === 0) {
          const elapsed = Date.now() - t0;
          const rate = elapsed > 0 ? (atDone * 1000) / elapsed : 0;
          const mem = Object.entries(members)
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([n, m]) => `${n} ${fmtMiB(m.rssBytes)}/${fmtMiB(m.diskBytes)}`)
            .join(' ');
          progress.stage(
            `${label}: ${atDone.toLocaleString('en-US')}/${entries.toLocaleString('en-US')} entries, ` +
              `${Math.round(rate).toLocaleString('en-US')}/s, ETA ${formatDuration(etaMs(atDone, entries, elapsed))}; ` +
              `RSS/data MiB ${mem}`,
          );
        }
      } finally {
        sampling = false;
      }
    };
    await takeSample();
    const timer = setInterval(() => void takeSample(), s.sampleMs);
    let outcome: Omit<LoadOutcome, 'elapsedMs'>;
    let elapsedMs: number;
    try {
      outcome = await proposeCount((w) => client.propose(w), entries, s.concurrency, deadline, () => {
        done++;
      });
      elapsedMs = Date.now() - t0;
      await client.close();
      if (!outcome.complete) {
        progress.note(`${label}: stopped early at ${outcome.done} of ${entries} entries (${outcome.errors} errors, time limit or error limit)`);
      }
      if (outcome.errors > 0) progress.note(`${label}: ${outcome.errors} failed requests (retried) ${JSON.stringify(outcome.errorsByCode)}`);
      progress.stage(`${label}: waiting for every member to apply the last entry, then ${s.settleMs} ms idle`);
      await cluster.waitCaughtUp(60_000);
      await sleep(s.settleMs);
    } finally {
      clearInterval(timer);
    }
    while (sampling) await sleep(20);
    await takeSample(); // the final sample

    const finalStatus: Record<string, unknown> = {};
    let etcdDefrag: RunRecord['etcdDefrag'];
    if (cluster instanceof BallotCluster) {
      for (const n of cluster.members) {
        finalStatus[n] = await getJson(`http://${cluster.address(n)}/status`, 2000).catch((err: unknown) => String(err));
      }
    } else if (cluster instanceof EtcdCluster) {
      progress.stage(`${label}: defragmenting each member`);
      const out: Record<string, { dbSize: number | null; dbSizeInUse: number | null; diskBytesAfterDefrag: number | null; rssBytesAfterDefrag: number | null }> = {};
      for (const n of cluster.members) {
        const { host, port } = cluster.clientAddress(n);
        const status = await postJson(`http://${host}:${port}/v3/maintenance/status`, {}, 5000).catch(() => null);
        finalStatus[n] = status;
        const num = (v: unknown): number | null => (typeof v === 'string' || typeof v === 'number' ? Number(v) : null);
        await postJson(`http://${host}:${port}/v3/maintenance/defragment`, {}, 120_000);
        const pid = cluster.pids().get(n);
        out[n] = {
          dbSize: isRecord(status) ? num(status.dbSize) : null,
          dbSizeInUse: isRecord(status) ? num(status.dbSizeInUse) : null,
          diskBytesAfterDefrag: await diskUsageBytes(subject.dataDir(n)),
          rssBytesAfterDefrag: pid === undefined ? null : rssBytes(pid),
        };
      }
      etcdDefrag = out;
    }
    const members = summarizeMembers(samples);
    return {
      label,
      system: cluster.system,
      flags,
      entriesTarget: entries,
      load: { ...outcome, elapsedMs },
      entriesPerSec: elapsedMs > 0 ? (outcome.done * 1000) / elapsedMs : null,
      samples,
      members,
      finalStatus,
      ...(etcdDefrag === undefined ? {} : { etcdDefrag }),
      cluster: cluster.describe(),
      loadAverageEnd: loadavg(),
    };
  } finally {
    progress.stage(`${label}: stopping`);
    await cluster.stop();
  }
}

const figures = (run: RunRecord | undefined, samples?: readonly Sample[]): RunFigures | null => {
  if (run === undefined) return null;
  const members = samples === undefined ? run.members : summarizeMembers(samples);
  const entries = samples === undefined ? run.load.done : (samples[samples.length - 1]?.done ?? 0);
  return { entries, entriesPerSec: run.entriesPerSec, members };
};

async function main(): Promise<void> {
  const s = parseSettings(process.argv.slice(2));
  const run = startBenchRun('ballot-bench-memory-', s.keepData);
  const { progress, supervisor, workDir } = run;
  requireBallotBin(s.ballotBin);
  const etcd = await etcdReference(s);

  const startedAt = new Date();
  const hardLimitMs = s.maxMinutes * 60_000;
  const hardDeadline = startedAt.getTime() + hardLimitMs;
  exitAfter(hardLimitMs, `bench:raft:memory: --max-minutes ${s.maxMinutes} reached`);
  progress.note(
    `bench:raft:memory: ${s.entries.toLocaleString('en-US')} x ${s.payloadBytes}-byte entries per system at ${s.concurrency} proposers` +
      `${s.uncompactedEntries > 0 ? `, plus ${s.uncompactedEntries.toLocaleString('en-US')} on Ballot with compaction off` : ''}; stops itself after ${s.maxMinutes} min`,
  );
  progress.note(etcd.found ? `reference: etcd ${etcd.version} (${etcd.binary}) ${ETCD_ARGS.join(' ')}` : `reference: NONE — ${etcd.reason}`);
  progress.note(`work dir: ${workDir}`);

  const common = { supervisor, binPath: s.ballotBin, size: 3, tickMs: s.tickMs, electionTicks: s.electionTicks, heartbeatTicks: s.heartbeatTicks, logLevel: s.logLevel };
  interface Plan {
    readonly label: string;
    readonly entries: number;
    readonly flags: readonly string[];
    readonly make: (dir: string) => Subject;
  }
  const plans: Plan[] = [
    {
      label: 'ballot (compaction on, defaults)',
      entries: s.entries,
      flags: [],
      make: (dir) => ({ cluster: new BallotCluster({ ...common, workDir: dir }), dataDir: (n) => join(dir, 'ballot', n) }),
    },
  ];
  if (etcd.found) {
    plans.push({
      label: 'etcd',
      entries: s.entries,
      flags: ETCD_ARGS,
      make: (dir) => ({
        cluster: new EtcdCluster({
          supervisor,
          binary: etcd.binary,
          workDir: dir,
          size: 3,
          heartbeatMs: s.tickMs * s.heartbeatTicks,
          electionTimeoutMs: s.tickMs * s.electionTicks,
          extraArgs: ETCD_ARGS,
        }),
        dataDir: (n) => join(dir, 'etcd', n),
      }),
    });
  }
  if (s.uncompactedEntries > 0) {
    plans.push({
      label: 'ballot (compaction off)',
      entries: s.uncompactedEntries,
      flags: NO_COMPACTION_ARGS,
      make: (dir) => ({
        cluster: new BallotCluster({ ...common, workDir: dir, extraArgs: NO_COMPACTION_ARGS }),
        dataDir: (n) => join(dir, 'ballot', n),
      }),
    });
  }

  // Each run gets a share of the time left, proportional to its entries; a minute is kept for stopping and reporting.
  const runs: RunRecord[] = [];
  for (const [i, plan] of plans.entries()) {
    const left = plans.slice(i).reduce((n, p) => n + p.entries, 0);
    const budget = Math.max(0, hardDeadline - 60_000 - Date.now()) * (plan.entries / left);
    const dir = join(workDir, `run${i + 1}`);
    mkdirSync(dir, { recursive: true });
    runs.push(await measure(plan.label, plan.make(dir), s, plan.entries, Date.now() + budget, progress, plan.flags));
  }
  progress.stop();

  // ---- report ----
  const on = runs.find((r) => r.label.startsWith('ballot (compaction on'));
  const off = runs.find((r) => r.label === 'ballot (compaction off)');
  const ref = runs.find((r) => r.system === 'etcd');
  const mainRows = memoryRows(figures(on), figures(ref));
  const mainTable = formatComparison('Ballot', 'etcd', mainRows);
  const sameCount = off === undefined || on === undefined ? null : samplesUpTo(on.samples, off.load.done);
  const offRows = off === undefined ? null : memoryRows(figures(off), sameCount === null ? null : figures(on, sameCount));
  const offTable = offRows === null ? null : formatComparison('compaction off', 'on', offRows);
  const defragLines =
    ref?.etcdDefrag === undefined
      ? []
      : Object.entries(ref.etcdDefrag).map(
          ([n, d]) =>
            `  ${n}: bbolt db ${fmtMiB(d.dbSize)} MiB (in use ${fmtMiB(d.dbSizeInUse)}) before defrag; data dir ${fmtMiB(d.diskBytesAfterDefrag)} MiB, RSS ${fmtMiB(d.rssBytesAfterDefrag)} MiB after`,
        );
  const finishedAt = new Date();
  const lines = [
    '',
    `bench:raft:memory — 3 members each, loopback, ${s.payloadBytes}-byte proposals, ${s.concurrency} closed-loop proposers; ` +
      `RSS = VmRSS, data dir = allocated blocks (du -s), sampled every ${s.sampleMs} ms; "final" = after the last entry was applied everywhere + ${s.settleMs} ms idle`,
    `Ballot: defaults (snapshot every 10,000 entries or 64 MiB, 5,000 trailing entries kept); its state machine is the applied-log digest`,
    etcd.found
      ? `etcd ${etcd.version}: ${ETCD_ARGS.join(' ')} (other settings default: --max-wals 5); puts via the JSON gateway to ${s.concurrency} distinct keys, one per proposer, overwritten`
      : `etcd: not measured (${etcd.reason})`,
    `machine: ${cpus().length} cores, load average at start/end of each run: ${runs.map((r) => `${r.label} ${r.loadAverageEnd[0]?.toFixed(2) ?? '?'}`).join(', ')}`,
    '',
    mainTable,
    ...(defragLines.length > 0 ? ['', 'etcd after the run, per member (bbolt keeps its file size until defragmented):', ...defragLines] : []),
    ...(offTable === null || off === undefined
      ? []
      : ['', `Ballot with compaction off (${NO_COMPACTION_ARGS.join(' ')}) vs on, both at ${off.load.done.toLocaleString('en-US')} entries ("on" = the main run's samples up to that count):`, offTable]),
    '',
  ];
  process.stdout.write(lines.join('\n'));

  writeResults(s.resultsDir, 'raft-memory', startedAt, {
    ...resultsHeader('raft-memory', 'raft/memory.js', startedAt, finishedAt),
    settings: s,
    machine: machineInfo(),
    reference: etcd,
    etcdArgs: ETCD_ARGS,
    noCompactionArgs: NO_COMPACTION_ARGS,
    rows: mainRows,
    table: mainTable,
    compactionOffRows: offRows,
    compactionOffTable: offTable,
    runs,
  });
  run.succeeded = true;
}

runMain('bench:raft:memory', main);
