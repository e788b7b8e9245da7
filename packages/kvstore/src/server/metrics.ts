// Prometheus metrics of one member (prom-client, one Registry per member so several members in
// one process, as in the tests, do not mix). Served at GET /metrics on the client listener.
// Names follow etcd's where etcd has the same quantity (etcd_server_* → ballot_kv_*).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Routes counted by name; anything else is counted as "other" (bounded label cardinality). */
const KNOWN_ROUTES = new Set([
  '/v3/kv/range', '/v3/kv/put', '/v3/kv/deleterange', '/v3/kv/txn', '/v3/kv/compaction', '/v3/watch',
  '/v3/lease/grant', '/v3/lease/revoke', '/v3/kv/lease/revoke', '/v3/lease/keepalive', '/v3/lease/timetolive',
  '/v3/kv/lease/timetolive', '/v3/lease/leases', '/v3/kv/lease/leases', '/v3/cluster/member/list',
  '/v3/cluster/member/add', '/v3/cluster/member/remove', '/v3/cluster/member/promote', '/v3/maintenance/status',
  '/health', '/readyz', '/livez', '/metrics', '/version', '/ballot/v1',
]);

export interface MetricsSources {
  readonly commitIndex: () => number;
  readonly appliedIndex: () => number;
  readonly term: () => number;
  readonly isLeader: () => boolean;
  readonly hasLeader: () => boolean;
  readonly watchers: () => number;
  readonly revision: () => number;
  readonly pendingProposals: () => number;
}

export class KvMetrics {
  readonly registry = new Registry();
  readonly proposals: Counter<'result'>;
  readonly leaderChanges: Counter;
  readonly requests: Counter<'route' | 'code'>;
  /** Entries the store applied since this process started, and entries it skipped because it had them already (restart). */
  readonly applyEntries: Counter<'kind'>;
  readonly forwarded: Counter<'result'>;
  readonly logSaveSeconds: Histogram;

  constructor(src: MetricsSources, labels: { readonly member: string; readonly name: string }) {
    const r = this.registry;
    r.setDefaultLabels({ member: labels.member, name: labels.name });
    collectDefaultMetrics({ register: r, prefix: 'ballot_kv_process_' });
    this.proposals = new Counter({ name: 'ballot_kv_proposals_total', help: 'Write proposals made by this member (including on behalf of followers), by outcome', labelNames: ['result'], registers: [r] });
    this.leaderChanges = new Counter({ name: 'ballot_kv_leader_changes_seen_total', help: 'Leader changes this member has seen', registers: [r] });
    this.requests = new Counter({ name: 'ballot_kv_requests_total', help: 'Client HTTP requests by route and status code', labelNames: ['route', 'code'], registers: [r] });
    this.applyEntries = new Counter({ name: 'ballot_kv_apply_entries_total', help: 'Log entries handed to the store since start: applied, or skipped because the store had them already (restart)', labelNames: ['kind'], registers: [r] });
    this.forwarded = new Counter({ name: 'ballot_kv_forwarded_requests_total', help: 'Requests this follower forwarded to the leader, by outcome', labelNames: ['result'], registers: [r] });
    this.logSaveSeconds = new Histogram({
      name: 'ballot_kv_raft_log_save_duration_seconds',
      help: 'Raft log saves (one atomic LevelDB batch, fsync included)',
      buckets: [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024],
      registers: [r],
    });
    const gauge = (name: string, help: string, fn: () => number): void => {
      new Gauge({ name, help, registers: [r], collect() { this.set(fn()); } });
    };
    gauge('ballot_kv_raft_commit_index', 'The Raft commit index this member knows', src.commitIndex);
    gauge('ballot_kv_raft_applied_index', 'The last Raft index applied to the store', src.appliedIndex);
    gauge('ballot_kv_apply_lag_entries', 'Committed entries not yet applied (commit - applied)', () => Math.max(0, src.commitIndex() - src.appliedIndex()));
    gauge('ballot_kv_raft_term', 'The current Raft term', src.term);
    gauge('ballot_kv_is_leader', '1 if this member leads', () => (src.isLeader() ? 1 : 0));
    gauge('ballot_kv_has_leader', '1 if a leader is known and was heard from recently', () => (src.hasLeader() ? 1 : 0));
    gauge('ballot_kv_watchers', 'Active watchers on this member', src.watchers);
    gauge('ballot_kv_revision', "The store's current revision", src.revision);
    gauge('ballot_kv_pending_proposals', 'Proposals queued or awaiting apply in the Raft driver', src.pendingProposals);
  }

  /**
   * Chaos experiments: ballot_kv_unsafe_mode{flag} is 1 for each deliberate-bug flag this member
   * runs with (absent otherwise), and its clock (clock.ts) as ballot_kv_clock_skew_ms and
   * ballot_kv_clock_rate. Called once at start; nothing is registered when all are off.
   */
  reportChaos(unsafeFlags: readonly string[], clock: () => { readonly skewMs: number; readonly rate: number }): void {
    const r = this.registry;
    const mode = new Gauge({ name: 'ballot_kv_unsafe_mode', help: '1 for each deliberate-bug flag this member runs with (chaos experiments only)', labelNames: ['flag'], registers: [r] });
    for (const f of unsafeFlags) mode.set({ flag: f }, 1);
    new Gauge({ name: 'ballot_kv_clock_skew_ms', help: "This member's clock skew (--clock-skew-ms, /debug/clock)", registers: [r], collect() { this.set(clock().skewMs); } });
    new Gauge({ name: 'ballot_kv_clock_rate', help: "This member's clock rate (--clock-rate, /debug/clock; 1 = real time)", registers: [r], collect() { this.set(clock().rate); } });
  }

  countRequest(path: string, status: number): void {
    this.requests.inc({ route: KNOWN_ROUTES.has(path) ? path : 'other', code: String(status) });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
