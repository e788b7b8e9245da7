// One key-value store member: the Raft driver over a LevelDB log (<data-dir>/raft, snapshots in
// <data-dir>/raft/snapshots), the MVCC store as its state machine (<data-dir>/kv), the watch hub,
// the leader's lease clock, and two HTTP listeners:
//
//   peer listener    ws /raft (WsTransport), ws /snapshot (SnapshotStreamer), POST /kv/forward
//                    and GET /kv/cluster (peer.ts)
//   client listener  /v3/* (the etcd JSON gateway), ws /ballot/v1 (the native protocol),
//                    /health, /readyz, /livez, /metrics
//
// Every listen URL gets a socket; extra URLs of one kind hand their connections to the same HTTP
// server. Members dial each other at the advertised peer URLs (they may differ from the listen
// URLs, as in etcd; 0.0.0.0 is accepted for listening).
//
// Ids (ids.ts): the member id (the Raft NodeId) is a hash of the advertised peer URLs and the
// cluster token; the cluster id a hash of the initial members' ids and the token. The first start
// writes <data-dir>/member.json (member id, cluster id, the bootstrap configuration and peer
// URLs); later starts read it, so the --initial-* flags matter only once (as in etcd). A member
// started with --initial-cluster-state existing asks a running member (GET /kv/cluster on the
// peer URLs of --initial-cluster) for the cluster id and bootstrap configuration; it must have
// been added with member add first (its id is computed from the same peer URLs and token).
//
// Restart: the store persists its applied index atomically with its data, so the entries the
// driver hands it again at or below that index are skipped, not re-applied (metric
// ballot_kv_apply_entries_total{kind="skipped"} and the "store opened" / "caught up" log lines).

import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import pino, { type Logger } from 'pino';
import {
  EXIT,
  LevelLogStorage,
  NodeStartError,
  RaftDriver,
  RaftError,
  SnapshotStore,
  SnapshotStreamer,
  SNAPSHOT_STREAM_PATH,
  WsTransport,
  decodeConfChange,
  type ClusterConfig,
  type Entry,
  type NodeId,
  type RestoredState,
  type SnapshotPoint,
  type StateMachine,
  type VerifiedSnapshot,
} from '@ballot/raft';
import { KvError } from '../errors.js';
import type { KvService } from '../types.js';
import { KvStateMachine } from '../state/machine.js';
import { writeBackup } from '../state/backup.js';
import { WatchHub } from '../watch/hub.js';
import { Lessor } from '../lease/lessor.js';
import { computeClusterId, computeMemberId } from './ids.js';
import { KV_SERVE_DEFAULTS, parseUrl, type KvServeOptions, type ParsedUrl } from './flags.js';
import { PeerBook } from './peers.js';
import { HeardTracker, QuorumWatch, quorumProblem } from './quorum.js';
import { KvMetrics } from './metrics.js';
import { NodeKvService } from './service.js';
import { CLUSTER_PATH, FORWARD_PATH, WsForwarder, attachForwardServer, handlePeerRequest, type ClusterInfo } from './peer.js';
import { handleClientRequest, mountClientApis, type ClientApis } from './client.js';
import { NodeClock, type ClockSetting } from './clock.js';

/** The client listener's path for run-time clock changes (only with --unsafe-debug-clock; 404 otherwise). */
export const DEBUG_CLOCK_PATH = '/debug/clock';

/** What <data-dir>/member.json keeps from the first start. */
interface MemberFile {
  readonly version: 1;
  readonly name: string;
  readonly memberId: string;
  readonly clusterId: string;
  readonly clusterToken: string;
  readonly bootstrap: ClusterConfig;
  readonly peers: Readonly<Record<NodeId, readonly string[]>>;
}

export interface KvNodeStartOptions {
  /** Tests: start the Raft clock, transport and listeners but skip publishing the member's attributes. */
  readonly skipPublish?: boolean;
  /** The lessor's expiry check period. Default 500 ms. */
  readonly leaseCheckIntervalMs?: number;
  /** Watch progress notification period. Default etcd's 10 min. */
  readonly watchProgressIntervalMs?: number;
}

export class KvNode {
  private closing: Promise<void> | null = null;
  private publishTimer: NodeJS.Timeout | null = null;
  private termNow = 0;
  /** Set by shutdown(): answers carry `Connection: close`. */
  draining = false;

  private constructor(
    readonly opts: KvServeOptions,
    readonly log: Logger,
    readonly memberId: string,
    readonly clusterId: string,
    readonly driver: RaftDriver,
    readonly sm: KvStateMachine,
    readonly hub: WatchHub,
    readonly lessor: Lessor,
    readonly metrics: KvMetrics,
    readonly book: PeerBook,
    private readonly transport: WsTransport,
    private readonly streamer: SnapshotStreamer,
    private readonly forwarder: WsForwarder,
    private readonly forwardServer: { close(): void },
    private readonly peerHttp: Server,
    private readonly clientHttp: Server,
    private readonly extraListeners: NetServer[],
    private readonly bootstrap: ClusterConfig,
    private readonly serviceImpl: NodeKvService,
    private readonly apis: ClientApis,
    private readonly problem: () => string | null,
    private readonly quorumWatch: QuorumWatch,
    /** Client URLs actually bound (ports resolved; 0.0.0.0 shown as 127.0.0.1). */
    readonly clientUrls: string[],
    /** Peer URLs actually bound. */
    readonly peerUrls: string[],
    /** --listen-metrics-urls actually bound. */
    readonly metricsUrls: string[],
    /** This member's clock (clock.ts): Date.now unless --clock-skew-ms / --clock-rate / POST /debug/clock change it. */
    readonly clock: NodeClock,
  ) {}

  get service(): KvService {
    return this.serviceImpl;
  }

  get term(): number {
    return this.termNow;
  }

  /**
   * Opens (or creates) the member's data, starts Raft and both listeners. Throws NodeStartError
   * (exitCode 3: corrupt log or snapshot, 4: a data dir of another member or cluster, 1: other).
   */
  static async start(opts: KvServeOptions, logger?: Logger, extra: KvNodeStartOptions = {}): Promise<KvNode> {
    const log = logger ?? pino({ level: 'silent' });
    const memberId = computeMemberId(opts.initialAdvertisePeerUrls, opts.initialClusterToken);
    await mkdir(opts.dataDir, { recursive: true });
    const identity = await loadOrCreateIdentity(opts, memberId, log);
    const { clusterId, bootstrap } = identity;
    const book = new PeerBook(memberId, dialOverridesById(opts));
    for (const [id, urls] of Object.entries(identity.peers)) book.set(id, urls);
    book.set(memberId, opts.initialAdvertisePeerUrls);

    // --- Raft log and snapshots.
    const raftDir = join(opts.dataDir, 'raft');
    let storage: LevelLogStorage;
    try {
      storage = await LevelLogStorage.open(raftDir, { sync: opts.unsafeNoFsync !== true });
    } catch (e) {
      throw startError(e);
    }
    let restored: RestoredState;
    let snapshots: SnapshotStore;
    let restoredSnapshotFile: VerifiedSnapshot | undefined;
    let sm: KvStateMachine | null = null;
    try {
      const meta = await storage.readMeta();
      if (meta === null) await storage.writeMeta({ clusterId, nodeId: memberId });
      else if (meta.clusterId !== clusterId || meta.nodeId !== memberId) {
        throw new NodeStartError(
          `data directory ${opts.dataDir} belongs to member ${meta.nodeId} of cluster ${meta.clusterId}, not member ${memberId} of cluster ${clusterId}; refusing to start`,
          EXIT.WRONG_DATA_DIR,
        );
      }
      restored = await storage.load();
      snapshots = await SnapshotStore.open(join(raftDir, 'snapshots'));
      if (restored.snapshot !== undefined) {
        restoredSnapshotFile = await snapshots.verify(restored.snapshot.index, restored.snapshot.term);
        book.learnFromSnapshot(restoredSnapshotFile.header.addresses);
      }
      for (const e of restored.entries) if (e.type === 'config') book.learnFromConfChange(decodeConfChange(e.data));
      sm = await KvStateMachine.open({ dir: join(opts.dataDir, 'kv'), logger: log.child({ component: 'store' }) });
    } catch (e) {
      await sm?.close().catch(() => undefined);
      await storage.close().catch(() => undefined);
      throw startError(e);
    }
    const storeAppliedAtStart = sm.appliedIndex;
    const lastIndex = restored.entries[restored.entries.length - 1]?.index ?? restored.snapshot?.index ?? 0;
    log.info(
      { dataDir: opts.dataDir, memberId, clusterId, lastIndex, commit: restored.hardState.commit, snapshot: restored.snapshot?.index ?? 0, storeAppliedIndex: storeAppliedAtStart, revision: sm.revision },
      'store opened',
    );

    // --- Listeners (bound before Raft starts so the URLs are known; requests wait for `node`).
    const peerHttp = createServer();
    // No whole-request deadline on the client listener: /v3/watch and /v3/lease/keepalive are long
    // POSTs whose bodies stay open for as long as the client watches (Node's default would cut them
    // after 300 s). Bodies are bounded by size in the gateway instead.
    const clientHttp = createServer({ requestTimeout: 0 });
    const extraListeners: NetServer[] = [];
    const metricsHttp = opts.listenMetricsUrls !== undefined && opts.listenMetricsUrls.length > 0 ? createServer() : null;
    // Every socket handed to 'upgrade' gets an error listener first: Node removes its own when it hands a
    // socket over, and a /raft upgrade can arrive before the Raft transport that claims it listens (the peer
    // listener opens first, driver.start() comes later). Such a socket waits unanswered until the dialer's
    // handshake timeout; if the link is reset meanwhile (a chaos proxy's partition), an unheard ECONNRESET
    // would crash the member.
    for (const s of [peerHttp, clientHttp, metricsHttp]) {
      s?.on('upgrade', (_req: IncomingMessage, socket: Duplex) => socket.on('error', () => socket.destroy()));
    }
    let peerUrls: string[];
    let clientUrls: string[];
    let metricsUrls: string[] = [];
    try {
      peerUrls = await listenAll(peerHttp, opts.listenPeerUrls.map((u) => parseUrl('--listen-peer-urls', u, true)), extraListeners);
      clientUrls = await listenAll(clientHttp, opts.listenClientUrls.map((u) => parseUrl('--listen-client-urls', u, true)), extraListeners);
      if (metricsHttp !== null) metricsUrls = await listenAll(metricsHttp, opts.listenMetricsUrls!.map((u) => parseUrl('--listen-metrics-urls', u, true)), extraListeners);
    } catch (e) {
      for (const s of extraListeners) s.close();
      peerHttp.close();
      clientHttp.close();
      metricsHttp?.close();
      await sm.close().catch(() => undefined);
      await storage.close().catch(() => undefined);
      throw new NodeStartError((e as Error).message, EXIT.FATAL);
    }

    // --- Metrics first (the state machine wrapper and the storage timing feed it).
    let driverRef: RaftDriver | null = null;
    let hubRef: WatchHub | null = null;
    let problemRef: () => string | null = () => 'not started';
    const smRef = sm;
    const metrics = new KvMetrics(
      {
        commitIndex: () => driverRef?.status().commit ?? 0,
        appliedIndex: () => smRef.appliedIndex,
        term: () => driverRef?.status().term ?? 0,
        isLeader: () => driverRef?.role === 'leader',
        hasLeader: () => problemRef() === null,
        watchers: () => hubRef?.count ?? 0,
        revision: () => smRef.revision,
        pendingProposals: () => driverRef?.status().pendingProposals ?? 0,
      },
      { member: memberId, name: opts.name },
    );
    timeSaves(storage, metrics);

    const transport = new WsTransport({
      clusterId,
      nodeId: memberId,
      peers: {},
      server: peerHttp,
      logger: log.child({ component: 'transport' }),
    });
    // The member's clock (clock.ts): its rate drives the Raft ticks and the quorum guard's elapsed time.
    const clock = new NodeClock({ skewMs: opts.clockSkewMs ?? 0, rate: opts.clockRate ?? 1 });
    const tracker = new HeardTracker(transport, clock.monotonicNow);
    const streamer = new SnapshotStreamer({
      clusterId,
      nodeId: memberId,
      server: peerHttp,
      store: snapshots,
      addressOf: (id) => book.dialAddress(id),
      onSnapshot: (message, file) => driverRef?.deliverSnapshot(message, file),
      logger: log.child({ component: 'snapshot-stream' }),
    });
    const isBootstrapMember = bootstrap.voters.includes(memberId) || bootstrap.learners.includes(memberId);
    const electionTicks = Math.max(2, Math.round(opts.electionTimeoutMs / opts.heartbeatIntervalMs));
    const requestTimeoutMs = Math.max(opts.requestTimeoutMs ?? 10_000, 0);
    const maxRequestBytes = opts.maxRequestBytes ?? 1.5 * 1024 * 1024;
    // Counts what the store really applied vs skipped (it had them: a restart).
    const counted: StateMachine = {
      apply(entry: Entry): void {
        const skip = entry.index <= smRef.appliedIndex;
        smRef.apply(entry);
        metrics.applyEntries.inc({ kind: skip ? 'skipped' : 'applied' });
      },
      snapshot: (at: SnapshotPoint) => smRef.snapshot(at),
      restore: (at: SnapshotPoint, data: AsyncIterable<Uint8Array>) => smRef.restore(at, data),
    };
    const driver = new RaftDriver({
      config: {
        id: memberId,
        peers: bootstrap.voters,
        learners: bootstrap.learners,
        joining: !isBootstrapMember,
        electionTicks,
        heartbeatTicks: 1,
        readMode: opts.readMode ?? 'read-index',
        randomSeed: randomInt(0, 2 ** 31 - 1),
      },
      storage,
      transport: tracker,
      stateMachine: counted,
      restored,
      snapshots,
      snapshotSender: streamer,
      snapshotAddresses: () => book.toSnapshotAddresses(),
      ...(restoredSnapshotFile !== undefined ? { restoredSnapshotFile } : {}),
      // etcd's default: a snapshot of the store copies its whole retained history, so it is taken
      // rarely (the store persists itself; the snapshot only bounds the Raft log and feeds followers).
      snapshotEntries: opts.snapshotCount ?? KV_SERVE_DEFAULTS.snapshotCount,
      snapshotTrailingEntries: Math.min(5_000, opts.snapshotCount ?? KV_SERVE_DEFAULTS.snapshotCount),
      tickMs: opts.heartbeatIntervalMs,
      ...(opts.maxBatchEntries !== undefined ? { maxBatchEntries: opts.maxBatchEntries } : {}),
      ...(clock.setting.rate !== 1 ? { tickRate: clock.setting.rate } : {}),
      defaultTimeoutMs: requestTimeoutMs,
      // A proposal is a request plus its envelope; the request bound is checked before proposing.
      maxProposalBytes: maxRequestBytes + 64 * 1024,
      logger: log.child({ component: 'driver' }),
    });
    driverRef = driver;
    clock.onChange((s) => driver.setTickRate(s.rate));
    const quorumWindowMs = opts.electionTimeoutMs;
    // Judged on every write and linearizable read: the driver's role and leader, and the voters
    // as of the last 'config' event (no status() copy per request).
    let voters: readonly NodeId[] = bootstrap.voters;
    driver.on('config', (config) => (voters = config.voters));
    const problem = (): string | null => quorumProblem({ self: memberId, role: driver.role, leader: driver.leader, voters }, tracker, quorumWindowMs);
    problemRef = problem;
    const quorumWatch = new QuorumWatch(problem, Math.max(10, Math.min(100, opts.heartbeatIntervalMs)));

    let serviceRef: NodeKvService | null = null;
    const hub = new WatchHub({
      source: sm,
      header: () => serviceRef!.header(),
      ...(extra.watchProgressIntervalMs !== undefined ? { progressIntervalMs: extra.watchProgressIntervalMs } : {}),
      logger: log.child({ component: 'watch' }),
    });
    hubRef = hub;
    const lessor = new Lessor({
      leases: () => smRef.leases(),
      revoke: async (id) => {
        await serviceRef!.write({ op: 'leaseRevoke', id, expired: true });
      },
      ...(extra.leaseCheckIntervalMs !== undefined ? { checkIntervalMs: extra.leaseCheckIntervalMs } : {}),
      nowMs: clock.now,
      logger: log.child({ component: 'lessor' }),
    });
    const maxForwardFrameBytes = maxRequestBytes + 1024 * 1024;
    const forwarder = new WsForwarder(book, clusterId, 16_384, 4 * maxForwardFrameBytes, (r) => metrics.forwarded.inc({ result: r }));
    let nodeRef: KvNode | null = null;
    const service = new NodeKvService({
      memberId,
      clusterId,
      clusterToken: identity.clusterToken,
      driver,
      sm,
      hub,
      lessor,
      book,
      metrics,
      forwarder,
      requestTimeoutMs,
      maxRequestBytes,
      term: () => nodeRef?.termNow ?? 0,
      quorumProblem: problem,
      quorumWatch,
      leaderClientUrl: () => {
        const l = driver.leader;
        return l === null ? null : (smRef.members().get(l)?.clientUrls[0] ?? null);
      },
      backup: () => writeBackup(smRef),
      ...(opts.unsafeStaleReads === true ? { unsafeStaleReads: true } : {}),
      nowMs: clock.now,
    });
    serviceRef = service;
    const forwardServer = attachForwardServer(peerHttp, {
      service,
      clusterId,
      maxFrameBytes: maxForwardFrameBytes,
      maxInFlightPerConnection: 16_384,
      logger: log.child({ component: 'forward' }),
    });
    const apis = mountClientApis(clientHttp, service, { maxRequestBytes, logger: log.child({ component: 'api' }) });

    const node = new KvNode(
      opts, log, memberId, clusterId, driver, sm, hub, lessor, metrics, book, transport, streamer, forwarder, forwardServer,
      peerHttp, clientHttp, extraListeners, bootstrap, service, apis, problem, quorumWatch, clientUrls, peerUrls, metricsUrls, clock,
    );
    nodeRef = node;

    peerHttp.on('request', (req, res) => node.onPeerRequest(req, res));
    clientHttp.on('request', (req, res) => node.onClientRequest(req, res, apis));
    if (metricsHttp !== null) {
      // etcd's --listen-metrics-urls: the probes and /metrics only.
      const probesOnly: ClientApis = { gateway: () => false, upgradePaths: [], close: async () => undefined };
      metricsHttp.on('request', (req, res) => node.onClientRequest(req, res, probesOnly));
      extraListeners.push(metricsHttp);
    }
    // Upgrades nobody claims (not /raft, /snapshot or the native API's path) are refused; the metrics
    // listener claims none (without this, its error-listener above would leave such a request hanging).
    for (const s of [peerHttp, clientHttp, metricsHttp]) {
      s?.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        const claimed =
          s === peerHttp ? path === '/raft' || path === SNAPSHOT_STREAM_PATH || path === FORWARD_PATH : s === clientHttp ? apis.upgradePaths.includes(path) : false;
        if (!claimed) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      });
    }

    driver.on('confChange', ({ change }) => {
      book.learnFromConfChange(change);
      node.reconcilePeers();
    });
    driver.on('snapshotInstalled', (header) => {
      book.learnFromSnapshot(header.addresses);
      node.reconcilePeers();
    });
    driver.on('config', (config) => {
      node.reconcilePeers();
      for (const id of Object.keys(transport.peers())) if (!config.voters.includes(id) && !config.learners.includes(id)) tracker.forget(id);
    });
    driver.on('role', ({ previous, current }) => {
      node.termNow = current.term;
      if (previous.leader !== current.leader && current.leader !== null) metrics.leaderChanges.inc();
      lessor.setLeader(current.role === 'leader');
      node.reconcilePeers();
    });
    driver.on('fatal', (e) => log.fatal({ err: e }, 'the Raft driver stopped after a fatal error'));

    try {
      await driver.start();
    } catch (e) {
      await node.close();
      throw startError(e);
    }
    const st = driver.status();
    node.termNow = st.term;
    voters = st.config.voters;
    node.reconcilePeers();
    log.info(
      {
        name: opts.name,
        memberId,
        clusterId,
        clientUrls,
        peerUrls,
        advertiseClientUrls: opts.advertiseClientUrls,
        advertisePeerUrls: opts.initialAdvertisePeerUrls,
        voters: st.config.voters,
        learners: st.config.learners,
        ...(metricsUrls.length > 0 ? { metricsUrls } : {}),
        electionTicks,
        tickMs: opts.heartbeatIntervalMs,
      },
      'listening',
    );
    if (opts.ignoredEtcdFlags !== undefined && opts.ignoredEtcdFlags.length > 0) {
      log.warn({ flags: opts.ignoredEtcdFlags }, 'etcd flags accepted for compatibility but ignored by Ballot');
    }
    node.warnUnsafe();
    node.logCatchUp(storeAppliedAtStart, restored.hardState.commit);
    if (extra.skipPublish !== true) node.startPublishing();
    return node;
  }

  /** Loud start-up warnings for the deliberate-bug and clock flags (chaos experiments and teaching only). */
  private warnUnsafe(): void {
    const o = this.opts;
    if (o.unsafeStaleReads === true) {
      this.log.warn({ flag: '--unsafe-stale-reads' }, '!!! UNSAFE: linearizable reads are answered from the local store WITHOUT ReadIndex; they may be stale. A deliberate bug for chaos runs and teaching: never use it for real data !!!');
    }
    if (o.unsafeNoFsync === true) {
      this.log.warn({ flag: '--unsafe-no-fsync' }, '!!! UNSAFE: the Raft log is written WITHOUT fsync; acknowledged writes can be lost in a crash. A deliberate bug for chaos runs and teaching: never use it for real data !!!');
    }
    if (o.unsafeDebugClock === true) {
      this.log.warn({ flag: '--unsafe-debug-clock', path: DEBUG_CLOCK_PATH }, "UNSAFE: anyone reaching the client listener can change this member's clock");
    }
    const unsafe = [
      ...(o.unsafeStaleReads === true ? ['--unsafe-stale-reads'] : []),
      ...(o.unsafeNoFsync === true ? ['--unsafe-no-fsync'] : []),
      ...(o.unsafeDebugClock === true ? ['--unsafe-debug-clock'] : []),
    ];
    const c = this.clock.setting;
    if (unsafe.length > 0 || c.skewMs !== 0 || c.rate !== 1) this.metrics.reportChaos(unsafe, () => this.clock.setting);
    if (c.skewMs !== 0 || c.rate !== 1) this.log.warn({ skewMs: c.skewMs, rate: c.rate }, "this member's clock is skewed or runs at another rate (chaos experiment)");
  }

  /** GET/POST /debug/clock (only with --unsafe-debug-clock): reads or changes {skewMs, rate}. */
  private onDebugClock(req: IncomingMessage, res: ServerResponse): void {
    const answer = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    };
    if (req.method === 'GET') {
      req.resume();
      return answer(200, { ...this.clock.setting, nowMs: this.clock.now(), ticks: this.driver.ticks });
    }
    if (req.method !== 'POST') {
      req.resume();
      return answer(405, { error: 'use GET or POST' });
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes <= 4096) chunks.push(c); // bound: a clock setting is a few bytes; more is refused below
    });
    req.on('end', () => {
      if (bytes > 4096) return answer(413, { error: 'body too large (max 4096 bytes)' });
      let change: Partial<ClockSetting>;
      try {
        const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object {skewMs?, rate?}');
        const { skewMs, rate } = v as Record<string, unknown>;
        if (skewMs !== undefined && typeof skewMs !== 'number') throw new Error('skewMs must be a number');
        if (rate !== undefined && typeof rate !== 'number') throw new Error('rate must be a number');
        change = { ...(skewMs !== undefined ? { skewMs } : {}), ...(rate !== undefined ? { rate } : {}) };
        const set = this.clock.set(change);
        this.log.warn({ skewMs: set.skewMs, rate: set.rate }, 'clock changed through /debug/clock');
        answer(200, { ...set, nowMs: this.clock.now(), ticks: this.driver.ticks });
      } catch (e) {
        answer(400, { error: (e as Error).message });
      }
    });
  }

  /** Logs once the store has re-reached the commit index it had before the restart. */
  private logCatchUp(storeAppliedAtStart: number, commitAtStart: number): void {
    const check = (): void => {
      if (this.closing) return;
      if (this.sm.appliedIndex >= commitAtStart) {
        this.log.info({ storeAppliedAtStart, commitAtStart, appliedIndex: this.sm.appliedIndex }, 'caught up with the log');
        return;
      }
      setTimeout(check, 50).unref();
    };
    check();
  }

  /** Level-triggered peer links: every member of the configuration in effect, and the leader. */
  reconcilePeers(): void {
    if (this.closing) return;
    const st = this.driver.status();
    this.book.reconcile(this.transport, [...st.config.voters, ...st.config.learners], st.leader);
  }

  /**
   * etcd's publish: once a leader is known, this member's name and advertised client URLs go
   * through the log (so member list shows them everywhere). Retried every 500 ms until the store
   * shows them.
   */
  private startPublishing(): void {
    const attempt = (): void => {
      this.publishTimer = null;
      if (this.closing) return;
      const mine = this.sm.members().get(this.memberId);
      const want = this.opts.advertiseClientUrls;
      if (mine !== undefined && mine.name === this.opts.name && sameList(mine.clientUrls, want)) {
        this.log.info({ name: this.opts.name, clientUrls: want }, 'published member attributes');
        return;
      }
      const retry = (): void => {
        if (!this.closing) this.publishTimer = setTimeout(attempt, 500);
      };
      if (this.driver.leader === null) return retry();
      this.serviceImpl.publish(this.opts.name, want, { timeoutMs: 5000 }).then(retry, (e: unknown) => {
        this.log.debug({ err: (e as Error).message }, 'publish failed; retrying');
        retry();
      });
    };
    this.publishTimer = setTimeout(attempt, 0);
  }

  private clusterInfo(): ClusterInfo {
    const st = this.driver.status();
    return { clusterId: this.clusterId, bootstrap: this.bootstrap, config: st.config, peers: this.book.toRecord(), leader: st.leader };
  }

  private onPeerRequest(req: IncomingMessage, res: ServerResponse): void {
    if (this.closing) {
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain', connection: 'close' }).end('the member is stopping\n');
      return;
    }
    const handled = handlePeerRequest(req, res, { cluster: () => this.clusterInfo() });
    if (!handled) {
      req.resume();
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no such peer endpoint: ${req.url ?? ''}\n`);
    }
  }

  private onClientRequest(req: IncomingMessage, res: ServerResponse, apis: ClientApis): void {
    if (this.draining) res.setHeader('connection', 'close');
    const path = new URL(req.url ?? '/', 'http://client').pathname;
    res.once('finish', () => this.metrics.countRequest(path, res.statusCode));
    if (path === DEBUG_CLOCK_PATH && this.opts.unsafeDebugClock === true && apis === this.apis) return this.onDebugClock(req, res);
    handleClientRequest(req, res, path, {
      apis,
      metrics: this.metrics,
      problem: () => this.quorumProblemNow(),
      ready: () => this.readyProblem(),
    });
  }

  /** Why writes and linearizable reads are refused now, or null. */
  quorumProblemNow(): string | null {
    if (this.closing) return 'the member is stopping';
    return this.problem();
  }

  /** /readyz: serving requires a leader heard from recently and the store applied up to the commit index it knows. */
  private readyProblem(): string | null {
    const q = this.quorumProblemNow();
    if (q !== null) return q;
    const st = this.driver.status();
    if (this.sm.appliedIndex < st.commit - 1000) return `the store is catching up (applied ${this.sm.appliedIndex} of ${st.commit})`;
    return null;
  }

  /**
   * Graceful stop: a leader hands leadership to its most up-to-date voter first (thesis §3.10,
   * bounded), waits briefly for its proposals in flight to be applied, then close().
   */
  async shutdown(transferTimeoutMs = 3000, drainMs = 2000): Promise<void> {
    if (this.driver.role === 'leader') {
      const st = this.driver.status();
      let best: NodeId | null = null;
      let bestMatch = -1;
      for (const id of st.config.voters) {
        const pr = st.progress[id];
        if (id === this.memberId || pr === undefined || !pr.recentActive) continue;
        if (pr.match > bestMatch) [best, bestMatch] = [id, pr.match];
      }
      if (best !== null) {
        this.log.info({ to: best }, 'leader shutting down: transferring leadership first');
        const ok = await this.driver.transferLeadership(best, { timeoutMs: transferTimeoutMs }).then(
          () => true,
          (e: unknown) => {
            this.log.warn({ err: (e as Error).message }, 'leadership transfer failed; stopping anyway');
            return false;
          },
        );
        if (ok) {
          const deadline = Date.now() + drainMs;
          while (this.driver.status().pendingProposals > 0 && Date.now() < deadline) await sleep(20);
        }
      }
    }
    this.draining = true;
    await sleep(200);
    await this.close();
  }

  /** Stops serving, then Raft (transport and log), then the store. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.publishTimer !== null) clearTimeout(this.publishTimer);
      this.quorumWatch.close();
      this.lessor.close();
      this.hub.close();
      await this.apis.close();
      this.forwardServer.close();
      const closed = Promise.all([this.clientHttp, this.peerHttp].map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of this.extraListeners) s.close();
      this.clientHttp.closeAllConnections();
      await this.streamer.close();
      await this.driver.stop();
      this.peerHttp.closeAllConnections();
      this.forwarder.close();
      await this.sm.close().catch((e: unknown) => this.log.warn({ err: e }, 'store close failed'));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
      clearTimeout(timer);
      this.log.info({ memberId: this.memberId }, 'stopped');
    })();
    return this.closing;
  }
}

// ---------------------------------------------------------------------------------------------

async function loadOrCreateIdentity(opts: KvServeOptions, memberId: string, log: Logger): Promise<MemberFile> {
  const file = join(opts.dataDir, 'member.json');
  const existing = await readFile(file, 'utf8').then(
    (t) => JSON.parse(t) as MemberFile,
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw new NodeStartError(`cannot read ${file}: ${e.message}`, EXIT.STORAGE_CORRUPT);
    },
  );
  if (existing !== null) {
    if (existing.memberId !== memberId) {
      throw new NodeStartError(
        `data directory ${opts.dataDir} belongs to member ${existing.memberId} (${existing.name}); these flags make member ${memberId} ` +
          `(--initial-advertise-peer-urls and --initial-cluster-token decide the id); refusing to start`,
        EXIT.WRONG_DATA_DIR,
      );
    }
    log.info({ memberId, clusterId: existing.clusterId }, 'restarting from existing data; --initial-cluster flags are ignored');
    return existing;
  }
  let identity: MemberFile;
  const ids: Record<NodeId, string[]> = {};
  for (const [, urls] of Object.entries(opts.initialCluster)) ids[computeMemberId(urls, opts.initialClusterToken)] = urls;
  if (opts.initialClusterState === 'new') {
    identity = {
      version: 1,
      name: opts.name,
      memberId,
      clusterId: computeClusterId(Object.keys(ids), opts.initialClusterToken),
      clusterToken: opts.initialClusterToken,
      bootstrap: { voters: Object.keys(ids).sort(), learners: [] },
      peers: ids,
    };
  } else {
    const info = await fetchClusterInfo(opts, memberId, log);
    identity = {
      version: 1,
      name: opts.name,
      memberId,
      clusterId: info.clusterId,
      clusterToken: opts.initialClusterToken,
      bootstrap: info.bootstrap,
      peers: { ...info.peers },
    };
  }
  // Durable before anything depends on it: temp file, fsync, rename (then the Raft log's own meta).
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(identity, null, 2));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  return identity;
}

/** --peer-dial-override by member id (ids come from the shared --initial-cluster URLs, as every member computes them). */
function dialOverridesById(opts: KvServeOptions): Map<NodeId, string> {
  const out = new Map<NodeId, string>();
  for (const [name, url] of Object.entries(opts.peerDialOverride ?? {})) {
    const urls = opts.initialCluster[name];
    if (urls !== undefined) out.set(computeMemberId(urls, opts.initialClusterToken), url);
  }
  return out;
}

/** --initial-cluster-state existing: ask the other members for the cluster (retried for up to 30 s). */
async function fetchClusterInfo(opts: KvServeOptions, memberId: string, log: Logger): Promise<ClusterInfo> {
  const mine = new Set(opts.initialAdvertisePeerUrls);
  // A member with a --peer-dial-override is asked there (its advertised URLs may be unreachable from here).
  const others = Object.entries(opts.initialCluster).flatMap(([name, urls]) => {
    const override = opts.peerDialOverride?.[name];
    return override !== undefined ? [override] : urls.filter((u) => !mine.has(u));
  });
  if (others.length === 0) throw new NodeStartError('--initial-cluster-state existing: --initial-cluster names no other member to ask', EXIT.USAGE);
  const deadline = Date.now() + 30_000;
  let lastError = 'no member answered';
  for (let attempt = 0; ; attempt++) {
    for (const url of others) {
      try {
        const res = await fetch(`${url}${CLUSTER_PATH}`, { signal: AbortSignal.timeout(2000) });
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        const info = (await res.json()) as ClusterInfo;
        if (!info.config.voters.includes(memberId) && !info.config.learners.includes(memberId)) {
          lastError = `member ${memberId} has not been added to the cluster (run member add with --peer-urls ${opts.initialAdvertisePeerUrls.join(',')} first)`;
          continue;
        }
        log.info({ via: url, clusterId: info.clusterId, config: info.config }, 'joining an existing cluster');
        return info;
      } catch (e) {
        lastError = `${url}: ${(e as Error).message}`;
      }
    }
    if (Date.now() >= deadline) throw new NodeStartError(`--initial-cluster-state existing: ${lastError}`, EXIT.FATAL);
    if (attempt % 10 === 0) log.warn({ reason: lastError }, 'waiting for the existing cluster');
    await sleep(500);
  }
}

/** Binds `server` on the first URL; further URLs get a net server handing connections to it. */
async function listenAll(server: Server, urls: readonly ParsedUrl[], extra: NetServer[]): Promise<string[]> {
  const bound: string[] = [];
  for (const [i, u] of urls.entries()) {
    const target: Server | NetServer = i === 0 ? server : createNetServer((socket) => server.emit('connection', socket));
    if (i > 0) extra.push(target as NetServer);
    await new Promise<void>((resolve, reject) => {
      target.once('error', reject);
      target.listen(u.port, u.host, () => {
        target.off('error', reject);
        resolve();
      });
    }).catch((e: unknown) => {
      throw new Error(`cannot listen on ${u.url}: ${(e as Error).message}`);
    });
    const a = target.address();
    const port = typeof a === 'object' && a !== null ? a.port : u.port;
    const host = u.host === '0.0.0.0' || u.host === '::' ? '127.0.0.1' : u.host.includes(':') ? `[${u.host}]` : u.host;
    bound.push(`http://${host}:${port}`);
  }
  return bound;
}

/** The Raft log save (an atomic LevelDB batch, fsync'd) timed into the histogram. */
function timeSaves(storage: LevelLogStorage, metrics: KvMetrics): void {
  const save = storage.save.bind(storage);
  storage.save = async (batch) => {
    const end = metrics.logSaveSeconds.startTimer();
    try {
      await save(batch);
    } finally {
      end();
    }
  };
}

function startError(e: unknown): NodeStartError {
  if (e instanceof NodeStartError) return e;
  if (e instanceof RaftError && e.code === 'STORAGE_CORRUPT') return new NodeStartError(e.message, EXIT.STORAGE_CORRUPT);
  if (e instanceof KvError && e.code === 'STORAGE_CORRUPT') return new NodeStartError(e.message, EXIT.STORAGE_CORRUPT);
  return new NodeStartError(e instanceof Error ? e.message : String(e), EXIT.FATAL);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
