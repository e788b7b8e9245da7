// The vocabulary of the Raft core: log entries, persistent state, messages between peers,
// and the Ready batch through which the pure core hands work to its driver.
//
// The core never touches a clock, a disk, a socket or a random source. Everything it needs
// arrives through `tick()`, `step()`, `propose()` and `readIndex()`; everything it wants done
// leaves through `ready()` (see raft.ts). The same core therefore runs unchanged in the
// deterministic simulator (src/sim) and in real processes (src/node).

/** A member's name, unique within a cluster (`n1`, `n2`, ...). */
export type NodeId = string;

/**
 * Who takes part in the cluster (thesis §4). Voters elect leaders and count toward every quorum;
 * learners receive the log but never campaign and are never counted (their votes are ignored).
 * A node appears at most once, in one of the two lists.
 */
export interface ClusterConfig {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/**
 * A membership change, the data of a `config` entry (msgpackr-encoded, see membership.ts:
 * encodeConfChange / decodeConfChange). One server at a time (thesis §4.1):
 *   - `add-learner`: a new node that receives the log but does not vote;
 *   - `promote`: a learner becomes a voter (once it has caught up, thesis §4.2.1);
 *   - `add-voter`: a new node joins directly as a voter;
 *   - `remove`: a voter or learner leaves.
 */
export type ConfChangeType = 'add-learner' | 'promote' | 'add-voter' | 'remove';

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly node: NodeId;
  /** Opaque to the core: e.g. the node's address, for the driver. At most MAX_CONF_CHANGE_CONTEXT_BYTES. */
  readonly context?: Uint8Array;
}

/**
 * What the core knows of a snapshot: the last log entry it covers and the configuration as of
 * that entry. The data itself (the state machine's image) is the driver's business.
 */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly config: ClusterConfig;
}

/**
 * - `normal`: a client command, opaque to Raft.
 * - `noop`: appended by every new leader (§5.4.2, §8): lets it commit entries of earlier terms
 *   and is the barrier a ReadIndex read waits for (thesis §6.4).
 * - `config`: a membership change; data is a msgpackr-encoded ConfChange. It takes effect on each
 *   server as soon as it is in that server's log, committed or not (thesis §4.1).
 */
export type EntryType = 'normal' | 'noop' | 'config';

export interface Entry {
  /** Position in the log, starting at 1. Index 0 is the empty prefix (term 0). */
  readonly index: number;
  /** Term of the leader that created the entry. */
  readonly term: number;
  readonly type: EntryType;
  /** Opaque command bytes (empty for `noop`; an encoded ConfChange for `config`). */
  readonly data: Uint8Array;
}

/**
 * State that must be on stable storage before the node answers any RPC (Figure 2):
 * currentTerm and votedFor, plus the commit index so a restart need not re-learn it.
 */
export interface HardState {
  readonly term: number;
  /** Whom this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  readonly commit: number;
}

export const EMPTY_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 };

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** Volatile state a driver may want to show or react to (not persisted). */
export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId | null;
  readonly term: number;
}

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  /**
   * Sender's current term (for a pre-vote request: the term it *would* campaign in).
   * Any message with a higher term makes the receiver adopt it (§5.1), except pre-votes.
   */
  readonly term: number;
}

/** §5.2 RequestVote; with `preVote` it is the thesis §9.6 PreVote round, which changes no state. */
export interface RequestVote extends MessageBase {
  readonly type: 'RequestVote';
  readonly preVote: boolean;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /**
   * Leadership transfer (thesis §3.10): the candidate campaigns because the leader told it to
   * (TimeoutNow), so voters must not ignore it for having heard from a leader recently (§4.2.3).
   * Present (true) only then; absent otherwise.
   */
  readonly force?: boolean;
}

export interface RequestVoteResponse extends MessageBase {
  readonly type: 'RequestVoteResponse';
  readonly preVote: boolean;
  readonly granted: boolean;
}

/** §5.3 AppendEntries. Heartbeats are a separate, smaller message (see Heartbeat). */
export interface AppendEntries extends MessageBase {
  readonly type: 'AppendEntries';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
}

export interface AppendEntriesResponse extends MessageBase {
  readonly type: 'AppendEntriesResponse';
  readonly success: boolean;
  /**
   * On success: the highest index known to match the leader's log (prevLogIndex + entries).
   * On rejection: the prevLogIndex that was rejected (lets the leader ignore stale rejections).
   */
  readonly index: number;
  /**
   * Fast backtracking hint on rejection (§5.3, "the follower can include the term of the
   * conflicting entry and the first index it stores for that term"):
   * conflictTerm is the follower's term at prevLogIndex (0 when its log is shorter), and
   * conflictIndex the first index of that term in its log (or its lastIndex + 1 when shorter).
   */
  readonly conflictTerm: number;
  readonly conflictIndex: number;
}

/**
 * Leader → follower, every heartbeat interval. Carries a commit index the follower may safely
 * adopt (min of the leader's commit and the follower's known match) and the read round, so
 * that many ReadIndex reads share one round of heartbeats (thesis §6.4).
 */
export interface Heartbeat extends MessageBase {
  readonly type: 'Heartbeat';
  readonly commit: number;
  /** Monotonic per leader term; 0 when no read is waiting. */
  readonly readRound: number;
}

export interface HeartbeatResponse extends MessageBase {
  readonly type: 'HeartbeatResponse';
  readonly readRound: number;
}

/** Follower → leader: "tell me a read index for these requests" (thesis §6.4, step 1 for followers). */
export interface ReadIndexRequest extends MessageBase {
  readonly type: 'ReadIndex';
  readonly requestIds: readonly number[];
}

/** Leader → follower: the read index for the requests, once confirmed by a quorum. */
export interface ReadIndexResponse extends MessageBase {
  readonly type: 'ReadIndexResponse';
  readonly requestIds: readonly number[];
  readonly index: number;
}

/**
 * Leader → follower whose log is behind the leader's compacted prefix (§7): "install the snapshot
 * described by `meta`". Metadata only; the drivers move the data:
 *   - the sender's driver streams the data of its saved snapshot whose index is meta.index (if it
 *     no longer has that one, it reports failure), then calls reportSnapshot(to, 'ok') once the
 *     receiver has it all, or reportSnapshot(to, 'failed') if the stream breaks: exactly one
 *     report per InstallSnapshot handed out (until then the leader sends that follower nothing
 *     but heartbeats);
 *   - the receiver's driver steps this message into its core only once it holds the whole data,
 *     verified, and keeps that data until a Ready.snapshot names it (or the core's commit index
 *     passes meta.index: it will not be asked for).
 * Answered with an AppendEntriesResponse (success, index = the index now known to match).
 */
export interface InstallSnapshot extends MessageBase {
  readonly type: 'InstallSnapshot';
  readonly meta: SnapshotMeta;
}

/**
 * Leader → the target of a leadership transfer (thesis §3.10), once its log is up to date:
 * "start an election now" (skipping PreVote, with RequestVote.force).
 */
export interface TimeoutNow extends MessageBase {
  readonly type: 'TimeoutNow';
}

export type Message =
  | RequestVote
  | RequestVoteResponse
  | AppendEntries
  | AppendEntriesResponse
  | Heartbeat
  | HeartbeatResponse
  | ReadIndexRequest
  | ReadIndexResponse
  | InstallSnapshot
  | TimeoutNow;

export type MessageType = Message['type'];

/** A read that may be served once the local state machine has applied `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

/** A read the core gave up on (leadership lost, no leader, queue full): fail it with `code`. */
export interface FailedRead {
  readonly requestId: number;
  readonly code: 'NOT_LEADER' | 'NO_LEADER' | 'LEADERSHIP_LOST' | 'READ_QUEUE_FULL';
  readonly message: string;
}

/**
 * The batch of work the core hands its driver. The driver must, in order:
 *   0. if `snapshot` is set: switch in the snapshot received for `snapshot.index` (the data that
 *      arrived with the InstallSnapshot carrying that meta), atomically: the state machine is
 *      restored from it, the stored snapshot becomes it, and the log storage is reset to hold no
 *      entry at or before snapshot.index (every stored entry is deleted). Only then go on;
 *   1. persist `hardState` (if present) and `entries` atomically and durably (fsync). If
 *      `entries[0].index` is at or below the stored last index, the stored suffix from that
 *      index on is replaced (truncated and rewritten in the same atomic batch). A hard state
 *      whose only change is `commit` need not be synced on its own: commitIndex is volatile
 *      (Figure 2) and a restarted node learns it again, so the node driver writes it with the
 *      next save. Term and vote must always be durable before any message is sent;
 *   2. only then send `messages` (durability before acknowledgement);
 *   3. apply `committedEntries` in order to the state machine (all are already durable locally);
 *   4. answer `readStates` once applied >= index, fail `failedReads`;
 *   5. call `advance(ready)`.
 * Fields are empty arrays (never undefined) when there is nothing to do. Only one Ready is
 * outstanding at a time: hasReady() is false, and ready() throws, until it is advanced.
 */
export interface Ready {
  /** A snapshot installed from the leader (see step 0 above), or null. */
  readonly snapshot: SnapshotMeta | null;
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly failedReads: readonly FailedRead[];
}

/** How a leader answers linearizable reads. */
export type ReadMode =
  /** ReadIndex: confirm leadership with a quorum heartbeat round before serving (thesis §6.4). Safe. */
  | 'read-index'
  /**
   * Lease: serve at the commit index without a round while the leader heard from a quorum within
   * `electionTicks - leaseDriftTicks` (thesis §6.4.1). UNSAFE if clocks drift more than assumed:
   * a deposed leader may serve stale data. Opt-in, for trade-off experiments.
   */
  | 'lease';

export interface RaftConfig {
  readonly id: NodeId;
  /**
   * The bootstrap voters: the configuration at index 0, identical on every node of the cluster,
   * including nodes that join later. Includes `id` unless `id` is a bootstrap learner or `joining`.
   * Config entries in the log (and snapshots) change the configuration from there.
   */
  readonly peers: readonly NodeId[];
  /** The bootstrap learners (non-voting members). Default none. */
  readonly learners?: readonly NodeId[];
  /**
   * This node is not in the bootstrap configuration: it joins a running cluster and waits, as a
   * non-member that never campaigns, until a leader adds it (its log or a snapshot then tells it
   * its role). Default false.
   */
  readonly joining?: boolean;
  /** Ticks without hearing from a leader before campaigning; randomized in [e, 2e) (§5.2). Default 10. */
  readonly electionTicks?: number;
  /** Ticks between leader heartbeats. Default 1. Must be < electionTicks. */
  readonly heartbeatTicks?: number;
  /** Thesis §9.6. Default true. */
  readonly preVote?: boolean;
  /** Leader steps down if it has not heard from a quorum within an election timeout (§6.2). Default true. */
  readonly checkQuorum?: boolean;
  /** Default 'read-index'. */
  readonly readMode?: ReadMode;
  /** Lease reads: ticks of clock drift assumed possible (lease = electionTicks - this). Default 2. */
  readonly leaseDriftTicks?: number;
  /** Bound on AppendEntries messages in flight to one follower (pipelining). Default 256. */
  readonly maxInflightMsgs?: number;
  /**
   * Bound on the entry bytes of one AppendEntries: payload plus 16 bytes per entry (so batches of
   * empty entries are bounded too). At least one entry is always sent. Default 1 MiB.
   */
  readonly maxMsgBytes?: number;
  /**
   * Bound on the bytes of entries a leader has appended but not committed. Past it, propose()
   * throws UNCOMMITTED_LIMIT at once instead of queueing while no quorum is reachable. Default 64 MiB.
   */
  readonly maxUncommittedBytes?: number;
  /** Bound on reads waiting for a read index at one node. Past it, readIndex() fails them with READ_QUEUE_FULL. Default 65536. */
  readonly maxPendingReads?: number;
  /** Seed of the core's own PRNG (election timeout jitter). The core never calls Math.random. */
  readonly randomSeed: number;
}

/** What a restarted node reads back from stable storage. */
export interface RestoredState {
  readonly hardState: HardState;
  /**
   * The log, in order: from index 1 without a snapshot; with one, from snapshot.index + 1 (entries
   * at or before snapshot.index, e.g. a trailing window kept for slow followers, are accepted too:
   * they must be contiguous and include snapshot.index with snapshot.term).
   */
  readonly entries: readonly Entry[];
  /** The latest snapshot the driver saved (or installed); the state machine restarts from it. */
  readonly snapshot?: SnapshotMeta;
}

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  /** `snapshot`: an InstallSnapshot is out; nothing else is sent until reportSnapshot() or an answer. */
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly inflight: number;
  readonly recentActive: boolean;
  /** A learner: replicated to, never counted. */
  readonly learner: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Only on the leader: each follower's (and learner's) replication progress. */
  readonly progress: Readonly<Record<NodeId, ProgressStatus>>;
  /** The configuration in effect: the latest in this node's log (thesis §4.1). */
  readonly config: ClusterConfig;
  /** Index of the latest config entry in the log (0: the bootstrap or snapshot configuration). */
  readonly configIndex: number;
  /** Index of the latest snapshot (0 if none); entries at or before firstIndex - 1 are gone. */
  readonly snapshotIndex: number;
  /** The first index still held in the log. */
  readonly firstIndex: number;
  /** Only on a leader transferring leadership: the target (thesis §3.10). */
  readonly transferee: NodeId | null;
}

/** The result of a successful propose(): the entries will occupy [firstIndex, lastIndex] at `term`. */
export interface ProposeResult {
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly term: number;
}
