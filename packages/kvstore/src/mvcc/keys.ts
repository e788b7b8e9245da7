// Keys and key ranges.
//
// etcd keys are arbitrary bytes, ordered byte by byte (lexicographically, shorter first on a tie).
// Inside the store we hold each key as a "latin1 string": every byte becomes one character with the
// same code (0..255). JavaScript compares strings by character codes, so the string order IS the
// byte order, and the strings work as Map keys and B-tree keys with no custom comparator.

import type { Bytes } from '../types.js';

/** A key as the store holds it internally: one character per byte (latin1). */
export type KeyString = string;

export function keyString(key: Bytes): KeyString {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export function keyBytes(key: KeyString): Bytes {
  return Buffer.from(key, 'latin1');
}

/**
 * A range as etcd defines it (see RangeRequest): `end` absent = the single key `start`;
 * `end` = null = every key >= start; otherwise [start, end).
 */
export interface KeyRange {
  readonly start: KeyString;
  /** undefined: the single key `start`; null: no upper bound; a string: exclusive upper bound. */
  readonly end: KeyString | null | undefined;
}

/** etcd's convention: rangeEnd absent or empty = one key; rangeEnd = "\0" = no upper bound. */
export function toKeyRange(key: Bytes, rangeEnd: Bytes | undefined): KeyRange {
  const start = keyString(key);
  if (rangeEnd === undefined || rangeEnd.length === 0) return { start, end: undefined };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, end: null };
  return { start, end: keyString(rangeEnd) };
}

export function isSingleKey(r: KeyRange): boolean {
  return r.end === undefined;
}

export function inRange(r: KeyRange, k: KeyString): boolean {
  if (r.end === undefined) return k === r.start;
  return k >= r.start && (r.end === null || k < r.end);
}

/** Do two ranges share at least one key? (A range whose end <= start is empty.) */
export function rangesOverlap(a: KeyRange, b: KeyRange): boolean {
  const aEnd = a.end === undefined ? a.start + '\0' : a.end; // a single key k is [k, k + "\0")
  const bEnd = b.end === undefined ? b.start + '\0' : b.end;
  const aEmpty = aEnd !== null && aEnd <= a.start;
  const bEmpty = bEnd !== null && bEnd <= b.start;
  if (aEmpty || bEmpty) return false;
  return (aEnd === null || b.start < aEnd) && (bEnd === null || a.start < bEnd);
}

/** The smallest key greater than every key with this prefix ("\0" = no bound, as etcd's prefix end). */
export function prefixEnd(prefix: Bytes): Bytes {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Uint8Array.of(0);
}
