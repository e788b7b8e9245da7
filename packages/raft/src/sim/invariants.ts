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
// The checker is independent of the simulator so that tests can feed it deliberately broken
// histories and show each property can fail.

import type { Entry, HardState, NodeId, Role } from '../core/types.js';
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
  | 'core-exception';

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
  const text = new TextDecoder('utf-8', { fatal: false }).decode(e.data.subarray(0, 24));
  const printable = /^[\x20-\x7e]*$/.test(text) ? JSON.stringify(text) : `${e.data.length} bytes`;
  return `(${e.index},${e.term}) ${printable}${e.data.length > 24 ? '…' : ''}`;
}

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
  private readonly durableLog = new Map<NodeId, readonly Entry[]>();
  private readonly durableCommit = new Map<NodeId, number>();
  private readonly registeredUpTo = new Map<NodeId, number>();
  private readonly lastCommit = new Map<NodeId, number>();
  /** Leaders whose durable log already holds an entry of their own term: their log must keep every committed entry. */
  private readonly verifiedLeaders = new Map<NodeId, number>();
  private readonly acks: AcknowledgedProposal[] = [];
  private maxAckedIndex = 0;
  /** Reads waiting for their index: "node:requestId" → the highest acknowledged write index when issued. */
  private readonly pendingReads = new Map<string, { floor: number; issuedAtMs: number }>();

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

  observeRole(node: NodeId, role: Role, term: number): void {
    const prev = this.role.get(node);
    if (prev !== undefined && prev.role === role && prev.term === term) return;
    this.role.set(node, { role, term });
    if (this.verifiedLeaders.has(node) && (role !== 'leader' || this.verifiedLeaders.get(node) !== term)) {
      this.verifiedLeaders.delete(node);
    }
    if (role !== 'leader') return;
    const existing = this.leaderOfTerm.get(term);
    if (existing !== undefined && existing !== node) {
      this.fail('election-safety', `two leaders in term ${term}: ${existing} and ${node}`);
    }
    this.leaderOfTerm.set(term, node);
    this.maybeVerifyLeader(node);
  }

  // ----- durable state: Log Matching, committed entries, Leader Completeness -----

  /**
   * `log` is the node's whole durable log after a write (index i at log[i-1]) and `hardState` its
   * durable hard state; entries from `changedFrom` on were (re)written by this write.
   */
  observeDurable(node: NodeId, log: readonly Entry[], changedFrom: number, hardState: HardState): void {
    this.durableLog.set(node, log);
    for (let i = Math.max(1, changedFrom); i <= log.length; i++) {
      const e = log[i - 1] as Entry;
      if (e.index !== i) this.fail('driver-contract', `${node}'s durable log holds index ${e.index} at position ${i}`);
      const prevTerm = i === 1 ? 0 : (log[i - 2] as Entry).term;
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
    if (log.length < oldCommit) {
      this.fail('leader-completeness', `${node} truncated its durable log to ${log.length}, below its commit index ${oldCommit}`);
    }
    for (let i = Math.max(1, changedFrom); i <= oldCommit; i++) {
      const c = this.committed[i];
      const e = log[i - 1] as Entry;
      if (c !== undefined && !sameEntry(c.entry, e)) {
        this.fail('leader-completeness', `${node} overwrote committed ${describeEntry(c.entry)} with ${describeEntry(e)}`);
      }
    }
    if (hardState.commit > log.length) {
      this.fail('driver-contract', `${node} made commit index ${hardState.commit} durable with only ${log.length} durable entries`);
    }
    this.durableCommit.set(node, Math.max(oldCommit, hardState.commit));
    const from = this.registeredUpTo.get(node) ?? 0;
    for (let i = from + 1; i <= hardState.commit; i++) this.registerCommitted(log[i - 1] as Entry, hardState.term, node);
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
    if (known === undefined) this.committed[entry.index] = { entry, commitTerm, seenAt: node };
    else known.commitTerm = commitTerm;
    for (const [leader, term] of this.verifiedLeaders) {
      if (term > commitTerm) this.checkLeaderHas(leader, term, entry, commitTerm);
    }
  }

  private maybeVerifyLeader(node: NodeId): void {
    const r = this.role.get(node);
    if (r === undefined || r.role !== 'leader' || this.verifiedLeaders.get(node) === r.term) return;
    const log = this.durableLog.get(node);
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
    const has = this.durableLog.get(leader)?.[entry.index - 1];
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
  observeLeaderCommit(node: NodeId, term: number, oldCommit: number, newCommit: number, atCommit: Entry | undefined): void {
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

  observeCrash(node: NodeId): void {
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

  /** The pairwise Log Matching property over a set of durable logs, exactly as the paper states it. */
  checkLogMatching(logs: ReadonlyMap<NodeId, readonly Entry[]>): void {
    const nodes = [...logs.keys()];
    for (let x = 0; x < nodes.length; x++) {
      for (let y = x + 1; y < nodes.length; y++) {
        const a = logs.get(nodes[x] as NodeId) as readonly Entry[];
        const b = logs.get(nodes[y] as NodeId) as readonly Entry[];
        let top = Math.min(a.length, b.length);
        while (top > 0 && (a[top - 1] as Entry).term !== (b[top - 1] as Entry).term) top--;
        for (let i = 1; i <= top; i++) {
          const ea = a[i - 1] as Entry;
          const eb = b[i - 1] as Entry;
          if (!sameEntry(ea, eb)) {
            this.fail(
              'log-matching',
              `${nodes[x]} and ${nodes[y]} both hold an entry at index ${top} with term ${(a[top - 1] as Entry).term}, but differ at index ${i}: ${describeEntry(ea)} vs ${describeEntry(eb)}`,
            );
          }
        }
      }
    }
  }
}
