// The state every role shares, and the helpers the role files (follower.ts, candidate.ts,
// leader.ts) use to change it. RaftNode (raft.ts) owns one RaftState and is the only way in
// from outside; the role files hold the rules.

import { RaftError } from './errors.js';
import { invariant, RaftLog } from './log.js';
import { isMember, isVoter } from './membership.js';
import { ProgressTracker, quorumSize } from './progress.js';
import { Rand } from './rand.js';
import { ForwardedReads, ReadOnlyQueue } from './read-only.js';
import type { ClusterConfig, FailedRead, HardState, Message, NodeId, RaftConfig, ReadMode, ReadState, RestoredState, Role, SoftState } from './types.js';

/** RaftConfig with every default filled in and checked. */
export interface ResolvedConfig {
  readonly id: NodeId;
  /** The bootstrap voters and learners (the configuration at index 0). */
  readonly peers: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly joining: boolean;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly readMode: ReadMode;
  readonly leaseDriftTicks: number;
  readonly maxInflightMsgs: number;
  readonly maxMsgBytes: number;
  readonly maxUncommittedBytes: number;
  readonly maxPendingReads: number;
  readonly randomSeed: number;
}

export function resolveConfig(c: RaftConfig): ResolvedConfig {
  const r: ResolvedConfig = {
    id: c.id,
    peers: [...c.peers],
    learners: [...(c.learners ?? [])],
    joining: c.joining ?? false,
    electionTicks: c.electionTicks ?? 10,
    heartbeatTicks: c.heartbeatTicks ?? 1,
    preVote: c.preVote ?? true,
    checkQuorum: c.checkQuorum ?? true,
    readMode: c.readMode ?? 'read-index',
    leaseDriftTicks: c.leaseDriftTicks ?? 2,
    maxInflightMsgs: c.maxInflightMsgs ?? 256,
    maxMsgBytes: c.maxMsgBytes ?? 1024 * 1024,
    maxUncommittedBytes: c.maxUncommittedBytes ?? 64 * 1024 * 1024,
    maxPendingReads: c.maxPendingReads ?? 65536,
    randomSeed: c.randomSeed,
  };
  const bad = (what: string): never => {
    throw new RaftError('BAD_REQUEST', `invalid RaftConfig for ${String(c.id)}: ${what}`);
  };
  if (typeof r.id !== 'string' || r.id === '') bad('id must be a non-empty string');
  const inBootstrap = r.peers.includes(r.id) || r.learners.includes(r.id);
  if (!r.joining && !inBootstrap) bad(`peers [${r.peers.join(', ')}] must include the node itself (or set joining)`);
  if (r.joining && inBootstrap) bad('a joining node must not be in the bootstrap peers or learners');
  if (r.peers.length === 0) bad('peers must name at least one voter');
  if (new Set([...r.peers, ...r.learners]).size !== r.peers.length + r.learners.length) bad('peers and learners must not repeat');
  const positiveInt = (name: string, v: number) => {
    if (!Number.isSafeInteger(v) || v < 1) bad(`${name} must be a positive integer, got ${v}`);
  };
  positiveInt('electionTicks', r.electionTicks);
  positiveInt('heartbeatTicks', r.heartbeatTicks);
  positiveInt('maxInflightMsgs', r.maxInflightMsgs);
  positiveInt('maxMsgBytes', r.maxMsgBytes);
  positiveInt('maxUncommittedBytes', r.maxUncommittedBytes);
  positiveInt('maxPendingReads', r.maxPendingReads);
  if (r.heartbeatTicks >= r.electionTicks) bad(`heartbeatTicks (${r.heartbeatTicks}) must be < electionTicks (${r.electionTicks})`);
  if (!Number.isSafeInteger(r.leaseDriftTicks) || r.leaseDriftTicks < 0 || r.leaseDriftTicks >= r.electionTicks) {
    bad(`leaseDriftTicks must be in [0, electionTicks), got ${r.leaseDriftTicks}`);
  }
  if (r.readMode !== 'read-index' && r.readMode !== 'lease') bad(`readMode must be 'read-index' or 'lease'`);
  if (!Number.isFinite(r.randomSeed)) bad('randomSeed must be a finite number');
  return r;
}

export class RaftState {
  readonly id: NodeId;
  readonly cfg: ResolvedConfig;
  readonly log: RaftLog;
  private readonly rand: Rand;

  // Persistent state (Figure 2): currentTerm and votedFor. The commit index lives in `log`.
  term: number;
  vote: NodeId | null;

  // Volatile state.
  role: Role = 'follower';
  leader: NodeId | null = null;
  /**
   * Ticks since this node last heard from its leader or granted a vote (follower), or started
   * campaigning ((pre-)candidate). A leader does not use it: CheckQuorum counts from the ticks
   * it last heard from each follower (see leader.ts).
   */
  electionElapsed = 0;
  /** Ticks since the leader last sent heartbeats. */
  heartbeatElapsed = 0;
  /** This term's election timeout, drawn from [electionTicks, 2 * electionTicks) (§5.2). */
  randomizedElectionTimeout = 0;
  /** Ticks since the node started; a logical clock for lease reads and read time-outs. */
  nowTick = 0;

  /** (Pre-)candidate: the votes received in this campaign. */
  readonly votes = new Map<NodeId, boolean>();

  // Leader only.
  progress: ProgressTracker | null = null;
  readonly reads = new ReadOnlyQueue();
  /** The tick this node last became leader. */
  leaderSinceTick = 0;
  /** Payload bytes appended by this leader and not yet committed (bounded by maxUncommittedBytes). */
  uncommittedBytes = 0;
  /** The first index this leader appended (its no-op): uncommittedBytes counts from here. */
  uncommittedFromIndex = 0;
  /** Leadership transfer in progress (thesis §3.10): the target, and ticks since it began. */
  transferee: NodeId | null = null;
  transferElapsed = 0;
  /**
   * Set once this leader sent TimeoutNow in its term: some voter may now vote for another
   * candidate at once (RequestVote.force), so the lease of thesis §6.4.1 no longer holds.
   */
  leaseRevoked = false;

  // Follower only.
  readonly forwardedReads = new ForwardedReads();

  // Output, collected into the next Ready.
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  failedReads: FailedRead[] = [];

  constructor(config: RaftConfig, restored?: RestoredState) {
    this.cfg = resolveConfig(config);
    this.id = this.cfg.id;
    this.rand = new Rand(this.cfg.randomSeed, this.id);
    const hs = restored?.hardState ?? { term: 0, vote: null, commit: 0 };
    invariant(Number.isSafeInteger(hs.term) && hs.term >= 0, `restored term ${hs.term}`);
    this.term = hs.term;
    this.vote = hs.vote;
    const bootstrap: ClusterConfig = { voters: this.cfg.peers, learners: this.cfg.learners };
    this.log = RaftLog.restore(bootstrap, restored?.snapshot, restored?.entries ?? [], hs.commit);
    invariant(this.log.lastTerm() <= this.term, `restored log ends at term ${this.log.lastTerm()} after current term ${this.term}`);
    this.resetElectionTimer();
  }

  /** The configuration in effect: the latest in the log (thesis §4.1). */
  config(): ClusterConfig {
    return this.log.configs.current();
  }

  /** A majority of the voters of the configuration in effect. */
  quorum(): number {
    return quorumSize(this.config().voters.length);
  }

  /** Whether this node may campaign and be counted: it is a voter in its latest configuration. */
  isVoter(): boolean {
    return isVoter(this.config(), this.id);
  }

  /**
   * Whether this node may start an election: it is a voter of its latest configuration, or the
   * latest configuration removed it and is not committed yet. Thesis §4.2.2: a server that is not
   * part of its own latest configuration should still start elections, as it might still be
   * needed until that configuration is committed (say the leader that removed itself lost its
   * leadership: the remaining voters may need its log, or its vote-less leadership, to commit
   * the change). It then counts only the votes of the latest configuration's voters.
   */
  mayCampaign(): boolean {
    if (this.isVoter()) return true;
    const configs = this.log.configs;
    const latest = configs.currentIndex();
    return latest > this.log.committed && isVoter(configs.at(latest - 1), this.id);
  }

  /** Every voter but this node. */
  otherVoters(): NodeId[] {
    return this.config().voters.filter((v) => v !== this.id);
  }

  /** Every member (voter or learner) but this node: whom a leader replicates to. */
  otherMembers(): NodeId[] {
    const c = this.config();
    return [...c.voters, ...c.learners].filter((v) => v !== this.id);
  }

  /** Whether `id` is a member of the configuration in effect. */
  isMember(id: NodeId): boolean {
    return isMember(this.config(), id);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { role: this.role, leader: this.leader, term: this.term };
  }

  resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.randomizedElectionTimeout = this.rand.intBetween(this.cfg.electionTicks, 2 * this.cfg.electionTicks);
  }

  /**
   * Whether this node believes a leader is alive: it is the leader, or it heard from one within
   * the minimum election timeout. Such a node refuses pre-votes (thesis §9.6) and, with
   * CheckQuorum or lease reads, ignores vote requests (thesis §4.2.3), so a partitioned node
   * that comes back cannot depose a healthy leader.
   */
  heardFromLeaderRecently(): boolean {
    if (this.role === 'leader') return true;
    // With lease reads, a node that just (re)started cannot know whether it had promised some
    // leader not to vote: it assumes so for one election timeout, so a restart cannot help
    // elect a new leader while the old one still serves reads from its lease.
    if (this.cfg.readMode === 'lease' && this.nowTick < this.cfg.electionTicks) return true;
    return this.leader !== null && this.electionElapsed < this.cfg.electionTicks;
  }

  /** Whether the leader has committed an entry of its own term (its no-op): thesis §6.4 step 1. */
  committedInCurrentTerm(): boolean {
    return this.log.termAt(this.log.committed) === this.term;
  }

  send(m: Message): void {
    invariant(m.from === this.id && m.to !== this.id, `bad message ${m.type} ${m.from}->${m.to}`);
    this.msgs.push(m);
  }

  failRead(requestId: number, code: FailedRead['code'], message: string): void {
    this.failedReads.push({ requestId, code, message });
  }

  /** Fails every read forwarded to a leader we no longer follow. */
  failForwardedReads(code: FailedRead['code'], message: string): void {
    for (const id of this.forwardedReads.takeAll()) this.failRead(id, code, message);
  }
}
