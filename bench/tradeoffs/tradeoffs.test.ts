// `ballot bench tradeoffs` end to end through the built CLI, at a tiny size: every section but
// etcd (which then says why it did not run) on real `kv serve` processes. Asserts the output folder
// (results.json, report.md, the plots), that the figures agree with each other, and that no member
// outlives the run. Plus the pure parts: job planning and the report's tables. No timing assertions.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { configKey, matrixCells, planJobs, serverArgs, type MatrixResult, type MatrixSettings } from './matrix.js';
import { headlines, matrixTable, reproduceArgs, sweepRows } from './report.js';
import type { TradeoffResults } from './report.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(repoRoot, 'packages/cli/dist/bin.js');

const settings: MatrixSettings = {
  readModes: ['linearizable', 'lease', 'serializable'],
  nodes: [1, 3, 5, 7],
  fsync: [true, false],
  batching: [true, false],
  sweepClients: [1, 4, 16, 64],
  sweepNodes: 3,
  target: 'spread',
  sweepTargets: ['spread', 'leader'],
};

describe('matrix planning', () => {
  it('covers the full cross product once, grouped so that a cluster is started per server configuration', () => {
    const cells = matrixCells(settings);
    expect(cells).toHaveLength(3 * 4 * 2 * 2);
    const groups = planJobs(settings, 16);
    // linearizable and serializable share a read-index cluster; lease needs its own.
    expect(groups).toHaveLength(4 * 2 * 2 * 2);
    const jobs = groups.flatMap((g) => g.jobs);
    expect(jobs.filter((j) => j.kind === 'matrix')).toHaveLength(cells.length);
    // Spread, the sweep point at 16 clients is the matrix cell itself: 3 counts x 3 modes more, not 4 x 3;
    // to the leader, all 4 x 3.
    expect(jobs.filter((j) => j.kind === 'sweep' && j.target === 'spread')).toHaveLength(3 * 3);
    expect(jobs.filter((j) => j.kind === 'sweep' && j.target === 'leader')).toHaveLength(4 * 3);
    for (const g of groups) {
      for (const j of g.jobs) {
        expect(j.cell.nodes).toBe(g.config.nodes);
        expect(g.config.serverReadMode).toBe(j.cell.readMode === 'lease' ? 'lease' : 'read-index');
      }
    }
    expect(new Set(groups.map((g) => configKey(g.config))).size).toBe(groups.length);
  });

  it('maps fsync, batching and the read mode onto kv serve flags, always with --parent-pid', () => {
    const args = serverArgs({ nodes: 3, fsync: false, batching: false, serverReadMode: 'lease' }, { logLevel: 'warn' }, 4242);
    expect(args.join(' ')).toBe('--log-level warn --parent-pid 4242 --read-mode lease --unsafe-no-fsync --max-batch-entries 1');
    expect(serverArgs({ nodes: 1, fsync: true, batching: true, serverReadMode: 'read-index' }, { logLevel: 'info' }, 7)).toEqual([
      '--log-level', 'info', '--parent-pid', '7', '--read-mode', 'read-index',
    ]);
  });
});

/** Members still alive that were started with --parent-pid <pid> (their cmdline says so). */
function membersOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('--parent-pid');
      if (i >= 0 && argv[i + 1] === String(pid)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('ballot bench tradeoffs (built CLI, tiny run)', () => {
  let child: ChildProcess | null = null;
  let outRoot: string | null = null;
  afterEach(() => {
    if (child?.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    if (child?.pid !== undefined) for (const pid of membersOf(child.pid)) process.kill(pid, 'SIGKILL');
    child = null;
    if (outRoot !== null) rmSync(outRoot, { recursive: true, force: true });
    outRoot = null;
  });

  it('writes results.json, report.md and plots whose figures agree, and leaves no member running', { timeout: 120_000 }, async () => {
    expect(existsSync(cli), `${cli} missing: npm run build first`).toBe(true);
    outRoot = mkdtempSync(join(tmpdir(), 'tradeoffs-test-'));
    const out = join(outRoot, 'run');
    const args = [
      cli, 'bench', 'tradeoffs', '--quick', '--out', out, '--no-etcd',
      '--read-modes', 'linearizable,serializable', '--nodes', '3', '--sweep-clients', '1,4',
      '--clients', '4', '--keys', '50', '--duration-ms', '500', '--warmup-ms', '100', '--read-ratio', '0.8',
      '--faults-nodes', '3', '--faults-duration-ms', '4000', '--faults-rate', '60', '--faults-concurrency', '3',
      '--failover-kills', '2', '--election-timeouts', '300', '--seed', '7',
    ];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
    const pid = proc.pid as number;
    expect(code, `exit ${code}\nstderr:\n${stderr.slice(-3000)}`).toBe(0);
    expect(stderr).toMatch(/expected about \d+ s in all/);
    expect(stdout).toContain(`results: ${out}`);
    expect(membersOf(pid)).toEqual([]);

    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as TradeoffResults;
    expect(r.sectionErrors).toEqual({});
    expect(r.settings.readRatio).toBe(0.8);

    // Matrix: 2 modes x 1 size x fsync on x batching on at 4 clients, and the sweep's 1-client points.
    const m = r.matrix;
    expect(m).not.toBeNull();
    const results: readonly MatrixResult[] = m?.results ?? [];
    expect(results.filter((x) => x.kind === 'matrix').map((x) => x.readMode).sort()).toEqual(['linearizable', 'serializable']);
    expect(results.filter((x) => x.kind === 'sweep').map((x) => x.clients)).toEqual([1, 1]);
    let reads = 0;
    let ops = 0;
    for (const x of results) {
      const f = x.figures;
      expect(f, x.error).not.toBeNull();
      if (f === null) continue;
      expect(f.opsPerSec).toBeGreaterThan(0);
      expect(f.serverCpuPercent).toBeGreaterThan(0);
      // Throughput counts what the latency split counts, over the same window.
      expect(Math.abs(f.reads + f.writes - (f.opsPerSec * f.measuredMs) / 1000)).toBeLessThanOrEqual(2 + 0.1 * (f.reads + f.writes));
      expect(f.p50Ms).toBeGreaterThan(0);
      expect(f.p50Ms).toBeLessThanOrEqual(f.p99Ms);
      expect(f.p99Ms).toBeLessThanOrEqual(f.p999Ms);
      const fractions = f.cdf.map((p) => p.fraction);
      expect(fractions.at(-1)).toBe(1);
      for (let i = 1; i < f.cdf.length; i++) expect(f.cdf[i]?.ms).toBeGreaterThanOrEqual(f.cdf[i - 1]?.ms ?? 0);
      expect(f.cdf.at(-1)?.ms).toBeGreaterThanOrEqual(f.p999Ms);
      reads += f.reads;
      ops += f.reads + f.writes;
    }
    // The mix follows --read-ratio (seeded draws; loose bound for the small sample).
    expect(ops).toBeGreaterThan(50);
    expect(reads / ops).toBeGreaterThan(0.65);
    expect(reads / ops).toBeLessThan(0.95);

    // Faults: every read mode ran the same schedule; windows carry availability in [0, 1].
    expect(r.faults?.modes.map((x) => x.readMode).sort()).toEqual(['lease', 'linearizable', 'serializable']);
    for (const mode of r.faults?.modes ?? []) {
      expect(mode.error, mode.error).toBeUndefined();
      expect(mode.ops).toBeGreaterThan(0);
      expect(mode.counts.ok + mode.counts.fail + mode.counts.info).toBeGreaterThanOrEqual(mode.ops);
      for (const w of mode.windows) if (w.availability !== null) expect(w.availability).toBeGreaterThanOrEqual(0);
      for (const w of mode.windows) if (w.availability !== null) expect(w.availability).toBeLessThanOrEqual(1);
    }
    // Failover: each kill gave a sample or a reason.
    const ft = r.failover?.byTimeout ?? [];
    expect(ft.map((t) => t.electionTimeoutMs)).toEqual([300]);
    for (const t of ft) {
      expect(t.samplesMs.length + t.failures.length).toBe(t.kills);
      for (const v of t.samplesMs) expect(v).toBeGreaterThan(0);
    }
    // etcd: skipped, and says why.
    expect(r.etcd?.found).toBe(false);

    // Plots: an SVG and its vega-lite spec for each figure the sections support.
    for (const base of ['throughput-vs-clients', 'latency-cdf', 'matrix-throughput', 'availability', 'failover-histogram']) {
      if (base === 'failover-histogram' && ft.every((t) => t.samplesMs.length === 0)) continue;
      expect(r.plots).toContain(`plots/${base}.svg`);
      expect(readFileSync(join(out, 'plots', `${base}.svg`), 'utf8')).toMatch(/^<svg/);
      expect(JSON.parse(readFileSync(join(out, 'plots', `${base}.vl.json`), 'utf8'))).toHaveProperty('$schema');
    }
    const sided = (r.faults?.modes ?? []).some((x) => (x as { minoritySide?: unknown }).minoritySide != null);
    expect(r.plots.includes('plots/availability-by-side.svg')).toBe(sided);
    const cdfSpec = JSON.parse(readFileSync(join(out, 'plots', 'latency-cdf.vl.json'), 'utf8')) as { data: { values: { readMode: string }[] } };
    expect(new Set(cdfSpec.data.values.map((v) => v.readMode))).toEqual(new Set(['linearizable', 'serializable']));

    // report.md: the matrix rows with the measured throughput, the sections, the plots it links exist.
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    for (const x of results.filter((y) => y.kind === 'matrix')) {
      expect(report).toContain(`| ${x.readMode} | 3 | on | on | ${Math.round(x.figures?.opsPerSec ?? 0).toLocaleString('en-US')} |`);
    }
    for (const h of ['## Matrix', '## Throughput vs clients', '## Under faults', '## Failover', '## Side by side with etcd', '## Reproduce']) {
      expect(report).toContain(h);
    }
    for (const link of report.matchAll(/\]\((plots\/[^)]+)\)/g)) expect(existsSync(join(out, link[1] as string))).toBe(true);
    expect(readdirSync(out).sort()).toEqual(['plots', 'report.md', 'results.json']);
  });
});

describe('report tables', () => {
  const fig = (opsPerSec: number, p99Ms: number) => ({
    measuredMs: 1000, opsPerSec, reads: opsPerSec * 0.9, writes: opsPerSec * 0.1, errors: 0, errorsByCode: {},
    p50Ms: p99Ms / 4, p99Ms, p999Ms: p99Ms * 2, readP50Ms: 1, readP99Ms: 2, writeP50Ms: 3, writeP99Ms: 4,
    cdf: [], clientCpuPercent: 10, serverCpuPercent: 50, undrained: 0,
  });
  const small: MatrixSettings = { ...settings, nodes: [3], fsync: [true], batching: [true], sweepClients: [1, 16], sweepTargets: ['spread'] };
  const results: MatrixResult[] = [
    { readMode: 'linearizable', nodes: 3, fsync: true, batching: true, kind: 'matrix', clients: 16, target: 'spread', figures: fig(1000, 20) },
    { readMode: 'serializable', nodes: 3, fsync: true, batching: true, kind: 'matrix', clients: 16, target: 'spread', figures: fig(3000, 8) },
    { readMode: 'lease', nodes: 3, fsync: true, batching: true, kind: 'matrix', clients: 16, target: 'spread', figures: null, error: 'cluster failed' },
    { readMode: 'linearizable', nodes: 3, fsync: true, batching: true, kind: 'sweep', clients: 1, target: 'spread', figures: fig(300, 5) },
  ];

  it('shows failed cells as failed, and the sweep from matrix and sweep jobs alike', () => {
    const t = matrixTable(results, 16);
    expect(t).toContain('| linearizable | 3 | on | on | 1,000 |');
    expect(t).toContain('| lease | 3 | on | on | FAILED |');
    expect(sweepRows(results, small)).toEqual([
      { readMode: 'linearizable', target: 'spread', clients: 1, opsPerSec: 300, p99Ms: 5 },
      { readMode: 'linearizable', target: 'spread', clients: 16, opsPerSec: 1000, p99Ms: 20 },
      { readMode: 'serializable', target: 'spread', clients: 16, opsPerSec: 3000, p99Ms: 8 },
    ]);
  });

  it('reproduces a run with its own flags, without its output folder', () => {
    expect(reproduceArgs('ballot bench tradeoffs --quick --out /tmp/x --seed 3')).toBe('bench tradeoffs --quick --seed 3');
    expect(reproduceArgs('ballot bench tradeoffs --out=/tmp/x')).toBe('bench tradeoffs');
  });

  it('states the price of linearizable reads from the measured cells only', () => {
    const lines = headlines(results, small, 16);
    expect(lines[0]).toContain('1,000 vs 3,000 ops/s (serializable 3.00x)');
    expect(lines.some((l) => l.startsWith('Lease'))).toBe(false); // the lease cell failed
  });
});
