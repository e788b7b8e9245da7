// bench tradeoffs, the output: results.json's shape, report.md (tables and the headline figures
// computed from them), and the vega-lite plots (rendered to SVG by @ballot/chaos's writePlot):
//
//   plots/throughput-vs-clients   ops/s against closed-loop clients, one line per read mode
//   plots/matrix-throughput       ops/s against cluster size per read mode, one panel per fsync x batching
//   plots/latency-cdf             latency CDF per read mode (the sweep's cluster, --clients clients)
//   plots/availability            availability per fault window per read mode (faults section)
//   plots/availability-by-side    reads and writes on the minority / majority side of partitions, per read mode
//   plots/failover-histogram      time to the first acknowledged write after SIGKILL of the leader (failover section)
//
// Pure functions of the results (no I/O besides writePlots), so the test can check them.

import { writePlot, type VegaLiteSpec } from '@ballot/chaos';
import type { FaultsModeDetail, SideTallies } from './faults.js';
import { type ClientTarget, type MatrixCell, type MatrixResult, type MatrixSectionResult, type MatrixSettings } from './matrix.js';
import {
  TRADEOFF_READ_MODES,
  type EtcdSectionResult,
  type FailoverSectionResult,
  type FaultsSectionResult,
  type TradeoffReadMode,
  type TradeoffSection,
  type TradeoffSettings,
} from './types.js';

/** results.json. */
export interface TradeoffResults {
  readonly benchmark: 'tradeoffs';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly elapsedMs: number;
  /** What the run announced up front. */
  readonly expectedMs: number;
  readonly command: string;
  readonly settings: TradeoffSettings;
  readonly matrixSettings: MatrixSettings;
  readonly machine: Readonly<Record<string, unknown>>;
  readonly matrix: MatrixSectionResult | null;
  readonly faults: FaultsSectionResult | null;
  readonly failover: FailoverSectionResult | null;
  readonly etcd: EtcdSectionResult | null;
  /** A section that threw (the others still ran). */
  readonly sectionErrors: Readonly<Partial<Record<TradeoffSection, string>>>;
  /** Plot files, relative to the output folder. */
  readonly plots: readonly string[];
}

// ---- number formatting ----

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number | null): string => (n === null || !Number.isFinite(n) ? '–' : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
const pct = (n: number | null): string => (n === null ? '–' : `${(100 * n).toFixed(1)}%`);
const times = (n: number): string => `${n >= 10 ? n.toFixed(0) : n.toFixed(2)}x`;
const onOff = (b: boolean): string => (b ? 'on' : 'off');

function table(header: readonly string[], rows: readonly (readonly string[])[], rightFrom = 1): string {
  const align = header.map((_, i) => (i >= rightFrom ? '---:' : '---'));
  return [header, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

// ---- selecting results ----

const same = (r: MatrixCell, c: MatrixCell): boolean =>
  r.readMode === c.readMode && r.nodes === c.nodes && r.fsync === c.fsync && r.batching === c.batching;

/** The measured result of a cell at a client count and placement (matrix or sweep job), if any. */
export function findResult(results: readonly MatrixResult[], cell: MatrixCell, clients: number, target: ClientTarget): MatrixResult | undefined {
  return results.find((r) => same(r, cell) && r.clients === clients && r.target === target && r.figures !== null);
}

/** The reference configuration of the sweep and the CDFs: sweepNodes members, fsync and batching on. */
export const referenceCell = (m: MatrixSettings, readMode: TradeoffReadMode): MatrixCell => ({
  readMode,
  nodes: m.sweepNodes,
  fsync: true,
  batching: true,
});

export interface SweepRow {
  readonly readMode: TradeoffReadMode;
  readonly target: ClientTarget;
  readonly clients: number;
  readonly opsPerSec: number;
  readonly p99Ms: number;
}

/** Throughput-vs-clients rows: every (placement, mode, clients) measured on the reference configuration. */
export function sweepRows(results: readonly MatrixResult[], m: MatrixSettings): SweepRow[] {
  const out: SweepRow[] = [];
  const clientCounts = [...new Set(results.map((r) => r.clients))].sort((a, b) => a - b);
  const targets = [...new Set<ClientTarget>([m.target, ...m.sweepTargets])];
  for (const target of targets) {
    for (const readMode of m.readModes) {
      for (const clients of clientCounts) {
        const r = findResult(results, referenceCell(m, readMode), clients, target);
        if (r?.figures) out.push({ readMode, target, clients, opsPerSec: r.figures.opsPerSec, p99Ms: r.figures.p99Ms });
      }
    }
  }
  return out;
}

export const TARGET_TITLES: Readonly<Record<ClientTarget, string>> = {
  spread: 'spread over members',
  leader: 'all to the leader',
};

// ---- headlines ----

/**
 * The lessons, each computed from two measured cells (skipped when a cell is missing): the price of
 * linearizable reads over serializable ones, lease over ReadIndex, fsync, batching, cluster size.
 */
export function headlines(results: readonly MatrixResult[], m: MatrixSettings, clients: number): string[] {
  const lines: string[] = [];
  const get = (cell: MatrixCell) => findResult(results, cell, clients, m.target)?.figures ?? null;
  const ref = (readMode: TradeoffReadMode) => referenceCell(m, readMode);
  const lin = get(ref('linearizable'));
  const ser = get(ref('serializable'));
  const lease = get(ref('lease'));
  const where = `${m.sweepNodes} members, fsync and batching on, ${clients} clients ${TARGET_TITLES[m.target]}`;
  if (lin && ser) {
    lines.push(
      `Linearizable (ReadIndex) vs serializable reads (${where}): ${int(lin.opsPerSec)} vs ${int(ser.opsPerSec)} ops/s ` +
        `(serializable ${times(ser.opsPerSec / lin.opsPerSec)}); read p50 ${ms(lin.readP50Ms)} vs ${ms(ser.readP50Ms)} ms, ` +
        `p99 of all ops ${ms(lin.p99Ms)} vs ${ms(ser.p99Ms)} ms.`,
    );
  }
  if (lin && lease) {
    lines.push(
      `Lease vs ReadIndex reads (${where}): ${int(lease.opsPerSec)} vs ${int(lin.opsPerSec)} ops/s (${times(lease.opsPerSec / lin.opsPerSec)}); ` +
        `read p50 ${ms(lease.readP50Ms)} vs ${ms(lin.readP50Ms)} ms.`,
    );
  }
  for (const target of m.sweepTargets) {
    if (target === m.target) continue;
    const at = (readMode: TradeoffReadMode) => findResult(results, ref(readMode), clients, target)?.figures ?? null;
    const figs = m.readModes.map((mode) => ({ mode, f: at(mode) })).filter((x) => x.f !== null);
    if (figs.length > 0) {
      lines.push(
        `The same ${clients} clients ${target === 'leader' ? 'all sending to the leader' : 'spread over the members'} (${m.sweepNodes} members): ` +
          figs.map((x) => `${x.mode} ${int(x.f?.opsPerSec ?? 0)} ops/s, read p50 ${ms(x.f?.readP50Ms ?? null)} ms`).join('; ') +
          '.',
      );
    }
  }
  for (const readMode of m.readModes) {
    const on = get(ref(readMode));
    const off = get({ ...ref(readMode), fsync: false });
    if (on && off) {
      lines.push(
        `fsync off (${readMode}, ${m.sweepNodes} members): ${int(off.opsPerSec)} vs ${int(on.opsPerSec)} ops/s with fsync (${times(off.opsPerSec / on.opsPerSec)}); ` +
          `write p50 ${ms(off.writeP50Ms)} vs ${ms(on.writeP50Ms)} ms. Not safe: an acknowledged write can be lost by a power failure.`,
      );
      break;
    }
  }
  for (const readMode of m.readModes) {
    const on = get(ref(readMode));
    const off = get({ ...ref(readMode), batching: false });
    if (on && off) {
      lines.push(
        `Batching off (${readMode}, ${m.sweepNodes} members, fsync on): ${int(off.opsPerSec)} vs ${int(on.opsPerSec)} ops/s with batching (${times(off.opsPerSec / on.opsPerSec)}); ` +
          `write p50 ${ms(off.writeP50Ms)} vs ${ms(on.writeP50Ms)} ms.`,
      );
      break;
    }
  }
  const sizes = [...m.nodes].sort((a, b) => a - b);
  const smallest = sizes[0];
  const largest = sizes[sizes.length - 1];
  if (smallest !== undefined && largest !== undefined && smallest !== largest) {
    for (const readMode of m.readModes) {
      const a = get({ readMode, nodes: smallest, fsync: true, batching: true });
      const b = get({ readMode, nodes: largest, fsync: true, batching: true });
      if (a && b) {
        lines.push(
          `Cluster size (${readMode}, fsync and batching on): ${smallest} member(s) ${int(a.opsPerSec)} ops/s, ${largest} members ${int(b.opsPerSec)} ops/s ` +
            `(${times(b.opsPerSec / a.opsPerSec)}); p99 ${ms(a.p99Ms)} → ${ms(b.p99Ms)} ms.`,
        );
      }
    }
  }
  const best = (mode: TradeoffReadMode) => {
    let top: SweepRow | null = null;
    for (const r of sweepRows(results, m)) if (r.readMode === mode && (top === null || r.opsPerSec > top.opsPerSec)) top = r;
    return top;
  };
  const peaks = m.readModes.map((mode) => ({ mode, top: best(mode) })).filter((p) => p.top !== null);
  if (peaks.length > 0) {
    lines.push(
      `Peak throughput over the client sweep: ${peaks.map((p) => `${p.mode} ${int(p.top?.opsPerSec ?? 0)} ops/s at ${p.top?.clients} clients (${TARGET_TITLES[p.top?.target ?? 'spread']})`).join('; ')}.`,
    );
  }
  return lines;
}

// ---- report.md ----

export function matrixTable(results: readonly MatrixResult[], clients: number): string {
  const order = (r: MatrixResult): number[] => [TRADEOFF_READ_MODES.indexOf(r.readMode), r.nodes, r.fsync ? 0 : 1, r.batching ? 0 : 1];
  const byOrder = (a: MatrixResult, b: MatrixResult): number => {
    const x = order(a);
    const y = order(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  };
  const rows = results
    .filter((r) => r.kind === 'matrix' && r.clients === clients)
    .sort(byOrder)
    .map((r) => {
      const f = r.figures;
      if (f === null) return [r.readMode, String(r.nodes), onOff(r.fsync), onOff(r.batching), 'FAILED', '', '', '', '', '', '', r.error ?? ''];
      return [
        r.readMode,
        String(r.nodes),
        onOff(r.fsync),
        onOff(r.batching),
        int(f.opsPerSec),
        ms(f.p50Ms),
        ms(f.p99Ms),
        ms(f.p999Ms),
        ms(f.readP50Ms),
        ms(f.writeP50Ms),
        f.serverCpuPercent === null ? '–' : `${Math.round(f.serverCpuPercent)}%`,
        f.errors === 0 ? '0' : `${f.errors} ${JSON.stringify(f.errorsByCode)}`,
      ];
    });
  return table(['read mode', 'members', 'fsync', 'batching', 'ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'read p50', 'write p50', 'members CPU', 'errors'], rows, 4);
}

export function sweepTable(results: readonly MatrixResult[], m: MatrixSettings): string {
  const rows = sweepRows(results, m);
  const clientCounts = [...new Set(rows.map((r) => r.clients))].sort((a, b) => a - b);
  const targets = [...new Set(rows.map((r) => r.target))];
  const cell = (target: ClientTarget, mode: TradeoffReadMode, c: number): string => {
    const r = rows.find((x) => x.target === target && x.readMode === mode && x.clients === c);
    return r === undefined ? '–' : `${int(r.opsPerSec)} (p99 ${ms(r.p99Ms)})`;
  };
  const body: string[][] = [];
  for (const target of targets) for (const c of clientCounts) body.push([TARGET_TITLES[target], String(c), ...m.readModes.map((mode) => cell(target, mode, c))]);
  return table(['clients sent', 'clients', ...m.readModes.map((mode) => `${mode} ops/s (p99 ms)`)], body, 1);
}

/** The run's command without its output folder (a new run needs a new one), e.g. 'bench tradeoffs --quick'. */
export function reproduceArgs(command: string): string {
  const words = command.split(' ').filter((w) => w.length > 0);
  const out: string[] = [];
  for (let i = words[0] === 'ballot' ? 1 : 0; i < words.length; i++) {
    const w = words[i] as string;
    if (w === '--out') i++;
    else if (!w.startsWith('--out=')) out.push(w);
  }
  return out.join(' ');
}

export function renderReport(r: TradeoffResults): string {
  const s = r.settings;
  const out: string[] = [];
  out.push('# Consistency trade-offs', '');
  out.push(
    `Run ${r.startedAt} → ${r.finishedAt} (${(r.elapsedMs / 60_000).toFixed(1)} min; announced ${(r.expectedMs / 60_000).toFixed(1)} min)` +
      `${s.quick ? ', --quick' : ''}. Command: \`${r.command}\``,
    '',
    `Machine: ${String(r.machine.cores)} cores (${String(r.machine.cpuModel)}), Node ${String(r.machine.node)}, load average at start ${JSON.stringify(r.machine.loadAverageStart)}.`,
    '',
    `Workload: closed loop, ${s.clients} clients, ${(100 * s.readRatio).toFixed(0)}% reads / ${(100 * (1 - s.readRatio)).toFixed(0)}% puts, ` +
      `${s.keys} keys of ${s.valueBytes} bytes (preloaded), keys drawn uniformly from seed ${s.seed}; etcd v3 JSON API over keep-alive HTTP/1.1, ` +
      `${r.matrixSettings.target === 'spread' ? 'worker w talks to member w mod N (followers forward writes to the leader)' : 'every worker talks to the leader'}; ` +
      `each cell ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured; heartbeat ${s.heartbeatMs} ms, election timeout ${s.electionTimeoutMs} ms.`,
    '',
  );
  const errs = Object.entries(r.sectionErrors);
  if (errs.length > 0) out.push('**Sections that failed:**', '', ...errs.map(([k, v]) => `- ${k}: ${v}`), '');

  if (r.matrix !== null) {
    const lines = headlines(r.matrix.results, r.matrixSettings, s.clients);
    if (lines.length > 0) out.push('## Headlines', '', ...lines.map((l) => `- ${l}`), '');
    out.push(
      '## Matrix',
      '',
      'Read modes: linearizable = ReadIndex (the leader confirms its leadership with a heartbeat round, Raft thesis §6.4); ' +
        'lease = the leader answers alone while its lease holds (§6.4.1; unsafe under clock drift); ' +
        'serializable = any member answers from its own state (may be stale). fsync off = `--unsafe-no-fsync`; batching off = `--max-batch-entries 1`.',
      '',
      matrixTable(r.matrix.results, s.clients),
      '',
      `members CPU: all members' CPU time over the window, in % of one core (this machine has ${String(r.machine.cores)}); the bench client runs on the same cores.`,
      '',
      `## Throughput vs clients (${r.matrixSettings.sweepNodes} members, fsync and batching on; clients spread over the members, or all sent to the leader)`,
      '',
      sweepTable(r.matrix.results, r.matrixSettings),
      '',
    );
  }
  if (r.faults !== null) out.push('## Under faults: availability and correctness per read mode', '', r.faults.markdown.trim(), '');
  if (r.failover !== null) out.push('## Failover: SIGKILL of the leader', '', r.failover.markdown.trim(), '');
  if (r.etcd !== null) out.push('## Side by side with etcd', '', r.etcd.markdown.trim(), '');
  if (r.plots.length > 0) {
    out.push('## Plots', '');
    for (const p of r.plots.filter((f) => f.endsWith('.svg'))) out.push(`![${p}](${p})`, '');
  }
  out.push(
    '## Reproduce',
    '',
    '```',
    `npm run build && node packages/cli/dist/bin.js ${reproduceArgs(r.command)}`,
    '```',
    '',
  );
  return `${out.join('\n')}\n`;
}

// ---- plots ----

export interface PlotSpec {
  /** Path without extension, relative to the output folder, e.g. 'plots/latency-cdf'. */
  readonly base: string;
  readonly spec: VegaLiteSpec;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** The same colour for a read mode in every plot. */
const MODE_COLOUR = {
  field: 'readMode',
  type: 'nominal',
  title: 'read mode',
  sort: [...TRADEOFF_READ_MODES],
  scale: { domain: [...TRADEOFF_READ_MODES], range: ['#4c78a8', '#f58518', '#e45756'] },
} as const;

/** One line per read mode over quantitative x and y (log scales where asked). */
function modeLines(o: {
  readonly title: string;
  readonly subtitle: string;
  readonly rows: readonly Readonly<Record<string, string | number>>[];
  readonly x: { readonly field: string; readonly title: string; readonly log: boolean; readonly ticks?: readonly number[] };
  readonly y: { readonly field: string; readonly title: string; readonly log: boolean; readonly domain?: readonly [number, number] };
}): VegaLiteSpec {
  const scale = (a: { readonly log: boolean; readonly domain?: readonly [number, number] }) =>
    a.log ? { type: 'log' as const, nice: false } : a.domain !== undefined ? { domain: [...a.domain] } : { zero: true };
  return {
    $schema: SCHEMA,
    title: { text: o.title, subtitle: o.subtitle },
    width: 600,
    height: 300,
    data: { values: o.rows.map((r) => ({ ...r })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: o.x.field,
        type: 'quantitative',
        title: o.x.title,
        scale: scale(o.x),
        ...(o.x.ticks !== undefined ? { axis: { values: [...o.x.ticks], format: 'd' } } : {}),
      },
      y: { field: o.y.field, type: 'quantitative', title: o.y.title, scale: scale(o.y) },
      color: MODE_COLOUR,
    },
  };
}

/** Every plot the results support (a section that did not run has none). */
export function plotSpecs(r: TradeoffResults): PlotSpec[] {
  const out: PlotSpec[] = [];
  const m = r.matrixSettings;
  if (r.matrix !== null) {
    const sweep = sweepRows(r.matrix.results, m);
    if (sweep.length > 0) {
      const spec = modeLines({
        title: 'Throughput vs clients per read mode',
        subtitle: `${m.sweepNodes} members, fsync and batching on, ${(100 * r.settings.readRatio).toFixed(0)}% reads; solid: clients spread over members, dashed: all to the leader`,
        rows: sweep.map((x) => ({ readMode: x.readMode, placement: TARGET_TITLES[x.target], clients: x.clients, opsPerSec: Math.round(x.opsPerSec) })),
        x: { field: 'clients', title: 'closed-loop clients (log)', log: true, ticks: [...new Set(sweep.map((x) => x.clients))] },
        y: { field: 'opsPerSec', title: 'acknowledged ops/s', log: false },
      });
      const encoding = 'encoding' in spec ? spec.encoding : undefined;
      out.push({
        base: 'plots/throughput-vs-clients',
        spec: {
          ...spec,
          encoding: {
            ...encoding,
            strokeDash: {
              field: 'placement',
              type: 'nominal',
              title: 'clients',
              sort: [TARGET_TITLES.spread, TARGET_TITLES.leader],
              legend: null, // the subtitle says which is which (a dash legend of a line+point mark draws no stroke)
            },
          },
        } as VegaLiteSpec,
      });
    }
    const cdfRows: { readMode: string; ms: number; fraction: number }[] = [];
    for (const mode of m.readModes) {
      const f = findResult(r.matrix.results, referenceCell(m, mode), r.settings.clients, m.target)?.figures;
      for (const p of f?.cdf ?? []) if (p.ms > 0) cdfRows.push({ readMode: mode, ms: p.ms, fraction: p.fraction });
    }
    if (cdfRows.length > 0) {
      out.push({
        base: 'plots/latency-cdf',
        spec: modeLines({
          title: 'Latency CDF per read mode (reads and puts)',
          subtitle: `${m.sweepNodes} members, fsync and batching on, ${r.settings.clients} clients`,
          rows: cdfRows,
          x: { field: 'ms', title: 'latency (ms, log)', log: true },
          y: { field: 'fraction', title: 'fraction of operations ≤ x', log: false, domain: [0, 1] },
        }),
      });
    }
    const matrixRows = r.matrix.results
      .filter((x) => x.kind === 'matrix' && x.clients === r.settings.clients && x.figures !== null)
      .map((x) => ({
        readMode: x.readMode,
        members: x.nodes,
        config: `fsync ${onOff(x.fsync)}, batching ${onOff(x.batching)}`,
        opsPerSec: Math.round(x.figures?.opsPerSec ?? 0),
      }));
    if (matrixRows.length > 0) {
      out.push({
        base: 'plots/matrix-throughput',
        spec: {
          $schema: SCHEMA,
          title: { text: 'Throughput by cluster size, read mode, fsync and batching', subtitle: `${r.settings.clients} clients, ${(100 * r.settings.readRatio).toFixed(0)}% reads` },
          data: { values: matrixRows },
          facet: {
            field: 'config',
            type: 'nominal',
            title: null,
            sort: ['fsync on, batching on', 'fsync on, batching off', 'fsync off, batching on', 'fsync off, batching off'],
          },
          columns: 2,
          spec: {
            width: 260,
            height: 180,
            mark: { type: 'line', point: true },
            encoding: {
              x: { field: 'members', type: 'quantitative', title: 'members', scale: { zero: false }, axis: { values: [...new Set(matrixRows.map((x) => x.members))] } },
              y: { field: 'opsPerSec', type: 'quantitative', title: 'ops/s' },
              color: MODE_COLOUR,
            },
          },
        },
      });
    }
  }
  if (r.faults !== null) {
    // The i-th stretch in time order (quiet ones included) is the same stretch of the schedule in
    // every mode (the same seed); its measured start differs by milliseconds from mode to mode.
    const rows = r.faults.modes.flatMap((mode) =>
      [...mode.windows]
        .sort((a, b) => a.startMs - b.startMs)
        .map((w, i) => ({ w, i }))
        .filter(({ w }) => w.availability !== null)
        .map(({ w, i }) => ({
          readMode: mode.readMode,
          window: `${i + 1}. ${w.kind.replace(/^partition-/, '')}, ${(w.startMs / 1000).toFixed(0)}-${(w.endMs / 1000).toFixed(0)} s`,
          order: i,
          availability: w.availability,
        })),
    );
    if (rows.length > 0) {
      out.push({
        base: 'plots/availability',
        spec: {
          $schema: SCHEMA,
          title: {
            text: 'Availability during partitions, per read mode',
            subtitle: `ok / invoked per stretch (partitions and the quiet stretches between them); ${r.faults.nodes} members, seed ${r.faults.seed}, the same schedule for every mode`,
          },
          width: 600,
          height: 260,
          data: { values: rows },
          mark: 'bar',
          encoding: {
            x: { field: 'window', type: 'ordinal', title: 'stretch of the run (in time order)', sort: { field: 'order' }, axis: { labelAngle: -20, labelLimit: 300 } },
            xOffset: { field: 'readMode', type: 'nominal', sort: [...TRADEOFF_READ_MODES] },
            y: { field: 'availability', type: 'quantitative', title: 'availability', scale: { domain: [0, 1] }, axis: { format: '%' } },
            color: MODE_COLOUR,
          },
        },
      });
    }
  }
  if (r.faults !== null) {
    // Reads and writes by the side of the partition the member they went to was on (faults.ts's detail).
    const rows: { readMode: string; side: string; op: string; availability: number }[] = [];
    for (const mode of r.faults.modes) {
      const d = mode as Partial<FaultsModeDetail>;
      const sides: [string, SideTallies | null | undefined][] = [['minority side', d.minoritySide], ['majority side', d.majoritySide]];
      for (const [side, t] of sides) {
        if (t === null || t === undefined) continue;
        for (const [op, tally] of [['reads', t.reads], ['writes', t.writes]] as const) {
          const n = tally.ok + tally.fail + tally.info;
          if (n > 0) rows.push({ readMode: mode.readMode, side, op, availability: tally.ok / n });
        }
      }
    }
    if (rows.length > 0) {
      out.push({
        base: 'plots/availability-by-side',
        spec: {
          $schema: SCHEMA,
          title: {
            text: 'During partitions: who still answers?',
            subtitle: 'ok / invoked over every window with a minority, by the side of the member the operation went to',
          },
          data: { values: rows },
          facet: { column: { field: 'op', type: 'nominal', title: null } },
          spec: {
            width: 260,
            height: 220,
            mark: 'bar',
            encoding: {
              x: { field: 'side', type: 'nominal', title: null, sort: ['minority side', 'majority side'], axis: { labelAngle: 0 } },
              xOffset: { field: 'readMode', type: 'nominal', sort: [...TRADEOFF_READ_MODES] },
              y: { field: 'availability', type: 'quantitative', title: 'availability', scale: { domain: [0, 1] }, axis: { format: '%' } },
              color: MODE_COLOUR,
            },
          },
        },
      });
    }
  }
  if (r.failover !== null) {
    const rows = r.failover.byTimeout.flatMap((t) => t.samplesMs.map((v) => ({ electionTimeout: `${t.electionTimeoutMs} ms`, order: t.electionTimeoutMs, ms: v })));
    if (rows.length > 0) {
      out.push({
        base: 'plots/failover-histogram',
        spec: {
          $schema: SCHEMA,
          title: {
            text: 'Failover: SIGKILL of the leader → first acknowledged write',
            subtitle: `${r.failover.nodes} members; ${r.failover.byTimeout.map((t) => `${t.samplesMs.length}/${t.kills} at ${t.electionTimeoutMs} ms`).join(', ')}`,
          },
          data: { values: rows },
          facet: { row: { field: 'electionTimeout', type: 'ordinal', title: 'election timeout', sort: { field: 'order' } } },
          spec: {
            width: 560,
            height: 110,
            mark: 'bar',
            encoding: {
              x: { field: 'ms', type: 'quantitative', bin: { maxbins: 40 }, title: 'time to first acknowledged write (ms)' },
              y: { aggregate: 'count', type: 'quantitative', title: 'kills' },
            },
          },
          resolve: { scale: { x: 'shared' } },
        },
      });
    }
  }
  return out;
}

/** Renders every plot to <outDir>/<base>.svg and .vl.json; returns the files written (relative). */
export async function writePlots(outDir: string, specs: readonly PlotSpec[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of specs) files.push(...(await writePlot(outDir, p.base, p.spec)));
  return files;
}

