// The linearizability checker: textbook cases a student can read, then properties.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bruteForceLinearizable } from '../src/checker/bruteforce.js';
import {
  generateHistory,
  injectLostWrite,
  injectStaleRead,
  type GenerateOptions,
} from '../src/checker/generate.js';
import { pairOperations, parseHistory, type Operation } from '../src/checker/history.js';
import { checkHistory } from '../src/checker/wgl.js';
import { assertProperty, opsOf, SEED, tape } from './checker-helpers.js';

/**
 * A history drawn as a table: one row per event, in real-time order.
 *   'p0 invoke write 1'   'p1 ok read 1'   'p2 invoke cas 1 2'   'p3 info write 5'   optional key: '@y'
 */
function history(...rows: string[]): Operation[] {
  const events = rows.map((row, i) => {
    const words = row.split(' ');
    const keyWord = words.find((w) => w.startsWith('@'));
    const [p, type, f, ...vals] = words.filter((w) => !w.startsWith('@'));
    const parse = (v: string | undefined): unknown => (v === undefined || v === 'nil' ? null : JSON.parse(v));
    const value = f === 'cas' ? [parse(vals[0]), parse(vals[1])] : parse(vals[0]);
    return JSON.stringify({ process: Number(p?.slice(1)), type, f, key: keyWord?.slice(1) ?? 'x', value, time: i });
  });
  return pairOperations(parseHistory(events.join('\n')));
}

describe('textbook histories', () => {
  it('a read concurrent with a write may see either value', () => {
    const before = history('p0 invoke write 1', 'p1 invoke read', 'p1 ok read nil', 'p0 ok write 1');
    const after = history('p0 invoke write 1', 'p1 invoke read', 'p1 ok read 1', 'p0 ok write 1');
    expect(checkHistory(before).valid).toBe(true);
    expect(checkHistory(after).valid).toBe(true);
  });

  it('a read that starts after a write finished must see it (or something newer)', () => {
    const h = history('p0 invoke write 1', 'p0 ok write 1', 'p1 invoke read', 'p1 ok read nil');
    const r = checkHistory(h);
    expect(r.valid).toBe(false);
    if (r.valid !== false) return;
    expect(r.key).toBe('x');
    expect(r.point.linearized.map((o) => o.f)).toEqual(['write']);
    expect(r.point.stuck.map((o) => o.f)).toEqual(['read']);
    expect(r.point.overdue.f).toBe('read');
    expect(r.point.stateAfter).toBe('1');
  });

  it('two readers cannot see a concurrent write in opposite orders (new then old)', () => {
    // p1 sees the new value and finishes; p2 starts later and sees the old one: no order explains it.
    const h = history(
      'p0 invoke write 1',
      'p1 invoke read',
      'p1 ok read 1',
      'p2 invoke read',
      'p2 ok read nil',
      'p0 ok write 1',
    );
    expect(checkHistory(h).valid).toBe(false);
  });

  it('compare-and-set: only one of two concurrent cas from the same value can succeed', () => {
    const bothOk = history('p0 invoke write 0', 'p0 ok write 0', 'p1 invoke cas 0 1', 'p2 invoke cas 0 2', 'p1 ok cas 0 1', 'p2 ok cas 0 2');
    const oneFails = history('p0 invoke write 0', 'p0 ok write 0', 'p1 invoke cas 0 1', 'p2 invoke cas 0 2', 'p1 ok cas 0 1', 'p2 fail cas 0 2');
    expect(checkHistory(bothOk).valid).toBe(false);
    expect(checkHistory(oneFails).valid).toBe(true);
  });

  it('an indeterminate write may take effect late - or never', () => {
    const late = history('p0 invoke write 1', 'p0 info write 1', 'p1 invoke read', 'p1 ok read nil', 'p2 invoke read', 'p2 ok read 1');
    const never = history('p0 invoke write 1', 'p0 info write 1', 'p1 invoke read', 'p1 ok read nil');
    const neverReturned = history('p0 invoke write 1', 'p1 invoke read', 'p1 ok read nil', 'p2 invoke read', 'p2 ok read 1');
    expect(checkHistory(late).valid).toBe(true);
    expect(checkHistory(never).valid).toBe(true);
    expect(checkHistory(neverReturned).valid).toBe(true);
    // ...but not before it was invoked.
    const early = history('p1 invoke read', 'p1 ok read 1', 'p0 invoke write 1', 'p0 info write 1');
    expect(checkHistory(early).valid).toBe(false);
  });

  it('a failed write did not happen', () => {
    const h = history('p0 invoke write 1', 'p0 fail write 1', 'p1 invoke read', 'p1 ok read 1');
    expect(checkHistory(h).valid).toBe(false);
  });

  it('keys are independent; the smallest failing key is reported with its sub-history', () => {
    const h = history(
      'p0 invoke write 1 @a',
      'p0 ok write 1 @a',
      'p0 invoke write 2 @b',
      'p0 ok write 2 @b',
      'p1 invoke read @b',
      'p1 ok read 2 @b',
      'p1 invoke read @a',
      'p1 ok read 7 @a',
      'p1 invoke write 3 @b',
      'p1 ok write 3 @b',
    );
    const r = checkHistory(h);
    expect(r).toMatchObject({ valid: false, key: 'a', ops: 5, keys: 2 });
    if (r.valid !== false) return;
    expect(r.subHistory.map((o) => o.key)).toEqual(['a', 'a']);
  });

  it('an exhausted time budget gives unknown, never valid', () => {
    const h = history('p0 invoke write 1', 'p0 ok write 1', 'p1 invoke read', 'p1 ok read 1');
    expect(checkHistory(h, { timeBudgetMs: 0 }).valid).toBe('unknown');
    expect(checkHistory(h).valid).toBe(true);
  });

  it('an empty history is valid', () => {
    expect(checkHistory([])).toEqual({ valid: true, ops: 0, keys: 0 });
  });
});

// ---- properties -------------------------------------------------------------------------------

const BIG: GenerateOptions = { processes: 6, keys: 3, values: 3 };

describe('properties', () => {
  it('histories of a sequential register under random concurrency are linearizable', () => {
    assertProperty(
      fc.property(tape(300), (t) => {
        const r = checkHistory(opsOf(generateHistory(t, BIG)));
        return r.valid === true;
      }),
      200,
    );
  });

  it('generated histories do contain concurrency, failures and indeterminate operations', () => {
    const tapes = fc.sample(tape(300), { seed: SEED, numRuns: 20 });
    const types = new Set(tapes.flatMap((t) => generateHistory(t, BIG).map((e) => e.type)));
    expect(types).toEqual(new Set(['invoke', 'ok', 'fail', 'info']));
  });

  it('injecting a stale read makes a valid history invalid', () => {
    assertProperty(
      fc.property(tape(200), fc.tuple(fc.nat(), fc.nat(), fc.nat()), fc.nat({ max: 2 }), (t, picks, k) => {
        const r = checkHistory(opsOf(injectStaleRead(generateHistory(t, BIG), `k${k}`, picks)));
        return r.valid === false && r.key === `k${k}`;
      }),
      150,
    );
  });

  it('injecting a lost write makes a valid history invalid', () => {
    assertProperty(
      fc.property(tape(200), fc.tuple(fc.nat(), fc.nat()), (t, picks) => {
        const r = checkHistory(opsOf(injectLostWrite(generateHistory(t, BIG), picks)));
        return r.valid === false && r.key === 'lost';
      }),
      150,
    );
  });

  it('on small histories (<= 8 ops) the checker agrees with brute force, valid or not', () => {
    // Corrupt some read results so that about half the histories are invalid.
    const SMALL: GenerateOptions = { processes: 3, keys: 2, values: 2 };
    let invalid = 0;
    assertProperty(
      fc.property(tape(40), fc.array(fc.nat({ max: 3 }), { maxLength: 8 }), (t, corrupt) => {
        const events = generateHistory(t, SMALL);
        let readNo = 0;
        const mutated = events.map((e) =>
          e.type === 'ok' && e.f === 'read' ? { ...e, value: corrupt[readNo++] ?? e.value } : e,
        );
        const ops = opsOf(mutated);
        fc.pre(ops.length <= 8);
        const expected = bruteForceLinearizable(ops);
        if (!expected) invalid++;
        return checkHistory(ops).valid === expected;
      }),
      400,
    );
    expect(invalid).toBeGreaterThan(20); // the comparison covered invalid histories too
  });
});
