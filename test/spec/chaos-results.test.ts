// The chaos run's numbers (summarize) checked against straightforward recomputations on synthetic
// histories, with fast-check properties (fixed seed, printed on failure); and report.html.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, test } from 'vitest';
import { writeRunPlots } from '../src/chaos/plots.js';
import { escapeHtml, reproduceCommand, writeReport } from '../src/chaos/report.js';
import { nearestRank, runWindows, summarize } from '../src/chaos/results.js';
import type { AppliedWindow, ChaosOptions, ChaosResults, FaultKind, RecordedEvent, WorkloadVerdict } from '../src/chaos/types.js';
import { assertProperty } from './checker-helpers.js';

// ---------------------------------------------------------------------------------------------
// Synthetic runs

interface SynthOp {
  readonly gapUs: number;
  readonly latencyUs: number;
  readonly outcome: 'ok' | 'fail' | 'info';
  readonly f: string;
}

interface SynthRun {
  readonly events: RecordedEvent[];
  readonly applied: AppliedWindow[];
  readonly durationMs: number;
}

const KINDS: readonly FaultKind[] = ['partition-halves', 'kill', 'pause', 'clock', 'latency', 'reset'];

/**
 * Each worker runs its ops back to back (a new process id after an info, as Jepsen does); if
 * `pendingLast`, its last invoke never completes. Windows come from alternating gaps and lengths
 * (they may run past the duration; the last may still be open).
 */
function buildRun(workers: readonly (readonly SynthOp[])[], pendingLast: readonly boolean[], durationMs: number, windowSpans: readonly number[], lastOpen: boolean): SynthRun {
  const events: RecordedEvent[] = [];
  let nextPid = 0;
  workers.forEach((ops, w) => {
    let pid = nextPid++;
    let tUs = 0;
    ops.forEach((op, i) => {
      tUs += op.gapUs;
      events.push({ process: pid, type: 'invoke', f: op.f, key: `k${w}`, value: null, time: tUs * 1000 });
      if (i === ops.length - 1 && pendingLast[w] === true) return;
      tUs += op.latencyUs;
      events.push({ process: pid, type: op.outcome, f: op.f, key: `k${w}`, value: null, time: tUs * 1000 });
      if (op.outcome === 'info') pid = nextPid++;
    });
  });
  // Stable sort by time: a process's invoke is never after its completion (latency >= 1 µs).
  events.sort((a, b) => a.time - b.time);
  const applied: AppliedWindow[] = [];
  let t = 0;
  for (let i = 0; i + 1 < windowSpans.length; i += 2) {
    const startMs = t + (windowSpans[i] ?? 0);
    const endMs = startMs + (windowSpans[i + 1] ?? 0);
    const id = applied.length + 1;
    applied.push({ id, kind: KINDS[id % KINDS.length] ?? 'kill', startMs, endMs, nodes: ['n1'], description: `window ${id}` });
    t = endMs;
  }
  const last = applied.at(-1);
  if (lastOpen && last !== undefined) last.endMs = null;
  return { events, applied, durationMs };
}

const synthOp: fc.Arbitrary<SynthOp> = fc.record({
  gapUs: fc.integer({ min: 0, max: 300_000 }),
  latencyUs: fc.integer({ min: 1, max: 400_000 }),
  outcome: fc.constantFrom('ok' as const, 'ok' as const, 'fail' as const, 'info' as const),
  f: fc.constantFrom('read', 'write', 'cas', '__proto__'),
});

const synthRun: fc.Arbitrary<SynthRun> = fc
  .record({
    workers: fc.array(fc.array(synthOp, { maxLength: 30 }), { minLength: 1, maxLength: 5 }),
    pendingLast: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
    durationMs: fc.integer({ min: 0, max: 8000 }),
    windowSpans: fc.array(fc.integer({ min: 0, max: 2500 }), { maxLength: 10 }),
    lastOpen: fc.boolean(),
  })
  .map((r) => buildRun(r.workers, r.pendingLast, r.durationMs, r.windowSpans, r.lastOpen));

// ---------------------------------------------------------------------------------------------
// Straightforward recomputations (quadratic on purpose: no pairing map, no binary search)

interface PlainOp {
  readonly f: string;
  readonly outcome: 'ok' | 'fail' | 'info';
  readonly invokeMs: number;
  readonly completeMs: number | null;
}

/** For each invoke: the first later event of the same process is its completion (if not another invoke). */
function plainOps(events: readonly RecordedEvent[]): PlainOp[] {
  const ops: PlainOp[] = [];
  events.forEach((e, i) => {
    if (e.type !== 'invoke') return;
    const next = events.slice(i + 1).find((x) => x.process === e.process);
    const done = next !== undefined && next.type !== 'invoke' ? next : undefined;
    ops.push({ f: e.f, outcome: done?.type === undefined ? 'info' : (done.type as PlainOp['outcome']), invokeMs: e.time / 1e6, completeMs: done === undefined ? null : done.time / 1e6 });
  });
  return ops;
}

/** The smallest value v with at least p % of the values <= v. */
function plainPercentile(values: readonly number[], p: number): number {
  const candidates = [...values].sort((a, b) => a - b);
  return candidates.find((v) => values.filter((x) => x <= v).length >= (p / 100) * values.length) ?? 0;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

describe('summarize', () => {
  test('counts, byFunction, latency and throughput agree with a straightforward recomputation', () => {
    assertProperty(
      fc.property(synthRun, (run) => {
        const s = summarize(run);
        const plain = plainOps(run.events);
        const count = (ops: readonly PlainOp[], o: PlainOp['outcome']): number => ops.filter((x) => x.outcome === o).length;
        expect(s.ops).toBe(plain.length);
        expect(s.ops).toBe(run.events.filter((e) => e.type === 'invoke').length);
        expect(s.counts).toEqual({ ok: count(plain, 'ok'), fail: count(plain, 'fail'), info: count(plain, 'info') });
        expect(s.counts.ok + s.counts.fail + s.counts.info).toBe(s.ops);
        const fs = [...new Set(plain.map((x) => x.f))].sort();
        expect(Object.keys(s.byFunction)).toEqual(fs);
        for (const f of fs) {
          const of = plain.filter((x) => x.f === f);
          expect(Object.getOwnPropertyDescriptor(s.byFunction, f)?.value).toEqual({ ok: count(of, 'ok'), fail: count(of, 'fail'), info: count(of, 'info') });
        }
        const lat = plain.filter((x) => x.outcome === 'ok').map((x) => (x.completeMs ?? 0) - x.invokeMs);
        expect(s.latencyMs.count).toBe(lat.length);
        const want = [50, 90, 99, 99.9, 100].map((p) => round3(plainPercentile(lat, p)));
        const got = [s.latencyMs.p50, s.latencyMs.p90, s.latencyMs.p99, s.latencyMs.p999, s.latencyMs.max];
        got.forEach((g, i) => expect(g).toBeCloseTo(want[i] ?? NaN, 9));
        // Percentiles are monotone.
        got.forEach((g, i) => expect(g).toBeGreaterThanOrEqual(got[i - 1] ?? 0));
        const okInRun = plain.filter((x) => x.outcome === 'ok' && x.completeMs !== null && x.completeMs <= run.durationMs).length;
        expect(s.throughputPerSec).toBeCloseTo(run.durationMs > 0 ? okInRun / (run.durationMs / 1000) : 0, 2);
      }),
      150,
    );
  });

  test('windows tile [0, duration], keep the fault windows in order, and count every op invoked inside', () => {
    assertProperty(
      fc.property(synthRun, (run) => {
        const s = summarize(run);
        const w = s.windows;
        expect(w.length).toBeGreaterThan(0);
        expect(w[0]?.startMs).toBe(0);
        expect(w.at(-1)?.endMs).toBe(run.durationMs);
        w.forEach((x, i) => {
          expect(x.endMs).toBeGreaterThanOrEqual(x.startMs);
          if (i > 0) expect(x.startMs).toBe(w[i - 1]?.endMs);
          if (x.kind === 'quiet') {
            expect(x.id).toBe(0);
            expect(x.endMs).toBeGreaterThan(x.startMs); // empty quiet stretches are left out
            expect(w[i - 1]?.kind).not.toBe('quiet');
          }
        });
        expect(w.filter((x) => x.kind !== 'quiet').map((x) => x.id)).toEqual(run.applied.map((a) => a.id));
        const plain = plainOps(run.events);
        for (const x of w) {
          const last = x === w.at(-1);
          const inside = plain.filter((o) => o.invokeMs >= x.startMs && (o.invokeMs < x.endMs || (last && o.invokeMs === x.endMs)));
          const c = { ok: inside.filter((o) => o.outcome === 'ok').length, fail: inside.filter((o) => o.outcome === 'fail').length, info: inside.filter((o) => o.outcome === 'info').length };
          expect(x.counts).toEqual(c);
          expect(x.availability).toBe(inside.length === 0 ? null : c.ok / inside.length);
        }
        const total = w.reduce((n, x) => n + x.counts.ok + x.counts.fail + x.counts.info, 0);
        expect(total).toBe(plain.filter((o) => o.invokeMs <= run.durationMs).length);
      }),
      150,
    );
  });

  test('a hand-built run: exact numbers', () => {
    const ms = 1e6;
    const events: RecordedEvent[] = [];
    // Ten ok reads with latencies 1..10 ms, one after another on process 0, from t = 0.
    let t = 0;
    for (let i = 1; i <= 10; i++) {
      events.push({ process: 0, type: 'invoke', f: 'read', key: 'r0', value: null, time: t });
      t += i * ms;
      events.push({ process: 0, type: 'ok', f: 'read', key: 'r0', value: 1, time: t });
    }
    // t = 55 ms. Process 1: a write that fails at 60..61 ms, a cas that times out (info) at 70..80 ms, and
    // process 2 a write invoked at 90 ms that never returns.
    events.push({ process: 1, type: 'invoke', f: 'write', key: 'r0', value: 5, time: 60 * ms });
    events.push({ process: 1, type: 'fail', f: 'write', key: 'r0', value: 5, time: 61 * ms, error: 'NO_LEADER' });
    events.push({ process: 1, type: 'invoke', f: 'cas', key: 'r0', value: [1, 2], time: 70 * ms });
    events.push({ process: 1, type: 'info', f: 'cas', key: 'r0', value: [1, 2], time: 80 * ms, error: 'TIMEOUT' });
    events.push({ process: 2, type: 'invoke', f: 'write', key: 'r0', value: 6, time: 90 * ms });
    // Process 3: a read invoked exactly at the end of the run (the last window takes it), ok after it.
    events.push({ process: 3, type: 'invoke', f: 'read', key: 'r0', value: null, time: 100 * ms });
    events.push({ process: 3, type: 'ok', f: 'read', key: 'r0', value: 6, time: 102 * ms });
    const applied: AppliedWindow[] = [{ id: 1, kind: 'partition-isolate-leader', startMs: 58, endMs: 85, nodes: ['n2'], description: 'isolate n2 (the leader)' }];
    const s = summarize({ events, applied, durationMs: 100 });
    expect(s.ops).toBe(14);
    expect(s.counts).toEqual({ ok: 11, fail: 1, info: 2 });
    expect(s.byFunction).toEqual({ cas: { ok: 0, fail: 0, info: 1 }, read: { ok: 11, fail: 0, info: 0 }, write: { ok: 0, fail: 1, info: 1 } });
    // Latencies 1, 2, 2, 3, ..., 10: p50 is the 6th smallest, p90 the 10th, p99 the 11th.
    expect(s.latencyMs).toEqual({ count: 11, p50: 5, p90: 9, p99: 10, p999: 10, max: 10 });
    expect(s.throughputPerSec).toBe(100); // 10 ok completed within the 0.1 s (the 11th completes after it)
    expect(s.windows).toEqual([
      { id: 0, kind: 'quiet', description: 'quiet (lead-in, before #1)', startMs: 0, endMs: 58, counts: { ok: 10, fail: 0, info: 0 }, availability: 1 },
      { id: 1, kind: 'partition-isolate-leader', description: 'isolate n2 (the leader)', startMs: 58, endMs: 85, counts: { ok: 0, fail: 1, info: 1 }, availability: 0 },
      { id: 0, kind: 'quiet', description: 'quiet (recovery, after #1)', startMs: 85, endMs: 100, counts: { ok: 1, fail: 0, info: 1 }, availability: 0.5 },
    ]);
  });

  test('nearest rank: the ceil(p/100 * n)-th smallest', () => {
    expect(nearestRank([], 50)).toBe(0);
    expect(nearestRank([7], 99.9)).toBe(7);
    expect(nearestRank([1, 2, 3, 4], 50)).toBe(2);
    expect(nearestRank([1, 2, 3, 4], 51)).toBe(3);
    expect(nearestRank([1, 2, 3, 4], 100)).toBe(4);
  });

  test('runWindows clamps windows to the run, makes them disjoint, and ends an open one at the duration', () => {
    const w = (id: number, startMs: number, endMs: number | null): AppliedWindow => ({ id, kind: 'kill', startMs, endMs, nodes: [], description: `w${id}` });
    const out = runWindows([w(2, 500, 900), w(1, 100, 600), w(3, 950, null)], 1000);
    expect(out.map((x) => [x.id, x.kind, x.startMs, x.endMs])).toEqual([
      [0, 'quiet', 0, 100],
      [1, 'kill', 100, 600],
      [2, 'kill', 600, 900],
      [0, 'quiet', 900, 950],
      [3, 'kill', 950, 1000],
    ]);
    expect(runWindows([], 500).map((x) => [x.kind, x.startMs, x.endMs, x.description])).toEqual([['quiet', 0, 500, 'quiet (no fault)']]);
    expect(runWindows([w(1, 2000, 3000)], 1000).map((x) => [x.id, x.startMs, x.endMs])).toEqual([
      [0, 0, 1000],
      [1, 1000, 1000],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// report.html

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const EVIL = '<script>alert("x")</script>';

function resultsFor(run: SynthRun, outDir: string, verdict: Partial<WorkloadVerdict>): ChaosResults {
  const s = summarize(run);
  return {
    valid: verdict.valid ?? false,
    workload: 'register',
    seed: 42,
    nodes: 3,
    nemeses: ['partition', 'kill'],
    readMode: 'linearizable',
    unsafe: ['unsafe-stale-reads'],
    ...s,
    byFunction: { ...s.byFunction, [EVIL]: { ok: 1, fail: 0, info: 0 } },
    verdict: {
      valid: verdict.valid ?? false,
      checks: [{ name: 'linearizability', valid: verdict.valid ?? false, summary: `key ${EVIL} has no linearization` }],
      summary: verdict.summary ?? 'not linearizable: 1 key of 4',
      anomalies: verdict.anomalies ?? [],
      anomalyCount: verdict.anomalyCount ?? 0,
    },
    checkMs: 12,
    outDir,
    files: [],
  };
}

describe('report.html', () => {
  test('self-contained: the verdict, the reproduce command, numbers, windows, plots inline, links; everything escaped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chaos-report-'));
    dirs.push(dir);
    const run = buildRun(
      [Array.from({ length: 40 }, (_, i) => ({ gapUs: 50_000, latencyUs: 2000 + i * 100, outcome: i % 9 === 0 ? ('info' as const) : ('ok' as const), f: 'read' }))],
      [false],
      4000,
      [500, 1000],
      false,
    );
    const applied = run.applied.map((a) => ({ ...a, description: `isolate "n1"><img src=x onerror=alert(1)>` }));
    await writeRunPlots(dir, { ...run, applied });
    await writeFile(join(dir, 'history.jsonl'), run.events.map((e) => JSON.stringify(e)).join('\n'));
    await writeFile(join(dir, 'nemesis.jsonl'), applied.map((a) => JSON.stringify(a)).join('\n'));
    await writeFile(join(dir, 'timeline.html'), '<!doctype html>');
    await mkdir(join(dir, 'nodes'));
    await writeFile(join(dir, 'nodes', 'n1.log'), 'log');
    await writeFile(join(dir, 'nodes', 'n2.log'), 'log');
    const anomalies = Array.from({ length: 150 }, (_, i) => `anomaly ${i}: read of ${EVIL} saw a stale value`);
    const results = resultsFor({ ...run, applied }, dir, { valid: false, anomalies, anomalyCount: 150 });
    expect(await writeReport(dir, results)).toBe('report.html');
    const html = await readFile(join(dir, 'report.html'), 'utf8');

    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<div class="verdict" id="verdict" style="color:#b91c1c;');
    expect(html).toContain('<div class="word">INVALID</div>');
    expect(html).toContain('not linearizable: 1 key of 4');
    expect(html).toContain('npx ballot chaos --nodes 3 --workload register --nemesis partition,kill --duration 4 --seed 42 --read-mode linearizable --unsafe-stale-reads');
    // The window table and the plots (two inline SVGs with their axis titles and shaded windows).
    expect(html).toContain('quiet (lead-in, before #1)');
    expect((html.match(/<svg/g) ?? []).length).toBe(2);
    expect(html).toContain('latency (ms, log scale)');
    expect(html).toContain('operations per second');
    expect(html).toContain(`#1 ${run.applied[0]?.kind}`);
    // Anomalies: the first 100 of 150.
    expect(html).toContain('anomaly 99:');
    expect(html).not.toContain('anomaly 100:');
    expect(html).toContain('The first 100 of 150');
    // Links to the run's files, and nothing fetched from anywhere.
    for (const href of ['timeline.html', 'history.jsonl', 'nemesis.jsonl', 'nodes/n1.log', 'nodes/n2.log', 'plots/latency.vl.json']) expect(html).toContain(`<a href="${href}">`);
    expect(html).not.toMatch(/<script|<link|src=["']?http|href=["']?https?:|@import|url\(/i);
    // Escaped: a function name, a check summary, an anomaly and a window description from the run.
    expect(html).not.toContain(EVIL);
    expect(html).not.toContain('<img src=x');
    expect(html).toContain(escapeHtml(EVIL));
    expect(html).toContain('isolate &quot;n1&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
  });

  test('a valid run is green; a missing plot is noted; the command names every flag given the options', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chaos-report-'));
    dirs.push(dir);
    const run = buildRun([[{ gapUs: 1000, latencyUs: 1000, outcome: 'ok', f: 'write' }]], [false], 1000, [], false);
    const results = resultsFor(run, dir, { valid: true, summary: 'linearizable: 1 key' });
    const options: ChaosOptions = {
      nodes: 3, workload: 'register', nemeses: ['partition', 'kill'], durationMs: 1000, ratePerSec: 50, concurrency: 4, seed: 42,
      outDir: dir, readMode: 'linearizable', unsafeStaleReads: true, unsafeNoFsync: false, heartbeatIntervalMs: 50,
      electionTimeoutMs: 500, requestTimeoutMs: 1000, checkBudgetMs: 60000, keys: 10,
    };
    await writeReport(dir, results, { options });
    const html = await readFile(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('<div class="word">VALID</div>');
    expect(html).toContain('color:#1a7f37');
    expect(html).toContain('plots/latency.svg was not written.');
    expect(html).toContain(
      'npx ballot chaos --nodes 3 --workload register --nemesis partition,kill --duration 1 --seed 42 --read-mode linearizable --rate 50 --concurrency 4 --keys 10 --heartbeat-interval 50 --election-timeout 500 --request-timeout-ms 1000 --check-budget-ms 60000 --unsafe-stale-reads',
    );
    expect(reproduceCommand({ ...results, nemeses: [], unsafe: [] })).toContain('--nemesis none --duration 1');
  });
});
