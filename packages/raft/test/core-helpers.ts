// A tiny in-memory cluster for the core's unit tests: several RaftNodes, each with an array
// standing in for its disk, and a message pump that delivers what they send. Tests decide when
// time passes (tick), which links are cut (isolate, cut, dropIf), and when messages move
// (deliver, stabilize). Every Ready is handled exactly as the driver contract in types.ts says:
// persist, then send, then apply, then advance.
//
// The cluster also checks, after every Ready, the safety properties a test must never see
// broken: at most one leader per term (Election Safety) and no two nodes applying different
// entries at one index (State Machine Safety), and that applied entries were durable first.
//
// Snapshots (issue 3) are simulated the way a driver must handle them: a node's "state machine"
// is the list of entries it applied, so a snapshot's data is simply that list up to its index.
// compact() saves one and compacts the log; an InstallSnapshot a node sends carries (beside the
// message) its saved snapshot's data; the receiver's driver holds the data before the message is
// stepped, and the sender's driver reports the outcome (reportSnapshot): 'ok' on delivery,
// 'failed' when the message is lost. New nodes can join (addNode) as non-members.

import { isRaftError, type RaftError } from '../src/core/errors.js';
import { RaftNode } from '../src/core/raft.js';
import type { ClusterConfig, Entry, FailedRead, HardState, Message, NodeId, RaftConfig, ReadState, Ready, SnapshotMeta } from '../src/core/types.js';

/** A saved snapshot: its metadata and the state machine's data (the applied entries up to meta.index). */
export interface StoredSnapshot {
  readonly meta: SnapshotMeta;
  readonly data: readonly Entry[];
}

export interface Disk {
  hardState: HardState;
  /** entries[i] is the entry at index i + 1; compacted entries are holes (sparse array). */
  entries: Entry[];
  snapshot?: StoredSnapshot;
}

export type ConfigOverrides = Partial<Omit<RaftConfig, 'id' | 'peers'>>;

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export class Cluster {
  /** Every node, members or not (addNode appends). */
  ids: readonly NodeId[];
  /** The bootstrap voters (RaftConfig.peers of every node, including ones that join later). */
  readonly bootstrap: readonly NodeId[];
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly disks = new Map<NodeId, Disk>();
  /** What each node's state machine applied, in order, since its last (re)start. */
  readonly applied = new Map<NodeId, Entry[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  readonly failedReads = new Map<NodeId, FailedRead[]>();
  /** Messages sent and not yet delivered. */
  inFlight: Message[] = [];
  /** Every message ever sent (after the link filters), for counting. */
  readonly sent: Message[] = [];
  /** Nodes whose every link is cut. */
  readonly isolated = new Set<NodeId>();
  /** Cut links, as "from->to". */
  readonly cutLinks = new Set<string>();
  /** Drop any message this returns true for. */
  dropIf: ((m: Message) => boolean) | null = null;
  /** The leader of each term, as reported by soft states (Election Safety check). */
  readonly leaderOfTerm = new Map<number, NodeId>();
  /**
   * The configuration each term's leader was elected under, and the last one it used (it may
   * append a change during its term), for the "adjacent leaders overlap in a quorum" check.
   */
  readonly leaderConfigs = new Map<number, { elected: ClusterConfig; last: ClusterConfig }>();
  /** The entry applied at each index by anyone (State Machine Safety check). */
  readonly appliedAt = new Map<number, Entry>();
  private readonly configs = new Map<NodeId, RaftConfig>();
  /** The snapshot data each InstallSnapshot message carries beside it (by message identity). */
  private readonly snapshotPayload = new WeakMap<Message, readonly Entry[]>();
  /** Snapshot data a node's driver has received in full, by snapshot index, not yet switched in. */
  private readonly receivedSnapshots = new Map<NodeId, Map<number, readonly Entry[]>>();
  /** Highest index each node's state machine ever reached, and per node lifetime (see checkApplied). */
  readonly maxApplied = new Map<NodeId, number>();
  /** Snapshots switched in from a leader (Ready.snapshot), for tests to inspect. */
  readonly installed: { readonly id: NodeId; readonly meta: SnapshotMeta }[] = [];
  private readonly overrides: ConfigOverrides;

  constructor(size: number, overrides: ConfigOverrides = {}, perNode: Record<NodeId, ConfigOverrides> = {}) {
    this.ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
    this.bootstrap = this.ids;
    this.overrides = overrides;
    this.ids.forEach((id, i) => {
      const config: RaftConfig = { id, peers: this.ids, randomSeed: 1000 + i, ...overrides, ...perNode[id] };
      this.configs.set(id, config);
      this.disks.set(id, { hardState: { term: 0, vote: null, commit: 0 }, entries: [] });
      this.start(id);
    });
  }

  /**
   * Starts a new node that is not in the bootstrap configuration (RaftConfig.joining): it waits,
   * never campaigning, until a leader adds it and replicates to it.
   */
  addNode(id: NodeId, overrides: ConfigOverrides = {}): void {
    if (this.nodes.has(id)) throw new Error(`node ${id} exists`);
    const config: RaftConfig = { id, peers: this.bootstrap, joining: true, randomSeed: 1000 + this.ids.length, ...this.overrides, ...overrides };
    this.ids = [...this.ids, id];
    this.configs.set(id, config);
    this.disks.set(id, { hardState: { term: 0, vote: null, commit: 0 }, entries: [] });
    this.start(id);
  }

  node(id: NodeId): RaftNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  private start(id: NodeId): void {
    const disk = this.disks.get(id)!;
    // A sparse array's filter skips the holes left by compaction.
    const entries = disk.entries.filter((e) => e !== undefined);
    const restored = disk.snapshot === undefined ? { hardState: disk.hardState, entries } : { hardState: disk.hardState, entries, snapshot: disk.snapshot.meta };
    const node = new RaftNode(this.configs.get(id)!, restored);
    this.nodes.set(id, node);
    // The state machine restarts from the saved snapshot (or empty) and re-applies the rest.
    this.applied.set(id, [...(disk.snapshot?.data ?? [])]);
    if (node.status().applied !== this.applied.get(id)!.length) throw new Error(`${id} restarted at applied ${node.status().applied}, its snapshot holds ${this.applied.get(id)!.length}`);
    this.receivedSnapshots.set(id, new Map());
    this.readStates.set(id, []);
    this.failedReads.set(id, []);
  }

  /** Replaces a node's disk with `disk` and restarts it from there (to set up a scenario). */
  load(id: NodeId, disk: Disk): void {
    this.disks.set(id, { hardState: disk.hardState, entries: [...disk.entries] });
    this.restart(id);
  }

  /** Crash and restart a node from its disk (everything it had advanced is there). */
  restart(id: NodeId, { dropItsMessages = true } = {}): void {
    if (dropItsMessages) {
      for (const m of this.inFlight) if (m.to === id || m.from === id) this.lose(m);
      this.inFlight = this.inFlight.filter((m) => m.to !== id && m.from !== id);
    }
    this.start(id);
  }

  /**
   * A message was lost. For an InstallSnapshot, the sender's driver learns that its stream
   * failed (a real driver sees the connection break or time out) and tells its core.
   */
  lose(m: Message): void {
    if (m.type === 'InstallSnapshot') this.nodes.get(m.from)?.reportSnapshot(m.to, 'failed');
  }

  /**
   * The driver side of compaction: save a snapshot of `id`'s state machine at `index` (default:
   * everything applied), then let the core compact its log, keeping `keepEntries` entries before
   * the snapshot for slow followers; the stored entries the core discarded are deleted.
   */
  compact(id: NodeId, index?: number, keepEntries = 0): SnapshotMeta | null {
    const node = this.node(id);
    const at = index ?? node.status().applied;
    const disk = this.disks.get(id)!;
    if (at <= (disk.snapshot?.meta.index ?? 0)) return null;
    const meta = node.snapshotMetaAt(at);
    disk.snapshot = { meta, data: this.applied.get(id)!.slice(0, at) };
    const discardUpTo = Math.max(0, at - keepEntries);
    node.compact(at, discardUpTo);
    for (let i = 0; i < discardUpTo; i++) delete disk.entries[i];
    return meta;
  }

  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  /** Cuts the links between two groups of nodes, both ways. */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) for (const y of b) {
      this.cutLinks.add(`${x}->${y}`);
      this.cutLinks.add(`${y}->${x}`);
    }
  }

  heal(): void {
    this.isolated.clear();
    this.cutLinks.clear();
    this.dropIf = null;
  }

  private linkUp(m: Message): boolean {
    if (!this.nodes.has(m.to)) return false; // no such node (yet): nobody listens there
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return false;
    if (this.cutLinks.has(`${m.from}->${m.to}`)) return false;
    return !(this.dropIf?.(m) ?? false);
  }

  /** Handles one Ready of one node the way a driver must. Returns false if it had none. */
  handleReady(id: NodeId): boolean {
    const node = this.node(id);
    if (!node.hasReady()) return false;
    const appliedBefore = node.status().applied;
    const rd = node.ready();
    this.persist(id, rd);
    const lost: Message[] = [];
    for (const m of rd.messages) {
      if (m.type === 'InstallSnapshot') {
        // The driver streams its saved snapshot, which must be the one the message describes.
        const snap = this.disks.get(id)!.snapshot;
        if (snap === undefined || snap.meta.index !== m.meta.index || snap.meta.term !== m.meta.term) {
          throw new Error(`${id} sends snapshot ${m.meta.index}@${m.meta.term} but saved ${snap?.meta.index}@${snap?.meta.term}`);
        }
        this.snapshotPayload.set(m, snap.data);
      }
      if (!this.linkUp(m)) {
        lost.push(m);
        continue;
      }
      this.sent.push(m);
      this.inFlight.push(m);
    }
    this.apply(id, rd);
    this.readStates.get(id)!.push(...rd.readStates);
    this.failedReads.get(id)!.push(...rd.failedReads);
    if (rd.softState?.role === 'leader') {
      const prev = this.leaderOfTerm.get(rd.softState.term);
      if (prev !== undefined && prev !== id) throw new Error(`two leaders in term ${rd.softState.term}: ${prev} and ${id}\n${this.describeState()}`);
      this.leaderOfTerm.set(rd.softState.term, id);
    }
    const st = node.status();
    if (st.role === 'leader') {
      const known = this.leaderConfigs.get(st.term);
      if (known === undefined) this.leaderConfigs.set(st.term, { elected: st.config, last: st.config });
      else known.last = st.config;
    }
    node.advance(rd);
    for (const m of lost) this.lose(m);
    // A state machine never goes back within one lifetime (a snapshot switched in is newer).
    const appliedAfter = node.status().applied;
    if (appliedAfter < appliedBefore) throw new Error(`${id}: applied went back from ${appliedBefore} to ${appliedAfter}`);
    if (appliedAfter !== this.applied.get(id)!.length) throw new Error(`${id}: core applied ${appliedAfter}, state machine ${this.applied.get(id)!.length}`);
    this.maxApplied.set(id, Math.max(this.maxApplied.get(id) ?? 0, appliedAfter));
    return true;
  }

  private persist(id: NodeId, rd: Ready): void {
    const disk = this.disks.get(id)!;
    if (rd.snapshot !== null) this.switchInSnapshot(id, rd.snapshot);
    if (rd.hardState !== null) disk.hardState = rd.hardState;
    const first = rd.entries[0];
    if (first !== undefined) {
      if (first.index > disk.entries.length + 1) throw new Error(`${id}: gap before entry ${first.index}`);
      disk.entries.length = first.index - 1;
      disk.entries.push(...rd.entries);
    }
  }

  /** Ready.snapshot, step 0 of the driver contract: switch in the received snapshot atomically. */
  private switchInSnapshot(id: NodeId, meta: SnapshotMeta): void {
    const data = this.receivedSnapshots.get(id)!.get(meta.index);
    if (data === undefined) throw new Error(`${id} must switch in snapshot ${meta.index} but never received it`);
    const applied = this.applied.get(id)!;
    if (meta.index <= applied.length) throw new Error(`${id} installs snapshot ${meta.index} at or below applied ${applied.length}`);
    const saved = this.disks.get(id)!.snapshot?.meta.index ?? 0;
    if (meta.index <= saved) throw new Error(`${id} installs snapshot ${meta.index} at or below its saved snapshot ${saved}`);
    for (const e of data) this.checkSameAsOthers(id, e);
    const disk = this.disks.get(id)!;
    disk.snapshot = { meta, data };
    disk.entries = [];
    disk.entries.length = meta.index; // every stored entry is gone; the log continues after meta.index
    this.applied.set(id, [...data]);
    for (const i of [...this.receivedSnapshots.get(id)!.keys()]) if (i <= meta.index) this.receivedSnapshots.get(id)!.delete(i);
    this.installed.push({ id, meta });
  }

  private checkSameAsOthers(id: NodeId, e: Entry): void {
    const other = this.appliedAt.get(e.index);
    if (other === undefined) this.appliedAt.set(e.index, e);
    else if (other.term !== e.term || dec(other.data) !== dec(e.data)) {
      throw new Error(`${id} applied ${describe(e)} at ${e.index}, another node applied ${describe(other)}\n${this.describeState()}`);
    }
  }

  private apply(id: NodeId, rd: Ready): void {
    const disk = this.disks.get(id)!;
    const applied = this.applied.get(id)!;
    for (const e of rd.committedEntries) {
      const onDisk = disk.entries[e.index - 1];
      if (onDisk === undefined || onDisk.term !== e.term) throw new Error(`${id} applies entry ${e.index} that is not durable`);
      if (e.index !== applied.length + 1) throw new Error(`${id} applies ${e.index} after ${applied.length}`);
      applied.push(e);
      this.checkSameAsOthers(id, e);
    }
  }

  /** The last deliveries, as readable lines, for failure messages (bounded: maxTraceLines). */
  readonly trace: string[] = [];
  static readonly maxTraceLines = 40;

  /** Delivers one message to its destination (and records it in the trace). */
  stepMessage(m: Message): void {
    this.trace.push(formatMessage(m));
    if (this.trace.length > Cluster.maxTraceLines) this.trace.shift();
    if (m.type === 'InstallSnapshot') {
      // The receiver's driver got the whole data first; only then is the message stepped.
      const data = this.snapshotPayload.get(m);
      if (data === undefined) throw new Error(`InstallSnapshot ${m.from}->${m.to} without data`);
      this.receivedSnapshots.get(m.to)!.set(m.meta.index, data);
      this.node(m.to).step(m);
      this.nodes.get(m.from)?.reportSnapshot(m.to, 'ok');
      return;
    }
    this.node(m.to).step(m);
  }

  /** Handles every pending Ready of every node (a node may produce several in a row). */
  handleReadies(): void {
    let progress = true;
    while (progress) {
      progress = false;
      for (const id of this.ids) if (this.handleReady(id)) progress = true;
    }
  }

  /** Delivers the messages in flight now (not those they cause), then handles Readies. Returns how many were delivered. */
  deliver(filter: (m: Message) => boolean = () => true): number {
    this.handleReadies();
    const now = this.inFlight.filter(filter);
    this.inFlight = this.inFlight.filter((m) => !filter(m));
    for (const m of now) this.stepMessage(m);
    this.handleReadies();
    return now.length;
  }

  /** Steps the in-flight message at position `i` (in any order: reordering), then handles Readies. */
  deliverAt(i: number): void {
    const [m] = this.inFlight.splice(i, 1);
    if (m === undefined) throw new Error(`no message in flight at ${i}`);
    this.stepMessage(m);
    this.handleReadies();
  }

  /** Loses the in-flight message at position `i`. */
  dropAt(i: number): void {
    const [m] = this.inFlight.splice(i, 1);
    if (m !== undefined) this.lose(m);
  }

  /** Delivers until no message is in flight and no node has a Ready. */
  stabilize(maxRounds = 10_000): void {
    for (let i = 0; i < maxRounds; i++) {
      if (this.deliver() === 0 && this.inFlight.length === 0) return;
    }
    throw new Error(`cluster did not stabilize within ${maxRounds} rounds`);
  }

  /** Ticks the given nodes (all by default) once, then stabilizes. */
  tick(ids: readonly NodeId[] = this.ids): void {
    for (const id of ids) this.node(id).tick();
    this.stabilize();
  }

  /** Ticks everyone until `done()` holds; throws after maxTicks. Returns the ticks taken. */
  tickUntil(done: () => boolean, maxTicks = 1000, ids: readonly NodeId[] = this.ids): number {
    for (let t = 0; t < maxTicks; t++) {
      if (done()) return t;
      this.tick(ids);
    }
    if (done()) return maxTicks;
    throw new Error(`condition not reached within ${maxTicks} ticks:\n${this.describeState()}`);
  }

  /** Makes `id` win an election: only it ticks until it leads. */
  elect(id: NodeId): void {
    this.tickUntil(() => this.node(id).status().role === 'leader', 1000, [id]);
    this.stabilize();
  }

  leader(): NodeId | null {
    let best: { id: NodeId; term: number } | null = null;
    for (const id of this.ids) {
      const s = this.node(id).status();
      if (s.role === 'leader' && !this.isolated.has(id) && (best === null || s.term > best.term)) best = { id, term: s.term };
    }
    return best?.id ?? null;
  }

  appliedData(id: NodeId): string[] {
    return this.applied.get(id)!.filter((e) => e.type === 'normal').map((e) => dec(e.data));
  }

  countSent(type: Message['type'], pred: (m: Message) => boolean = () => true): number {
    return this.sent.filter((m) => m.type === type && pred(m)).length;
  }

  /** Every node's state, then the last messages delivered. */
  describeState(): string {
    return `${this.describeNodes()}\nlast ${this.trace.length} messages delivered:\n  ${this.trace.join('\n  ')}`;
  }

  describeNodes(): string {
    return this.ids
      .map((id) => {
        const s = this.node(id).status();
        const snap = s.snapshotIndex > 0 ? ` first=${s.firstIndex} snap=${s.snapshotIndex}` : '';
        const cfg = ` voters=[${s.config.voters.join(',')}]${s.config.learners.length > 0 ? ` learners=[${s.config.learners.join(',')}]` : ''}`;
        const transfer = s.transferee !== null ? ` transferring-to=${s.transferee}` : '';
        return `${id}: ${s.role} term=${s.term} vote=${s.vote} leader=${s.leader} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}@${s.lastTerm}${snap}${cfg}${transfer}`;
      })
      .join('\n');
  }
}

/** One line per message, e.g. `n1→n2 AppendEntries t3 prev=4@2 [5@3 6@3] commit=4`. */
export function formatMessage(m: Message): string {
  const head = `${m.from}→${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'RequestVote':
      return `${head}${m.preVote ? ' pre' : ''}${m.force === true ? ' force' : ''} last=${m.lastLogIndex}@${m.lastLogTerm}`;
    case 'RequestVoteResponse':
      return `${head}${m.preVote ? ' pre' : ''} ${m.granted ? 'granted' : 'refused'}`;
    case 'AppendEntries':
      return `${head} prev=${m.prevLogIndex}@${m.prevLogTerm} [${m.entries.map((e) => `${e.index}@${e.term}`).join(' ')}] commit=${m.leaderCommit}`;
    case 'AppendEntriesResponse':
      return m.success ? `${head} ok index=${m.index}` : `${head} reject index=${m.index} hint=${m.conflictIndex}@${m.conflictTerm}`;
    case 'Heartbeat':
      return `${head} commit=${m.commit} round=${m.readRound}`;
    case 'HeartbeatResponse':
      return `${head} round=${m.readRound}`;
    case 'ReadIndex':
      return `${head} ids=[${m.requestIds.join(',')}]`;
    case 'ReadIndexResponse':
      return `${head} ids=[${m.requestIds.join(',')}] index=${m.index}`;
    case 'InstallSnapshot':
      return `${head} snapshot=${m.meta.index}@${m.meta.term} voters=[${m.meta.config.voters.join(',')}]`;
    case 'TimeoutNow':
      return head;
  }
}

function describe(e: Entry): string {
  return `${e.type}@${e.term}:${dec(e.data)}`;
}

/** Runs `f` and returns the RaftError it throws (fails the test if it throws nothing or something else). */
export function thrown(f: () => unknown): RaftError {
  try {
    f();
  } catch (e) {
    if (isRaftError(e)) return e;
    throw e;
  }
  throw new Error('expected a RaftError');
}
