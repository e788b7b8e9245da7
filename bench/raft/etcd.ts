// The reference: a real etcd cluster on loopback, driven through its v3 JSON gateway
// (POST /v3/kv/put, base64 keys and values) with keep-alive HTTP agents.

import { execFile } from 'node:child_process';
import { Agent } from 'node:http';
import { promisify } from 'node:util';
import {
  BenchRequestError,
  getJson,
  isRecord,
  postJson,
  postOverAgent,
  randomPayload,
  warmAgent,
  type ProposeClient,
} from './cluster.js';
import { ProcessCluster, type ProcessMember } from './process-cluster.js';
import { freePorts, waitUntil, type Supervisor } from './supervisor.js';

/** The etcd binary and its version, or why it cannot be used. */
export type EtcdDetection =
  | { readonly found: true; readonly binary: string; readonly version: string }
  | { readonly found: false; readonly reason: string };

export async function detectEtcd(binary = 'etcd'): Promise<EtcdDetection> {
  try {
    const { stdout } = await promisify(execFile)(binary, ['--version'], { timeout: 10_000 });
    const match = /etcd Version:\s*(\S+)/.exec(stdout);
    return { found: true, binary, version: match?.[1] ?? stdout.trim().split('\n')[0] ?? 'unknown' };
  } catch (err) {
    const code = isRecord(err) && typeof err.code === 'string' ? err.code : '';
    return {
      found: false,
      reason:
        code === 'ENOENT'
          ? `'${binary}' is not installed (apt-get install -y etcd-server etcd-client), so the etcd reference was skipped`
          : `'${binary} --version' failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

export interface EtcdClusterOptions {
  readonly supervisor: Supervisor;
  readonly binary: string;
  readonly workDir: string;
  readonly size: number;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  /** More etcd flags appended to every member's command line (e.g. snapshot and compaction settings). */
  readonly extraArgs?: readonly string[];
  /**
   * 'ballot' runs Ballot's etcd-compatible server instead (`ballot kv serve` takes etcd's flag names):
   * members b1..bN, data under <workDir>/ballot, no etcd-only flags (pre-vote, zap logger). Default 'etcd'.
   */
  readonly system?: 'etcd' | 'ballot';
  /** Arguments before etcd's flags, e.g. [bin.js, 'kv', 'serve'] with binary = process.execPath. */
  readonly argvPrefix?: readonly string[];
  /** GET path polled until a member serves (default /version; /health answers on both). */
  readonly readinessPath?: string;
}

interface Member extends ProcessMember {
  readonly clientPort: number;
  readonly peerPort: number;
  /** etcd's member id (a uint64, kept as the decimal string the JSON gateway returns). */
  id: string | null;
}

interface MemberStatus {
  readonly memberId: string;
  readonly leader: string;
  readonly raftTerm: number;
  readonly raftIndex: number;
  readonly raftAppliedIndex: number;
}

function num(value: unknown): number {
  return typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : 0;
}

function parseStatus(value: unknown): MemberStatus {
  if (!isRecord(value) || !isRecord(value.header)) throw new Error('unexpected maintenance/status shape');
  const raftIndex = num(value.raftIndex);
  return {
    memberId: String(value.header.member_id ?? ''),
    leader: String(value.leader ?? '0'),
    raftTerm: num(value.raftTerm),
    raftIndex,
    // etcd 3.4+ reports the applied index; older versions do not, then raftIndex is the best we have.
    raftAppliedIndex: value.raftAppliedIndex === undefined ? raftIndex : num(value.raftAppliedIndex),
  };
}

export class EtcdCluster extends ProcessCluster<Member> {
  readonly system: 'etcd' | 'ballot';
  readonly electionTimeoutMs: number;
  protected readonly leaderIndexName = 'raft index';
  private initialCluster = '';

  constructor(private readonly opts: EtcdClusterOptions) {
    super(
      Array.from({ length: opts.size }, (_, i) => `${opts.system === 'ballot' ? 'b' : 'e'}${i + 1}`),
      opts.supervisor,
      opts.workDir,
    );
    this.system = opts.system ?? 'etcd';
    this.electionTimeoutMs = opts.electionTimeoutMs;
  }

  clientAddress(member: string): { readonly host: string; readonly port: number } {
    return { host: '127.0.0.1', port: this.member(member).clientPort };
  }

  private url(member: string, path: string): string {
    return `http://127.0.0.1:${this.member(member).clientPort}${path}`;
  }

  async start(): Promise<void> {
    const ports = await freePorts(this.members.length * 2);
    for (const [i, name] of this.members.entries()) {
      this.byName.set(name, {
        ...this.newMember(name),
        clientPort: ports[2 * i] as number,
        peerPort: ports[2 * i + 1] as number,
        id: null,
      });
    }
    this.initialCluster = this.members.map((n) => `${n}=http://127.0.0.1:${this.member(n).peerPort}`).join(',');
    await Promise.all(this.members.map((n) => this.launch(n)));
    // Learn member ids (stable across restarts) to map the leader id to a process. A member's name
    // appears in the list once it has published itself (a moment after it serves), so poll.
    let lastList: unknown = null;
    await waitUntil(
      `every ${this.system} member named in member/list`,
      async () => {
        lastList = await postJson(this.url(this.members[0] as string, '/v3/cluster/member/list'), {}, 5000);
        if (!isRecord(lastList) || !Array.isArray(lastList.members)) throw new Error(`unexpected member/list shape: ${JSON.stringify(lastList)}`);
        for (const entry of lastList.members) {
          if (!isRecord(entry) || typeof entry.name !== 'string') continue;
          const m = this.byName.get(entry.name);
          if (m !== undefined) m.id = String(entry.ID);
        }
        return [...this.byName.values()].every((m) => m.id !== null) ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; last member/list answer: ${JSON.stringify(lastList)}`);
    });
  }

  protected async launch(name: string): Promise<void> {
    const m = this.member(name);
    const readinessPath = this.opts.readinessPath ?? '/version';
    const etcdOnly = this.system === 'etcd' ? ['--pre-vote=true', '--logger', 'zap', '--log-level', 'warn'] : [];
    await this.spawnAndWait(
      name,
      this.opts.binary,
      [
        ...(this.opts.argvPrefix ?? []),
        '--name', name,
        '--data-dir', m.dataDir,
        '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`,
        '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
        '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
        '--initial-cluster', this.initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', 'ballot-bench',
        '--heartbeat-interval', String(this.opts.heartbeatMs),
        '--election-timeout', String(this.opts.electionTimeoutMs),
        ...etcdOnly,
        ...(this.opts.extraArgs ?? []),
      ],
      `GET ${readinessPath}`,
      () => getJson(this.url(name, readinessPath), 500),
    );
  }

  private async status(member: string): Promise<MemberStatus> {
    return parseStatus(await postJson(this.url(member, '/v3/maintenance/status'), {}, 1000));
  }

  private nameOf(id: string): string | null {
    for (const m of this.byName.values()) if (m.id === id) return m.name;
    return null;
  }

  protected async agreedLeader(): Promise<string | undefined> {
    const statuses = await Promise.all(this.running().map((n) => this.status(n)));
    const first = statuses[0];
    if (first === undefined || first.leader === '0') return undefined;
    if (!statuses.every((s) => s.leader === first.leader && s.raftTerm === first.raftTerm)) return undefined;
    const name = this.nameOf(first.leader);
    return name !== null && this.running().includes(name) ? name : undefined;
  }

  protected async allApplied(leader: string): Promise<boolean> {
    const target = (await this.status(leader)).raftIndex;
    const statuses = await Promise.all(this.members.map((n) => this.status(n)));
    return statuses.every((s) => s.raftAppliedIndex >= target);
  }

  async openClient(concurrency: number, payloadBytes: number): Promise<ProposeClient> {
    const leader = await this.waitForLeader(30_000);
    return new EtcdClient(this, leader, concurrency, payloadBytes);
  }

  describe(): Readonly<Record<string, unknown>> {
    return {
      members: this.members.length,
      command: [this.opts.binary, ...(this.opts.argvPrefix ?? [])].join(' '),
      heartbeatMs: this.opts.heartbeatMs,
      electionTimeoutMs: this.opts.electionTimeoutMs,
      ...(this.system === 'etcd' ? { preVote: true } : {}),
      client: 'HTTP/1.1 keep-alive POST /v3/kv/put (JSON gateway, base64), one socket per concurrent proposer',
    };
  }
}

const REQUEST_TIMEOUT_MS = 10_000;

class EtcdClient implements ProposeClient {
  private readonly agent: Agent;
  private readonly bodies: Buffer[];

  constructor(
    private readonly cluster: EtcdCluster,
    /** Proposals go to the leader (followers would forward them: one more hop). */
    private target: string,
    concurrency: number,
    payloadBytes: number,
  ) {
    // One socket per concurrent proposer per member (HTTP/1.1 has no pipelining in Node).
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency + 8, maxFreeSockets: concurrency + 8 });
    this.bodies = Array.from({ length: concurrency }, (_, w) =>
      Buffer.from(
        JSON.stringify({
          key: Buffer.from(`bench/w${w}`).toString('base64'),
          value: Buffer.from(randomPayload(payloadBytes)).toString('base64'),
        }),
      ),
    );
  }

  private async put(member: string, body: Buffer, timeoutMs: number): Promise<void> {
    const { status, text } = await postOverAgent(this.agent, this.cluster.clientAddress(member), '/v3/kv/put', body, timeoutMs);
    if (status !== 200) throw new BenchRequestError(`HTTP_${status}`, text.slice(0, 300));
  }

  async propose(worker: number): Promise<void> {
    const member = this.target;
    try {
      await this.put(member, this.bodies[worker % this.bodies.length] as Buffer, REQUEST_TIMEOUT_MS);
    } catch (err) {
      if (err instanceof BenchRequestError && err.code === 'DISCONNECTED' && this.target === member) {
        const i = this.cluster.members.indexOf(member);
        this.target = this.cluster.members[(i + 1) % this.cluster.members.length] as string;
      }
      throw err;
    }
  }

  async tryProposeAt(member: string, timeoutMs: number): Promise<boolean> {
    try {
      await this.put(member, this.bodies[0] as Buffer, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  async warm(members: readonly string[]): Promise<void> {
    await warmAgent(this.agent, members.map((m) => this.cluster.clientAddress(m)), '/version');
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
