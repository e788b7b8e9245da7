// Persistence: LevelDB holds the state of exactly the persisted applied index (data and index are
// written in one batch), whatever moment a crash picks. After a crash, reopening and replaying the
// log gives the same state as a store that never crashed.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry } from '@ballot/raft';
import { KvStateMachine } from '../src/state/machine.js';
import type { Command, RangeResult } from '../src/types.js';
import { LogFeeder, td, te, tempDir } from './state-helpers.js';

const SEED = Number(process.env['KV_PROP_SEED'] ?? 777);
const ALL = { key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0) };

function show(r: RangeResult): string[] {
  return r.kvs.map((kv) => `${td(kv.key)}=${td(kv.value)}@${kv.createRevision}/${kv.modRevision}/v${kv.version}/l${kv.lease}`);
}

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ k: fc.constantFrom('a', 'b', 'c', 'd'), v: fc.string({ maxLength: 4 }) }).map(({ k, v }): Command => ({ op: 'put', req: { key: te(k), value: te(v) } })),
  fc.constantFrom<Command>(
    { op: 'deleteRange', req: { key: te('a'), rangeEnd: te('c') } },
    { op: 'leaseGrant', id: 0, ttlSec: 5 },
    { op: 'registerSession' },
    { op: 'txn', req: { compare: [], success: [{ put: { key: te('t'), value: te('1') } }, { deleteRange: { key: te('d') } }], failure: [] } },
  ),
);

/** The state a store reached, as text: every live key at every revision, leases, sessions. */
async function fingerprint(sm: KvStateMachine): Promise<unknown> {
  const revisions: string[][] = [];
  for (let r = Math.max(1, sm.compactedRevision); r <= sm.revision; r++) revisions.push(show(await sm.range({ ...ALL, revision: r })));
  return { applied: sm.appliedIndex, revision: sm.revision, revisions, leases: [...sm.leases().keys()], sessions: sm.sessionCount };
}

async function replayed(log: readonly Entry[], upTo: number): Promise<unknown> {
  const t = tempDir('kv-persist-ref-');
  const sm = await KvStateMachine.open({ dir: t.dir });
  try {
    for (const e of log) if (e.index <= upTo) sm.apply(e);
    return await fingerprint(sm);
  } finally {
    await sm.close();
    t.cleanup();
  }
}

describe('persistence', () => {
  it('a crash at any moment leaves exactly the state of the persisted applied index; replay completes it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(command, fc.nat(4)), { minLength: 1, maxLength: 40 }),
        fc.nat(3),
        async (steps, crashDelay) => {
          const t = tempDir('kv-persist-');
          const sm = await KvStateMachine.open({ dir: t.dir });
          const f = new LogFeeder(sm);
          try {
            for (const [cmd, pause] of steps) {
              f.apply(cmd);
              // Sometimes let the write-behind batches go to disk between entries.
              if (pause === 0) await new Promise((r) => setImmediate(r));
            }
            for (let i = 0; i < crashDelay; i++) await new Promise((r) => setImmediate(r));
          } finally {
            await sm.abandon(); // crash: pending batches are lost
          }
          const reopened = await KvStateMachine.open({ dir: t.dir });
          try {
            const persisted = reopened.appliedIndex;
            expect(persisted).toBeLessThanOrEqual(f.log.length);
            // Exactly the state of the first `persisted` entries: no more, no less.
            expect(await fingerprint(reopened)).toEqual(await replayed(f.log, persisted));
            // Replaying the whole log (the driver does so from its durable log) completes it.
            for (const e of f.log) reopened.apply(e);
            expect(await fingerprint(reopened)).toEqual(await replayed(f.log, f.log.length));
          } finally {
            await reopened.close();
            t.cleanup();
          }
        },
      ),
      { seed: SEED, numRuns: 25 },
    );
  }, 60_000);

  it('close() writes everything: a reopened store has applied the whole log', async () => {
    const t = tempDir('kv-persist-');
    const sm = await KvStateMachine.open({ dir: t.dir });
    const f = new LogFeeder(sm);
    for (let i = 0; i < 500; i++) f.apply({ op: 'put', req: { key: te(`k${i % 37}`), value: te(`v${i}`) } });
    f.noop();
    const before = await fingerprint(sm);
    await sm.close();
    const again = await KvStateMachine.open({ dir: t.dir });
    try {
      expect(again.appliedIndex).toBe(501);
      expect(await fingerprint(again)).toEqual(before);
    } finally {
      await again.close();
      t.cleanup();
    }
  });
});

describe('a failed LevelDB write', () => {
  it('stops the store at the next apply (fatal to the driver) instead of applying on into memory', async () => {
    const t = tempDir();
    const sm = await KvStateMachine.open({ dir: t.dir });
    try {
      const feed = new LogFeeder(sm);
      feed.apply({ op: 'put', req: { key: te('a'), value: te('1') } });
      // Pull the database out from under the store: its next batch write fails.
      await (sm as unknown as { readonly db: { close(): Promise<void> } }).db.close();
      feed.apply({ op: 'put', req: { key: te('b'), value: te('2') } });
      await expect(sm.range({ key: te('a'), revision: 1 })).rejects.toThrow();
      expect(() => feed.apply({ op: 'put', req: { key: te('c'), value: te('3') } })).toThrow(/LevelDB write failed/);
    } finally {
      await sm.close().catch(() => undefined);
      t.cleanup();
    }
  });
});
