// Ballot's side of the benchmark: a cluster of real `ballot raft node` processes on loopback
// (real LevelDB with fsync, real ws transport), and a client speaking the node's pipelined
// msgpack protocol on ws /client, multiplexed over a few connections per member.

import { pack, unpack } from 'msgpackr';
import WebSocket from 'ws';
import {
  BenchRequestError,
  getJson,
  isRecord,
  randomPayload,
  type ProposeClient,
} from './cluster.js';
import { ProcessCluster, type ProcessMember } from './process-cluster.js';
import { freePorts, type Supervisor } from './supervisor.js';

export interface BallotClusterOptions {
  readonly supervisor: Supervisor;
  /** Path of packages/cli/dist/bin.js. */
  readonly binPath: string;
  /** Directory for data directories and log files. */
  readonly workDir: string;
  readonly size: number;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly logLevel: string;
  /** More `raft node` flags appended to every member's command line (e.g. snapshot settings). */
  readonly extraArgs?: readonly string[];
}

interface Member extends ProcessMember {
  readonly port: number;
}

interface NodeStatus {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commit: number;
  readonly applied: number;
}

function parseStatus(value: unknown): NodeStatus {
  if (!isRecord(value)) throw new Error('status is not an object');
  const { id, role, term, leader, commit, applied } = value;
  if (typeof id !== 'string' || typeof role !== 'string' || typeof term !== 'number') {
    throw new Error(`unexpected /status shape: ${JSON.stringify(value).slice(0, 200)}`);
  }
  return {
    id,
    role,
    term,
    leader: typeof leader === 'string' ? leader : null,
    commit: typeof commit === 'number' ? commit : 0,
    applied: typeof applied === 'number' ? applied : 0,
  };
}

export class BallotCluster extends ProcessCluster<Member> {
  readonly system = 'ballot' as const;
  readonly electionTimeoutMs: number;
  protected readonly leaderIndexName = 'commit index';
  private peersArg = '';

  constructor(private readonly opts: BallotClusterOptions) {
    super(
      Array.from({ length: opts.size }, (_, i) => `n${i + 1}`),
      opts.supervisor,
      opts.workDir,
    );
    this.electionTimeoutMs = opts.tickMs * opts.electionTicks;
  }

  address(member: string): string {
    return `127.0.0.1:${this.member(member).port}`;
  }

  async start(): Promise<void> {
    const ports = await freePorts(this.members.length);
    for (const [i, name] of this.members.entries()) {
      this.byName.set(name, { ...this.newMember(name), port: ports[i] as number });
    }
    this.peersArg = this.members.map((n) => `${n}=${this.address(n)}`).join(',');
    await Promise.all(this.members.map((n) => this.launch(n)));
  }

  protected async launch(name: string): Promise<void> {
    const m = this.member(name);
    await this.spawnAndWait(
      name,
      process.execPath,
      [
        this.opts.binPath,
        'raft',
        'node',
        '--id', name,
        '--cluster-id', 'ballot-bench',
        '--data-dir', m.dataDir,
        '--listen', this.address(name),
        '--peers', this.peersArg,
        '--tick-ms', String(this.opts.tickMs),
        '--election-ticks', String(this.opts.electionTicks),
        '--heartbeat-ticks', String(this.opts.heartbeatTicks),
        '--log-level', this.opts.logLevel,
        ...(this.opts.extraArgs ?? []),
      ],
      'GET /status',
      async () => parseStatus(await getJson(`http://${this.address(name)}/status`, 500)),
    );
  }

  async status(name: string): Promise<NodeStatus> {
    return parseStatus(await getJson(`http://${this.address(name)}/status`, 1000));
  }

  protected async agreedLeader(): Promise<string | undefined> {
    const statuses = await Promise.all(this.running().map((n) => this.status(n)));
    const leaders = statuses.filter((s) => s.role === 'leader');
    if (leaders.length !== 1) return undefined;
    const leader = leaders[0] as NodeStatus;
    const agreed = statuses.every((s) => s.leader === leader.id && s.term === leader.term);
    return agreed ? leader.id : undefined;
  }

  protected async allApplied(leader: string): Promise<boolean> {
    const target = (await this.status(leader)).commit;
    const statuses = await Promise.all(this.members.map((n) => this.status(n)));
    return statuses.every((s) => s.applied >= target && s.leader === leader);
  }

  async openClient(concurrency: number, payloadBytes: number): Promise<ProposeClient> {
    return new BallotClient(this, Math.min(4, Math.max(1, concurrency)), concurrency, payloadBytes);
  }

  describe(): Readonly<Record<string, unknown>> {
    return {
      members: this.members.length,
      tickMs: this.opts.tickMs,
      electionTicks: this.opts.electionTicks,
      heartbeatTicks: this.opts.heartbeatTicks,
      electionTimeoutMs: this.electionTimeoutMs,
      transport: 'ws /raft, msgpackr',
      storage: 'LevelDB (classic-level), batches written with sync:true',
      client: 'ws /client, pipelined msgpack, up to 4 connections per member',
    };
  }
}

interface PendingRequest {
  readonly resolve: (value: ClientResponse) => void;
  readonly reject: (err: BenchRequestError) => void;
  readonly deadlineMs: number;
}

type ClientResponse =
  | { readonly ok: true; readonly index: number }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly leader: unknown };

/** One ws /client connection with pipelined requests matched to responses by id. */
class ClientConnection {
  private readonly pending = new Map<number, PendingRequest>();
  private nextId = 1;
  private readonly sweep: NodeJS.Timeout;
  private closed = false;
  readonly opened: Promise<void>;

  private constructor(private readonly ws: WebSocket) {
    this.opened = new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (err) => reject(new BenchRequestError('DISCONNECTED', `ws /client: ${err.message}`)));
    });
    this.opened.catch(() => {}); // observed by callers; avoid an unhandled rejection here
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('error', () => {});
    ws.on('close', () => this.failAll('DISCONNECTED', 'connection closed'));
    // One timer per connection sweeps deadlines (cheaper than one timer per request).
    this.sweep = setInterval(() => {
      const now = performance.now();
      for (const [id, p] of this.pending) {
        if (p.deadlineMs <= now) {
          this.pending.delete(id);
          p.reject(new BenchRequestError('CLIENT_TIMEOUT', 'no response within the deadline'));
        }
      }
    }, 250);
    this.sweep.unref();
  }

  static open(address: string): ClientConnection {
    return new ClientConnection(new WebSocket(`ws://${address}/client`, { perMessageDeflate: false }));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async request(body: Readonly<Record<string, unknown>>, timeoutMs: number): Promise<ClientResponse> {
    await this.opened;
    if (this.closed) throw new BenchRequestError('DISCONNECTED', 'connection closed');
    const id = this.nextId++;
    return new Promise<ClientResponse>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadlineMs: performance.now() + timeoutMs });
      this.ws.send(pack({ id, ...body }), (err) => {
        if (err !== undefined && err !== null) {
          this.pending.delete(id);
          reject(new BenchRequestError('DISCONNECTED', err.message));
        }
      });
    });
  }

  private onFrame(data: Buffer): void {
    let decoded: unknown;
    try {
      decoded = unpack(data);
    } catch {
      this.failAll('BAD_FRAME', 'undecodable response frame');
      this.ws.terminate();
      return;
    }
    for (const item of Array.isArray(decoded) ? decoded : [decoded]) {
      if (!isRecord(item) || typeof item.id !== 'number') continue;
      const p = this.pending.get(item.id);
      if (p === undefined) continue;
      this.pending.delete(item.id);
      if (item.ok === true) {
        p.resolve({ ok: true, index: typeof item.index === 'number' ? item.index : -1 });
      } else {
        p.resolve({
          ok: false,
          code: typeof item.code === 'string' ? item.code : 'UNKNOWN',
          message: typeof item.message === 'string' ? item.message : '',
          leader: item.leader,
        });
      }
    }
  }

  private failAll(code: string, message: string): void {
    this.closed = true;
    clearInterval(this.sweep);
    for (const p of this.pending.values()) p.reject(new BenchRequestError(code, message));
    this.pending.clear();
  }

  close(): void {
    this.failAll('DISCONNECTED', 'closed by the client');
    this.ws.terminate();
  }
}

const REQUEST_TIMEOUT_MS = 10_000;
const MAX_REDIRECTS = 5;

class BallotClient implements ProposeClient {
  private readonly conns = new Map<string, ClientConnection[]>();
  private readonly payloads: Uint8Array[];
  /** Where proposals go; moved by NOT_LEADER redirects, shared by all workers. */
  private target: string;

  constructor(
    private readonly cluster: BallotCluster,
    private readonly connsPerMember: number,
    concurrency: number,
    payloadBytes: number,
  ) {
    this.payloads = Array.from({ length: concurrency }, () => randomPayload(payloadBytes));
    this.target = cluster.members[0] as string;
  }

  private connection(member: string, slot: number): ClientConnection {
    let list = this.conns.get(member);
    if (list === undefined) {
      list = [];
      this.conns.set(member, list);
    }
    const i = slot % this.connsPerMember;
    let conn = list[i];
    if (conn === undefined || conn.isClosed) {
      conn = ClientConnection.open(this.cluster.address(member));
      list[i] = conn;
    }
    return conn;
  }

  async warm(members: readonly string[]): Promise<void> {
    await Promise.all(
      members.flatMap((m) =>
        Array.from({ length: this.connsPerMember }, (_, slot) => this.connection(m, slot).opened),
      ),
    );
  }

  /** Maps a NOT_LEADER hint (an id, an address or an object naming either) to a member name. */
  private resolveLeader(hint: unknown): string | null {
    const candidates: unknown[] = isRecord(hint) ? [hint.id, hint.address, hint.addr, hint.clientAddress] : [hint];
    for (const c of candidates) {
      if (typeof c !== 'string') continue;
      if (this.cluster.members.includes(c)) return c;
      const byAddress = this.cluster.members.find((m) => this.cluster.address(m) === c || c.endsWith(this.cluster.address(m)));
      if (byAddress !== undefined) return byAddress;
    }
    return null;
  }

  private rotateTarget(from: string): void {
    if (this.target !== from) return; // another worker already moved it
    const i = this.cluster.members.indexOf(from);
    this.target = this.cluster.members[(i + 1) % this.cluster.members.length] as string;
  }

  async propose(worker: number): Promise<void> {
    const data = this.payloads[worker % this.payloads.length] as Uint8Array;
    for (let redirects = 0; ; redirects++) {
      const member = this.target;
      let res: ClientResponse;
      try {
        res = await this.connection(member, worker).request({ op: 'propose', data }, REQUEST_TIMEOUT_MS);
      } catch (err) {
        if (err instanceof BenchRequestError && err.code === 'DISCONNECTED') this.rotateTarget(member);
        throw err;
      }
      if (res.ok) return;
      if (res.code === 'NOT_LEADER' && redirects < MAX_REDIRECTS) {
        const leader = this.resolveLeader(res.leader);
        if (leader !== null && leader !== member) {
          this.target = leader;
          continue;
        }
        this.rotateTarget(member);
      }
      throw new BenchRequestError(res.code, res.message);
    }
  }

  async tryProposeAt(member: string, timeoutMs: number): Promise<boolean> {
    try {
      const res = await this.connection(member, 0).request({ op: 'propose', data: this.payloads[0] as Uint8Array }, timeoutMs);
      return res.ok;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    for (const list of this.conns.values()) for (const c of list) c?.close();
    this.conns.clear();
  }
}
