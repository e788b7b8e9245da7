// A member's own notion of time, for chaos experiments (issue 5's clock nemesis). Every member
// process on one machine shares the system clock, so clock faults are injected here instead:
//
//   skewMs   added to every wall-clock read (the lessor's expiry clock, the timeMs stamped in
//            each CommandEnvelope a member proposes)
//   rate     how fast this member's time runs (1.5 = 50% fast): wall-clock reads advance `rate`
//            ms per real ms, and the Raft driver's ticks come every tickMs / rate (so election
//            timeouts, heartbeats and lease-read timing, all counted in ticks, scale with it, and
//            so does monotonicNow, the server's measure of elapsed time: see quorum.ts)
//
// `ballot kv serve --clock-skew-ms N --clock-rate R` set them at start; with --unsafe-debug-clock
// POST /debug/clock {"skewMs":N,"rate":R} changes them while the member runs. Without these flags
// the clock is Date.now itself (no behaviour change).

export interface ClockSetting {
  readonly skewMs: number;
  readonly rate: number;
}

export class NodeClock {
  private skewMsNow: number;
  private rateNow: number;
  /** Real time and unskewed node time at the last change: node time = base + (real - realBase) * rate + skew. */
  private realBaseMs: number;
  private nodeBaseMs: number;
  private readonly listeners: Array<(s: ClockSetting) => void> = [];

  constructor(setting: ClockSetting = { skewMs: 0, rate: 1 }, private readonly realNowMs: () => number = Date.now) {
    checkSetting(setting);
    this.skewMsNow = setting.skewMs;
    this.rateNow = setting.rate;
    this.realBaseMs = realNowMs();
    this.nodeBaseMs = this.realBaseMs;
  }

  /**
   * This member's wall-clock time in whole ms (Date.now() shifted by the skew and scaled by the
   * rate; whole because it is stamped into log entries, whose codec takes integers).
   */
  readonly now = (): number => {
    if (this.rateNow === 1 && this.nodeBaseMs === this.realBaseMs) return this.realNowMs() + this.skewMsNow;
    return Math.floor(this.monotonicNow() + this.skewMsNow);
  };

  /**
   * This member's monotonic time in ms (arbitrary origin), for measuring elapsed time: it runs at
   * the rate but ignores the skew (like CLOCK_MONOTONIC: a wall-clock step does not move it, a
   * drifting oscillator does). Equal to the real clock while the rate was never changed.
   */
  readonly monotonicNow = (): number => this.monotonicAt(this.realNowMs());

  private monotonicAt(realMs: number): number {
    if (this.rateNow === 1 && this.nodeBaseMs === this.realBaseMs) return realMs;
    return this.nodeBaseMs + (realMs - this.realBaseMs) * this.rateNow;
  }

  get setting(): ClockSetting {
    return { skewMs: this.skewMsNow, rate: this.rateNow };
  }

  /** Changes skew and/or rate from now on; time already elapsed keeps the old rate. Listeners hear the new setting. */
  set(change: Partial<ClockSetting>): ClockSetting {
    const next: ClockSetting = { skewMs: change.skewMs ?? this.skewMsNow, rate: change.rate ?? this.rateNow };
    checkSetting(next);
    const real = this.realNowMs();
    this.nodeBaseMs = this.monotonicAt(real); // unskewed node time at the change (continuous: no step)
    this.realBaseMs = real;
    this.skewMsNow = next.skewMs;
    this.rateNow = next.rate;
    for (const l of this.listeners) l(next);
    return next;
  }

  onChange(listener: (s: ClockSetting) => void): void {
    this.listeners.push(listener);
  }
}

/** Bounds: |skew| up to a day; rate in (0, 100]. */
export const CLOCK_LIMITS = { maxAbsSkewMs: 86_400_000, maxRate: 100 } as const;

export function checkSetting(s: ClockSetting): void {
  if (!Number.isFinite(s.skewMs) || Math.abs(s.skewMs) > CLOCK_LIMITS.maxAbsSkewMs) {
    throw new RangeError(`clock skew must be a number of ms within ±${CLOCK_LIMITS.maxAbsSkewMs}, got ${s.skewMs}`);
  }
  if (!Number.isFinite(s.rate) || s.rate <= 0 || s.rate > CLOCK_LIMITS.maxRate) {
    throw new RangeError(`clock rate must be a number in (0, ${CLOCK_LIMITS.maxRate}], got ${s.rate}`);
  }
}
