// The key-value model (put, get, delete, txn on one key): textbook cases, then properties.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bruteForceLinearizable } from '../src/checker/bruteforce.js';
import {
  generateHistory,
  injectLostWrite,
  injectStaleRead,
  KV_INJECT_FUNCTIONS,
  type GenerateOptions,
} from '../src/checker/generate.js';
import { HistoryError, pairOperations, parseHistory, type Operation } from '../src/checker/history.js';
import { kvModel, multiKeyModel } from '../src/checker/models.js';
import { checkHistory } from '../src/checker/wgl.js';
import { assertProperty, opsOf, SEED, tape } from './checker-helpers.js';

type Ev = readonly [process: number, type: string, f: string, value: unknown, key?: string];
const ops = (...evs: Ev[]): Operation[] =>
  pairOperations(parseHistory(evs.map(([process, type, f, value, key]) => JSON.stringify({ process, type, f, key: key ?? 'x', value, time: 0 })).join('\n')));
const check = (o: readonly Operation[]) => checkHistory(o, { model: kvModel });

const casTxn = (expected: unknown, next: unknown) => ({ compare: { value: expected }, then: [{ f: 'put', value: next }], else: [{ f: 'get' }] });

describe('kv model: textbook histories', () => {
  it('put then get must see the value; a concurrent get may see either', () => {
    expect(check(ops([0, 'invoke', 'put', 1], [0, 'ok', 'put', null], [1, 'invoke', 'get', null], [1, 'ok', 'get', 1])).valid).toBe(true);
    expect(check(ops([0, 'invoke', 'put', 1], [0, 'ok', 'put', null], [1, 'invoke', 'get', null], [1, 'ok', 'get', null])).valid).toBe(false);
    expect(check(ops([0, 'invoke', 'put', 1], [1, 'invoke', 'get', null], [1, 'ok', 'get', null], [0, 'ok', 'put', null])).valid).toBe(true);
  });

  it('delete removes the key, and a recorded deleted count is checked', () => {
    const base: Ev[] = [[0, 'invoke', 'put', 1], [0, 'ok', 'put', null], [0, 'invoke', 'delete', null]];
    expect(check(ops(...base, [0, 'ok', 'delete', 1], [1, 'invoke', 'get', null], [1, 'ok', 'get', null])).valid).toBe(true);
    expect(check(ops(...base, [0, 'ok', 'delete', 1], [1, 'invoke', 'get', null], [1, 'ok', 'get', 1])).valid).toBe(false);
    expect(check(ops(...base, [0, 'ok', 'delete', 0])).valid).toBe(false); // the key was there
    expect(check(ops([0, 'invoke', 'delete', null], [0, 'ok', 'delete', 0])).valid).toBe(true);
  });

  it('txn on value: two concurrent compare-and-puts from the same value cannot both succeed', () => {
    const start: Ev[] = [[0, 'invoke', 'put', 0], [0, 'ok', 'put', null], [1, 'invoke', 'txn', casTxn(0, 1)], [2, 'invoke', 'txn', casTxn(0, 2)]];
    const both = ops(...start, [1, 'ok', 'txn', { succeeded: true, results: [null] }], [2, 'ok', 'txn', { succeeded: true, results: [null] }]);
    const oneElse = ops(...start, [1, 'ok', 'txn', { succeeded: true, results: [null] }], [2, 'ok', 'txn', { succeeded: false, results: [1] }]);
    const elseSawWrong = ops(...start, [1, 'ok', 'txn', { succeeded: true, results: [null] }], [2, 'ok', 'txn', { succeeded: false, results: [7] }]);
    expect(check(both).valid).toBe(false);
    expect(check(oneElse).valid).toBe(true);
    expect(check(elseSawWrong).valid).toBe(false);
  });

  it('txn on version: version counts puts and resets on delete', () => {
    const onVersion = (version: number) => ({ compare: { version }, then: [{ f: 'get' }], else: [] });
    const h = (version: number, succeeded: boolean): Operation[] =>
      ops(
        [0, 'invoke', 'put', 'a'], [0, 'ok', 'put', null],
        [0, 'invoke', 'put', 'b'], [0, 'ok', 'put', null],
        [0, 'invoke', 'txn', onVersion(version)], [0, 'ok', 'txn', { succeeded, results: succeeded ? ['b'] : [] }],
      );
    expect(check(h(2, true)).valid).toBe(true);
    expect(check(h(1, true)).valid).toBe(false);
    expect(check(h(1, false)).valid).toBe(true);
    const afterDelete = ops([0, 'invoke', 'put', 'a'], [0, 'ok', 'put', null], [0, 'invoke', 'delete', null], [0, 'ok', 'delete', 1],
      [0, 'invoke', 'txn', onVersion(0)], [0, 'ok', 'txn', { succeeded: true, results: [null] }]);
    expect(check(afterDelete).valid).toBe(true);
  });

  it('an indeterminate txn may take effect late, or never', () => {
    const h = (seen: unknown): Operation[] =>
      ops([0, 'invoke', 'txn', casTxn(null, 5)], [0, 'info', 'txn', null], [1, 'invoke', 'get', null], [1, 'ok', 'get', null], [2, 'invoke', 'get', null], [2, 'ok', 'get', seen]);
    expect(check(h(5)).valid).toBe(true);
    expect(check(h(null)).valid).toBe(true);
    expect(check(h(6)).valid).toBe(false);
  });

  it('bad txn shapes are bad input naming the line', () => {
    const text = [JSON.stringify({ process: 0, type: 'invoke', f: 'txn', key: 'x', value: { compare: { mod: 3 }, then: [] }, time: 0 })].join('\n');
    expect(() => parseHistory(text)).toThrow(HistoryError);
    expect(() => parseHistory(text)).toThrow(/line 1: a txn's "compare"/);
    const badStep = JSON.stringify({ process: 0, type: 'invoke', f: 'txn', key: 'x', value: { compare: { value: 1 }, then: [{ f: 'range' }] }, time: 0 });
    expect(() => parseHistory(`\n${badStep}`)).toThrow(/line 2: a txn step/);
  });
});

// ---- properties -------------------------------------------------------------------------------

const BIG: GenerateOptions = { processes: 6, keys: 3, values: 4, model: 'kv' };

describe('kv model: properties', () => {
  it('histories of a sequential store under random concurrency are linearizable', () => {
    assertProperty(fc.property(tape(300), (t) => check(opsOf(generateHistory(t, BIG))).valid === true), 200);
  });

  it('generated histories use every kv function, both txn branches, and fail/info completions', () => {
    const events = fc.sample(tape(300), { seed: SEED, numRuns: 20 }).flatMap((t) => generateHistory(t, BIG));
    expect(new Set(events.map((e) => e.f))).toEqual(new Set(['put', 'get', 'delete', 'txn']));
    expect(new Set(events.map((e) => e.type))).toEqual(new Set(['invoke', 'ok', 'fail', 'info']));
    const branches = new Set(events.filter((e) => e.f === 'txn' && e.type === 'ok').map((e) => (e.value as { succeeded: boolean }).succeeded));
    expect(branches).toEqual(new Set([true, false]));
  });

  it('injecting a stale get makes a valid history invalid', () => {
    assertProperty(
      fc.property(tape(200), fc.tuple(fc.nat(), fc.nat(), fc.nat()), fc.nat({ max: 2 }), (t, picks, k) => {
        const r = check(opsOf(injectStaleRead(generateHistory(t, BIG), `k${k}`, picks, KV_INJECT_FUNCTIONS)));
        return r.valid === false && r.key === `k${k}`;
      }),
      150,
    );
  });

  it('injecting a lost put makes a valid history invalid', () => {
    assertProperty(
      fc.property(tape(200), fc.tuple(fc.nat(), fc.nat()), (t, picks) => {
        const r = check(opsOf(injectLostWrite(generateHistory(t, BIG), picks, KV_INJECT_FUNCTIONS)));
        return r.valid === false && r.key === 'lost';
      }),
      150,
    );
  });

  it('on small histories (<= 8 ops) the checker agrees with brute force, valid or not', () => {
    const SMALL: GenerateOptions = { processes: 3, keys: 2, values: 3, model: 'kv' };
    const whole = multiKeyModel(kvModel);
    let invalid = 0;
    assertProperty(
      fc.property(tape(40), fc.array(fc.nat({ max: 3 }), { maxLength: 8 }), (t, corrupt) => {
        // Corrupt some get results and txn branches so that many histories are invalid.
        let n = 0;
        const mutated = generateHistory(t, SMALL).map((e) => {
          if (e.type !== 'ok') return e;
          if (e.f === 'get') return { ...e, value: corrupt[n++] ?? e.value };
          if (e.f === 'txn' && (corrupt[n++] ?? 0) === 3) return { ...e, value: { succeeded: !(e.value as { succeeded: boolean }).succeeded, results: null } };
          return e;
        });
        const o = opsOf(mutated);
        fc.pre(o.length <= 8);
        const expected = bruteForceLinearizable(o, whole);
        if (!expected) invalid++;
        return check(o).valid === expected;
      }),
      400,
    );
    expect(invalid).toBeGreaterThan(20);
  });
});
