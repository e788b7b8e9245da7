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

/** Revisions as the n-th write makes them: a fresh store is at revision B (etcd starts at 1). */
let B = 0;
const r = (n: number): number => B + n;

beforeEach(async () => {
  store = await TestStore.open();
  B = store.revision;
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
      expect(s.responses[0]).toMatchObject({ created: true, events: [], header: { revision: r(0) } });
    }
    store.put('a', '1'); // 1
    store.put('ab', '2'); // 2
    store.put('abc', '3'); // 3
    store.put('b', '4'); // 4
    store.put('bz', '5'); // 5
    store.put('c', '6'); // 6
    store.del('ab'); // 7
    expect(checkStream(one.responses).map(brief)).toEqual([`put b=4@${r(4)}`]);
    expect(checkStream(range.responses).map(brief)).toEqual([`put b=4@${r(4)}`, `put bz=5@${r(5)}`]);
    expect(checkStream(prefix.responses).map(brief)).toEqual([`put ab=2@${r(2)}`, `put abc=3@${r(3)}`, `delete ab@${r(7)}`]);
    expect(checkStream(fromKey.responses).map(brief)).toEqual([`put b=4@${r(4)}`, `put bz=5@${r(5)}`, `put c=6@${r(6)}`]);
    expect(checkStream(all.responses).map(brief)).toEqual([
      `put a=1@${r(1)}`, `put ab=2@${r(2)}`, `put abc=3@${r(3)}`, `put b=4@${r(4)}`, `put bz=5@${r(5)}`, `put c=6@${r(6)}`, `delete ab@${r(7)}`,
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
    expect(ev.map(brief)).toEqual([`put k=v1@${r(1)}`, `put k=v2@${r(2)}`, `delete k@${r(3)}`]);
    expect(ev[0]?.prevKv).toBeUndefined();
    expect(dec(ev[1]?.prevKv?.value ?? enc('missing'))).toBe('v1');
    expect(dec(ev[2]?.prevKv?.value ?? enc('missing'))).toBe('v2');
    expect(ev[1]?.kv.version).toBe(2);
    expect(checkStream(without.responses).every((e) => e.prevKv === undefined)).toBe(true);
    expect(checkStream(noPut.responses).map(brief)).toEqual([`delete k@${r(3)}`]);
    expect(checkStream(noDelete.responses).map(brief)).toEqual([`put k=v1@${r(1)}`, `put k=v2@${r(2)}`]);
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
    const responses = all.responses.filter((x) => x.events.length > 0);
    checkStream(all.responses);
    expect(responses.map((x) => x.events.map(brief))).toEqual([
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
    const sink = watchKeys(hub, { key: enc('k'), rangeEnd: enc('l'), startRevision: r(5), prevKv: true });
    expect(hub.stats().catchingUp).toBe(1);
    for (let i = 31; i <= 40; i++) {
      store.put(`k${i % 4}`, `v${i}`);
      await tick();
    }
    await waitFor(() => hub.stats().catchingUp === 0 && sink.lastRevision === r(40), 'catch-up and live events up to 40');
    const ev = checkStream(sink.responses);
    expect(ev.map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 36 }, (_, i) => r(i + 5)));
    expect(ev.map((e) => dec(e.kv.value))).toEqual(Array.from({ length: 36 }, (_, i) => `v${i + 5}`));
    // prev_kv from history as well as live: the value written 4 revisions earlier to the same key.
    expect(ev.map((e) => (e.prevKv ? dec(e.prevKv.value) : '-'))).toEqual(Array.from({ length: 36 }, (_, i) => `v${i + 1}`));
    expect(Math.max(...sink.responses.map((x) => x.events.length))).toBeLessThanOrEqual(7);
  });

  it("a start revision below the compacted one gets created, then canceled with compactRevision; the compaction revision itself replays whole (etcd's rule)", async () => {
    for (let i = 1; i <= 10; i++) store.put('k', `v${i}`);
    store.del('k'); // r(11): a tombstone AT the compaction revision must still replay
    store.put('k', 'v12');
    store.apply({ op: 'compact', revision: r(11) });
    const hub = newHub();
    for (const start of [r(1), r(10)]) {
      const sink = watchKeys(hub, { key: enc('k'), startRevision: start });
      expect(sink.responses.map((x) => [x.created ?? false, x.canceled ?? false])).toEqual([[true, false], [false, true]]);
      expect(sink.canceled?.compactRevision).toBe(r(11));
      expect(sink.canceled?.cancelReason).toBe('mvcc: required revision has been compacted');
    }
    const ok = watchKeys(hub, { key: enc('k'), startRevision: r(11) });
    await waitFor(() => ok.lastRevision === r(12), 'events from the compaction revision on');
    expect(checkStream(ok.responses).map(brief)).toEqual([`delete k@${r(11)}`, `put k=v12@${r(12)}`]);
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
    expect(sink.responses.map((x) => (x.created ? 'created' : x.canceled ? `canceled: ${x.cancelReason}` : x.events.map(brief).join()))).toEqual([
      'created',
      `put k=1@${r(1)}`,
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
    expect(sink.responses.at(-1)).toMatchObject({ events: [], header: { revision: r(2) } });
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
    expect(after.map((x) => (x.events.length ? x.events.map(brief).join() : `progress@${x.header.revision}`))).toEqual([
      `put k=a@${r(3)},put k=b@${r(4)}`,
      `progress@${r(5)}`,
    ]);

    // Catching up from history: progress comes after the history is delivered.
    for (let i = 0; i < 20; i++) store.put('k', `h${i}`);
    const late = new RecordingSink();
    const h2 = hub.watch({ key: enc('k'), startRevision: r(1) }, late);
    h2.requestProgress();
    await waitFor(() => late.responses.some((x) => x.events.length === 0 && !x.created), 'deferred progress');
    const idx = late.responses.findIndex((x) => x.events.length === 0 && !x.created);
    expect(late.responses[idx]?.header.revision).toBe(store.revision);
    expect(late.responses.slice(0, idx).flatMap((x) => x.events).length).toBe(22);
  });

  it('progressNotify: idle watchers get periodic progress notifications at the current revision', async () => {
    const hub = newHub({ progressIntervalMs: 15 });
    store.put('a', '1');
    const sink = new RecordingSink();
    hub.watch({ key: enc('k'), progressNotify: true }, sink);
    const quiet = new RecordingSink();
    hub.watch({ key: enc('k') }, quiet);
    await waitFor(() => sink.responses.filter((x) => !x.created && x.events.length === 0).length >= 2, 'two progress notifications');
    store.put('b', '2');
    await waitFor(() => sink.responses.some((x) => !x.created && x.events.length === 0 && x.header.revision === r(2)), 'progress at revision 2');
    expect(quiet.responses.length).toBe(1);
    for (const x of sink.responses.slice(1)) expect([r(1), r(2)]).toContain(x.header.revision);
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
    await waitFor(() => resumed.lastRevision === r(70), 'resumed watcher reaches 70');
    const all = [...seen, ...checkStream(resumed.responses)];
    expect(all.map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 70 }, (_, i) => r(i + 1)));
    expect(all.map((e) => dec(e.kv.value))).toEqual(Array.from({ length: 70 }, (_, i) => `v${i + 1}`));
  });

  it('the buffer is bounded in bytes too: large values cancel a slow watcher before the event bound', () => {
    const hub = newHub({ maxBufferedBytes: 100_000, maxResponseBytes: 30_000 });
    const slow = new RecordingSink();
    hub.watch({ key: enc('big') }, slow);
    slow.writable = false;
    const big = 'x'.repeat(20_000);
    let peak = 0;
    for (let i = 0; i < 10 && slow.canceled === undefined; i++) {
      store.put('big', big);
      peak = Math.max(peak, hub.stats().bufferedBytes);
    }
    expect(slow.canceled?.cancelReason).toMatch(/^watcher is too slow: 5 buffered events, \d+ bytes/);
    expect(peak).toBeLessThanOrEqual(100_000);
    expect(hub.stats().bufferedBytes).toBe(0);

    // And responses are cut by bytes (whole revisions): 20 kB values, 30 kB per response -> one each.
    const fast = new RecordingSink();
    hub.watch({ key: enc('big'), startRevision: r(1) }, fast);
    return waitFor(() => fast.lastRevision === r(5), 'history of the big key').then(() => {
      expect(fast.responses.filter((x) => x.events.length > 0).map((x) => x.events.length)).toEqual([1, 1, 1, 1, 1]);
    });
  });

  it('a congested sink pauses the catch-up (bounded) and it completes on drain, with live applies racing', async () => {
    for (let i = 1; i <= 200; i++) store.put(`k${i % 10}`, `v${i}`);
    const hub = newHub({ maxEventsPerResponse: 10, maxBufferedEvents: 50 });
    const sink = new RecordingSink();
    sink.congestAfterEachSend = true;
    hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: 1 }, sink);
    let peak = 0;
    let next = 201;
    const deadline = Date.now() + 10_000; // a bound against a hang, not a timing assertion
    for (let round = 0; sink.lastRevision < r(230) && sink.canceled === undefined && Date.now() < deadline; round++) {
      await tick();
      peak = Math.max(peak, hub.stats().bufferedEvents);
      if (next <= 230 && round % 3 === 0) store.put(`k${next % 10}`, `v${next++}`);
      if (!sink.writable) sink.drain();
    }
    expect(sink.canceled?.cancelReason).toBeUndefined();
    const ev = checkStream(sink.responses);
    expect(ev.map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 230 }, (_, i) => r(i + 1)));
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
    // Applied while the first history round (up to r(100)) is paused: the next round would start
    // at r(101), which is compacted by then.
    for (let i = 101; i <= 110; i++) store.put(`k${i % 7}`, `v${i}`);
    store.apply({ op: 'compact', revision: r(105) });
    sink.congestAfterEachSend = false;
    sink.drain();
    await waitFor(() => sink.canceled !== undefined, 'the watcher is canceled');
    const seen = checkStream(sink.responses);
    expect(seen.map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 100 }, (_, i) => r(i + 1)));
    expect(sink.canceled).toMatchObject({ compactRevision: r(105), cancelReason: 'mvcc: required revision has been compacted' });
    const resumeFrom = r(105);
    const rest = new RecordingSink();
    hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: resumeFrom }, rest);
    store.put('k0', 'last'); // 111
    await waitFor(() => rest.lastRevision === r(111), 'the resumed watcher reaches 111');
    expect(checkStream(rest.responses).map((e) => e.kv.modRevision)).toEqual(Array.from({ length: r(112) - resumeFrom }, (_, i) => i + resumeFrom));
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
      const late = watchKeys(hub, { key: enc('k'), rangeEnd: enc('l'), startRevision: r(20) });
      for (let i = 6; i <= 25; i++) leader.put(`k${i % 3}`, `v${i}`);
      await store.installSnapshotFrom(leader);
      expect(store.revision).toBe(r(25));
      expect(sink.responses.length).toBe(1); // only `created`: nothing was fed
      const handle = hub.watch({ key: enc('zz') }, new RecordingSink()); // any call notices the jump
      handle.cancel();
      const progressSink = new RecordingSink();
      hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: r(25) }, progressSink);
      await waitFor(() => sink.lastRevision === r(25) && late.lastRevision === r(25) && progressSink.lastRevision === r(25), 'catch-up after the snapshot');
      store.put('k1', 'after'); // 26, live again
      expect(checkStream(sink.responses).map((e) => e.kv.modRevision)).toEqual(
        Array.from({ length: 21 }, (_, i) => r(i + 6)),
      );
      expect(late.events.map((e) => e.kv.modRevision)).toEqual([20, 21, 22, 23, 24, 25, 26].map(r));
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
      h.requestProgress(); // at r(10) now, but r(2)..r(10) are not delivered yet: no progress before them
      await waitFor(() => sink.responses.some((x) => !x.created && x.events.length === 0), 'the progress notification');
      const ids = sink.responses.map((x) => (x.created ? 'created' : x.events.length ? x.events.map((e) => e.kv.modRevision).join('+') : `progress@${x.header.revision}`));
      expect(ids.at(-1)).toBe(`progress@${r(10)}`);
      expect(checkStream(sink.responses).map((e) => e.kv.modRevision)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10].map(r));

      // The jump seen first by the feed: a later apply reveals it.
      const sink2 = new RecordingSink();
      hub.watch({ key: enc('k') }, sink2);
      for (let i = 11; i <= 15; i++) leader.put('k', `v${i}`);
      await store.installSnapshotFrom(leader);
      store.put('k', 'v16');
      await waitFor(() => sink2.lastRevision === r(16) && sink.lastRevision === r(16), 'both watchers at 16');
      expect(checkStream(sink2.responses).map((e) => e.kv.modRevision)).toEqual([11, 12, 13, 14, 15, 16].map(r));
      expect(checkStream(sink.responses).map((e) => e.kv.modRevision)).toEqual(Array.from({ length: 15 }, (_, i) => r(i + 2)));
    } finally {
      await leader.close();
    }
  });

  it('watchers catching up while a snapshot is being installed: each gets a gapless stream, or a cancel it can resume from', async () => {
    const leader = await TestStore.open();
    try {
      for (let i = 1; i <= 5; i++) {
        store.put(`k${i % 4}`, `v${i}`);
        leader.put(`k${i % 4}`, `v${i}`);
      }
      for (let i = 6; i <= 300; i++) leader.put(`k${i % 4}`, `v${i}`);
      const hub = newHub();
      const sinks: RecordingSink[] = [];
      let done = false;
      const restoring = store.installSnapshotFrom(leader).then(() => {
        done = true;
      });
      while (!done && sinks.length < 40) {
        const s = new RecordingSink();
        hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: 1 }, s);
        sinks.push(s);
        await tick();
      }
      await restoring;
      store.put('k0', 'after'); // 301
      await waitFor(() => sinks.every((s) => s.canceled !== undefined || s.lastRevision === r(301)), 'every watcher finished or canceled');
      for (const s of sinks) {
        const revs = checkStream(s.responses).map((e) => e.kv.modRevision);
        expect(revs).toEqual(Array.from({ length: revs.length }, (_, i) => r(i + 1)));
        if (s.canceled === undefined) expect(revs.length).toBe(301);
        else expect(s.canceled.cancelReason).toMatch(/resume from/);
      }
      // Whatever happened, resuming from the last revision seen gives exactly the rest.
      const cut = sinks.find((s) => s.canceled !== undefined);
      if (cut !== undefined) {
        const rest = new RecordingSink();
        hub.watch({ key: enc('k'), rangeEnd: enc('l'), startRevision: cut.lastRevision + 1 }, rest);
        await waitFor(() => rest.lastRevision === r(301), 'the resumed watcher reaches 301');
        expect(checkStream(rest.responses)[0]?.kv.modRevision).toBe(cut.lastRevision + 1);
      }
    } finally {
      await leader.close();
    }
  });

  it('bounds the watchers, drops a sink that throws, and close() cancels everyone', () => {
    const hub = newHub({ maxWatchers: 3 });
    const a = watchKeys(hub, { key: enc('a') });
    let throws = 0;
    hub.watch({ key: enc('a') }, {
      send: (res: WatchResponse) => {
        if (!res.created) {
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
    expect(checkStream(a.responses).map(brief)).toEqual([`put a=1@${r(1)}`, `put a=2@${r(2)}`]);
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
