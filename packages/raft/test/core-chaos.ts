// A chaos schedule runner for the core's property tests: a list of actions (ticks, message
// delivery with loss/reordering/duplication, proposals, reads, restarts, isolation; and for
// issue 3 compactions, snapshot installs, membership changes and leadership transfers) applied
// to a Cluster, followed by the safety checks of Figure 3 and a liveness check after healing.

import fc from 'fast-check';
import { expect } from 'vitest';
import { isRaftError } from '../src/core/errors.js';
import { quorumSize } from '../src/core/progress.js';
import type { ClusterConfig, ConfChangeType, NodeId } from '../src/core/types.js';
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
  | { kind: 'heal' }
  /** The node's driver snapshots everything applied and compacts, keeping `keep` entries. */
  | { kind: 'compact'; node: number; keep: number }
  /** The leader (if any) proposes a membership change of node `target`. */
  | { kind: 'conf'; op: number; target: number }
  /** The leader (if any) transfers leadership to node `target`. */
  | { kind: 'transfer'; target: number };

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

/**
 * The issue-3 schedule: everything above plus compactions (which force snapshot installs on
 * lagging followers), membership changes and leadership transfers. `nodes` bounds node numbers.
 */
export function issue3Action(nodes: number): fc.Arbitrary<Action> {
  const node = fc.nat(nodes - 1);
  return fc.oneof(
    {
      weight: 20,
      arbitrary: fc.record({ kind: fc.constant('round' as const), tickMask: fc.nat(2 ** nodes - 1), lossPct: fc.nat(30), seed: fc.nat() }),
    },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('propose' as const), node }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('isolate' as const), node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('heal' as const) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('compact' as const), node, keep: fc.nat(3) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('conf' as const), op: fc.nat(3), target: node }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('transfer' as const), target: node }) },
  );
}

/** What a run may do beyond the issue-2 schedule. */
export interface RunOptions {
  /** Extra nodes started as non-members (RaftConfig.joining), for membership changes to add. */
  readonly spares?: number;
  /** Whether `conf` actions propose membership changes (otherwise they are skipped). */
  readonly membership?: boolean;
}

const CONF_TYPES: readonly ConfChangeType[] = ['add-learner', 'promote', 'remove', 'add-voter'];
/** Refusals a leader may legitimately give in a random schedule. */
const EXPECTED_REFUSALS: readonly string[] = ['UNCOMMITTED_LIMIT', 'TRANSFER_IN_PROGRESS', 'CONF_CHANGE_IN_PROGRESS', 'BAD_REQUEST'];

function refusedAsExpected(e: unknown): boolean {
  return isRaftError(e) && EXPECTED_REFUSALS.includes(e.code);
}

/**
 * Whether every majority of `a`'s voters intersects every majority of `b`'s. Two majorities can
 * avoid each other only inside the shared voters: a majority of `a` must take at least
 * quorum(a) - |a \ b| of them, a majority of `b` at least quorum(b) - |b \ a|; they must
 * overlap iff those minimums together exceed the shared voters.
 */
export function quorumsOverlap(a: ClusterConfig, b: ClusterConfig): boolean {
  const shared = a.voters.filter((v) => b.voters.includes(v)).length;
  const minA = Math.max(0, quorumSize(a.voters.length) - (a.voters.length - shared));
  const minB = Math.max(0, quorumSize(b.voters.length) - (b.voters.length - shared));
  return minA + minB > shared;
}

/** The leader of the highest term among nodes that believe they lead, or null. */
function currentLeader(c: Cluster): NodeId | null {
  let best: { id: NodeId; term: number } | null = null;
  for (const id of c.ids) {
    const s = c.node(id).status();
    if (s.role === 'leader' && (best === null || s.term > best.term)) best = { id, term: s.term };
  }
  return best?.id ?? null;
}

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
    if (r < a.lossPct / 100) {
      c.lose(m); // lost (a lost InstallSnapshot is reported failed by its sender's driver)
      continue;
    }
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
  /** Issue 3: snapshots switched in from a leader, config entries committed, TimeoutNow sent. */
  readonly snapshotInstalls: number;
  readonly confChangesApplied: number;
  readonly transfers: number;
}

export function run(size: number, overrides: ConfigOverrides, actions: readonly Action[], opts: RunOptions = {}): RunStats {
  const c = new Cluster(size, { electionTicks: 4, heartbeatTicks: 1, maxInflightMsgs: 3, maxMsgBytes: 8, ...overrides });
  for (let i = 0; i < (opts.spares ?? 0); i++) c.addNode(`n${size + i + 1}`);
  try {
    return runOn(c, actions, opts);
  } catch (e) {
    // Make a failure readable: where every node stands, and the last messages delivered.
    if (e instanceof Error && !e.message.includes('messages delivered')) e.message += `\n${c.describeState()}`;
    throw e;
  }
}

function runOn(c: Cluster, actions: readonly Action[], opts: RunOptions): RunStats {
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
            if (!refusedAsExpected(e)) throw e;
          }
        }
        break;
      case 'compact':
        c.compact(id, undefined, a.keep);
        break;
      case 'conf': {
        const leader = currentLeader(c);
        if (!opts.membership || leader === null) break;
        try {
          c.node(leader).proposeConfChange({ type: CONF_TYPES[a.op % CONF_TYPES.length]!, node: c.ids[a.target % size]! });
        } catch (e) {
          if (!refusedAsExpected(e)) throw e;
        }
        break;
      }
      case 'transfer': {
        const leader = currentLeader(c);
        if (leader === null) break;
        try {
          c.node(leader).transferLeadership(c.ids[a.target % size]!);
        } catch (e) {
          if (!refusedAsExpected(e)) throw e;
        }
        break;
      }
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
  // Compacted entries are holes in the stored logs: only entries both logs hold are compared.
  const logs = c.ids.map((id) => c.disks.get(id)!.entries);
  for (let i = 0; i < logs.length; i++) {
    for (let j = i + 1; j < logs.length; j++) {
      const a = logs[i]!;
      const b = logs[j]!;
      let k = Math.min(a.length, b.length) - 1;
      while (k >= 0 && (a[k] === undefined || b[k] === undefined || a[k]!.term !== b[k]!.term)) k--;
      for (; k >= 0; k--) {
        if (a[k] === undefined || b[k] === undefined) continue;
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
      for (let k = 0; k < n; k++) {
        if (a[k] === undefined || b[k] === undefined) continue;
        expect([a[k]!.term, dec(a[k]!.data)]).toEqual([b[k]!.term, dec(b[k]!.data)]);
      }
    }
  }
  // Membership safety (thesis §4.1): the configuration a leader was elected under overlaps in a
  // quorum with the last configuration of the leader of the previous term that had one.
  const terms = [...c.leaderConfigs.keys()].sort((x, y) => x - y);
  for (let i = 1; i < terms.length; i++) {
    const prev = c.leaderConfigs.get(terms[i - 1]!)!.last;
    const next = c.leaderConfigs.get(terms[i]!)!.elected;
    if (!quorumsOverlap(prev, next)) {
      throw new Error(`leaders of terms ${terms[i - 1]} and ${terms[i]} used configurations without a common quorum: [${prev.voters.join(',')}] and [${next.voters.join(',')}]`);
    }
  }
  const stats: RunStats = {
    terms: c.leaderOfTerm.size,
    appliedIndexes: c.appliedAt.size,
    readsServed,
    snapshotInstalls: c.installed.length,
    confChangesApplied: [...c.appliedAt.values()].filter((e) => e.type === 'config').length,
    transfers: c.countSent('TimeoutNow'),
  };
  // Liveness once the network heals: a leader emerges and a new command reaches every node.
  // Like a client, retry if the command was dropped by a change of leader.
  // With membership changes, "every node" means every member of the leader's configuration
  // (spares never added and removed nodes are left out); a transfer under way finishes or aborts.
  c.heal();
  const members = (id: NodeId): NodeId[] => {
    const cfg = c.node(id).status().config;
    return [...cfg.voters, ...cfg.learners];
  };
  const settled = (): boolean => {
    const l = c.leader();
    if (l === null) return false;
    const s = c.node(l).status();
    return s.transferee === null && members(l).every((id) => c.node(id).status().term <= s.term);
  };
  for (let attempt = 0; ; attempt++) {
    c.tickUntil(settled, 200);
    const leader = c.leader()!;
    c.node(leader).propose([enc(`final${attempt}`)]);
    const done = () => members(leader).every((id) => c.appliedData(id).includes(`final${attempt}`));
    for (let t = 0; t < 30 && !done(); t++) c.tick();
    if (done()) break;
    if (attempt === 2) throw new Error(`no command committed on every member after healing:\n${c.describeState()}`);
  }
  return stats;
}

