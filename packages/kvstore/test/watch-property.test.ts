// Property: whatever the interleaving of writes, watch starts (at the head or from any retained
// revision, so catch-up reads history while live applies race with it), event-loop turns and
// congested sinks, every watcher receives exactly the model's events for its range, filters and
// start revision: ordered, no duplicates, no gaps, each revision whole in one response.
// Real KvStateMachine on LevelDB; fast-check with a fixed seed (printed on failure).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { WatchHub } from '../src/watch/hub.js';
import { HEADER, RecordingSink, TestStore, checkStream, dec, enc, tick, waitFor } from './watch-helpers.js';

const KEYS = ['a', 'ab', 'abc', 'b', 'ba', 'c'] as const;
type Key = (typeof KEYS)[number];

interface RangeSpec {
  readonly name: string;
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  readonly has: (k: string) => boolean;
}
const RANGES: readonly RangeSpec[] = [
  { name: "key 'ab'", key: enc('ab'), has: (k) => k === 'ab' },
  { name: "prefix 'a'", key: enc('a'), rangeEnd: enc('b'), has: (k) => k.startsWith('a') },
  { name: "range ['ab','ba')", key: enc('ab'), rangeEnd: enc('ba'), has: (k) => k >= 'ab' && k < 'ba' },
  { name: "from 'b'", key: enc('b'), rangeEnd: Uint8Array.of(0), has: (k) => k >= 'b' },
  { name: 'all keys', key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0), has: () => true },
];

type Step =
  | { kind: 'put'; key: Key; value: number }
  | { kind: 'del'; key: Key }
  | { kind: 'delPrefix'; key: Key }
  | { kind: 'txn'; puts: Key[]; del: Key }
  | { kind: 'watch'; range: number; start: number; prevKv: boolean; filter: 'none' | 'noput' | 'nodelete'; congested: boolean }
  | { kind: 'yield'; turns: number }
  | { kind: 'drain'; watcher: number }
  | { kind: 'compact'; at: number };

const key = fc.constantFrom(...KEYS);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('put' as const), key, value: fc.integer({ min: 0, max: 999 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('del' as const), key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delPrefix' as const), key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('txn' as const), puts: fc.uniqueArray(key, { minLength: 1, maxLength: 3 }), del: key }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('watch' as const),
      range: fc.integer({ min: 0, max: RANGES.length - 1 }),
      // 0: from now; otherwise a fraction of the history (1 = the first revision).
      start: fc.integer({ min: 0, max: 100 }),
      prevKv: fc.boolean(),
      filter: fc.constantFrom('none' as const, 'noput' as const, 'nodelete' as const),
      congested: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('yield' as const), turns: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drain' as const), watcher: fc.nat() }) },
  // A fraction of the way from the compacted revision to the current one.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const), at: fc.integer({ min: 1, max: 100 }) }) },
);

interface ModelEvent {
  readonly revision: number;
  readonly type: 'put' | 'delete';
  readonly key: string;
  readonly value: string;
  readonly prev: string | undefined;
}

const show = (e: { revision: number; type: string; key: string; value: string; prev: string | undefined }): string =>
  `${e.revision}:${e.type} ${e.key}=${e.value} (prev ${e.prev ?? '-'})`;

describe('WatchHub property (real state machine)', () => {
  it('every watcher gets exactly its events, in order, whole revisions, whatever the interleaving', async () => {
    const seed = 20260411;
    let run = 0;
    try {
      await fc.assert(
        // Half the runs never compact, so most of their watchers must get everything.
        fc.asyncProperty(fc.boolean(), fc.array(step, { minLength: 20, maxLength: 80, size: 'max' }), async (compacting, allSteps) => {
          const steps = compacting ? allSteps : allSteps.filter((st) => st.kind !== 'compact');
          run++;
          const store = await TestStore.open();
          const hub = new WatchHub({ source: store.sm, header: () => HEADER, maxEventsPerResponse: 4 });
          try {
            const model = new Map<string, string>();
            const events: ModelEvent[] = [];
            let revision = store.revision; // a fresh store: etcd starts at revision 1
            let compacted = store.sm.compactedRevision;
            const watchers: { sink: RecordingSink; from: number; range: RangeSpec; prevKv: boolean; filter: string; refused: boolean }[] = [];
            for (const s of steps) {
              switch (s.kind) {
                case 'put': {
                  const value = `v${s.value}`;
                  revision = store.put(s.key, value);
                  events.push({ revision, type: 'put', key: s.key, value, prev: model.get(s.key) });
                  model.set(s.key, value);
                  break;
                }
                case 'del':
                case 'delPrefix': {
                  const doomed = [...model.keys()].filter((k) => (s.kind === 'del' ? k === s.key : k.startsWith(s.key))).sort();
                  const r = s.kind === 'del' ? store.del(s.key) : store.del(s.key, enc(s.key.slice(0, -1) + String.fromCharCode(s.key.charCodeAt(s.key.length - 1) + 1)));
                  if (doomed.length === 0) {
                    expect(r).toBe(revision);
                    break;
                  }
                  revision = r;
                  for (const k of doomed) {
                    events.push({ revision, type: 'delete', key: k, value: '', prev: model.get(k) });
                    model.delete(k);
                  }
                  break;
                }
                case 'txn': {
                  const ops = [
                    ...s.puts.map((k, i) => ({ put: { key: enc(k), value: enc(`t${revision + 1}.${i}`) } })),
                    ...(s.puts.includes(s.del) ? [] : [{ deleteRange: { key: enc(s.del) } }]),
                  ];
                  revision = store.apply({ op: 'txn', req: { compare: [], success: ops, failure: [] } }).revision;
                  // etcd orders a revision's events by the txn's operations.
                  s.puts.forEach((k, i) => {
                    const value = `t${revision}.${i}`;
                    events.push({ revision, type: 'put', key: k, value, prev: model.get(k) });
                    model.set(k, value);
                  });
                  if (!s.puts.includes(s.del) && model.has(s.del)) {
                    events.push({ revision, type: 'delete', key: s.del, value: '', prev: model.get(s.del) });
                    model.delete(s.del);
                  }
                  break;
                }
                case 'watch': {
                  const range = RANGES[s.range] as RangeSpec;
                  const start = s.start === 0 ? 0 : Math.max(1, Math.ceil((revision * s.start) / 100));
                  const sink = new RecordingSink();
                  sink.congestAfterEachSend = s.congested;
                  hub.watch(
                    { key: range.key, ...(range.rangeEnd ? { rangeEnd: range.rangeEnd } : {}), startRevision: start, prevKv: s.prevKv, ...(s.filter === 'none' ? {} : { filters: [s.filter] }) },
                    sink,
                  );
                  const refused = start !== 0 && start < compacted;
                  if (refused) expect(sink.canceled?.compactRevision).toBe(compacted);
                  watchers.push({ sink, from: start === 0 ? revision + 1 : start, range, prevKv: s.prevKv, filter: s.filter, refused });
                  break;
                }
                case 'yield':
                  for (let i = 0; i < s.turns; i++) await tick();
                  break;
                case 'compact': {
                  const at = compacted + Math.ceil(((revision - compacted) * s.at) / 100);
                  if (at <= compacted || at > revision) break;
                  store.apply({ op: 'compact', revision: at });
                  compacted = at;
                  break;
                }
                case 'drain': {
                  const w = watchers[s.watcher % Math.max(1, watchers.length)];
                  w?.sink.drain();
                  break;
                }
              }
            }
            expect(store.revision).toBe(revision);
            for (const w of watchers) {
              w.sink.congestAfterEachSend = false;
              w.sink.drain();
            }
            await waitFor(() => hub.stats().catchingUp === 0 && hub.stats().bufferedEvents === 0, 'every watcher caught up');
            // prev_kv of an event at or below a compaction point may be gone from history (as in etcd).
            const prevOf = (rev: number, prev: string | undefined, wanted: boolean): string | undefined => (wanted && rev > compacted ? prev : undefined);
            for (const w of watchers) {
              const expected = events
                .filter((e) => e.revision >= w.from && w.range.has(e.key))
                .filter((e) => !(w.filter === 'noput' && e.type === 'put') && !(w.filter === 'nodelete' && e.type === 'delete'))
                .map((e) => show({ ...e, prev: prevOf(e.revision, e.prev, w.prevKv) }));
              const got = checkStream(w.sink.responses).map((e) =>
                show({
                  revision: e.kv.modRevision,
                  type: e.type,
                  key: dec(e.kv.key),
                  value: dec(e.kv.value),
                  prev: prevOf(e.kv.modRevision, e.prevKv ? dec(e.prevKv.value) : undefined, true),
                }),
              );
              const what = `watcher ${w.range.name} from ${w.from} prevKv=${String(w.prevKv)} filter=${w.filter}`;
              const c = w.sink.canceled;
              if (c === undefined) {
                expect(got, what).toEqual(expected);
              } else {
                // Only a compaction ends a watcher here: what it got is a gapless prefix, and the
                // compaction revision it was told lies beyond everything it got.
                expect(c.cancelReason, what).toBe('mvcc: required revision has been compacted');
                expect(got, what).toEqual(expected.slice(0, got.length));
                if (w.refused) expect(got, what).toEqual([]);
                expect(c.compactRevision ?? 0, what).toBeGreaterThan(w.sink.lastRevision);
                expect(c.compactRevision ?? 0, what).toBeLessThanOrEqual(compacted);
              }
            }
          } finally {
            hub.close();
            await store.close();
          }
        }),
        { seed, numRuns: 60, endOnFailure: true },
      );
    } catch (e) {
      console.error(`watch property failed (seed ${seed}, run ${run}); rerun with the same seed to reproduce`);
      throw e;
    }
  }, 120_000);
});
