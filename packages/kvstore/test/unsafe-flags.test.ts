// The chaos flags of `ballot kv serve` (issue 5): parsed, defaulted off, refused when malformed;
// NodeClock (the per-member clock they drive) on an injected real clock; and the LevelDB log
// written without fsync under --unsafe-no-fsync (saves still land and reload).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LevelLogStorage } from '@ballot/raft';
import { parseKvServeFlags } from '../src/server/flags.js';
import { NodeClock } from '../src/server/clock.js';
import { clusterSpecs, dec, enc, startMember, stopAll, stopMember, usageError, waitLeader } from './server-helpers.js';

afterEach(async () => {
  await stopAll();
});

describe('chaos flags', () => {
  it('are off by default', () => {
    const o = parseKvServeFlags([]);
    expect(o.unsafeStaleReads).toBeUndefined();
    expect(o.unsafeNoFsync).toBeUndefined();
    expect(o.unsafeDebugClock).toBeUndefined();
    expect(o.clockSkewMs).toBeUndefined();
    expect(o.clockRate).toBeUndefined();
  });

  it('parse when given', () => {
    const o = parseKvServeFlags(['--unsafe-stale-reads', '--unsafe-no-fsync', '--unsafe-debug-clock', '--clock-skew-ms', '-2500', '--clock-rate', '1.5']);
    expect(o.unsafeStaleReads).toBe(true);
    expect(o.unsafeNoFsync).toBe(true);
    expect(o.unsafeDebugClock).toBe(true);
    expect(o.clockSkewMs).toBe(-2500);
    expect(o.clockRate).toBe(1.5);
    expect(parseKvServeFlags(['--clock-skew-ms=300']).clockSkewMs).toBe(300);
  });

  it('are refused when malformed, naming the flag', () => {
    expect(usageError(['--clock-rate', 'fast'])).toMatch(/--clock-rate: expected a positive number, got "fast"/);
    expect(usageError(['--clock-rate', '0'])).toMatch(/--clock-rate: 0 is out of range/);
    expect(usageError(['--clock-rate', '-1'])).toMatch(/--clock-rate/);
    expect(usageError(['--clock-rate', '1000'])).toMatch(/--clock-rate: 1000 is out of range/);
    expect(usageError(['--clock-skew-ms', '1.5'])).toMatch(/--clock-skew-ms: expected an integer/);
    expect(usageError(['--clock-skew-ms', '99999999999'])).toMatch(/--clock-skew-ms: .* out of range/);
    expect(usageError(['--unsafe-stale-reads=yes'])).toMatch(/unsafe-stale-reads/);
  });
});

describe('NodeClock', () => {
  it('is the real clock by default, shifts by the skew, and runs at the rate from the change on', () => {
    let real = 1_000_000;
    const clock = new NodeClock(undefined, () => real);
    expect(clock.now()).toBe(1_000_000);
    real += 100;
    expect(clock.now()).toBe(1_000_100);
    clock.set({ skewMs: 5000 });
    expect(clock.now()).toBe(1_005_100);
    clock.set({ rate: 2 });
    real += 100; // 200 ms of node time
    expect(clock.now()).toBe(1_005_300);
    clock.set({ rate: 0.5, skewMs: 0 });
    real += 100; // 50 ms of node time
    expect(clock.now()).toBe(1_000_350);
    expect(clock.setting).toEqual({ skewMs: 0, rate: 0.5 });
  });

  it('tells listeners and refuses bad settings without changing', () => {
    const clock = new NodeClock({ skewMs: 0, rate: 1 }, () => 0);
    const heard: number[] = [];
    clock.onChange((s) => heard.push(s.rate));
    clock.set({ rate: 3 });
    expect(() => clock.set({ rate: 0 })).toThrow(RangeError);
    expect(() => clock.set({ skewMs: Number.NaN })).toThrow(RangeError);
    expect(heard).toEqual([3]);
    expect(clock.setting.rate).toBe(3);
  });
});

describe('--unsafe-no-fsync', () => {
  it('opens the Raft log writing without sync; saves still land and reload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ballot-nofsync-'));
    try {
      const unsafe = await LevelLogStorage.open(dir, { sync: false });
      expect(unsafe.sync).toBe(false);
      await unsafe.save({ hardState: { term: 1, vote: null, commit: 0 }, entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array([7]) }] });
      await unsafe.close();
      const safe = await LevelLogStorage.open(dir);
      expect(safe.sync).toBe(true);
      const restored = await safe.load();
      expect(restored.entries.map((e) => e.index)).toEqual([1]);
      await safe.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a member with the flag serves writes and keeps them across a clean restart', async () => {
    const [spec] = await clusterSpecs(1);
    const opts = { ...spec!, unsafeNoFsync: true };
    let node = await startMember(opts, { skipPublish: true });
    await waitLeader([node]);
    await node.service.put({ key: enc('a'), value: enc('1') });
    await stopMember(node);
    node = await startMember(opts, { skipPublish: true });
    await waitLeader([node]);
    const r = await node.service.range({ key: enc('a') });
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['1']);
  });
});

describe('NodeClock monotonic time (the quorum guard measures elapsed time with it)', () => {
  it('runs at the rate, ignores the skew, and never steps when either changes', () => {
    let real = 1_000_000;
    const clock = new NodeClock(undefined, () => real);
    expect(clock.monotonicNow()).toBe(1_000_000);
    clock.set({ skewMs: -3000 });
    expect(clock.monotonicNow()).toBe(1_000_000);
    real += 100;
    expect(clock.monotonicNow()).toBe(1_000_100);
    clock.set({ rate: 0.2 });
    real += 1000; // 200 ms of node time
    expect(clock.monotonicNow()).toBe(1_000_300);
    clock.set({ rate: 1, skewMs: 500 });
    expect(clock.monotonicNow()).toBe(1_000_300);
    real += 7;
    expect(clock.monotonicNow()).toBe(1_000_307);
    expect(clock.now()).toBe(1_000_807);
  });
});

describe('NodeClock readings', () => {
  it('are whole milliseconds at any rate (they are stamped into log entries)', () => {
    let real = 1_000_000;
    const clock = new NodeClock({ skewMs: 7, rate: 1.5 }, () => real);
    for (let i = 0; i < 20; i++) {
      real += 1;
      expect(Number.isInteger(clock.now())).toBe(true);
    }
  });
});
