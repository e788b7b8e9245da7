// Which keys a watcher covers, as etcd writes ranges: `key` and an optional `rangeEnd`. The hub
// tests every event of every revision against every live watcher, so the match compares bytes in
// place (no conversion per event). prefixEnd lives with the store's keys (mvcc/keys.ts).

import type { Bytes } from '../types.js';

/** Byte-wise comparison (-1, 0, 1), as LevelDB and etcd order keys. */
export function compareBytes(a: Bytes, b: Bytes): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/**
 * A compiled key range: `matches(k)` says whether k is in it. rangeEnd absent or empty: the single
 * key; rangeEnd = [0]: every key >= key; otherwise [key, rangeEnd).
 */
export interface KeyMatcher {
  readonly key: Bytes;
  readonly rangeEnd: Bytes | null;
  matches(k: Bytes): boolean;
}

export function keyMatcher(key: Bytes, rangeEnd?: Bytes): KeyMatcher {
  if (rangeEnd === undefined || rangeEnd.length === 0) {
    return { key, rangeEnd: null, matches: (k) => compareBytes(k, key) === 0 };
  }
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) {
    return { key, rangeEnd, matches: (k) => compareBytes(k, key) >= 0 };
  }
  return { key, rangeEnd, matches: (k) => compareBytes(k, key) >= 0 && compareBytes(k, rangeEnd) < 0 };
}
