// The simulator's cluster operator: carries out membership changes and leadership transfers the
// way an administrator (or `ballot raft member ...`) would, against whatever node leads now.
//
// It is level-triggered, like a controller's reconcile loop: every periodMs it looks at the
// current leader's configuration and takes ONE step toward its first goal, safe to repeat:
//   add X:    start X (a joining node) → propose add-learner X → once X's replication progress
//             has caught up with the leader's commit index (thesis §4.2.1: catch up before
//             voting), propose promote X → done when X is a voter and that change is committed;
//   remove X: propose remove X → done when the removal is committed; then, if asked, shut X
//             down for good (decommission). Removing the leader itself is allowed: it keeps
//             leading until the change commits, then steps down (thesis §4.2.2).
// Proposals the core refuses (CONF_CHANGE_IN_PROGRESS, NOT_LEADER, TRANSFER_IN_PROGRESS ...) are
// simply retried later. A goal that is not done within goalTimeoutMs is abandoned (traced).
// Transfers are one-shot (the core aborts them by itself after an election timeout).

import { isRaftError } from '../core/errors.js';
import type { NodeId, RaftStatus } from '../core/types.js';
import type { SimCluster } from './cluster.js';
import type { SimRandom } from './random.js';

export type MembershipGoal =
  | { readonly kind: 'add'; readonly node: NodeId }
  | { readonly kind: 'remove'; readonly node: NodeId; readonly decommission: boolean };

export interface OperatorOptions {
  /** Never remove a voter when that would leave fewer voters than this. */
  readonly minVoters: number;
  /** Never add a node when the configuration already has this many members. */
  readonly maxMembers: number;
  /** Default 10 simulated ms. */
  readonly periodMs?: number;
  /** Default 3000 simulated ms. */
  readonly goalTimeoutMs?: number;
}

/** Bound on queued goals; at the bound a new request is dropped (and traced). */
export const MAX_QUEUED_GOALS = 4;

function describeGoal(g: MembershipGoal): string {
  return g.kind === 'add' ? `add ${g.node}` : `remove ${g.node}${g.decommission ? ' (then decommission)' : ''}`;
}

export class MembershipOperator {
  private readonly goals: { goal: MembershipGoal; sinceMs: number }[] = [];
  private running = false;
  private readonly periodMs: number;
  private readonly goalTimeoutMs: number;
  /** Nodes some goal already claimed (a spare is added at most once; ids are never reused). */
  private readonly claimed = new Set<NodeId>();
  /** Goals completed, for tests and traces. */
  completed = 0;
  abandoned = 0;

  constructor(
    private readonly cluster: SimCluster,
    private readonly rng: SimRandom,
    private readonly opts: OperatorOptions,
  ) {
    this.periodMs = opts.periodMs ?? 10;
    this.goalTimeoutMs = opts.goalTimeoutMs ?? 3000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.cluster.schedule(this.periodMs, () => this.loop());
  }

  stop(): void {
    this.running = false;
  }

  pending(): readonly MembershipGoal[] {
    return this.goals.map((g) => g.goal);
  }

  private enqueue(goal: MembershipGoal): void {
    if (this.goals.length >= MAX_QUEUED_GOALS) {
      this.cluster.trace(`OPERATOR drops "${describeGoal(goal)}": ${MAX_QUEUED_GOALS} goals queued`);
      return;
    }
    this.claimed.add(goal.node);
    this.goals.push({ goal, sinceMs: this.cluster.now() });
    this.cluster.trace(`OPERATOR goal: ${describeGoal(goal)}`);
  }

  /** The leader this operator talks to: the up leader of the highest term. */
  private leader(): { id: NodeId; status: RaftStatus } | null {
    let best: { id: NodeId; status: RaftStatus } | null = null;
    for (const id of this.cluster.leaders()) {
      const status = this.cluster.status(id);
      if (best === null || status.term > best.status.term) best = { id, status };
    }
    return best;
  }

  /** Voters of the configuration as the cluster sees it now. */
  private voters(): readonly NodeId[] {
    return this.cluster.currentConfig()?.voters ?? [];
  }

  private members(): NodeId[] {
    const c = this.cluster.currentConfig();
    return c === null ? [] : [...c.voters, ...c.learners];
  }

  /** Add the next spare node (never started, never claimed). */
  requestAdd(): void {
    const spare = this.cluster.ids.find((id) => !this.cluster.isStarted(id) && !this.claimed.has(id));
    if (spare === undefined) {
      this.cluster.trace('OPERATOR: no spare node left to add');
      return;
    }
    if (this.members().length + this.goals.filter((g) => g.goal.kind === 'add').length >= this.opts.maxMembers) {
      this.cluster.trace(`OPERATOR: not adding ${spare}, the cluster already has ${this.opts.maxMembers} members (or adds pending)`);
      return;
    }
    this.enqueue({ kind: 'add', node: spare });
  }

  /** Remove a voter: the leader, or voter number k of the current configuration. */
  requestRemove(target: 'leader' | number, decommission: boolean): NodeId | null {
    const voters = this.voters();
    const removing = this.goals.filter((g) => g.goal.kind === 'remove').length;
    if (voters.length - removing - 1 < this.opts.minVoters) {
      this.cluster.trace(`OPERATOR: not removing a voter, ${voters.length} voters (min ${this.opts.minVoters})`);
      return null;
    }
    const node = target === 'leader' ? (this.leader()?.id ?? null) : (voters[((target % voters.length) + voters.length) % voters.length] ?? null);
    if (node === null || this.claimed.has(node)) return null;
    this.enqueue({ kind: 'remove', node, decommission });
    return node;
  }

  /** Replace a node: remove it (preferring one that is down) and decommission it, then add a spare. */
  requestReplace(target: number): void {
    const voters = this.voters();
    const down = voters.filter((id) => !this.cluster.isUp(id));
    const pool = down.length > 0 ? down : voters;
    const node = pool[((target % Math.max(1, pool.length)) + pool.length) % Math.max(1, pool.length)];
    if (node === undefined || this.claimed.has(node)) return;
    if (!this.cluster.ids.some((id) => !this.cluster.isStarted(id) && !this.claimed.has(id))) {
      this.cluster.trace(`OPERATOR: cannot replace ${node}, no spare node left`);
      return;
    }
    this.enqueue({ kind: 'remove', node, decommission: true });
    this.requestAdd();
  }

  /** Leadership transfer to a random up voter other than the leader (thesis §3.10). */
  requestTransfer(): void {
    const l = this.leader();
    if (l === null) return;
    const candidates = l.status.config.voters.filter((id) => id !== l.id && this.cluster.isUp(id));
    if (candidates.length === 0) return;
    this.cluster.transferLeadership(l.id, this.rng.pick(candidates));
  }

  private loop(): void {
    if (!this.running) return;
    this.reconcile();
    this.cluster.schedule(this.periodMs, () => this.loop());
  }

  /** One step toward the first goal. */
  reconcile(): void {
    const head = this.goals[0];
    if (head === undefined) return;
    const c = this.cluster;
    if (c.now() - head.sinceMs > this.goalTimeoutMs) {
      this.goals.shift();
      this.abandoned++;
      c.trace(`OPERATOR abandons "${describeGoal(head.goal)}" after ${this.goalTimeoutMs}ms`);
      return;
    }
    const l = this.leader();
    if (l === null) return;
    const { status } = l;
    const cfg = status.config;
    const changeCommitted = status.configIndex <= status.commit;
    const g = head.goal;
    const done = (): void => {
      this.goals.shift();
      this.completed++;
      c.trace(`OPERATOR done: ${describeGoal(g)}`);
    };
    if (g.kind === 'add') {
      if (!c.isStarted(g.node)) c.startNode(g.node);
      if (cfg.voters.includes(g.node)) {
        if (changeCommitted) done();
        return;
      }
      if (!changeCommitted) return; // one change at a time: wait for the one in flight
      if (cfg.learners.includes(g.node)) {
        // Thesis §4.2.1: promote only once the new server has caught up.
        const pr = status.progress[g.node];
        if (pr !== undefined && pr.match >= status.commit) c.proposeConfChange(l.id, { type: 'promote', node: g.node });
        return;
      }
      c.proposeConfChange(l.id, { type: 'add-learner', node: g.node });
      return;
    }
    // remove
    if (cfg.voters.includes(g.node) || cfg.learners.includes(g.node)) {
      if (!changeCommitted) return;
      const r = c.proposeConfChange(l.id, { type: 'remove', node: g.node });
      if (isRaftError(r) && r.code === 'BAD_REQUEST') {
        this.goals.shift();
        this.abandoned++;
        c.trace(`OPERATOR abandons "${describeGoal(g)}": ${r.message}`);
      }
      return;
    }
    // Gone from the leader's configuration: done once that is committed (the checker has seen it).
    if (!changeCommitted || !c.invariants().removedNodes().has(g.node)) return;
    if (g.decommission) c.decommission(g.node);
    done();
  }
}
