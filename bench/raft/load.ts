// Closed-loop load: N workers, each sends one request, waits for its acknowledgement, sends the
// next. Throughput counts acknowledgements inside the measurement window (after a warm-up);
// latency is recorded for every request acknowledged inside that window. Reusable by any benchmark.

import { BenchRequestError } from './cluster.js';
import { LatencyRecorder, type LatencySummary } from './latency.js';
import { sleep } from './supervisor.js';

export interface ClosedLoopOptions {
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** One request by `worker` (0..concurrency-1); resolves when acknowledged, rejects on failure. */
  readonly op: (worker: number) => Promise<void>;
  /** After a failed request a worker pauses this long, so an unavailable cluster is not hammered (default 10 ms). */
  readonly errorBackoffMs?: number;
  /** How long to wait for in-flight requests after the window closes (default 15 s); stragglers are counted, not awaited. */
  readonly drainTimeoutMs?: number;
  /** Called when the measurement window opens and closes (e.g. to read processes' CPU time). */
  readonly onWindowStart?: () => void;
  readonly onWindowEnd?: () => void;
}

export interface ClosedLoopResult {
  readonly concurrency: number;
  readonly measuredMs: number;
  /** Requests acknowledged inside the window. */
  readonly acked: number;
  readonly ackedPerSec: number;
  /** Failed requests inside the window, and by code. */
  readonly errors: number;
  readonly errorsByCode: Readonly<Record<string, number>>;
  readonly latency: LatencySummary;
  /** This (client) process's CPU time during the window, in ms. */
  readonly clientCpuMs: number;
  /** Requests still in flight when the drain timeout expired. */
  readonly undrained: number;
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const { concurrency, warmupMs, durationMs, op } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be >= 1, got ${concurrency}`);
  const errorBackoffMs = options.errorBackoffMs ?? 10;
  const drainTimeoutMs = options.drainTimeoutMs ?? 15_000;
  const recorder = new LatencyRecorder();
  const errorsByCode: Record<string, number> = {};
  let errors = 0;
  let acked = 0;
  let inFlight = 0;
  let stopped = false;

  const start = performance.now();
  const windowStart = start + warmupMs;
  const windowEnd = windowStart + durationMs;
  const inWindow = (t: number): boolean => t >= windowStart && t <= windowEnd;

  const worker = async (w: number): Promise<void> => {
    while (!stopped) {
      const t0 = performance.now();
      inFlight++;
      try {
        await op(w);
        const t1 = performance.now();
        if (inWindow(t1)) {
          acked++;
          recorder.record(t1 - t0);
        }
      } catch (err) {
        if (inWindow(performance.now())) {
          errors++;
          const code = err instanceof BenchRequestError ? err.code : 'CLIENT_ERROR';
          errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
        }
        await sleep(errorBackoffMs);
      } finally {
        inFlight--;
      }
    }
  };

  const workers = Array.from({ length: concurrency }, (_, w) => worker(w));
  await sleep(Math.max(0, windowStart - performance.now()));
  options.onWindowStart?.();
  const cpuStart = process.cpuUsage();
  await sleep(Math.max(0, windowEnd - performance.now()));
  const cpu = process.cpuUsage(cpuStart);
  options.onWindowEnd?.();
  stopped = true;
  const drained = await Promise.race([Promise.all(workers).then(() => true), sleep(drainTimeoutMs).then(() => false)]);

  return {
    concurrency,
    measuredMs: durationMs,
    acked,
    ackedPerSec: (acked * 1000) / durationMs,
    errors,
    errorsByCode,
    latency: recorder.summary(),
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    undrained: drained ? 0 : inFlight,
  };
}
