// The driver's clock rate (issue 5's clock nemesis): ticks come every tickMs / tickRate of real
// time, settable at run time. Compared by tick counts against a real-rate driver over the same
// stretch (never by wall-time thresholds). Single-voter drivers over MemoryLogStorage and a
// transport that sends nowhere (one voter needs no peers).
import { afterEach, describe, expect, it } from 'vitest';
import { RaftError } from '../src/core/errors.js';
import { RaftDriver } from '../src/node/driver.js';
import { MemoryLogStorage } from '../src/storage/memory.js';
import type { Transport } from '../src/transport/types.js';

const nowhere = (): Transport => ({
  send: () => undefined,
  onMessage: () => undefined,
  start: async () => undefined,
  close: async () => undefined,
  stats: () => ({ peers: {}, receivedMsgs: 0, rejectedConnections: 0, malformedFrames: 0 }),
});

const drivers: RaftDriver[] = [];

afterEach(async () => {
  await Promise.all(drivers.splice(0).map((d) => d.stop()));
});

async function started(id: string, tickRate?: number): Promise<RaftDriver> {
  const d = new RaftDriver({
    config: { id, peers: [id], electionTicks: 10, heartbeatTicks: 1, randomSeed: 1 },
    storage: new MemoryLogStorage(),
    transport: nowhere(),
    stateMachine: { apply: () => undefined },
    tickMs: 10,
    ...(tickRate !== undefined ? { tickRate } : {}),
  });
  drivers.push(d);
  await d.start();
  return d;
}

/** Ticks `other` makes while `reference` makes `n` more. */
async function ticksWhile(reference: RaftDriver, n: number, other: RaftDriver): Promise<{ reference: number; other: number }> {
  const r0 = reference.ticks;
  const o0 = other.ticks;
  while (reference.ticks < r0 + n) await new Promise((r) => setTimeout(r, 5));
  return { reference: reference.ticks - r0, other: other.ticks - o0 };
}

describe('RaftDriver clock rate', () => {
  it('defaults to 1 and refuses a rate that is not positive', async () => {
    const d = await started('a');
    expect(d.clockRate).toBe(1);
    expect(() => d.setTickRate(0)).toThrow(RaftError);
    expect(() => d.setTickRate(Number.NaN)).toThrow(RaftError);
    expect(d.clockRate).toBe(1);
  });

  it('a faster driver ticks more than a real-rate one; slowed at run time, fewer', async () => {
    const reference = await started('ref');
    const fast = await started('fast', 4);
    const first = await ticksWhile(reference, 20, fast);
    expect(first.other).toBeGreaterThan(first.reference);
    fast.setTickRate(0.25);
    expect(fast.clockRate).toBe(0.25);
    const second = await ticksWhile(reference, 20, fast);
    expect(second.other).toBeLessThan(second.reference);
  });

  it('a faster clock elects a single voter in fewer real ticks of a real-rate one (timeouts are counted in ticks)', async () => {
    const reference = await started('ref2');
    const fast = await started('fast2', 8);
    // Both campaign after their randomized election timeout in ticks; the fast one gets there first.
    while (fast.role !== 'leader' && reference.role !== 'leader') await new Promise((r) => setTimeout(r, 2));
    expect(fast.role).toBe('leader');
  });
});
