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
//
// Snapshots (issue 3; §7 of the paper, thesis §5). With a compaction policy, after advancing a
// Ready a node whose applied index ran `everyEntries` past its last snapshot saves a snapshot of
// its state machine (the applied entries up to there: the simulated state machine's image) and
// asks its core to compact, keeping `trailingEntries` for slow followers. When a leader's core
// emits InstallSnapshot (metadata only), the leader's driver streams the image to the follower
// as simulated chunks over the same faulty network, a window of chunks at a time, each
// acknowledged (go-back-N flow control); a stream that hears nothing for a while fails
// (reportSnapshot 'failed', and the core retries later), a completed one reports 'ok'. The
// receiver keeps the chunks in a temporary area (lost on crash; a new stream of the same
// snapshot resumes where it stopped) and, with the whole image, steps the InstallSnapshot into
// its core; only when the core answers with Ready.snapshot is the image switched in, atomically
// with that Ready's persist: state machine, durable snapshot and log reset at once. A crash
// before that leaves the node on its old state. After a restart the state machine is rebuilt
// from the durable snapshot and the durable log up to the durable commit index.
//
// Membership (issue 3; thesis §4). Nodes n{nodes+1}.. (spareNodes) exist but are not started:
// startNode() boots one as a joining node (RaftConfig.joining: not a member until a leader adds
// it). proposeConfChange() and transferLeadership() go to a node's core like propose(). A
// decommissioned node (removed, then shut down for good) is never restarted by healing.

import { pack } from 'msgpackr';
import { RaftNode } from '../core/raft.js';
import { RaftError, isRaftError } from '../core/errors.js';
import { describeConfig, encodeConfChange } from '../core/membership.js';
import type {
  ClusterConfig,
  ConfChange,
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
  InstallSnapshot,
  SnapshotMeta,
} from '../core/types.js';
import { EMPTY_HARD_STATE } from '../core/types.js';
import { EventQueue } from './events.js';
import { InvariantChecker, describeEntry, sameEntry, type AcknowledgedProposal, type LogBase } from './invariants.js';
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
  /**
   * Extra node ids after the bootstrap ones (n{nodes+1}, ...), not started: startNode() boots one
   * as a joining node that a leader can then add (thesis §4.2.1). Default 0.
   */
  readonly spareNodes?: number;
  /** Log compaction policy; undefined or null: never compact (the behaviour before issue 3). */
  readonly compaction?: CompactionPolicy | null;
  /** Bytes per simulated snapshot chunk. Default 1024. */
  readonly snapshotChunkBytes?: number;
  /** Chunks of one snapshot stream in flight at once (flow control). Default 4. */
  readonly snapshotWindowChunks?: number;
  /** A snapshot stream whose sender hears nothing for this long fails (reportSnapshot 'failed'). Default 150. */
  readonly snapshotStreamTimeoutMs?: number;
}

/** When a node snapshots its state machine and compacts its log (§7). */
export interface CompactionPolicy {
  /** Snapshot once the applied index is this many entries past the last snapshot (>= 1). */
  readonly everyEntries: number;
  /** Entries kept before the snapshot index for slow followers (the trailing window, >= 0). */
  readonly trailingEntries: number;
}

/** A snapshot a node holds durably: the meta its core knows, and the state machine's image. */
export interface SimSnapshot {
  readonly meta: SnapshotMeta;
  /** The state machine at meta.index: the entries applied up to there, entry i at image[i - 1]. */
  readonly image: readonly Entry[];
  /** Simulated size, for chunking: each entry's data plus a 16-byte header. */
  readonly bytes: number;
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
  /** Booted at least once (bootstrap nodes at construction, spares by startNode()). */
  started: boolean;
  /** Removed and shut down for good: never restarted by healing. */
  decommissioned: boolean;
  /** Boots with RaftConfig.joining (a spare, not in the bootstrap configuration). */
  readonly joining: boolean;
  /** null while crashed. */
  core: RaftNode | null;
  /** Bumped at every crash and restart: events of an earlier life are ignored. */
  epoch: number;
  /** How many times the node was restarted (part of its core's seed). */
  incarnation: number;
  /**
   * What survives a crash: the synced hard state, snapshot and log. log[k] holds index
   * base.index + 1 + k (base: the last discarded entry, or the installed snapshot; {0, 0} before any).
   */
  readonly durable: { hardState: HardState; readonly log: Entry[]; base: LogBase; snapshot: SimSnapshot | null };
  /** The Ready being persisted (lost on crash). */
  inflight: Ready | null;
  /** The state machine: every entry applied, in index order (noops included); rebuilt at restart. */
  applied: Entry[];
  /**
   * Snapshots received whole from a leader, by "index:term", kept until a Ready.snapshot names one
   * (lost on crash). At most MAX_RECEIVED_SNAPSHOTS: the oldest is dropped first.
   */
  readonly receivedSnapshots: Map<string, SimSnapshot>;
  /** The temporary area of the snapshot being received (lost on crash). */
  inbound: { readonly key: string; readonly total: number; received: number; steppedStream: number } | null;
  /** Configuration last seen at this node (for the trace and for status() while down). */
  lastConfigKey: string;
  lastConfig: ClusterConfig;
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

/** A snapshot being streamed by a leader's driver to one follower (see the header). */
interface SnapshotStream {
  readonly id: number;
  readonly key: string;
  readonly from: SimNode;
  readonly to: NodeId;
  /** The sender's life the stream belongs to. */
  readonly epoch: number;
  readonly message: InstallSnapshot;
  readonly snapshot: SimSnapshot;
  readonly total: number;
  /** Chunks the receiver has acknowledged (in order). */
  acked: number;
  /** Next chunk to send. */
  next: number;
  /** The `acked` value at which the sender last went back to resend (-1: never): once per value. */
  wentBackAt: number;
  deadlineMs: number;
}

type SimEvent =
  | { readonly kind: 'tick'; readonly node: SimNode; readonly epoch: number }
  | { readonly kind: 'persist'; readonly node: SimNode; readonly epoch: number }
  | { readonly kind: 'deliver'; readonly message: Message; readonly copy: number }
  | { readonly kind: 'call'; readonly fn: () => void }
  | { readonly kind: 'chunk'; readonly stream: SnapshotStream; readonly seq: number; readonly copy: number }
  | { readonly kind: 'chunk-ack'; readonly stream: SnapshotStream; readonly received: number; readonly copy: number }
  | { readonly kind: 'stream-timeout'; readonly stream: SnapshotStream };

function core(n: SimNode): RaftNode {
  if (n.core === null) throw new Error(`${n.id} is down`);
  return n.core;
}

function configKey(c: ClusterConfig): string {
  return `${c.voters.join(',')}|${c.learners.join(',')}`;
}

function snapshotBytes(image: readonly Entry[]): number {
  let bytes = 0;
  for (const e of image) bytes += e.data.length + 16;
  return bytes;
}

/** Bound on whole snapshots a node keeps while waiting for its core's Ready.snapshot (oldest dropped first). */
const MAX_RECEIVED_SNAPSHOTS = 4;

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
  /** The bootstrap voters (n1..n{nodes}). */
  readonly bootstrapIds: readonly NodeId[];
  private readonly compaction: CompactionPolicy | null;
  private readonly snapshotChunkBytes: number;
  private readonly snapshotWindowChunks: number;
  private readonly snapshotStreamTimeoutMs: number;
  private readonly streams = new Map<string, SnapshotStream>();
  private nextStreamId = 1;

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
    const spares = opts.spareNodes ?? 0;
    if (!Number.isInteger(spares) || spares < 0 || opts.nodes + spares > 99) throw new RangeError(`spareNodes must be 0..${99 - opts.nodes}, got ${spares}`);
    this.ids = Array.from({ length: opts.nodes + spares }, (_, i) => `n${i + 1}`);
    this.bootstrapIds = this.ids.slice(0, opts.nodes);
    const policy = opts.compaction ?? null;
    if (policy !== null && !(Number.isInteger(policy.everyEntries) && policy.everyEntries >= 1 && Number.isInteger(policy.trailingEntries) && policy.trailingEntries >= 0)) {
      throw new RangeError(`compaction: everyEntries must be >= 1 and trailingEntries >= 0, got ${JSON.stringify(policy)}`);
    }
    this.compaction = policy;
    this.snapshotChunkBytes = opts.snapshotChunkBytes ?? 1024;
    this.snapshotWindowChunks = opts.snapshotWindowChunks ?? 4;
    this.snapshotStreamTimeoutMs = opts.snapshotStreamTimeoutMs ?? 150;
    if (!(this.snapshotChunkBytes >= 1) || !(this.snapshotWindowChunks >= 1) || !(this.snapshotStreamTimeoutMs > 0)) {
      throw new RangeError('snapshotChunkBytes and snapshotWindowChunks must be >= 1, snapshotStreamTimeoutMs > 0');
    }
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
      peers: this.bootstrapIds,
      electionTicks: this.electionTicks,
      heartbeatTicks: this.heartbeatTicks,
      ...(opts.preVote !== undefined ? { preVote: opts.preVote } : {}),
      ...(opts.checkQuorum !== undefined ? { checkQuorum: opts.checkQuorum } : {}),
      ...(opts.readMode !== undefined ? { readMode: opts.readMode } : {}),
      ...opts.raft,
    };
    const bootstrapConfig: ClusterConfig = { voters: this.bootstrapIds, learners: [] };
    this.nodes = this.ids.map((id, index) => ({
      id,
      index,
      started: index < opts.nodes,
      decommissioned: false,
      joining: index >= opts.nodes,
      core: null,
      epoch: 0,
      incarnation: 0,
      durable: { hardState: EMPTY_HARD_STATE, log: [], base: { index: 0, term: 0 }, snapshot: null },
      inflight: null,
      applied: [],
      receivedSnapshots: new Map(),
      inbound: null,
      lastConfigKey: configKey(bootstrapConfig),
      lastConfig: bootstrapConfig,
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
        (opts.raft && Object.keys(opts.raft).length > 0 ? ` ${JSON.stringify(opts.raft)}` : '') +
        (spares > 0 ? `, spare nodes ${this.ids.slice(opts.nodes).join(',')}` : '') +
        (policy !== null ? `, compaction every ${policy.everyEntries} entries keeping ${policy.trailingEntries}, chunks of ${this.snapshotChunkBytes}B` : ''),
    );
    for (const n of this.nodes) if (n.started) this.boot(n);
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
    // The temporary snapshot area and a snapshot not yet switched in are lost; streams it was sending stop.
    n.inbound = null;
    n.receivedSnapshots.clear();
    for (const [key, st] of this.streams) if (st.from === n) this.streams.delete(key);
    n.lastRole = null;
    n.lastLeader = null;
    n.lastCommit = 0;
    this.checker.observeCrash(id);
    const lostParts: string[] = [];
    if (lost?.snapshot) lostParts.push(`snapshot (${lost.snapshot.index},${lost.snapshot.term})`);
    if (lost?.hardState) lostParts.push(`hardState ${formatHardState(lost.hardState)}`);
    if (lost && lost.entries.length > 0) lostParts.push(`entries ${formatEntries(lost.entries)}`);
    if (lost && lost.messages.length > 0) lostParts.push(`${lost.messages.length} unsent messages`);
    this.trace(`CRASH ${id}${lostParts.length > 0 ? ` (lost unsynced: ${lostParts.join(', ')})` : ''}`);
    if (this.amnesia) {
      n.durable.hardState = EMPTY_HARD_STATE;
      n.durable.log.length = 0;
      n.durable.base = { index: 0, term: 0 };
      n.durable.snapshot = null;
      this.trace(`AMNESIA ${id}: synced state wiped (unsafe test mode)`);
    }
  }

  /**
   * Starts the node again from its synced state, with a fresh core seed. Like 6.5840's start1, a
   * node that is up is crashed first.
   */
  restart(id: NodeId): void {
    const n = this.node(id);
    if (!n.started) {
      this.startNode(id);
      return;
    }
    if (n.core !== null) this.crash(id);
    n.incarnation++;
    this.boot(n);
  }

  /** Boots a spare node for the first time, as a joining node (not a member until a leader adds it). */
  startNode(id: NodeId): void {
    const n = this.node(id);
    if (n.started) throw new RangeError(`${id} was already started`);
    n.started = true;
    this.trace(`START ${id} (joining: waits to be added)`);
    this.boot(n);
  }

  /** Was the node ever started (bootstrap nodes always are; spares once startNode() ran)? */
  isStarted(id: NodeId): boolean {
    return this.node(id).started;
  }

  /** Shuts a node down for good (e.g. once its removal committed): crashed, and never restarted by healing. */
  decommission(id: NodeId): void {
    const n = this.node(id);
    if (n.core !== null) this.crash(id);
    n.decommissioned = true;
    this.trace(`DECOMMISSION ${id}`);
  }

  isDecommissioned(id: NodeId): boolean {
    return this.node(id).decommissioned;
  }

  /** Started and not decommissioned, in id order: the nodes faults and clients pick from. */
  activeIds(): NodeId[] {
    return this.nodes.filter((n) => n.started && !n.decommissioned).map((n) => n.id);
  }

  /**
   * The configuration as the most authoritative up node sees it: the up leader of the highest
   * term, else the up node with the highest term (ties: the longer log). Null if all are down.
   */
  currentConfig(): ClusterConfig | null {
    let best: RaftStatus | null = null;
    for (const n of this.nodes) {
      if (n.core === null) continue;
      const s = n.core.status();
      if (best === null || (s.role === 'leader' && best.role !== 'leader')) best = s;
      else if ((s.role === 'leader') === (best.role === 'leader') && (s.term > best.term || (s.term === best.term && s.lastIndex > best.lastIndex))) best = s;
    }
    return best?.config ?? null;
  }

  /** The node's durable snapshot (null: none). */
  snapshot(id: NodeId): SimSnapshot | null {
    return this.node(id).durable.snapshot;
  }

  /** Index of the first entry of the node's durable log (1 without compaction). */
  durableFirstIndex(id: NodeId): number {
    return this.node(id).durable.base.index + 1;
  }

  /** Snapshot streams in flight (sender→receiver). */
  snapshotStreams(): string[] {
    return [...this.streams.keys()];
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
      lastIndex: last?.index ?? n.durable.base.index,
      lastTerm: last?.term ?? n.durable.base.term,
      progress: {},
      // A node that is down: the configuration it last had while up.
      config: n.lastConfig,
      configIndex: 0,
      snapshotIndex: n.durable.snapshot?.meta.index ?? 0,
      firstIndex: n.durable.base.index + 1,
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
    // (A node that installed a snapshot has the snapshot's entries in its state machine's image.)
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

  /**
   * Proposes a membership change on the node's core (thesis §4.1). Like propose(): a RaftError is
   * returned, not thrown; the change is acknowledged (acknowledged()) once applied at the node
   * with the proposal's term.
   */
  proposeConfChange(id: NodeId, change: ConfChange): ProposeResult | RaftError {
    const n = this.node(id);
    if (n.core === null) return new RaftError('STOPPED', `${id} is down`);
    let result: ProposeResult;
    try {
      result = n.core.proposeConfChange(change);
    } catch (e) {
      if (isRaftError(e)) {
        this.trace(`${id} conf change ${change.type} ${change.node} refused: ${e.code}`);
        return e;
      }
      this.coreThrew(n, 'proposeConfChange', e);
    }
    n.proposals.set(result.firstIndex, { term: result.term, data: encodeConfChange(change) });
    this.trace(`${id} propose config ${change.type} ${change.node} at (${result.firstIndex},${result.term})`);
    this.afterInput(n);
    return result;
  }

  /** Asks leader `id` to hand leadership to `to` (thesis §3.10). Returns null, or the RaftError. */
  transferLeadership(id: NodeId, to: NodeId): RaftError | null {
    const n = this.node(id);
    if (n.core === null) return new RaftError('STOPPED', `${id} is down`);
    try {
      n.core.transferLeadership(to);
    } catch (e) {
      if (isRaftError(e)) {
        this.trace(`${id} transfer to ${to} refused: ${e.code}`);
        return e;
      }
      this.coreThrew(n, 'transferLeadership', e);
    }
    this.trace(`${id} transfer leadership to ${to}`);
    this.afterInput(n);
    return null;
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
    this.checker.checkLogMatching(
      new Map(this.nodes.map((n) => [n.id, { firstIndex: n.durable.base.index + 1, entries: n.durable.log }] as const)),
    );
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
    const d = n.durable;
    const restored = {
      hardState: d.hardState,
      entries: d.log.slice(),
      ...(d.snapshot !== null ? { snapshot: d.snapshot.meta } : {}),
    };
    const config: RaftConfig = {
      ...this.baseConfig,
      ...(n.joining ? { joining: true } : {}),
      id: n.id,
      randomSeed: deriveSeed(this.seed, 1, n.index, n.incarnation),
    };
    try {
      n.core = new RaftNode(config, restored);
    } catch (e) {
      this.coreThrew(n, 'constructor', e);
    }
    n.inflight = null;
    n.appliedThisLife = 0;
    if (n.incarnation > 0) {
      const lastIndex = d.base.index + d.log.length;
      this.trace(
        `RESTART ${n.id} from synced ${formatHardState(restored.hardState)} lastIndex=${lastIndex}` +
          (d.snapshot !== null ? ` snapshot=(${d.snapshot.meta.index},${d.snapshot.meta.term}) firstIndex=${d.base.index + 1}` : ''),
      );
      // Rebuild the state machine: from the durable snapshot, then the durable log up to the
      // durable commit index. It must reach at least what it had applied before the crash.
      n.applied = d.snapshot !== null ? d.snapshot.image.slice() : [];
      const upTo = Math.min(restored.hardState.commit, lastIndex);
      for (let i = n.applied.length + 1; i <= upTo; i++) {
        this.applyToStateMachine(n, d.log[i - d.base.index - 1] as Entry, restored.hardState.term, false);
      }
      this.checker.observeAppliedIndex(n.id, n.applied.length, 'restart');
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
      case 'chunk':
        this.deliverChunk(ev.stream, ev.seq, ev.copy);
        return;
      case 'chunk-ack':
        this.deliverChunkAck(ev.stream, ev.received, ev.copy);
        return;
      case 'stream-timeout':
        this.streamTimeout(ev.stream);
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
    // Election quorum: the checker tallies the grants each candidate received.
    if (m.type === 'RequestVoteResponse' && !m.preVote && m.granted) this.checker.observeVoteGranted(m.to, m.from, m.term);
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
    // (The core hands out the same object while its configuration is unchanged: compare cheaply first.)
    if (s.config !== n.lastConfig) {
      const key = configKey(s.config);
      if (key !== n.lastConfigKey) {
        this.trace(`${n.id} config ${describeConfig(s.config)}${s.configIndex > 0 ? ` (entry ${s.configIndex})` : ''}`);
        n.lastConfigKey = key;
      }
      n.lastConfig = s.config;
    }
    this.checker.observeRole(n.id, s.role, s.term, s.config, s.commit);
    this.checker.observeOrphanLeader(
      n.id,
      s.term,
      s.role === 'leader' && !s.config.voters.includes(n.id) && s.configIndex <= s.commit,
      2 * this.electionTicks * this.tickMs,
    );
    this.checker.observeCommit(n.id, s.commit);
    if (s.role === 'leader' && s.commit > n.lastCommit) {
      this.checker.observeLeaderCommit(n.id, s.term, n.lastCommit, s.commit, this.durableEntry(n, s.commit), s.config);
    }
    n.lastCommit = s.commit;
  }

  /** The in-flight Ready reached the disk: persist, send, apply, answer reads, advance. */
  private persistAndRun(n: SimNode): void {
    const core = n.core as RaftNode;
    const rd = n.inflight;
    if (rd === null) return;
    n.inflight = null;

    // 0. A snapshot from the leader: switch it in atomically with the rest of this Ready.
    if (rd.snapshot !== null) this.switchInSnapshot(n, rd.snapshot);

    // 1. Persist hard state and entries atomically (a conflicting suffix is replaced).
    const log = n.durable.log;
    const base = n.durable.base;
    let changedFrom = Number.POSITIVE_INFINITY;
    if (rd.hardState !== null) n.durable.hardState = rd.hardState;
    const first = rd.entries[0];
    if (first !== undefined) {
      if (first.index <= base.index || first.index > base.index + log.length + 1) {
        this.checker.fail(
          'driver-contract',
          `${n.id}'s Ready appends at index ${first.index} but its durable log holds [${base.index + 1}..${base.index + log.length}]`,
        );
      }
      rd.entries.forEach((e, k) => {
        if (e.index !== first.index + k) this.checker.fail('driver-contract', `${n.id}'s Ready has non-contiguous entries ${formatEntries(rd.entries)}`);
      });
      log.length = first.index - base.index - 1;
      for (const e of rd.entries) log.push(e);
      changedFrom = first.index;
    }
    if (rd.hardState !== null || first !== undefined || rd.snapshot !== null) {
      if (rd.hardState !== null || first !== undefined) {
        this.trace(
          `${n.id} persist${rd.hardState ? ` ${formatHardState(rd.hardState)}` : ''}${first ? ` entries ${formatEntries(rd.entries)}` : ''}`,
        );
      }
      this.checker.observeDurable(n.id, log, changedFrom, n.durable.hardState, n.durable.base);
    }

    // 2. Only now send the messages (durability before acknowledgement). An InstallSnapshot
    // carries metadata only: the driver streams the snapshot's data along (see startStream).
    for (const m of rd.messages) {
      if (m.type === 'InstallSnapshot') this.startStream(n, m);
      else this.send(n, m);
    }

    // 3. Apply committed entries (already durable locally, in order).
    const term = core.status().term;
    for (const e of rd.committedEntries) {
      const durable = this.durableEntry(n, e.index);
      if (durable === undefined || !sameEntry(durable, e)) {
        this.checker.fail('driver-contract', `${n.id} was asked to apply ${describeEntry(e)}, which is not in its durable log`);
      }
      if (n.appliedThisLife > 0 && e.index !== n.appliedThisLife + 1) {
        this.checker.fail('driver-contract', `${n.id} was asked to apply index ${e.index} right after ${n.appliedThisLife}`);
      }
      n.appliedThisLife = e.index;
      this.applyToStateMachine(n, e, term, true);
    }
    if (rd.committedEntries.length > 0) {
      this.trace(`${n.id} apply ${formatEntries(rd.committedEntries)}`);
      this.checker.observeAppliedIndex(n.id, n.applied.length, 'apply');
    }

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
    this.maybeCompact(n, core);
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

  /** The entry at `index` in the node's durable log, if it still holds it. */
  private durableEntry(n: SimNode, index: number): Entry | undefined {
    return n.durable.log[index - n.durable.base.index - 1];
  }

  /**
   * Ready.snapshot (core/types.ts, step 0): switch in the snapshot received for meta, atomically:
   * the state machine becomes its image, it becomes the durable snapshot, the log is emptied.
   */
  private switchInSnapshot(n: SimNode, meta: SnapshotMeta): void {
    const got = n.receivedSnapshots.get(`${meta.index}:${meta.term}`);
    if (got === undefined) {
      this.checker.fail(
        'driver-contract',
        `${n.id}'s Ready asks to switch in snapshot (${meta.index},${meta.term}) but the driver received ` +
          (n.receivedSnapshots.size === 0 ? 'none' : [...n.receivedSnapshots.keys()].map((k) => `(${k.replace(':', ',')})`).join(' ')),
      );
    }
    // Received snapshots at or below this one will not be asked for any more.
    for (const [key, r] of n.receivedSnapshots) if (r.meta.index <= meta.index) n.receivedSnapshots.delete(key);
    const before = n.applied.length;
    // The state machine: the image must agree with what was applied here (State Machine Safety),
    // and must not be older than it (checked by observeAppliedIndex).
    const common = Math.min(before, got.image.length);
    for (let i = 1; i <= common; i++) {
      const had = n.applied[i - 1] as Entry;
      const img = got.image[i - 1] as Entry;
      if (!sameEntry(had, img)) {
        this.checker.fail('state-machine-safety', `${n.id} applied ${describeEntry(had)} but the snapshot it installs has ${describeEntry(img)}`);
      }
    }
    this.checker.observeAppliedIndex(n.id, meta.index, 'snapshot');
    const term = n.core?.status().term ?? 0;
    for (let i = before + 1; i <= got.image.length; i++) this.checker.observeApply(n.id, got.image[i - 1] as Entry, term);
    n.applied = got.image.slice();
    n.appliedThisLife = meta.index;
    n.durable.snapshot = got;
    n.durable.log.length = 0;
    n.durable.base = { index: meta.index, term: meta.term };
    this.trace(`${n.id} install snapshot (${meta.index},${meta.term}) ${describeConfig(meta.config)}: state machine restored, log reset`);
  }

  /** The compaction policy: snapshot the state machine at the applied index, then compact (§7). */
  private maybeCompact(n: SimNode, core: RaftNode): void {
    const policy = this.compaction;
    if (policy === null || n.core !== core) return;
    const status = core.status();
    const applied = status.applied;
    const d = n.durable;
    if (applied - (d.snapshot?.meta.index ?? 0) < policy.everyEntries) return;
    // A snapshot from the leader is being installed (the core took it; its Ready.snapshot is not
    // switched in yet): nothing of ours to snapshot until it is.
    if (status.snapshotIndex >= applied) return;
    if (n.applied.length < applied) {
      this.checker.fail('driver-contract', `${n.id}'s core has applied ${applied} but its state machine only ${n.applied.length}`);
    }
    const discardUpTo = Math.max(0, applied - policy.trailingEntries);
    let snap: SimSnapshot;
    try {
      const meta = core.snapshotMetaAt(applied);
      const image = n.applied.slice(0, applied);
      // The snapshot is durable before the core may forget the entries it covers.
      snap = { meta, image, bytes: snapshotBytes(image) };
      d.snapshot = snap;
      core.compact(applied, discardUpTo);
    } catch (e) {
      this.coreThrew(n, `compact(${applied}, ${discardUpTo})`, e);
    }
    if (discardUpTo > d.base.index) {
      const at = this.durableEntry(n, discardUpTo);
      if (at === undefined) this.checker.fail('driver-contract', `${n.id} compacts to ${discardUpTo}, beyond its durable log`);
      d.log.splice(0, discardUpTo - d.base.index);
      d.base = { index: discardUpTo, term: at.term };
    }
    this.checker.observeDurable(n.id, d.log, Number.POSITIVE_INFINITY, d.hardState, d.base);
    this.trace(
      `${n.id} snapshot (${snap.meta.index},${snap.meta.term}) ${snap.bytes}B; log now [${d.base.index + 1}..${d.base.index + d.log.length}]`,
    );
  }

  // ----- snapshot streaming (see the header) -----

  private startStream(n: SimNode, m: InstallSnapshot): void {
    const snap = n.durable.snapshot;
    if (snap !== null && snap.meta.index > m.meta.index) {
      // The core chose this snapshot before the driver replaced it with a newer one (the message
      // waited in a Ready): the data is gone, so the stream fails at once; the core sends the newer one.
      this.trace(`${m.from}→${m.to} ${formatMessage(m)} not streamed: replaced by snapshot (${snap.meta.index},${snap.meta.term})`);
      try {
        core(n).reportSnapshot(m.to, 'failed');
      } catch (e) {
        this.coreThrew(n, 'reportSnapshot', e);
      }
      return;
    }
    if (snap === null || snap.meta.index !== m.meta.index || snap.meta.term !== m.meta.term) {
      this.checker.fail(
        'driver-contract',
        `${n.id} sent InstallSnapshot (${m.meta.index},${m.meta.term}) but its durable snapshot is ` +
          (snap === null ? 'none' : `(${snap.meta.index},${snap.meta.term})`),
      );
    }
    const stats = (this.stats.byType[m.type] ??= { count: 0, bytes: 0 });
    const bytes = pack(m).length;
    stats.count++;
    stats.bytes += bytes;
    this.stats.count++;
    this.stats.bytes += bytes;
    const key = `${m.from}>${m.to}`;
    const old = this.streams.get(key);
    if (old !== undefined) this.trace(`${m.from}→${m.to} SNAPSHOT STREAM #${old.id} superseded`);
    const st: SnapshotStream = {
      id: this.nextStreamId++,
      key,
      from: n,
      to: m.to,
      epoch: n.epoch,
      message: m,
      snapshot: snap,
      total: Math.max(1, Math.ceil(snap.bytes / this.snapshotChunkBytes)),
      acked: 0,
      next: 0,
      wentBackAt: -1,
      deadlineMs: this.nowMs + this.snapshotStreamTimeoutMs,
    };
    this.streams.set(key, st);
    this.trace(`${m.from}→${m.to} SNAPSHOT STREAM #${st.id} ${formatMessage(m)}: ${snap.bytes}B in ${st.total} chunks`);
    this.queue.push(st.deadlineMs, { kind: 'stream-timeout', stream: st });
    this.pumpStream(st);
  }

  private streamLive(st: SnapshotStream): boolean {
    return this.streams.get(st.key) === st && st.from.epoch === st.epoch && st.from.core !== null;
  }

  /** Sends the chunks the window allows (go-back-N: the receiver keeps only in-order chunks). */
  private pumpStream(st: SnapshotStream): void {
    while (st.next < st.total && st.next < st.acked + this.snapshotWindowChunks) {
      const seq = st.next++;
      const bytes = Math.min(this.snapshotChunkBytes, st.snapshot.bytes - seq * this.snapshotChunkBytes);
      this.countSimMessage('SnapshotChunk', Math.max(0, bytes) + 32);
      this.plan(st.from.id, st.to, `SnapshotChunk #${st.id} ${seq + 1}/${st.total}`, (delay, copy) =>
        this.queue.push(this.nowMs + delay, { kind: 'chunk', stream: st, seq, copy }),
      );
    }
  }

  private countSimMessage(type: string, bytes: number): void {
    this.stats.count++;
    this.stats.bytes += bytes;
    const t = (this.stats.byType[type] ??= { count: 0, bytes: 0 });
    t.count++;
    t.bytes += bytes;
  }

  /** Puts one simulated message on the network (cut, lost, duplicated or delayed like any other). */
  private plan(from: NodeId, to: NodeId, what: string, deliver: (delayMs: number, copy: number) => void): void {
    if (!this.network.canTalk(from, to)) {
      this.trace(`${from}→${to} CUT ${what}`);
      return;
    }
    const delays = this.network.plan(from, to, this.netRng);
    if (delays.length === 0) this.trace(`${from}→${to} LOST ${what}`);
    delays.forEach((d, copy) => deliver(d, copy));
  }

  private deliverChunk(st: SnapshotStream, seq: number, copy: number): void {
    const tag = `${st.from.id}→${st.to}${copy > 0 ? ' (dup)' : ''}`;
    const what = `SnapshotChunk #${st.id} ${seq + 1}/${st.total}`;
    const n = this.node(st.to);
    if (!this.network.canTalk(st.from.id, st.to)) {
      this.trace(`${tag} CUT ${what}`);
      return;
    }
    if (n.core === null) {
      this.trace(`${tag} DOWN ${what}`);
      return;
    }
    const m = st.message;
    const key = `${m.from}:${m.meta.index}:${m.meta.term}`;
    // The temporary area holds one snapshot; chunks of another replace it.
    if (n.inbound === null || n.inbound.key !== key) n.inbound = { key, total: st.total, received: 0, steppedStream: 0 };
    const tmp = n.inbound;
    if (seq === tmp.received && tmp.received < tmp.total) {
      tmp.received++;
      this.trace(`${tag} ${what}`);
    }
    if (tmp.received === tmp.total && tmp.steppedStream !== st.id) {
      // The whole snapshot is here (and would be verified): hand the core this stream's
      // InstallSnapshot — once per stream, also when the data was already complete from an
      // earlier stream (whose message may have been stale by the time it arrived).
      tmp.steppedStream = st.id;
      n.receivedSnapshots.set(`${st.snapshot.meta.index}:${st.snapshot.meta.term}`, st.snapshot);
      for (const key of n.receivedSnapshots.keys()) {
        if (n.receivedSnapshots.size <= MAX_RECEIVED_SNAPSHOTS) break;
        n.receivedSnapshots.delete(key);
      }
      this.trace(`${tag} ${formatMessage(m)} (data complete)`);
      try {
        n.core.step(m);
      } catch (e) {
        this.coreThrew(n, `step(${m.type})`, e);
      }
      this.afterInput(n);
    }
    // Acknowledge what we hold in order (a duplicate or out-of-order chunk re-acknowledges).
    const received = tmp.received;
    this.countSimMessage('SnapshotChunkAck', 24);
    this.plan(st.to, st.from.id, `SnapshotChunkAck #${st.id} ${received}/${st.total}`, (delay, c) =>
      this.queue.push(this.nowMs + delay, { kind: 'chunk-ack', stream: st, received, copy: c }),
    );
  }

  private deliverChunkAck(st: SnapshotStream, received: number, copy: number): void {
    if (!this.streamLive(st)) return;
    if (!this.network.canTalk(st.to, st.from.id)) {
      this.trace(`${st.to}→${st.from.id}${copy > 0 ? ' (dup)' : ''} CUT SnapshotChunkAck #${st.id} ${received}/${st.total}`);
      return;
    }
    st.deadlineMs = this.nowMs + this.snapshotStreamTimeoutMs;
    if (received >= st.total) {
      this.streams.delete(st.key);
      this.trace(`${st.from.id}: SNAPSHOT STREAM #${st.id} to ${st.to} done`);
      this.reportSnapshot(st, 'ok');
      return;
    }
    if (received > st.acked) st.acked = received;
    // A repeated acknowledgement below what we sent: a chunk was lost; go back to it — once per
    // acknowledged position (more repeats are the other chunks of the window arriving; if the
    // resent chunk is lost too, the stream times out and the core retries).
    else if (received === st.acked && st.next > st.acked + 1 && st.wentBackAt !== st.acked) {
      st.next = st.acked;
      st.wentBackAt = st.acked;
    }
    if (st.next < st.acked) st.next = st.acked;
    this.pumpStream(st);
  }

  private streamTimeout(st: SnapshotStream): void {
    if (!this.streamLive(st)) return;
    if (this.nowMs < st.deadlineMs) {
      this.queue.push(st.deadlineMs, { kind: 'stream-timeout', stream: st });
      return;
    }
    this.streams.delete(st.key);
    this.trace(`${st.from.id}: SNAPSHOT STREAM #${st.id} to ${st.to} failed: no answer for ${this.snapshotStreamTimeoutMs}ms (${st.acked}/${st.total} chunks acknowledged)`);
    this.reportSnapshot(st, 'failed');
  }

  private reportSnapshot(st: SnapshotStream, outcome: 'ok' | 'failed'): void {
    const n = st.from;
    if (n.core === null) return;
    try {
      n.core.reportSnapshot(st.to, outcome);
    } catch (e) {
      this.coreThrew(n, 'reportSnapshot', e);
    }
    this.afterInput(n);
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
