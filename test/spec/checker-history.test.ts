import { describe, expect, it } from 'vitest';
import { HistoryError, pairOperations, parseHistory } from '../src/checker/history.js';

const lines = (...ls: object[]): string => ls.map((l) => JSON.stringify(l)).join('\n');
const ev = (process: number, type: string, f: string, value: unknown, key = 'x'): object => ({ process, type, f, key, value, time: 0 });

function errorOf(text: string): HistoryError {
  try {
    pairOperations(parseHistory(text));
  } catch (err) {
    if (err instanceof HistoryError) return err;
    throw err;
  }
  throw new Error('expected a HistoryError');
}

describe('history parsing', () => {
  it('pairs invokes with completions per process; fail is dropped, info and open ops are indeterminate', () => {
    const ops = pairOperations(
      parseHistory(
        lines(
          ev(0, 'invoke', 'write', 1),
          ev(1, 'invoke', 'read', null),
          ev(2, 'invoke', 'cas', [1, 2]),
          ev(3, 'invoke', 'write', 9),
          ev(0, 'ok', 'write', 1),
          ev(1, 'ok', 'read', 1),
          ev(2, 'fail', 'cas', [1, 2]),
          ev(3, 'info', 'write', 9),
          ev(4, 'invoke', 'cas', [1, 3]),
        ),
      ),
    );
    expect(ops.map((o) => [o.process, o.f, o.status])).toEqual([
      [0, 'write', 'ok'],
      [1, 'read', 'ok'],
      [3, 'write', 'info'],
      [4, 'cas', 'info'],
    ]);
    expect(ops[1]).toMatchObject({ f: 'read', output: 1, invokeIndex: 1, completeIndex: 5 });
    expect(ops[2]?.completeIndex).toBe(Infinity);
    expect(ops[3]).toMatchObject({ f: 'cas', expected: 1, next: 3, completeLine: null });
  });

  it('names the line of malformed JSON, counting blank lines', () => {
    const e = errorOf(`${lines(ev(0, 'invoke', 'write', 1))}\n\n{"process":0,`);
    expect([e.code, e.line]).toEqual(['malformed-json', 3]);
    expect(e.message).toMatch(/^line 3:/);
  });

  it('rejects an ok without an invoke', () => {
    const e = errorOf(lines(ev(0, 'invoke', 'write', 1), ev(0, 'ok', 'write', 1), ev(0, 'ok', 'write', 1)));
    expect([e.code, e.line]).toEqual(['no-open-invoke', 3]);
  });

  it('rejects a second invoke while one is open on the same process', () => {
    const e = errorOf(lines(ev(0, 'invoke', 'write', 1), ev(1, 'invoke', 'read', null), ev(0, 'invoke', 'read', null)));
    expect([e.code, e.line]).toEqual(['already-open', 3]);
    expect(e.message).toContain('line 1');
  });

  it('rejects a completion for another key or function, bad fields, and a cas without [expected, new]', () => {
    expect(errorOf(lines(ev(0, 'invoke', 'write', 1), ev(0, 'ok', 'write', 1, 'y'))).code).toBe('mismatched-completion');
    expect(errorOf(lines({ process: -1, type: 'invoke', f: 'read', key: 'x', time: 0 })).code).toBe('bad-field');
    expect(errorOf(lines({ process: 0, type: 'begin', f: 'read', key: 'x', time: 0 })).code).toBe('bad-field');
    expect(errorOf(lines({ process: 0, type: 'invoke', f: 'read', key: 'x' })).code).toBe('bad-field');
    expect(errorOf(lines(ev(0, 'invoke', 'cas', 5))).code).toBe('bad-field');
    expect(errorOf('[1,2]').code).toBe('bad-field');
  });
});
