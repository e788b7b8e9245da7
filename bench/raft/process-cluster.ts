// What Ballot's and etcd's benchmark clusters share: each member is a real process with its own
// data directory and log file, started through the Supervisor and probed until it serves; kills,
// restarts, PIDs, stopping and the "wait for a leader / for every member to catch up" loops are
// the same for both. How a member is launched and how its status names the leader and the
// applied index is each system's own (ballot.ts, etcd.ts).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tailOf, type BenchCluster, type ProposeClient } from './cluster.js';
import { StopWaiting, waitUntil, type ManagedProcess, type Supervisor } from './supervisor.js';

/** One member's process bookkeeping; subclasses add their ports and ids. */
export interface ProcessMember {
  readonly name: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** The current process; null before the first launch. */
  proc: ManagedProcess | null;
}

export abstract class ProcessCluster<M extends ProcessMember> implements BenchCluster {
  abstract readonly system: 'ballot' | 'etcd';
  abstract readonly electionTimeoutMs: number;
  /** What the leader's index in waitCaughtUp's message is called ("commit index", "raft index"). */
  protected abstract readonly leaderIndexName: string;
  protected readonly byName = new Map<string, M>();

  protected constructor(
    readonly members: readonly string[],
    protected readonly supervisor: Supervisor,
    protected readonly workDir: string,
  ) {}

  abstract start(): Promise<void>;
  /** Starts one member's process on its data directory and waits until it serves. */
  protected abstract launch(name: string): Promise<void>;
  /** The leader every running member agrees on (in one term), or undefined while there is none. */
  protected abstract agreedLeader(): Promise<string | undefined>;
  /** True once every member has applied the index the leader reports. */
  protected abstract allApplied(leader: string): Promise<boolean>;
  abstract openClient(concurrency: number, payloadBytes: number): Promise<ProposeClient>;
  abstract describe(): Readonly<Record<string, unknown>>;

  /** The fields every member has: `<workDir>/<system>/<name>` (created) and `<workDir>/<system>-<name>.log`. */
  protected newMember(name: string): ProcessMember {
    const dataDir = join(this.workDir, this.system, name);
    mkdirSync(dataDir, { recursive: true });
    return { name, dataDir, logFile: join(this.workDir, `${this.system}-${name}.log`), proc: null };
  }

  protected member(name: string): M {
    const m = this.byName.get(name);
    if (m === undefined) throw new Error(`unknown ${this.system} member ${name}`);
    return m;
  }

  /**
   * Spawns a member's process (output to its log file) and polls `probe` until it answers; the
   * error names the log file and ends with its tail.
   */
  protected async spawnAndWait(
    name: string,
    command: string,
    args: readonly string[],
    serving: string,
    probe: () => Promise<unknown>,
  ): Promise<void> {
    const m = this.member(name);
    const proc = this.supervisor.spawn({ name: `${this.system}/${name}`, command, args, logFile: m.logFile });
    m.proc = proc;
    try {
      await waitUntil(
        `${this.system}/${name} to serve ${serving}`,
        async () => {
          if (!proc.isRunning()) throw new StopWaiting(`${this.system}/${name} exited during start-up`);
          return await probe();
        },
        { timeoutMs: 30_000, intervalMs: 50 },
      );
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; log ${m.logFile}:\n${await tailOf(m.logFile)}`);
    }
  }

  protected running(): string[] {
    return this.members.filter((n) => this.byName.get(n)?.proc?.isRunning() === true);
  }

  async waitForLeader(timeoutMs: number): Promise<string> {
    return waitUntil(`a ${this.system} leader all running members agree on`, () => this.agreedLeader(), {
      timeoutMs,
      intervalMs: 20,
    });
  }

  async waitCaughtUp(timeoutMs: number): Promise<void> {
    await waitUntil(
      `every ${this.system} member to apply the leader ${this.leaderIndexName}`,
      async () => {
        const down = this.members.find((n) => this.byName.get(n)?.proc?.isRunning() !== true);
        if (down !== undefined) {
          throw new StopWaiting(`${this.system}/${down} is not running (it exited on its own); see ${this.member(down).logFile}`);
        }
        const leader = await this.waitForLeader(timeoutMs);
        return (await this.allApplied(leader)) ? true : undefined;
      },
      { timeoutMs, intervalMs: 50 },
    );
  }

  pids(): ReadonlyMap<string, number> {
    const out = new Map<string, number>();
    for (const m of this.byName.values()) if (m.proc?.isRunning() === true) out.set(m.name, m.proc.pid);
    return out;
  }

  async kill(member: string): Promise<void> {
    const proc = this.member(member).proc;
    if (proc === null) return;
    proc.signal('SIGKILL');
    await proc.exited;
  }

  async restart(member: string): Promise<void> {
    if (this.member(member).proc?.isRunning() === true) throw new Error(`${this.system}/${member} is still running`);
    await this.launch(member);
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.byName.values()].map(async (m) => {
        if (m.proc !== null) await this.supervisor.stop(m.proc, 3000);
      }),
    );
  }
}
