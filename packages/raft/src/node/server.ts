// The Raft node process: one LevelDB log, one RaftDriver, and one HTTP server on --listen that
// carries everything:
//
//   GET  /status    JSON: role, term, leader, commit/applied/last index, followers' progress,
//                   the applied-log digest and the transport's counters
//   POST /propose   body = raw bytes → 200 {"index","term"} once applied here; errors carry the
//                   HTTP status of their RaftError code, NOT_LEADER (421) names the leader and its address
//   GET  /read      → 200 {"index"} once a linearizable read barrier (thesis §6.4) has passed here
//   ws   /client    pipelined msgpack requests {id, op:'propose', data} | {id, op:'read'}
//   ws   /raft      the peer transport (WsTransport owns these upgrades)
//   ws   /snapshot  snapshot streams from the leader (node/snapshot-stream.ts)
//
// Membership and leadership (issue 3; JSON bodies; leader-only ones redirect with NOT_LEADER):
//   GET    /members              this node's view: config, bootstrap voters, addresses, progress
//   POST   /members              {"id","address"} → add a learner (thesis §4.1, one server at a time)
//   POST   /members/:id/promote  waits (bounded) until the learner has caught up to the commit
//                                index, then promotes it to voter (thesis §4.2.1)
//   DELETE /members/:id          removes a voter or learner (a removed leader steps down, §4.2.2)
//   POST   /transfer             {"to"?} → leadership transfer (thesis §3.10); without `to`, the
//                                most up-to-date voter. 200 {"leader","term"} once it leads.
//
// Addresses. Every node keeps an address book (id → host:port): --peers (or, with --join, what
// the contacted member reported), the `context` of add-learner/add-voter config entries (the new
// member's address), and the addresses stored in snapshot headers (so members whose config
// entries were compacted away stay reachable). The transport's peers follow the configuration in
// effect (plus the current leader): a member added gets a link as soon as its config entry is in
// this node's log, a removed one loses it (and its connections are refused).
//
// Joining (`--join HOST:PORT`): the node asks that member for the cluster's bootstrap voters and
// addresses (GET /members), starts as a non-member (RaftConfig.joining: it never campaigns), asks
// the leader to add it as a learner (POST /members, following redirects; a node the operator
// already added with `ballot raft member add` is fine), receives the log or a snapshot, and then
// asks to be promoted (POST /members/:id/promote) unless --join-as learner.
//
// Graceful shutdown (SIGTERM/SIGINT): a leader first hands leadership to its most up-to-date voter
// (bounded wait), then waits briefly for its in-flight proposals to be applied, then stops.
//
// Followers do not forward proposals; they redirect (NOT_LEADER + the leader's address), so a
// client always knows which node accepted its write and never pays two hops.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomInt } from 'node:crypto';
import { Packr } from 'msgpackr';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';

import { join as joinPath } from 'node:path';
import { HTTP_STATUS, RaftError, isRaftError } from '../core/errors.js';
import { decodeConfChange } from '../core/membership.js';
import type { ClusterConfig, ConfChange, NodeId, ReadMode } from '../core/types.js';
import { LevelLogStorage } from '../storage/leveldb.js';
import { SnapshotStore, type VerifiedSnapshot } from '../storage/snapshot.js';
import { WsTransport } from '../transport/ws.js';
import { AppliedDigest } from './digest.js';
import { RaftDriver, type ProposeAck, type ReadAck } from './driver.js';
import { SNAPSHOT_STREAM_PATH, SnapshotStreamer } from './snapshot-stream.js';
import { EXIT, NodeStartError, runNodeUntilSignal, startError } from './process.js';

export { EXIT, NodeStartError, createNodeLogger } from './process.js';

export interface NodeServerOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  /** Directory of this node's LevelDB (created if missing). */
  readonly dataDir: string;
  readonly listenHost: string;
  readonly listenPort: number;
  /** Every member's id → "host:port" (peer transport and client API share the address). Includes `id`. */
  readonly peers: Readonly<Record<NodeId, string>>;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly readMode: ReadMode;
  readonly logger: Logger;
  /** Bound on proposals held by the driver (queued + awaiting apply); past it: QUEUE_FULL. */
  readonly maxQueuedProposals?: number;
  /** Bound on one request body / client frame. Default 1 MiB. */
  readonly maxRequestBytes?: number;
  /** Bound on one /client connection's unanswered requests; past it: QUEUE_FULL for that request. Default 4096. */
  readonly maxInflightPerClient?: number;
  /** Deadline of an HTTP/ws request. Default 10 000 ms. */
  readonly requestTimeoutMs?: number;
  /**
   * Join a running cluster through this member ("host:port") instead of bootstrapping from
   * `peers` (which may then be empty): see the header comment.
   */
  readonly join?: string;
  /** With `join`: become a voter once caught up (default), or stay a learner. */
  readonly joinAs?: 'voter' | 'learner';
  /** Compaction policy (driver defaults: 10 000 entries, 64 MiB, trailing window 5 000). */
  readonly snapshotEntries?: number;
  readonly snapshotBytes?: number;
  readonly snapshotTrailingEntries?: number;
  /** Snapshot files kept in <data-dir>/snapshots. Default 2. */
  readonly snapshotsKept?: number;
  /** Bytes per snapshot stream chunk. Default 256 KiB. */
  readonly snapshotChunkBytes?: number;
  /** On graceful shutdown a leader hands over leadership first. Default true. */
  readonly transferOnShutdown?: boolean;
}

/** What GET /members answers (and what --join reads). */
export interface MembersInfo {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly leader: NodeId | null;
  readonly leaderAddress: string | null;
  readonly config: ClusterConfig;
  readonly configIndex: number;
  /** The configuration at index 0, which every member (and every joining node) must agree on. */
  readonly bootstrap: ClusterConfig;
  readonly addresses: Readonly<Record<NodeId, string>>;
  readonly progress: Readonly<Record<NodeId, { readonly match: number; readonly learner: boolean; readonly state: string }>>;
  readonly commit: number;
}

/** Client frames on ws /client. */
export type ClientRequest =
  | { readonly id: number; readonly op: 'propose'; readonly data: Uint8Array }
  | { readonly id: number; readonly op: 'read' };
export type ClientResponse =
  | { readonly id: number; readonly ok: true; readonly index: number; readonly term?: number }
  | {
      readonly id: number;
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      readonly leader?: string;
      readonly leaderAddress?: string;
    };

const packr = new Packr({ useRecords: false });

export class NodeServer {
  private closing: Promise<void> | null = null;
  private readonly clientSockets = new Set<WebSocket>();
  /** id → "host:port" of every node this one has heard of (see the header comment). */
  private readonly addresses: Record<NodeId, string>;
  /** With --join: the members the contacted node reported, linked until our own config is known. */
  private readonly joinMembers: readonly NodeId[];
  private joining: Promise<void> | null = null;
  /** Set by shutdown(): answers carry `Connection: close`. */
  private draining = false;

  private constructor(
    private readonly opts: NodeServerOptions,
    private readonly http: Server,
    private readonly clientWss: WebSocketServer,
    readonly driver: RaftDriver,
    private readonly transport: WsTransport,
    private readonly streamer: SnapshotStreamer,
    private readonly digest: AppliedDigest,
    /** The address actually bound ("host:port"). */
    readonly address: string,
    private readonly bootstrap: ClusterConfig,
    addresses: Record<NodeId, string>,
    joinMembers: readonly NodeId[],
  ) {
    this.addresses = addresses;
    this.joinMembers = joinMembers;
  }

  /**
   * Opens the log, checks it belongs to this cluster and node, verifies every record (and the
   * snapshot it starts after), and starts serving. Throws NodeStartError (exitCode 3 for a
   * corrupt log or snapshot, 4 for a foreign data dir).
   */
  static async start(opts: NodeServerOptions): Promise<NodeServer> {
    const log = opts.logger;
    // Bootstrap configuration and addresses: from --peers, or from the member we join through.
    let bootstrap: ClusterConfig = { voters: Object.keys(opts.peers), learners: [] };
    const addresses: Record<NodeId, string> = {};
    let joinMembers: NodeId[] = [];
    if (opts.join !== undefined) {
      const info = await fetchMembers(opts.join, opts.requestTimeoutMs ?? 10_000).catch((e: unknown) => {
        throw new NodeStartError(`--join ${opts.join}: ${(e as Error).message}`, EXIT.FATAL);
      });
      if (info.clusterId !== opts.clusterId) {
        throw new NodeStartError(`--join ${opts.join}: that node belongs to cluster ${info.clusterId}, not ${opts.clusterId}`, EXIT.FATAL);
      }
      bootstrap = info.bootstrap;
      Object.assign(addresses, info.addresses);
      joinMembers = [...info.config.voters, ...info.config.learners].filter((id) => id !== opts.id && info.addresses[id] !== undefined);
      log.info({ via: opts.join, bootstrap, config: info.config, leader: info.leader }, 'joining a running cluster');
    }

    let storage: LevelLogStorage;
    try {
      storage = await LevelLogStorage.open(opts.dataDir);
    } catch (e) {
      throw startError(e);
    }
    let restored;
    let snapshots: SnapshotStore;
    let restoredSnapshotFile: VerifiedSnapshot | undefined;
    try {
      const meta = await storage.readMeta();
      if (meta === null) {
        await storage.writeMeta({ clusterId: opts.clusterId, nodeId: opts.id });
      } else if (meta.clusterId !== opts.clusterId || meta.nodeId !== opts.id) {
        throw new NodeStartError(
          `data directory ${opts.dataDir} belongs to node ${meta.nodeId} of cluster ${meta.clusterId}, ` +
            `not node ${opts.id} of cluster ${opts.clusterId}; refusing to start`,
          EXIT.WRONG_DATA_DIR,
        );
      }
      restored = await storage.load();
      // Snapshot files live beside the LevelDB files (LevelDB ignores names it does not own).
      snapshots = await SnapshotStore.open(joinPath(opts.dataDir, 'snapshots'), opts.snapshotsKept !== undefined ? { keep: opts.snapshotsKept } : {});
      if (restored.snapshot !== undefined) {
        restoredSnapshotFile = await snapshots.verify(restored.snapshot.index, restored.snapshot.term);
        Object.assign(addresses, restoredSnapshotFile.header.addresses);
      }
    } catch (e) {
      await storage.close().catch(() => undefined);
      throw startError(e);
    }
    // Addresses carried by config entries still in the log, then the operator's --peers.
    for (const e of restored.entries) {
      if (e.type !== 'config') continue;
      const address = addressOf(decodeConfChange(e.data));
      if (address !== null) addresses[address.node] = address.address;
    }
    Object.assign(addresses, opts.peers);
    log.info(
      { dataDir: opts.dataDir, lastIndex: restored.entries[restored.entries.length - 1]?.index ?? restored.snapshot?.index ?? 0, snapshot: restored.snapshot ?? null, ...restored.hardState },
      'log loaded and verified',
    );

    const http = createServer();
    const initialPeers: Record<NodeId, string> = {};
    for (const id of [...bootstrap.voters, ...bootstrap.learners, ...joinMembers]) {
      if (id !== opts.id && addresses[id] !== undefined) initialPeers[id] = addresses[id]!;
    }
    const transport = new WsTransport({
      clusterId: opts.clusterId,
      nodeId: opts.id,
      peers: initialPeers,
      server: http,
      logger: log.child({ component: 'transport' }),
    });
    const digest = new AppliedDigest();
    let driverRef: RaftDriver | null = null;
    const streamer = new SnapshotStreamer({
      clusterId: opts.clusterId,
      nodeId: opts.id,
      server: http,
      store: snapshots,
      addressOf: (id) => addresses[id],
      onSnapshot: (message, file) => driverRef?.deliverSnapshot(message, file),
      logger: log.child({ component: 'snapshot-stream' }),
      ...(opts.snapshotChunkBytes !== undefined ? { chunkBytes: opts.snapshotChunkBytes } : {}),
    });
    const isBootstrapMember = bootstrap.voters.includes(opts.id) || bootstrap.learners.includes(opts.id);
    const driver = new RaftDriver({
      config: {
        id: opts.id,
        peers: bootstrap.voters,
        learners: bootstrap.learners,
        joining: !isBootstrapMember,
        electionTicks: opts.electionTicks,
        heartbeatTicks: opts.heartbeatTicks,
        readMode: opts.readMode,
        // The core's only randomness (election jitter); a fresh seed per process start.
        randomSeed: randomInt(0, 2 ** 31 - 1),
      },
      storage,
      transport,
      stateMachine: digest,
      restored,
      snapshots,
      snapshotSender: streamer,
      snapshotAddresses: () => ({ ...addresses }),
      ...(restoredSnapshotFile !== undefined ? { restoredSnapshotFile } : {}),
      ...(opts.snapshotEntries !== undefined ? { snapshotEntries: opts.snapshotEntries } : {}),
      ...(opts.snapshotBytes !== undefined ? { snapshotBytes: opts.snapshotBytes } : {}),
      ...(opts.snapshotTrailingEntries !== undefined ? { snapshotTrailingEntries: opts.snapshotTrailingEntries } : {}),
      tickMs: opts.tickMs,
      defaultTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      logger: log.child({ component: 'driver' }),
      ...(opts.maxQueuedProposals !== undefined ? { maxQueuedProposals: opts.maxQueuedProposals } : {}),
    });
    driverRef = driver;
    const clientWss = new WebSocketServer({ noServer: true, maxPayload: opts.maxRequestBytes ?? 1 << 20 });

    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(opts.listenPort, opts.listenHost, () => {
        http.off('error', reject);
        resolve();
      });
    }).catch(async (e: unknown) => {
      await storage.close().catch(() => undefined);
      throw new NodeStartError(`cannot listen on ${opts.listenHost}:${opts.listenPort}: ${(e as Error).message}`, EXIT.FATAL);
    });
    const bound = http.address();
    const address = typeof bound === 'object' && bound !== null ? `${opts.listenHost}:${bound.port}` : String(bound);
    addresses[opts.id] = address;

    const node = new NodeServer(opts, http, clientWss, driver, transport, streamer, digest, address, bootstrap, addresses, joinMembers);
    http.on('request', (req, res) => node.onRequest(req, res));
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => node.onUpgrade(req, socket, head));
    driver.on('confChange', ({ change }) => {
      const a = addressOf(change);
      if (a !== null) addresses[a.node] = a.address;
      node.reconcilePeers();
    });
    driver.on('snapshotInstalled', (header) => {
      for (const [id, a] of Object.entries(header.addresses)) if (id !== opts.id) addresses[id] = a;
      node.reconcilePeers();
    });
    driver.on('config', () => node.reconcilePeers());
    driver.on('role', () => node.reconcilePeers());
    try {
      await driver.start();
    } catch (e) {
      await node.close();
      throw startError(e);
    }
    node.reconcilePeers();
    log.info({ address, id: opts.id, peers: transport.peers(), clusterId: opts.clusterId }, 'listening');
    if (opts.join !== undefined) node.joining = node.joinCluster(opts.join);
    return node;
  }

  /**
   * Level-triggered: the transport links to every member of the configuration in effect and to
   * the leader (whose address is known), and to nobody else; a joining node also keeps the
   * members it was told about until its own log makes it a member.
   */
  reconcilePeers(): void {
    if (this.closing) return;
    const st = this.driver.status();
    const desired = new Set<NodeId>([...st.config.voters, ...st.config.learners]);
    if (st.leader !== null) desired.add(st.leader);
    const member = desired.has(this.opts.id);
    if (!member) for (const id of this.joinMembers) desired.add(id);
    desired.delete(this.opts.id);
    for (const id of desired) {
      const a = this.addresses[id];
      if (a !== undefined) this.transport.addPeer(id, a);
    }
    for (const id of Object.keys(this.transport.peers())) if (!desired.has(id)) this.transport.removePeer(id);
  }

  /** Stops serving, then the driver (which closes the transport and the storage). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const ws of this.clientSockets) ws.terminate();
      this.clientWss.close();
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.http.closeAllConnections();
      await this.streamer.close();
      await this.driver.stop();
      // Bounded: a connection the server still counts may never close by itself (seen under
      // load, with no handle left to keep the process alive), so 'close' may never come.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))]);
      clearTimeout(timer);
    })();
    return this.closing;
  }

  /**
   * A graceful stop: a leader hands leadership to its most up-to-date voter first (thesis §3.10,
   * bounded by transferTimeoutMs), then waits up to drainMs for its proposals in flight to be
   * applied (acknowledged to their clients), lets HTTP clients go for graceMs, then close().
   */
  async shutdown(transferTimeoutMs = 3000, drainMs = 2000, graceMs = 300): Promise<void> {
    const log = this.opts.logger;
    let transferred = false;
    if (this.opts.transferOnShutdown !== false && this.driver.role === 'leader') {
      const to = this.bestTransferTarget();
      if (to !== null) {
        log.info({ to }, 'leader shutting down: transferring leadership first');
        transferred = await this.driver.transferLeadership(to, { timeoutMs: transferTimeoutMs }).then(
          (ack) => {
            log.info({ leader: ack.leader, term: ack.term }, 'leadership transferred');
            return true;
          },
          (e: unknown) => {
            log.warn({ err: (e as Error).message }, 'leadership transfer failed; stopping anyway');
            return false;
          },
        );
      }
    }
    // Proposals handed over to the new leader are acknowledged here once applied: give them a
    // moment (when no transfer happened there is no one to commit them sooner).
    if (transferred) {
      const deadline = Date.now() + drainMs;
      while (this.driver.status().pendingProposals > 0 && Date.now() < deadline) await sleep(20);
    }
    // Let HTTP clients move on before connections are cut: from now on every answer says
    // `Connection: close` (the client does not reuse that connection), and requests keep being
    // answered (a follower redirects) for a short grace period. Idle keep-alive connections are
    // not closed early: a client may be writing a request on one at that very moment (it would
    // see a reset and not know whether its proposal arrived); its next request gets an answer
    // and the close.
    this.draining = true;
    await sleep(graceMs);
    await this.close();
  }

  /** The voter (not this node) with the highest match index, among those recently active. */
  private bestTransferTarget(): NodeId | null {
    const st = this.driver.status();
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const id of st.config.voters) {
      const pr = st.progress[id];
      if (id === this.opts.id || pr === undefined || !pr.recentActive) continue;
      if (pr.match > bestMatch) {
        best = id;
        bestMatch = pr.match;
      }
    }
    return best;
  }

  members(): MembersInfo {
    const st = this.driver.status();
    const progress: Record<NodeId, { match: number; learner: boolean; state: string }> = {};
    for (const [id, pr] of Object.entries(st.progress)) progress[id] = { match: pr.match, learner: pr.learner, state: pr.state };
    const addresses: Record<NodeId, string> = {};
    for (const id of [...st.config.voters, ...st.config.learners, ...this.bootstrap.voters]) {
      const a = this.addresses[id];
      if (a !== undefined) addresses[id] = a;
    }
    return {
      id: this.opts.id,
      clusterId: this.opts.clusterId,
      leader: st.leader,
      leaderAddress: st.leader === null ? null : (this.addresses[st.leader] ?? null),
      config: st.config,
      configIndex: st.configIndex,
      bootstrap: this.bootstrap,
      addresses,
      progress,
      commit: st.commit,
    };
  }

  status(): Record<string, unknown> {
    const st = this.driver.status();
    const snap = this.driver.snapshot;
    return {
      id: st.id,
      role: st.role,
      term: st.term,
      leader: st.leader,
      leaderAddress: st.leader === null ? null : (this.addresses[st.leader] ?? null),
      commit: st.commit,
      applied: st.applied,
      lastIndex: st.lastIndex,
      lastTerm: st.lastTerm,
      firstIndex: st.firstIndex,
      vote: st.vote,
      progress: st.progress,
      config: st.config,
      configIndex: st.configIndex,
      transferee: st.transferee,
      snapshot: snap === null ? null : { index: snap.index, term: snap.term, fileBytes: snap.fileBytes },
      snapshotStream: this.streamer.stats(),
      appliedDigest: this.digest.hex,
      appliedCount: this.digest.count,
      appliedNormalCount: this.digest.normalCount,
      pendingProposals: st.pendingProposals,
      pendingReads: st.pendingReads,
      running: st.running,
      transport: this.transport.stats(),
      clusterId: this.opts.clusterId,
      address: this.address,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (this.draining) res.setHeader('connection', 'close');
    const url = new URL(req.url ?? '/', 'http://node');
    const route = `${req.method ?? 'GET'} ${url.pathname}`;
    const memberPath = /^\/members\/([^/]+)(\/promote)?$/.exec(url.pathname);
    if (memberPath !== null) {
      const id = decodeURIComponent(memberPath[1]!);
      if (memberPath[2] !== undefined && req.method === 'POST') return this.reply(res, this.promote(id, timeoutOf(url).timeoutMs));
      if (memberPath[2] === undefined && req.method === 'DELETE') return this.reply(res, this.changeMembers({ type: 'remove', node: id }, timeoutOf(url)));
      return sendJson(res, 405, { code: 'BAD_REQUEST', message: `method ${req.method} not allowed on ${url.pathname}` });
    }
    switch (route) {
      case 'GET /status':
        return sendJson(res, 200, this.status());
      case 'GET /members':
        return sendJson(res, 200, this.members());
      case 'POST /members':
        return this.reply(
          res,
          readJson(req).then((body) => {
            const id = body['id'];
            const address = body['address'];
            if (typeof id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(id)) throw new RaftError('BAD_REQUEST', 'body needs "id": a node id');
            if (typeof address !== 'string' || !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(address)) throw new RaftError('BAD_REQUEST', 'body needs "address": "host:port"');
            return this.changeMembers({ type: 'add-learner', node: id, context: new TextEncoder().encode(address) }, timeoutOf(url));
          }),
        );
      case 'POST /transfer':
        return this.reply(
          res,
          readJson(req).then((body) => {
            const to = body['to'] ?? this.bestTransferTarget();
            if (typeof to !== 'string') throw new RaftError('BAD_REQUEST', 'no voter to transfer to ("to" missing and no other active voter)');
            return this.driver.transferLeadership(to, timeoutOf(url)).then((ack) => ({ leader: ack.leader, term: ack.term, leaderAddress: this.addresses[ack.leader] ?? null }));
          }),
        );
      case 'POST /propose':
        readBody(req, this.opts.maxRequestBytes ?? 1 << 20).then(
          (body) =>
            this.driver.propose(body, timeoutOf(url)).then(
              (ack) => sendJson(res, 200, { index: ack.index, term: ack.term }),
              (e: unknown) => this.sendError(res, e),
            ),
          (e: unknown) => this.sendError(res, e),
        );
        return;
      case 'GET /read':
        this.driver.read(timeoutOf(url)).then(
          (ack) => sendJson(res, 200, { index: ack.index }),
          (e: unknown) => this.sendError(res, e),
        );
        return;
      default:
        if (['/status', '/propose', '/read', '/members', '/transfer'].includes(url.pathname)) {
          return sendJson(res, 405, { code: 'BAD_REQUEST', message: `method ${req.method} not allowed on ${url.pathname}` });
        }
        return sendJson(res, 404, { code: 'BAD_REQUEST', message: `no such endpoint: ${url.pathname}` });
    }
  }

  private reply(res: ServerResponse, p: Promise<unknown>): void {
    p.then(
      (body) => sendJson(res, 200, body),
      (e: unknown) => this.sendError(res, e),
    );
  }

  /** Proposes a membership change; answers once it is applied here, with the new configuration. */
  private async changeMembers(change: ConfChange, opts: { timeoutMs?: number }): Promise<unknown> {
    const ack = await this.driver.proposeConfChange(change, opts);
    const st = this.driver.status();
    return { index: ack.index, term: ack.term, config: st.config };
  }

  /**
   * Promotes a learner once it has caught up (thesis §4.2.1: a new server joins the voters only
   * when its log is close to the leader's, or it would stall commits): its match index must reach
   * the commit index as of the request. Waits for that at most the request timeout (TIMEOUT).
   */
  private async promote(id: NodeId, timeoutMs?: number): Promise<unknown> {
    const st = this.driver.status();
    if (st.role !== 'leader') {
      throw st.leader === null ? new RaftError('NO_LEADER', 'no leader is known') : new RaftError('NOT_LEADER', `this node is not the leader; try ${st.leader}`, st.leader);
    }
    if (!st.config.learners.includes(id)) {
      throw new RaftError('BAD_REQUEST', st.config.voters.includes(id) ? `${id} is already a voter` : `${id} is not a learner (add it first)`);
    }
    const target = st.commit;
    const deadline = Date.now() + (timeoutMs ?? this.opts.requestTimeoutMs ?? 10_000);
    for (;;) {
      const now = this.driver.status();
      if (now.role !== 'leader') throw new RaftError('NOT_LEADER', 'this node stopped leading while the learner caught up', now.leader);
      const match = now.progress[id]?.match ?? 0;
      if (match >= target) break;
      if (Date.now() >= deadline) throw new RaftError('TIMEOUT', `learner ${id} has not caught up (match ${match} < commit ${target}); try again`);
      await sleep(20);
    }
    return this.changeMembers({ type: 'promote', node: id }, timeoutMs !== undefined ? { timeoutMs } : {});
  }

  /**
   * --join: ask the cluster (following redirects to the leader) to add this node as a learner,
   * then, unless joinAs is 'learner', to promote it once it caught up. Retries until it is done
   * or the node closes.
   */
  private async joinCluster(via: string): Promise<void> {
    const log = this.opts.logger;
    const id = this.opts.id;
    const self = (): { voter: boolean; member: boolean } => {
      const c = this.driver.status().config;
      return { voter: c.voters.includes(id), member: c.voters.includes(id) || c.learners.includes(id) };
    };
    const endpoints = (): string[] => [via, ...Object.entries(this.addresses).filter(([n]) => n !== id).map(([, a]) => a)];
    const tell = (attempt: number, what: string, r: JsonReply | null): void => {
      // Say why every 25 attempts (~5 s), so an operator sees a join that cannot succeed.
      if (attempt % 25 === 0) log.warn({ attempt, status: r?.status ?? null, reply: r?.body ?? 'no member reachable' }, `${what} not done yet; retrying`);
    };
    for (let attempt = 1; !this.closing && !self().member; attempt++) {
      const r = await requestLeader(endpoints(), 'POST', '/members', JSON.stringify({ id, address: this.address }));
      if (r !== null && (r.status === 200 || (r.status === 400 && /already a/.test(String(r.body['message']))))) break;
      tell(attempt, 'joining as a learner', r);
      await sleep(200);
    }
    if (this.closing) return;
    log.info({ id }, 'added to the cluster as a learner (or already a member)');
    if (this.opts.joinAs === 'learner') return;
    for (let attempt = 1; !this.closing && !self().voter; attempt++) {
      const r = await requestLeader(endpoints(), 'POST', `/members/${encodeURIComponent(id)}/promote`, '');
      if (r !== null && (r.status === 200 || (r.status === 400 && /already a voter/.test(String(r.body['message']))))) break;
      tell(attempt, 'promotion to voter', r);
      await sleep(200);
    }
    if (!this.closing) log.info({ id }, 'promoted to voter');
  }

  /** Resolves once a --join has finished (added, and promoted unless joinAs learner). */
  joined(): Promise<void> {
    return this.joining ?? Promise.resolve();
  }

  private errorBody(e: unknown): { status: number; body: Omit<Extract<ClientResponse, { ok: false }>, 'id' | 'ok'> } {
    if (!isRaftError(e)) {
      this.opts.logger.error({ err: e }, 'request failed unexpectedly');
      return { status: 500, body: { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) } };
    }
    const leader = e.leaderHint ?? undefined;
    const leaderAddress = leader !== undefined ? this.addresses[leader] : undefined;
    return {
      status: HTTP_STATUS[e.code],
      body: {
        code: e.code,
        message: e.message,
        ...(leader !== undefined ? { leader } : {}),
        ...(leaderAddress !== undefined ? { leaderAddress } : {}),
      },
    };
  }

  private sendError(res: ServerResponse, e: unknown): void {
    const { status, body } = this.errorBody(e);
    sendJson(res, status, body);
  }

  // ---------------------------------------------------------------------------------------------
  // WebSocket clients

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://node').pathname;
    if (path === '/raft' || path === SNAPSHOT_STREAM_PATH) return; // the transport's and the snapshot streamer's
    if (path !== '/client' || this.closing) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    this.clientWss.handleUpgrade(req, socket, head, (ws) => this.onClient(ws));
  }

  private onClient(ws: WebSocket): void {
    this.clientSockets.add(ws);
    const maxInflight = this.opts.maxInflightPerClient ?? 4096;
    let inflight = 0;
    const reply = (r: ClientResponse): void => {
      if (ws.readyState === ws.OPEN) ws.send(packr.pack(r));
    };
    const fail = (id: number, e: unknown): void => {
      reply({ id, ok: false, ...this.errorBody(e).body });
    };
    ws.on('close', () => this.clientSockets.delete(ws));
    ws.on('error', (e) => this.opts.logger.debug({ err: e }, 'client socket error'));
    ws.on('message', (raw: RawData, isBinary: boolean) => {
      const req = isBinary ? decodeClientRequest(raw) : null;
      if (req === null) {
        this.opts.logger.warn('malformed /client frame: closing that connection');
        ws.close(1007, 'malformed request frame');
        return;
      }
      if (inflight >= maxInflight) {
        fail(req.id, new RaftError('QUEUE_FULL', `${inflight} requests already in flight on this connection`));
        return;
      }
      inflight++;
      const done = (): void => {
        inflight--;
      };
      const pending: Promise<ProposeAck | ReadAck> =
        req.op === 'propose' ? this.driver.propose(req.data) : this.driver.read();
      pending.then(
        (ack) => {
          done();
          reply('term' in ack ? { id: req.id, ok: true, index: ack.index, term: ack.term } : { id: req.id, ok: true, index: ack.index });
        },
        (e: unknown) => {
          done();
          fail(req.id, e);
        },
      );
    });
  }
}

function decodeClientRequest(raw: RawData): ClientRequest | null {
  let value: unknown;
  try {
    const bytes = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
    value = packr.unpack(bytes);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'number' || !Number.isSafeInteger(v.id)) return null;
  if (v.op === 'read') return { id: v.id, op: 'read' };
  if (v.op === 'propose' && v.data instanceof Uint8Array) return { id: v.id, op: 'propose', data: v.data };
  return null;
}

function addressOf(change: ConfChange): { node: NodeId; address: string } | null {
  if ((change.type !== 'add-learner' && change.type !== 'add-voter') || change.context === undefined) return null;
  return { node: change.node, address: new TextDecoder().decode(change.context) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reads a JSON object body (empty body: {}). */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const bytes = await readBody(req, 64 * 1024);
  if (bytes.length === 0) return {};
  let x: unknown;
  try {
    x = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new RaftError('BAD_REQUEST', 'body is not JSON');
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new RaftError('BAD_REQUEST', 'body must be a JSON object');
  return x as Record<string, unknown>;
}

interface JsonReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

async function requestJson(address: string, method: string, path: string, body: string | undefined, timeoutMs: number): Promise<JsonReply> {
  const res = await fetch(`http://${address}${path}`, {
    method,
    ...(body !== undefined ? { body, headers: { 'content-type': 'application/json' } } : {}),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: unknown = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { message: text };
  }
  return { status: res.status, body: (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown> };
}

/** GET /members from a member (retried for a few seconds while it starts). */
async function fetchMembers(address: string, timeoutMs: number): Promise<MembersInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await requestJson(address, 'GET', '/members', undefined, 2000);
      if (r.status === 200) return r.body as unknown as MembersInfo;
      throw new Error(`GET /members: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    } catch (e) {
      if (Date.now() >= deadline) throw e;
      await sleep(200);
    }
  }
}

/**
 * Sends a request to the first reachable endpoint, following NOT_LEADER redirects (at most 5
 * hops). Returns the final reply, or null when no endpoint answered.
 */
async function requestLeader(endpoints: readonly string[], method: string, path: string, body: string): Promise<JsonReply | null> {
  for (const start of endpoints) {
    let ep = start;
    for (let hop = 0; hop < 5; hop++) {
      let r: JsonReply;
      try {
        r = await requestJson(ep, method, path, body, 15_000);
      } catch {
        break; // unreachable: try the next endpoint
      }
      const leaderAddress = r.body['leaderAddress'];
      if (r.body['code'] === 'NOT_LEADER' && typeof leaderAddress === 'string') {
        ep = leaderAddress;
        continue;
      }
      return r;
    }
  }
  return null;
}

function timeoutOf(url: URL): { timeoutMs?: number } {
  const t = Number(url.searchParams.get('timeoutMs'));
  return Number.isFinite(t) && t > 0 ? { timeoutMs: t } : {};
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a request body of at most maxBytes (BAD_REQUEST beyond: the bound protects the node's memory). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        reject(new RaftError('BAD_REQUEST', `request body exceeds ${maxBytes} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * The process entry of `ballot raft node`: starts the node, stops it gracefully on SIGTERM/SIGINT
 * (exit 0), and exits non-zero when it cannot start (3: corrupt log, 4: foreign data dir) or hits a
 * fatal error while running (1: e.g. a failed fsync; the node never continues after one).
 */
export function runNodeProcess(opts: NodeServerOptions): Promise<never> {
  return runNodeUntilSignal({ title: `ballot raft node ${opts.id}`, log: opts.logger, start: () => NodeServer.start(opts), logStopped: true });
}
