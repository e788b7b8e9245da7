// ChaosCluster: a real cluster of `ballot kv serve` processes (one OS process and one LevelDB folder per member)
// whose peer links all go through a ProxyNetwork, so the nemesis can cut, delay and reset them. It is the
// ChaosTarget of the nemesis (types.ts): kill/restart (SIGKILL, start again on the same data dir), pause/resume
// (SIGSTOP/SIGCONT), per-member clocks (POST /debug/clock), and who leads.
//
// Layout under outDir:   nodes/<name>.log        stdout+stderr of every incarnation (restarts append a marker)
//                        nodes/<name>/data       the member's --data-dir (Raft log and store)
//                        nodes/pids.json         {"runner": pid, "watchdog": pid, "pids": [running members' pids]}
//
// Processes: every PID is tracked. stop() resumes paused members (a stopped process cannot handle SIGTERM), sends
// SIGTERM, waits a grace, then SIGKILLs what is left and waits for every exit. If this process exits some other way,
// a process 'exit' hook SIGKILLs every member still running, and each member also gets --parent-pid, so it stops by
// itself once the runner is gone (even after a SIGKILL of the runner, which runs no hook). A member paused by SIGSTOP
// cannot run that check, so a small detached watchdog process (WATCHDOG_SCRIPT) watches the runner's PID too: once
// the runner is gone it SIGCONTs every member listed in <outDir>/nodes/pids.json (rewritten whenever a member
// starts or exits), gives them WATCHDOG_GRACE_MS to stop by themselves, SIGKILLs the rest and exits. stop() ends it.
//
// Ports: members' client and peer ports come from the OS (freePorts); the proxies then bind their own (port 0). When
// a proxy happened to get a member's port, the network is closed and both are drawn again (bounded attempts).

import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, SimRandom, deriveSeed, tailLines } from '@ballot/raft';
import { ProxyNetwork } from '../proxy/index.js';
import type { ChaosTarget } from './types.js';

/**
 * A member process that exited without kill() or stop() asking (a crash, a failed start), as
 * unexpectedExits() reports it. Crashes stay listed after the nemesis restarts the member.
 */
export interface MemberExit {
  readonly name: string;
  readonly pid: number;
  /** "exit N" or the signal name ("SIGKILL"). */
  readonly status: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** When the exit was seen (ISO time). */
  readonly at: string;
  /** Why, when the log says so in a known way (EADDRINUSE: the port named), else undefined. */
  readonly cause?: string;
  /** The member's log tail at the exit (CRASH_LOG_LINES lines). */
  readonly logTail: string;
  /** Whether the member was started again afterwards (by the nemesis's restart). */
  readonly restarted: boolean;
}

/** Log lines a MemberExit keeps. */
export const CRASH_LOG_LINES = 20;

/**
 * A known cause of a member's exit from its log tail: a port it could not bind (EADDRINUSE). freePorts only
 * releases the ports it found, so another process may take one before the member binds it (or while a killed
 * member is down: a restart reuses its ports).
 */
export function exitCause(logTail: string, urls: { readonly clientUrl: string; readonly peerUrl: string }): string | undefined {
  const m = /EADDRINUSE[^\n]*?(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:]+\]|localhost):(\d+)/i.exec(logTail);
  if (m === null) return /EADDRINUSE/.test(logTail) ? 'a port it listens on was already in use (EADDRINUSE)' : undefined;
  const port = Number(m[2]);
  const which = port === Number(new URL(urls.clientUrl).port) ? 'client' : port === Number(new URL(urls.peerUrl).port) ? 'peer' : 'listen';
  return `port ${port} (its ${which} port, ${m[1]}:${port}) was taken by another process (EADDRINUSE): ports are only free when drawn, and a restart reuses them`;
}

/** How the server answers linearizable reads (kv serve --read-mode). */
export type ServerReadMode = 'read-index' | 'lease';

export interface ChaosClusterOptions {
  /** Members n1..nN (2..9: every peer link is proxied, so at least 2). */
  readonly nodes: number;
  /** Run folder; logs and data dirs go under <outDir>/nodes. */
  readonly outDir: string;
  /** The ballot CLI script (default: packages/cli/dist/bin.js of this repository). */
  readonly bin?: string;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  /** --request-timeout-ms of every member: the deadline of a client request that gives none. */
  readonly requestTimeoutMs: number;
  readonly readMode: ServerReadMode;
  /** Deliberate bugs (kv serve --unsafe-stale-reads / --unsafe-no-fsync). */
  readonly unsafeStaleReads: boolean;
  readonly unsafeNoFsync: boolean;
  /** --unsafe-debug-clock (needed by setClock; pass it when 'clock' is a nemesis). */
  readonly debugClock: boolean;
  /** More kv serve flags for every member (e.g. ['--max-batch-entries', '1']). */
  readonly extraFlags?: readonly string[];
  /** Seed of the proxies' latency jitter (default 0). */
  readonly seed?: number;
  /** --log-level of the members (default info). */
  readonly logLevel?: string;
  /** Progress notes (never stdout). */
  readonly log?: (msg: string) => void;
}

/** SIGTERM grace in stop() before SIGKILL. */
export const STOP_GRACE_MS = 5000;
/** Deadline of one status probe in leader() / waitReady(). */
export const STATUS_TIMEOUT_MS = 500;
const MAX_PORT_ATTEMPTS = 10;
/** How often the watchdog looks for the runner. */
export const WATCHDOG_POLL_MS = 250;
/** After the runner is gone: how long the watchdog lets SIGCONTed members stop by themselves before SIGKILL. */
export const WATCHDOG_GRACE_MS = 2000;
/** The members' PID file under <outDir>/nodes (read by the watchdog, and by tests cleaning up after a runner). */
export const PID_FILE = 'pids.json';

/**
 * The watchdog (`node -e WATCHDOG_SCRIPT <runner pid> <pid file>`, detached). While the runner lives it only
 * polls; when the runner is gone it SIGCONTs the PIDs the file lists (a stopped member cannot notice its
 * parent is gone), waits WATCHDOG_GRACE_MS, SIGKILLs those still alive, and exits (at once if none are listed).
 */
export const WATCHDOG_SCRIPT = `
const fs = require('node:fs');
const runner = Number(process.argv[1]);
const file = process.argv[2];
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; } };
const signal = (pid, sig) => { try { process.kill(pid, sig); } catch {} };
const listed = () => {
  try {
    const p = JSON.parse(fs.readFileSync(file, 'utf8')).pids;
    return Array.isArray(p) ? p.filter((x) => Number.isInteger(x) && x > 1) : [];
  } catch { return []; }
};
const timer = setInterval(() => {
  if (alive(runner)) return;
  clearInterval(timer);
  const pids = listed();
  for (const pid of pids) signal(pid, 'SIGCONT');
  setTimeout(() => {
    for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
    process.exit(0);
  }, pids.length === 0 ? 0 : ${WATCHDOG_GRACE_MS});
}, ${WATCHDOG_POLL_MS});
`;

interface Incarnation {
  readonly child: ChildProcess;
  readonly pid: number;
  /** null while running; then "exit N" or the signal. */
  exitStatus: string | null;
  /** Set by kill() and stop(): an exit without it is a crash (see unexpectedExits). */
  expectedExit: boolean;
  readonly exited: Promise<void>;
}

interface Member {
  readonly name: string;
  readonly index: number;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly args: readonly string[];
  current: Incarnation | null;
  paused: boolean;
  /** The member id (decimal string, as the JSON gateway prints it), once a status answer said it. */
  memberId: string | null;
}

/** The repository's built CLI (this file is test/src/chaos/cluster.ts or test/dist/chaos/cluster.js). */
export function defaultBin(): string {
  return join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'packages/cli/dist/bin.js');
}

interface Status {
  readonly memberId: string;
  readonly leader: string | null;
}

/** The member's status through the JSON gateway; null when it does not answer in time or answers an error. */
async function statusOf(clientUrl: string, timeoutMs: number): Promise<Status | null> {
  try {
    const r = await fetch(`${clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(timeoutMs) });
    const text = await r.text();
    if (r.status !== 200) return null;
    const body = JSON.parse(text) as { header?: { member_id?: unknown }; leader?: unknown };
    const leader = body.leader;
    return {
      memberId: String(body.header?.member_id ?? ''),
      leader: typeof leader === 'string' && leader !== '' && leader !== '0' ? leader : null,
    };
  } catch {
    return null;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ChaosCluster implements ChaosTarget {
  readonly names: readonly string[];
  /** Client URL of every member, index i = node i. */
  readonly endpoints: readonly string[];
  readonly network: ProxyNetwork;
  readonly bin: string;
  private readonly members: readonly Member[];
  private readonly allPids: number[] = [];
  /** The member name of allPids[i]. */
  private readonly pidMember: string[] = [];
  private readonly crashes: Omit<MemberExit, 'restarted'>[] = [];
  private readonly log: (msg: string) => void;
  private stopping: Promise<void> | null = null;
  private readonly onProcessExit = (): void => this.killAllNow();
  private readonly pidFile: string;
  private watchdog: ChildProcess | null = null;

  private constructor(opts: ChaosClusterOptions, network: ProxyNetwork, members: readonly Member[], bin: string) {
    this.network = network;
    this.members = members;
    this.names = members.map((m) => m.name);
    this.endpoints = members.map((m) => m.clientUrl);
    this.bin = bin;
    this.log = opts.log ?? (() => {});
    this.pidFile = join(opts.outDir, 'nodes', PID_FILE);
  }

  /** Binds the proxies, starts every member (does not wait until they serve: see waitReady). */
  static async start(opts: ChaosClusterOptions): Promise<ChaosCluster> {
    if (!Number.isInteger(opts.nodes) || opts.nodes < 2 || opts.nodes > 9) throw new RangeError(`ChaosCluster: nodes must be 2..9, got ${opts.nodes}`);
    if (opts.electionTimeoutMs < 5 * opts.heartbeatIntervalMs) {
      throw new RangeError(`ChaosCluster: electionTimeoutMs (${opts.electionTimeoutMs}) must be at least 5 x heartbeatIntervalMs (${opts.heartbeatIntervalMs})`);
    }
    const bin = opts.bin ?? defaultBin();
    if (!existsSync(bin)) throw new Error(`ChaosCluster: ${bin} is missing: run \`npm run build\` first`);
    const names = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    const jitter = new SimRandom(deriveSeed(opts.seed ?? 0, 0x9e7));
    let network: ProxyNetwork | undefined;
    let ports: number[] = [];
    for (let attempt = 0; network === undefined; attempt++) {
      if (attempt >= MAX_PORT_ATTEMPTS) throw new Error('ChaosCluster: could not find member ports apart from the proxies\' ports');
      ports = await freePorts(2 * names.length);
      const candidate = await ProxyNetwork.start({
        nodes: names.map((name, i) => ({ name, peerHost: '127.0.0.1', peerPort: ports[2 * i] as number })),
        random: () => jitter.float(),
      });
      if (candidate.stats().every((l) => !ports.includes(l.port))) network = candidate;
      else await candidate.close();
    }
    const net = network;
    const nodesDir = join(opts.outDir, 'nodes');
    try {
      mkdirSync(nodesDir, { recursive: true });
    } catch (err) {
      await net.close();
      throw err;
    }
    const peerUrl = (i: number): string => `http://127.0.0.1:${ports[2 * i]}`;
    const clientUrl = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`;
    const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
    const members = names.map((name, i): Member => {
      const dataDir = join(nodesDir, name, 'data');
      const override = [...net.peerUrlsFor(name)].filter(([n]) => n !== name).map(([n, url]) => `${n}=${url}`).join(',');
      const args = [
        'kv', 'serve', '--name', name, '--data-dir', dataDir,
        '--listen-client-urls', clientUrl(i), '--advertise-client-urls', clientUrl(i),
        '--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i),
        '--initial-cluster', initialCluster, '--initial-cluster-token', 'ballot-chaos',
        '--peer-dial-override', override,
        '--heartbeat-interval', String(opts.heartbeatIntervalMs), '--election-timeout', String(opts.electionTimeoutMs),
        '--request-timeout-ms', String(opts.requestTimeoutMs), '--read-mode', opts.readMode,
        '--log-level', opts.logLevel ?? 'info', '--parent-pid', String(process.pid),
        ...(opts.unsafeStaleReads ? ['--unsafe-stale-reads'] : []),
        ...(opts.unsafeNoFsync ? ['--unsafe-no-fsync'] : []),
        ...(opts.debugClock ? ['--unsafe-debug-clock'] : []),
        ...(opts.extraFlags ?? []),
      ];
      return { name, index: i, clientUrl: clientUrl(i), peerUrl: peerUrl(i), dataDir, logFile: join(nodesDir, `${name}.log`), args, current: null, paused: false, memberId: null };
    });
    const cluster = new ChaosCluster(opts, net, members, bin);
    process.on('exit', cluster.onProcessExit);
    try {
      cluster.writePidFile();
      cluster.startWatchdog();
      for (const m of members) {
        mkdirSync(dirname(m.dataDir), { recursive: true });
        cluster.spawnMember(m, `--- started at ${new Date().toISOString()} ---`);
      }
    } catch (err) {
      // Whatever did start is stopped by PID, and the proxies closed, before the error goes up.
      await cluster.stop(1000);
      throw err;
    }
    cluster.log(`started ${names.length} members (pids ${cluster.pids().join(', ')}), logs in ${nodesDir}`);
    return cluster;
  }

  /** Every member answers /v3/maintenance/status and all name the same leader; throws (with log tails) after timeoutMs. */
  async waitReady(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.stopping !== null) throw new Error('ChaosCluster.waitReady: the cluster is stopping');
      const dead = this.members.filter((m) => m.current === null || m.current.exitStatus !== null);
      if (dead.length > 0) {
        const why = (m: Member): string => {
          const crash = this.crashes.findLast((c) => c.pid === m.current?.pid);
          return `${m.name} is not running (${m.current?.exitStatus ?? 'killed'}${crash?.cause === undefined ? '' : `: ${crash.cause}`})`;
        };
        throw new Error(`ChaosCluster.waitReady: ${dead.map(why).join('; ')}\n${this.logTails()}`);
      }
      const statuses = await Promise.all(this.members.map((m) => this.probe(m)));
      const leaders = statuses.map((s) => s?.leader ?? null);
      const first = leaders[0];
      if (statuses.every((s) => s !== null) && first !== null && first !== undefined && leaders.every((l) => l === first)) {
        const name = this.nameOfId(first);
        if (name !== null) return name;
      }
      if (Date.now() > deadline) throw new Error(`ChaosCluster.waitReady: no agreed leader within ${timeoutMs} ms (leaders seen: ${leaders.map((l, i) => `${this.names[i]}=${l === null ? '-' : (this.nameOfId(l) ?? l)}`).join(' ')})\n${this.logTails()}`);
      await sleep(50);
    }
  }

  /** The member a majority of the answering members name as leader, or null (short timeouts; never throws). */
  async leader(): Promise<string | null> {
    try {
      const running = this.members.filter((m) => this.isRunning(m.name) && !m.paused);
      const statuses = (await Promise.all(running.map((m) => this.probe(m)))).filter((s): s is Status => s !== null);
      const votes = new Map<string, number>();
      for (const s of statuses) if (s.leader !== null) votes.set(s.leader, (votes.get(s.leader) ?? 0) + 1);
      for (const [id, n] of votes) if (2 * n > statuses.length) return this.nameOfId(id);
      return null;
    } catch {
      return null;
    }
  }

  /** SIGKILL by PID; resolves once the process has exited. */
  async kill(name: string): Promise<void> {
    const m = this.member(name);
    const inc = m.current;
    if (inc === null || inc.exitStatus !== null) return;
    inc.expectedExit = true;
    this.signal(inc.pid, 'SIGKILL');
    await inc.exited;
    m.paused = false;
  }

  /** Starts a killed member again with the same flags and data dir (does not wait until it serves). */
  async restart(name: string): Promise<void> {
    if (this.stopping !== null) throw new Error(`ChaosCluster.restart(${name}): the cluster is stopping`);
    const m = this.member(name);
    if (m.current !== null && m.current.exitStatus === null) throw new Error(`ChaosCluster.restart(${name}): still running (pid ${m.current.pid})`);
    this.spawnMember(m, `--- restarted at ${new Date().toISOString()} ---`);
    this.log(`restarted ${name} (pid ${m.current?.pid ?? '?'})`);
  }

  /** SIGSTOP by PID. */
  pause(name: string): void {
    const m = this.member(name);
    if (m.current === null || m.current.exitStatus !== null) throw new Error(`ChaosCluster.pause(${name}): not running`);
    this.signal(m.current.pid, 'SIGSTOP');
    m.paused = true;
  }

  /** SIGCONT by PID. */
  resume(name: string): void {
    const m = this.member(name);
    if (m.current !== null && m.current.exitStatus === null) this.signal(m.current.pid, 'SIGCONT');
    m.paused = false;
  }

  isPaused(name: string): boolean {
    return this.member(name).paused;
  }

  /** POST /debug/clock on the member (started with debugClock). */
  async setClock(name: string, clock: { readonly skewMs: number; readonly rate: number }): Promise<void> {
    const m = this.member(name);
    const r = await fetch(`${m.clientUrl}/debug/clock`, {
      method: 'POST',
      body: JSON.stringify({ skewMs: clock.skewMs, rate: clock.rate }),
      signal: AbortSignal.timeout(2000),
    });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`ChaosCluster.setClock(${name}): HTTP ${r.status} ${text.trim()}${r.status === 404 ? ' (start the cluster with debugClock)' : ''}`);
  }

  /** The watchdog's PID (null once stopped or if it could not start). */
  watchdogPid(): number | null {
    const w = this.watchdog;
    return w !== null && w.exitCode === null && w.signalCode === null ? (w.pid ?? null) : null;
  }

  /** <outDir>/nodes/pids.json: the PIDs of the members running now. */
  pidFilePath(): string {
    return this.pidFile;
  }

  /** Every PID this cluster started (every incarnation of every member), in start order. */
  pids(): readonly number[] {
    return [...this.allPids];
  }

  /** The PID of the member's current process, or null when it is not running. */
  pidOf(name: string): number | null {
    const c = this.member(name).current;
    return c !== null && c.exitStatus === null ? c.pid : null;
  }

  /**
   * Members that exited without kill() or stop() asking (a crash, a failed start), in order, including those
   * the nemesis restarted since (restarted: true): exit code or signal, a known cause, and the log tail.
   */
  unexpectedExits(): readonly MemberExit[] {
    return this.crashes.map((c) => ({ ...c, restarted: this.allPids[this.pidMember.lastIndexOf(c.name)] !== c.pid }));
  }

  /** One line per unexpected exit, for a run's error or report ("n2 (pid 123) exit 1 at ...: port 4001 ... (restarted)"). */
  describeUnexpectedExits(): string[] {
    return this.unexpectedExits().map((e) => `${e.name} (pid ${e.pid}) ${e.status} at ${e.at}${e.cause === undefined ? '' : `: ${e.cause}`}${e.restarted ? ' (restarted since)' : ''}`);
  }

  isRunning(name: string): boolean {
    const c = this.member(name).current;
    return c !== null && c.exitStatus === null;
  }

  logFile(name: string): string {
    return this.member(name).logFile;
  }

  dataDir(name: string): string {
    return this.member(name).dataDir;
  }

  /** The last `lines` lines of every member's log, for error messages. */
  logTails(lines = 15): string {
    return this.members.map((m) => `--- ${m.name} (${m.current === null ? 'not started' : `pid ${m.current.pid}, ${m.current.exitStatus ?? 'running'}`})\n${tailLines(m.logFile, lines)}`).join('\n');
  }

  /** Stops every member (SIGCONT paused ones, SIGTERM, grace, SIGKILL, wait) and closes the proxies; idempotent. */
  stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.stopping ??= (async () => {
      const running = this.members.map((m) => m.current).filter((c): c is Incarnation => c !== null && c.exitStatus === null);
      for (const m of this.members) if (m.paused) this.resume(m.name);
      for (const c of running) {
        c.expectedExit = true;
        this.signal(c.pid, 'SIGTERM');
      }
      const all = Promise.all(running.map((c) => c.exited));
      const graceOver = await Promise.race([all.then(() => false), sleep(graceMs).then(() => true)]);
      if (graceOver) {
        for (const c of running) if (c.exitStatus === null) this.signal(c.pid, 'SIGKILL');
        await all;
      }
      process.off('exit', this.onProcessExit);
      this.stopWatchdog();
      this.writePidFile();
      await this.network.close();
      this.log(`stopped ${running.length} members`);
    })();
    return this.stopping;
  }

  private spawnMember(m: Member, marker: string): void {
    appendFileSync(m.logFile, `${marker}\n`);
    const fd = openSync(m.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [this.bin, ...m.args], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`ChaosCluster: could not start ${m.name}`);
    this.allPids.push(pid);
    this.pidMember.push(m.name);
    let markExited: () => void = () => {};
    const inc: Incarnation = { child, pid, exitStatus: null, expectedExit: false, exited: new Promise<void>((r) => (markExited = r)) };
    child.on('exit', (code, signal) => {
      inc.exitStatus = signal !== null ? signal : `exit ${code ?? '?'}`;
      if (!inc.expectedExit) {
        const logTail = tailLines(m.logFile, CRASH_LOG_LINES);
        const cause = exitCause(logTail, m);
        this.crashes.push({ name: m.name, pid, status: inc.exitStatus, exitCode: code, signal, at: new Date().toISOString(), logTail, ...(cause === undefined ? {} : { cause }) });
        this.log(`${m.name} (pid ${pid}) exited by itself: ${inc.exitStatus}${cause === undefined ? '' : `: ${cause}`}`);
      }
      this.writePidFile();
      markExited();
    });
    child.on('error', (e) => {
      inc.exitStatus ??= `could not start: ${e.message}`;
      markExited();
    });
    m.current = inc;
    m.paused = false;
    this.writePidFile();
  }

  /** Rewrites nodes/pids.json (atomically: a temp file renamed) with the members running now. */
  private writePidFile(): void {
    const pids = this.members.map((m) => m.current).filter((c): c is Incarnation => c !== null && c.exitStatus === null).map((c) => c.pid);
    const tmp = `${this.pidFile}.tmp`;
    try {
      writeFileSync(tmp, `${JSON.stringify({ runner: process.pid, watchdog: this.watchdog?.pid ?? null, pids })}\n`);
      renameSync(tmp, this.pidFile);
    } catch (err) {
      this.log(`could not write ${this.pidFile}: ${(err as Error).message}`);
    }
  }

  /** Starts the detached watchdog (see WATCHDOG_SCRIPT); its own process group, so a terminal's ^C leaves it to clean up. */
  private startWatchdog(): void {
    const w = spawn(process.execPath, ['-e', WATCHDOG_SCRIPT, String(process.pid), this.pidFile], { detached: true, stdio: 'ignore' });
    w.on('error', (e) => this.log(`the watchdog could not start: ${e.message}`));
    w.unref();
    this.watchdog = w;
    this.writePidFile();
  }

  private stopWatchdog(): void {
    const pid = this.watchdogPid();
    if (pid !== null) this.signal(pid, 'SIGKILL');
    this.watchdog = null;
  }

  private async probe(m: Member): Promise<Status | null> {
    const s = await statusOf(m.clientUrl, STATUS_TIMEOUT_MS);
    if (s !== null && s.memberId !== '') m.memberId = s.memberId;
    return s;
  }

  private nameOfId(id: string): string | null {
    return this.members.find((m) => m.memberId === id)?.name ?? null;
  }

  private member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`ChaosCluster: unknown member ${name} (members: ${this.names.join(', ')})`);
    return m;
  }

  private signal(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }

  /** The process 'exit' hook: synchronous, so SIGCONT + SIGKILL every member still running. */
  private killAllNow(): void {
    this.stopWatchdog();
    for (const m of this.members) {
      const c = m.current;
      if (c === null || c.exitStatus !== null) continue;
      this.signal(c.pid, 'SIGCONT');
      this.signal(c.pid, 'SIGKILL');
    }
  }
}
