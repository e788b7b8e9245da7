// The key index, as a textbook example: one key's generations, reads at old revisions, and what
// compaction keeps. The revisions below are the ones in key-index.ts's opening comment.

import { describe, expect, it } from 'vitest';
import { KeyHistory, KeyIndex, type Rev } from '../src/mvcc/key-index.js';
import { rangesOverlap, toKeyRange, prefixEnd, keyString } from '../src/mvcc/keys.js';
import type { KeyValue } from '../src/types.js';
import { te, td } from './state-helpers.js';

const rev = (main: number): Rev => ({ main, sub: 0 });
const kv = (value: string, create: number, mod: number, version: number): KeyValue => ({
  key: te('k'),
  value: te(value),
  createRevision: create,
  modRevision: mod,
  version,
  lease: 0,
});

/** generation 1: put@3 (v1), put@5 (v2), tombstone@8; generation 2: put@12 (v1). */
function example(): KeyHistory {
  const h = new KeyHistory();
  h.put(rev(3), kv('a', 3, 3, 1));
  h.put(rev(5), kv('b', 3, 5, 2));
  h.tombstone(rev(8));
  h.put(rev(12), kv('c', 12, 12, 1));
  return h;
}

describe('KeyHistory', () => {
  it('records generations and answers "which change holds the key at revision R"', () => {
    const h = example();
    expect(h.generations.map((g) => [g.createRevision, g.revs.map((r) => r.main), g.closed])).toEqual([
      [3, [3, 5, 8], true],
      [12, [12], false],
    ]);
    expect(td(h.live!.value)).toBe('c');
    const at = (r: number): number | null => h.revAt(r)?.main ?? null;
    expect([1, 2, 3, 4, 5, 7, 8, 11, 12, 99].map(at)).toEqual([null, null, 3, 3, 5, 5, null, null, 12, 12]);
  });

  it('compaction keeps what a reader at the compaction revision or later needs', () => {
    const cases: [number, number[][], number[]][] = [
      // [compact to, generations left (revs), revs dropped]
      [4, [[3, 5, 8], [12]], []], // state at 4 is put@3: kept
      [6, [[5, 8], [12]], [3]], // state at 6 is put@5
      [8, [[8], [12]], [3, 5]], // the tombstone OF revision 8 stays (revision 8 replays whole)
      [9, [[12]], [3, 5, 8]], // the first generation ended before 9: gone
      [12, [[12]], [3, 5, 8]],
    ];
    for (const [to, left, dropped] of cases) {
      const h = example();
      const out: Rev[] = [];
      h.compact(to, out);
      expect(h.generations.map((g) => g.revs.map((r) => r.main)), `compact ${to}`).toEqual(left);
      expect(out.map((r) => r.main), `compact ${to}`).toEqual(dropped);
      // Reads at the compaction revision and later are unchanged.
      for (let r = to; r <= 13; r++) expect(h.revAt(r)?.main ?? null, `compact ${to}, read ${r}`).toBe(example().revAt(r)?.main ?? null);
    }
  });

  it('a deleted key whose history is compacted away is empty (the index forgets it)', () => {
    const h = new KeyHistory();
    h.put(rev(2), kv('a', 2, 2, 1));
    h.tombstone(rev(4));
    const out: Rev[] = [];
    h.compact(5, out);
    expect(h.isEmpty).toBe(true);
    expect(out.map((r) => r.main)).toEqual([2, 4]);
    expect(() => h.tombstone(rev(6))).toThrow(/not alive/);
  });
});

describe('KeyIndex and key ranges', () => {
  it('walks single keys, [start, end), from-key and prefixes in byte order', () => {
    const idx = new KeyIndex();
    for (const k of ['b', 'a', 'ab', 'a\u00ff', 'c', '\u00ff\u00ff']) idx.getOrCreate(keyString(Buffer.from(k, 'latin1')));
    const walk = (key: Uint8Array, end?: Uint8Array): string[] => {
      const out: string[] = [];
      idx.forEachInRange(toKeyRange(key, end), (k) => void out.push(k));
      return out;
    };
    expect(walk(te('ab'))).toEqual(['ab']);
    expect(walk(te('a'), te('b'))).toEqual(['a', 'ab', 'a\u00ff']);
    expect(walk(te('b'), Uint8Array.of(0))).toEqual(['b', 'c', '\u00ff\u00ff']);
    expect(walk(Uint8Array.of(0), Uint8Array.of(0))).toHaveLength(6);
    expect(walk(te('a'), prefixEnd(te('a')))).toEqual(['a', 'ab', 'a\u00ff']);
    expect(walk(te('c'), te('b'))).toEqual([]); // end <= start: empty
    expect(Array.from(prefixEnd(Uint8Array.of(0x61, 0xff)))).toEqual([0x62]);
    expect(Array.from(prefixEnd(Uint8Array.of(0xff, 0xff)))).toEqual([0]);
  });

  it('rangesOverlap treats single keys, bounded and unbounded ranges alike', () => {
    const r = (k: string, e?: string): ReturnType<typeof toKeyRange> => toKeyRange(te(k), e === undefined ? undefined : e === '\0' ? Uint8Array.of(0) : te(e));
    expect(rangesOverlap(r('a'), r('a'))).toBe(true);
    expect(rangesOverlap(r('a'), r('b'))).toBe(false);
    expect(rangesOverlap(r('b'), r('a', 'c'))).toBe(true);
    expect(rangesOverlap(r('c'), r('a', 'c'))).toBe(false);
    expect(rangesOverlap(r('z'), r('m', '\0'))).toBe(true);
    expect(rangesOverlap(r('a', 'b'), r('b', 'c'))).toBe(false);
    expect(rangesOverlap(r('c', 'a'), r('a', 'z'))).toBe(false); // empty range
  });
});
