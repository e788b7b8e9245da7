// A chaos schedule runner for the core's property tests: a list of actions (ticks, message
// delivery with loss/reordering/duplication, proposals, reads, restarts, isolation) applied to a
// Cluster, followed by the safety checks of Figure 3 and a liveness check after healing.

import fc from 'fast-check';
import { expect } from 'vitest';
import { Cluster, dec, enc, type ConfigOverrides } from './core-helpers.js';

/**
 * One step of a schedule. A `round` ticks some nodes, then treats each message in flight by the
 * draw of a small generator seeded with `seed`: deliver it (in a shuffled order), lose it
 * (probability lossPct), hold it back for a later round (reordering), or deliver it twice.
 */
export type Action =
  | { kind: 'round'; tickMask: number; lossPct: number; seed: number }
  | { kind: 'propose'; node: number }
  | { kind: 'read'; node: number }
  | { kind: 'restart'; node: number }
  | { kind: 'isolate'; node: number }
  | { kind: 'heal' };

export const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({ kind: fc.constant('round' as const), tickMask: fc.nat(31), lossPct: fc.nat(30), seed: fc.nat() }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('propose' as const), node: fc.nat(4) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('read' as const), node: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), node: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('isolate' as const), node: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('heal' as const) }) },
);

/** A throwaway LCG for the per-message draws of one round (reproducible from the action's seed). */
function draws(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 0x1_0000_0000;
  };
}

function round(c: Cluster, a: Extract<Action, { kind: 'round' }>): void {
  c.ids.forEach((id, i) => {
    if (a.tickMask & (1 << i)) c.node(id).tick();
  });
  c.handleReadies();
  const random = draws(a.seed);
  const now = c.inFlight;
  c.inFlight = [];
  const later = [];
  const deliver = [];
  for (const m of now) {
    const r = random();
    if (r < a.lossPct / 100) continue; // lost
    if (r < a.lossPct / 100 + 0.15) later.push(m); // delayed: reordered after later messages
    else if (r > 0.97) deliver.push(m, m); // duplicated
    else deliver.push(m);
  }
  // Shuffle what is delivered this round.
  for (let i = deliver.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [deliver[i], deliver[j]] = [deliver[j]!, deliver[i]!];
  }
  c.inFlight = later;
  for (const m of deliver) {
    c.stepMessage(m);
    c.handleReadies();
  }
}

export interface RunStats {
  readonly terms: number;
  readonly appliedIndexes: number;
  readonly readsServed: number;
}

export function run(size: number, overrides: ConfigOverrides, actions: readonly Action[]): RunStats {
  const c = new Cluster(size, { electionTicks: 4, heartbeatTicks: 1, maxInflightMsgs: 3, maxMsgBytes: 8, ...overrides });
  try {
    return runOn(c, actions);
  } catch (e) {
    // Make a failure readable: where every node stands, and the last messages delivered.
    if (e instanceof Error && !e.message.includes('messages delivered')) e.message += `\n${c.describeState()}`;
    throw e;
  }
}

function runOn(c: Cluster, actions: readonly Action[]): RunStats {
  const size = c.ids.length;
  let proposals = 0;
  let reads = 0;
  const readFloor = new Map<number, number>();
  let readsServed = 0;
  const checkReads = () => {
    for (const id of c.ids) {
      for (const rs of c.readStates.get(id)!.splice(0)) {
        const floor = readFloor.get(rs.requestId);
        if (floor === undefined) throw new Error(`read ${rs.requestId} answered twice or never asked`);
        readFloor.delete(rs.requestId);
        readsServed++;
        if (rs.index < floor) throw new Error(`read ${rs.requestId} at ${id} got index ${rs.index} but ${floor} was committed before it began`);
      }
    }
  };
  for (const a of actions) {
    const id = 'node' in a ? c.ids[a.node % size]! : '';
    switch (a.kind) {
      case 'round':
        round(c, a);
        break;
      case 'propose':
        if (c.node(id).status().role === 'leader') {
          try {
            c.node(id).propose([enc(`c${proposals++}`), enc(`c${proposals++}`)]);
          } catch (e) {
            if (!(e instanceof Error && 'code' in e && e.code === 'UNCOMMITTED_LIMIT')) throw e;
          }
        }
        break;
      case 'read':
        // Linearizability of reads (thesis §6.4): the read index must cover every entry that
        // was committed anywhere (and so possibly acknowledged) before the read began.
        readFloor.set(reads, Math.max(...c.ids.map((n) => c.node(n).status().commit)));
        c.node(id).readIndex([reads++]);
        break;
      case 'restart':
        c.restart(id, { dropItsMessages: false });
        break;
      case 'isolate':
        c.isolate(id);
        break;
      case 'heal':
        c.heal();
        break;
    }
    c.handleReadies();
    checkReads();
  }
  // Log Matching (§5.3): if two logs hold an entry with the same index and term, they are
  // identical up to it. Checked on the durable logs.
  const logs = c.ids.map((id) => c.disks.get(id)!.entries);
  for (let i = 0; i < logs.length; i++) {
    for (let j = i + 1; j < logs.length; j++) {
      const a = logs[i]!;
      const b = logs[j]!;
      let k = Math.min(a.length, b.length) - 1;
      while (k >= 0 && a[k]!.term !== b[k]!.term) k--;
      for (; k >= 0; k--) {
        expect(a[k]!.term).toBe(b[k]!.term);
        expect(dec(a[k]!.data)).toBe(dec(b[k]!.data));
      }
    }
  }
  // Committed prefixes agree (State Machine Safety, on what is committed rather than applied).
  const committed = c.ids.map((id) => logs[c.ids.indexOf(id)]!.slice(0, c.node(id).status().commit));
  for (const a of committed) {
    for (const b of committed) {
      const n = Math.min(a.length, b.length);
      for (let k = 0; k < n; k++) expect([a[k]!.term, dec(a[k]!.data)]).toEqual([b[k]!.term, dec(b[k]!.data)]);
    }
  }
  const stats = { terms: c.leaderOfTerm.size, appliedIndexes: c.appliedAt.size, readsServed };
  // Liveness once the network heals: a leader emerges and a new command reaches every node.
  // Like a client, retry if the command was dropped by a change of leader.
  c.heal();
  const maxTerm = () => Math.max(...c.ids.map((id) => c.node(id).status().term));
  for (let attempt = 0; ; attempt++) {
    c.tickUntil(() => c.leader() !== null && c.node(c.leader()!).status().term === maxTerm(), 200);
    c.node(c.leader()!).propose([enc(`final${attempt}`)]);
    const done = () => c.ids.every((id) => c.appliedData(id).includes(`final${attempt}`));
    for (let t = 0; t < 30 && !done(); t++) c.tick();
    if (done()) break;
    if (attempt === 2) throw new Error(`no command committed on every node after healing:\n${c.describeState()}`);
  }
  return stats;
}

