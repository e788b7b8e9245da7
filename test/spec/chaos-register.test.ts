// The workloads' shared client machinery (pinned workers, open-loop pacing, process ids after info, bounded
// retries) and the register workload against a real 3-member cluster (in this process: real sockets, LevelDB and
// Raft), whose verdict is valid, and invalid once a stale read is injected into its history.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatHistory, injectStaleRead, pairOperations, parseHistory } from '../src/checker/index.js';
import { FileHistoryRecorder } from '../src/chaos/recorder.js';
import type { CallOutcome, JsonValue, WorkloadContext } from '../src/chaos/types.js';
import { meanGapMs, pinnedWorkers, retryUntilOk, runPaced, sleep, type Worker } from '../src/chaos/workloads/common.js';
import { WORKLOADS, workloadFor } from '../src/chaos/workloads/index.js';
import { RegisterWorkload, registerKeys, registerVerdict } from '../src/chaos/workloads/register.js';
import { startInProcessCluster } from './chaos-kv-helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ballot-workload-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A context over `endpoints` (not contacted unless a test calls the clients). */
function context(over: Partial<WorkloadContext> & { readonly endpoints: readonly string[] }): WorkloadContext {
  const outDir = over.outDir ?? tempDir();
  const recorder = over.recorder ?? new FileHistoryRecorder(join(outDir, 'history.jsonl'));
  cleanups.push(() => (recorder as FileHistoryRecorder).close());
  return {
    names: over.endpoints.map((_, i) => `n${i + 1}`),
    concurrency: 6,
    ratePerSec: 100,
    seed: 1,
    readMode: 'linearizable',
    requestTimeoutMs: 1000,
    signal: new AbortController().signal,
    log: () => {},
    ...over,
    outDir,
    recorder,
  };
}

describe('workload workers and pacing', () => {
  it('pins worker w to node w % N, each with its own process id and a seeded random stream', () => {
    const ctx = context({ endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'], concurrency: 7 });
    const workers = pinnedWorkers(ctx, 9);
    expect(workers.map((w) => [w.index, w.nodeIndex, w.node])).toEqual([
      [0, 0, 'n1'], [1, 1, 'n2'], [2, 2, 'n3'], [3, 0, 'n1'], [4, 1, 'n2'], [5, 2, 'n3'], [6, 0, 'n1'],
    ]);
    expect(new Set(workers.map((w) => w.process)).size).toBe(7);
    expect(workers[3]?.client).toBe(workers[0]?.client); // one client per node
    const again = pinnedWorkers(context({ endpoints: ctx.endpoints, concurrency: 7 }), 9);
    const draws = (ws: readonly Worker[]): number[] => ws.map((w) => w.random.int(0, 1_000_000));
    expect(draws(again)).toEqual(draws(workers));
    const otherSalt = pinnedWorkers(context({ endpoints: ctx.endpoints, concurrency: 7 }), 10);
    expect(draws(otherSalt)).not.toEqual(draws(pinnedWorkers(context({ endpoints: ctx.endpoints, concurrency: 7 }), 9)));
  });

  it('perform records invoke and completion, and moves to a new process after info only', async () => {
    const ctx = context({ endpoints: ['http://127.0.0.1:1'], concurrency: 1 });
    const [w] = pinnedWorkers(ctx, 1);
    if (w === undefined) throw new Error('no worker');
    const p0 = w.process;
    await w.perform('write', 'r0', 1, async () => ({ type: 'ok', value: 1 }));
    expect(w.process).toBe(p0);
    await w.perform('write', 'r0', 2, async () => ({ type: 'fail', error: 'NO_LEADER' }));
    expect(w.process).toBe(p0);
    await w.perform('write', 'r0', 3, async () => ({ type: 'info', error: 'TIMEOUT' }));
    expect(w.process).not.toBe(p0);
    const thrown = await w.perform('write', 'r0', 4, async () => {
      throw new Error('boom');
    });
    expect(thrown).toEqual({ type: 'info', error: 'CLIENT: boom' });
    expect(ctx.recorder.events.map((e) => [e.process === p0, e.type, e.value, e.node])).toEqual([
      [true, 'invoke', 1, 'n1'], [true, 'ok', 1, 'n1'],
      [true, 'invoke', 2, 'n1'], [true, 'fail', 2, 'n1'],
      [true, 'invoke', 3, 'n1'], [true, 'info', 3, 'n1'],
      [false, 'invoke', 4, 'n1'], [false, 'info', 4, 'n1'],
    ]);
  });

  it('runPaced: never two operations in flight per worker, all workers run, stops when the signal aborts', async () => {
    const abort = new AbortController();
    const ctx = context({ endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], concurrency: 4, ratePerSec: 400, signal: abort.signal });
    const workers = pinnedWorkers(ctx, 1);
    const inFlight = new Map<number, number>();
    const started = new Map<number, number>();
    let maxInFlight = 0;
    let inFlightAtStop = -1;
    const run = runPaced(ctx, workers, async (w) => {
      inFlight.set(w.index, (inFlight.get(w.index) ?? 0) + 1);
      started.set(w.index, (started.get(w.index) ?? 0) + 1);
      maxInFlight = Math.max(maxInFlight, inFlight.get(w.index) ?? 0);
      await sleep(w.random.int(1, 30)); // some operations overrun their 10 ms slot
      inFlight.set(w.index, (inFlight.get(w.index) ?? 0) - 1);
    });
    await sleep(400);
    abort.abort();
    const countAtAbort = [...started.values()].reduce((a, b) => a + b, 0);
    await run;
    inFlightAtStop = [...inFlight.values()].reduce((a, b) => a + b, 0);
    const countAfter = [...started.values()].reduce((a, b) => a + b, 0);
    expect(maxInFlight).toBe(1);
    expect(inFlightAtStop).toBe(0);
    expect(countAfter).toBe(countAtAbort); // nothing started after the abort
    expect([...started.keys()].sort()).toEqual([0, 1, 2, 3]);
    expect(meanGapMs(400, 4)).toBe(10);
    await runPaced(ctx, workers, async () => {
      throw new Error('never called: the signal is already aborted');
    });
  });

  it('runPaced: a step that throws stops every worker and the error comes out', async () => {
    const ctx = context({ endpoints: ['http://127.0.0.1:1'], concurrency: 3, ratePerSec: 300 });
    const workers = pinnedWorkers(ctx, 1);
    let calls = 0;
    await expect(
      runPaced(ctx, workers, async (w) => {
        calls++;
        if (w.index === 1) throw new Error('recorder full');
        await sleep(5);
      }),
    ).rejects.toThrow('recorder full');
    expect(calls).toBeGreaterThan(0);
  });

  it('retryUntilOk: the first ok, or the last failure once the time is up', async () => {
    let n = 0;
    const flaky = async (): Promise<CallOutcome<JsonValue>> => (++n < 3 ? { type: 'fail', error: `NO_LEADER ${n}` } : { type: 'ok', value: n });
    expect(await retryUntilOk(flaky, { intervalMs: 1 })).toEqual({ type: 'ok', value: 3 });
    let m = 0;
    const never = async (): Promise<CallOutcome<JsonValue>> => ({ type: 'fail', error: `NO_LEADER ${++m}` });
    const out = await retryUntilOk(never, { timeoutMs: 60, intervalMs: 10 });
    expect(out.type).toBe('fail');
    expect(m).toBeGreaterThan(1);
    if (out.type === 'fail') expect(out.error).toBe(`NO_LEADER ${m}`);
  });
});

describe('the register workload on a real 3-member cluster', () => {
  it('100 ops/s with 6 workers for 3 s (longer while a loaded machine has not yet invoked 160 operations): the history parses, every node got traffic, the verdict is valid; a stale read injected into it is caught', async () => {
    const cluster = await startInProcessCluster(3);
    cleanups.push(() => cluster.stop());
    await cluster.leaderIndex();
    const outDir = tempDir();
    const path = join(outDir, 'history.jsonl');
    const recorder = await FileHistoryRecorder.create(path);
    const abort = new AbortController();
    const ctx = context({ endpoints: cluster.endpoints, names: cluster.names, concurrency: 6, ratePerSec: 100, seed: 7, keys: 4, recorder, signal: abort.signal, outDir });
    const workload = workloadFor('register');
    expect(workload.name).toBe('register');
    await workload.setup(ctx);
    recorder.start();
    const running = workload.run(ctx);
    // ~300 operations are offered in 3 s, but a worker never has two in flight: on a loaded machine calls
    // take longer and fewer are invoked. So the run goes on (up to 30 s) until there are enough of them to
    // judge (160, with more than 25 on every node): what is asserted below is counts, never speed.
    const invoked = (name?: string): number => recorder.events.filter((e) => e.type === 'invoke' && (name === undefined || e.node === name)).length;
    await sleep(3000);
    for (const until = Date.now() + 30_000; Date.now() < until && (invoked() < 160 || cluster.names.some((n) => invoked(n) <= 25));) await sleep(100);
    abort.abort();
    await running;
    const runEvents = recorder.events.length;
    await workload.finalReads(ctx);
    await recorder.close();

    // The file is the checker's format and holds exactly the events in memory.
    const text = readFileSync(path, 'utf8');
    const parsed = parseHistory(text);
    expect(parsed).toHaveLength(recorder.events.length);
    const ops = pairOperations(parsed);
    const invokes = recorder.events.slice(0, runEvents).filter((e) => e.type === 'invoke');
    expect(invokes.length).toBeGreaterThan(150);
    for (const name of cluster.names) expect(invokes.filter((e) => e.node === name).length, name).toBeGreaterThan(20);
    const okBy = (f: string): number => recorder.events.filter((e) => e.type === 'ok' && e.f === f).length;
    expect(okBy('read')).toBeGreaterThan(0);
    expect(okBy('write')).toBeGreaterThan(0);
    expect(okBy('cas')).toBeGreaterThan(0); // expecting the last value seen, many succeed
    expect(new Set(invokes.map((e) => e.key))).toEqual(new Set(registerKeys(4)));
    // Values written are unique per key.
    for (const key of registerKeys(4)) {
      const written = ops.flatMap((o) => (o.key === key && o.f === 'write' ? [o.value] : o.key === key && o.f === 'cas' ? [o.next] : []));
      expect(new Set(written).size, key).toBe(written.length);
    }
    // Final reads: one ok linearizable read of every key on every node, after the run.
    const finals = recorder.events.slice(runEvents).filter((e) => e.type === 'ok');
    expect(finals).toHaveLength(3 * 4);
    for (const key of registerKeys(4)) {
      const values = finals.filter((e) => e.key === key).map((e) => JSON.stringify(e.value));
      expect(new Set(values).size, `every node reads the same ${key}`).toBe(1);
    }

    const verdict = await workload.check(ctx, 30_000);
    expect(verdict.valid).toBe(true);
    expect(verdict.model).toBe('register');
    expect(verdict.checks).toEqual([
      expect.objectContaining({ name: 'linearizability', valid: true }),
      expect.objectContaining({ name: 'final-reads', valid: true, summary: 'an ok final read of each of 4 keys on each of 3 nodes' }),
    ]);
    expect(verdict.anomalies).toEqual([]);
    expect(verdict.linearizability?.valid).toBe(true);

    // The same check on a doctored copy: a stale read on r1 (write A, then write B, then read A), the three
    // one after the other at one point of the real history. Adjacent, so no real operation on r1 returns
    // between them: the first operation that cannot take effect is certainly the read of stale-A. (Spread
    // over the history, a real read of r1 returning after stale-B would be the first to fail, and which one
    // depends on how the run's operations interleaved: the lines would then not name stale-A.)
    const doctored = injectStaleRead(parsed.map(({ line: _line, ...e }) => e), 'r1', [200, 200, 200]);
    const doctoredPath = join(outDir, 'doctored.jsonl');
    writeFileSync(doctoredPath, `${formatHistory(doctored)}\n`);
    const reparsed = parseHistory(readFileSync(doctoredPath, 'utf8'));
    const asRecorded = reparsed.map((e) => ({ process: e.process, type: e.type, f: e.f, key: e.key, value: e.value, time: e.timeNs }));
    const bad = registerVerdict({ recorder: { events: asRecorded, invoke: () => { throw new Error('read only'); }, newProcess: () => 0 } }, 30_000);
    expect(bad.valid).toBe(false);
    expect(bad.summary).toMatch(/NOT linearizable: key "r1"/);
    expect(bad.anomalyCount).toBeGreaterThan(0);
    expect(bad.anomalies[0]).toMatch(/^key "r1" is not linearizable/);
    expect(bad.anomalies.join('\n')).toMatch(/stale-A/);
    expect(bad.linearizability?.valid).toBe(false);

    // And by hand: one node's final read of r2 changed to a value r2 never held.
    const lastRead = parsed.map((e, i) => [e, i] as const).filter(([e]) => e.key === 'r2' && e.f === 'read' && e.type === 'ok').pop();
    if (lastRead === undefined) throw new Error('no final read of r2');
    const byHand = recorder.events.map((e, i) => (i === lastRead[1] ? { ...e, value: 987654 } : e));
    const handVerdict = registerVerdict({ recorder: { events: byHand, invoke: () => { throw new Error('read only'); }, newProcess: () => 0 } }, 30_000);
    expect(handVerdict.valid).toBe(false);
    expect(handVerdict.anomalies.join('\n')).toMatch(/read -> 987654/);
  });

  it('final reads: a node\'s keys are read in parallel under one deadline; a key never read ok makes the verdict unknown, not valid', async () => {
    // n1 and n2 refuse every connection (nothing listens on port 1 or 2): no final read can be ok.
    const ctx = context({ endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], keys: 10 });
    const workload = new RegisterWorkload({ finalReadTimeoutMs: 400 });
    await workload.finalReads(ctx);
    const invokes = ctx.recorder.events.filter((e) => e.type === 'invoke');
    for (const node of ['n1', 'n2']) {
      const mine = invokes.filter((e) => e.node === node);
      // Every key's first attempt comes before any key's second: the keys run side by side, not one after the other.
      const firstTen = new Set(mine.slice(0, 10).map((e) => e.key));
      expect(firstTen, node).toEqual(new Set(registerKeys(10)));
      expect(mine.length, node).toBeGreaterThan(10); // retried until the deadline
      // No process has two reads open at once.
      expect(new Set(mine.slice(0, 10).map((e) => e.process)).size).toBe(10);
    }
    expect(ctx.recorder.events.filter((e) => e.type === 'ok')).toEqual([]);
    const verdict = await workload.check(ctx, 10_000);
    expect(verdict.checks.map((c) => [c.name, c.valid])).toEqual([['linearizability', true], ['final-reads', 'unknown']]);
    expect(verdict.valid).toBe('unknown');
    expect(verdict.summary).toMatch(/^final-reads: 20 of 20 final reads never returned ok \(n1: r0, r1, r2, r3, r4 and 5 more; n2: /);
    // A workload whose final reads never ran is not valid either.
    const never = await new RegisterWorkload().check(context({ endpoints: ['http://127.0.0.1:1'], keys: 2 }), 10_000);
    expect(never.valid).toBe('unknown');
  });

  it('workloadFor names what is missing', () => {
    expect(() => workloadFor('nope' as never)).toThrow(/unknown workload "nope"/);
    for (const name of ['bank', 'watch'] as const) {
      if (WORKLOADS[name] === undefined) expect(() => workloadFor(name)).toThrow(/not available in this build/);
      else expect(workloadFor(name).name).toBe(name);
    }
  });

  it('reads are serializable only in readMode serializable, and the key count comes from ctx.keys', () => {
    expect(registerKeys(3)).toEqual(['r0', 'r1', 'r2']);
    expect(() => registerKeys(0)).toThrow(RangeError);
    const w = new RegisterWorkload();
    expect(w.keysOf(context({ endpoints: ['http://127.0.0.1:1'], keys: 5 }))).toHaveLength(5);
    expect(w.keysOf(context({ endpoints: ['http://127.0.0.1:1'] }))).toHaveLength(10);
    expect(new RegisterWorkload({ keys: 2 }).keysOf(context({ endpoints: ['http://127.0.0.1:1'], keys: 5 }))).toHaveLength(2);
  });
});
