// The live progress line of a chaos run, on stderr (stdout is kept for the results JSON):
//
//   chaos 12.3/30.0 s | 2,412 ops ok 2,301 fail 60 info 51 | 201/s | partition-halves n1,n2 | n3 | leader n4
//
// On a terminal the line is rewritten in place (carriage return, then erase to the end of the line);
// anywhere else (a CI log, a pipe) a full line is printed at most every `intervalMs` (5 s), so a log
// holds a readable trace instead of thousands of overwritten lines. Phases of the run ("starting 5
// nodes", "healing", "checking") are announced on lines of their own in both cases.

import type { OutcomeCounts } from './types.js';

/** What the line shows at one moment. */
export interface ProgressSnapshot {
  readonly elapsedMs: number;
  readonly durationMs: number;
  readonly counts: OutcomeCounts;
  /** Completions per second over the last few seconds. */
  readonly ratePerSec: number;
  /** The fault holding now, as "kind description" (e.g. "partition-halves n1,n2 | n3"), or null when quiet. */
  readonly fault: string | null;
  /** The leader the majority names, or null when there is none (or it is not known yet). */
  readonly leader: string | null;
}

export interface ProgressOptions {
  /** Writes raw text to stderr (no newline added). */
  readonly write: (text: string) => void;
  readonly isTTY: boolean;
  /** Without a terminal, the least time between two printed progress lines. */
  readonly intervalMs?: number;
  /** Milliseconds clock (tests pass their own). */
  readonly now?: () => number;
}

const numberFormat = new Intl.NumberFormat('en-US');

/** `2412` → `2,412`. */
export function formatCount(n: number): string {
  return numberFormat.format(n);
}

/** The progress line for one snapshot (no line ending). */
export function formatProgress(s: ProgressSnapshot): string {
  const { ok, fail, info } = s.counts;
  const ops = ok + fail + info;
  const parts = [
    `chaos ${(s.elapsedMs / 1000).toFixed(1)}/${(s.durationMs / 1000).toFixed(1)} s`,
    `${formatCount(ops)} ops ok ${formatCount(ok)} fail ${formatCount(fail)} info ${formatCount(info)}`,
    `${formatCount(Math.round(s.ratePerSec))}/s`,
    s.fault ?? 'quiet',
    `leader ${s.leader ?? 'none'}`,
  ];
  return parts.join(' | ');
}

/**
 * Counts completions as they happen and estimates the recent rate over a sliding window of
 * one-second buckets (bounded: `windowSeconds` buckets, the oldest dropped).
 */
export class RateMeter {
  private readonly buckets: { second: number; count: number }[] = [];

  constructor(
    private readonly windowSeconds = 3,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(n = 1): void {
    const second = Math.floor(this.now() / 1000);
    const last = this.buckets[this.buckets.length - 1];
    if (last !== undefined && last.second === second) last.count += n;
    else this.buckets.push({ second, count: n });
    this.trim(second);
  }

  /** Completions per second over the last `windowSeconds` whole seconds (the current one included pro rata). */
  perSecond(): number {
    const nowMs = this.now();
    const second = Math.floor(nowMs / 1000);
    this.trim(second);
    if (this.buckets.length === 0) return 0;
    const total = this.buckets.reduce((n, b) => n + b.count, 0);
    const first = this.buckets[0]?.second ?? second;
    const spanSec = Math.max(0.5, nowMs / 1000 - first);
    return total / Math.min(spanSec, this.windowSeconds);
  }

  private trim(second: number): void {
    while (this.buckets.length > 0 && (this.buckets[0]?.second ?? second) <= second - this.windowSeconds) this.buckets.shift();
  }
}

export class ProgressLine {
  private readonly intervalMs: number;
  private readonly now: () => number;
  private lastPrintedMs = -Infinity;
  /** On a TTY: a progress line is on screen with no newline after it. */
  private open = false;

  constructor(private readonly options: ProgressOptions) {
    this.intervalMs = options.intervalMs ?? 5000;
    this.now = options.now ?? (() => performance.now());
  }

  get isTTY(): boolean {
    return this.options.isTTY;
  }

  /** A phase of the run, on a line of its own: "chaos: healing". */
  phase(message: string): void {
    this.endLine();
    this.options.write(`chaos: ${message}\n`);
  }

  /** Shows the snapshot: in place on a TTY, else printed when `intervalMs` has passed (or `force`). */
  update(snapshot: ProgressSnapshot, force = false): void {
    const line = formatProgress(snapshot);
    if (this.options.isTTY) {
      this.options.write(`\r${line}\x1b[K`);
      this.open = true;
      return;
    }
    const t = this.now();
    if (!force && t - this.lastPrintedMs < this.intervalMs) return;
    this.lastPrintedMs = t;
    this.options.write(`${line}\n`);
  }

  /** Ends an in-place line with a newline, so what follows starts on a fresh line. */
  endLine(): void {
    if (this.open) this.options.write('\n');
    this.open = false;
  }
}
