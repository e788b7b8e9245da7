// Property: any sequence of saves (appends, overwrites of a suffix, hard states) and restarts
// loads back equal to a simple in-memory model of the log — for both storage implementations.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EMPTY_HARD_STATE, type Entry, type HardState } from '../src/core/types.js';
import { LevelLogStorage } from '../src/storage/leveldb.js';
import { MemoryLogStorage } from '../src/storage/memory.js';
import type { LogStorage, SaveBatch } from '../src/storage/types.js';

const SEED = 20261121;

/** One abstract step; fractions pick positions relative to the model's state when it runs. */
interface Step {
  readonly count: number; // entries to write (0 = hard state only)
  readonly fromFrac: number; // where the write starts in [commit + 1, last + 1]
  readonly termBumps: readonly number[]; // per entry: 0 keeps the term, 1..2 raises it
  readonly datas: readonly Uint8Array[];
  readonly noop: boolean; // the first entry is a leader's no-op
  readonly hardState: null | { readonly termBump: number; readonly vote: string | null; readonly commitFrac: number };
  readonly restartAfter: boolean;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  count: fc.nat({ max: 6 }),
  fromFrac: fc.double({ min: 0, max: 1, noNaN: true }),
  termBumps: fc.array(fc.nat({ max: 2 }), { minLength: 6, maxLength: 6 }),
  datas: fc.array(fc.uint8Array({ maxLength: 12 }), { minLength: 6, maxLength: 6 }),
  noop: fc.boolean(),
  hardState: fc.option(
    fc.record({
      termBump: fc.nat({ max: 2 }),
      vote: fc.constantFrom(null, 'n1', 'n2', 'n3'),
      commitFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  ),
  restartAfter: fc.boolean(),
});

/** The model: an array and a hard state, with §5.3's truncate-then-append and Raft's invariants. */
class Model {
  entries: Entry[] = [];
  hardState: HardState = EMPTY_HARD_STATE;

  /** Turns an abstract step into a valid SaveBatch and applies it to the model. */
  apply(step: Step): SaveBatch {
    const last = this.entries.length;
    const commit = this.hardState.commit;
    // Committed entries are never overwritten: write from somewhere in [commit + 1, last + 1].
    const from = commit + 1 + Math.floor(step.fromFrac * (last - commit + 0.999));
    let term = from > 1 ? this.entries[from - 2]!.term : 0;
    const entries: Entry[] = [];
    for (let i = 0; i < step.count; i++) {
      term = Math.max(1, term + step.termBumps[i]!);
      const noop = step.noop && i === 0;
      entries.push({
        index: from + i,
        term,
        type: noop ? 'noop' : 'normal',
        data: noop ? new Uint8Array(0) : step.datas[i]!,
      });
    }
    if (entries.length > 0) this.entries = this.entries.slice(0, from - 1).concat(entries);
    let hardState: HardState | null = null;
    if (step.hardState !== null) {
      const newLast = this.entries.length;
      const lastTerm = this.entries[newLast - 1]?.term ?? 0;
      hardState = {
        term: Math.max(this.hardState.term, lastTerm) + step.hardState.termBump,
        vote: step.hardState.vote,
        commit: commit + Math.floor(step.hardState.commitFrac * (newLast - commit + 0.999)),
      };
      this.hardState = hardState;
    }
    return { hardState, entries };
  }
}

interface Impl {
  readonly name: string;
  readonly numRuns: number;
  /** Opens a fresh store; returns it plus a restart function and a cleanup. */
  create(): Promise<{ store: LogStorage; restart: (s: LogStorage) => Promise<LogStorage>; cleanup: () => Promise<void> }>;
}

const impls: Impl[] = [
  {
    name: 'MemoryLogStorage',
    numRuns: 300,
    async create() {
      return {
        store: new MemoryLogStorage(),
        restart: async (s) => {
          await s.close();
          return (s as MemoryLogStorage).reopen();
        },
        cleanup: async () => {},
      };
    },
  },
  {
    name: 'LevelLogStorage',
    numRuns: 60,
    async create() {
      const dir = await mkdtemp(join(tmpdir(), 'ballot-storage-prop-'));
      let current: LogStorage | null = await LevelLogStorage.open(dir);
      return {
        store: current,
        restart: async (s) => {
          await s.close();
          current = await LevelLogStorage.open(dir);
          return current;
        },
        cleanup: async () => {
          if (current !== null) await current.close();
          current = null;
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

describe.each(impls)('$name refuses batches Raft cannot produce, writing nothing', (impl) => {
  it('a gap, a non-contiguous batch, a falling term', async () => {
    const { store, cleanup } = await impl.create();
    try {
      const e = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: new Uint8Array([index]) });
      await store.save({ hardState: { term: 2, vote: 'n1', commit: 1 }, entries: [e(1, 1), e(2, 2)] });
      for (const entries of [[e(4, 2)], [e(3, 2), e(5, 2)], [e(3, 1)], [e(3, 3), e(4, 2)], [e(0, 1)]]) {
        await expect(store.save({ hardState: { term: 9, vote: null, commit: 2 }, entries })).rejects.toMatchObject({
          code: 'BAD_REQUEST',
        });
      }
      expect(await store.load()).toEqual({ hardState: { term: 2, vote: 'n1', commit: 1 }, entries: [e(1, 1), e(2, 2)] });
    } finally {
      await cleanup();
    }
  });
});

describe.each(impls)('$name matches the model log', (impl) => {
  it('after any sequence of appends, suffix overwrites, hard states and restarts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 25 }), async (steps) => {
        const { store, restart, cleanup } = await impl.create();
        let s = store;
        const model = new Model();
        try {
          for (const step of steps) {
            await s.save(model.apply(step));
            if (step.restartAfter) {
              s = await restart(s);
              expect(await s.load()).toEqual({ hardState: model.hardState, entries: model.entries });
            }
          }
          expect(await s.load()).toEqual({ hardState: model.hardState, entries: model.entries });
          // And once more from a fresh handle.
          s = await restart(s);
          expect(await s.load()).toEqual({ hardState: model.hardState, entries: model.entries });
        } finally {
          await cleanup();
        }
      }),
      { seed: SEED, numRuns: impl.numRuns, verbose: 1 },
    );
  });
});
