// Lessor: the leader's lease clock, with an injected clock. Leader-only expiry, extension of every
// lease by its full TTL on becoming leader, keep-alive, remaining TTL, retried revokes (one in
// flight per lease, bounded in all), and close() leaving no timer behind.
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { KvError } from '../src/errors.js';
import { Lessor, type LessorOptions } from '../src/lease/lessor.js';

/** The state machine's side, as far as the lessor sees it: lease records, and revokes that apply later. */
class LeaseTable {
  readonly records = new Map<number, { ttlSec: number }>();
  readonly revokeCalls: { id: number; atMs: number }[] = [];
  /** When set, a revoke fails (no quorum). */
  failing = false;
  /** When set, revokes stay pending until `release()`. */
  hold = false;
  private pending: (() => void)[] = [];

  constructor(private readonly clock: { now: number }) {}

  grant(id: number, ttlSec: number): void {
    this.records.set(id, { ttlSec });
  }

  revoke = (id: number): Promise<void> => {
    this.revokeCalls.push({ id, atMs: this.clock.now });
    if (this.failing) return Promise.reject(new KvError('NO_LEADER', 'no quorum'));
    const apply = (): void => {
      this.records.delete(id);
    };
    if (this.hold) {
      return new Promise<void>((resolve) => {
        this.pending.push(() => {
          apply();
          resolve();
        });
      });
    }
    apply();
    return Promise.resolve();
  };

  release(): void {
    const p = this.pending;
    this.pending = [];
    for (const f of p) f();
  }
}

function setup(extra: Partial<LessorOptions> = {}): { clock: { now: number }; table: LeaseTable; lessor: Lessor } {
  const clock = { now: 1_000_000 };
  const table = new LeaseTable(clock);
  const lessor = new Lessor({ leases: () => table.records, revoke: table.revoke, nowMs: () => clock.now, checkIntervalMs: 100, ...extra });
  lessors.push(lessor);
  return { clock, table, lessor };
}

/** A leader whose 1 s lease 1 has just expired and whose revoke (failing) is in flight. */
function failingRevokeInFlight(): ReturnType<typeof setup> {
  const ctx = setup();
  ctx.table.grant(1, 1);
  ctx.lessor.setLeader(true);
  ctx.clock.now += 1_000;
  ctx.table.failing = true;
  expect(ctx.lessor.checkExpired()).toBe(1);
  return ctx;
}

const lessors: Lessor[] = [];
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

afterEach(() => {
  for (const l of lessors.splice(0)) l.close();
  vi.useRealTimers();
});

describe('Lessor', () => {
  it('does nothing while a follower: no expiry, keep-alive refused with NO_LEADER, remaining = granted TTL', async () => {
    const { clock, table, lessor } = setup();
    table.grant(7, 5);
    clock.now += 60_000;
    expect(lessor.checkExpired()).toBe(0);
    await flush();
    expect(table.revokeCalls).toEqual([]);
    expect(() => lessor.keepAlive(7)).toThrowError(expect.objectContaining({ code: 'NO_LEADER' }) as Error);
    expect(lessor.remainingSec(7)).toBe(5);
    expect(lessor.remainingSec(8)).toBe(-1);
  });

  it('a new leader extends every lease by its full TTL, then expires it through revoke', async () => {
    const { clock, table, lessor } = setup();
    table.grant(1, 10);
    table.grant(2, 30);
    clock.now += 3_600_000; // an hour without a leader: nothing may expire because of that
    lessor.setLeader(true);
    expect(lessor.remainingSec(1)).toBe(10);
    expect(lessor.remainingSec(2)).toBe(30);
    clock.now += 9_999;
    expect(lessor.checkExpired()).toBe(0);
    expect(lessor.remainingSec(1)).toBe(1);
    clock.now += 1;
    expect(lessor.checkExpired()).toBe(1);
    await flush();
    expect(table.revokeCalls.map((c) => c.id)).toEqual([1]);
    expect(table.records.has(1)).toBe(false);
    expect(lessor.remainingSec(1)).toBe(-1);
    expect(lessor.remainingSec(2)).toBe(20);
  });

  it('keepAlive resets the deadline to now + TTL; an unknown or already expired lease is LEASE_NOT_FOUND', async () => {
    const { clock, table, lessor } = setup();
    table.grant(1, 10);
    lessor.setLeader(true);
    clock.now += 9_000;
    expect(lessor.keepAlive(1)).toBe(10);
    clock.now += 9_000; // 18 s after the leader started; 9 s after the keep-alive
    expect(lessor.checkExpired()).toBe(0);
    expect(lessor.remainingSec(1)).toBe(1);
    clock.now += 1_000;
    expect(() => lessor.keepAlive(1)).toThrowError(expect.objectContaining({ code: 'LEASE_NOT_FOUND' }) as Error);
    expect(() => lessor.keepAlive(99)).toThrowError(expect.objectContaining({ code: 'LEASE_NOT_FOUND' }) as Error);
    expect(lessor.checkExpired()).toBe(1);
    await flush();
    expect(table.records.size).toBe(0);
  });

  it('a lease granted while leader gets its TTL from when the lessor first sees it', () => {
    const { clock, table, lessor } = setup();
    lessor.setLeader(true);
    clock.now += 5_000;
    table.grant(3, 2);
    expect(lessor.remainingSec(3)).toBe(2);
    clock.now += 1_999;
    expect(lessor.checkExpired()).toBe(0);
    clock.now += 1;
    expect(lessor.checkExpired()).toBe(1);
  });

  it('granted() restarts the clock of a re-granted id; the `lease` lookup option is used for single leases', () => {
    const { clock, table } = setup();
    let lookups = 0;
    const lessor = new Lessor({
      leases: () => table.records,
      lease: (id) => {
        lookups++;
        return table.records.get(id);
      },
      revoke: table.revoke,
      nowMs: () => clock.now,
    });
    lessors.push(lessor);
    table.grant(5, 10);
    lessor.setLeader(true);
    clock.now += 9_000;
    table.records.delete(5); // revoked by a client...
    table.grant(5, 10); // ...and granted again with the same id before the next check
    lessor.granted(5, 10);
    expect(lessor.remainingSec(5)).toBe(10);
    expect(lessor.keepAlive(5)).toBe(10);
    expect(lookups).toBe(2);
    clock.now += 9_999;
    expect(lessor.checkExpired()).toBe(0);
  });

  it('a failed revoke is retried at the next check; never two revokes of one lease in flight', async () => {
    const { table, lessor } = failingRevokeInFlight();
    await flush();
    expect(lessor.stats().revokesFailed).toBe(1);
    expect(table.records.has(1)).toBe(true);

    table.failing = false;
    table.hold = true;
    expect(lessor.checkExpired()).toBe(1);
    expect(lessor.checkExpired()).toBe(0);
    expect(lessor.checkExpired()).toBe(0);
    expect(lessor.stats().revokesInFlight).toBe(1);
    table.release();
    await flush();
    expect(table.revokeCalls.map((c) => c.id)).toEqual([1, 1]);
    expect(table.records.has(1)).toBe(false);
    expect(lessor.stats()).toMatchObject({ revokesInFlight: 0, revokesDone: 1 });
  });

  it('bounds revokes in flight; the rest wait for later checks', async () => {
    const { clock, table, lessor } = setup({ maxRevokesInFlight: 3 });
    for (let id = 1; id <= 10; id++) table.grant(id, 1);
    lessor.setLeader(true);
    clock.now += 1_000;
    table.hold = true;
    expect(lessor.checkExpired()).toBe(3);
    expect(lessor.checkExpired()).toBe(0);
    table.release();
    await flush();
    expect(lessor.checkExpired()).toBe(3);
    table.hold = false;
    table.release();
    await flush();
    expect(lessor.checkExpired()).toBe(3);
    await flush();
    expect(lessor.checkExpired()).toBe(1);
    await flush();
    expect(table.records.size).toBe(0);
    expect(new Set(table.revokeCalls.map((c) => c.id)).size).toBe(10);
  });

  it('losing leadership stops expiry; regaining it extends the TTLs again', async () => {
    const { clock, table, lessor } = setup();
    table.grant(1, 10);
    lessor.setLeader(true);
    clock.now += 8_000;
    lessor.setLeader(false);
    clock.now += 100_000;
    expect(lessor.checkExpired()).toBe(0);
    lessor.setLeader(true);
    expect(lessor.remainingSec(1)).toBe(10);
    clock.now += 9_000;
    expect(lessor.checkExpired()).toBe(0);
    clock.now += 1_000;
    expect(lessor.checkExpired()).toBe(1);
    await flush();
    expect(table.records.size).toBe(0);
  });

  it('a revoke from an earlier leadership does not disturb the current one', async () => {
    const { table, lessor } = failingRevokeInFlight();
    lessor.setLeader(false); // the revoke fails after we stepped down
    lessor.setLeader(true);
    await flush();
    expect(lessor.stats()).toMatchObject({ revokesFailed: 0, revokesInFlight: 0 });
    expect(lessor.remainingSec(1)).toBe(1);
  });

  it('the timer runs the checks while leader, and close() leaves no timer behind', async () => {
    vi.useFakeTimers();
    const table = new LeaseTable({ now: 0 });
    const lessor = new Lessor({ leases: () => table.records, revoke: table.revoke, checkIntervalMs: 100 });
    lessors.push(lessor);
    table.grant(1, 1);
    lessor.setLeader(true);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(900);
    expect(table.revokeCalls).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect(table.revokeCalls.map((c) => c.id)).toEqual([1]);
    expect(table.records.size).toBe(0);
    lessor.setLeader(false);
    expect(vi.getTimerCount()).toBe(0);
    lessor.setLeader(true);
    expect(vi.getTimerCount()).toBe(1);
    lessor.close();
    expect(vi.getTimerCount()).toBe(0);
    lessor.setLeader(true); // after close: ignored
    expect(vi.getTimerCount()).toBe(0);
    expect(lessor.checkExpired()).toBe(0);
  });

  it('a failing lease table does not take the timer (or the process) down; checks resume when it recovers', async () => {
    vi.useFakeTimers();
    const table = new LeaseTable({ now: 0 });
    let broken = true;
    const lessor = new Lessor({
      leases: () => {
        if (broken) throw new Error('store closed');
        return table.records;
      },
      revoke: table.revoke,
      checkIntervalMs: 100,
    });
    lessors.push(lessor);
    table.grant(1, 1);
    broken = false;
    lessor.setLeader(true);
    broken = true;
    await vi.advanceTimersByTimeAsync(1_500);
    expect(table.revokeCalls).toEqual([]);
    broken = false;
    await vi.advanceTimersByTimeAsync(200);
    expect(table.revokeCalls.map((c) => c.id)).toEqual([1]);
  });

  it('property: no lease is revoked before its deadline, and every expired lease is revoked while leader', async () => {
    type Step =
      | { kind: 'advance'; ms: number }
      | { kind: 'grant'; id: number; ttlSec: number }
      | { kind: 'keepAlive'; id: number }
      | { kind: 'leader'; on: boolean }
      | { kind: 'check' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 4_000 }) }),
      fc.record({ kind: fc.constant('grant' as const), id: fc.integer({ min: 1, max: 6 }), ttlSec: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('keepAlive' as const), id: fc.integer({ min: 1, max: 6 }) }),
      fc.record({ kind: fc.constant('leader' as const), on: fc.boolean() }),
      fc.constant({ kind: 'check' as const }),
    );
    const seed = 4242;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 80, size: 'max' }), async (steps) => {
          const clock = { now: 0 };
          const table = new LeaseTable(clock);
          const lessor = new Lessor({ leases: () => table.records, revoke: table.revoke, nowMs: () => clock.now });
          // Model: the earliest moment each lease may be revoked (only meaningful while leader).
          const earliest = new Map<number, number>();
          let leader = false;
          try {
            for (const s of steps) {
              switch (s.kind) {
                case 'advance':
                  clock.now += s.ms;
                  break;
                case 'grant':
                  if (table.records.has(s.id)) break;
                  table.grant(s.id, s.ttlSec);
                  if (leader) earliest.set(s.id, clock.now + s.ttlSec * 1000);
                  lessor.remainingSec(s.id); // the server reads it right after the grant applies
                  break;
                case 'keepAlive': {
                  const rec = table.records.get(s.id);
                  if (!leader || rec === undefined) break;
                  try {
                    lessor.keepAlive(s.id);
                    earliest.set(s.id, clock.now + rec.ttlSec * 1000);
                  } catch (e) {
                    expect((e as KvError).code).toBe('LEASE_NOT_FOUND');
                    expect(clock.now).toBeGreaterThanOrEqual(earliest.get(s.id) ?? Infinity);
                  }
                  break;
                }
                case 'leader':
                  if (s.on !== leader) {
                    leader = s.on;
                    lessor.setLeader(s.on);
                    earliest.clear();
                    if (leader) for (const [id, r] of table.records) earliest.set(id, clock.now + r.ttlSec * 1000);
                  }
                  break;
                case 'check': {
                  const before = table.revokeCalls.length;
                  lessor.checkExpired();
                  await flush();
                  for (const c of table.revokeCalls.slice(before)) {
                    expect(leader).toBe(true);
                    expect(c.atMs).toBeGreaterThanOrEqual(earliest.get(c.id) ?? Infinity);
                  }
                  if (leader) for (const [id, t] of earliest) if (t <= clock.now) expect(table.records.has(id)).toBe(false);
                  break;
                }
              }
            }
          } finally {
            lessor.close();
          }
        }),
        { seed, numRuns: 200 },
      );
    } catch (e) {
      console.error(`lessor property failed; seed ${seed}`);
      throw e;
    }
  });
});
