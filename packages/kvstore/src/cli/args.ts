// Argument parsing shared by the `ballot kv` commands and the txn script parser. Every parser
// throws UsageError naming the flag; the command layer turns it into exit code 2.

import { prefixEnd } from '../client/keys.js';
import type { Bytes, RangeRequest, SortOrder, SortTarget } from '../types.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const enc = new TextEncoder();
export const bytes = (s: string): Bytes => enc.encode(s);

export { prefixEnd };

export interface KeyRangeFlags {
  readonly prefix?: boolean;
  readonly fromKey?: boolean;
}

/**
 * `<key> [range_end]` plus --prefix / --from-key, as etcdctl: --prefix with an empty key means
 * every key; --from-key means every key >= key; the flags exclude an explicit range_end.
 */
export function keyRange(command: string, key: string, rangeEnd: string | undefined, f: KeyRangeFlags): { key: Bytes; rangeEnd?: Bytes } {
  if (f.prefix && f.fromKey) throw new UsageError(`${command}: --prefix and --from-key exclude each other`);
  if ((f.prefix || f.fromKey) && rangeEnd !== undefined) throw new UsageError(`${command}: a range_end excludes --prefix and --from-key`);
  const k = bytes(key);
  if (f.fromKey) return { key: k.length === 0 ? new Uint8Array([0]) : k, rangeEnd: new Uint8Array([0]) };
  if (f.prefix) return k.length === 0 ? { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) } : { key: k, rangeEnd: prefixEnd(k) };
  if (key === '') throw new UsageError(`${command}: the key must not be empty (use --prefix "" for every key)`);
  return rangeEnd !== undefined ? { key: k, rangeEnd: bytes(rangeEnd) } : { key: k };
}

/** A non-negative decimal integer within [min, max]. */
export function parseIntArg(flag: string, value: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(value.trim())) throw new UsageError(`${flag}: expected a non-negative integer, got "${value}"`);
  const n = Number(value.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag}: ${value.trim()} is out of range ${min}-${max}`);
  return n;
}

/** A lease id written as etcdctl prints it (hex, up to 16 digits, safe integer). */
export function parseLeaseId(flag: string, value: string): number {
  const v = value.trim().replace(/^0x/i, '');
  if (!/^[0-9a-f]{1,16}$/i.test(v)) throw new UsageError(`${flag}: expected a lease id in hex (as "lease grant" prints it), got "${value}"`);
  const n = Number.parseInt(v, 16);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${flag}: lease id ${value} is above 2^53-1, which Ballot does not support`);
  return n;
}

/** A member id: 16 hex digits as `member list` prints them (shorter ones are zero-padded). */
export function parseMemberId(flag: string, value: string): string {
  const v = value.trim().toLowerCase();
  if (!/^[0-9a-f]{1,16}$/.test(v)) throw new UsageError(`${flag}: expected a member id in hex (as "member list" prints it), got "${value}"`);
  return v.padStart(16, '0');
}

/** Comma-separated URLs, each http://host:port. */
export function parseUrls(flag: string, value: string): string[] {
  const urls = value.split(',').map((u) => u.trim()).filter((u) => u.length > 0);
  if (urls.length === 0) throw new UsageError(`${flag}: expected one or more URLs, got an empty list`);
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new UsageError(`${flag}: "${u}" is not a URL (expected e.g. http://127.0.0.1:2379)`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`${flag}: "${u}" must start with http:// or https://`);
    if (parsed.port === '') throw new UsageError(`${flag}: "${u}" has no port`);
  }
  return urls;
}

/** --endpoints: like etcdctl, "host:port" is accepted too and means http://host:port. */
export function parseEndpoints(value: string): string[] {
  const list = value.split(',').map((u) => u.trim()).filter((u) => u.length > 0);
  return parseUrls('--endpoints', list.map((u) => (/^[a-z]+:\/\//i.test(u) ? u : `http://${u}`)).join(','));
}

const ORDERS: Record<string, SortOrder> = { ASCEND: 'ascend', DESCEND: 'descend' };
const TARGETS: Record<string, SortTarget> = { CREATE: 'create', KEY: 'key', MODIFY: 'mod', VALUE: 'value', VERSION: 'version' };

export interface GetFlags extends KeyRangeFlags {
  readonly rev?: string;
  readonly limit?: string;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  readonly order?: string;
  readonly sortBy?: string;
  readonly consistency?: string;
}

/** etcdctl get's flags as a RangeRequest. */
export function rangeRequest(command: string, key: string, rangeEnd: string | undefined, f: GetFlags): RangeRequest {
  const range = keyRange(command, key, rangeEnd, f);
  const consistency = f.consistency ?? 'l';
  if (consistency !== 'l' && consistency !== 's') throw new UsageError(`${command}: --consistency: expected l (linearizable) or s (serializable), got "${consistency}"`);
  let sortOrder: SortOrder | undefined;
  if (f.order !== undefined && f.order !== '') {
    sortOrder = ORDERS[f.order.toUpperCase()];
    if (sortOrder === undefined) throw new UsageError(`${command}: --order: expected ASCEND or DESCEND, got "${f.order}"`);
  }
  let sortTarget: SortTarget | undefined;
  if (f.sortBy !== undefined && f.sortBy !== '') {
    sortTarget = TARGETS[f.sortBy.toUpperCase()];
    if (sortTarget === undefined) throw new UsageError(`${command}: --sort-by: expected CREATE, KEY, MODIFY, VALUE or VERSION, got "${f.sortBy}"`);
  }
  // etcdctl: a sort target without an order sorts ascending; an order without a target sorts by key.
  if (sortTarget !== undefined && sortOrder === undefined) sortOrder = 'ascend';
  if (sortOrder !== undefined && sortTarget === undefined) sortTarget = 'key';
  return {
    ...range,
    ...(f.limit !== undefined ? { limit: parseIntArg(`${command}: --limit`, f.limit) } : {}),
    ...(f.rev !== undefined ? { revision: parseIntArg(`${command}: --rev`, f.rev) } : {}),
    ...(sortOrder !== undefined ? { sortOrder } : {}),
    ...(sortTarget !== undefined ? { sortTarget } : {}),
    ...(consistency === 's' ? { serializable: true } : {}),
    ...(f.keysOnly ? { keysOnly: true } : {}),
    ...(f.countOnly ? { countOnly: true } : {}),
  };
}
