// KvService over one member's Raft driver and store: what every front end (the etcd JSON gateway,
// the native ws protocol) calls.
//
//   writes          put, deleteRange, txn, compact, lease grant/revoke, registerSession, publish:
//                   validated here (validateCommand: sizes, txn op count, duplicate keys) BEFORE
//                   anything is proposed, then one log entry each (a CommandEnvelope stamped with
//                   a requestId and the proposer's clock). The proposer waits until the entry is
//                   applied locally and answers with the state machine's outcome for that
//                   requestId. On a follower the call is forwarded to the leader (one hop over
//                   the peer listener, see peer.ts) and answered as if local.
//   linearizable    range (default): ReadIndex (thesis §6.4), or the leader lease with
//   reads           --read-mode lease (thesis §6.4.1); then the local store. Followers get the
//                   read index from the leader and read locally.
//   serializable    range with serializable: the local store now, flagged `stale: true`.
//   leader-only     lease keep-alive and time-to-live (the leader's expiry clock), lease list,
//                   member add/remove/promote (Raft configuration changes, thesis §4.1).
//   local           watch (any member streams its own applied history), member list, status.
//
// Consistency over availability: writes and linearizable reads are refused at once with
// NO_LEADER while this member cannot reach a quorum (quorum.ts), rather than waiting for a
// timeout.

import type { ConfChange, NodeId, RaftDriver } from '@ballot/raft';
import { RaftError } from '@ballot/raft';
import { ETCD_MESSAGES, KvError, fromRaftError, toKvError } from '../errors.js';
import type {
  Answer,
  Command,
  CommandEnvelope,
  CommandOutcome,
  CompactRequest,
  DeleteRangeRequest,
  DeleteRangeResult,
  KvService,
  LeaseGrantRequest,
  LeaseGrantResult,
  LeaseKeepAliveResult,
  LeaseTimeToLiveResult,
  Member,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  ReadOptions,
  ResponseHeader,
  StatusResult,
  TxnRequest,
  TxnResult,
  WatchCreateRequest,
  WatchHandle,
  WatchSink,
  WriteOptions,
} from '../types.js';
import type { KvStateMachine } from '../state/machine.js';
import { encodeCommand, validateCommand } from '../state/codec.js';
import type { WatchHub } from '../watch/hub.js';
import type { Lessor } from '../lease/lessor.js';
import { computeMemberId } from './ids.js';
import { KvUsageError, parseUrl } from './flags.js';
import { encodePeerUrls, type PeerBook } from './peers.js';
import type { KvMetrics } from './metrics.js';
import type { QuorumWatch } from './quorum.js';

/** The version Ballot reports in status (etcd's API level it follows, and Ballot's own). */
export const KV_SERVER_VERSION = '3.5.0-ballot.0.1.0';

/** In /v3/maintenance/status `errors` while --unsafe-stale-reads is on (so no run mistakes it for a safe member). */
export const UNSAFE_STALE_READS_STATUS = 'UNSAFE: --unsafe-stale-reads is on: linearizable reads are answered locally without ReadIndex and may be stale';

/** Methods a follower forwards to the leader (the peer endpoint accepts exactly these). */
export type ForwardedCall =
  | { readonly method: 'write'; readonly args: readonly [Command, WriteOptions] }
  | { readonly method: 'leaseKeepAlive'; readonly args: readonly [number] }
  | { readonly method: 'leaseTimeToLive'; readonly args: readonly [number, boolean] }
  | { readonly method: 'leaseLeases'; readonly args: readonly [] }
  | { readonly method: 'memberAdd'; readonly args: readonly [readonly string[], boolean] }
  | { readonly method: 'memberRemove'; readonly args: readonly [string] }
  | { readonly method: 'memberPromote'; readonly args: readonly [string] };

export interface Forwarder {
  /** Sends `call` to the leader `leader`; resolves with its Answer or rejects with a KvError. */
  forward(leader: NodeId, call: ForwardedCall, timeoutMs: number): Promise<Answer<unknown>>;
}

export interface ServiceContext {
  readonly memberId: string;
  readonly clusterId: string;
  readonly clusterToken: string;
  readonly driver: RaftDriver;
  readonly sm: KvStateMachine;
  readonly hub: WatchHub;
  readonly lessor: Lessor;
  readonly book: PeerBook;
  readonly metrics: KvMetrics;
  readonly forwarder: Forwarder;
  readonly requestTimeoutMs: number;
  readonly maxRequestBytes: number;
  /** The current Raft term (kept from the driver's role events). */
  readonly term: () => number;
  /** Why writes and linearizable reads cannot be served now, or null (quorum.ts). */
  readonly quorumProblem: () => string | null;
  /** Fails requests waiting inside Raft as soon as the quorum is lost (quorum.ts). */
  readonly quorumWatch: QuorumWatch;
  /** The leader's client URL, for errors (a client may retry there). */
  readonly leaderClientUrl: () => string | null;
  readonly backup: () => AsyncIterable<Uint8Array>;
  /**
   * DELIBERATE BUG (--unsafe-stale-reads): linearizable reads skip the quorum check and ReadIndex
   * and answer from the local store, which a partitioned or lagging member has not brought up to
   * date (the stale read thesis §6.4 exists to prevent). Default false.
   */
  readonly unsafeStaleReads?: boolean;
  /** This member's wall clock (clock.ts; --clock-skew-ms, --clock-rate). Default Date.now. */
  readonly nowMs?: () => number;
}

interface Waiter {
  outcome: CommandOutcome | null;
}

export class NodeKvService implements KvService {
  /** Proposals of this member waiting for their outcome, by requestId (bounded by the driver's maxQueuedProposals). */
  private readonly waiters = new Map<string, Waiter>();
  private readonly requestIdPrefix: string;
  private nextRequest = 1;
  private readonly nowMs: () => number;

  constructor(private readonly c: ServiceContext) {
    this.nowMs = c.nowMs ?? Date.now;
    this.requestIdPrefix = `${c.memberId}-${Date.now().toString(36)}-`;
    c.sm.on('outcome', (requestId, outcome) => {
      const w = this.waiters.get(requestId);
      if (w !== undefined) w.outcome = outcome;
    });
  }

  header(revision = this.c.sm.revision): ResponseHeader {
    return { clusterId: this.c.clusterId, memberId: this.c.memberId, revision, raftTerm: this.c.term() };
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  async range(req: RangeRequest, opts: ReadOptions = {}): Promise<Answer<RangeResult>> {
    // The header carries the revision the read saw: a current-revision range is computed when
    // sm.range() is called, so the revision is taken just before (an apply landing while the
    // promise settles must not make the header newer than the data).
    if (req.serializable === true || this.c.unsafeStaleReads === true) {
      // The bug --unsafe-stale-reads injects: a linearizable read served like a serializable one
      // (but not flagged stale, so the client believes it linearizable).
      if (req.serializable !== true) {
        const revision = this.c.sm.revision;
        const result = await this.c.sm.range(req);
        return { header: this.header(revision), result };
      }
      const revision = this.c.sm.revision;
      const result = await this.c.sm.range(req);
      return { header: this.header(revision), result, stale: true };
    }
    this.requireQuorum();
    try {
      await this.c.quorumWatch.guard(this.c.driver.read({ timeoutMs: opts.timeoutMs ?? this.c.requestTimeoutMs }), (p) => this.noLeader(p));
    } catch (e) {
      throw this.raftError(e);
    }
    const revision = this.c.sm.revision;
    const result = await this.c.sm.range(req);
    return { header: this.header(revision), result };
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  put(req: PutRequest, opts?: WriteOptions): Promise<Answer<PutResult>> {
    return this.write({ op: 'put', req }, opts) as Promise<Answer<PutResult>>;
  }

  deleteRange(req: DeleteRangeRequest, opts?: WriteOptions): Promise<Answer<DeleteRangeResult>> {
    return this.write({ op: 'deleteRange', req }, opts) as Promise<Answer<DeleteRangeResult>>;
  }

  txn(req: TxnRequest, opts?: WriteOptions): Promise<Answer<TxnResult>> {
    return this.write({ op: 'txn', req }, opts) as Promise<Answer<TxnResult>>;
  }

  compact(req: CompactRequest, opts?: WriteOptions): Promise<Answer<Record<string, never>>> {
    return this.write({ op: 'compact', revision: req.revision }, opts) as Promise<Answer<Record<string, never>>>;
  }

  leaseGrant(req: LeaseGrantRequest, opts?: WriteOptions): Promise<Answer<LeaseGrantResult>> {
    return this.write({ op: 'leaseGrant', id: req.id ?? 0, ttlSec: req.ttlSec }, opts) as Promise<Answer<LeaseGrantResult>>;
  }

  leaseRevoke(id: number, opts?: WriteOptions): Promise<Answer<Record<string, never>>> {
    return this.write({ op: 'leaseRevoke', id }, opts) as Promise<Answer<Record<string, never>>>;
  }

  registerSession(opts?: WriteOptions): Promise<Answer<{ readonly clientId: number }>> {
    return this.write({ op: 'registerSession' }, opts) as Promise<Answer<{ readonly clientId: number }>>;
  }

  /** A member's name and client URLs (etcd's publish), through the log. */
  publish(name: string, clientUrls: readonly string[], opts?: WriteOptions): Promise<Answer<unknown>> {
    return this.write({ op: 'publish', memberId: this.c.memberId, name, clientUrls }, opts);
  }

  /** Validates, then proposes here (leader) or forwards to the leader (follower). */
  async write(cmd: Command, opts: WriteOptions = {}): Promise<Answer<unknown>> {
    validateCommand(cmd);
    const wire: WriteOptions = {
      ...(opts.session !== undefined ? { session: opts.session } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    };
    return this.onLeader({ method: 'write', args: [cmd, wire] }, opts.timeoutMs);
  }

  /**
   * The leader's half of a write: one log entry, answered with the state machine's outcome once
   * it is applied here.
   */
  private async proposeHere(cmd: Command, opts: WriteOptions): Promise<Answer<unknown>> {
    // Validated once: by write() for this member's own clients, by handleForwarded() for a
    // follower's (a forwarded command is checked again here, never trusted).
    const requestId = this.requestIdPrefix + (this.nextRequest++).toString(36);
    const env: CommandEnvelope = { requestId, timeMs: this.nowMs(), ...(opts.session !== undefined ? { session: opts.session } : {}), cmd };
    const bytes = encodeCommand(env);
    if (bytes.byteLength > this.c.maxRequestBytes) {
      throw new KvError('REQUEST_TOO_LARGE', `${ETCD_MESSAGES.REQUEST_TOO_LARGE} (${bytes.byteLength} bytes > ${this.c.maxRequestBytes})`);
    }
    const waiter: Waiter = { outcome: null };
    this.waiters.set(requestId, waiter);
    try {
      await this.c.quorumWatch.guard(this.c.driver.propose(bytes, { timeoutMs: opts.timeoutMs ?? this.c.requestTimeoutMs }), (p) => this.outcomeUnknown(p));
    } catch (e) {
      this.c.metrics.proposals.inc({ result: 'failed' });
      throw this.raftError(e);
    } finally {
      this.waiters.delete(requestId);
    }
    const o = waiter.outcome;
    if (o === null) {
      this.c.metrics.proposals.inc({ result: 'failed' });
      throw new KvError('INTERNAL', `entry for request ${requestId} was applied but the store reported no outcome`);
    }
    this.c.metrics.proposals.inc({ result: 'ok' });
    if (!o.ok) throw new KvError(o.code, o.message);
    // The lease's clock starts now, on the leader that granted it (not at the lessor's next check).
    if (cmd.op === 'leaseGrant') {
      const g = o.result as LeaseGrantResult;
      this.c.lessor.granted(g.id, g.ttlSec);
    }
    return { header: this.header(o.revision), result: o.result };
  }

  // ---------------------------------------------------------------------------------------------
  // Leases (leader-only parts)

  async leaseKeepAlive(id: number): Promise<Answer<LeaseKeepAliveResult>> {
    return this.onLeader({ method: 'leaseKeepAlive', args: [id] }) as Promise<Answer<LeaseKeepAliveResult>>;
  }

  async leaseTimeToLive(id: number, keys: boolean): Promise<Answer<LeaseTimeToLiveResult>> {
    return this.onLeader({ method: 'leaseTimeToLive', args: [id, keys] }) as Promise<Answer<LeaseTimeToLiveResult>>;
  }

  async leaseLeases(): Promise<Answer<{ readonly ids: readonly number[] }>> {
    return this.onLeader({ method: 'leaseLeases', args: [] }) as Promise<Answer<{ readonly ids: readonly number[] }>>;
  }

  // ---------------------------------------------------------------------------------------------
  // Watches

  watch(req: WatchCreateRequest, sink: WatchSink): WatchHandle {
    return this.c.hub.watch(req, sink);
  }

  // ---------------------------------------------------------------------------------------------
  // Cluster

  private membersNow(): Member[] {
    const st = this.c.driver.status();
    const published = this.c.sm.members();
    const one = (id: NodeId, isLearner: boolean): Member => {
      const p = published.get(id);
      return { id, name: p?.name ?? '', peerUrls: [...(this.c.book.get(id) ?? [])], clientUrls: [...(p?.clientUrls ?? [])], isLearner };
    };
    return [...st.config.voters.map((id) => one(id, false)), ...st.config.learners.map((id) => one(id, true))];
  }

  async memberList(): Promise<Answer<{ readonly members: readonly Member[] }>> {
    return { header: this.header(), result: { members: this.membersNow() } };
  }

  memberAdd(peerUrls: readonly string[], isLearner: boolean): Promise<Answer<{ readonly member: Member; readonly members: readonly Member[] }>> {
    return this.onLeader({ method: 'memberAdd', args: [[...peerUrls], isLearner] }) as Promise<Answer<{ readonly member: Member; readonly members: readonly Member[] }>>;
  }

  memberRemove(id: string): Promise<Answer<{ readonly members: readonly Member[] }>> {
    return this.onLeader({ method: 'memberRemove', args: [id] }) as Promise<Answer<{ readonly members: readonly Member[] }>>;
  }

  memberPromote(id: string): Promise<Answer<{ readonly members: readonly Member[] }>> {
    return this.onLeader({ method: 'memberPromote', args: [id] }) as Promise<Answer<{ readonly members: readonly Member[] }>>;
  }

  private async addHere(peerUrls: readonly string[], isLearner: boolean): Promise<Answer<{ member: Member; members: Member[] }>> {
    let urls: string[];
    try {
      if (!Array.isArray(peerUrls) || peerUrls.length === 0) throw new KvUsageError('member add needs at least one peer URL');
      urls = peerUrls.map((u) => parseUrl('peerURLs', String(u)).url);
    } catch (e) {
      if (e instanceof KvUsageError) throw new KvError('BAD_REQUEST', e.message);
      throw e;
    }
    const id = computeMemberId(urls, this.c.clusterToken);
    const st = this.c.driver.status();
    // As etcd: a URL another member uses first (same URLs would also give the same id).
    for (const m of [...st.config.voters, ...st.config.learners]) {
      const theirs = this.c.book.get(m) ?? [];
      if (urls.some((u) => theirs.includes(u))) throw new KvError('PEER_URL_EXISTS', ETCD_MESSAGES.PEER_URL_EXISTS);
    }
    if (st.config.voters.includes(id) || st.config.learners.includes(id)) throw new KvError('MEMBER_EXISTS', ETCD_MESSAGES.MEMBER_EXISTS);
    await this.confChange({ type: isLearner ? 'add-learner' : 'add-voter', node: id, context: encodePeerUrls(urls) });
    const members = this.membersNow();
    return { header: this.header(), result: { member: { id, name: '', peerUrls: urls, clientUrls: [], isLearner }, members } };
  }

  private async removeHere(id: string): Promise<Answer<{ members: Member[] }>> {
    const st = this.c.driver.status();
    if (!st.config.voters.includes(id) && !st.config.learners.includes(id)) throw new KvError('MEMBER_NOT_FOUND', ETCD_MESSAGES.MEMBER_NOT_FOUND);
    await this.confChange({ type: 'remove', node: id });
    return { header: this.header(), result: { members: this.membersNow() } };
  }

  /**
   * Promotes a learner that has caught up (thesis §4.2.1: a server joins the voters only once its
   * log is close to the leader's, or it would stall commits). etcd's rule: the learner's match
   * index must be at least 90% of the leader's; otherwise LEARNER_NOT_READY at once.
   */
  private async promoteHere(id: string): Promise<Answer<{ members: Member[] }>> {
    const st = this.c.driver.status();
    if (st.config.voters.includes(id)) throw new KvError('MEMBER_NOT_LEARNER', ETCD_MESSAGES.MEMBER_NOT_LEARNER);
    if (!st.config.learners.includes(id)) throw new KvError('MEMBER_NOT_FOUND', ETCD_MESSAGES.MEMBER_NOT_FOUND);
    const match = st.progress[id]?.match ?? 0;
    if (match < st.lastIndex * 0.9) {
      throw new KvError('LEARNER_NOT_READY', `${ETCD_MESSAGES.LEARNER_NOT_READY} (learner at ${match}, leader at ${st.lastIndex})`);
    }
    await this.confChange({ type: 'promote', node: id });
    return { header: this.header(), result: { members: this.membersNow() } };
  }

  private async confChange(change: ConfChange): Promise<void> {
    try {
      await this.c.quorumWatch.guard(this.c.driver.proposeConfChange(change, { timeoutMs: this.c.requestTimeoutMs }), (p) => this.outcomeUnknown(p));
    } catch (e) {
      throw this.raftError(e);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Maintenance

  async status(): Promise<Answer<StatusResult>> {
    const st = this.c.driver.status();
    const problem = this.c.quorumProblem();
    return {
      header: this.header(),
      result: {
        version: KV_SERVER_VERSION,
        dbSize: await this.c.sm.dbSizeBytes(),
        leader: st.leader ?? '',
        raftIndex: st.commit,
        raftTerm: st.term,
        raftAppliedIndex: st.applied,
        isLearner: st.config.learners.includes(this.c.memberId),
        errors: [
          ...(problem === null ? [] : [`${ETCD_MESSAGES.NO_LEADER}: ${problem}`]),
          ...(this.c.unsafeStaleReads === true ? [UNSAFE_STALE_READS_STATUS] : []),
        ],
      },
    };
  }

  snapshot(): AsyncIterable<Uint8Array> {
    return this.c.backup();
  }

  // ---------------------------------------------------------------------------------------------
  // Leader routing

  /** Runs `call` here when this member leads, else forwards it to the leader (one hop). */
  private async onLeader(call: ForwardedCall, timeoutMs?: number): Promise<Answer<unknown>> {
    this.requireQuorum();
    const d = this.c.driver;
    if (d.role === 'leader') return this.runHere(call);
    const leader = d.leader;
    if (leader === null) throw this.noLeader('no leader is known');
    const changes = call.method === 'write' || call.method === 'memberAdd' || call.method === 'memberRemove' || call.method === 'memberPromote';
    const answer = await this.c.quorumWatch.guard(this.c.forwarder.forward(leader, call, (timeoutMs ?? this.c.requestTimeoutMs) + 1000), (p) =>
      changes ? this.outcomeUnknown(p) : this.noLeader(p),
    );
    // Answered as if local: this member's ids in the header; the leader's revision and term.
    return { ...answer, header: { ...answer.header, clusterId: this.c.clusterId, memberId: this.c.memberId } };
  }

  /**
   * A call a follower forwarded here. Never forwarded again (one hop): if this member no longer
   * leads, the follower's client gets NO_LEADER and may retry.
   */
  async handleForwarded(call: ForwardedCall): Promise<Answer<unknown>> {
    if (this.c.driver.role !== 'leader') throw this.noLeader('the member the request was forwarded to no longer leads');
    this.requireQuorum();
    if (call.method === 'write') validateCommand(call.args[0]);
    return this.runHere(call);
  }

  private runHere(call: ForwardedCall): Promise<Answer<unknown>> {
    switch (call.method) {
      case 'write':
        return this.proposeHere(call.args[0], call.args[1] ?? {});
      case 'leaseKeepAlive':
        return this.keepAliveHere(call.args[0]);
      case 'leaseTimeToLive':
        return this.timeToLiveHere(call.args[0], call.args[1]);
      case 'leaseLeases':
        return Promise.resolve({ header: this.header(), result: { ids: [...this.c.sm.leases().keys()] } });
      case 'memberAdd':
        return this.addHere(call.args[0], call.args[1]);
      case 'memberRemove':
        return this.removeHere(call.args[0]);
      case 'memberPromote':
        return this.promoteHere(call.args[0]);
    }
  }

  private async keepAliveHere(id: number): Promise<Answer<LeaseKeepAliveResult>> {
    try {
      const ttlSec = this.c.lessor.keepAlive(id);
      return { header: this.header(), result: { id, ttlSec } };
    } catch (e) {
      // etcd answers a keep-alive of an unknown (expired, revoked) lease with TTL 0.
      if (e instanceof KvError && e.code === 'LEASE_NOT_FOUND') return { header: this.header(), result: { id, ttlSec: 0 } };
      throw e;
    }
  }

  private async timeToLiveHere(id: number, keys: boolean): Promise<Answer<LeaseTimeToLiveResult>> {
    const lease = this.c.sm.leases().get(id);
    if (lease === undefined) return { header: this.header(), result: { id, ttlSec: -1, grantedTtlSec: 0, keys: [] } };
    const remaining = this.c.lessor.remainingSec(id);
    return {
      header: this.header(),
      result: { id, ttlSec: remaining < 0 ? lease.ttlSec : remaining, grantedTtlSec: lease.ttlSec, keys: keys ? [...lease.keys] : [] },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Errors

  private requireQuorum(): void {
    const problem = this.c.quorumProblem();
    if (problem !== null) throw this.noLeader(problem);
  }

  private noLeader(detail: string): KvError {
    // etcd's message first (clients match on it), then why, as fromRaftError does.
    return new KvError('NO_LEADER', `${ETCD_MESSAGES.NO_LEADER} (${detail})`, this.c.leaderClientUrl());
  }

  /** The quorum went while a change was in flight: it may or may not be applied (so not NO_LEADER, which says it was not). */
  private outcomeUnknown(detail: string): KvError {
    return new KvError('LEADER_CHANGED', `${ETCD_MESSAGES.LEADER_CHANGED} (the quorum was lost while the request was in flight: ${detail}; its outcome is unknown)`, this.c.leaderClientUrl());
  }

  private raftError(e: unknown): KvError {
    if (e instanceof RaftError) return fromRaftError(e, this.c.leaderClientUrl());
    return toKvError(e);
  }
}
