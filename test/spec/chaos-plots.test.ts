// The chaos run's plots: vega-lite specs rendered to SVG by vega in Node (no canvas), with the fault
// windows shaded; and the small chart helpers the benches reuse.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { SimRandom } from '@ballot/raft';
import {
  MAX_CDF_POINTS,
  MAX_LATENCY_POINTS,
  cdf,
  histogram,
  latencyPoints,
  latencySpec,
  lineChart,
  renderVegaLiteSvg,
  throughputSpec,
  writeRunPlots,
} from '../src/chaos/plots.js';
import { recordedOps } from '../src/chaos/results.js';
import type { AppliedWindow, RecordedEvent } from '../src/chaos/types.js';

/**
 * A synthetic run of `durationMs`: `workers` clients back to back, each op taking 1..20 ms, except
 * inside [3 s, 5 s) (a partition) where every op fails or times out after 200 ms; the last op of
 * worker 0 never completes.
 */
function syntheticRun(seed: number, durationMs: number, workers = 4): { events: RecordedEvent[]; applied: AppliedWindow[] } {
  const rnd = new SimRandom(seed);
  const events: RecordedEvent[] = [];
  let nextPid = 0;
  for (let w = 0; w < workers; w++) {
    let pid = nextPid++;
    let tUs = rnd.int(0, 1000);
    while (tUs < durationMs * 1000) {
      const f = rnd.pick(['read', 'write', 'cas'] as const);
      events.push({ process: pid, type: 'invoke', f, key: `r${rnd.int(0, 3)}`, value: null, time: tUs * 1000, node: `n${(w % 3) + 1}` });
      const faulty = tUs >= 3_000_000 && tUs < 5_000_000;
      const type = faulty ? (rnd.chance(0.5) ? 'fail' : 'info') : 'ok';
      const latencyUs = faulty ? 200_000 : rnd.int(1000, 20_000);
      if (w === 0 && tUs + latencyUs >= durationMs * 1000) break; // pending to the end
      events.push({ process: pid, type, f, key: 'r0', value: null, time: (tUs + latencyUs) * 1000 });
      if (type === 'info') pid = nextPid++;
      tUs += latencyUs + rnd.int(0, 2000);
    }
  }
  events.sort((a, b) => a.time - b.time);
  const applied: AppliedWindow[] = [
    { id: 1, kind: 'partition-halves', startMs: 3000, endMs: 5000, nodes: ['n1'], description: 'n1 | n2, n3' },
    { id: 2, kind: 'kill', startMs: 6000, endMs: null, nodes: ['n2'], description: 'SIGKILL n2' },
  ];
  return { events, applied };
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('renderVegaLiteSvg', () => {
  test('renders a spec to an SVG with its axis titles, headless', async () => {
    const svg = await renderVegaLiteSvg({
      data: { values: [{ a: 1, b: 3 }, { a: 2, b: 5 }] },
      mark: 'point',
      encoding: { x: { field: 'a', type: 'quantitative', title: 'alpha axis' }, y: { field: 'b', type: 'quantitative', title: 'beta axis' } },
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('alpha axis');
    expect(svg).toContain('beta axis');
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  });

  test('refuses a spec whose data is a URL (plots are self-contained)', async () => {
    await expect(
      renderVegaLiteSvg({ data: { url: 'http://127.0.0.1:9/data.json' }, mark: 'point', encoding: { x: { field: 'a', type: 'quantitative' } } }),
    ).rejects.toThrow(/refused to load http:\/\/127\.0\.0\.1:9\/data\.json/);
  });
});

describe("the run's plots", () => {
  test('writeRunPlots writes both SVGs and both specs, with the windows shaded and labelled', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chaos-plots-'));
    dirs.push(dir);
    const run = syntheticRun(7, 8000);
    const files = await writeRunPlots(dir, { ...run, durationMs: 8000, title: 'register, seed 7' });
    expect([...files].sort()).toEqual(['plots/latency.svg', 'plots/latency.vl.json', 'plots/throughput.svg', 'plots/throughput.vl.json']);
    for (const name of ['latency', 'throughput']) {
      const svg = await readFile(join(dir, 'plots', `${name}.svg`), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('time since the workload started (s)');
      expect(svg).toContain(name === 'latency' ? 'latency (ms, log scale)' : 'operations per second');
      // The windows: their labels, their legend, and a shaded rect in each kind's colour.
      expect(svg).toContain('#1 partition-halves');
      expect(svg).toContain('#2 kill');
      expect(svg).toContain('fault');
      expect(svg).toMatch(/fill="#9ecae1"/);
      expect(svg).toMatch(/fill="#fc9272"/);
      const spec = JSON.parse(await readFile(join(dir, 'plots', `${name}.vl.json`), 'utf8')) as { layer: { data: { values: unknown[] } }[] };
      // Two window layers (rect + label) and the data layer; the open window #2 ends at the duration.
      expect(spec.layer).toHaveLength(3);
      expect(spec.layer[0]?.data.values).toEqual([
        { id: 1, kind: 'partition-halves', startS: 3, endS: 5, label: '#1 partition-halves' },
        { id: 2, kind: 'kill', startS: 6, endS: 8, label: '#2 kill' },
      ]);
    }
  });

  test('the latency plot draws every completed op when under the bound, at its completion time and latency', () => {
    const run = syntheticRun(11, 6000);
    const ops = recordedOps(run.events);
    const spec = latencySpec({ ...run, durationMs: 6000 }) as unknown as { layer: { data: { values: { t: number; latencyMs: number; outcome: string }[] } }[] };
    const values = spec.layer[2]?.data.values ?? [];
    const completed = run.events.filter((e) => e.type !== 'invoke');
    expect(values).toHaveLength(completed.length);
    expect(values.length).toBe(ops.filter((o) => !o.pending).length);
    // Independent: the invoke of each completion is the previous event of its process.
    const lastInvoke = new Map<number, number>();
    const expected: { t: number; latencyMs: number; outcome: string }[] = [];
    for (const e of run.events) {
      if (e.type === 'invoke') lastInvoke.set(e.process, e.time);
      else expected.push({ t: Math.round(e.time / 1e6) / 1000, latencyMs: Math.round((e.time - (lastInvoke.get(e.process) ?? 0)) / 1e3) / 1000, outcome: e.type });
    }
    const key = (v: { t: number; latencyMs: number; outcome: string }): string => `${v.t}|${v.latencyMs}|${v.outcome}`;
    expect(values.map(key).sort()).toEqual(expected.map(key).sort());
  });

  test('downsampling keeps at most the bound, every fail/info op, and an even share of ok ops', () => {
    const ops = Array.from({ length: MAX_LATENCY_POINTS * 3 + 17 }, (_, i) => ({
      process: i,
      f: 'read',
      key: 'r0',
      outcome: i % 1000 === 0 ? ('info' as const) : ('ok' as const),
      pending: false,
      invokeMs: i,
      completeMs: i + 1,
      latencyMs: 1,
    }));
    const { points, rule } = latencyPoints(ops);
    expect(points).toHaveLength(MAX_LATENCY_POINTS);
    const infos = ops.filter((o) => o.outcome === 'info').length;
    expect(points.filter((p) => p.outcome === 'info')).toHaveLength(infos);
    const f = (x: number): string => x.toLocaleString('en-US');
    expect(infos).toBe(61);
    expect(rule).toBe(`${f(MAX_LATENCY_POINTS)} of ${f(ops.length)} operations drawn: ${f(MAX_LATENCY_POINTS - infos)} of ${f(ops.length - infos)} ok (evenly spaced), every fail/info`);
    // Completion order is kept.
    expect(points.every((p, i) => i === 0 || (p.completeMs ?? 0) >= (points[i - 1]?.completeMs ?? 0))).toBe(true);
  });

  test('throughput buckets add up to the completed ops of each outcome, and empty seconds are 0', () => {
    const run = syntheticRun(3, 9000);
    const spec = throughputSpec({ ...run, durationMs: 9000 }) as unknown as { layer: { data: { values: { t: number; opsPerSec: number; outcome: string }[] } }[] };
    const all = spec.layer[2]?.data.values ?? [];
    // The closing row of each line (at the end of the span, repeating the last bucket) is not a bucket.
    const values = all.filter((v) => !(v as { end?: boolean }).end);
    expect(all.length - values.length).toBe(3);
    for (const outcome of ['ok', 'fail', 'info']) {
      const total = values.filter((v) => v.outcome === outcome).reduce((s, v) => s + v.opsPerSec, 0);
      expect(Math.round(total)).toBe(run.events.filter((e) => e.type === outcome).length);
    }
    // 1 s buckets over [0, 9 s] and the last completion; inside the partition (3..5 s) nothing is ok.
    const lastS = Math.max(9, ...run.events.map((e) => e.time / 1e9));
    expect(values.filter((v) => v.outcome === 'ok').map((v) => v.t)).toEqual(Array.from({ length: Math.ceil(lastS) }, (_, i) => i));
    expect(values.find((v) => v.outcome === 'ok' && v.t === 4)?.opsPerSec).toBe(0);
    expect(values.find((v) => v.outcome === 'ok' && v.t === 1)?.opsPerSec).toBeGreaterThan(0);
  });

  test('a run without windows or operations still renders', async () => {
    const svg = await renderVegaLiteSvg(latencySpec({ events: [], applied: [], durationMs: 1000 }));
    expect(svg).toContain('latency (ms, log scale)');
    expect(svg).not.toContain('fault');
    expect(await renderVegaLiteSvg(throughputSpec({ events: [], applied: [], durationMs: 1000 }))).toContain('operations per second');
  });
});

describe('chart helpers', () => {
  test('lineChart, histogram and cdf render with their titles', async () => {
    const line = await renderVegaLiteSvg(
      lineChart({
        title: 'throughput vs clients',
        data: [1, 2, 4, 8].flatMap((c) => [{ clients: c, opsPerSec: c * 100, mode: 'lease' }, { clients: c, opsPerSec: c * 80, mode: 'linearizable' }]),
        x: { field: 'clients', title: 'clients', log: true },
        y: { field: 'opsPerSec', title: 'operations per second' },
        series: { field: 'mode', title: 'read mode' },
      }),
    );
    expect(line).toContain('throughput vs clients');
    expect(line).toContain('read mode');
    const hist = await renderVegaLiteSvg(histogram({ title: 'failover time', values: [310, 420, 380, 900, 450], xTitle: 'failover (ms)' }));
    expect(hist).toContain('failover (ms)');
    expect(hist).toContain('count');
    const spec = cdf({ title: 'latency CDF', xTitle: 'latency (ms)', logX: true, series: [{ name: 'a', values: Array.from({ length: 5000 }, (_, i) => i + 1) }, { name: 'b', values: [3, 1, 2] }] });
    expect(await renderVegaLiteSvg(spec)).toContain('latency CDF');
    const rows = (spec as unknown as { data: { values: { series: string; value: number; fraction: number }[] } }).data.values;
    const a = rows.filter((r) => r.series === 'a');
    expect(a).toHaveLength(MAX_CDF_POINTS);
    expect(a[0]).toEqual({ series: 'a', value: 1, fraction: 1 / 5000 });
    expect(a.at(-1)).toEqual({ series: 'a', value: 5000, fraction: 1 });
    expect(a.every((r, i) => i === 0 || (r.value >= (a[i - 1]?.value ?? 0) && r.fraction > (a[i - 1]?.fraction ?? 0)))).toBe(true);
    expect(rows.filter((r) => r.series === 'b')).toEqual([
      { series: 'b', value: 1, fraction: 1 / 3 },
      { series: 'b', value: 2, fraction: 2 / 3 },
      { series: 'b', value: 3, fraction: 1 },
    ]);
  });
});
