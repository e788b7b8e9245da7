// Fault schedules: what goes wrong, and when, during one simulated run.
//
// A schedule is plain data (a list of timed actions), so it can come from two places:
//  - generateFaultSchedule(seed, ...): a random schedule chosen from the run seed (the `sim` command);
//  - a property-based test: fast-check generates schedules and, when one breaks an invariant,
//    shrinks it to a minimal one (fewer actions, smaller numbers).
// Choices that depend on the cluster's state when the action fires (who is leader, which nodes form
// each half) are drawn from a PRNG seeded by the action's own `pick`, so an action means the same
// thing wherever it sits in a schedule and removing one action does not reshuffle the others.

import type { NodeId } from '../core/types.js';
import type { SimCluster } from './cluster.js';
import type { MembershipOperator } from './membership.js';
import { SimRandom, deriveSeed } from './random.js';

export type PartitionMode =
  /** Two random groups, each side talking only within itself. */
  | 'halves'
  /** The current leader alone on one side. */
  | 'isolate-leader'
  /** Two groups that only one bridge node connects (it hears and is heard by both). */
  | 'bridge'
  /** Each node is linked to its neighbours on a ring so that each sees a majority, but no two majorities are the same. */
  | 'majorities-ring'
  /** One node's links work in one direction only (it hears the others but they do not hear it, or the reverse). */
  | 'one-way';

export const PARTITION_MODES: readonly PartitionMode[] = ['halves', 'isolate-leader', 'bridge', 'majorities-ring', 'one-way'];

export type FaultAction =
  | { readonly kind: 'partition'; readonly mode: PartitionMode; readonly pick: number }
  | { readonly kind: 'heal' }
  /** Crash the current leader ('leader'; nothing if there is none) or node number target mod N. */
  | { readonly kind: 'crash'; readonly target: 'leader' | number }
  /** Crash a node (the leader, or number target mod N) and restart it downMs later: a process restart, e.g. mid-election. */
  | { readonly kind: 'bounce'; readonly target: 'leader' | number; readonly downMs: number }
  /** Restart node number target mod N if it is down. */
  | { readonly kind: 'restart'; readonly target: number }
  /** All links (or, with perLink, each directed link its own share of `drop`) lose, duplicate and delay. */
  | {
      readonly kind: 'unreliable';
      readonly drop: number;
      readonly duplicate: number;
      readonly maxDelayMs: number;
      readonly perLink: boolean;
      readonly pick: number;
    }
  | { readonly kind: 'reliable' }
  /** Node number node mod N ticks at `rate` times true time. */
  | { readonly kind: 'clock'; readonly node: number; readonly rate: number }
  // Membership and leadership (issue 3), carried out by the run's MembershipOperator:
  /** Start a spare node, add it as a learner, promote it once caught up (thesis §4.2.1). */
  | { readonly kind: 'add-node' }
  /** Remove the leader or voter number target mod V; maybe shut it down for good once removed. */
  | { readonly kind: 'remove-node'; readonly target: 'leader' | number; readonly decommission: boolean }
  /** Replace a voter (preferably one that is down): remove and decommission it, add a spare. */
  | { readonly kind: 'replace-node'; readonly target: number }
  /** The leader hands leadership to a random up voter (thesis §3.10). */
  | { readonly kind: 'transfer' };

/** The fault kinds of generateFaultSchedule (membership events come from generateMembershipSchedule). */
export type NetworkOrCrashKind = Exclude<FaultAction['kind'], 'add-node' | 'remove-node' | 'replace-node' | 'transfer'>;

export interface FaultEvent {
  readonly atMs: number;
  readonly action: FaultAction;
}

export type FaultSchedule = readonly FaultEvent[];

export interface ScheduleOptions {
  readonly nodes: number;
  /** Faults are scheduled in [0, durationMs). */
  readonly durationMs: number;
  /** Default: chosen from the seed (scheduleProfile). */
  readonly profile?: ScheduleProfile;
}

/** Bounds on generated faults (a generated schedule never exceeds them; explicit ones are clamped when applied). */
export const FAULT_LIMITS = {
  maxDrop: 0.4,
  maxDuplicate: 0.2,
  maxDelayMs: 60,
  minClockRate: 0.5,
  maxClockRate: 2,
  maxBounceDownMs: 1000,
  /** Bound on the actions of one generated schedule. */
  maxActions: 400,
} as const;

/**
 * How a seed's schedule is shaped. Each seed picks one, so that across seeds every kind of run is
 * covered: a mix of everything, crash storms (Figure 8-like leader churn, processes restarting
 * mid-election), and network trouble without crashes.
 */
export type ScheduleProfile = 'mixed' | 'crash-storm' | 'network';

interface ProfileShape {
  /** Gap between two actions, in simulated ms. */
  readonly gapMs: readonly [number, number];
  /** Cumulative weights over ACTION_KINDS. */
  readonly weights: Readonly<Record<NetworkOrCrashKind, number>>;
}

const PROFILES: Readonly<Record<ScheduleProfile, ProfileShape>> = {
  mixed: {
    gapMs: [20, 500],
    weights: { partition: 25, heal: 13, crash: 15, bounce: 4, restart: 7, unreliable: 16, reliable: 10, clock: 10 },
  },
  'crash-storm': {
    gapMs: [5, 150],
    weights: { partition: 5, heal: 5, crash: 35, bounce: 25, restart: 20, unreliable: 4, reliable: 3, clock: 3 },
  },
  network: {
    gapMs: [20, 400],
    weights: { partition: 40, heal: 15, crash: 0, bounce: 0, restart: 0, unreliable: 30, reliable: 8, clock: 7 },
  },
};

export function scheduleProfile(seed: number): ScheduleProfile {
  const r = new SimRandom(deriveSeed(seed, 7, 1)).float();
  return r < 0.5 ? 'mixed' : r < 0.75 ? 'crash-storm' : 'network';
}

function pickKind(rng: SimRandom, weights: ProfileShape['weights']): NetworkOrCrashKind {
  const kinds = Object.keys(weights) as NetworkOrCrashKind[];
  const total = kinds.reduce((a, k) => a + weights[k], 0);
  let x = rng.float() * total;
  for (const k of kinds) {
    x -= weights[k];
    if (x < 0) return k;
  }
  return kinds[kinds.length - 1] as NetworkOrCrashKind;
}

/** A random fault schedule, a pure function of (seed, options). */
export function generateFaultSchedule(seed: number, opts: ScheduleOptions): FaultSchedule {
  const rng = new SimRandom(deriveSeed(seed, 7));
  const shape = PROFILES[opts.profile ?? scheduleProfile(seed)];
  const out: FaultEvent[] = [];
  let t = rng.int(0, 300);
  while (t < opts.durationMs && out.length < FAULT_LIMITS.maxActions) {
    let action: FaultAction;
    switch (pickKind(rng, shape.weights)) {
      case 'partition':
        action = { kind: 'partition', mode: rng.pick(PARTITION_MODES), pick: rng.nextU32() };
        break;
      case 'heal':
        action = { kind: 'heal' };
        break;
      case 'crash': {
        action = { kind: 'crash', target: rng.chance(0.5) ? 'leader' : rng.int(0, opts.nodes - 1) };
        // Most crashed nodes come back during the fault phase; the rest at the final heal.
        if (rng.chance(0.8)) {
          const back = t + rng.int(10, 800);
          if (back < opts.durationMs) out.push({ atMs: back, action: { kind: 'restart', target: -1 } });
        }
        break;
      }
      case 'bounce':
        action = { kind: 'bounce', target: rng.chance(0.3) ? 'leader' : rng.int(0, opts.nodes - 1), downMs: rng.int(0, 30) };
        break;
      case 'restart':
        action = { kind: 'restart', target: rng.int(0, opts.nodes - 1) };
        break;
      case 'unreliable':
        action = {
          kind: 'unreliable',
          drop: round2(rng.float() * FAULT_LIMITS.maxDrop),
          duplicate: round2(rng.float() * FAULT_LIMITS.maxDuplicate),
          maxDelayMs: rng.int(2, FAULT_LIMITS.maxDelayMs),
          perLink: rng.chance(0.5),
          pick: rng.nextU32(),
        };
        break;
      case 'reliable':
        action = { kind: 'reliable' };
        break;
      case 'clock':
        action = {
          kind: 'clock',
          node: rng.int(0, opts.nodes - 1),
          rate: round2(FAULT_LIMITS.minClockRate + rng.float() * (FAULT_LIMITS.maxClockRate - FAULT_LIMITS.minClockRate)),
        };
        break;
    }
    out.push({ atMs: t, action });
    t += rng.int(shape.gapMs[0], shape.gapMs[1]);
  }
  // A restart with target -1 restarts the most recently crashed node (resolved below, in order).
  return resolveRestarts(sortSchedule(out), opts.nodes);
}

/**
 * Membership changes and leadership transfers for a run (issue 3), a pure function of the seed,
 * drawn from their own PRNG stream so that the network/crash schedule of a seed is unchanged.
 * Roughly one event every 200-700 ms: adds, removals (of the leader too), replacements, transfers.
 */
export function generateMembershipSchedule(seed: number, opts: ScheduleOptions): FaultSchedule {
  const rng = new SimRandom(deriveSeed(seed, 7, 3));
  const out: FaultEvent[] = [];
  let t = rng.int(100, 500);
  while (t < opts.durationMs && out.length < FAULT_LIMITS.maxActions) {
    const x = rng.float();
    let action: FaultAction;
    if (x < 0.3) action = { kind: 'add-node' };
    else if (x < 0.55) action = { kind: 'remove-node', target: rng.chance(0.35) ? 'leader' : rng.int(0, opts.nodes - 1), decommission: rng.chance(0.5) };
    else if (x < 0.7) action = { kind: 'replace-node', target: rng.int(0, opts.nodes - 1) };
    else action = { kind: 'transfer' };
    out.push({ atMs: t, action });
    t += rng.int(200, 700);
  }
  return out;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** Stable sort by time (actions at the same time keep their order). */
export function sortSchedule(schedule: FaultSchedule): FaultEvent[] {
  return schedule
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.atMs - b.e.atMs || a.i - b.i)
    .map((x) => x.e);
}

/** Turns generated "restart the last crashed node" placeholders into node numbers (best effort: leader crashes are unknown here). */
function resolveRestarts(schedule: FaultEvent[], nodes: number): FaultEvent[] {
  const lastCrashed: number[] = [];
  let guess = 0;
  return schedule.map((e) => {
    const a = e.action;
    if (a.kind === 'crash') {
      lastCrashed.push(a.target === 'leader' ? -1 : a.target);
      return e;
    }
    if (a.kind === 'restart' && a.target === -1) {
      const c = lastCrashed.shift();
      // For a crashed leader we do not know the node yet: restart "any down node" (encoded as nodes + k).
      const target = c === undefined || c === -1 ? nodes + guess++ : c;
      return { atMs: e.atMs, action: { kind: 'restart', target } };
    }
    return e;
  });
}

export function describeFault(a: FaultAction): string {
  switch (a.kind) {
    case 'partition':
      return `partition ${a.mode} (pick ${a.pick})`;
    case 'heal':
      return 'heal';
    case 'crash':
      return `crash ${a.target === 'leader' ? 'leader' : `#${a.target}`}`;
    case 'bounce':
      return `bounce ${a.target === 'leader' ? 'leader' : `#${a.target}`} down ${a.downMs}ms`;
    case 'restart':
      return `restart #${a.target}`;
    case 'unreliable':
      return `unreliable drop=${a.drop} dup=${a.duplicate} delay<=${a.maxDelayMs}ms${a.perLink ? ' per-link' : ''}`;
    case 'reliable':
      return 'reliable';
    case 'clock':
      return `clock #${a.node} rate=${a.rate}`;
    case 'add-node':
      return 'add a node (learner, then promote)';
    case 'remove-node':
      return `remove ${a.target === 'leader' ? 'the leader' : `voter #${a.target}`}${a.decommission ? ' and decommission it' : ''}`;
    case 'replace-node':
      return `replace voter #${a.target} (a down one if any)`;
    case 'transfer':
      return 'transfer leadership';
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return Number.isFinite(x) ? Math.min(hi, Math.max(lo, x)) : lo;
}

/** The up leader with the highest term, or null. */
export function currentLeader(cluster: SimCluster): NodeId | null {
  let best: NodeId | null = null;
  let bestTerm = -1;
  for (const id of cluster.leaders()) {
    const term = cluster.status(id).term;
    if (term > bestTerm) {
      best = id;
      bestTerm = term;
    }
  }
  return best;
}

/** Node number k (mod the number of active nodes: started and not decommissioned, in id order). */
function nodeAt(cluster: SimCluster, k: number): NodeId {
  const ids = cluster.activeIds();
  const n = ids.length;
  return ids[((Math.trunc(k) % n) + n) % n] as NodeId;
}

/** Connectivity groups for a partition mode (see PartitionMode); two nodes talk iff a group holds both. */
export function partitionGroups(
  ids: readonly NodeId[],
  mode: Exclude<PartitionMode, 'one-way'>,
  rng: SimRandom,
  leader: NodeId | null,
): NodeId[][] {
  const n = ids.length;
  if (n < 2) return [ids.slice()];
  const order = rng.shuffled(ids);
  switch (mode) {
    case 'halves': {
      const k = rng.int(1, n - 1);
      return [order.slice(0, k), order.slice(k)];
    }
    case 'isolate-leader': {
      const alone = leader ?? (order[0] as NodeId);
      return [[alone], ids.filter((id) => id !== alone)];
    }
    case 'bridge': {
      if (n < 3) return [order.slice(0, 1), order.slice(1)];
      const bridge = order[0] as NodeId;
      const rest = order.slice(1);
      const k = rng.int(1, rest.length - 1);
      return [[...rest.slice(0, k), bridge], [bridge, ...rest.slice(k)]];
    }
    case 'majorities-ring': {
      // Each node must see floor(n/2) others (with itself, a majority): link each to its k nearest
      // neighbours on each side of a random ring. If that is everyone, drop one link instead.
      const need = Math.floor(n / 2);
      const k = Math.ceil(need / 2);
      if (2 * k >= n - 1) {
        // Too few nodes for a proper ring (n <= 3): a line a–b–c, where a and b see a majority
        // {a,b} and c sees {b,c}: both majorities differ.
        const groups: NodeId[][] = [];
        for (let i = 0; i + 1 < n; i++) groups.push([order[i] as NodeId, order[i + 1] as NodeId]);
        return groups;
      }
      const groups: NodeId[][] = [];
      for (let i = 0; i < n; i++) {
        for (let d = 1; d <= k; d++) groups.push([order[i] as NodeId, order[(i + d) % n] as NodeId]);
      }
      return groups;
    }
  }
}

/** Carries out one action on the cluster (membership actions need the run's operator; without one they do nothing). */
export function applyFault(cluster: SimCluster, action: FaultAction, operator?: MembershipOperator): void {
  const ids = cluster.ids;
  switch (action.kind) {
    case 'partition': {
      const rng = new SimRandom(deriveSeed(action.pick >>> 0, 11));
      const leader = currentLeader(cluster);
      cluster.heal();
      if (action.mode === 'one-way') {
        const x = leader !== null && rng.chance(0.5) ? leader : rng.pick(ids);
        const deaf = rng.chance(0.5); // x hears nobody (others still hear x), or nobody hears x
        for (const other of ids) {
          if (other === x) continue;
          if (deaf) cluster.blockLink(other, x);
          else cluster.blockLink(x, other);
        }
        return;
      }
      cluster.partition(partitionGroups(ids, action.mode, rng, leader), `PARTITION ${action.mode}`);
      return;
    }
    case 'heal':
      cluster.heal();
      return;
    case 'crash': {
      const target = action.target === 'leader' ? currentLeader(cluster) : nodeAt(cluster, action.target);
      if (target !== null) cluster.crash(target);
      return;
    }
    case 'bounce': {
      const target = action.target === 'leader' ? currentLeader(cluster) : nodeAt(cluster, action.target);
      if (target === null || !cluster.isUp(target)) return;
      cluster.crash(target);
      cluster.schedule(clamp(action.downMs, 0, FAULT_LIMITS.maxBounceDownMs), () => {
        if (!cluster.isUp(target)) cluster.restart(target);
      });
      return;
    }
    case 'restart': {
      const n = cluster.activeIds().length;
      if (action.target >= n) {
        // "Any down node": the first down node from position target - n on.
        for (let k = 0; k < n; k++) {
          const id = nodeAt(cluster, action.target - n + k);
          if (!cluster.isUp(id)) {
            cluster.restart(id);
            return;
          }
        }
        return;
      }
      const id = nodeAt(cluster, action.target);
      if (!cluster.isUp(id)) cluster.restart(id);
      return;
    }
    case 'unreliable': {
      const drop = clamp(action.drop, 0, FAULT_LIMITS.maxDrop);
      const duplicate = clamp(action.duplicate, 0, FAULT_LIMITS.maxDuplicate);
      const delayMs: [number, number] = [1, clamp(action.maxDelayMs, 1, FAULT_LIMITS.maxDelayMs)];
      cluster.setUnreliable({ drop, duplicate, delayMs });
      if (action.perLink) {
        const rng = new SimRandom(deriveSeed(action.pick >>> 0, 13));
        for (const from of ids) {
          for (const to of ids) {
            if (from !== to) cluster.setLinkUnreliable(from, to, { drop: round2(rng.float() * drop), duplicate, delayMs });
          }
        }
      }
      return;
    }
    case 'reliable':
      cluster.setUnreliable(null);
      return;
    case 'clock':
      cluster.setClockRate(nodeAt(cluster, action.node), clamp(action.rate, FAULT_LIMITS.minClockRate, FAULT_LIMITS.maxClockRate));
      return;
    case 'add-node':
      operator?.requestAdd();
      return;
    case 'remove-node':
      operator?.requestRemove(action.target, action.decommission);
      return;
    case 'replace-node':
      operator?.requestReplace(action.target);
      return;
    case 'transfer':
      operator?.requestTransfer();
      return;
  }
}

/** End of the fault phase: full connectivity, reliable links, every crashed node restarted. Clock skew stays. */
export function healAll(cluster: SimCluster): void {
  cluster.heal();
  cluster.setUnreliable(null);
  for (const id of cluster.activeIds()) if (!cluster.isUp(id)) cluster.restart(id);
}
