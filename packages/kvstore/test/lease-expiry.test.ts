// Lease expiry end to end on one replica: the Lessor (injected clock) decides, its revoke goes
// through the real KvStateMachine as an encoded leaseRevoke { expired: true } command (as the
// leader's proposal would be applied from the log), the attached keys disappear in one revision,
// and a watcher sees that revision's deletes together. A leader change in between extends the TTL.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Lessor } from '../src/lease/lessor.js';
import { WatchHub } from '../src/watch/hub.js';
import { HEADER, RecordingSink, TestStore, checkStream, dec } from './watch-helpers.js';

let store: TestStore;
let lessor: Lessor | null = null;
let hub: WatchHub | null = null;

beforeEach(async () => {
  store = await TestStore.open();
});

afterEach(async () => {
  lessor?.close();
  hub?.close();
  lessor = null;
  hub = null;
  await store.close();
});

describe('lease expiry through the log', () => {
  it('expired leases are revoked through the state machine; their keys go in one revision; a new leader extends', async () => {
    const clock = { now: 5_000_000 };
    const revokes: number[] = [];
    lessor = new Lessor({
      leases: () => store.sm.leases(),
      // The leader's proposal, applied as every replica applies it.
      revoke: async (id) => {
        revokes.push(id);
        await Promise.resolve();
        store.apply({ op: 'leaseRevoke', id, expired: true });
      },
      nowMs: () => clock.now,
    });
    hub = new WatchHub({ source: store.sm, header: () => HEADER });
    const sink = new RecordingSink();
    hub.watch({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0) }, sink);

    store.apply({ op: 'leaseGrant', id: 10, ttlSec: 5 });
    store.apply({ op: 'leaseGrant', id: 20, ttlSec: 60 });
    store.put('s/1', 'a', 10);
    store.put('s/2', 'b', 10);
    store.put('long', 'c', 20);
    store.put('plain', 'd');

    lessor.setLeader(true);
    clock.now += 4_000;
    lessor.setLeader(false); // an election: 4 s of the 5 s TTL went by
    clock.now += 30_000; // no leader for 30 s: nothing may expire because of that
    expect(lessor.checkExpired()).toBe(0);
    lessor.setLeader(true);
    expect(lessor.remainingSec(10)).toBe(5);
    clock.now += 4_000;
    expect(lessor.keepAlive(10)).toBe(5); // renewed at +4 s
    clock.now += 4_999;
    expect(lessor.checkExpired()).toBe(0);
    clock.now += 1;
    expect(lessor.checkExpired()).toBe(1);
    await new Promise((r) => setImmediate(r));

    expect(revokes).toEqual([10]);
    expect([...store.sm.leases().keys()]).toEqual([20]);
    const left = await store.sm.range({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0) });
    expect(left.kvs.map((kv) => dec(kv.key))).toEqual(['long', 'plain']);
    const deletes = sink.responses.filter((r) => r.events.some((e) => e.type === 'delete'));
    expect(deletes.length).toBe(1);
    expect(deletes[0]?.events.map((e) => `${e.type} ${dec(e.kv.key)}`)).toEqual(['delete s/1', 'delete s/2']);
    checkStream(sink.responses);
    expect(lessor.remainingSec(10)).toBe(-1);
    expect(() => lessor?.keepAlive(10)).toThrowError(expect.objectContaining({ code: 'LEASE_NOT_FOUND' }) as Error);
    expect(lessor.remainingSec(20)).toBe(51);
  });
});
