// A member's own clock (issue 5's clock nemesis), in-process on loopback: POST /debug/clock is
// 404 unless the member runs with --unsafe-debug-clock; with it, the endpoint reads and changes
// {skewMs, rate}; a faster clock makes the Raft driver tick faster (compared by tick counts with a
// member at the real rate over the same stretch, never by wall-time thresholds).
import { afterEach, describe, expect, it } from 'vitest';
import type { KvNode } from '../src/server/node.js';
import { clusterSpecs, startMember, stopAll, waitFor, waitLeader } from './server-helpers.js';

afterEach(async () => {
  await stopAll();
});

async function single(extra: { unsafeDebugClock?: boolean; clockRate?: number; clockSkewMs?: number } = {}): Promise<KvNode> {
  const [spec] = await clusterSpecs(1);
  const node = await startMember({ ...spec!, ...extra }, { skipPublish: true });
  await waitLeader([node]);
  return node;
}

async function postClock(node: KvNode, body: string): Promise<{ status: number; json: Record<string, unknown> | null }> {
  const res = await fetch(`${node.clientUrls[0]}/debug/clock`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status: res.status, json };
}

/** Ticks each node makes while `reference` makes `n` more. */
async function ticksWhile(reference: KvNode, n: number, others: readonly KvNode[]): Promise<{ reference: number; others: number[] }> {
  const r0 = reference.driver.ticks;
  const o0 = others.map((o) => o.driver.ticks);
  await waitFor(`${n} ticks of the reference member`, () => reference.driver.ticks >= r0 + n, 20_000);
  return { reference: reference.driver.ticks - r0, others: others.map((o, i) => o.driver.ticks - o0[i]!) };
}

describe('/debug/clock', () => {
  it('is 404 without --unsafe-debug-clock, and the clock stays the real one', async () => {
    const node = await single();
    const r = await postClock(node, JSON.stringify({ rate: 10 }));
    expect(r.status).toBe(404);
    expect(node.clock.setting).toEqual({ skewMs: 0, rate: 1 });
    expect(node.driver.clockRate).toBe(1);
    const get = await fetch(`${node.clientUrls[0]}/debug/clock`);
    expect(get.status).toBe(404);
  });

  it('with --unsafe-debug-clock reads and changes skew and rate, and refuses malformed settings', async () => {
    const node = await single({ unsafeDebugClock: true, clockSkewMs: -1000 });
    const before = (await (await fetch(`${node.clientUrls[0]}/debug/clock`)).json()) as Record<string, unknown>;
    expect(before).toMatchObject({ skewMs: -1000, rate: 1 });
    const set = await postClock(node, JSON.stringify({ skewMs: 60_000, rate: 2 }));
    expect(set.status).toBe(200);
    expect(set.json).toMatchObject({ skewMs: 60_000, rate: 2 });
    // The member's wall clock now reads about a minute ahead of the shared system clock.
    expect(node.clock.now() - Date.now()).toBeGreaterThan(30_000);
    expect(node.driver.clockRate).toBe(2);
    for (const bad of ['{"rate":0}', '{"rate":"fast"}', '{"skewMs":1e12}', 'not json', '[1]']) {
      const r = await postClock(node, bad);
      expect(r.status, bad).toBe(400);
      expect(typeof r.json?.error, bad).toBe('string');
    }
    expect(node.clock.setting).toEqual({ skewMs: 60_000, rate: 2 });
  });
});

describe('clock rate', () => {
  it('a faster clock ticks the driver faster than a real-rate member; slowing it at run time makes it tick slower', async () => {
    const reference = await single();
    const fast = await single({ unsafeDebugClock: true, clockRate: 4 });
    expect(fast.driver.clockRate).toBe(4);
    const first = await ticksWhile(reference, 10, [fast]);
    expect(first.others[0]).toBeGreaterThan(first.reference);

    const slowed = await postClock(fast, JSON.stringify({ rate: 0.25 }));
    expect(slowed.status).toBe(200);
    const second = await ticksWhile(reference, 10, [fast]);
    expect(second.others[0]).toBeLessThan(second.reference);
  }, 60_000);

  it('a member started with --clock-rate stays a working leader (writes commit)', async () => {
    const node = await single({ clockRate: 1.5, clockSkewMs: 250 });
    const put = await node.service.put({ key: new TextEncoder().encode('k'), value: new TextEncoder().encode('v') });
    expect(put.header.revision).toBeGreaterThan(0);
  });
});
