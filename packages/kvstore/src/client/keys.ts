// Small helpers for building requests: keys from strings, prefix ranges (etcd's semantics).

import type { Bytes } from '../types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A key or value given as a string (UTF-8) or bytes, as bytes. */
export function toBytes(k: string | Bytes): Bytes {
  return typeof k === 'string' ? encoder.encode(k) : k;
}

/** Bytes as a UTF-8 string (invalid sequences become U+FFFD). */
export function bytesToString(b: Bytes): string {
  return decoder.decode(b);
}

/**
 * The smallest key greater than every key starting with `prefix` (etcd's GetPrefixRangeEnd):
 * strip trailing 0xff bytes and increment the last one; [0] (every key) when none is left.
 */
export function prefixEnd(prefix: Bytes): Bytes {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = prefix.slice(0, i + 1);
      end[i] = prefix[i]! + 1;
      return end;
    }
  }
  return new Uint8Array([0]);
}

/** { key, rangeEnd } of every key starting with `prefix` (an empty prefix: all keys). */
export function prefixRange(prefix: string | Bytes): { readonly key: Bytes; readonly rangeEnd: Bytes } {
  const p = toBytes(prefix);
  if (p.length === 0) return { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) };
  return { key: p, rangeEnd: prefixEnd(p) };
}
