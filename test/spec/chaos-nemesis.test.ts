// The nemesis: applies a schedule's windows on time ('leader' resolved when a window opens, a seeded pick when no
// leader is agreed), records failures on the window instead of throwing, and stopAndHealAll() undoes everything.
// First against a recording target (a real ProxyNetwork, members faked), then on a real 3-member ChaosCluster.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '@ballot/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { ChaosCluster } from '../src/chaos/cluster.js';
import { Nemesis } from '../src/chaos/nemesis.js';
import type { AppliedWindow, ChaosTarget, FaultSpec, FaultWindow, Schedule } from '../src/chaos/types.js';
import { ProxyNetwork } from '../src/proxy/index.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function scheduleOf(nodeCount: number, faults: readonly [number, number, FaultSpec][], seed = 1): Schedule {
  const windows: FaultWindow[] = faults.map(([startMs, endMs, fault], i) => ({ id: i + 1, startMs, endMs, fault }));
  return { seed, durationMs: Math.max(...windows.map((w) => w.endMs)) + 500, nemeses: ['partition', 'kill', 'pause', 'clock', 'latency', 'reset'], nodeCount, windows };
}

/** A target that records what the nemesis asks; members are names only, the network is a real ProxyNetwork. */
class RecordingTarget implements ChaosTarget {
  readonly calls: string[] = [];
  leaderName: string | null = null;
  failKill = false;
  private constructor(readonly names: readonly string[], readonly network: ProxyNetwork) {}

  static async create(n: number): Promise<RecordingTarget> {
    const names = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    const ports = await freePorts(n);
    const network = await ProxyNetwork.start({ nodes: names.map((name, i) => ({ name, peerHost: '127.0.0.1', peerPort: ports[i] as number })) });
    cleanups.push(() => network.close());
    return new RecordingTarget(names, network);
  }

  leader(): Promise<string | null> {
    return Promise.resolve(this.leaderName);
  }
  kill(name: string): Promise<void> {
    this.calls.push(`kill ${name}`);
    return this.failKill ? Promise.reject(new Error(`no such process for ${name}`)) : Promise.resolve();
  }
  restart(name: string): Promise<void> {
    this.calls.push(`restart ${name}`);
    return Promise.resolve();
  }
  pause(name: string): void {
    this.calls.push(`pause ${name}`);
  }
  resume(name: string): void {
    this.calls.push(`resume ${name}`);
  }
  setClock(name: string, clock: { readonly skewMs: number; readonly rate: number }): Promise<void> {
    this.calls.push(`clock ${name} ${clock.skewMs} ${clock.rate}`);
    return Promise.resolve();
  }
}

describe('Nemesis on a recording target', () => {
  it('applies each window on time with the leader resolved, heals it at its end, and never throws', async () => {
    const t = await RecordingTarget.create(5);
    t.leaderName = 'n4';
    const healed: AppliedWindow[] = [];
    const applied: AppliedWindow[] = [];
    const n = new Nemesis(t, scheduleOf(5, [
      [50, 400, { kind: 'partition-isolate-leader' }],
      [450, 550, { kind: 'kill', nodes: ['leader', 1] }],
      [600, 700, { kind: 'pause', nodes: [0] }],
      [750, 850, { kind: 'clock', changes: [{ node: 2, skewMs: -700, rate: 4 }] }],
      [900, 1000, { kind: 'latency', latencyMs: 30, jitterMs: 5 }],
      [1050, 1150, { kind: 'partition-one-way', from: 'leader', to: 3 }],
    ]), { onApplied: (w) => applied.push({ ...w }), onHealed: (w) => healed.push({ ...w }) });
    const networkDuring: boolean[] = [];
    n.start();
    expect(n.current()).toBeNull();
    await new Promise((r) => setTimeout(r, 200));
    networkDuring.push(t.network.isBlocked('n4', 'n1'));
    expect(n.current()?.kind).toBe('partition-isolate-leader');
    await n.done();
    expect(n.current()).toBeNull();
    expect(networkDuring).toEqual([true]);
    expect(t.network.isBlocked('n4', 'n1')).toBe(false);
    const ws = n.applied();
    expect(ws.map((w) => w.kind)).toEqual(['partition-isolate-leader', 'kill', 'pause', 'clock', 'latency', 'partition-one-way']);
    expect(ws.map((w) => w.nodes)).toEqual([['n4'], ['n4', 'n2'], ['n1'], ['n3'], ['n1', 'n2', 'n3', 'n4', 'n5'], ['n4', 'n5']]);
    expect(ws[0]?.description).toBe('isolate n4 (the leader)');
    expect(ws[5]?.description).toBe('one-way: n4 (the leader) -> n5 dropped'); // 'to' was the leader itself: the next node
    for (const w of ws) {
      expect(w.error).toBeUndefined();
      expect(w.endMs).not.toBeNull();
      expect(w.endMs as number).toBeGreaterThan(w.startMs);
    }
    expect(ws[1]?.startMs).toBeGreaterThanOrEqual(450);
    expect(applied.map((w) => w.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(applied.every((w) => w.endMs === null)).toBe(true);
    expect(healed.map((w) => w.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(t.calls).toEqual(['kill n4', 'kill n2', 'restart n4', 'restart n2', 'pause n1', 'resume n1', 'clock n3 -700 4', 'clock n3 0 1']);
    expect(n.faultsInEffect()).toEqual({ killed: [], paused: [], clocked: [], network: false });
  });

  it('slows the isolated leader\'s clock before cutting it off and sets it back after reconnecting it', async () => {
    const t = await RecordingTarget.create(3);
    t.leaderName = 'n3';
    let blockedAtClock: boolean | null = null;
    const setClock = t.setClock.bind(t);
    t.setClock = (name, clock) => {
      blockedAtClock ??= t.network.isBlocked('n3', 'n1');
      return setClock(name, clock);
    };
    const n = new Nemesis(t, scheduleOf(3, [[0, 150, { kind: 'partition-isolate-leader', leaderClockRate: 0.2 }]]));
    n.start();
    while (n.current() === null) await new Promise((r) => setTimeout(r, 5));
    expect(t.network.isBlocked('n3', 'n1') && t.network.isBlocked('n2', 'n3')).toBe(true);
    expect(n.faultsInEffect().clocked).toEqual(['n3']);
    await n.done();
    const w = n.applied()[0] as AppliedWindow;
    expect(w.description).toBe('isolate n3 (the leader), its clock x0.2');
    expect(w.nodes).toEqual(['n3']);
    expect(w.error).toBeUndefined();
    expect(blockedAtClock).toBe(false); // slowed while still connected
    expect(t.calls).toEqual(['clock n3 0 0.2', 'clock n3 0 1']);
    expect(t.network.isBlocked('n3', 'n1')).toBe(false);
    expect(n.faultsInEffect()).toEqual({ killed: [], paused: [], clocked: [], network: false });
  });

  it('picks a node from the seed when no leader is agreed, the same one on a replay', async () => {
    const t = await RecordingTarget.create(5);
    const picks: string[] = [];
    for (let run = 0; run < 2; run++) {
      const n = new Nemesis(t, scheduleOf(5, [[0, 20, { kind: 'pause', nodes: ['leader'] }]], 42));
      n.start();
      await n.done();
      const w = n.applied()[0] as AppliedWindow;
      expect(w.description).toMatch(/^SIGSTOP n\d \(the leader\) \[no agreed leader: picked from the seed\]$/);
      picks.push(w.nodes[0] as string);
    }
    expect(picks[0]).toBe(picks[1]);
    expect(t.names).toContain(picks[0]);
  });

  it('records a failed apply on the window and goes on; stopAndHealAll undoes what is open and is idempotent', async () => {
    const t = await RecordingTarget.create(3);
    t.leaderName = 'n1';
    t.failKill = true;
    const n = new Nemesis(t, scheduleOf(3, [
      [0, 30, { kind: 'kill', nodes: [2] }],
      [60, 10_000, { kind: 'partition-halves', minority: [0] }],
      [20_000, 21_000, { kind: 'reset' }],
    ]));
    n.start();
    const deadline = Date.now() + 5000;
    while (n.applied().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const [kill, halves] = n.applied();
    expect(kill?.error).toMatch(/^apply: no such process for n3/);
    expect(halves?.description).toBe('halves n1 | n2,n3');
    expect(n.current()?.id).toBe(2);
    expect(t.network.isBlocked('n1', 'n2')).toBe(true);
    const first = n.stopAndHealAll();
    expect(n.stopAndHealAll()).toBe(first);
    await first;
    expect(t.network.isBlocked('n1', 'n2')).toBe(false);
    expect(n.current()).toBeNull();
    expect(n.applied()).toHaveLength(2); // the third window never opened
    expect(n.applied()[1]?.endMs).not.toBeNull();
    expect(n.faultsInEffect()).toEqual({ killed: [], paused: [], clocked: [], network: false });
    expect(() => new Nemesis(t, scheduleOf(5, []))).toThrow(/schedule is for 5 nodes, the target has 3/);
  });
});

describe('Nemesis on a real 3-member ChaosCluster', () => {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  async function writable(c: ChaosCluster, key: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const codes: number[] = [];
      for (const url of c.endpoints) {
        try {
          const r = await fetch(`${url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64(key), value: b64('x') }), signal: AbortSignal.timeout(2000) });
          await r.text();
          codes.push(r.status);
        } catch {
          codes.push(0);
        }
      }
      if (codes.every((s) => s === 200)) return;
      if (Date.now() > deadline) throw new Error(`not writable on every member (${codes.join(', ')})\n${c.logTails()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function startCluster(): Promise<ChaosCluster> {
    const root = mkdtempSync(join(tmpdir(), 'ballot-chaos-nemesis-'));
    cleanups.push(async () => rmSync(root, { recursive: true, force: true }));
    const c = await ChaosCluster.start({
      nodes: 3, outDir: root, heartbeatIntervalMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 2000,
      readMode: 'read-index', unsafeStaleReads: false, unsafeNoFsync: false, debugClock: true,
    });
    cleanups.push(() => c.stop(1000));
    await c.waitReady(30_000);
    return c;
  }

  it('partitions, kills, pauses and skews clocks on time, then heals: every member runs and takes writes', async () => {
    const c = await startCluster();
    const n = new Nemesis(c, scheduleOf(3, [
      [200, 1200, { kind: 'partition-isolate-leader' }],
      [1700, 2700, { kind: 'kill', nodes: ['leader'] }],
      [3200, 4200, { kind: 'pause', nodes: [0] }],
      [4700, 5700, { kind: 'clock', changes: [{ node: 1, skewMs: 1200, rate: 2 }] }],
    ]));
    let clockDuring: unknown = null;
    n.start();
    while (n.applied().length < 4) await new Promise((r) => setTimeout(r, 50));
    clockDuring = await (await fetch(`${c.endpoints[1]}/debug/clock`)).json();
    await n.done();
    await n.stopAndHealAll();
    const ws = n.applied();
    expect(ws.map((w) => w.kind)).toEqual(['partition-isolate-leader', 'kill', 'pause', 'clock']);
    for (const w of ws) {
      expect(w.error, w.description).toBeUndefined();
      expect(w.nodes.length).toBeGreaterThan(0);
      for (const name of w.nodes) expect(c.names).toContain(name);
      expect(w.endMs).not.toBeNull();
    }
    expect(ws[2]?.nodes).toEqual(['n1']);
    expect(ws[3]?.description).toBe('n2 clock +1200 ms x2');
    expect(clockDuring).toMatchObject({ skewMs: 1200, rate: 2 });
    expect(await (await fetch(`${c.endpoints[1]}/debug/clock`)).json()).toMatchObject({ skewMs: 0, rate: 1 });
    for (const name of c.names) {
      expect(c.isRunning(name)).toBe(true);
      expect(c.isPaused(name)).toBe(false);
    }
    await c.waitReady(20_000);
    await writable(c, 'after-nemesis');
  });

  it('stopAndHealAll in the middle of a kill of a majority restarts both and the cluster serves again', async () => {
    const c = await startCluster();
    const n = new Nemesis(c, scheduleOf(3, [[100, 60_000, { kind: 'kill', nodes: [0, 2] }]]));
    n.start();
    while (n.current() === null) await new Promise((r) => setTimeout(r, 20));
    expect(c.isRunning('n1')).toBe(false);
    expect(c.isRunning('n3')).toBe(false);
    await n.stopAndHealAll();
    await n.stopAndHealAll();
    expect(c.isRunning('n1') && c.isRunning('n2') && c.isRunning('n3')).toBe(true);
    expect(n.applied()[0]?.endMs).not.toBeNull();
    await c.waitReady(20_000);
    await writable(c, 'after-majority-kill');
    expect(c.pids()).toHaveLength(5);
  });
});
