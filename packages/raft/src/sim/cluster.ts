// SimCluster: N Raft cores driven by a simulated clock, disk and network — the deterministic
// simulator the scenario tests (test/lab-*) and the seed runner (run.ts) are built on.
//
// Everything happens as events on one agenda ordered by (simulated time, sequence):
//  - tick:    node i's logical clock ticks every tickMs / clockRate[i] simulated ms (clock skew);
//  - persist: a node's in-flight Ready reaches stable storage after a random fsync delay;
//  - deliver: a message arrives after its link's delay (maybe lost, duplicated or reordered);
//  - call:    a scheduled callback (clients, fault schedules).
//
// Each node runs the driver loop of core/types.ts's Ready contract, one Ready at a time:
//   take ready → (fsync delay) → persist hardState+entries → send messages → apply committed
//   entries → answer reads → advance → take the next ready.
// Inputs (ticks, messages, proposals) keep reaching the core while a Ready is in flight; their
// effects go into the next Ready. A crash drops the core and the in-flight Ready — everything
// not yet synced — and a restart rebuilds the core from exactly what was synced.
//
// The state machine of a simulated node is its list of applied entries. We treat it as surviving
// a crash (as if rebuilt by replaying the durable log): appliedEntries(id) keeps what the node
// applied before the crash; after a restart the durable log up to the durable commit index is
// replayed into it, and any entry the core hands out again must match what is already there.
//
// After every step the invariants of invariants.ts are checked for the node that stepped; a
// broken one throws an InvariantViolation carrying the seed and the end of the timeline.

import { pack } from 'msgpackr';
import { RaftNode } from '../core/raft.js';
import { RaftError, isRaftError } from '../core/errors.js';
import type {
  Entry,
  FailedRead,
  HardState,
  Message,
  NodeId,
  ProposeResult,
  RaftConfig,
  RaftStatus,
  ReadMode,
  Ready,
  Role,
} from '../core/types.js';
import { EMPTY_HARD_STATE } from '../core/types.js';
import { EventQueue } from './events.js';
import { InvariantChecker, describeEntry, sameEntry, type AcknowledgedProposal } from './invariants.js';
import { SimNetwork, type UnreliableOptions } from './network.js';
import { SimRandom, deriveSeed } from './random.js';
import { Trace, formatEntries, formatHardState, formatMessage } from './trace.js';

/** Core settings a test may override besides the ones SimClusterOptions names. */
export type SimRaftOverrides = Partial<
  Pick<RaftConfig, 'leaseDriftTicks' | 'maxInflightMsgs' | 'maxMsgBytes' | 'maxUncommittedBytes' | 'maxPendingReads'>
>;

export interface SimClusterOptions {
  readonly nodes: number;
  readonly seed: number;
  /** Simulated ms between two ticks of a node whose clock rate is 1. Default 10. */
  readonly tickMs?: number;
  /** Default 10. */
  readonly electionTicks?: number;
  /** Default 1. */
  readonly heartbeatTicks?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly readMode?: ReadMode;
  /** Uniform range of one fsync, in simulated ms. Default [1, 3]. */
  readonly fsyncDelayMs?: readonly [number, number];
  /** Uniform one-way delay of a reliable link, in simulated ms. Default [1, 5]. */
  readonly linkDelayMs?: readonly [number, number];
  readonly raft?: SimRaftOverrides;
  /** Trace lines kept in memory (the trace hash covers all of them anyway). Default 200 000. */
  readonly maxTraceLines?: number;
  /**
   * UNSAFE, for testing the checkers only: a crash also wipes the node's synced state (a disk that
   * lies about fsync, or was replaced). Raft cannot be safe with this; the invariants must say so.
   */
  readonly unsafeAmnesiaOnCrash?: boolean;
}

export interface MessageTypeStats {
  count: number;
  bytes: number;
}

export interface MessageStats {
  readonly count: number;
  readonly bytes: number;
  readonly byType: Readonly<Record<string, MessageTypeStats>>;
}

export type ReadResult =
  | { readonly ok: true; readonly node: NodeId; readonly requestId: number; readonly index: number; readonly timeMs: number }
  | { readonly ok: false; readonly node: NodeId; readonly requestId: number; readonly code: FailedRead['code']; readonly timeMs: number };

interface PendingProposal {
  readonly term: number;
  readonly data: Uint8Array;
}

interface SimNode {
  readonly id: NodeId;
  readonly index: number;
  /** null while crashed. */
  core: RaftNode | null;
  /** Bumped at every crash and restart: events of an earlier life are ignored. */
  epoch: number;
  /** How many times the node was restarted (part of its core's seed). */
  incarnation: number;
  /** What survives a crash: the synced hard state and log (index i at log[i - 1]). */
  readonly durable: { hardState: HardState; readonly log: Entry[] };
  /** The Ready being persisted (lost on crash). */
  inflight: Ready | null;
  /** The state machine: every entry applied, in index order (noops included). */
  readonly applied: Entry[];
  /** Highest index the core handed out in committedEntries during this life (0 = none yet). */
  appliedThisLife: number;
  clockRate: number;
  lastRole: Role | null;
  lastTerm: number;
  lastLeader: NodeId | null;
  /** Commit index at the last observation (0 after a crash). */
  lastCommit: number;
  /** Proposals made at this node, waiting to be applied here, by index. Cleared by a crash (the clients are gone). */
  readonly proposals: Map<number, PendingProposal>;
}

type SimEvent =
  | { readonly kind: 'tick'; readonly node: SimNode; readonly epoch: number }
  | { readonly kind: 'persist'; readonly node: SimNode; readonly epoch: number }
  | { readonly kind: 'deliver'; readonly message: Message; readonly copy: number }
  | { readonly kind: 'call'; readonly fn: () => void };

/** Bound on read results kept for readResults() (oldest dropped first). */
const MAX_READ_RESULTS = 100_000;

function checkRange(name: string, r: readonly [number, number]): readonly [number, number] {
  if (!(r[0] >= 0 && r[1] >= r[0] && Number.isFinite(r[1]))) throw new RangeError(`${name}: bad range [${r[0]}, ${r[1]}]`);
  return r;
}

export class SimCluster {
  readonly ids: readonly NodeId[];
  readonly seed: number;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;

  private nowMs = 0;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodes: readonly SimNode[];
  private readonly byId = new Map<NodeId, SimNode>();
  private readonly network: SimNetwork;
  private readonly netRng: SimRandom;
  private readonly diskRng: SimRandom;
  private readonly clockRng: SimRandom;
  private readonly fsyncDelayMs: readonly [number, number];
  private readonly traceLog: Trace;
  private readonly checker: InvariantChecker;
  private readonly baseConfig: Omit<RaftConfig, 'id' | 'randomSeed'>;
  private readonly stats = { count: 0, bytes: 0, byType: {} as Record<string, MessageTypeStats> };
  private readonly reads: ReadResult[] = [];
  private readonly amnesia: boolean;
  private persistHook: ((id: NodeId, ready: Ready) => void) | null = null;
  private steps = 0;

  constructor(opts: SimClusterOptions) {
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 99) throw new RangeError(`nodes must be 1..99, got ${opts.nodes}`);
    if (!Number.isSafeInteger(opts.seed)) throw new RangeError(`seed must be a safe integer, got ${opts.seed}`);
    this.seed = opts.seed;
    this.amnesia = opts.unsafeAmnesiaOnCrash === true;
    this.tickMs = opts.tickMs ?? 10;
    this.electionTicks = opts.electionTicks ?? 10;
    this.heartbeatTicks = opts.heartbeatTicks ?? 1;
    if (!(this.tickMs > 0)) throw new RangeError('tickMs must be > 0');
    this.fsyncDelayMs = checkRange('fsyncDelayMs', opts.fsyncDelayMs ?? [1, 3]);
    this.ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    this.network = new SimNetwork(this.ids, checkRange('linkDelayMs', opts.linkDelayMs ?? [1, 5]));
    this.netRng = new SimRandom(deriveSeed(opts.seed, 2));
    this.diskRng = new SimRandom(deriveSeed(opts.seed, 3));
    this.clockRng = new SimRandom(deriveSeed(opts.seed, 4));
    this.traceLog = new Trace(opts.maxTraceLines ?? 200_000);
    this.checker = new InvariantChecker({
      seed: opts.seed,
      now: () => this.nowMs,
      timeline: (n) => this.traceLog.last(n),
    });
    this.baseConfig = {
      peers: this.ids,
      electionTicks: this.electionTicks,
      heartbeatTicks: this.heartbeatTicks,
      ...(opts.preVote !== undefined ? { preVote: opts.preVote } : {}),
      ...(opts.checkQuorum !== undefined ? { checkQuorum: opts.checkQuorum } : {}),
      ...(opts.readMode !== undefined ? { readMode: opts.readMode } : {}),
      ...opts.raft,
    };
    this.nodes = this.ids.map((id, index) => ({
      id,
      index,
      core: null,
      epoch: 0,
      incarnation: 0,
      durable: { hardState: EMPTY_HARD_STATE, log: [] },
      inflight: null,
      applied: [],
      appliedThisLife: 0,
      clockRate: 1,
      lastRole: null,
      lastTerm: 0,
      lastLeader: null,
      lastCommit: 0,
      proposals: new Map(),
    }));
    for (const n of this.nodes) this.byId.set(n.id, n);
    const flag = (v: boolean | undefined): string => (v === undefined ? 'default' : String(v));
    this.trace(
      `START ${opts.nodes} nodes, seed ${opts.seed}, tick ${this.tickMs}ms, election ${this.electionTicks} ticks, ` +
        `preVote=${flag(opts.preVote)} checkQuorum=${flag(opts.checkQuorum)} readMode=${opts.readMode ?? 'default'}` +
        (opts.raft && Object.keys(opts.raft).length > 0 ? ` ${JSON.stringify(opts.raft)}` : ''),
    );
    for (const n of this.nodes) this.boot(n);
  }

  // ===== time =====

  now(): number {
    return this.nowMs;
  }

  /** Runs every event up to now + ms, then sets the clock to now + ms. */
  runFor(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`runFor: ms must be >= 0, got ${ms}`);
    const end = this.nowMs + ms;
    for (;;) {
      const t = this.queue.peekTime();
      if (t === null || t > end) break;
      this.step();
    }
    this.nowMs = end;
  }

  /** Runs events until pred() holds (checked before and after every event) or maxMs pass. */
  runUntil(pred: () => boolean, maxMs: number): boolean {
    if (pred()) return true;
    const end = this.nowMs + maxMs;
    for (;;) {
      const t = this.queue.peekTime();
      if (t === null || t > end) break;
      this.step();
      if (pred()) return true;
    }
    this.nowMs = end;
    return pred();
  }

  /** Calls fn at now + delayMs (simulated), in agenda order. */
  schedule(delayMs: number, fn: () => void): void {
    if (!(delayMs >= 0)) throw new RangeError(`schedule: delayMs must be >= 0, got ${delayMs}`);
    this.queue.push(this.nowMs + delayMs, { kind: 'call', fn });
  }

  /**
   * Called each time a node has synced a Ready, sent its messages, applied its entries and
   * advanced — a crash point: the hook may crash (and schedule the restart of) that node, e.g.
   * right after it made a vote durable. null removes it.
   */
  onPersisted(hook: ((id: NodeId, ready: Ready) => void) | null): void {
    this.persistHook = hook;
  }

  /** Events processed so far. */
  stepCount(): number {
    return this.steps;
  }

  // ===== network =====

  setUnreliable(opts: UnreliableOptions | null): void {
    this.network.setUnreliable(opts);
    this.trace(
      opts === null
        ? 'NETWORK reliable'
        : `NETWORK unreliable drop=${opts.drop} dup=${opts.duplicate ?? 0}${opts.delayMs ? ` delay=[${opts.delayMs[0]},${opts.delayMs[1]}]ms` : ''}`,
    );
  }

  /** One directed link's reliability (null: back to the all-links setting). */
  setLinkUnreliable(from: NodeId, to: NodeId, opts: UnreliableOptions | null): void {
    this.network.setLinkUnreliable(from, to, opts);
    this.trace(opts === null ? `LINK ${from}→${to} default` : `LINK ${from}→${to} drop=${opts.drop} dup=${opts.duplicate ?? 0}`);
  }

  disconnect(id: NodeId): void {
    this.network.disconnect(id);
    this.trace(`DISCONNECT ${id} — ${this.network.describe()}`);
  }

  connect(id: NodeId): void {
    this.network.connect(id);
    this.trace(`CONNECT ${id} — ${this.network.describe()}`);
  }

  /** Two nodes can talk iff some group holds both (groups may overlap; a node in no group is isolated). */
  partition(groups: readonly (readonly NodeId[])[], label = 'PARTITION'): void {
    this.network.partition(groups);
    this.trace(`${label} — ${this.network.describe()}`);
  }

  /** One way: `to` stops hearing `from`. */
  blockLink(from: NodeId, to: NodeId): void {
    this.network.blockLink(from, to);
    this.trace(`BLOCK ${from}↛${to} — ${this.network.describe()}`);
  }

  /** Full connectivity again (partitions, blocked links, disconnects); link reliability is unchanged. */
  heal(): void {
    this.network.heal();
    this.trace('HEAL — fully connected');
  }

  canTalk(from: NodeId, to: NodeId): boolean {
    return this.network.canTalk(from, to);
  }

  // ===== nodes =====

  isUp(id: NodeId): boolean {
    return this.node(id).core !== null;
  }

  /** Node `id`'s clock runs at `rate` (1 = true time): it ticks every tickMs / rate. */
  setClockRate(id: NodeId, rate: number): void {
    if (!(rate > 0 && Number.isFinite(rate))) throw new RangeError(`clock rate must be > 0, got ${rate}`);
    this.node(id).clockRate = rate;
    this.trace(`CLOCK ${id} rate=${rate.toFixed(3)}`);
  }

  /** Kills the node: its core and its in-flight (not yet synced) Ready are lost. No-op if already down. */
  crash(id: NodeId): void {
    const n = this.node(id);
    if (n.core === null) return;
    const lost = n.inflight;
    n.core = null;
    n.inflight = null;
    n.epoch++;
    n.proposals.clear();
    n.lastRole = null;
    n.lastLeader = null;
    n.lastCommit = 0;
    this.checker.observeCrash(id);
    const lostParts: string[] = [];
    if (lost?.hardState) lostParts.push(`hardState ${formatHardState(lost.hardState)}`);
    if (lost && lost.entries.length > 0) lostParts.push(`entries ${formatEntries(lost.entries)}`);
    if (lost && lost.messages.length > 0) lostParts.push(`${lost.messages.length} unsent messages`);
    this.trace(`CRASH ${id}${lostParts.length > 0 ? ` (lost unsynced: ${lostParts.join(', ')})` : ''}`);
    if (this.amnesia) {
      n.durable.hardState = EMPTY_HARD_STATE;
      n.durable.log.length = 0;
      this.trace(`AMNESIA ${id}: synced state wiped (unsafe test mode)`);
    }
  }

  /**
   * Starts the node again from its synced state, with a fresh core seed. Like 6.5840's start1, a
   * node that is up is crashed first.
   */
  restart(id: NodeId): void {
    const n = this.node(id);
    if (n.core !== null) this.crash(id);
    n.incarnation++;
    this.boot(n);
  }

  status(id: NodeId): RaftStatus {
    const n = this.node(id);
    if (n.core !== null) return n.core.status();
    // A crashed node: what its synced state says (role follower, no known leader).
    const hs = n.durable.hardState;
    const last = n.durable.log[n.durable.log.length - 1];
    return {
      id,
      role: 'follower',
      term: hs.term,
      vote: hs.vote,
      leader: null,
      commit: hs.commit,
      applied: n.applied.length,
      lastIndex: last?.index ?? 0,
      lastTerm: last?.term ?? 0,
      progress: {},
      // A crashed node: the bootstrap configuration (issue 3 status fields; membership is not simulated yet).
      config: { voters: [...this.ids], learners: [] },
      configIndex: 0,
      snapshotIndex: 0,
      firstIndex: 1,
      transferee: null,
    };
  }

  /** Up nodes whose core's role is leader (possibly several, in different terms, during a partition). */
  leaders(): NodeId[] {
    return this.nodes.filter((n) => n.core !== null && n.core.status().role === 'leader').map((n) => n.id);
  }

  /** Normal (client) entries applied by the node's state machine, in index order, including before crashes. */
  appliedEntries(id: NodeId): readonly Entry[] {
    return this.node(id).applied.filter((e) => e.type === 'normal');
  }

  /** Every applied entry (noops included), in index order: entry i at position i - 1. */
  appliedLog(id: NodeId): readonly Entry[] {
    return this.node(id).applied;
  }

  /** The node's synced log (what a restart would see). */
  durableLog(id: NodeId): readonly Entry[] {
    return this.node(id).durable.log;
  }

  durableHardState(id: NodeId): HardState {
    return this.node(id).durable.hardState;
  }

  /**
   * How many nodes have applied the entry at `index` (6.5840's nCommitted), and its data (empty for a
   * noop). Fails with a state-machine-safety violation if two nodes applied different entries there.
   */
  nCommitted(index: number): { count: number; data: Uint8Array | null } {
    let count = 0;
    let first: { entry: Entry; node: NodeId } | null = null;
    for (const n of this.nodes) {
      const e = n.applied[index - 1];
      if (e === undefined) continue;
      if (first !== null && !sameEntry(first.entry, e)) {
        this.checker.fail(
          'state-machine-safety',
          `nCommitted(${index}): ${first.node} applied ${describeEntry(first.entry)}, ${n.id} applied ${describeEntry(e)}`,
        );
      }
      first ??= { entry: e, node: n.id };
      count++;
    }
    return { count, data: first === null ? null : first.entry.data };
  }

  /**
   * Proposes one entry directly on the node's core. Returns the core's answer (a RaftError instead of
   * throwing it, for NOT_LEADER etc.; STOPPED if the node is down). The proposal is acknowledged when
   * the node applies an entry at result.firstIndex with result.term (see acknowledged()).
   */
  propose(id: NodeId, data: Uint8Array): ProposeResult | RaftError {
    const n = this.node(id);
    if (n.core === null) return new RaftError('STOPPED', `${id} is down`);
    let result: ProposeResult;
    try {
      result = n.core.propose([data]);
    } catch (e) {
      if (isRaftError(e)) return e;
      this.coreThrew(n, 'propose', e);
    }
    n.proposals.set(result.firstIndex, { term: result.term, data });
    this.trace(`${id} propose ${describeEntry({ index: result.firstIndex, term: result.term, type: 'normal', data })}`);
    this.afterInput(n);
    return result;
  }

  /** Asks the node for linearizable reads; answers appear in readResults() once ready. */
  readIndex(id: NodeId, requestIds: readonly number[]): void {
    const n = this.node(id);
    if (n.core === null) {
      for (const requestId of requestIds) this.recordRead({ ok: false, node: id, requestId, code: 'NO_LEADER', timeMs: this.nowMs });
      return;
    }
    for (const requestId of requestIds) this.checker.observeReadIssued(id, requestId);
    this.trace(`${id} read ${requestIds.length === 1 ? String(requestIds[0]) : `${requestIds[0]}..${requestIds[requestIds.length - 1]}`} issued`);
    try {
      n.core.readIndex(requestIds);
    } catch (e) {
      this.coreThrew(n, 'readIndex', e);
    }
    this.afterInput(n);
  }

  readResults(): readonly ReadResult[] {
    return this.reads;
  }

  /** Proposals acknowledged to their clients so far (applied at the proposing node with the proposal's term). */
  acknowledged(): readonly AcknowledgedProposal[] {
    return this.checker.acknowledged();
  }

  /** Distinct terms in which a leader was seen. */
  elections(): number {
    return this.checker.leaders().size;
  }

  messageStats(): MessageStats {
    const byType: Record<string, MessageTypeStats> = {};
    for (const [k, v] of Object.entries(this.stats.byType)) byType[k] = { count: v.count, bytes: v.bytes };
    return { count: this.stats.count, bytes: this.stats.bytes, byType };
  }

  trace(): readonly string[];
  trace(text: string): void;
  /** Without argument: the kept trace lines. With one: appends a line at the current time. */
  trace(text?: string): readonly string[] | void {
    if (text === undefined) return this.traceLog.all();
    this.traceLog.add(this.nowMs, text);
  }

  /** sha256 of every trace line so far. */
  traceHash(): string {
    return this.traceLog.digest();
  }

  traceLineCount(): number {
    return this.traceLog.lineCount;
  }

  /** Last `n` trace lines. */
  timeline(n: number): readonly string[] {
    return this.traceLog.last(n);
  }

  /** The checker, for callers that report their own violations (liveness) with the same context. */
  invariants(): InvariantChecker {
    return this.checker;
  }

  /**
   * Checks every invariant for every node now: roles (Election Safety, Leader Completeness), commit
   * indexes, and Log Matching pairwise over all durable logs. The per-step checks are the same,
   * restricted to the node that stepped.
   */
  checkInvariants(): void {
    for (const n of this.nodes) if (n.core !== null) this.observe(n);
    this.checker.checkLogMatching(new Map(this.nodes.map((n) => [n.id, n.durable.log] as const)));
  }

  // ===== the driver loop =====

  private node(id: NodeId): SimNode {
    const n = this.byId.get(id);
    if (n === undefined) throw new RangeError(`unknown node ${id} (nodes: ${this.ids.join(', ')})`);
    return n;
  }

  private tickIntervalMs(n: SimNode): number {
    return this.tickMs / n.clockRate;
  }

  private boot(n: SimNode): void {
    n.epoch++;
    const restored = { hardState: n.durable.hardState, entries: n.durable.log.slice() };
    const config: RaftConfig = { ...this.baseConfig, id: n.id, randomSeed: deriveSeed(this.seed, 1, n.index, n.incarnation) };
    try {
      n.core = new RaftNode(config, restored);
    } catch (e) {
      this.coreThrew(n, 'constructor', e);
    }
    n.inflight = null;
    n.appliedThisLife = 0;
    if (n.incarnation > 0) {
      this.trace(
        `RESTART ${n.id} from synced ${formatHardState(restored.hardState)} lastIndex=${restored.entries.length}`,
      );
      // Rebuild the state machine by replaying the durable log up to the durable commit index.
      for (let i = 1; i <= Math.min(restored.hardState.commit, restored.entries.length); i++) {
        this.applyToStateMachine(n, restored.entries[i - 1] as Entry, restored.hardState.term, false);
      }
      this.checker.observeRestart(n.id, restored.hardState.commit, n.core.status().commit);
    }
    // Desynchronize the nodes' clocks: the first tick comes after a random part of an interval.
    this.queue.push(this.nowMs + this.clockRng.float() * this.tickIntervalMs(n), { kind: 'tick', node: n, epoch: n.epoch });
    this.afterInput(n);
  }

  private step(): void {
    const item = this.queue.pop();
    if (item === null) return;
    this.nowMs = item.timeMs;
    this.steps++;
    const ev = item.event;
    switch (ev.kind) {
      case 'tick': {
        const n = ev.node;
        if (ev.epoch !== n.epoch || n.core === null) return;
        try {
          n.core.tick();
        } catch (e) {
          this.coreThrew(n, 'tick', e);
        }
        this.queue.push(this.nowMs + this.tickIntervalMs(n), { kind: 'tick', node: n, epoch: n.epoch });
        this.afterInput(n);
        return;
      }
      case 'persist': {
        const n = ev.node;
        if (ev.epoch !== n.epoch || n.core === null) return;
        this.persistAndRun(n);
        return;
      }
      case 'deliver':
        this.deliver(ev.message, ev.copy);
        return;
      case 'call':
        ev.fn();
        return;
    }
  }

  private deliver(m: Message, copy: number): void {
    const tag = `${m.from}→${m.to}${copy > 0 ? ' (dup)' : ''}`;
    const n = this.byId.get(m.to);
    if (n === undefined) return;
    if (!this.network.canTalk(m.from, m.to)) {
      this.trace(`${tag} CUT ${formatMessage(m)}`);
      return;
    }
    if (n.core === null) {
      this.trace(`${tag} DOWN ${formatMessage(m)}`);
      return;
    }
    this.trace(`${tag} ${formatMessage(m)}`);
    try {
      n.core.step(m);
    } catch (e) {
      this.coreThrew(n, `step(${m.type})`, e);
    }
    this.afterInput(n);
  }

  /** After any input: check the node's invariants, then hand its next Ready to the disk if it is idle. */
  private afterInput(n: SimNode): void {
    this.observe(n);
    const core = n.core;
    if (core === null || n.inflight !== null || !core.hasReady()) return;
    let rd: Ready;
    try {
      rd = core.ready();
    } catch (e) {
      this.coreThrew(n, 'ready', e);
    }
    n.inflight = rd;
    const needsSync = rd.hardState !== null || rd.entries.length > 0;
    const delayMs = needsSync ? this.diskRng.between(this.fsyncDelayMs) : 0;
    this.queue.push(this.nowMs + delayMs, { kind: 'persist', node: n, epoch: n.epoch });
  }

  /** Role, term and commit of a node that just stepped: Election Safety, Leader Completeness, commit monotonic. */
  private observe(n: SimNode): void {
    const core = n.core;
    if (core === null) return;
    const s = core.status();
    if (s.role !== n.lastRole || s.term !== n.lastTerm || s.leader !== n.lastLeader) {
      if (s.role !== n.lastRole || s.term !== n.lastTerm) this.trace(`${n.id} is ${s.role} term=${s.term}${s.leader ? ` leader=${s.leader}` : ''}`);
      else this.trace(`${n.id} learns leader=${s.leader ?? '-'} term=${s.term}`);
      n.lastRole = s.role;
      n.lastTerm = s.term;
      n.lastLeader = s.leader;
    }
    this.checker.observeRole(n.id, s.role, s.term);
    this.checker.observeCommit(n.id, s.commit);
    if (s.role === 'leader' && s.commit > n.lastCommit) {
      this.checker.observeLeaderCommit(n.id, s.term, n.lastCommit, s.commit, n.durable.log[s.commit - 1]);
    }
    n.lastCommit = s.commit;
  }

  /** The in-flight Ready reached the disk: persist, send, apply, answer reads, advance. */
  private persistAndRun(n: SimNode): void {
    const core = n.core as RaftNode;
    const rd = n.inflight;
    if (rd === null) return;
    n.inflight = null;

    // 1. Persist hard state and entries atomically (a conflicting suffix is replaced).
    const log = n.durable.log;
    let changedFrom = Number.POSITIVE_INFINITY;
    if (rd.hardState !== null) n.durable.hardState = rd.hardState;
    const first = rd.entries[0];
    if (first !== undefined) {
      if (first.index < 1 || first.index > log.length + 1) {
        this.checker.fail('driver-contract', `${n.id}'s Ready appends at index ${first.index} but its log ends at ${log.length}`);
      }
      rd.entries.forEach((e, k) => {
        if (e.index !== first.index + k) this.checker.fail('driver-contract', `${n.id}'s Ready has non-contiguous entries ${formatEntries(rd.entries)}`);
      });
      log.length = first.index - 1;
      for (const e of rd.entries) log.push(e);
      changedFrom = first.index;
    }
    if (rd.hardState !== null || first !== undefined) {
      this.trace(
        `${n.id} persist${rd.hardState ? ` ${formatHardState(rd.hardState)}` : ''}${first ? ` entries ${formatEntries(rd.entries)}` : ''}`,
      );
      this.checker.observeDurable(n.id, log, changedFrom, n.durable.hardState);
    }

    // 2. Only now send the messages (durability before acknowledgement).
    for (const m of rd.messages) this.send(n, m);

    // 3. Apply committed entries (already durable locally, in order).
    const term = core.status().term;
    for (const e of rd.committedEntries) {
      const durable = log[e.index - 1];
      if (durable === undefined || !sameEntry(durable, e)) {
        this.checker.fail('driver-contract', `${n.id} was asked to apply ${describeEntry(e)}, which is not in its durable log`);
      }
      if (n.appliedThisLife > 0 && e.index !== n.appliedThisLife + 1) {
        this.checker.fail('driver-contract', `${n.id} was asked to apply index ${e.index} right after ${n.appliedThisLife}`);
      }
      n.appliedThisLife = e.index;
      this.applyToStateMachine(n, e, term, true);
    }
    if (rd.committedEntries.length > 0) this.trace(`${n.id} apply ${formatEntries(rd.committedEntries)}`);

    // 4. Reads.
    for (const r of rd.readStates) {
      this.recordRead({ ok: true, node: n.id, requestId: r.requestId, index: r.index, timeMs: this.nowMs });
      this.checker.observeReadIndex(n.id, r.requestId, r.index);
    }
    for (const f of rd.failedReads) {
      this.recordRead({ ok: false, node: n.id, requestId: f.requestId, code: f.code, timeMs: this.nowMs });
      this.checker.forgetRead(n.id, f.requestId);
    }

    // 5. Advance, then take the next Ready.
    try {
      core.advance(rd);
    } catch (e) {
      this.coreThrew(n, 'advance', e);
    }
    this.afterInput(n);
    // A crash point: the hook may crash this node right after its Ready was synced and sent.
    this.persistHook?.(n.id, rd);
  }

  private applyToStateMachine(n: SimNode, e: Entry, term: number, fromCore: boolean): void {
    const sm = n.applied;
    if (e.index <= sm.length) {
      const had = sm[e.index - 1] as Entry;
      if (!sameEntry(had, e)) {
        this.checker.fail('state-machine-safety', `${n.id} applied ${describeEntry(had)} before and now ${describeEntry(e)} at the same index`);
      }
    } else if (e.index === sm.length + 1) {
      sm.push(e);
      this.checker.observeApply(n.id, e, term);
    } else {
      this.checker.fail('driver-contract', `${n.id} was asked to apply index ${e.index} but has applied only ${sm.length}`);
    }
    if (!fromCore) return;
    const p = n.proposals.get(e.index);
    if (p === undefined) return;
    n.proposals.delete(e.index);
    if (e.term === p.term) {
      this.checker.recordAck({ node: n.id, index: e.index, term: e.term, data: p.data, timeMs: this.nowMs });
      this.trace(`${n.id} ack (${e.index},${e.term})`);
    } else {
      this.trace(`${n.id} proposal (${e.index},${p.term}) dropped: applied ${describeEntry(e)}`);
    }
  }

  private send(n: SimNode, m: Message): void {
    if (m.from !== n.id) this.checker.fail('driver-contract', `${n.id} sent a message from ${m.from}`);
    const bytes = pack(m).length;
    this.stats.count++;
    this.stats.bytes += bytes;
    const t = (this.stats.byType[m.type] ??= { count: 0, bytes: 0 });
    t.count++;
    t.bytes += bytes;
    if (!this.byId.has(m.to) || m.to === n.id) {
      this.checker.fail('driver-contract', `${n.id} sent ${m.type} to ${m.to}`);
    }
    if (!this.network.canTalk(m.from, m.to)) {
      this.trace(`${m.from}→${m.to} CUT ${formatMessage(m)}`);
      return;
    }
    const delays = this.network.plan(m.from, m.to, this.netRng);
    if (delays.length === 0) this.trace(`${m.from}→${m.to} LOST ${formatMessage(m)}`);
    delays.forEach((d, copy) => this.queue.push(this.nowMs + d, { kind: 'deliver', message: m, copy }));
  }

  private recordRead(r: ReadResult): void {
    this.reads.push(r);
    if (this.reads.length > MAX_READ_RESULTS) this.reads.splice(0, this.reads.length - MAX_READ_RESULTS);
    this.trace(r.ok ? `${r.node} read ${r.requestId} index=${r.index}` : `${r.node} read ${r.requestId} failed ${r.code}`);
  }

  private coreThrew(n: SimNode, where: string, e: unknown): never {
    const text = e instanceof Error ? `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(e);
    this.checker.fail('core-exception', `${n.id}.${where} threw ${text}`);
  }
}

export type { AcknowledgedProposal } from './invariants.js';
export type { UnreliableOptions } from './network.js';
