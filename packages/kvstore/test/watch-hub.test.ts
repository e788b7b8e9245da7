// WatchHub on the real KvStateMachine (temporary LevelDB folder, real encoded commands): filters,
// prev_kv, one response per transaction, compaction, cancel, progress notifications, slow sinks
// (bounded buffers, canceled with a reason), and resuming from the last seen revision + 1.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { KvError } from '../src/errors.js';
import type { WatchCreateRequest, WatchEvent, WatchResponse } from '../src/types.js';
import { WatchHub, type WatchHubOptions } from '../src/watch/hub.js';
import { HEADER, RecordingSink, TestStore, checkStream, dec, enc, plainSink, tick, waitFor } from './watch-helpers.js';

let store: TestStore;
const hubs: WatchHub[] = [];

beforeEach(async () => {
  store = await TestStore.open();
});

afterEach(async () => {
  for (const h of hubs.splice(0)) h.close();
  await store.close();
});

function newHub(extra: Partial<WatchHubOptions> = {}): WatchHub {
  const hub = new WatchHub({ source: store.sm, header: () => HEADER, ...extra });
  hubs.push(hub);
  return hub;
}

const brief = (e: WatchEvent): string => `${e.type} ${dec(e.kv.key)}${e.type === 'put' ? '=' + dec(e.kv.value) : ''}@${e.kv.modRevision}`;

function watchKeys(hub: WatchHub, req: WatchCreateRequest): RecordingSink {
  const sink = new RecordingSink();
  hub.watch(req, sink);
  return sink;
}

describe('WatchHub on the real state machine', () => {
  it('sends created first, then matching events of a key, a range, a prefix, from a key, and all keys', () => {
    const hub = newHub();
    const one = watchKeys(hub, { key: enc('b') });
    const range = watchKeys(hub, { key: enc('b'), rangeEnd: enc('c') });
    const prefix = watchKeys(hub, { key: enc('ab'), rangeEnd: enc('ac') });
    const fromKey = watchKeys(hub, { key: enc('b'), rangeEnd: Uint8Array.of(0) });
    const all = watchKeys(hub, { key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0) });
    for (const s of [one, range, prefix, fromKey, all]) {
      expect(s.responses[0]).toMatchObject({ created: true, events: [], header: { revision: 0 } });
    }
    store.put('a', '1'); // 1
    store.put('ab', '2'); // 2
    store.put('abc', '3'); // 3
    store.put('b', '4'); // 4
    store.put('bz', '5'); // 5
    store.put('c', '6'); // 6
    store.del('ab'); // 7
    expect(checkStream(one.responses).map(brief)).toEqual(['put b=4@4']);
    expect(checkStream(range.responses).map(brief)).toEqual(['put b=4@4', 'put bz=5@5']);
    expect(checkStream(prefix.responses).map(brief)).toEqual(['put ab=2@2', 'put abc=3@3', 'delete ab@7']);
    expect(checkStream(fromKey.responses).map(brief)).toEqual(['put b=4@4', 'put bz=5@5', 'put c=6@6']);
    expect(checkStream(all.responses).map(brief)).toEqual([
      'put a=1@1', 'put ab=2@2', 'put abc=3@3', 'put b=4@4', 'put bz=5@5', 'put c=6@6', 'delete ab@7',
    ]);
    expect(hub.count).toBe(5);
  });

  it('prev_kv only when asked; noput and nodelete filters', () => {
    const hub = newHub();
    const withPrev = watchKeys(hub, { key: enc('k'), prevKv: true });
    const without = watchKeys(hub, { key: enc('k') });
    const noPut = watchKeys(hub, { key: enc('k'), filters: ['noput'] });
    const noDelete = watchKeys(hub, { key: enc('k'), filters: ['nodelete'] });
    store.put('k', 'v1');
    store.put('k', 'v2');
    store.del('k');
    const ev = checkStream(withPrev.responses);
    expect(ev.map(brief)).toEqual(['put k=v1@1', 'put k=v2@2', 'delete k@3']);
    expect(ev[0]?.prevKv).toBeUndefined();
    expect(dec(ev[1]?.prevKv?.value ?? enc('missing'))).toBe('v1');
    expect(dec(ev[2]?.prevKv?.value ?? enc('missing'))).toBe('v2');
    expect(ev[1]?.kv.version).toBe(2);
    expect(checkStream(without.responses).every((e) => e.prevKv === undefined)).toBe(true);
    expect(checkStream(noPut.responses).map(brief)).toEqual(['delete k@3']);
    expect(checkStream(noDelete.responses).map(brief)).toEqual(['put k=v1@1', 'put k=v2@2']);
  });

  it('delivers all events of one revision (a txn, a range delete, a lease revoke) in one response', () => {
    const hub = newHub();
    const all = watchKeys(hub, { key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0) });
    const rev = store.apply({
      op: 'txn',
      req: { compare: [], success: [{ put: { key: enc('t1'), value: enc('a') } }, { put: { key: enc('t2'), value: enc('b') } }, { put: { key: enc('t3'), value: enc('c') } }], failure: [] },
    }).revision;
    const delRev = store.del('t', enc('u'));
    store.apply({ op: 'leaseGrant', id: 77, ttlSec: 60 });
    store.put('l1', 'x', 77);
    store.put('l2', 'y', 77);
    const revokeRev = store.apply({ op: 'leaseRevoke', id: 77, expired: true }).revision;
    const responses = all.responses.filter((r) => r.events.length > 0);
    checkStream(all.responses);
    expect(responses.map((r) => r.events.map(brief))).toEqual([
      [`put t1=a@${rev}`, `put t2=b@${rev}`, `put t3=c@${rev}`],
      [`delete t1@${delRev}`, `delete t2@${delRev}`, `delete t3@${delRev}`],
      [`put l1=x@${delRev + 1}`],
      [`put l2=y@${delRev + 2}`],
      [`delete l1@${revokeRev}`, `delete l2@${revokeRev}`],
    ]);
  });

  it('catches up from an old revision, then continues live', async () => {
    for (let i = 1; i <= 30; i++) store.put(`k${i % 4}`, `v${i}`);
    const hub = newHub({ maxEventsPerResponse: 7 });
    const sink = watchKeys(hub, { key: enc('k'), rangeEnd: enc('l'), startRevision: 5, prevKv: true });
    expect(hub.stats().catchingUp).toBe(1);
    for (let i = 31; i <= 40; i++) {
      store.put(`k${i % 4}`, `v${i}`);
      await tick();
    }
    await waitFor(() => hub.stats().catchingUp === 0 && sink.lastRevision === 40, 'catch-up and live events up to 40');
    const ev = checkStream(sink.responses);
    expect(ev.map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 36 }, (_, i) => i + 5));
    expect(ev.map((e) => dec(e.kv.value))).toEqual(Array.from({ length: 36 }, (_, i) => `v${i + 5}`));
    // prev_kv from history as well as live: the value written 4 revisions earlier to the same key.
    expect(ev.map((e) => (e.prevKv ? dec(e.prevKv.value) : '-'))).toEqual(Array.from({ length: 36 }, (_, i) => `v${i + 1}`));
    expect(Math.max(...sink.responses.map((r) => r.events.length))).toBeLessThanOrEqual(7);
  });

  it('a start revision at or below the compacted one gets created, then canceled with the oldest revision available', async () => {
    for (let i = 1; i <= 10; i++) store.put('k', `v${i}`);
    store.apply({ op: 'compact', revision: 6 });
    const hub = newHub();
    for (const start of [1, 6]) {
      const sink = watchKeys(hub, { key: enc('k'), startRevision: start });
      expect(sink.responses.map((r) => [r.created ?? false, r.canceled ?? false])).toEqual([[true, false], [false, true]]);
      expect(sink.canceled?.compactRevision).toBe(7);
      expect(sink.canceled?.cancelReason).toBe('mvcc: required revision has been compacted');
    }
    const ok = watchKeys(hub, { key: enc('k'), startRevision: 7 });
    await waitFor(() => ok.lastRevision === 10, 'events 7..10 after the compaction');
    expect(checkStream(ok.responses).map((e) => e.kv.modRevision)).toEqual([7, 8, 9, 10]);
    expect(hub.count).toBe(1);
  });

  it('cancel ends the watcher with a canceled response and nothing after it', () => {
    const hub = newHub();
    const sink = new RecordingSink();
    const handle = hub.watch({ key: enc('k') }, sink);
    store.put('k', '1');
    handle.cancel();
    store.put('k', '2');
    handle.cancel();
    expect(sink.responses.map((r) => (r.created ? 'created' : r.canceled ? `canceled: ${r.cancelReason}` : r.events.map(brief).join()))).toEqual([
      'created',
      'put k=1@1',
      'canceled: canceled by the client',
    ]);
    expect(sink.unsubscribed).toBe(true);
    expect(hub.count).toBe(0);
  });

  it('requestProgress: answered at once when caught up, deferred until caught up otherwise', async () => {
    const hub = newHub();
    store.put('x', '0');
    const sink = new RecordingSink();
    const h = hub.watch({ key: enc('k') }, sink);
    store.put('other', '1');
    h.requestProgress();
    expect(sink.responses.at(-1)).toMatchObject({ events: [], header: { revision: 2 } });
    expect(sink.responses.at(-1)?.created).toBeUndefined();

    // Congested: a progress revision would promise events that are still in the buffer.
    sink.writable = false;
    store.put('k', 'a'); // 3
    store.put('k', 'b'); // 4
    h.requestProgress();
    store.put('zzz', 'c'); // 5
    const before = sink.responses.length;
    await tick();
    expect(sink.responses.length).toBe(before);
    sink.drain();
    const after = sink.responses.slice(before);
    expect(after.map((r) => (r.events.length ? r.events.map(brief).join() : `progress@${r.header.revision}`))).toEqual([
      'put k=a@3,put k=b@4',
      'progress@5',
    ]);

    // Catching up from history: progress comes after the history is delivered.
    for (let i = 0; i < 20; i++) store.put('k', `h${i}`);
    const late = new RecordingSink();
    const h2 = hub.watch({ key: enc('k'), startRevision: 1 }, late);
    h2.requestProgress();
    await waitFor(() => late.responses.some((r) => r.events.length === 0 && !r.created), 'deferred progress');
    const idx = late.responses.findIndex((r) => r.events.length === 0 && !r.created);
    expect(late.responses[idx]?.header.revision).toBe(store.revision);
    expect(late.responses.slice(0, idx).flatMap((r) => r.events).length).toBe(22);
  });

  it('progressNotify: idle watchers get periodic progress notifications at the current revision', async () => {
    const hub = newHub({ progressIntervalMs: 15 });
    store.put('a', '1');
    const sink = new RecordingSink();
    hub.watch({ key: enc('k'), progressNotify: true }, sink);
    const quiet = new RecordingSink();
    hub.watch({ key: enc('k') }, quiet);
    await waitFor(() => sink.responses.filter((r) => !r.created && r.events.length === 0).length >= 2, 'two progress notifications');
    store.put('b', '2');
    await waitFor(() => sink.responses.some((r) => !r.created && r.events.length === 0 && r.header.revision === 2), 'progress at revision 2');
    expect(quiet.responses.length).toBe(1);
    for (const r of sink.responses.slice(1)) expect([1, 2]).toContain(r.header.revision);
  });

  it('a slow sink: the buffer stays bounded, the watcher is canceled with a reason, and resuming gets exactly the rest', async () => {
    const max = 20;
    const hub = newHub({ maxBufferedEvents: max });
    const slow = new RecordingSink();
    slow.congestAfterEachSend = true;
    hub.watch({ key: enc('k'), rangeEnd: enc('l') }, slow);
    slow.drain(); // takes `created`... and is congested again after the first event
    let peak = 0;
    for (let i = 1; i <= 60; i++) {
      store.put(`k${i % 3}`, `v${i}`);
      peak = Math.max(peak, hub.stats().bufferedEvents);
      if (i === 5) slow.drain();
    }
    expect(peak).toBeLessThanOrEqual(max);
    expect(slow.canceled?.cancelReason).toMatch(/^watcher is too slow: 21 buffered events/);
    expect(hub.count).toBe(0);
    expect(hub.stats()).toMatchObject({ bufferedEvents: 0, canceledSlow: 1 });
    const seen = checkStream(slow.responses);
    expect(seen.length).toBeGreaterThan(0);

    const resumed = new RecordingSink();
    hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: slow.lastRevision + 1 }, resumed);
    for (let i = 61; i <= 70; i++) store.put(`k${i % 3}`, `v${i}`);
    await waitFor(() => resumed.lastRevision === 70, 'resumed watcher reaches 70');
    const all = [...seen, ...checkStream(resumed.responses)];
    expect(all.map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 70 }, (_, i) => i + 1));
    expect(all.map((e) => dec(e.kv.value))).toEqual(Array.from({ length: 70 }, (_, i) => `v${i + 1}`));
  });

  it('a congested sink pauses the catch-up (bounded) and it completes on drain, with live applies racing', async () => {
    for (let i = 1; i <= 200; i++) store.put(`k${i % 10}`, `v${i}`);
    const hub = newHub({ maxEventsPerResponse: 10, maxBufferedEvents: 50 });
    const sink = new RecordingSink();
    sink.congestAfterEachSend = true;
    hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: 1 }, sink);
    let peak = 0;
    let next = 201;
    for (let round = 0; round < 2000 && sink.lastRevision < 230; round++) {
      await tick();
      peak = Math.max(peak, hub.stats().bufferedEvents);
      if (next <= 230 && round % 3 === 0) store.put(`k${next % 10}`, `v${next++}`);
      if (!sink.writable) sink.drain();
    }
    expect(sink.canceled).toBeUndefined();
    const ev = checkStream(sink.responses);
    expect(ev.map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 230 }, (_, i) => i + 1));
    expect(peak).toBeLessThanOrEqual(50);
  });

  it('a compaction during a paused catch-up: everything before is delivered without a gap, then canceled with compactRevision; resuming there completes it', async () => {
    for (let i = 1; i <= 100; i++) store.put(`k${i % 7}`, `v${i}`);
    const hub = newHub({ maxEventsPerResponse: 5 });
    const sink = new RecordingSink();
    sink.congestAfterEachSend = true;
    hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: 1 }, sink);
    for (let i = 0; i < 3; i++) {
      await waitFor(() => !sink.writable && hub.stats().bufferedEvents > 0, 'the catch-up pauses on the congested sink');
      sink.drain();
    }
    // Applied while the first history round (up to 100) is paused: the next round would start at
    // 101, which is compacted by then.
    for (let i = 101; i <= 110; i++) store.put(`k${i % 7}`, `v${i}`);
    store.apply({ op: 'compact', revision: 105 });
    sink.congestAfterEachSend = false;
    sink.drain();
    await waitFor(() => sink.canceled !== undefined, 'the watcher is canceled');
    const seen = checkStream(sink.responses);
    expect(seen.map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(sink.canceled).toMatchObject({ compactRevision: 106, cancelReason: 'mvcc: required revision has been compacted' });
    const resumeFrom = 106;
    const rest = new RecordingSink();
    hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: resumeFrom }, rest);
    store.put('k0', 'last'); // 111
    await waitFor(() => rest.lastRevision === 111, 'the resumed watcher reaches 111');
    expect(checkStream(rest.responses).map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 112 - resumeFrom }, (_, i) => i + resumeFrom));
  });

  it('a snapshot installed under live watchers (revision jumps without events): they catch up from history, no gap, progress waits', async () => {
    const leader = await TestStore.open();
    try {
      for (let i = 1; i <= 5; i++) {
        store.put(`k${i % 3}`, `v${i}`);
        leader.put(`k${i % 3}`, `v${i}`);
      }
      const hub = newHub();
      const sink = watchKeys(hub, { key: enc('k'), rangeEnd: enc('l') });
      const late = watchKeys(hub, { key: enc('k'), rangeEnd: enc('l'), startRevision: 20 });
      for (let i = 6; i <= 25; i++) leader.put(`k${i % 3}`, `v${i}`);
      await store.installSnapshotFrom(leader);
      expect(store.revision).toBe(25);
      expect(sink.responses.length).toBe(1); // only `created`: nothing was fed
      const handle = hub.watch({ key: enc('zz') }, new RecordingSink()); // any call notices the jump
      handle.cancel();
      const progressSink = new RecordingSink();
      hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: 25 }, progressSink);
      await waitFor(() => sink.lastRevision === 25 && late.lastRevision === 25 && progressSink.lastRevision === 25, 'catch-up after the snapshot');
      store.put('k1', 'after'); // 26, live again
      expect(checkStream(sink.responses).map((e) => e.kv.modRevision)).toEqual(
        Array.from({ length: 21 }, (_, i) => i + 6),
      );
      expect(late.events.map((e) => e.kv.modRevision)).toEqual([20, 21, 22, 23, 24, 25, 26]);
      expect(dec(sink.events.at(-2)?.kv.value ?? enc('?'))).toBe('v25');
    } finally {
      await leader.close();
    }
  });

  it('a snapshot jump noticed by the live feed itself sends live watchers through history; requestProgress never claims missed revisions', async () => {
    const leader = await TestStore.open();
    try {
      store.put('k', 'v1');
      leader.put('k', 'v1');
      const hub = newHub();
      const sink = new RecordingSink();
      const h = hub.watch({ key: enc('k') }, sink);
      for (let i = 2; i <= 10; i++) leader.put('k', `v${i}`);
      await store.installSnapshotFrom(leader);
      h.requestProgress(); // at 10 now, but revisions 2..10 are not delivered yet: no progress before them
      await waitFor(() => sink.responses.some((r) => !r.created && r.events.length === 0), 'the progress notification');
      const ids = sink.responses.map((r) => (r.created ? 'created' : r.events.length ? r.events.map((e) => e.kv.modRevision).join('+') : `progress@${r.header.revision}`));
      expect(ids.at(-1)).toBe('progress@10');
      expect(checkStream(sink.responses).map((e) => e.kv.modRevision)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10]);

      // The jump seen first by the feed: a later apply reveals it.
      const sink2 = new RecordingSink();
      hub.watch({ key: enc('k') }, sink2);
      for (let i = 11; i <= 15; i++) leader.put('k', `v${i}`);
      await store.installSnapshotFrom(leader);
      store.put('k', 'v16');
      await waitFor(() => sink2.lastRevision === 16 && sink.lastRevision === 16, 'both watchers at 16');
      expect(checkStream(sink2.responses).map((e) => e.kv.modRevision)).toEqual([11, 12, 13, 14, 15, 16]);
      expect(checkStream(sink.responses).map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 15 }, (_, i) => i + 2));
    } finally {
      await leader.close();
    }
  });

  it('bounds the watchers, drops a sink that throws, and close() cancels everyone', () => {
    const hub = newHub({ maxWatchers: 3 });
    const a = watchKeys(hub, { key: enc('a') });
    let throws = 0;
    hub.watch({ key: enc('a') }, {
      send: (r: WatchResponse) => {
        if (!r.created) {
          throws++;
          throw new Error('socket gone');
        }
      },
    });
    const p = plainSink();
    hub.watch({ key: enc('a'), watchId: 42 }, p.sink);
    expect(p.responses[0]).toMatchObject({ created: true, watchId: 42 });
    expect(() => hub.watch({ key: enc('a') }, new RecordingSink())).toThrowError(expect.objectContaining({ code: 'QUEUE_FULL' }) as KvError);
    store.put('a', '1');
    expect(throws).toBe(1);
    expect(hub.count).toBe(2);
    store.put('a', '2');
    expect(throws).toBe(1);
    expect(checkStream(a.responses).map(brief)).toEqual(['put a=1@1', 'put a=2@2']);
    expect(() => hub.watch({ key: new Uint8Array(0) }, new RecordingSink())).toThrowError(expect.objectContaining({ code: 'BAD_REQUEST' }) as KvError);
    expect(() => hub.watch({ key: enc('a'), startRevision: -1 }, new RecordingSink())).toThrowError(expect.objectContaining({ code: 'BAD_REQUEST' }) as KvError);
    hub.close();
    expect(a.canceled?.cancelReason).toBe('the member is stopping');
    expect(p.responses.at(-1)?.canceled).toBe(true);
    expect(hub.count).toBe(0);
    store.put('a', '3');
    expect(a.events.length).toBe(2);
    expect(() => hub.watch({ key: enc('a') }, new RecordingSink())).toThrowError(expect.objectContaining({ code: 'STOPPED' }) as KvError);
  });
});
