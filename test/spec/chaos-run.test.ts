// `ballot chaos` end to end. First the parts that need no cluster, in this process: every flag is
// validated (a bad one is an error naming it, exit 2), the progress line, the soak loop (a fake run,
// a fake clock). Then short real runs through the built CLI as a child process: 3 members, a few
// seconds each, the register, bank and watch workloads under different nemeses. Each must exit 0
// with a complete folder whose results.json agrees with its history.jsonl, and leave no process
// behind (every PID the members logged is gone). An interrupted run (SIGINT) stops its members
// and exits 2.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { formatProgress, ProgressLine } from '../src/chaos/progress.js';
import { parseEvent } from '../src/checker/index.js';
import { requireOkOperations, SERIALIZABLE_NOTE, timelineEvents, unsafeFlags, validWithError } from '../src/chaos/runner.js';
import { formatSoakTable, runSoak, type SoakOptions } from '../src/chaos/soak.js';
import { runPaced, type Worker } from '../src/chaos/workloads/common.js';
import { SimRandom } from '@ballot/raft';
import type { ChaosOptions, ChaosResults, RecordedEvent, WorkloadContext } from '../src/chaos/types.js';
import {
  CHAOS_DEFAULTS,
  ChaosUsageError,
  exitCodeOf,
  parseChaosFlags,
  parseSoakFlags,
  registerChaosCommands,
  type ChaosIo,
  type RawChaosFlags,
} from '../src/cli/chaos.js';
import { alive, historyOf, memberPids, runCli as runBin, type CliRun } from './chaos-cli-helpers.js';
import { useCliProcesses } from './proxy-helpers.js';

const { bin: BIN } = useCliProcesses();

/** The command's own defaults (CHAOS_DEFAULTS); the first test asserts the run they make. */
const DEFAULT_FLAGS: RawChaosFlags = CHAOS_DEFAULTS;

function usageFlag(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ChaosUsageError) return err.flag;
    throw err;
  }
  throw new Error('no usage error');
}

describe('ballot chaos flags', () => {
  it('defaults make the contract\'s run, out folder named after the time and seed', () => {
    const o = parseChaosFlags(DEFAULT_FLAGS, new Date('2026-01-02T03:04:05.678Z'));
    expect(o).toEqual({
      nodes: 5,
      workload: 'register',
      nemeses: ['partition', 'kill', 'pause', 'clock', 'latency', 'reset'],
      durationMs: 30_000,
      ratePerSec: 200,
      concurrency: 10,
      seed: 1,
      outDir: 'chaos-runs/2026-01-02T03-04-05Z-seed1',
      readMode: 'linearizable',
      unsafeStaleReads: false,
      unsafeNoFsync: false,
      heartbeatIntervalMs: 50,
      electionTimeoutMs: 500,
      requestTimeoutMs: 1000,
      checkBudgetMs: 60_000,
      keys: 10,
    });
    const p = parseChaosFlags({ ...DEFAULT_FLAGS, nemesis: 'kill, partition,kill', duration: '2.5', unsafeStaleReads: true, out: 'x' });
    expect(p.nemeses).toEqual(['partition', 'kill']);
    expect(p.durationMs).toBe(2500);
    expect(p.unsafeStaleReads).toBe(true);
    expect(p.outDir).toBe('x');
    expect(parseChaosFlags({ ...DEFAULT_FLAGS, nemesis: 'none', nodes: '2' }).nemeses).toEqual([]);
  });

  it.each([
    ['--nodes', { nodes: '0' }],
    ['--nodes', { nodes: 'five' }],
    ['--nodes', { nodes: '3.5' }],
    ['--nodes', { nodes: '10' }],
    ['--nodes', { nodes: '2' }],
    ['--workload', { workload: 'queue' }],
    ['--nemesis', { nemesis: 'partition,flood' }],
    ['--nemesis', { nemesis: 'none,kill' }],
    ['--duration', { duration: '-1' }],
    ['--duration', { duration: '' }],
    ['--rate', { rate: '0' }],
    ['--concurrency', { concurrency: '1.5' }],
    ['--seed', { seed: '-1' }],
    ['--seed', { seed: 'abc' }],
    ['--read-mode', { readMode: 'eventual' }],
    ['--keys', { keys: '0' }],
    ['--heartbeat-interval', { heartbeatInterval: '0' }],
    ['--election-timeout', { electionTimeout: '100' }],
    ['--request-timeout-ms', { requestTimeoutMs: '1s' }],
    ['--check-budget-ms', { checkBudgetMs: '-5' }],
    ['--out', { out: '  ' }],
  ] as const)('%s: %j is refused, naming the flag', (flag, bad) => {
    expect(usageFlag(() => parseChaosFlags({ ...DEFAULT_FLAGS, ...bad }))).toBe(flag);
  });

  it('chaos-soak: --total-minutes must fit one run, --seed-from is a seed', () => {
    const soak = parseSoakFlags({ ...DEFAULT_FLAGS, duration: '5', totalMinutes: '2', seedFrom: '7', out: 'soak' });
    expect(soak).toMatchObject({ totalMs: 120_000, seedFrom: 7, outRoot: 'soak', run: { durationMs: 5000, nodes: 5 } });
    expect(usageFlag(() => parseSoakFlags({ ...DEFAULT_FLAGS, duration: '60', totalMinutes: '1', seedFrom: '1' }))).toBe('--total-minutes');
    expect(usageFlag(() => parseSoakFlags({ ...DEFAULT_FLAGS, totalMinutes: 'x', seedFrom: '1' }))).toBe('--total-minutes');
    expect(usageFlag(() => parseSoakFlags({ ...DEFAULT_FLAGS, totalMinutes: '10', seedFrom: '1.5' }))).toBe('--seed-from');
  });

  it('the command hands the parsed options to the runner and exits 0/1/2 by its verdict; bad flags exit 2 without a run', async () => {
    const seen: ChaosOptions[] = [];
    const exits: number[] = [];
    const err: string[] = [];
    const out: string[] = [];
    let verdict: ChaosResults['valid'] = true;
    const program = (): Command => {
      const p = new Command().exitOverride();
      registerChaosCommands(p, {
        runChaos: (o) => {
          seen.push(o);
          return Promise.resolve({ valid: verdict } as ChaosResults);
        },
        io: { stdout: (l) => out.push(l), stderr: (t) => err.push(t), isTTY: false },
        exit: (c) => exits.push(c),
      });
      return p;
    };
    await program().parseAsync(['chaos', '--nodes', '3', '--duration', '4', '--seed', '9', '--out', 'o'], { from: 'user' });
    expect(seen[0]).toMatchObject({ nodes: 3, durationMs: 4000, seed: 9, outDir: 'o' });
    verdict = false;
    await program().parseAsync(['chaos', '--out', 'o'], { from: 'user' });
    verdict = 'unknown';
    await program().parseAsync(['chaos', '--out', 'o'], { from: 'user' });
    expect(exits).toEqual([0, 1, 2]);
    await program().parseAsync(['chaos', '--rate', 'fast'], { from: 'user' });
    expect(seen).toHaveLength(3);
    expect(exits[3]).toBe(2);
    expect(err.join('')).toContain('--rate');
    expect(JSON.parse(out[out.length - 1] ?? '{}')).toMatchObject({ valid: 'unknown', flag: '--rate' });
    await expect(program().parseAsync(['chaos', '--no-such-flag'], { from: 'user' })).rejects.toThrow();
    expect(exits[4]).toBe(2);
    expect(exitCodeOf({ valid: true, error: 'boom' })).toBe(2);
  });

  it('an error after a false verdict (stopping the cluster, writing the report) keeps it false: exit 1, the error beside it', () => {
    expect(validWithError(false, 'stopping the cluster: boom')).toBe(false);
    expect(validWithError(true, 'writing the run\'s files: boom')).toBe('unknown');
    expect(validWithError('unknown', 'boom')).toBe('unknown');
    expect(validWithError(true, undefined)).toBe(true);
    expect(exitCodeOf({ valid: false, error: 'stopping the cluster: boom' })).toBe(1);
    expect(exitCodeOf({ valid: 'unknown', error: 'boom' })).toBe(2);
  });

  it('serializable reads are listed in results.unsafe (not meant to be linearizable), other read modes are not', () => {
    const base = { unsafeStaleReads: false, unsafeNoFsync: false, nemeses: [] as const };
    expect(unsafeFlags({ ...base, readMode: 'serializable' })).toEqual(['serializable-reads']);
    expect(unsafeFlags({ ...base, readMode: 'linearizable' })).toEqual([]);
    expect(unsafeFlags({ ...base, readMode: 'lease' })).toEqual([]);
    expect(SERIALIZABLE_NOTE).toContain('not meant to be linearizable');
  });

  it('a run with no ok operation (or, for register and bank, no ok read) in its workload phase is unknown, never valid', () => {
    const valid: ChaosResults['verdict'] = { valid: true, checks: [], summary: 'linearizable', anomalies: [], anomalyCount: 0 };
    const ev = (type: 'invoke' | 'ok' | 'fail' | 'info', f: string): RecordedEvent => ({ process: 0, type, f, key: 'k', value: null, time: 0 });
    const writes = [ev('invoke', 'write'), ev('ok', 'write')];
    const finalRead = [ev('invoke', 'read'), ev('ok', 'read')];
    // Nothing ok before the final reads: the ok final read does not count.
    const none = requireOkOperations(valid, [ev('invoke', 'write'), ev('fail', 'write'), ...finalRead], 2, 'register');
    expect(none.valid).toBe('unknown');
    expect(none.summary).toContain('at least one');
    expect(none.checks.at(-1)).toMatchObject({ name: 'ok-operations', valid: 'unknown' });
    expect(requireOkOperations(valid, [], 0, 'watch').valid).toBe('unknown');
    // Register and bank also need an ok read; watch does not.
    expect(requireOkOperations(valid, [...writes, ...finalRead], 2, 'register').valid).toBe('unknown');
    expect(requireOkOperations(valid, [...writes, ...finalRead], 2, 'watch').valid).toBe(true);
    expect(requireOkOperations(valid, [...writes, ...finalRead], 4, 'register').valid).toBe(true);
    // A false verdict stands.
    expect(requireOkOperations({ ...valid, valid: false }, [], 0, 'bank').valid).toBe(false);
  });

  it('the timeline\'s events come from memory, the model\'s functions only, numbered as the lines of history.jsonl', () => {
    const recorded: RecordedEvent[] = [
      { process: 0, type: 'invoke', f: 'write', key: 'a', value: 1, time: 10 },
      { process: 1, type: 'invoke', f: 'transfer', key: '0,1', value: { from: 0, to: 1, amount: 2 }, time: 20 },
      { process: 0, type: 'ok', f: 'write', key: 'a', value: 1, time: 30 },
      { process: 1, type: 'fail', f: 'transfer', key: '0,1', value: null, time: 40, error: 'NO_LEADER' },
      { process: 2, type: 'invoke', f: 'read', key: 'a', value: null, time: 50, node: 'n1' },
      { process: 2, type: 'ok', f: 'read', key: 'a', value: 1, time: 60, node: 'n1' },
    ];
    // As the timeline was built before, from the file: the model's lines, parsed with their line numbers.
    const fromFile = recorded.flatMap((e, i) => (e.f === 'transfer' ? [] : [parseEvent(JSON.stringify(e), i + 1)]));
    expect(timelineEvents(recorded, 'register')).toEqual(fromFile);
    expect(timelineEvents(recorded, 'register').map((e) => e.line)).toEqual([1, 3, 5, 6]);
  });
});

describe('runPaced', () => {
  it('runs 25 workers on one stop signal without a MaxListenersExceededWarning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on('warning', onWarning);
    try {
      const abort = new AbortController();
      const workers = Array.from({ length: 25 }, (_, index) => ({ index, random: new SimRandom(index + 1) }) as unknown as Worker);
      let steps = 0;
      const ctx = { ratePerSec: 250, concurrency: 25, signal: abort.signal } as unknown as WorkloadContext;
      const running = runPaced(ctx, workers, () => {
        steps++;
        return Promise.resolve();
      });
      await new Promise((r) => setTimeout(r, 300));
      abort.abort();
      await running;
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(steps).toBeGreaterThan(0);
      expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('progress line', () => {
  const snap = { elapsedMs: 12_345, durationMs: 30_000, counts: { ok: 2301, fail: 60, info: 51 }, ratePerSec: 200.6, fault: 'partition-halves n1,n2 | n3', leader: 'n4' };

  it('reads as in the contract', () => {
    expect(formatProgress(snap)).toBe('chaos 12.3/30.0 s | 2,412 ops ok 2,301 fail 60 info 51 | 201/s | partition-halves n1,n2 | n3 | leader n4');
    expect(formatProgress({ ...snap, fault: null, leader: null })).toContain('| quiet | leader none');
  });

  it('is rewritten in place on a terminal, printed every 5 s elsewhere', () => {
    let t = 0;
    const plain: string[] = [];
    const p = new ProgressLine({ write: (s) => plain.push(s), isTTY: false, now: () => t });
    for (t = 0; t <= 12_000; t += 250) p.update(snap);
    expect(plain).toHaveLength(3);
    expect(plain.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
    const tty: string[] = [];
    const q = new ProgressLine({ write: (s) => tty.push(s), isTTY: true });
    q.update(snap);
    q.update(snap);
    q.phase('healing');
    expect(tty).toEqual([`\r${formatProgress(snap)}\x1b[K`, `\r${formatProgress(snap)}\x1b[K`, '\n', 'chaos: healing\n']);
  });
});

describe('chaos-soak loop', () => {
  function fakeRun(results: (seed: number) => Partial<ChaosResults>, clock: { t: number }, runMs: number) {
    return (o: ChaosOptions): Promise<ChaosResults> => {
      clock.t += runMs;
      return Promise.resolve({
        valid: true,
        seed: o.seed,
        ops: 100,
        counts: { ok: 90, fail: 5, info: 5 },
        outDir: o.outDir,
        verdict: { valid: true, checks: [], summary: '', anomalies: [], anomalyCount: 0 },
        ...results(o.seed),
      } as ChaosResults);
    };
  }

  it('runs seeds one after another, never starting one that cannot finish, and summarizes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ballot-soak-'));
    try {
      const clock = { t: 0 };
      const err: string[] = [];
      const out: string[] = [];
      const io: ChaosIo = { stdout: (l) => out.push(l), stderr: (t) => err.push(t), isTTY: false };
      const options: SoakOptions = { totalMs: 100_000, seedFrom: 5, outRoot: dir, run: parseChaosFlags({ ...DEFAULT_FLAGS, duration: '10' }) };
      // Expected run time before the first: 10 s + 20 s overhead = 30 s; then 1.25 x the longest measured (25 s):
      // 31.25 s. Seeds 5, 6, 7 start at 0, 25 and 50 s; an 8th at 75 s could end at 106 s > 100 s: not started.
      const summary = await runSoak(options, io, fakeRun((s) => (s === 7 ? { valid: false, verdict: { valid: false, checks: [], summary: '', anomalies: ['x'], anomalyCount: 1 } } : {}), clock, 25_000), () => clock.t);
      expect(summary.runs.map((r) => r.seed)).toEqual([5, 6, 7]);
      expect(summary).toMatchObject({ valid: 2, invalid: 1, unknown: 0 });
      expect(summary.runs[0]).toMatchObject({ availability: 0.9, outDir: join(dir, 'seed-5'), wallMs: 25_000 });
      expect(JSON.parse(out[out.length - 1] ?? '')).toEqual(summary);
      expect(JSON.parse(readFileSync(join(dir, 'soak.json'), 'utf8'))).toEqual(summary);
      const table = formatSoakTable(summary.runs);
      expect(table.split('\n')[0]).toMatch(/^seed +verdict +ops +availability/);
      expect(table).toContain('INVALID');
      // Runs of 40 s: the second starts at 40 s (expected end 90 s), a third at 80 s could end at 130 s.
      const clock2 = { t: 0 };
      const s2 = await runSoak({ ...options, outRoot: join(dir, 'b') }, io, fakeRun(() => ({}), clock2, 40_000), () => clock2.t);
      expect(s2.runs).toHaveLength(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Real runs through the built CLI.

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const runCli = (args: readonly string[], timeoutMs?: number, onStderr?: (text: string, pid: number) => void): Promise<CliRun> =>
  runBin(BIN, args, timeoutMs, onStderr);

function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'ballot-chaos-run-'));
  roots.push(r);
  return r;
}

/** The run's common checks: exit 0, the folder's files, results.json = last stdout line = the history's counts, no process left. */
function expectGoodRun(run: CliRun, outDir: string, nodes: number): ChaosResults {
  expect(run.code, run.stderr.slice(-4000)).toBe(0);
  const results = JSON.parse(readFileSync(join(outDir, 'results.json'), 'utf8')) as ChaosResults;
  expect(run.last).toEqual(results);
  expect(results.valid).toBe(true);
  expect(results.error).toBeUndefined();
  for (const f of ['history.jsonl', 'results.json', 'report.html', 'nemesis.jsonl', 'plots/latency.svg', 'plots/throughput.svg', 'plots/latency.vl.json', 'plots/throughput.vl.json']) {
    expect(existsSync(join(outDir, f)), f).toBe(true);
    expect(results.files).toContain(f);
  }
  for (let i = 1; i <= nodes; i++) expect(existsSync(join(outDir, 'nodes', `n${i}.log`))).toBe(true);
  // Counts agree with the history: one completion per completed invoke; pending invokes count as info.
  const events = historyOf(outDir);
  const invokes = events.filter((e) => e.type === 'invoke').length;
  const completions = { ok: 0, fail: 0, info: 0 };
  for (const e of events) if (e.type !== 'invoke') completions[e.type]++;
  expect(results.ops).toBe(invokes);
  expect(results.counts.ok).toBe(completions.ok);
  expect(results.counts.fail).toBe(completions.fail);
  expect(results.counts.info).toBeGreaterThanOrEqual(completions.info);
  expect(results.counts.ok + results.counts.fail + results.counts.info).toBe(invokes);
  expect(results.counts.ok).toBeGreaterThan(0);
  // Every window's operations are a part of the whole.
  const inWindows = results.windows.reduce((n, w) => n + w.counts.ok + w.counts.fail + w.counts.info, 0);
  expect(inWindows).toBeLessThanOrEqual(results.ops);
  // No member is left running.
  const pids = memberPids(outDir, run.stderr);
  expect(pids.length).toBeGreaterThanOrEqual(nodes);
  expect(results.pids?.length).toBeGreaterThanOrEqual(nodes);
  expect(pids.filter(alive)).toEqual([]);
  return results;
}

const SHORT = ['--nodes', '3', '--duration', '6', '--rate', '100', '--concurrency', '6', '--heartbeat-interval', '50', '--election-timeout', '500'];

describe('ballot chaos: real runs (3 members, a few seconds)', () => {
  it('register under partitions and kills: valid, a complete folder, a timeline, every process gone', async () => {
    const out = join(tempRoot(), 'run');
    const run = await runCli(['chaos', ...SHORT, '--workload', 'register', '--nemesis', 'partition,kill', '--seed', '3', '--out', out]);
    const r = expectGoodRun(run, out, 3);
    expect(r).toMatchObject({ workload: 'register', seed: 3, nodes: 3, nemeses: ['partition', 'kill'], readMode: 'linearizable', unsafe: [] });
    expect(existsSync(join(out, 'timeline.html'))).toBe(true);
    expect(r.verdict.checks.map((c) => c.name)).toContain('linearizability');
    // The checker's full result is in check.json, not in the results line.
    expect(r.files).toContain('check.json');
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('href="check.json"');
    expect(r.verdict.linearizability).toBeUndefined();
    expect(JSON.parse(readFileSync(join(out, 'check.json'), 'utf8'))).toMatchObject({ valid: true, ops: expect.any(Number) as unknown, keys: 10 });
    // The applied fault windows are in nemesis.jsonl and in the results' windows.
    const applied = readFileSync(join(out, 'nemesis.jsonl'), 'utf8').trim().split('\n').filter((l) => l !== '');
    expect(applied.length).toBeGreaterThan(0);
    expect(r.windows.filter((w) => w.kind !== 'quiet')).toHaveLength(applied.length);
    // Progress and phases went to stderr, not stdout.
    expect(run.stderr).toContain('chaos: final reads');
    expect(run.stderr).toMatch(/chaos \d+\.\d\/6\.0 s \| [\d,]+ ops/);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
  }, 120_000);

  it('bank under pauses and clock changes: every read sums to the total', async () => {
    const out = join(tempRoot(), 'run');
    const run = await runCli(['chaos', ...SHORT, '--workload', 'bank', '--nemesis', 'pause,clock', '--seed', '4', '--out', out]);
    const r = expectGoodRun(run, out, 3);
    expect(r.workload).toBe('bank');
    expect(Object.keys(r.byFunction).sort()).toEqual(['read', 'transfer']);
  }, 120_000);

  it('watch under latency and connection resets: every watcher saw every revision once', async () => {
    const out = join(tempRoot(), 'run');
    const run = await runCli(['chaos', ...SHORT, '--workload', 'watch', '--nemesis', 'latency,reset', '--seed', '5', '--out', out]);
    const r = expectGoodRun(run, out, 3);
    expect(r.workload).toBe('watch');
    expect(existsSync(join(out, 'watch-events.jsonl'))).toBe(true);
  }, 120_000);

  it('a check that runs out of budget is unknown, never valid: exit 2 without an error', async () => {
    const out = join(tempRoot(), 'run');
    const run = await runCli(['chaos', '--nodes', '3', '--nemesis', 'none', '--duration', '1', '--rate', '100', '--concurrency', '3', '--check-budget-ms', '0', '--out', out]);
    expect(run.code, run.stderr.slice(-4000)).toBe(2);
    expect(run.last).toMatchObject({ valid: 'unknown', nemeses: [] });
    expect(run.last['error']).toBeUndefined();
    expect((run.last as unknown as ChaosResults).counts.ok).toBeGreaterThan(0);
    expect(run.stderr).toContain('UNKNOWN');
    expect(memberPids(out, run.stderr).filter(alive)).toEqual([]);
  }, 120_000);

  it('chaos-soak through the CLI: seeds one after another within the time, a table, the summary as the last line', async () => {
    const root = join(tempRoot(), 'soak');
    const run = await runCli(
      ['chaos-soak', '--total-minutes', '0.4', '--seed-from', '11', '--nodes', '3', '--nemesis', 'none', '--duration', '1', '--rate', '50', '--concurrency', '3', '--out', root],
      120_000,
    );
    expect(run.code, run.stderr.slice(-4000)).toBe(0);
    const summary = JSON.parse(readFileSync(join(root, 'soak.json'), 'utf8')) as { runs: { seed: number; valid: unknown; outDir: string; ops: number; wallMs: number }[]; valid: number; totalMs: number };
    expect(run.last).toEqual(summary);
    expect(summary.runs.length).toBeGreaterThanOrEqual(1);
    expect(summary.runs.map((r) => r.seed)).toEqual(summary.runs.map((_, i) => 11 + i));
    expect(summary.valid).toBe(summary.runs.length);
    // No run starts past the deadline (each starts only if it is expected to end by then).
    expect(summary.totalMs).toBeLessThanOrEqual(24_000 + Math.max(...summary.runs.map((r) => r.wallMs)));
    for (const r of summary.runs) {
      expect(r.outDir).toBe(join(root, `seed-${r.seed}`));
      expect(r.ops).toBeGreaterThan(0);
      expect(JSON.parse(readFileSync(join(r.outDir, 'results.json'), 'utf8'))).toMatchObject({ seed: r.seed, valid: true });
    }
    expect(run.stderr).toMatch(/^seed +verdict +ops +availability/m);
    expect(memberPids(join(root, 'seed-11'), run.stderr).filter(alive)).toEqual([]);
  }, 120_000);

  it('SIGINT in the middle: every member stopped, what exists written, exit 2', async () => {
    const out = join(tempRoot(), 'run');
    let sent = false;
    const run = await runCli(['chaos', ...SHORT, '--duration', '60', '--nemesis', 'partition', '--seed', '6', '--out', out], 90_000, (stderr, pid) => {
      if (!sent && /chaos \d+\.\d\/60\.0 s/.test(stderr)) {
        sent = true;
        process.kill(pid, 'SIGINT');
      }
    });
    expect(sent).toBe(true);
    expect(run.code).toBe(2);
    expect(run.last).toMatchObject({ valid: 'unknown', error: expect.stringContaining('SIGINT') as unknown });
    expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'))).toEqual(run.last);
    expect(existsSync(join(out, 'history.jsonl'))).toBe(true);
    expect(memberPids(out, run.stderr).filter(alive)).toEqual([]);
  }, 120_000);

  it('bad input exits 2 naming the flag, before starting anything', async () => {
    const root = tempRoot();
    const nodes = await runCli(['chaos', '--nodes', '0', '--out', join(root, 'a')]);
    expect(nodes.code).toBe(2);
    expect(nodes.stderr).toContain('--nodes');
    expect(existsSync(join(root, 'a'))).toBe(false);
    const nemesis = await runCli(['chaos', '--nemesis', 'partition,meteor', '--out', join(root, 'b')]);
    expect(nemesis.code).toBe(2);
    expect(nemesis.stderr).toContain('--nemesis');
    expect(nemesis.stderr).toContain('meteor');
    const unknown = await runCli(['chaos', '--colour', 'red']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--colour');
    const soak = await runCli(['chaos-soak', '--total-minutes', '0.2', '--duration', '30']);
    expect(soak.code).toBe(2);
    expect(soak.stderr).toContain('--total-minutes');
    // A folder that is not empty is refused (a run never mixes with another's files).
    const full = join(root, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'keep.txt'), 'mine');
    const busy = await runCli(['chaos', ...SHORT, '--out', full]);
    expect(busy.code).toBe(2);
    expect(busy.last).toMatchObject({ valid: 'unknown', error: expect.stringContaining('not empty') as unknown });
    expect(readdirSync(full)).toEqual(['keep.txt']);
  }, 120_000);
});
