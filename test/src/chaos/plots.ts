// Plots of a chaos run (and small chart helpers the benches reuse), written as vega-lite specs and
// rendered to SVG by vega in Node: vega-lite compiles the spec to a vega spec, a headless vega View
// (renderer 'none': no canvas, no DOM) renders it to an SVG string. Every spec carries its data
// inline, so plots/*.vl.json open as they are in the vega editor, and nothing is fetched: the
// loader refuses every URL.
//
// The run's plots: latency of every operation over time (by completion time, log scale, coloured by
// outcome) and throughput over time (operations per second per bucket, by outcome), each with the
// fault windows shaded and labelled by kind. Bounds: at most MAX_LATENCY_POINTS points (the
// downsampling rule is at latencyPoints and is stated in the plot's subtitle) and at most
// MAX_THROUGHPUT_BUCKETS buckets per outcome (buckets widen in whole seconds past that).

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { recordedOps, type Outcome, type RecordedOp } from './results.js';
import type { AppliedWindow, FaultKind, RecordedEvent } from './types.js';

/** A vega-lite spec (vega-lite's own type). */
export type VegaLiteSpec = TopLevelSpec;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** A vega loader that loads nothing (plots are self-contained, so any URL in a spec is a mistake); it notes what it refused. */
function refusingLoader(refused: string[]): vega.Loader {
  const loader = vega.loader();
  const refuse = (uri: string): Promise<never> => {
    refused.push(uri);
    return Promise.reject(new Error(`plots carry their data inline; refusing to load ${uri}`));
  };
  loader.sanitize = refuse;
  loader.load = refuse;
  return loader;
}

/**
 * Renders a vega-lite spec to an SVG document (a string starting with "<svg"). Rejects when vega-lite
 * cannot compile the spec, the spec names a URL to load (refused: data must be inline), or vega
 * reports an error while running it.
 */
export async function renderVegaLiteSvg(spec: VegaLiteSpec): Promise<string> {
  // vega tags inline data rows (a symbol property per row): it works on a copy, the caller's spec stays as it was.
  const compiled = vl.compile(structuredClone(spec)).spec;
  const errors: string[] = [];
  const refused: string[] = [];
  const logger = vega.logger(vega.Error, 'error', (_method, _level, args) => {
    errors.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
  });
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader: refusingLoader(refused), logger });
  try {
    const svg = await view.toSVG();
    if (refused.length > 0) errors.unshift(`data must be inline, refused to load ${refused.join(', ')}`);
    if (errors.length > 0) throw new Error(`vega could not render the plot: ${errors.join('; ')}`);
    return svg;
  } finally {
    view.finalize();
  }
}

/**
 * Writes `<base>.vl.json` (the spec, data inline) and `<base>.svg` under outDir (folders created);
 * returns both paths relative to outDir, e.g. writePlot(dir, 'plots/latency', spec).
 */
export async function writePlot(outDir: string, base: string, spec: VegaLiteSpec): Promise<string[]> {
  const svg = await renderVegaLiteSvg(spec);
  const files = [`${base}.svg`, `${base}.vl.json`];
  await mkdir(dirname(join(outDir, base)), { recursive: true });
  await writeFile(join(outDir, files[0] ?? ''), svg);
  await writeFile(join(outDir, files[1] ?? ''), `${JSON.stringify(spec)}\n`);
  return files;
}

// ---------------------------------------------------------------------------------------------
// Generic helpers (the trade-off bench reuses them)

/** Inline rows of a chart. */
export type ChartRow = Readonly<Record<string, string | number | boolean | null>>;

export interface ChartAxis {
  readonly field: string;
  readonly title: string;
  /** Log scale (every value must be > 0). */
  readonly log?: boolean;
}

export interface LineChartOptions {
  readonly title: string;
  readonly subtitle?: string;
  readonly data: readonly ChartRow[];
  readonly x: ChartAxis;
  readonly y: ChartAxis;
  /** One line per value of this field (a legend titled `title`). */
  readonly series?: { readonly field: string; readonly title: string };
  /** Draws a point at every row too (default true). */
  readonly points?: boolean;
  readonly width?: number;
  readonly height?: number;
}

function scaleOf(axis: ChartAxis): { type: 'log' } | { zero: boolean } {
  return axis.log === true ? { type: 'log' } : { zero: false };
}

/** A line chart of rows (x and y quantitative), optionally one line per series. */
export function lineChart(o: LineChartOptions): VegaLiteSpec {
  return {
    $schema: SCHEMA,
    title: o.subtitle === undefined ? o.title : { text: o.title, subtitle: o.subtitle },
    width: o.width ?? 600,
    height: o.height ?? 300,
    data: { values: o.data.map((r) => ({ ...r })) },
    mark: { type: 'line', point: o.points ?? true },
    encoding: {
      x: { field: o.x.field, type: 'quantitative', title: o.x.title, scale: scaleOf(o.x) },
      y: { field: o.y.field, type: 'quantitative', title: o.y.title, scale: scaleOf(o.y) },
      ...(o.series !== undefined ? { color: { field: o.series.field, type: 'nominal', title: o.series.title } } : {}),
    },
  };
}

/** Rows inlined by histogram(): at most this many values (evenly spaced over the sorted values past it). */
export const MAX_INLINE_VALUES = 20_000;

/** At most `max` items, evenly spaced (item floor(i * n / max) for i < max; the first is kept). */
function evenly<T>(items: readonly T[], max: number): T[] {
  if (items.length <= max) return [...items];
  return Array.from({ length: max }, (_, i) => items[Math.floor((i * items.length) / max)] as T);
}

export interface HistogramOptions {
  readonly title: string;
  readonly subtitle?: string;
  readonly values: readonly number[];
  readonly xTitle: string;
  /** Upper bound on the number of bins (vega-lite picks nice bin edges; default 30). */
  readonly maxBins?: number;
  readonly width?: number;
  readonly height?: number;
}

/** A histogram of numbers (count per bin). */
export function histogram(o: HistogramOptions): VegaLiteSpec {
  const values = evenly([...o.values].sort((a, b) => a - b), MAX_INLINE_VALUES);
  return {
    $schema: SCHEMA,
    title: o.subtitle === undefined ? o.title : { text: o.title, subtitle: o.subtitle },
    width: o.width ?? 600,
    height: o.height ?? 300,
    data: { values: values.map((v) => ({ value: v })) },
    mark: 'bar',
    encoding: {
      x: { field: 'value', type: 'quantitative', bin: { maxbins: o.maxBins ?? 30 }, title: o.xTitle },
      y: { aggregate: 'count', type: 'quantitative', title: 'count' },
    },
  };
}

/** Points per series of cdf(): at most this many steps (evenly spaced ranks past it). */
export const MAX_CDF_POINTS = 1000;

export interface CdfOptions {
  readonly title: string;
  readonly subtitle?: string;
  readonly series: readonly { readonly name: string; readonly values: readonly number[] }[];
  readonly xTitle: string;
  /** Log x axis (values <= 0 are left out). */
  readonly logX?: boolean;
  readonly seriesTitle?: string;
  readonly width?: number;
  readonly height?: number;
}

/**
 * Empirical CDFs, one line per series: the fraction of values <= x. Each series is cut to at most
 * MAX_CDF_POINTS ranks, evenly spaced over the sorted values (the smallest and largest always kept).
 */
export function cdf(o: CdfOptions): VegaLiteSpec {
  const rows: ChartRow[] = [];
  for (const s of o.series) {
    const sorted = s.values.filter((v) => o.logX !== true || v > 0).sort((a, b) => a - b);
    const n = sorted.length;
    const m = Math.min(n, MAX_CDF_POINTS);
    for (let i = 0; i < m; i++) {
      const rank = m === 1 ? n - 1 : Math.round((i * (n - 1)) / (m - 1));
      rows.push({ series: s.name, value: sorted[rank] ?? 0, fraction: (rank + 1) / n });
    }
  }
  return {
    $schema: SCHEMA,
    title: o.subtitle === undefined ? o.title : { text: o.title, subtitle: o.subtitle },
    width: o.width ?? 600,
    height: o.height ?? 300,
    data: { values: rows.map((r) => ({ ...r })) },
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 'value', type: 'quantitative', title: o.xTitle, scale: o.logX === true ? { type: 'log' } : { zero: false } },
      y: { field: 'fraction', type: 'quantitative', title: 'fraction of operations ≤ x', scale: { domain: [0, 1] } },
      color: { field: 'series', type: 'nominal', title: o.seriesTitle ?? 'series' },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Fault windows as shaded layers

/** Every fault kind with its shade (the same kind has the same colour in every run). */
const KIND_COLOURS: Readonly<Record<FaultKind, string>> = {
  'partition-halves': '#9ecae1',
  'partition-isolate-leader': '#6baed6',
  'partition-bridge': '#c6dbef',
  'partition-majorities-ring': '#a1d99b',
  'partition-one-way': '#c7e9c0',
  kill: '#fc9272',
  pause: '#fdd0a2',
  clock: '#dadaeb',
  latency: '#fde0ef',
  reset: '#d9d9d9',
};

/** A fault window as a shaded span of a time axis in seconds. */
export interface ShadedWindow {
  readonly id: number;
  readonly kind: FaultKind;
  readonly startS: number;
  readonly endS: number;
  readonly label: string;
}

/** Fault windows in seconds; a window still open ends at `untilMs`. */
export function shadedWindows(applied: readonly AppliedWindow[], untilMs: number): ShadedWindow[] {
  return applied.map((w) => ({
    id: w.id,
    kind: w.kind,
    startS: round3(w.startMs / 1000),
    endS: round3(Math.max(w.startMs, w.endMs ?? untilMs) / 1000),
    label: `#${w.id} ${w.kind}`,
  }));
}

/**
 * Layers that shade each window over the full height (a rect with x/x2 only) with its kind's colour
 * (legend "fault"), and label it "#id kind" at the top. Empty when there are no windows. The x
 * title must be the one of the other layers (layers share the x axis).
 */
export function windowLayers(windows: readonly ShadedWindow[], xTitle: string): NonNullable<Extract<VegaLiteSpec, { layer: unknown }>['layer']> {
  if (windows.length === 0) return [];
  const kinds = (Object.keys(KIND_COLOURS) as FaultKind[]).filter((k) => windows.some((w) => w.kind === k));
  const values = windows.map((w) => ({ ...w }));
  return [
    {
      data: { values },
      mark: { type: 'rect', opacity: 0.55 },
      encoding: {
        x: { field: 'startS', type: 'quantitative', title: xTitle },
        x2: { field: 'endS' },
        fill: { field: 'kind', type: 'nominal', title: 'fault', legend: { labelLimit: 260 }, scale: { domain: kinds, range: kinds.map((k) => KIND_COLOURS[k]) } },
      },
    },
    {
      data: { values },
      mark: { type: 'text', align: 'left', baseline: 'top', dx: 2, dy: 2, fontSize: 9, color: '#444' },
      encoding: {
        x: { field: 'startS', type: 'quantitative', title: xTitle },
        y: { value: 0 },
        text: { field: 'label', type: 'nominal' },
      },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// The run's plots

export interface RunPlotInput {
  readonly events: readonly RecordedEvent[];
  readonly applied: readonly AppliedWindow[];
  /** Length of the workload phase; the x axis spans at least [0, durationMs]. */
  readonly durationMs: number;
  /** Prefix of the plot titles, e.g. "register, seed 7". */
  readonly title?: string;
}

/** At most this many points in the latency plot. */
export const MAX_LATENCY_POINTS = 20_000;
/** At most this many buckets (per outcome) in the throughput plot. */
export const MAX_THROUGHPUT_BUCKETS = 2_000;

const OUTCOMES: readonly Outcome[] = ['ok', 'fail', 'info'];
const OUTCOME_COLOURS = ['#2ca02c', '#ff7f0e', '#d62728'];
const TIME_TITLE = 'time since the workload started (s)';
/** Latencies below this (1 µs) are drawn at it, so the log axis has no zero. */
const MIN_PLOTTED_LATENCY_MS = 0.001;

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * The completed operations to draw, and the rule used. Rule: fail and info operations are all kept
 * while they fit in half of MAX_LATENCY_POINTS (else that many, evenly spaced in completion order);
 * the ok operations fill the rest of the budget, evenly spaced in completion order.
 */
export function latencyPoints(ops: readonly RecordedOp[], maxPoints = MAX_LATENCY_POINTS): { readonly points: RecordedOp[]; readonly rule: string } {
  const done = ops.filter((op) => op.completeMs !== null).sort((a, b) => (a.completeMs ?? 0) - (b.completeMs ?? 0));
  const n = (x: number): string => x.toLocaleString('en-US');
  if (done.length <= maxPoints) return { points: done, rule: `all ${n(done.length)} completed operations` };
  const bad = done.filter((op) => op.outcome !== 'ok');
  const good = done.filter((op) => op.outcome === 'ok');
  const badKept = evenly(bad, Math.floor(maxPoints / 2));
  const goodKept = evenly(good, maxPoints - badKept.length);
  const rule =
    `${n(badKept.length + goodKept.length)} of ${n(done.length)} operations drawn: ` +
    `${n(goodKept.length)} of ${n(good.length)} ok (evenly spaced), ${badKept.length === bad.length ? 'every' : `${n(badKept.length)} of ${n(bad.length)}`} fail/info`;
  const points = [...badKept, ...goodKept].sort((a, b) => (a.completeMs ?? 0) - (b.completeMs ?? 0));
  return { points, rule };
}

/** Latency over time: one point per completed operation (x completion time, y latency, log). */
export function latencySpec(input: RunPlotInput, ops: readonly RecordedOp[] = recordedOps(input.events)): VegaLiteSpec {
  const { points, rule } = latencyPoints(ops);
  const lastS = points.reduce((m, p) => Math.max(m, p.completeMs ?? 0), input.durationMs) / 1000;
  // Drawn in data order: ok first, then fail, then info, so the rarer outcomes stay visible on top.
  const drawOrder = [...points].sort((a, b) => OUTCOMES.indexOf(a.outcome) - OUTCOMES.indexOf(b.outcome));
  const values = drawOrder.map((p) => ({
    t: round3((p.completeMs ?? 0) / 1000),
    latencyMs: Math.max(MIN_PLOTTED_LATENCY_MS, round3(p.latencyMs ?? 0)),
    outcome: p.outcome,
    f: p.f,
  }));
  const pending = ops.length - ops.filter((op) => op.completeMs !== null).length;
  return {
    $schema: SCHEMA,
    title: {
      text: `${input.title === undefined ? '' : `${input.title}: `}latency of every operation`,
      subtitle: `${rule}${pending > 0 ? `; ${pending} never completed (not drawn)` : ''}${input.applied.length > 0 ? '; shaded: fault windows' : ''}`,
    },
    width: 900,
    height: 320,
    layer: [
      ...windowLayers(shadedWindows(input.applied, input.durationMs), TIME_TITLE),
      {
        data: { values },
        // aria off: no per-point aria-label, which would triple the SVG's size.
        mark: { type: 'point', filled: true, size: 14, opacity: 0.6, aria: false },
        encoding: {
          x: { field: 't', type: 'quantitative', title: TIME_TITLE, scale: { domain: [0, round3(lastS)] } },
          y: { field: 'latencyMs', type: 'quantitative', title: 'latency (ms, log scale)', scale: { type: 'log' } },
          color: { field: 'outcome', type: 'nominal', title: 'outcome', scale: { domain: [...OUTCOMES], range: OUTCOME_COLOURS } },
        },
      },
    ],
  };
}

/**
 * Throughput over time: completed operations per second in buckets of bucketMs (1 s, or the
 * smallest whole number of seconds that keeps at most MAX_THROUGHPUT_BUCKETS buckets), by outcome,
 * by completion time; empty buckets are drawn as 0 so an outage shows as a drop.
 */
export function throughputSpec(input: RunPlotInput, ops: readonly RecordedOp[] = recordedOps(input.events)): VegaLiteSpec {
  const done = ops.filter((op) => op.completeMs !== null);
  const spanMs = done.reduce((m, op) => Math.max(m, op.completeMs ?? 0), input.durationMs);
  const bucketMs = 1000 * Math.max(1, Math.ceil(spanMs / 1000 / MAX_THROUGHPUT_BUCKETS));
  const buckets = Math.max(1, Math.ceil(spanMs / bucketMs));
  const counts = OUTCOMES.map(() => new Array<number>(buckets).fill(0));
  for (const op of done) {
    const b = Math.min(buckets - 1, Math.floor((op.completeMs ?? 0) / bucketMs));
    const row = counts[OUTCOMES.indexOf(op.outcome)];
    if (row !== undefined) row[b] = (row[b] ?? 0) + 1;
  }
  // One row per bucket start; with step-after each holds until the next row, so a last row at the
  // end of the span (repeating the last bucket, `end: true`) closes the last bucket.
  const endS = round3((buckets * bucketMs) / 1000);
  const values = OUTCOMES.flatMap((outcome, i) => {
    const rows = (counts[i] ?? []).map((n, b) => ({ t: (b * bucketMs) / 1000, opsPerSec: round3(n / (bucketMs / 1000)), outcome, end: false }));
    const last = rows.at(-1);
    return last === undefined ? rows : [...rows, { ...last, t: endS, end: true }];
  });
  return {
    $schema: SCHEMA,
    title: {
      text: `${input.title === undefined ? '' : `${input.title}: `}throughput`,
      subtitle: `completed operations per second in ${bucketMs / 1000} s buckets, by completion time${input.applied.length > 0 ? '; shaded: fault windows' : ''}`,
    },
    width: 900,
    height: 260,
    layer: [
      ...windowLayers(shadedWindows(input.applied, input.durationMs), TIME_TITLE),
      {
        data: { values },
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: TIME_TITLE, scale: { domain: [0, endS] } },
          y: { field: 'opsPerSec', type: 'quantitative', title: 'operations per second' },
          color: { field: 'outcome', type: 'nominal', title: 'outcome', scale: { domain: [...OUTCOMES], range: OUTCOME_COLOURS } },
        },
      },
    ],
  };
}

/**
 * Writes plots/latency.svg, plots/throughput.svg and their specs plots/latency.vl.json,
 * plots/throughput.vl.json; returns the four paths relative to outDir.
 */
export async function writeRunPlots(outDir: string, input: RunPlotInput): Promise<string[]> {
  const ops = recordedOps(input.events);
  const latency = await writePlot(outDir, 'plots/latency', latencySpec(input, ops));
  const throughput = await writePlot(outDir, 'plots/throughput', throughputSpec(input, ops));
  return [...latency, ...throughput];
}
