// The fault schedule of a chaos run: a pure function of (seed, duration, node count, nemeses), so the
// same seed replays the same faults. The nemesis (nemesis.ts) applies it; results.ts shades it.
//
// Shape of a run (the contract's "Schedule" decision):
//
//   |-- quiet lead-in --|== fault ==|- gap -|== fault ==|- gap -| ... |---- quiet tail ----|
//   0              ~15%, >= 1 s                                 ~85%                    duration
//
// - lead-in: the first 15% of the run (at least 1 s) is quiet, so the workload has a baseline;
// - fault windows last 15-30% of the run each, clamped to 2..10 s, one fault at a time (windows never
//   overlap, so each window's availability is that one fault's effect);
// - gaps of 1..3 s between windows let the cluster recover (elect, catch up) before the next fault;
// - the last 15% (at least 1 s) is quiet, so final reads meet a healed cluster.
// A run too short for a 2 s window between lead-in and tail gets one window filling that space when it
// is at least MIN_SHORT_WINDOW_MS long, and none otherwise.
//
// Nodes are indexes (node i of the run); 'leader' is resolved by the nemesis when the window opens.
//
// Combined fault (still one window): when 'partition' and 'clock' are both chosen, about half of the
// isolate-leader windows also slow the isolated leader's clock (leaderClockRate in LEADER_CLOCK_RATES).
// One fault at a time, a slow clock alone seldom changes the leader, and an isolated leader alone loses
// its read lease before the majority elects; together, the slow leader's lease (counted in its own
// ticks) lasts electionTimeout / rate of real time while the majority elects after one election
// timeout and accepts writes: the old leader's lease reads (--read-mode lease) are then stale. That
// draw comes from its own stream (seed and window id), so the rest of the schedule is the same as
// without it.

import { SimRandom, deriveSeed } from '@ballot/raft';
import { NEMESIS_NAMES, type FaultKind, type FaultSpec, type FaultWindow, type NemesisName, type Schedule } from './types.js';

export interface ScheduleRequest {
  readonly seed: number;
  readonly durationMs: number;
  readonly nodeCount: number;
  readonly nemeses: readonly NemesisName[];
}

/** Fractions of the run and bounds of a window, in one place (see the header). */
export const SCHEDULE_SHAPE = {
  leadInFraction: 0.15,
  tailFraction: 0.15,
  minQuietMs: 1000,
  windowFraction: [0.15, 0.3] as const,
  minWindowMs: 2000,
  maxWindowMs: 10_000,
  gapMs: [1000, 3000] as const,
} as const;

/** The shortest window a short run still gets (below it, a short run has no fault). */
export const MIN_SHORT_WINDOW_MS = 500;

/** Clock nemesis: skew magnitudes and rates a minority of nodes gets. */
export const CLOCK_SKEW_MS: readonly [number, number] = [200, 3000];
export const CLOCK_RATES: readonly number[] = [0.25, 0.5, 2, 4];
/** Combined partition + clock nemesis: share of isolate-leader windows whose leader is also slowed, and its rates. */
export const LEADER_CLOCK_CHANCE = 0.5;
export const LEADER_CLOCK_RATES: readonly number[] = [0.1, 0.2, 0.3];
/** Latency nemesis: every link's latency; jitter up to half of it. */
export const LATENCY_MS: readonly [number, number] = [20, 200];

/** The fault kinds each nemesis name stands for. */
export const KINDS_OF: Readonly<Record<NemesisName, readonly FaultKind[]>> = {
  partition: ['partition-halves', 'partition-isolate-leader', 'partition-bridge', 'partition-majorities-ring', 'partition-one-way'],
  kill: ['kill'],
  pause: ['pause'],
  clock: ['clock'],
  latency: ['latency'],
  reset: ['reset'],
};

/** The largest cluster the schedule (and the kv cluster command) is meant for. */
export const MAX_NODES = 9;

/**
 * The nemesis names of a `--nemesis` value: comma-separated names, or "all", or "none" (also "").
 * Duplicates collapse; the result is in NEMESIS_NAMES order. Unknown names are an Error naming them all.
 */
export function parseNemeses(list: string): NemesisName[] {
  const entries = list.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  const bad = entries.filter((e) => e !== 'all' && e !== 'none' && !(NEMESIS_NAMES as readonly string[]).includes(e));
  if (bad.length > 0) {
    throw new Error(
      `--nemesis: unknown ${bad.length === 1 ? 'nemesis' : 'nemeses'} ${bad.map((b) => `"${b}"`).join(', ')} ` +
        `(expected a comma-separated list of ${NEMESIS_NAMES.join(', ')}, or all, or none)`,
    );
  }
  if (entries.includes('none') && entries.length > 1) throw new Error(`--nemesis: "none" cannot be combined with other names (got "${list}")`);
  if (entries.includes('all')) return [...NEMESIS_NAMES];
  return NEMESIS_NAMES.filter((n) => entries.includes(n));
}

/** The fault windows of a run; pure: the same request gives a deep-equal schedule. */
export function scheduleFaults(req: ScheduleRequest): Schedule {
  const { seed, durationMs, nodeCount } = req;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`scheduleFaults: seed must be a safe integer, got ${seed}`);
  if (!Number.isInteger(durationMs) || durationMs <= 0) throw new RangeError(`scheduleFaults: durationMs must be a positive integer, got ${durationMs}`);
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > MAX_NODES) {
    throw new RangeError(`scheduleFaults: nodeCount must be an integer in 1..${MAX_NODES}, got ${nodeCount}`);
  }
  for (const n of req.nemeses) if (!(NEMESIS_NAMES as readonly string[]).includes(n)) throw new RangeError(`scheduleFaults: unknown nemesis ${String(n)}`);
  const nemeses = NEMESIS_NAMES.filter((n) => req.nemeses.includes(n));
  // Kinds this cluster size can have at all (a 1-node cluster has no links; a bridge needs 3 nodes; a
  // majorities ring cuts nothing below 4).
  const kinds = nemeses.flatMap((n) => KINDS_OF[n]).filter((k) => applicable(k, nodeCount));
  const rng = new SimRandom(deriveSeed(seed, 0x5c4ed, durationMs, nodeCount));
  const S = SCHEDULE_SHAPE;
  const leadInMs = Math.max(S.minQuietMs, Math.round(durationMs * S.leadInFraction));
  const tailMs = Math.max(S.minQuietMs, Math.round(durationMs * S.tailFraction));
  const lastEndMs = durationMs - tailMs;
  const windows: FaultWindow[] = [];
  if (kinds.length > 0) {
    let t = leadInMs;
    for (;;) {
      const drawnMs = Math.round(rng.between([S.windowFraction[0] * durationMs, S.windowFraction[1] * durationMs]));
      let lengthMs = Math.min(S.maxWindowMs, Math.max(S.minWindowMs, drawnMs));
      if (t + lengthMs > lastEndMs) {
        // A short run: one window filling the space between lead-in and tail, if it is worth having.
        if (windows.length === 0 && lastEndMs - t >= MIN_SHORT_WINDOW_MS) lengthMs = lastEndMs - t;
        else break;
      }
      const id = windows.length + 1;
      let fault = drawFault(rng, rng.pick(kinds), nodeCount);
      if (fault.kind === 'partition-isolate-leader' && nemeses.includes('clock')) fault = withLeaderClock(fault, seed, id);
      windows.push({ id, startMs: t, endMs: t + lengthMs, fault });
      t += lengthMs + rng.int(S.gapMs[0], S.gapMs[1]);
    }
  }
  return { seed, durationMs, nemeses, nodeCount, windows };
}

/** Maybe slows the isolated leader's clock too (see the header); its own stream, keyed by window id. */
function withLeaderClock(fault: FaultSpec & { readonly kind: 'partition-isolate-leader' }, seed: number, windowId: number): FaultSpec {
  const rng = new SimRandom(deriveSeed(seed, 0x1ea5e, windowId));
  return rng.chance(LEADER_CLOCK_CHANCE) ? { ...fault, leaderClockRate: rng.pick(LEADER_CLOCK_RATES) } : fault;
}

function applicable(kind: FaultKind, nodeCount: number): boolean {
  switch (kind) {
    case 'partition-bridge':
      return nodeCount >= 3;
    case 'partition-majorities-ring':
      return nodeCount >= 4;
    case 'partition-halves':
    case 'partition-isolate-leader':
    case 'partition-one-way':
    case 'latency':
    case 'reset':
      return nodeCount >= 2;
    case 'kill':
    case 'pause':
    case 'clock':
      return true;
  }
}

const indexes = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Size of a strict minority (1 for clusters of 1 or 2, where no non-empty strict minority exists). */
const minoritySize = (n: number): number => Math.max(1, Math.floor((n - 1) / 2));

function drawFault(rng: SimRandom, kind: FaultKind, n: number): FaultSpec {
  switch (kind) {
    case 'partition-halves':
      return { kind, minority: sorted(rng.shuffled(indexes(n)).slice(0, minoritySize(n))) };
    case 'partition-isolate-leader':
      return { kind };
    case 'partition-bridge':
    case 'partition-majorities-ring':
      return { kind, order: rng.shuffled(indexes(n)) };
    case 'partition-one-way': {
      const from: number | 'leader' = rng.chance(0.5) ? 'leader' : rng.int(0, n - 1);
      const to = from === 'leader' ? rng.int(0, n - 1) : rng.pick(indexes(n).filter((i) => i !== from));
      return { kind, from, to };
    }
    case 'kill':
    case 'pause':
      return { kind, nodes: drawTargets(rng, n) };
    case 'clock': {
      const chosen = sorted(rng.shuffled(indexes(n)).slice(0, rng.int(1, minoritySize(n))));
      return {
        kind,
        changes: chosen.map((node) => ({
          node,
          skewMs: (rng.chance(0.5) ? -1 : 1) * rng.int(CLOCK_SKEW_MS[0], CLOCK_SKEW_MS[1]),
          rate: rng.pick(CLOCK_RATES),
        })),
      };
    }
    case 'latency': {
      const latencyMs = rng.int(LATENCY_MS[0], LATENCY_MS[1]);
      return { kind, latencyMs, jitterMs: rng.int(0, Math.floor(latencyMs / 2)) };
    }
    case 'reset':
      return { kind };
  }
}

/** kill/pause targets: one node, a minority, a majority, or the leader (resolved when applied). */
function drawTargets(rng: SimRandom, n: number): (number | 'leader')[] {
  const target = rng.pick(['one', 'minority', 'majority', 'leader'] as const);
  switch (target) {
    case 'leader':
      return ['leader'];
    case 'one':
      return [rng.int(0, n - 1)];
    case 'minority':
      return sorted(rng.shuffled(indexes(n)).slice(0, rng.int(1, minoritySize(n))));
    case 'majority':
      return sorted(rng.shuffled(indexes(n)).slice(0, Math.floor(n / 2) + 1));
  }
}

function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/**
 * One line for people: "halves n1 | n2,n3", "isolate the leader", "isolate n3 (the leader), its clock x0.2",
 * "SIGKILL n1, n4", "n2 clock +800 ms x0.5".
 * `leader` names the leader 'leader' stands for, once resolved (undefined: still "the leader").
 */
export function describeFault(spec: FaultSpec, names: readonly string[], leader?: string): string {
  const nameOf = (i: number | 'leader'): string => (i === 'leader' ? (leader !== undefined ? `${leader} (the leader)` : 'the leader') : (names[i] ?? `node#${i}`));
  const list = (is: readonly (number | 'leader')[]): string => is.map(nameOf).join(', ');
  switch (spec.kind) {
    case 'partition-halves': {
      const rest = names.map((_, i) => i).filter((i) => !spec.minority.includes(i));
      return `halves ${spec.minority.map(nameOf).join(',')} | ${rest.map(nameOf).join(',')}`;
    }
    case 'partition-isolate-leader':
      return `isolate ${nameOf('leader')}${spec.leaderClockRate !== undefined ? `, its clock x${spec.leaderClockRate}` : ''}`;
    case 'partition-bridge': {
      const mid = Math.floor(spec.order.length / 2);
      return `bridge ${spec.order.slice(0, mid).map(nameOf).join(',')} | ${nameOf(spec.order[mid] ?? 0)} | ${spec.order.slice(mid + 1).map(nameOf).join(',')}`;
    }
    case 'partition-majorities-ring':
      return `majorities ring ${spec.order.map(nameOf).join(' - ')}`;
    case 'partition-one-way':
      return `one-way: ${nameOf(spec.from)} -> ${nameOf(spec.to)} dropped`;
    case 'kill':
      return `SIGKILL ${list(spec.nodes)}`;
    case 'pause':
      return `SIGSTOP ${list(spec.nodes)}`;
    case 'clock':
      return spec.changes.map((c) => `${nameOf(c.node)} clock ${c.skewMs >= 0 ? '+' : ''}${c.skewMs} ms x${c.rate}`).join(', ');
    case 'latency':
      return `latency ${spec.latencyMs} ms (jitter ${spec.jitterMs} ms) on every link`;
    case 'reset':
      return 'reset every peer connection';
  }
}
