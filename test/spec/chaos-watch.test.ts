// The watch workload: its check (pure) on generated and doctored histories; the Watcher and short
// workload runs on a real cluster, with a watcher's member killed and restarted.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonKvClient } from '../src/chaos/client.js';
import { ChaosCluster, defaultBin } from '../src/chaos/cluster.js';
import { FileHistoryRecorder } from '../src/chaos/recorder.js';
import type { RecordedEvent, WorkloadContext, WorkloadVerdict } from '../src/chaos/types.js';
import {
  checkWatch,
  watchKeys,
  Watcher,
  watchWorkload,
  WATCH_EVENTS_FILE,
  WATCH_REFERENCE_FILE,
  type WatchCheckInput,
  type WatchRecord,
  type WatcherLog,
} from '../src/chaos/workloads/watch.js';
import { assertProperty } from './checker-helpers.js';

const KEYS = watchKeys(3);
const NODES = ['n1', 'n2', 'n3'];
const START = 7;

type Cmd = { readonly kind: 'put' | 'get'; readonly process: number; readonly key: number; readonly outcome: 'ok' | 'fail' | 'info' };

const cmdArb: fc.Arbitrary<Cmd> = fc.record({
  kind: fc.constantFrom('put' as const, 'put' as const, 'get' as const),
  process: fc.nat({ max: 4 }),
  key: fc.nat({ max: KEYS.length - 1 }),
  outcome: fc.constantFrom('ok' as const, 'ok' as const, 'ok' as const, 'fail' as const, 'info' as const),
});

/**
 * A run of a correct store: commands one after another; a put that fails does not happen, an info
 * put happens when its value is even; gets read the current value. Returns the history, the
 * reference (every applied put, one revision each from START) and three watchers that saw it all.
 */
function watchRun(cmds: readonly Cmd[]): WatchCheckInput {
  const history: RecordedEvent[] = [];
  const reference: WatchRecord[] = [];
  const state = new Map<string, number>();
  const nextValue = new Map<string, number>();
  const alias = new Map<number, number>();
  let fresh = 100;
  let time = 0;
  let revision = START - 1;
  const at = (): number => (time += 1_000_000);
  for (const c of cmds) {
    const key = KEYS[c.key] as string;
    const process = alias.get(c.process) ?? c.process;
    const node = NODES[c.process % NODES.length] as string;
    if (c.kind === 'get') {
      history.push({ process, type: 'invoke', f: 'get', key, value: null, time: at(), node });
      history.push({ process, type: c.outcome === 'ok' ? 'ok' : 'fail', f: 'get', key, value: c.outcome === 'ok' ? (state.get(key) ?? null) : null, time: at(), node });
      continue;
    }
    const value = (nextValue.get(key) ?? 0) + 1;
    nextValue.set(key, value);
    history.push({ process, type: 'invoke', f: 'put', key, value, time: at(), node });
    const applied = c.outcome === 'ok' || (c.outcome === 'info' && value % 2 === 0);
    if (applied) {
      state.set(key, value);
      reference.push({ watcher: -1, node: 'n1', revision: ++revision, key, value, type: 'put', time: at() });
    }
    history.push({ process, type: c.outcome, f: 'put', key, value, time: at(), node });
    if (c.outcome === 'info') alias.set(c.process, fresh++);
  }
  const watchers: WatcherLog[] = NODES.map((node, watcher) => ({ watcher, node, events: reference.map((e) => ({ ...e, watcher, node })) }));
  return { watchers, reference, history, startRevision: START, finalRevision: revision };
}

const withWatcher = (input: WatchCheckInput, w: number, events: readonly WatchRecord[]): WatchCheckInput => ({
  ...input,
  watchers: input.watchers.map((x) => (x.watcher === w ? { ...x, events } : x)),
});

const check = (name: string, input: WatchCheckInput): true | false | 'unknown' | undefined =>
  checkWatch(input).checks.find((c) => c.name === name)?.valid;

const CMDS: Cmd[] = [
  { kind: 'put', process: 0, key: 0, outcome: 'ok' },
  { kind: 'put', process: 1, key: 1, outcome: 'ok' },
  { kind: 'get', process: 2, key: 0, outcome: 'ok' },
  { kind: 'put', process: 2, key: 0, outcome: 'ok' },
  { kind: 'put', process: 0, key: 2, outcome: 'fail' },
  { kind: 'put', process: 1, key: 2, outcome: 'ok' },
  { kind: 'get', process: 0, key: 2, outcome: 'ok' },
];

describe('checkWatch', () => {
  it('passes a clean run, every check valid', () => {
    const r = checkWatch(watchRun(CMDS));
    expect(r.valid).toBe(true);
    expect(r.checks.map((c) => [c.name, c.valid])).toEqual([
      ['watch-reference', true],
      ['watch-exactly-once', true],
      ['watch-puts', true],
      ['linearizability', true],
    ]);
    expect(r.anomalyCount).toBe(0);
  });

  it('finds a gap, a duplicate, a reordering and a wrong value, naming the watcher and node', () => {
    const run = watchRun(CMDS);
    const ev = run.watchers[1]?.events as readonly WatchRecord[];
    expect(ev.length).toBe(4);
    const gap = checkWatch(withWatcher(run, 1, [ev[0], ev[2], ev[3]] as WatchRecord[]));
    expect(gap.valid).toBe(false);
    expect(gap.anomalies).toEqual([`watcher 1 on n2: gap: never saw w/1=1@${START + 1}`]);
    const twoGaps = checkWatch(withWatcher(run, 1, [ev[0], ev[3]] as WatchRecord[]));
    expect(twoGaps.anomalies).toEqual([`watcher 1 on n2: gap: never saw 2 events, w/1=1@${START + 1} .. w/0=2@${START + 2}`]);
    const dup = checkWatch(withWatcher(run, 1, [ev[0], ev[1], ev[1], ev[2], ev[3]] as WatchRecord[]));
    expect(dup.anomalies).toHaveLength(1);
    expect(dup.anomalies[0]).toContain('watcher 1 on n2: duplicate: event 3 w/1=1@8');
    const swapped = checkWatch(withWatcher(run, 1, [ev[0], ev[2], ev[1], ev[3]] as WatchRecord[]));
    expect(swapped.anomalies).toHaveLength(1);
    expect(swapped.anomalies[0]).toContain('watcher 1 on n2: out of order: event 3 w/1=1@8');
    const wrong = checkWatch(withWatcher(run, 1, ev.map((e, i) => (i === 2 ? { ...e, value: 99 } : e))));
    expect(wrong.anomalies).toEqual([`watcher 1 on n2: value mismatch at revision ${START + 2}: saw w/0=99@9, the reference has w/0=2@9`]);
    for (const r of [gap, twoGaps, dup, swapped, wrong]) {
      expect(r.checks.find((c) => c.name === 'watch-exactly-once')?.valid).toBe(false);
      expect(r.checks.find((c) => c.name === 'linearizability')?.valid).toBe(true);
    }
  });

  it('a watcher missing only the end (behind, or stopped by a compaction cancel) is unknown, not invalid; a gap before a later event is invalid', () => {
    const run = watchRun(CMDS);
    const ev = run.watchers[1]?.events as readonly WatchRecord[];
    const behind = checkWatch(withWatcher(run, 1, ev.slice(0, 2)));
    expect(behind.valid).toBe('unknown');
    expect(behind.anomalyCount).toBe(0);
    const once = behind.checks.find((c) => c.name === 'watch-exactly-once');
    expect(once?.valid).toBe('unknown');
    expect(once?.summary).toContain(`watcher 1 on n2 stopped at revision ${START + 1}, 2 events short`);
    const none = checkWatch(withWatcher(run, 1, []));
    expect(none.valid).toBe('unknown');
    expect(none.checks.find((c) => c.name === 'watch-exactly-once')?.summary).toContain(`stopped at revision ${START - 1}, 4 events short`);
    const compacted: WatchCheckInput = {
      ...run,
      watchers: run.watchers.map((w) => (w.watcher === 2 ? { ...w, events: w.events.slice(0, 3), stoppedBy: `revision ${START + 3} was compacted (oldest kept ${START + 3})` } : w)),
    };
    const c = checkWatch(compacted);
    expect(c.valid).toBe('unknown');
    expect(c.checks.find((x) => x.name === 'watch-exactly-once')?.summary).toContain(`watcher 2 on n3 stopped at revision ${START + 2}, 1 events short (revision ${START + 3} was compacted`);
    // The same missing end, but a later event did arrive: a gap, invalid (whether or not the watcher was stopped).
    const gapThenLater = checkWatch({ ...compacted, watchers: compacted.watchers.map((w) => (w.watcher === 2 ? { ...w, events: [ev[0], ev[1], ev[3]].map((e) => ({ ...(e as WatchRecord), watcher: 2, node: 'n3' })) } : w)) });
    expect(gapThenLater.valid).toBe(false);
    expect(gapThenLater.anomalies).toEqual([`watcher 2 on n3: gap: never saw w/0=2@${START + 2}`]);
    // Behind, plus a real anomaly on another watcher: invalid.
    const both = checkWatch(withWatcher(withWatcher(run, 1, ev.slice(0, 2)), 0, [ev[0], ev[0], ev[1], ev[2], ev[3]].map((e) => ({ ...(e as WatchRecord), watcher: 0, node: 'n1' }))));
    expect(both.valid).toBe(false);
  });

  it('judges a reference of 150,000 events (no spread of the revisions into Math.max)', () => {
    const n = 150_000;
    const reference: WatchRecord[] = Array.from({ length: n }, (_, i) => ({ watcher: -1, node: 'n1', revision: START + i, key: 'w/0', value: i + 1, type: 'put', time: i }));
    // No recorded history (the linearizability search is not what is under test): every event is then a put from nowhere.
    const r = checkWatch({ watchers: [{ watcher: 0, node: 'n1', events: reference }], reference, history: [], startRevision: START, finalRevision: START + n - 1 });
    expect(r.checks.map((c) => [c.name, c.valid])).toEqual([
      ['watch-reference', true],
      ['watch-exactly-once', true],
      ['watch-puts', false],
      ['linearizability', true],
    ]);
    expect(r.anomalyCount).toBe(n);
  });

  it('finds a lost acknowledged put, a failed put that took effect, a put from nowhere, a put applied twice', () => {
    const run = watchRun(CMDS);
    const ref = run.reference as readonly WatchRecord[];
    // Lost: the store (and so the reference and every watcher) never had w/1=1.
    const lostRef = ref.filter((e) => e.key !== 'w/1');
    const lost = { ...run, reference: lostRef, watchers: run.watchers.map((w) => ({ ...w, events: lostRef })) };
    expect(check('watch-puts', lost)).toBe(false);
    expect(checkWatch(lost).anomalies.some((a) => a.includes('put w/1=1 by process 1 on n2 was acknowledged') && a.includes('a lost write'))).toBe(true);
    // The failed put of w/2=1 took effect.
    const failedRef = [...ref, { watcher: -1, node: 'n1', revision: START + 4, key: 'w/2', value: 1, type: 'put' as const, time: 0 }];
    const failed = { ...run, reference: failedRef, finalRevision: START + 4, watchers: run.watchers.map((w) => ({ ...w, events: failedRef })) };
    expect(check('watch-puts', failed)).toBe(false);
    expect(checkWatch(failed).anomalies.some((a) => a.startsWith('put w/2=1 by process 0 on n1 failed'))).toBe(true);
    // No client ever put w/1=42.
    const phantomRef = [...ref, { watcher: -1, node: 'n1', revision: START + 4, key: 'w/1', value: 42, type: 'put' as const, time: 0 }];
    const phantom = { ...run, reference: phantomRef, finalRevision: START + 4, watchers: run.watchers.map((w) => ({ ...w, events: phantomRef })) };
    expect(checkWatch(phantom).anomalies).toContain('reference event w/1=42@11 is no put any client made (or one that failed)');
    // w/0=1 applied a second time.
    const twiceRef = [...ref, { ...(ref[0] as WatchRecord), revision: START + 4 }];
    const twice = { ...run, reference: twiceRef, finalRevision: START + 4, watchers: run.watchers.map((w) => ({ ...w, events: twiceRef })) };
    expect(checkWatch(twice).anomalies).toContain('put w/0=1 took effect 2 times, at revisions 7, 11');
  });

  it('is unknown, never valid, without a complete reference; invalid when the reference is out of order', () => {
    const run = watchRun(CMDS);
    expect(checkWatch({ ...run, reference: null }).valid).toBe('unknown');
    const short = checkWatch({ ...run, reference: (run.reference as WatchRecord[]).slice(0, 2), watchers: run.watchers.map((w) => ({ ...w, events: w.events.slice(0, 2) })) });
    expect(short.valid).toBe('unknown');
    const ref = run.reference as WatchRecord[];
    const disordered = [ref[1], ref[0], ref[2], ref[3]] as WatchRecord[];
    expect(check('watch-reference', { ...run, reference: disordered })).toBe(false);
  });

  it('finds a stale get through the linearizability check', () => {
    const run = watchRun([...CMDS, { kind: 'get', process: 3, key: 0, outcome: 'ok' }]);
    const history = run.history.map((e, i) => (i === run.history.length - 1 ? { ...e, value: 1 } : e)); // w/0 is 2 by then
    const r = checkWatch({ ...run, history });
    expect(r.valid).toBe(false);
    expect(r.checks.find((c) => c.name === 'linearizability')?.valid).toBe(false);
    expect(r.anomalies[0]).toContain('key "w/0" is not linearizable');
  });

  it('property: clean generated runs pass; one doctored watcher (gap, duplicate, swap, value) fails on that watcher only', () => {
    assertProperty(
      fc.property(
        fc.array(cmdArb, { minLength: 1, maxLength: 40 }),
        fc.nat({ max: NODES.length - 1 }),
        fc.nat(),
        fc.constantFrom('gap' as const, 'duplicate' as const, 'swap' as const, 'value' as const),
        (cmds, w, pick, how) => {
          const run = watchRun(cmds);
          expect(checkWatch(run).valid).toBe(true);
          const ev = run.watchers[w]?.events as readonly WatchRecord[];
          if (ev.length < 2) return;
          const i = pick % (ev.length - 1);
          const doctored = [...ev];
          if (how === 'gap') doctored.splice(i, 1);
          else if (how === 'duplicate') doctored.splice(i + 1, 0, ev[i] as WatchRecord);
          else if (how === 'swap') [doctored[i], doctored[i + 1]] = [ev[i + 1] as WatchRecord, ev[i] as WatchRecord];
          else doctored[i] = { ...(ev[i] as WatchRecord), value: -1 };
          const r = checkWatch(withWatcher(run, w, doctored));
          expect(r.valid).toBe(false);
          expect(r.anomalyCount).toBeGreaterThan(0);
          for (const a of r.anomalies) expect(a.startsWith(`watcher ${w} on ${NODES[w]}: `)).toBe(true);
        },
      ),
      200,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Watchers on a real 3-member cluster (kv serve processes behind the proxy network).

let cluster: ChaosCluster | undefined;
let root: string | undefined;
const stopped: Watcher[] = [];
afterEach(async () => {
  for (const w of stopped.splice(0)) await w.stop();
  await cluster?.stop(1000);
  cluster = undefined;
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

async function startCluster(): Promise<ChaosCluster> {
  expect(existsSync(defaultBin()), `${defaultBin()} is missing: run npm run build`).toBe(true);
  root = mkdtempSync(join(tmpdir(), 'ballot-chaos-watch-'));
  const c = await ChaosCluster.start({
    nodes: 3, outDir: root, heartbeatIntervalMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 2000,
    readMode: 'read-index', unsafeStaleReads: false, unsafeNoFsync: false, debugClock: false,
  });
  cluster = c;
  await c.waitReady(30_000);
  return c;
}

/** Puts until one is ok (the cluster may be electing); returns the write's revision. */
async function putOk(client: JsonKvClient, key: string, value: string): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const r = await client.put(key, value);
    if (r.type === 'ok') return r.value.revision;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`put ${key}=${value} never succeeded`);
}

describe('Watcher (real cluster)', () => {
  it('re-watches from lastSeen + 1 after its member is killed and restarted: exactly once, in order', async () => {
    const c = await startCluster();
    const t0 = process.hrtime.bigint();
    const nowNs = (): number => Number(process.hrtime.bigint() - t0);
    const n1 = new JsonKvClient(c.endpoints[0] as string, { requestTimeoutMs: 2000 });
    const n3 = new JsonKvClient(c.endpoints[2] as string, { requestTimeoutMs: 2000 });
    const base = await n1.range('w/');
    expect(base.type).toBe('ok');
    const startRevision = (base.type === 'ok' ? base.value.revision : 0) + 1;
    const watchers = c.names.map((node, watcher) => new Watcher({ watcher, node, endpoint: c.endpoints[watcher] as string, prefix: 'w/', startRevision, nowNs }));
    for (const w of watchers) {
      stopped.push(w);
      w.start();
    }
    const history: RecordedEvent[] = [];
    let process_ = 0;
    const put = async (client: JsonKvClient, node: string, key: string, value: number): Promise<number> => {
      const p = process_++;
      history.push({ process: p, type: 'invoke', f: 'put', key, value, time: nowNs(), node });
      const rev = await putOk(client, key, String(value));
      history.push({ process: p, type: 'ok', f: 'put', key, value, time: nowNs(), node });
      return rev;
    };
    let v = 0;
    for (let i = 0; i < 20; i++) await put(n1, 'n1', `w/${i % 3}`, ++v);
    const w2 = watchers[1] as Watcher;
    expect(await w2.waitFor(startRevision + 19, 10_000)).toBe(true);
    // Kill the member watcher 1 is pinned to; write on while it is down; start it again.
    await c.kill('n2');
    for (let i = 0; i < 20; i++) await put(n3, 'n3', `w/${i % 3}`, ++v);
    await c.restart('n2');
    let last = 0;
    for (let i = 0; i < 10; i++) last = await put(n1, 'n1', `w/${i % 3}`, ++v);
    for (const w of watchers) expect(await w.waitFor(last, 20_000), `watcher ${w.opts.watcher} reached ${last} (at ${w.lastSeen}); ${w.ends.join('; ')}\n${c.logTails()}`).toBe(true);
    for (const w of watchers) await w.stop();
    expect(w2.streams).toBeGreaterThanOrEqual(2);
    expect(w2.ends.some((e) => e.startsWith('broken'))).toBe(true);
    // The reference: one fresh replay from the start revision.
    const ref = new Watcher({ watcher: -1, node: 'n3', endpoint: c.endpoints[2] as string, prefix: 'w/', startRevision, nowNs, resume: false });
    stopped.push(ref);
    ref.start();
    expect(await ref.waitFor(last, 10_000)).toBe(true);
    await ref.stop();
    expect(ref.events).toHaveLength(50);
    const r = checkWatch({ watchers: watchers.map((w) => ({ watcher: w.opts.watcher, node: w.opts.node, events: w.events })), reference: ref.events, history, startRevision, finalRevision: last });
    expect(r.anomalies).toEqual([]);
    expect(r.valid).toBe(true);
    for (const w of watchers) expect(w.events.map((e) => e.revision)).toEqual(ref.events.map((e) => e.revision));
  });
});

/** setup, run for runMs (calling `during` meanwhile), final reads, check: as the runner does. */
async function runWatchWorkload(runMs: number, during?: (c: ChaosCluster) => Promise<void>): Promise<{ verdict: WorkloadVerdict; recorder: FileHistoryRecorder; outDir: string; notes: string[] }> {
  const c = await startCluster();
  const outDir = root as string;
  const recorder = new FileHistoryRecorder(join(outDir, 'history.jsonl'));
  const abort = new AbortController();
  const notes: string[] = [];
  const ctx: WorkloadContext = {
    endpoints: c.endpoints, names: c.names, concurrency: 6, ratePerSec: 150, seed: 9, readMode: 'linearizable',
    requestTimeoutMs: 1000, recorder, signal: abort.signal, outDir, log: (m) => notes.push(m),
  };
  const workload = watchWorkload();
  await workload.setup(ctx);
  recorder.start();
  const running = workload.run(ctx);
  const started = Date.now();
  if (during !== undefined) await during(c);
  await new Promise((r) => setTimeout(r, Math.max(0, runMs - (Date.now() - started))));
  abort.abort();
  await running;
  await c.waitReady(20_000);
  await workload.finalReads(ctx);
  await recorder.close();
  return { verdict: await workload.check(ctx, 30_000), recorder, outDir, notes };
}

const readJsonl = <T>(path: string): T[] => readFileSync(path, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T);

describe('watch workload (real cluster)', () => {
  it('a 3 s run is valid; its files doctored (a watcher missing an event, an ok put lost) are not', async () => {
    const { verdict, recorder, outDir } = await runWatchWorkload(3000);
    expect(verdict.anomalies).toEqual([]);
    expect(verdict.checks.map((c) => [c.name, c.valid])).toEqual([
      ['watch-reference', true], ['watch-exactly-once', true], ['watch-puts', true], ['linearizability', true],
    ]);
    expect(verdict.valid).toBe(true);
    expect(verdict.model).toBe('kv');
    expect(verdict.linearizability?.valid).toBe(true);
    // The files hold the same run: checked from them, it is valid too.
    const events = readJsonl<WatchRecord>(join(outDir, WATCH_EVENTS_FILE));
    const reference = readJsonl<WatchRecord>(join(outDir, WATCH_REFERENCE_FILE));
    const okPuts = recorder.events.filter((e) => e.f === 'put' && e.type === 'ok').length;
    expect(okPuts).toBeGreaterThan(20);
    expect(reference.length).toBeGreaterThanOrEqual(okPuts);
    const watchers: WatcherLog[] = [0, 1, 2].map((w) => ({ watcher: w, node: `n${w + 1}`, events: events.filter((e) => e.watcher === w) }));
    for (const w of watchers) expect(w.events.map((e) => [e.revision, e.key, e.value])).toEqual(reference.map((e) => [e.revision, e.key, e.value]));
    const startRevision = (reference[0] as WatchRecord).revision;
    const finalRevision = (reference.at(-1) as WatchRecord).revision;
    const input: WatchCheckInput = { watchers, reference, history: recorder.events, startRevision, finalRevision };
    expect(checkWatch(input).valid).toBe(true);
    // Doctored: watcher 2 never got the 5th event.
    const gap = checkWatch(withWatcher(input, 2, (watchers[2] as WatcherLog).events.filter((_, i) => i !== 4)));
    expect(gap.valid).toBe(false);
    expect(gap.anomalies).toEqual([`watcher 2 on n3: gap: never saw ${(() => { const e = reference[4] as WatchRecord; return `${e.key}=${JSON.stringify(e.value)}@${e.revision}`; })()}`]);
    // Doctored: the store lost an acknowledged put (no watcher, nor the reference, has it).
    const okPut = recorder.events.find((e) => e.f === 'put' && e.type === 'ok') as RecordedEvent;
    const lost = (e: WatchRecord): boolean => !(e.key === okPut.key && e.value === okPut.value);
    const lostInput = { ...input, reference: reference.filter(lost), watchers: watchers.map((w) => ({ ...w, events: w.events.filter(lost) })) };
    const lostResult = checkWatch(lostInput);
    expect(lostResult.valid).toBe(false);
    expect(lostResult.anomalies.some((a) => a.includes(`put ${okPut.key}=${JSON.stringify(okPut.value)}`) && a.includes('a lost write'))).toBe(true);
  });

  it('the member of watcher 1 killed mid-run and restarted: still exactly once, in order', async () => {
    const { verdict, notes } = await runWatchWorkload(3500, async (c) => {
      await new Promise((r) => setTimeout(r, 1000));
      await c.kill('n2');
      await new Promise((r) => setTimeout(r, 800));
      await c.restart('n2');
    });
    expect(verdict.anomalies).toEqual([]);
    expect(verdict.valid).toBe(true);
    // n2's watcher watched again after the break (its stream count is in the summary).
    expect(verdict.summary).toMatch(/n2 ([2-9]|\d\d+)\b/);
    expect(notes.some((n) => n.startsWith('watcher 1 on n2: stream 1 ended'))).toBe(true);
  });
});
