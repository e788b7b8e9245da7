// The txn script parser (etcdctl's stdin format) and the flag parsers of `ballot kv`.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';

import { UsageError, keyRange, parseEndpoints, parseLeaseId, parseMemberId, prefixEnd, rangeRequest } from '../src/cli/args.js';
import { parseCompare, parseOp, parseTxnScript, splitWords } from '../src/cli/txn.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('txn script', () => {
  it("parses etcdctl's documented example: compares, success ops, failure ops", () => {
    const script = 'mod("key1") > "0"\nvalue("key2") = "x y"\n\nput key1 "over write"\nget key2 --prefix\n\nput key1 created-key1\ndel key2 --prev-kv\n';
    const t = parseTxnScript(script);
    expect(t.compare).toEqual([
      { key: b('key1'), result: 'greater', target: 'mod', modRevision: 0 },
      { key: b('key2'), result: 'equal', target: 'value', value: b('x y') },
    ]);
    expect(t.success).toEqual([{ put: { key: b('key1'), value: b('over write') } }, { range: { key: b('key2'), rangeEnd: b('key3') } }]);
    expect(t.failure).toEqual([{ put: { key: b('key1'), value: b('created-key1') } }, { deleteRange: { key: b('key2'), prevKv: true } }]);
  });

  it('accepts empty sections, bare numbers, hex leases and every compare operator', () => {
    const t = parseTxnScript('version("a") != 3\ncreate("a") < 7\nlease("a") = 694d7a1b\n\n\nput a 1 --lease=1f --prev-kv\n');
    expect(t.compare.map((c) => c.result)).toEqual(['not_equal', 'less', 'equal']);
    expect(t.compare[2]).toMatchObject({ target: 'lease', lease: 0x694d7a1b });
    expect(t.success).toEqual([]);
    expect(t.failure).toEqual([{ put: { key: b('a'), value: b('1'), lease: 0x1f, prevKv: true } }]);
    expect(parseTxnScript('\n\n').compare).toEqual([]);
  });

  it('names the line of each mistake', () => {
    expect(() => parseTxnScript('value(a) = "1"\n')).toThrow(/txn line 1: expected a compare/);
    expect(() => parseTxnScript('version("a") = x\n')).toThrow(/txn line 1: version: expected a non-negative integer/);
    expect(() => parseTxnScript('\nput a\n')).toThrow(/txn line 2: put needs a key and a value/);
    expect(() => parseTxnScript('\nget a --bogus\n')).toThrow(/txn line 2: unknown flag --bogus/);
    expect(() => parseTxnScript('\nfrob a\n')).toThrow(/txn line 2: expected an operation/);
    expect(() => parseTxnScript('\n\nput a 1\n\nput b 2\n')).toThrow(/txn line 5: unexpected text/);
    expect(() => parseOp('put "a 1', 'x')).toThrow(/not closed/);
    expect(() => parseOp('put a 1', 'x')).not.toThrow();
  });

  it('unquotes Go-style escapes and keeps quoted spaces together', () => {
    expect(splitWords('put "a \\"b\\"" "\\x41\\n" --lease=ff', 'x')).toEqual(['put', 'a "b"', 'A\n', '--lease=ff']);
    expect(parseCompare('value("k\\"q") = "v"', 'x')).toMatchObject({ key: b('k"q'), value: b('v') });
  });

  it('splitWords inverts quoting for any text (property, seed 4242)', () => {
    const quote = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
    fc.assert(
      fc.property(fc.array(fc.string(), { maxLength: 5 }), (ws) => {
        expect(splitWords(ws.map(quote).join(' '), 'p')).toEqual(ws);
      }),
      { seed: 4242, numRuns: 300 },
    );
  });
});

describe('flag parsers', () => {
  it('computes prefix ends like etcd', () => {
    expect(prefixEnd(b('abc'))).toEqual(b('abd'));
    expect(prefixEnd(new Uint8Array([0x61, 0xff]))).toEqual(b('b'));
    expect(prefixEnd(new Uint8Array([0xff, 0xff]))).toEqual(new Uint8Array([0]));
  });

  it('turns key, range_end, --prefix and --from-key into a range', () => {
    expect(keyRange('get', 'a', undefined, {})).toEqual({ key: b('a') });
    expect(keyRange('get', 'a', 'c', {})).toEqual({ key: b('a'), rangeEnd: b('c') });
    expect(keyRange('get', '', undefined, { prefix: true })).toEqual({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) });
    expect(keyRange('get', 'k', undefined, { fromKey: true })).toEqual({ key: b('k'), rangeEnd: new Uint8Array([0]) });
    expect(() => keyRange('get', '', undefined, {})).toThrow(UsageError);
    expect(() => keyRange('get', 'a', 'b', { prefix: true })).toThrow(/range_end excludes/);
  });

  it('maps get flags onto a RangeRequest', () => {
    expect(rangeRequest('get', 'k', undefined, { prefix: true, rev: '5', limit: '2', consistency: 's', sortBy: 'modify', keysOnly: true })).toEqual({
      key: b('k'),
      rangeEnd: b('l'),
      revision: 5,
      limit: 2,
      serializable: true,
      sortOrder: 'ascend',
      sortTarget: 'mod',
      keysOnly: true,
    });
    expect(() => rangeRequest('get', 'k', undefined, { consistency: 'x' })).toThrow(/--consistency/);
    expect(() => rangeRequest('get', 'k', undefined, { rev: '-1' })).toThrow(/--rev/);
    expect(() => rangeRequest('get', 'k', undefined, { order: 'UP' })).toThrow(/--order/);
  });

  it('parses endpoints, lease ids and member ids', () => {
    expect(parseEndpoints('127.0.0.1:2379,http://h:1')).toEqual(['http://127.0.0.1:2379', 'http://h:1']);
    expect(() => parseEndpoints('ftp://x:1')).toThrow(/http/);
    expect(() => parseEndpoints('http://x')).toThrow(/no port/);
    expect(parseLeaseId('--lease', '000da1fd82f3431f')).toBe(0xda1fd82f3431f);
    expect(() => parseLeaseId('--lease', 'ffffffffffffffff')).toThrow(/2\^53/);
    expect(() => parseLeaseId('--lease', 'xyz')).toThrow(/hex/);
    expect(parseMemberId('id', 'BDAE9bbc11dd390d')).toBe('bdae9bbc11dd390d');
    expect(parseMemberId('id', 'abc')).toBe('0000000000000abc');
  });
});
