// The workloads' shared client machinery (pinned workers, open-loop pacing, process ids after info, bounded
// retries) and the register workload against a real 3-member cluster.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileHistoryRecorder } from '../src/chaos/recorder.js';
import type { CallOutcome, JsonValue, WorkloadContext } from '../src/chaos/types.js';
import { meanGapMs, pinnedWorkers, retryUntilOk, runPaced, sleep, type Worker } from '../src/chaos/workloads/common.js';

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
