// Exactly-once writes (Ongaro's thesis §6.3): a write retried under the same (clientId, seq) is
// applied once and answered with the first outcome; sessions expire on the log's clock, the same on
// every replica; sessions and remembered outcomes are bounded.

import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { KvStateMachine, type KvStateMachineOptions } from '../src/state/machine.js';
import type { CommandOutcome } from '../src/types.js';
import { LogFeeder, te, tempDir } from './state-helpers.js';

const SEED = Number(process.env['KV_PROP_SEED'] ?? 6300);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fresh(opts: Partial<KvStateMachineOptions> = {}): Promise<{ sm: KvStateMachine; dir: string }> {
  const t = tempDir('kv-session-');
  cleanups.push(() => t.cleanup());
  const sm = await KvStateMachine.open({ dir: t.dir, ...opts });
  cleanups.push(() => sm.close());
  return { sm, dir: t.dir };
}

function clientIdOf(o: CommandOutcome): number {
  if (!o.ok) throw new Error(`registerSession failed: ${o.message}`);
  return (o.result as { clientId: number }).clientId;
}

describe('sessions', () => {
  it('a retried seq is applied once and gets the first outcome; acknowledged seqs are forgotten', async () => {
    const { sm } = await fresh();
    const f = new LogFeeder(sm);
    const clientId = clientIdOf(f.apply({ op: 'registerSession' }));
    expect(clientId).toBe(1); // the registering entry's index
    let events = 0;
    sm.on('events', () => events++);
    const put = { op: 'put' as const, req: { key: te('counter'), value: te('1'), prevKv: true } };
    const first = f.apply(put, { clientId, seq: 1, ackedSeq: 0 });
    expect(first).toMatchObject({ ok: true, revision: 2 });
    f.apply({ op: 'put', req: { key: te('other'), value: te('x') } });
    const retry = f.apply(put, { clientId, seq: 1, ackedSeq: 0 });
    expect(retry).toEqual(first); // same revision, same (absent) prevKv: as the first time
    expect(sm.revision).toBe(3);
    expect(events).toBe(2);
    const second = f.apply({ op: 'put', req: { key: te('counter'), value: te('2') } }, { clientId, seq: 2, ackedSeq: 1 });
    expect(second).toMatchObject({ ok: true, revision: 4 });
    // seq 1 was acknowledged: a retry of it is refused rather than applied again.
    expect(f.apply(put, { clientId, seq: 1, ackedSeq: 1 })).toMatchObject({ ok: false, code: 'SESSION_EXPIRED' });
    expect(sm.revision).toBe(4);
    // A failed command's outcome is remembered too (the retry must not succeed later by surprise).
    const bad = f.apply({ op: 'put', req: { key: te('k'), value: te('v'), lease: 4242 } }, { clientId, seq: 3, ackedSeq: 2 });
    expect(bad).toMatchObject({ ok: false, code: 'LEASE_NOT_FOUND' });
    f.apply({ op: 'leaseGrant', id: 4242, ttlSec: 10 });
    expect(f.apply({ op: 'put', req: { key: te('k'), value: te('v'), lease: 4242 } }, { clientId, seq: 3, ackedSeq: 2 })).toEqual(bad);
    // Unknown sessions are refused.
    expect(f.apply(put, { clientId: 999, seq: 1, ackedSeq: 0 })).toMatchObject({ ok: false, code: 'SESSION_EXPIRED' });
  });

  it('sessions expire on the log clock (max envelope time), identically on two replicas', async () => {
    const { sm: a } = await fresh({ sessionTtlMs: 10_000 });
    const { sm: b } = await fresh({ sessionTtlMs: 10_000 });
    const f = new LogFeeder(a);
    const idA = clientIdOf(f.apply({ op: 'registerSession' }, undefined, 1_000));
    const idB = clientIdOf(f.apply({ op: 'registerSession' }, undefined, 2_000));
    // Client B keeps writing; A is idle. A clock going backwards (an old leader's stamp) changes nothing.
    expect(f.apply({ op: 'put', req: { key: te('b'), value: te('1') } }, { clientId: idB, seq: 1, ackedSeq: 0 }, 9_000)).toMatchObject({ ok: true });
    expect(f.apply({ op: 'put', req: { key: te('z'), value: te('1') } }, undefined, 500)).toMatchObject({ ok: true });
    expect(f.apply({ op: 'put', req: { key: te('a'), value: te('1') } }, { clientId: idA, seq: 1, ackedSeq: 0 }, 10_999)).toMatchObject({ ok: true });
    expect(f.apply({ op: 'put', req: { key: te('b'), value: te('2') } }, { clientId: idB, seq: 2, ackedSeq: 1 }, 18_000)).toMatchObject({ ok: true });
    // 10 s after A's last use (10 999): A is gone, B (used at 18 000) is not.
    expect(f.apply({ op: 'put', req: { key: te('a'), value: te('2') } }, { clientId: idA, seq: 2, ackedSeq: 1 }, 21_000)).toMatchObject({
      ok: false,
      code: 'SESSION_EXPIRED',
    });
    expect(f.apply({ op: 'put', req: { key: te('b'), value: te('3') } }, { clientId: idB, seq: 3, ackedSeq: 2 }, 21_000)).toMatchObject({ ok: true });
    // Replica b applies the same log: same outcomes, same state.
    const outcomesB: CommandOutcome[] = [];
    b.on('outcome', (_id, o) => outcomesB.push(o));
    for (const e of f.log) b.apply(e);
    expect(b.revision).toBe(a.revision);
    expect(b.sessionCount).toBe(a.sessionCount);
    expect(outcomesB.map((o) => o.ok)).toEqual([true, true, true, true, true, true, false, true]);
  });

  it('bounds: the least recently used session expires at maxSessions; the oldest outcome is forgotten at maxOutcomesPerSession', async () => {
    const { sm } = await fresh({ maxSessions: 3, maxOutcomesPerSession: 4 });
    const f = new LogFeeder(sm);
    const ids = [1, 2, 3].map(() => clientIdOf(f.apply({ op: 'registerSession' })));
    // Use the first one, so the second becomes the least recently used.
    expect(f.apply({ op: 'put', req: { key: te('x'), value: te('1') } }, { clientId: ids[0]!, seq: 1, ackedSeq: 0 })).toMatchObject({ ok: true });
    const fourth = clientIdOf(f.apply({ op: 'registerSession' }));
    expect(sm.sessionCount).toBe(3);
    expect(f.apply({ op: 'put', req: { key: te('y'), value: te('1') } }, { clientId: ids[1]!, seq: 1, ackedSeq: 0 })).toMatchObject({ ok: false, code: 'SESSION_EXPIRED' });
    expect(f.apply({ op: 'put', req: { key: te('y'), value: te('1') } }, { clientId: ids[2]!, seq: 1, ackedSeq: 0 })).toMatchObject({ ok: true });
    // Outcomes per session: 6 unacknowledged seqs, only the newest 4 are remembered.
    const outs: CommandOutcome[] = [];
    for (let seq = 1; seq <= 6; seq++) outs.push(f.apply({ op: 'put', req: { key: te(`s${seq}`), value: te('v') } }, { clientId: fourth, seq, ackedSeq: 0 }));
    expect(f.apply({ op: 'put', req: { key: te('s1'), value: te('v') } }, { clientId: fourth, seq: 1, ackedSeq: 0 })).toMatchObject({ ok: false, code: 'SESSION_EXPIRED' });
    expect(f.apply({ op: 'put', req: { key: te('s6'), value: te('v') } }, { clientId: fourth, seq: 6, ackedSeq: 0 })).toEqual(outs[5]);
  });

  it('the least-recently-used order survives a restart (ties in time are broken by log order)', async () => {
    const t = tempDir('kv-session-');
    cleanups.push(() => t.cleanup());
    const sm = await KvStateMachine.open({ dir: t.dir, maxSessions: 3 });
    const f = new LogFeeder(sm); // every entry carries the same timestamp
    const ids = [1, 2, 3].map(() => clientIdOf(f.apply({ op: 'registerSession' })));
    f.apply({ op: 'put', req: { key: te('x'), value: te('1') } }, { clientId: ids[0]!, seq: 1, ackedSeq: 0 });
    await sm.close();
    const sm2 = await KvStateMachine.open({ dir: t.dir, maxSessions: 3 });
    cleanups.push(() => sm2.close());
    const f2 = new LogFeeder(sm2, f.index, f.log);
    f2.apply({ op: 'registerSession' });
    // The second session was the least recently used, not the first (which has the smallest id).
    expect(f2.apply({ op: 'put', req: { key: te('y'), value: te('1') } }, { clientId: ids[1]!, seq: 1, ackedSeq: 0 })).toMatchObject({ code: 'SESSION_EXPIRED' });
    expect(f2.apply({ op: 'put', req: { key: te('y'), value: te('1') } }, { clientId: ids[0]!, seq: 2, ackedSeq: 1 })).toMatchObject({ ok: true });
  });

  it('sessions survive a restart, and a crash replay dedups the same way', async () => {
    const t = tempDir('kv-session-');
    cleanups.push(() => t.cleanup());
    const sm = await KvStateMachine.open({ dir: t.dir });
    const f = new LogFeeder(sm);
    const id = clientIdOf(f.apply({ op: 'registerSession' }));
    const first = f.apply({ op: 'put', req: { key: te('k'), value: te('1') } }, { clientId: id, seq: 1, ackedSeq: 0 });
    await sm.close();
    const sm2 = await KvStateMachine.open({ dir: t.dir });
    cleanups.push(() => sm2.close());
    const f2 = new LogFeeder(sm2, f.index, f.log);
    expect(f2.apply({ op: 'put', req: { key: te('k'), value: te('1') } }, { clientId: id, seq: 1, ackedSeq: 0 })).toEqual(first);
    expect(sm2.revision).toBe(2);
    // Crash: nothing flushed after this retry; the replayed log gives the same state and outcomes.
    f2.apply({ op: 'put', req: { key: te('k'), value: te('2') } }, { clientId: id, seq: 2, ackedSeq: 1 });
    await sm2.abandon();
    const sm3 = await KvStateMachine.open({ dir: t.dir });
    cleanups.push(() => sm3.close());
    for (const e of f.log) sm3.apply(e);
    expect(sm3.revision).toBe(3);
    expect(sm3.appliedIndex).toBe(f.log.length);
    const f3 = new LogFeeder(sm3, f.log.length, f.log);
    // The retry of seq 2 after the crash is still a duplicate.
    expect(f3.apply({ op: 'put', req: { key: te('k'), value: te('2') } }, { clientId: id, seq: 2, ackedSeq: 1 })).toMatchObject({ ok: true, revision: 3 });
    expect(sm3.revision).toBe(3);
    // Acknowledging seq 2 forgets its outcome on disk too.
    const third = f3.apply({ op: 'put', req: { key: te('k'), value: te('3') } }, { clientId: id, seq: 3, ackedSeq: 2 });
    await sm3.close();
    const sm4 = await KvStateMachine.open({ dir: t.dir });
    cleanups.push(() => sm4.close());
    const f4 = new LogFeeder(sm4, f3.index, f3.log);
    expect(f4.apply({ op: 'put', req: { key: te('k'), value: te('2') } }, { clientId: id, seq: 2, ackedSeq: 2 })).toMatchObject({ ok: false, code: 'SESSION_EXPIRED' });
    expect(f4.apply({ op: 'put', req: { key: te('k'), value: te('3') } }, { clientId: id, seq: 3, ackedSeq: 2 })).toEqual(third);
    expect(sm4.revision).toBe(4);
  });

  it('property: random retries of random writes apply each seq exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(30), { minLength: 1, maxLength: 60 }), fc.array(fc.nat(1000), { maxLength: 40 }), async (writes, retryPicks) => {
        const t = tempDir('kv-session-prop-');
        const sm = await KvStateMachine.open({ dir: t.dir });
        try {
          const f = new LogFeeder(sm);
          const id = clientIdOf(f.apply({ op: 'registerSession' }));
          const firstOutcome = new Map<number, CommandOutcome>();
          // The proposals, in log order: seq i is proposed once, then maybe retried later (a
          // timeout or a leader change makes the client send the same seq again).
          const proposals: number[] = writes.map((_, i) => i + 1);
          for (const p of retryPicks) {
            const seq = (p % writes.length) + 1;
            const at = Math.min(proposals.length, proposals.indexOf(seq) + 1 + (p % 7));
            proposals.splice(at, 0, seq);
          }
          let events = 0;
          sm.on('events', () => events++);
          for (const seq of proposals) {
            const o = f.apply({ op: 'put', req: { key: te(`w/${writes[seq - 1]}`), value: te(`seq${seq}`) } }, { clientId: id, seq, ackedSeq: 0 });
            const first = firstOutcome.get(seq);
            if (first === undefined) firstOutcome.set(seq, o);
            else expect(o).toEqual(first);
          }
          expect(events).toBe(writes.length);
          expect(sm.revision).toBe(writes.length + 1);
        } finally {
          await sm.close();
          t.cleanup();
        }
      }),
      { seed: SEED, numRuns: 30 },
    );
  }, 60_000);
});
