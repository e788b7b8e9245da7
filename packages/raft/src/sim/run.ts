// One simulated run per seed: a cluster, clients proposing unique payloads, a fault schedule; then
// heal everything and check liveness (a leader is elected and a new proposal commits within a bound)
// and durability (every acknowledged proposal is applied by every node). Safety invariants are
// checked after every step by the cluster itself.
//
// A run is a pure function of its options: runSimulation({seed}) twice gives the same trace hash.
//
// Issue 3: by default a run also compacts logs (the seed picks a small snapshot interval, so
// snapshots are taken and installed often, streamed in chunks over the faulty network) and
// changes its membership — adds spare nodes as learners then promotes them, removes voters (the
// leader too), replaces down nodes, transfers leadership — through a MembershipOperator, under
// the same faults and per-step invariants. Liveness and durability are then checked on the
// members of the final configuration.

import { createHash } from 'node:crypto';
import { isRaftError } from '../core/errors.js';
import type { NodeId } from '../core/types.js';
import { SimCluster, type CompactionPolicy, type SimClusterOptions } from './cluster.js';
import {
  applyFault,
  currentLeader,
  describeFault,
  generateFaultSchedule,
  generateMembershipSchedule,
  healAll,
  scheduleProfile,
  sortSchedule,
  type FaultSchedule,
} from './faults.js';
import { InvariantViolation, type InvariantName } from './invariants.js';
import { MembershipOperator } from './membership.js';
import { SimRandom, deriveSeed } from './random.js';

export interface SimOptions {
  readonly seed: number;
  /** Default 5. */
  readonly nodes?: number;
  /** Length of the fault phase in simulated ms. Default 3000. */
  readonly durationMs?: number;
  /** An explicit schedule (e.g. from fast-check); default: generated from the seed. */
  readonly schedule?: FaultSchedule;
  /** Concurrent clients, each with at most one proposal outstanding. Default 3. */
  readonly clients?: number;
  /** Share of client operations that are linearizable reads (checked against acknowledged writes). Default 0.2. */
  readonly readFraction?: number;
  /** After the final heal: simulated ms allowed to elect a leader and commit a new proposal (and again to catch every node up). Default 40 election timeouts. */
  readonly livenessBoundMs?: number;
  /** Return the kept trace lines in the result (for --trace). */
  readonly keepTrace?: boolean;
  /** Cluster settings besides nodes and seed (they override the seed's variant). */
  readonly cluster?: Omit<SimClusterOptions, 'nodes' | 'seed'>;
  /**
   * Let the seed also choose the core's configuration and crash points (see simVariant). Default
   * true; false runs the core's defaults with crashes only where the schedule puts them.
   */
  readonly variants?: boolean;
  /**
   * Membership changes and leadership transfers as random events (with spare nodes to add).
   * Default true; ignored (off) with an explicit schedule unless it holds membership actions.
   */
  readonly membership?: boolean;
  /** Overrides the seed's compaction policy (null: never compact). */
  readonly compaction?: CompactionPolicy | null;
}

/** Spare nodes a run with membership events may add. */
export const SIM_SPARE_NODES = 3;

/**
 * What a seed varies besides its fault schedule: the core's options (PreVote and CheckQuorum on
 * or off, tiny messages that split a leader's new entries from its no-op, a short pipeline) and
 * crash points — crashing a node right after it made a vote durable (then restarting it within
 * ms, mid-election), or right after it appended entries.
 */
export interface SimVariant {
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxMsgBytes: number | undefined;
  readonly maxInflightMsgs: number | undefined;
  /** Probability that a node crashes right after syncing a vote for another node. */
  readonly voteCrashProbability: number;
  /** Probability that a node crashes right after syncing appended entries. */
  readonly appendCrashProbability: number;
  /** Probability that a leader crashes right after syncing its no-op (a quarter of it: after a commit advance). */
  readonly leaderCrashProbability: number;
  /** Snapshot-and-compact policy (null: never); small intervals so installs happen often. */
  readonly compaction: CompactionPolicy | null;
  readonly snapshotChunkBytes: number;
}

export const DEFAULT_VARIANT: SimVariant = {
  preVote: true,
  checkQuorum: true,
  maxMsgBytes: undefined,
  maxInflightMsgs: undefined,
  voteCrashProbability: 0,
  appendCrashProbability: 0,
  leaderCrashProbability: 0,
  compaction: null,
  snapshotChunkBytes: 1024,
};

export function simVariant(seed: number): SimVariant {
  const rng = new SimRandom(deriveSeed(seed, 10));
  const profile = scheduleProfile(seed);
  return {
    preVote: rng.chance(0.75),
    checkQuorum: rng.chance(0.75),
    // Crash storms also split a leader's appends one entry per message half the time: the
    // Figure 8 window (an old-term entry replicated apart from the new leader's no-op).
    maxMsgBytes: rng.chance(profile === 'crash-storm' ? 0.5 : 0.25) ? rng.pick([1, 1, 64, 512]) : undefined,
    maxInflightMsgs: rng.chance(0.25) ? rng.pick([1, 2, 8]) : undefined,
    voteCrashProbability: profile === 'crash-storm' ? 0.3 : profile === 'mixed' ? 0.05 : 0,
    appendCrashProbability: profile === 'crash-storm' ? 0.003 : profile === 'mixed' ? 0.0005 : 0,
    leaderCrashProbability: profile === 'crash-storm' ? 0.3 : profile === 'mixed' ? 0.03 : 0,
    ...snapshotVariant(seed),
  };
}

/** The issue-3 part of a variant, from its own PRNG stream (the older choices stay as they were). */
function snapshotVariant(seed: number): Pick<SimVariant, 'compaction' | 'snapshotChunkBytes'> {
  const rng = new SimRandom(deriveSeed(seed, 10, 1));
  const compaction = rng.chance(0.85) ? { everyEntries: rng.int(4, 40), trailingEntries: rng.pick([0, 0, 1, 3, 10]) } : null;
  return { compaction, snapshotChunkBytes: rng.pick([48, 128, 512, 2048]) };
}

function describeVariant(v: SimVariant): string {
  return (
    `preVote=${v.preVote} checkQuorum=${v.checkQuorum} maxMsgBytes=${v.maxMsgBytes ?? 'default'} ` +
    `maxInflightMsgs=${v.maxInflightMsgs ?? 'default'} crash points: vote p=${v.voteCrashProbability} append p=${v.appendCrashProbability} ` +
    `leader p=${v.leaderCrashProbability}` +
    (v.compaction !== null
      ? ` compaction every ${v.compaction.everyEntries} keep ${v.compaction.trailingEntries} chunk ${v.snapshotChunkBytes}B`
      : '')
  );
}

export interface SimViolation {
  readonly invariant: InvariantName | 'simulator-error';
  readonly detail: string;
  readonly timeMs: number;
}

export interface SimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly ok: boolean;
  readonly violation: SimViolation | null;
  /** A readable report for a failing seed: the invariant, the schedule, the timeline, how to replay. */
  readonly report: string | null;
  /** Acknowledged client proposals. */
  readonly commits: number;
  /** Terms in which a leader was elected. */
  readonly elections: number;
  readonly messages: number;
  readonly simulatedMs: number;
  readonly traceHash: string;
  readonly traceLines: number;
  readonly schedule: FaultSchedule;
  /** The kept trace lines, when keepTrace was set. */
  readonly trace: readonly string[] | null;
}

export interface SeedsSummary {
  readonly seeds: number;
  readonly violations: number;
  readonly failedSeeds: readonly number[];
  readonly commits: number;
  readonly elections: number;
  /** sha256 over every seed's trace hash, in seed order. */
  readonly traceHash: string;
}

export interface SeedsOptions extends Omit<SimOptions, 'seed' | 'schedule'> {
  /** Number of seeds to run: firstSeed, firstSeed + 1, ... */
  readonly seeds: number;
  /** Default 1. */
  readonly firstSeed?: number;
  /** Called after each seed. */
  readonly onResult?: (result: SimResult, done: number, total: number, violations: number) => void;
}

/** Polling period of a client waiting for its proposal, in simulated ms. */
const CLIENT_POLL_MS = 5;
/** A client gives up on a proposal after this long and proposes a new one (its outcome stays unknown). */
const CLIENT_TIMEOUT_MS = 1000;

/**
 * A client: proposes unique payloads one at a time, at the node it believes leads; follows
 * NOT_LEADER hints; waits until its node applied the proposal's index (acknowledged if the term
 * matches — the cluster records that), gives up on timeouts and crashes.
 */
class Client {
  private target: NodeId;
  private seq = 0;
  private pending: { node: NodeId; index: number; term: number; sinceMs: number } | null = null;
  stopped = false;
  /** Index of the last acknowledged proposal (0 = none). */
  lastAckedIndex = 0;

  constructor(
    private readonly cluster: SimCluster,
    private readonly name: string,
    private readonly rng: SimRandom,
    private readonly idleMs: readonly [number, number],
    /** Share of operations that are reads rather than proposals. */
    private readonly readFraction = 0,
    /** Read request ids, shared by a run's clients so that they are unique. */
    private readonly readIds = { next: 1 },
  ) {
    this.target = rng.pick(cluster.activeIds());
  }

  start(delayMs: number): void {
    this.cluster.schedule(delayMs, () => this.act());
  }

  private act(): void {
    if (this.stopped) return;
    const c = this.cluster;
    if (this.pending !== null) {
      const p = this.pending;
      const applied = c.appliedLog(p.node)[p.index - 1];
      if (applied !== undefined) {
        this.pending = null;
        if (applied.term === p.term) this.lastAckedIndex = p.index;
        c.schedule(this.rng.between(this.idleMs), () => this.act());
        return;
      }
      if (!c.isUp(p.node) || c.now() - p.sinceMs > CLIENT_TIMEOUT_MS) {
        this.pending = null; // outcome unknown; move on
        this.target = this.rng.pick(c.activeIds());
      } else {
        c.schedule(CLIENT_POLL_MS, () => this.act());
        return;
      }
    }
    if (this.readFraction > 0 && this.rng.chance(this.readFraction)) {
      // A linearizable read at a random node (followers forward it to the leader); the cluster's
      // checker verifies its index covers every write acknowledged before now.
      c.readIndex(this.rng.pick(c.activeIds()), [this.readIds.next++]);
      c.schedule(this.rng.between(this.idleMs), () => this.act());
      return;
    }
    const data = new TextEncoder().encode(`${this.name}-${this.seq++}`);
    const r = c.propose(this.target, data);
    if (isRaftError(r)) {
      if (r.code === 'NOT_LEADER' && r.leaderHint !== null && r.leaderHint !== this.target) {
        this.target = r.leaderHint;
        c.schedule(1, () => this.act());
      } else {
        this.target = this.rng.pick(c.activeIds());
        c.schedule(this.rng.between([5, 20]), () => this.act());
      }
      return;
    }
    this.pending = { node: this.target, index: r.firstIndex, term: r.term, sinceMs: c.now() };
    c.schedule(CLIENT_POLL_MS, () => this.act());
  }
}

/**
 * Crash points (see SimVariant): crash a node right after it synced a new vote, appended entries,
 * or — as a leader — synced its election no-op or a commit advance (the moments Figure 8 of the
 * paper turns on); restart it within 300 ms (leaders) or 20 ms (others).
 */
function installCrashPoints(c: SimCluster, v: SimVariant, rng: SimRandom): void {
  if (v.voteCrashProbability <= 0 && v.appendCrashProbability <= 0 && v.leaderCrashProbability <= 0) return;
  const lastVote = new Map<NodeId, string>();
  const lastCommit = new Map<NodeId, number>();
  c.onPersisted((id, rd) => {
    const hs = rd.hardState;
    let what: string | null = null;
    let downMs: readonly [number, number] = [0, 20];
    if (hs !== null && hs.vote !== null && hs.vote !== id && lastVote.get(id) !== `${hs.term}:${hs.vote}`) {
      lastVote.set(id, `${hs.term}:${hs.vote}`);
      if (rng.chance(v.voteCrashProbability)) what = `its vote for ${hs.vote} in term ${hs.term}`;
    }
    if (what === null && v.leaderCrashProbability > 0 && c.isUp(id)) {
      const s = c.status(id);
      const commitUp = hs !== null && hs.commit > (lastCommit.get(id) ?? 0);
      if (hs !== null) lastCommit.set(id, hs.commit);
      if (s.role === 'leader') {
        const noop = rd.entries.find((e) => e.type === 'noop' && e.term === s.term);
        if (noop !== undefined && rng.chance(v.leaderCrashProbability)) what = `its no-op (${noop.index},${noop.term}) as leader`;
        else if (commitUp && rng.chance(v.leaderCrashProbability / 4)) what = `commit index ${hs?.commit} as leader`;
        if (what !== null) downMs = [0, 300];
      }
    }
    if (what === null && rd.entries.length > 0 && rng.chance(v.appendCrashProbability)) what = `${rd.entries.length} entries`;
    if (what === null) return;
    c.trace(`CRASH POINT ${id} right after syncing ${what}`);
    c.crash(id);
    c.schedule(rng.between(downMs), () => {
      if (!c.isUp(id)) c.restart(id);
    });
  });
}

export function runSimulation(opts: SimOptions): SimResult {
  const nodes = opts.nodes ?? 5;
  const durationMs = opts.durationMs ?? 3000;
  const membership = opts.schedule === undefined ? opts.membership !== false : opts.schedule.some((e) => isMembershipAction(e.action.kind));
  const schedule = sortSchedule(
    opts.schedule ?? [
      ...generateFaultSchedule(opts.seed, { nodes, durationMs }),
      ...(membership ? generateMembershipSchedule(opts.seed, { nodes, durationMs }) : []),
    ],
  );
  const variant = opts.variants === false ? DEFAULT_VARIANT : simVariant(opts.seed);
  const compaction = opts.compaction !== undefined ? opts.compaction : variant.compaction;
  let cluster: SimCluster | null = null;
  let violation: SimViolation | null = null;
  let report: string | null = null;
  try {
    cluster = new SimCluster({
      preVote: variant.preVote,
      checkQuorum: variant.checkQuorum,
      ...opts.cluster,
      raft: {
        ...(variant.maxMsgBytes !== undefined ? { maxMsgBytes: variant.maxMsgBytes } : {}),
        ...(variant.maxInflightMsgs !== undefined ? { maxInflightMsgs: variant.maxInflightMsgs } : {}),
        ...opts.cluster?.raft,
      },
      ...(membership ? { spareNodes: SIM_SPARE_NODES } : {}),
      ...(compaction !== null ? { compaction, snapshotChunkBytes: variant.snapshotChunkBytes } : {}),
      nodes,
      seed: opts.seed,
    });
    const c = cluster;
    c.trace(`VARIANT ${describeVariant(variant)}`);
    const operator = membership
      ? new MembershipOperator(c, new SimRandom(deriveSeed(opts.seed, 12)), { minVoters: Math.min(3, nodes), maxMembers: nodes + 2 })
      : undefined;
    operator?.start();
    installCrashPoints(c, variant, new SimRandom(deriveSeed(opts.seed, 9)));
    const electionTimeoutMs = c.electionTicks * c.tickMs;
    const livenessBoundMs = opts.livenessBoundMs ?? 40 * electionTimeoutMs;

    // Clients run through the fault phase.
    const clientRng = new SimRandom(deriveSeed(opts.seed, 5));
    const readIds = { next: 1 };
    const clients = Array.from(
      { length: opts.clients ?? 3 },
      (_, i) => new Client(c, `c${i + 1}`, new SimRandom(deriveSeed(opts.seed, 6, i)), [2, 30], opts.readFraction ?? 0.2, readIds),
    );
    for (const cl of clients) cl.start(clientRng.between([0, 50]));

    // The fault phase.
    for (const ev of schedule) {
      if (ev.atMs >= durationMs) break;
      c.runFor(Math.max(0, ev.atMs - c.now()));
      c.trace(`FAULT ${describeFault(ev.action)}`);
      applyFault(c, ev.action, operator);
    }
    c.runFor(Math.max(0, durationMs - c.now()));
    for (const cl of clients) cl.stopped = true;
    operator?.stop();
    c.onPersisted(null);

    // Heal, then liveness: a leader, and a new proposal committed, within the bound.
    c.trace('FAULT PHASE OVER: heal, reliable links, restart every crashed node');
    healAll(c);
    const healedAtMs = c.now();
    const probe = new Client(c, 'liveness', new SimRandom(deriveSeed(opts.seed, 8)), [1, 1]);
    probe.start(0);
    const live = c.runUntil(() => probe.lastAckedIndex > 0, livenessBoundMs);
    probe.stopped = true;
    if (!live) {
      c.invariants().fail(
        'liveness',
        `${livenessBoundMs}ms after healing at t=${healedAtMs}ms no new proposal committed; leader: ${currentLeader(c) ?? 'none'}; ` +
          c.ids.map((id) => `${id}:${c.status(id).role}/t${c.status(id).term}/c${c.status(id).commit}`).join(' '),
      );
    }
    c.trace(`LIVE: leader ${currentLeader(c) ?? '?'} committed a new proposal at index ${probe.lastAckedIndex}`);

    // Durability: every member catches up, and every acknowledged proposal is applied everywhere.
    // Members are the final configuration's voters and learners (removed and never-added nodes
    // are not); with membership changes the leader's configuration decides.
    const members = (): readonly NodeId[] => {
      if (!membership) return c.ids;
      const cfg = c.currentConfig();
      return cfg === null ? c.ids : [...cfg.voters, ...cfg.learners];
    };
    const target = probe.lastAckedIndex;
    // (A removed leader may just have stepped down: wait for the next one, too.)
    const caughtUp = c.runUntil(() => currentLeader(c) !== null && members().every((id) => c.appliedLog(id).length >= target), livenessBoundMs);
    if (!caughtUp) {
      c.invariants().fail(
        'liveness',
        `${livenessBoundMs}ms after index ${target} committed, not every member applied it (or no leader): leader ${currentLeader(c) ?? 'none'}; ` +
          members().map((id) => `${id} applied ${c.appliedLog(id).length}${c.isUp(id) ? '' : ' (down)'}`).join(', '),
      );
    }
    const finalLeader = currentLeader(c) as NodeId;
    const finalConfig = c.status(finalLeader).config;
    if (!finalConfig.voters.includes(finalLeader)) {
      c.invariants().fail('removed-leader', `${finalLeader} leads after healing but is not a voter of its configuration [${finalConfig.voters.join(',')}]`);
    }
    c.invariants().checkAcknowledgedApplied(new Map(members().map((id) => [id, c.appliedLog(id)] as const)));
    c.checkInvariants();
    c.trace(`DONE: ${c.acknowledged().length} acknowledged proposals, ${c.elections()} elections, all applied everywhere`);
  } catch (e) {
    if (e instanceof InvariantViolation) {
      violation = { invariant: e.invariant, detail: e.detail, timeMs: e.timeMs };
      report = e.message;
    } else {
      const err = e instanceof Error ? e : new Error(String(e));
      violation = { invariant: 'simulator-error', detail: `${err.message}\n${err.stack ?? ''}`, timeMs: cluster?.now() ?? 0 };
      report = `SIMULATOR ERROR (seed ${opts.seed}): ${err.stack ?? err.message}\n${(cluster?.timeline(60) ?? []).join('\n')}`;
    }
    report +=
      `\n--- fault schedule ---\n` +
      (schedule.length === 0 ? '  (none)\n' : schedule.map((ev) => `  t=${ev.atMs}ms ${describeFault(ev.action)}\n`).join('')) +
      `--- replay ---\n  npx ballot sim --seed ${opts.seed} --nodes ${nodes} --duration-ms ${durationMs} --trace`;
  }
  const c = cluster;
  return {
    seed: opts.seed,
    nodes,
    ok: violation === null,
    violation,
    report,
    commits: c?.acknowledged().length ?? 0,
    elections: c?.elections() ?? 0,
    messages: c?.messageStats().count ?? 0,
    simulatedMs: c?.now() ?? 0,
    traceHash: c?.traceHash() ?? '',
    traceLines: c?.traceLineCount() ?? 0,
    schedule,
    trace: opts.keepTrace && c !== null ? c.trace().slice() : null,
  };
}

function isMembershipAction(kind: string): boolean {
  return kind === 'add-node' || kind === 'remove-node' || kind === 'replace-node' || kind === 'transfer';
}

/** Runs seeds firstSeed .. firstSeed + seeds - 1 and sums them up. */
export function runSeeds(opts: SeedsOptions): SeedsSummary {
  if (!Number.isInteger(opts.seeds) || opts.seeds < 0) throw new RangeError(`seeds must be a non-negative integer, got ${opts.seeds}`);
  const first = opts.firstSeed ?? 1;
  const hash = createHash('sha256');
  const failedSeeds: number[] = [];
  let commits = 0;
  let elections = 0;
  for (let k = 0; k < opts.seeds; k++) {
    const seed = first + k;
    const { onResult: _onResult, seeds: _seeds, firstSeed: _first, ...simOpts } = opts;
    const r = runSimulation({ ...simOpts, seed });
    hash.update(`${seed}:${r.traceHash}\n`);
    commits += r.commits;
    elections += r.elections;
    if (!r.ok) failedSeeds.push(seed);
    opts.onResult?.(r, k + 1, opts.seeds, failedSeeds.length);
  }
  return { seeds: opts.seeds, violations: failedSeeds.length, failedSeeds, commits, elections, traceHash: hash.digest('hex') };
}

