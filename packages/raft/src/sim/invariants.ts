// The safety properties of Raft (Figure 3 of the paper), checked against what the simulated nodes
// actually did. The checker only observes: the cluster reports every role it sees, every durable
// write, every applied entry and every commit index, and the checker throws an InvariantViolation
// (with the seed and the end of the timeline) the moment a property breaks.
//
//  - Election Safety (§5.2): at most one leader per term, over the whole run, crashed lives included.
//  - Log Matching (§5.3): if two durable logs hold an entry with the same index and term, the logs
//    are identical up to that index. Checked incrementally: an (index, term) pair must always name
//    the same entry with the same predecessor term — by induction on the index this is the
//    pairwise property — and pairwise in full by checkLogMatching().
//  - Leader Completeness (§5.4): every entry committed in a term is in the log of every leader of a
//    later term.
//  - State Machine Safety (§5.4.3): no two nodes apply different entries at one index.
//  - The commit index of a node never decreases while it is up, and a restarted node starts no lower
//    than the commit index it had made durable.
//  - The commit rule (§5.4.2, Figure 8): when a leader advances its commit index, the entry there is
//    of the leader's own term (earlier entries are committed only indirectly), and durable at the
//    leader (it counts its own log only once synced).
//  - Durability (the client's view): every acknowledged proposal is eventually applied by every node.
//  - Linearizable reads (thesis §6.4): a read's index is at least the index of every write that was
//    acknowledged before the read was issued, so serving it at that index sees those writes.
//
// Membership and snapshots (issue 3):
//  - Election quorum (§5.2 with thesis §4): a leader was granted votes, in its term, by a majority
//    of the VOTERS of its own configuration. Learners and outsiders may answer a candidate (a
//    learner may not know yet that it was promoted), but their grants never count: "a learner
//    never votes" in the only sense that matters for safety. And a learner (by its own latest
//    configuration) never campaigns: it is never a pre-candidate, candidate or leader.
//  - Configuration overlap (thesis §4.1): the leaders of two adjacent terms (no leader seen in
//    between) used configurations whose majorities intersect. For the later leader that is the
//    configuration it was elected in; for the earlier one, the one in effect when it last
//    advanced its commit index (or, if it never did, the one it was elected in). Why this is the check that
//    guards safety: the next leader must hold everything the previous one committed (Leader
//    Completeness), so its electing majority must meet the majority that committed it. With
//    single-server changes, one change in flight and the 2015 fix (no change before an entry of
//    the leader's term commits), the two configurations differ by at most one server and always
//    overlap; a check of "configurations differ by at most one voter" between ANY two leaders
//    would be wrong (a leader may commit several changes in one term).
//  - A removed node never becomes leader once it knows its removal committed (thesis §4.2.2): when
//    it wins an election, its own commit index must be below the removal's index. (Thesis §4.1
//    lets a server that is not in its latest configuration still campaign, since it may be needed
//    until that configuration commits; a removed server cut off when the removal committed can
//    thus win once more, with votes of the NEW configuration, and steps down as soon as it
//    commits. That is safe, so only the informed case is a violation; the run also checks at the
//    end that the final leader is a voter of its configuration.) And a leader whose own removal
//    is committed in its log steps down within a bound (thesis §4.2.2).
//  - Applied index monotonic: a node's state machine never goes back, neither when a snapshot is
//    installed (only a newer one may be switched in) nor across a restart (the snapshot plus the
//    durable log up to the durable commit index must cover everything applied before the crash:
//    entries are applied only after their commit index is durable).
//
// The checker is independent of the simulator so that tests can feed it deliberately broken
// histories and show each property can fail.

import { decodeConfChange } from '../core/membership.js';
import type { ClusterConfig, Entry, HardState, NodeId, Role } from '../core/types.js';
import { formatTime } from './trace.js';

export type InvariantName =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'commit-monotonic'
  /** §5.4.2: a leader commits by counting replicas only an entry of its own term (Figure 8). */
  | 'commit-rule'
  | 'durability'
  /** A ReadIndex answer below the index of a write acknowledged before the read was issued (thesis §6.4). */
  | 'linearizable-read'
  | 'liveness'
  /** The core broke the Ready contract (core/types.ts), e.g. a gap in appended or applied entries. */
  | 'driver-contract'
  /** The core threw something other than the RaftErrors its API documents. */
  | 'core-exception'
  /** A leader without granted votes from a majority of its configuration's voters (learners' grants do not count). */
  | 'election-quorum'
  /** Leaders of adjacent terms used configurations whose majorities can be disjoint (thesis §4.1). */
  | 'config-overlap'
  /** A learner (in its own configuration) campaigned: learners never start elections. */
  | 'learner-campaign'
  /** A node became leader after its removal from the configuration was committed (thesis §4.2.2). */
  | 'removed-leader'
  /** A node's applied index went backwards (snapshot install or restart). */
  | 'applied-monotonic';

/** How many trace lines a violation report shows. */
export const REPORT_TIMELINE_LINES = 60;

export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
  constructor(
    readonly invariant: InvariantName,
    readonly detail: string,
    readonly timeMs: number,
    readonly seed: number | null,
    /** The last trace lines before the violation, oldest first. */
    readonly timeline: readonly string[],
  ) {
    super(formatViolation(invariant, detail, timeMs, seed, timeline));
  }
}

export function formatViolation(
  invariant: InvariantName,
  detail: string,
  timeMs: number,
  seed: number | null,
  timeline: readonly string[],
): string {
  const lines = [
    `INVARIANT VIOLATED: ${invariant}`,
    `  seed: ${seed ?? '(none)'}   at: ${formatTime(timeMs)}`,
    `  ${detail}`,
  ];
  if (timeline.length > 0) {
    lines.push(`--- timeline: last ${timeline.length} trace lines ---`);
    for (const l of timeline) lines.push(`  ${l}`);
  }
  return lines.join('\n');
}

/** Where the checker gets the context for a report. All optional, for stand-alone use in tests. */
export interface ViolationContext {
  readonly seed?: number | null;
  readonly now?: () => number;
  readonly timeline?: (lines: number) => readonly string[];
}

export interface AcknowledgedProposal {
  /** The node that proposed and applied it (the client was told "committed"). */
  readonly node: NodeId;
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
  readonly timeMs: number;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function sameEntry(a: Entry, b: Entry): boolean {
  return a.index === b.index && a.term === b.term && a.type === b.type && sameBytes(a.data, b.data);
}

export function describeEntry(e: Entry): string {
  if (e.type === 'noop') return `(${e.index},${e.term}) noop`;
  if (e.type === 'config') {
    try {
      const c = decodeConfChange(e.data);
      return `(${e.index},${e.term}) config ${c.type} ${c.node}`;
    } catch {
      return `(${e.index},${e.term}) config (undecodable, ${e.data.length} bytes)`;
    }
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(e.data.subarray(0, 24));
  const printable = /^[\x20-\x7e]*$/.test(text) ? JSON.stringify(text) : `${e.data.length} bytes`;
  return `(${e.index},${e.term}) ${printable}${e.data.length > 24 ? '…' : ''}`;
}

/** Smallest majority of `n` voters. */
function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * Whether every majority of voters `a` intersects every majority of voters `b` (thesis §4.1).
 * A majority of `a` can avoid `b` by taking the voters only `a` has first: it must still take
 * max(0, majority(a) - |a \ b|) shared voters; the same for `b`. Two majorities can be disjoint
 * iff those two minimums fit side by side in the shared voters.
 */
export function quorumsOverlap(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  if (a.length === 0 || b.length === 0) return false;
  const inB = new Set(b);
  const shared = a.filter((id) => inB.has(id)).length;
  const minA = Math.max(0, majority(a.length) - (a.length - shared));
  const minB = Math.max(0, majority(b.length) - (b.length - shared));
  return minA + minB > shared;
}

function voters(c: ClusterConfig): string {
  return `[${c.voters.join(',')}]`;
}

interface LeaderInfo {
  readonly node: NodeId;
  /** The configuration it was elected in. */
  readonly electionConfig: ClusterConfig;
  /** The configuration in effect when it last advanced its commit index (null: not yet). */
  commitConfig: ClusterConfig | null;
}

/** Where a durable log starts: log[k] holds index base.index + 1 + k; base.term is the term at base.index. */
export interface LogBase {
  readonly index: number;
  readonly term: number;
}

const NO_BASE: LogBase = { index: 0, term: 0 };

interface LogKeyInfo {
  readonly entry: Entry;
  /** Term of the entry just before it (0 at index 1): fixes the whole prefix by induction. */
  readonly prevTerm: number;
  readonly firstSeenAt: NodeId;
}

interface CommittedInfo {
  readonly entry: Entry;
  /** An upper bound on the term in which the entry was committed (the observer's term). */
  commitTerm: number;
  readonly seenAt: NodeId;
}

export class InvariantChecker {
  // Election Safety: the leader of each term ever seen.
  private readonly leaderOfTerm = new Map<number, NodeId>();
  // Log Matching: "index:term" → the entry (and predecessor term) every log must agree on.
  private readonly logKeys = new Map<string, LogKeyInfo>();
  // Committed entries by index, as claimed by any node (durable commit index or applied entry).
  private readonly committed: (CommittedInfo | undefined)[] = [];
  // State Machine Safety: the first entry applied at each index, by any node.
  private readonly appliedAt: ({ entry: Entry; node: NodeId } | undefined)[] = [];
  // Per node.
  private readonly role = new Map<NodeId, { role: Role; term: number }>();
  private readonly durableLog = new Map<NodeId, { readonly log: readonly Entry[]; readonly first: number }>();
  private readonly durableCommit = new Map<NodeId, number>();
  private readonly registeredUpTo = new Map<NodeId, number>();
  private readonly lastCommit = new Map<NodeId, number>();
  /** Leaders whose durable log already holds an entry of their own term: their log must keep every committed entry. */
  private readonly verifiedLeaders = new Map<NodeId, number>();
  private readonly acks: AcknowledgedProposal[] = [];
  private maxAckedIndex = 0;
  /** Reads waiting for their index: "node:requestId" → the highest acknowledged write index when issued. */
  private readonly pendingReads = new Map<string, { floor: number; issuedAtMs: number }>();
  // Election quorum: term → candidate → the nodes whose granted votes it received.
  private readonly votes = new Map<number, Map<NodeId, Set<NodeId>>>();
  // Configuration overlap: every term with a leader, sorted, and what that leader used.
  private readonly leaderTerms: number[] = [];
  private readonly leaderInfo = new Map<number, LeaderInfo>();
  // Removed nodes: node → index of the committed config entry that removed it.
  private readonly removedAt = new Map<NodeId, number>();
  // Removed leaders: since when each has led with its removal committed in its log.
  private readonly orphanSince = new Map<NodeId, number>();
  // Applied index monotonic: the highest applied index each node reached (kept across crashes).
  private readonly appliedIndex = new Map<NodeId, number>();

  constructor(private readonly ctx: ViolationContext = {}) {}

  fail(invariant: InvariantName, detail: string): never {
    const now = this.ctx.now?.() ?? 0;
    const timeline = this.ctx.timeline?.(REPORT_TIMELINE_LINES) ?? [];
    throw new InvariantViolation(invariant, detail, now, this.ctx.seed ?? null, timeline);
  }

  /** Terms in which a leader was seen, with that leader. */
  leaders(): ReadonlyMap<number, NodeId> {
    return this.leaderOfTerm;
  }

  acknowledged(): readonly AcknowledgedProposal[] {
    return this.acks;
  }

  // ----- roles: Election Safety, and which leaders Leader Completeness applies to -----

  /**
   * `node` is in `role` at `term`. With `config` (the configuration in effect at the node), a new
   * leader is also checked for its election quorum, its configuration against the leaders of the
   * adjacent terms, and for having been removed.
   */
  observeRole(node: NodeId, role: Role, term: number, config?: ClusterConfig, commit?: number): void {
    const prev = this.role.get(node);
    if (prev !== undefined && prev.role === role && prev.term === term) return;
    this.role.set(node, { role, term });
    if (this.verifiedLeaders.has(node) && (role !== 'leader' || this.verifiedLeaders.get(node) !== term)) {
      this.verifiedLeaders.delete(node);
    }
    if (role !== 'follower' && config !== undefined && config.learners.includes(node)) {
      this.fail('learner-campaign', `${node} is ${role} in term ${term} but is a learner in its configuration ${voters(config)} learners [${config.learners.join(',')}]`);
    }
    if (role !== 'leader') return;
    const existing = this.leaderOfTerm.get(term);
    if (existing !== undefined && existing !== node) {
      this.fail('election-safety', `two leaders in term ${term}: ${existing} and ${node}`);
    }
    this.leaderOfTerm.set(term, node);
    if (existing === undefined) {
      const removed = this.removedAt.get(node);
      if (removed !== undefined && (commit === undefined || commit >= removed)) {
        this.fail(
          'removed-leader',
          `${node} became leader of term ${term} although its removal (config entry ${removed}) was committed` +
            (commit !== undefined ? ` and its own commit index ${commit} covers it` : '') +
            ' (thesis §4.2.2)',
        );
      }
      if (config !== undefined) this.observeNewLeader(node, term, config);
    }
    this.maybeVerifyLeader(node);
  }

  // ----- elections under membership: quorum of voters, overlap of adjacent configurations -----

  /** `candidate` received a granted (real, not pre-) vote from `voter` for `term`. */
  observeVoteGranted(candidate: NodeId, voter: NodeId, term: number): void {
    let byCandidate = this.votes.get(term);
    if (byCandidate === undefined) {
      byCandidate = new Map();
      this.votes.set(term, byCandidate);
    }
    let set = byCandidate.get(candidate);
    if (set === undefined) {
      set = new Set();
      byCandidate.set(candidate, set);
    }
    set.add(voter);
  }

  private observeNewLeader(node: NodeId, term: number, config: ClusterConfig): void {
    // §5.2 with thesis §4: "a candidate wins if it receives votes from a majority of the servers
    // in its configuration". Its own vote counts if it is a voter; a learner's grant never does.
    const granted = this.votes.get(term)?.get(node) ?? new Set<NodeId>();
    const counted = config.voters.filter((v) => v === node || granted.has(v));
    if (counted.length < majority(config.voters.length)) {
      const ignored = [...granted].filter((v) => !config.voters.includes(v));
      this.fail(
        'election-quorum',
        `${node} became leader of term ${term} with votes from ${counted.length} of the ${config.voters.length} voters ${voters(config)}` +
          ` (counted: [${counted.join(',')}]${ignored.length > 0 ? `; grants from non-voters [${ignored.join(',')}] do not count` : ''})`,
      );
    }
    for (const t of [...this.votes.keys()]) if (t < term) this.votes.delete(t);
    // Keep the sorted list of terms with a leader (binary insertion).
    let lo = 0;
    let hi = this.leaderTerms.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.leaderTerms[mid] as number) < term) lo = mid + 1;
      else hi = mid;
    }
    this.leaderTerms.splice(lo, 0, term);
    this.leaderInfo.set(term, { node, electionConfig: config, commitConfig: null });
    this.checkAdjacentConfigs(lo);
  }

  /** Checks the leader at position k of leaderTerms against its neighbours. */
  private checkAdjacentConfigs(k: number): void {
    const prev = this.leaderTerms[k - 1];
    const cur = this.leaderTerms[k] as number;
    const next = this.leaderTerms[k + 1];
    if (prev !== undefined) this.checkConfigPair(prev, cur);
    if (next !== undefined) this.checkConfigPair(cur, next);
  }

  private checkConfigPair(earlier: number, later: number): void {
    const a = this.leaderInfo.get(earlier) as LeaderInfo;
    const b = this.leaderInfo.get(later) as LeaderInfo;
    // The earlier leader's configuration that matters is the one it last committed with (a
    // leader may commit several changes in its term, so its election configuration can be
    // several servers away from the next leader's); if it never advanced its commit index, the
    // one it was elected in.
    const [how, c] = a.commitConfig !== null ? ['last advanced its commit index with', a.commitConfig] : ['was elected with', a.electionConfig];
    if (!quorumsOverlap(c.voters, b.electionConfig.voters)) {
      this.fail(
        'config-overlap',
        `leader ${a.node} of term ${earlier} ${how} voters ${voters(c)}; the next leader, ${b.node} of term ${later}, was elected with voters ` +
          `${voters(b.electionConfig)}: a majority of each can be disjoint, so committed entries could be lost (thesis §4.1)`,
      );
    }
  }

  // ----- durable state: Log Matching, committed entries, Leader Completeness -----

  /**
   * `log` is the node's whole durable log after a write (index i at log[i-1]) and `hardState` its
   * durable hard state; entries from `changedFrom` on were (re)written by this write.
   */
  observeDurable(node: NodeId, log: readonly Entry[], changedFrom: number, hardState: HardState, base: LogBase = NO_BASE): void {
    // With compaction the log starts after `base` (a snapshot or a discarded prefix).
    const first = base.index + 1;
    const lastIndex = base.index + log.length;
    this.durableLog.set(node, { log, first });
    for (let i = Math.max(first, changedFrom); i <= lastIndex; i++) {
      const e = log[i - first] as Entry;
      if (e.index !== i) this.fail('driver-contract', `${node}'s durable log holds index ${e.index} at position ${i}`);
      const prevTerm = i === first ? base.term : (log[i - first - 1] as Entry).term;
      if (e.term < prevTerm) {
        this.fail('log-matching', `${node}'s durable log has term ${e.term} at index ${i} after term ${prevTerm}`);
      }
      const key = `${i}:${e.term}`;
      const known = this.logKeys.get(key);
      if (known === undefined) {
        this.logKeys.set(key, { entry: e, prevTerm, firstSeenAt: node });
      } else if (!sameEntry(known.entry, e)) {
        this.fail(
          'log-matching',
          `index ${i} term ${e.term} names two different entries: ${describeEntry(known.entry)} at ${known.firstSeenAt}, ${describeEntry(e)} at ${node}`,
        );
      } else if (known.prevTerm !== prevTerm) {
        this.fail(
          'log-matching',
          `entry (${i},${e.term}) follows term ${known.prevTerm} at ${known.firstSeenAt} but term ${prevTerm} at ${node}: the logs differ before a matching entry`,
        );
      }
    }
    // Committed entries are never removed or changed (§5.4): check the rewritten part below the old commit.
    const oldCommit = this.durableCommit.get(node) ?? 0;
    if (lastIndex < oldCommit) {
      this.fail('leader-completeness', `${node} truncated its durable log to ${lastIndex}, below its commit index ${oldCommit}`);
    }
    for (let i = Math.max(first, changedFrom); i <= oldCommit; i++) {
      const c = this.committed[i];
      const e = log[i - first] as Entry;
      if (c !== undefined && !sameEntry(c.entry, e)) {
        this.fail('leader-completeness', `${node} overwrote committed ${describeEntry(c.entry)} with ${describeEntry(e)}`);
      }
    }
    if (hardState.commit > lastIndex) {
      this.fail('driver-contract', `${node} made commit index ${hardState.commit} durable with only ${lastIndex} durable entries`);
    }
    this.durableCommit.set(node, Math.max(oldCommit, hardState.commit));
    const from = Math.max(this.registeredUpTo.get(node) ?? 0, base.index);
    for (let i = from + 1; i <= hardState.commit; i++) this.registerCommitted(log[i - first] as Entry, hardState.term, node);
    if (hardState.commit > from) this.registeredUpTo.set(node, hardState.commit);
    this.maybeVerifyLeader(node);
  }

  private registerCommitted(entry: Entry, commitTerm: number, node: NodeId): void {
    const known = this.committed[entry.index];
    if (known !== undefined && !sameEntry(known.entry, entry)) {
      this.fail(
        'state-machine-safety',
        `two different entries committed at index ${entry.index}: ${describeEntry(known.entry)} (at ${known.seenAt}) and ${describeEntry(entry)} (at ${node})`,
      );
    }
    if (known !== undefined && known.commitTerm <= commitTerm) return;
    if (known === undefined) {
      this.committed[entry.index] = { entry, commitTerm, seenAt: node };
      if (entry.type === 'config') this.registerConfigChange(entry);
    } else known.commitTerm = commitTerm;
    for (const [leader, term] of this.verifiedLeaders) {
      if (term > commitTerm) this.checkLeaderHas(leader, term, entry, commitTerm);
    }
  }

  /** A committed config entry: remember removals (a later committed re-add forgets them). */
  private registerConfigChange(entry: Entry): void {
    let change;
    try {
      change = decodeConfChange(entry.data);
    } catch (e) {
      this.fail('driver-contract', `committed config entry ${describeEntry(entry)} does not decode: ${(e as Error).message}`);
    }
    const removed = this.removedAt.get(change.node);
    if (change.type === 'remove') {
      if (removed === undefined || removed < entry.index) this.removedAt.set(change.node, entry.index);
    } else if (removed !== undefined && removed < entry.index) {
      this.removedAt.delete(change.node);
    }
  }

  /** Nodes whose removal is committed (and not undone by a later committed add), with the index of that change. */
  removedNodes(): ReadonlyMap<NodeId, number> {
    return this.removedAt;
  }

  private maybeVerifyLeader(node: NodeId): void {
    const r = this.role.get(node);
    if (r === undefined || r.role !== 'leader' || this.verifiedLeaders.get(node) === r.term) return;
    const log = this.durableLog.get(node)?.log;
    // A new leader appends a no-op of its term first (§8). Once an entry of its term is durable, its
    // durable log holds everything it had when elected, and a leader never removes entries (§5.3).
    const last = log?.[log.length - 1];
    if (last === undefined || last.term !== r.term) return;
    this.verifiedLeaders.set(node, r.term);
    for (let i = 1; i < this.committed.length; i++) {
      const c = this.committed[i];
      if (c !== undefined && c.commitTerm < r.term) this.checkLeaderHas(node, r.term, c.entry, c.commitTerm);
    }
  }

  private checkLeaderHas(leader: NodeId, term: number, entry: Entry, commitTerm: number): void {
    const d = this.durableLog.get(leader);
    // A compacted entry is in the leader's snapshot, which State Machine Safety checks when it is made or installed.
    if (d !== undefined && entry.index < d.first) return;
    const has = d?.log[entry.index - (d?.first ?? 1)];
    if (has === undefined || !sameEntry(has, entry)) {
      this.fail(
        'leader-completeness',
        `leader ${leader} of term ${term} lacks ${describeEntry(entry)}, committed by term ${commitTerm}` +
          (has === undefined ? ' (its log is shorter)' : `; it has ${describeEntry(has)}`),
      );
    }
  }

  // ----- applying: State Machine Safety -----

  /** `node` applied `entry` to its state machine while in term `nodeTerm`. */
  observeApply(node: NodeId, entry: Entry, nodeTerm: number): void {
    const first = this.appliedAt[entry.index];
    if (first === undefined) this.appliedAt[entry.index] = { entry, node };
    else if (!sameEntry(first.entry, entry)) {
      this.fail(
        'state-machine-safety',
        `${first.node} applied ${describeEntry(first.entry)} but ${node} applied ${describeEntry(entry)} at index ${entry.index}`,
      );
    }
    this.registerCommitted(entry, nodeTerm, node);
  }

  // ----- commit index: never decreases -----

  observeCommit(node: NodeId, commit: number): void {
    const last = this.lastCommit.get(node);
    if (last !== undefined && commit < last) {
      this.fail('commit-monotonic', `${node}'s commit index went from ${last} down to ${commit}`);
    }
    this.lastCommit.set(node, commit);
  }

  /**
   * Leader `node` of `term` moved its commit index from `oldCommit` up to `newCommit`; its durable
   * log holds `atCommit` there (undefined: it does not hold that index durably).
   */
  observeLeaderCommit(
    node: NodeId,
    term: number,
    oldCommit: number,
    newCommit: number,
    atCommit: Entry | undefined,
    /** The configuration in effect at the leader as it advanced (for the overlap check). */
    config?: ClusterConfig,
  ): void {
    if (config !== undefined) {
      const info = this.leaderInfo.get(term);
      if (info !== undefined && info.node === node) {
        info.commitConfig = config;
        let lo = 0;
        let hi = this.leaderTerms.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if ((this.leaderTerms[mid] as number) < term) lo = mid + 1;
          else hi = mid;
        }
        const next = this.leaderTerms[lo + 1];
        if (next !== undefined) this.checkConfigPair(term, next);
      }
    }
    if (atCommit === undefined) {
      this.fail('commit-rule', `leader ${node} of term ${term} moved its commit index to ${newCommit}, beyond its durable log`);
    }
    if (atCommit.term !== term) {
      this.fail(
        'commit-rule',
        `leader ${node} of term ${term} moved its commit index from ${oldCommit} to ${newCommit}, an entry of term ${atCommit.term}: ` +
          `only entries of the leader's own term may be committed by counting replicas (§5.4.2, Figure 8)`,
      );
    }
  }

  /**
   * `node` is (or is not) an "orphan" leader: leading although it is not a voter of its
   * configuration and that configuration's entry is committed in its log. Thesis §4.2.2: it
   * steps down once the change commits; it may take at most `boundMs`.
   */
  observeOrphanLeader(node: NodeId, term: number, orphan: boolean, boundMs: number): void {
    if (!orphan) {
      this.orphanSince.delete(node);
      return;
    }
    const now = this.ctx.now?.() ?? 0;
    const since = this.orphanSince.get(node) ?? now;
    this.orphanSince.set(node, since);
    if (now - since > boundMs) {
      this.fail(
        'removed-leader',
        `${node} still leads term ${term} ${(now - since).toFixed(1)}ms after its removal committed (bound ${boundMs}ms); thesis §4.2.2: it steps down once the change commits`,
      );
    }
  }

  observeCrash(node: NodeId): void {
    this.orphanSince.delete(node);
    this.forgetReadsOf(node);
    this.lastCommit.delete(node);
    this.verifiedLeaders.delete(node);
    this.role.delete(node);
  }

  /** After a restart from durable state whose commit index was `durableCommit`, the core reports `commit`. */
  observeRestart(node: NodeId, durableCommit: number, commit: number): void {
    if (commit < durableCommit) {
      this.fail('commit-monotonic', `${node} restarted with commit index ${commit}, below its durable commit index ${durableCommit}`);
    }
    this.lastCommit.set(node, commit);
  }

  // ----- the state machine's applied index: never backwards -----

  /**
   * `node`'s state machine now stands at `index`, after `why` ('apply', 'snapshot' install, or
   * 'restart' once rebuilt from its snapshot and durable log). It must never go backwards.
   */
  observeAppliedIndex(node: NodeId, index: number, why: 'apply' | 'snapshot' | 'restart'): void {
    const before = this.appliedIndex.get(node) ?? 0;
    if (index < before) {
      const how =
        why === 'restart'
          ? `restarted with its state machine at ${index} (snapshot + durable log up to the durable commit index), below the ${before} it had applied before the crash: something was applied before its commit index was durable`
          : why === 'snapshot'
            ? `switched in a snapshot at ${index}, below the ${before} it had already applied: a snapshot install must never move the state machine back`
            : `applied index went from ${before} back to ${index}`;
      this.fail('applied-monotonic', `${node} ${how}`);
    }
    this.appliedIndex.set(node, index);
  }

  // ----- the client's view: Durability -----

  recordAck(ack: AcknowledgedProposal): void {
    const c = this.committed[ack.index];
    if (c === undefined || c.entry.term !== ack.term || !sameBytes(c.entry.data, ack.data)) {
      this.fail('durability', `${ack.node} acknowledged (${ack.index},${ack.term}) but that is not the committed entry at ${ack.index}`);
    }
    this.acks.push(ack);
    this.maxAckedIndex = Math.max(this.maxAckedIndex, ack.index);
  }

  // ----- reads: linearizability of ReadIndex answers -----

  /** A client asked `node` for a linearizable read `requestId` now. */
  observeReadIssued(node: NodeId, requestId: number): void {
    this.pendingReads.set(`${node}:${requestId}`, { floor: this.maxAckedIndex, issuedAtMs: this.ctx.now?.() ?? 0 });
  }

  /** `node` answered read `requestId` with read index `index`. */
  observeReadIndex(node: NodeId, requestId: number, index: number): void {
    const key = `${node}:${requestId}`;
    const p = this.pendingReads.get(key);
    if (p === undefined) return; // not issued through the checker (or issued before a crash)
    this.pendingReads.delete(key);
    if (index < p.floor) {
      this.fail(
        'linearizable-read',
        `${node} answered read ${requestId} (issued at ${formatTime(p.issuedAtMs)}) with index ${index}, but a write at index ${p.floor} was acknowledged before the read was issued: a stale read`,
      );
    }
  }

  /** The read failed, or its node crashed: nothing to check. */
  forgetRead(node: NodeId, requestId: number): void {
    this.pendingReads.delete(`${node}:${requestId}`);
  }

  forgetReadsOf(node: NodeId): void {
    for (const key of [...this.pendingReads.keys()]) if (key.startsWith(`${node}:`)) this.pendingReads.delete(key);
  }

  /** End of run: every acknowledged proposal must be applied, unchanged, by every node. */
  checkAcknowledgedApplied(appliedByNode: ReadonlyMap<NodeId, readonly Entry[]>): void {
    for (const ack of this.acks) {
      for (const [node, applied] of appliedByNode) {
        const e = applied[ack.index - 1];
        if (e === undefined) {
          this.fail(
            'durability',
            `acknowledged write (${ack.index},${ack.term}) from ${ack.node} at ${formatTime(ack.timeMs)} was never applied by ${node} (it applied ${applied.length} entries)`,
          );
        }
        if (e.term !== ack.term || !sameBytes(e.data, ack.data)) {
          this.fail(
            'durability',
            `acknowledged write (${ack.index},${ack.term}) from ${ack.node} is lost: ${node} applied ${describeEntry(e)} at that index`,
          );
        }
      }
    }
  }

  /**
   * The pairwise Log Matching property over a set of durable logs, exactly as the paper states it.
   * A log is an array from index 1, or (after compaction) `{ firstIndex, entries }`; only the
   * indexes both logs still hold are compared.
   */
  checkLogMatching(logs: ReadonlyMap<NodeId, readonly Entry[] | { readonly firstIndex: number; readonly entries: readonly Entry[] }>): void {
    const nodes = [...logs.keys()];
    const norm = (l: readonly Entry[] | { readonly firstIndex: number; readonly entries: readonly Entry[] }) =>
      Array.isArray(l) ? { first: 1, entries: l as readonly Entry[] } : { first: (l as { firstIndex: number }).firstIndex, entries: (l as { entries: readonly Entry[] }).entries };
    for (let x = 0; x < nodes.length; x++) {
      for (let y = x + 1; y < nodes.length; y++) {
        const a = norm(logs.get(nodes[x] as NodeId) as readonly Entry[]);
        const b = norm(logs.get(nodes[y] as NodeId) as readonly Entry[]);
        const lo = Math.max(a.first, b.first);
        const at = (l: { first: number; entries: readonly Entry[] }, i: number) => l.entries[i - l.first] as Entry;
        let top = Math.min(a.first + a.entries.length, b.first + b.entries.length) - 1;
        while (top >= lo && at(a, top).term !== at(b, top).term) top--;
        for (let i = lo; i <= top; i++) {
          const ea = at(a, i);
          const eb = at(b, i);
          if (!sameEntry(ea, eb)) {
            this.fail(
              'log-matching',
              `${nodes[x]} and ${nodes[y]} both hold an entry at index ${top} with term ${at(a, top).term}, but differ at index ${i}: ${describeEntry(ea)} vs ${describeEntry(eb)}`,
            );
          }
        }
      }
    }
  }
}
