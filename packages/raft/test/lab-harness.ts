// A harness for the lab-* scenario tests, modelled on the configuration helpers of the MIT 6.5840
// Raft lab (checkOneLeader, checkTerms, checkNoLeader, one, nCommitted, wait, rpcCount, ...) but
// written from scratch over the deterministic simulator (src/sim/cluster.ts).
//
// Everything here runs in simulated time: "sleep(ms)" advances the simulated clock and never
// blocks the test process, so a scenario covering tens of simulated seconds costs well under a
// real second. Servers are numbered 0..n-1 as in the lab (so `(leader + 1) % n` reads the same);
// `id(i)` maps a number to the simulator's node id ("n1".."nN").
//
// The harness keeps its own view of which servers are alive (not crashed) and connected, as the
// lab's config does, so "the connected servers" means the same thing in every check.

import { SimCluster } from '../src/sim/cluster.js';
import { RaftError, isRaftError } from '../src/core/errors.js';
import type { ClusterConfig, ConfChange, NodeId, ProposeResult, RaftStatus } from '../src/core/types.js';

export type SimClusterOptions = ConstructorParameters<typeof SimCluster>[0];
export type LabOptions = Partial<Omit<SimClusterOptions, 'nodes' | 'seed'>>;

/** A test-harness failure: an expectation of the scenario did not hold. */
export class LabFailure extends Error {
  override readonly name = 'LabFailure';
}

/**
 * xorshift32 (Marsaglia, 2003): the harness's own deterministic source of choices (which server
 * to disconnect, how long to sleep, which value to propose). Independent of the simulator's PRNG
 * so that the scenario's choices depend only on the seed.
 */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) >>> 0) || 0x6d2b79f5;
  }
  nextU32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.nextU32() / 0x1_0000_0000;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The lab's commands are integers; ours are their decimal text, so traces stay readable. */
export function cmd(value: number): Uint8Array {
  return encoder.encode(String(value));
}

/** The integer a command carries, or null for a no-op / non-command entry. */
export function cmdValue(data: Uint8Array | null): number | null {
  if (data === null || data.length === 0) return null;
  const text = decoder.decode(data);
  return /^-?\d+$/.test(text) ? Number(text) : null;
}

export function bytesEqual(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What `start(i, cmd)` reports, as the lab's `rf.Start(cmd)` does: (index, term, isLeader). */
export interface StartResult {
  readonly index: number;
  readonly term: number;
  readonly isLeader: boolean;
}

/**
 * A client operation in flight: the lab's `one()` as a state machine, so that several of them can
 * run "concurrently" while the simulator advances (the lab uses goroutines; we interleave).
 */
export class OneOp {
  /** The committed index once done, -1 while running. */
  index = -1;
  done = false;
  private phase: 'propose' | 'wait' = 'propose';
  private proposedIndex = -1;
  private nextProposeAtMs: number;
  private waitUntilMs = 0;
  private readonly deadlineMs: number;
  private starts = 0;

  constructor(
    private readonly lab: Lab,
    readonly command: Uint8Array,
    readonly expectedServers: number,
    readonly retry: boolean,
    /** The lab gives one() 10 s; our election timeout is 5x shorter, but simulated time is cheap. */
    totalMs = 10_000,
  ) {
    this.nextProposeAtMs = lab.now();
    this.deadlineMs = lab.now() + totalMs;
  }

  /** Advance this operation given the cluster's current state. Throws LabFailure when it must fail. */
  poll(): void {
    if (this.done) return;
    const lab = this.lab;
    const now = lab.now();
    if (this.phase === 'wait') {
      const { count, data } = lab.nCommitted(this.proposedIndex);
      if (count > 0 && count >= this.expectedServers && bytesEqual(data, this.command)) {
        this.index = this.proposedIndex;
        this.done = true;
        return;
      }
      if (now < this.waitUntilMs) return;
      if (!this.retry) {
        lab.fail(
          `one(${lab.describe(this.command)}) failed to reach agreement at index ${this.proposedIndex} ` +
            `on ${this.expectedServers} servers within 2000 ms (committed on ${count})`,
        );
      }
      this.phase = 'propose';
      this.nextProposeAtMs = now;
    }
    if (now >= this.deadlineMs) {
      lab.fail(`one(${lab.describe(this.command)}) failed to reach agreement on ${this.expectedServers} servers`);
    }
    if (now < this.nextProposeAtMs) return;
    // Try every usable server in turn, as a client that does not know the leader would.
    for (let k = 0; k < lab.servers; k++) {
      this.starts = (this.starts + 1) % lab.servers;
      if (!lab.isUsable(this.starts)) continue;
      const r = lab.start(this.starts, this.command);
      if (r.isLeader) {
        this.proposedIndex = r.index;
        this.phase = 'wait';
        this.waitUntilMs = now + 2_000;
        return;
      }
    }
    // Nobody accepted: no leader among the connected servers yet. Back off 50 ms.
    this.nextProposeAtMs = now + 50;
  }
}

export class Lab {
  readonly cluster: SimCluster;
  readonly servers: number;
  readonly seed: number;
  readonly rng: Rng;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  private readonly alive: boolean[];
  private readonly connected: boolean[];
  /** Granularity at which the harness looks at the cluster while waiting. */
  readonly pollMs = 2;

  /**
   * `servers` bootstrap voters; with options.spareNodes, that many more servers exist but are not
   * started (membership scenarios start and add them): `servers` then counts them all.
   */
  constructor(servers: number, seed: number, options: LabOptions = {}) {
    this.seed = seed;
    this.rng = new Rng(seed);
    this.tickMs = options.tickMs ?? 10;
    this.electionTicks = options.electionTicks ?? 10;
    this.heartbeatTicks = options.heartbeatTicks ?? 1;
    this.cluster = new SimCluster({ ...options, nodes: servers, seed });
    this.servers = servers + (options.spareNodes ?? 0);
    this.alive = this.cluster.ids.map((id) => this.cluster.isStarted(id));
    this.connected = new Array<boolean>(this.servers).fill(true);
    if (this.cluster.ids.length !== this.servers) {
      throw new LabFailure(`SimCluster made ${this.cluster.ids.length} nodes, expected ${this.servers}`);
    }
  }

  /**
   * The lab's RaftElectionTimeout: a period within which a leaderless cluster with a connected
   * majority should have elected a leader. One randomized timeout is in [e, 2e) ticks (§5.2), so
   * 2e ticks covers a full timeout; CheckQuorum (thesis §6.2) deposes a cut-off leader within it.
   */
  get electionTimeoutMs(): number {
    return 2 * this.electionTicks * this.tickMs;
  }

  get heartbeatIntervalMs(): number {
    return this.heartbeatTicks * this.tickMs;
  }

  id(i: number): NodeId {
    const id = this.cluster.ids[i];
    if (id === undefined) throw new LabFailure(`no server ${i}`);
    return id;
  }

  index(id: NodeId): number {
    const i = this.cluster.ids.indexOf(id);
    if (i < 0) throw new LabFailure(`unknown node ${id}`);
    return i;
  }

  now(): number {
    return this.cluster.now();
  }

  fail(message: string): never {
    throw new LabFailure(message);
  }

  describe(command: Uint8Array | null): string {
    const v = cmdValue(command);
    if (v !== null) return String(v);
    return command === null ? 'null' : `<${command.length} bytes>`;
  }

  // --- time -------------------------------------------------------------------------------------

  /**
   * Client activities running "in the background" (the lab's goroutines): polled every pollMs
   * whenever the harness advances time, until they report done.
   */
  private readonly background: { poll(): void; readonly done: boolean }[] = [];

  /** Start a background activity (polled while time advances); see joinBackground(). */
  spawn<T extends { poll(): void; readonly done: boolean }>(activity: T): T {
    this.background.push(activity);
    return activity;
  }

  /** Wait until every background activity is done. */
  joinBackground(maxMs = 20_000): void {
    const ok = this.waitFor(() => this.background.every((a) => a.done), maxMs);
    if (!ok) this.fail(`${this.background.filter((a) => !a.done).length} background activities did not finish`);
    this.background.length = 0;
  }

  private pollBackground(): void {
    for (const a of this.background) a.poll();
  }

  /** Advance simulated time; the lab's time.Sleep. */
  sleep(ms: number): void {
    if (ms <= 0) return;
    if (this.background.length === 0) this.cluster.runFor(ms);
    else this.waitFor(() => false, ms);
  }

  /** Run until pred() holds (checked every pollMs) or maxMs passes. Returns whether it held. */
  waitFor(pred: () => boolean, maxMs: number): boolean {
    const deadline = this.now() + maxMs;
    for (;;) {
      this.pollBackground();
      if (pred()) return true;
      if (this.now() >= deadline) return false;
      this.cluster.runFor(Math.min(this.pollMs, deadline - this.now()));
    }
  }

  // --- membership: crash, restart, connect, disconnect ---------------------------------------

  isAlive(i: number): boolean {
    return this.alive[i] === true;
  }

  isConnected(i: number): boolean {
    return this.connected[i] === true;
  }

  /** Alive and connected: a server whose opinion the checks below count. */
  isUsable(i: number): boolean {
    return this.isAlive(i) && this.isConnected(i);
  }

  /** Cut every link between server i and the others (both directions); its state is kept. */
  disconnect(i: number): void {
    this.connected[i] = false;
    this.cluster.disconnect(this.id(i));
  }

  connect(i: number): void {
    this.connected[i] = true;
    this.cluster.connect(this.id(i));
  }

  /**
   * The lab's crash1: disconnect, then kill the server. The simulator's crash loses every write not
   * yet synced to its simulated disk, so only what Raft persisted (and fsynced) survives.
   */
  crash1(i: number): void {
    this.disconnect(i);
    if (this.isAlive(i)) {
      this.cluster.crash(this.id(i));
      this.alive[i] = false;
    }
  }

  /**
   * The lab's start1: (crash if running, then) restart server i from its stable storage. As in the
   * lab, the restarted server stays disconnected until connect(i).
   */
  start1(i: number): void {
    if (this.isAlive(i)) this.crash1(i);
    this.cluster.restart(this.id(i));
    this.alive[i] = true;
    // Keep the harness's view authoritative: a restart must not silently reconnect a server.
    this.connected[i] = false;
    this.cluster.disconnect(this.id(i));
  }

  // --- observing the cluster --------------------------------------------------------------------

  status(i: number): RaftStatus {
    return this.cluster.status(this.id(i));
  }

  /**
   * The lab's checkOneLeader: among the alive, connected servers, wait until one is leader at the
   * highest term any of them has seen; fail if two claim leadership in one term (Election Safety,
   * §5.2, Figure 3) or if no leader emerges within 10 election timeouts. Returns its number.
   */
  checkOneLeader(): number {
    let leader = -1;
    const ok = this.waitFor(() => {
      leader = this.currentLeader();
      return leader >= 0;
    }, 10 * this.electionTimeoutMs);
    if (!ok) {
      const roles = this.usableServers()
        .map((i) => `${this.id(i)}:${this.status(i).role}@${this.status(i).term}`)
        .join(' ');
      this.fail(`expected one leader, got none within ${10 * this.electionTimeoutMs} ms (${roles})`);
    }
    return leader;
  }

  /** The leader at the highest term among usable servers, or -1. Fails on two leaders in one term. */
  private currentLeader(): number {
    const leadersByTerm = new Map<number, number[]>();
    let maxTerm = -1;
    for (const i of this.usableServers()) {
      const s = this.status(i);
      maxTerm = Math.max(maxTerm, s.term);
      if (s.role === 'leader') {
        const list = leadersByTerm.get(s.term) ?? [];
        list.push(i);
        leadersByTerm.set(s.term, list);
      }
    }
    for (const [term, list] of leadersByTerm) {
      if (list.length > 1) {
        this.fail(`term ${term} has ${list.length} (>1) leaders: ${list.map((i) => this.id(i)).join(', ')}`);
      }
    }
    const atMax = leadersByTerm.get(maxTerm);
    return atMax?.[0] ?? -1;
  }

  /** The lab's checkTerms: every usable server is at the same term; returns it. */
  checkTerms(): number {
    let term = -1;
    for (const i of this.usableServers()) {
      const t = this.status(i).term;
      if (term === -1) term = t;
      else if (t !== term) this.fail(`servers disagree on term: ${this.describeTerms()}`);
    }
    return term;
  }

  /** The lab's checkNoLeader: no alive, connected server believes it is leader. */
  checkNoLeader(): void {
    for (const i of this.usableServers()) {
      if (this.status(i).role === 'leader') {
        this.fail(`expected no leader among connected servers, but ${this.id(i)} claims to be one (term ${this.status(i).term})`);
      }
    }
  }

  describeTerms(): string {
    return this.cluster.ids
      .map((id, i) => {
        if (!this.isAlive(i)) return `${id}(down)`;
        return `${id}${this.isConnected(i) ? '' : '(cut off)'}=${this.status(i).term}`;
      })
      .join(' ');
  }

  usableServers(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.servers; i++) if (this.isUsable(i)) out.push(i);
    return out;
  }

  /**
   * The lab's nCommitted: how many servers have applied `index`, and the data there. The simulator
   * asserts that all of them applied the same entry (State Machine Safety, §5.4.3).
   */
  nCommitted(index: number): { count: number; data: Uint8Array | null } {
    return this.cluster.nCommitted(index);
  }

  // --- clients -----------------------------------------------------------------------------------

  /** The lab's rf.Start(cmd) at server i. A follower refuses (NOT_LEADER), it does not forward. */
  start(i: number, command: Uint8Array): StartResult {
    const r: ProposeResult | RaftError = this.cluster.propose(this.id(i), command);
    if (r instanceof RaftError) return { index: -1, term: this.status(i).term, isLeader: false };
    return { index: r.lastIndex, term: r.term, isLeader: true };
  }

  /**
   * The lab's one(cmd, expectedServers, retry): find a leader, propose, and wait until at least
   * expectedServers have applied cmd at the returned index. With retry, a proposal lost to a
   * leader change is proposed again. Returns the index.
   */
  one(command: Uint8Array, expectedServers: number, retry: boolean): number {
    const op = new OneOp(this, command, expectedServers, retry);
    this.runOps([op]);
    return op.index;
  }

  /** Several one() calls in flight at once, interleaved as simulated time advances. */
  runOps(ops: readonly OneOp[], maxMs = 12_000): void {
    const ok = this.waitFor(() => {
      for (const op of ops) op.poll();
      return ops.every((op) => op.done);
    }, maxMs);
    if (!ok) this.fail(`${ops.filter((op) => !op.done).length} of ${ops.length} one() operations did not finish`);
  }

  /**
   * The lab's wait(index, n, startTerm): wait until n servers have applied `index`, and return its
   * data; give up early (returning null as "-1") if some server's term moved past startTerm, since
   * a new leader may legitimately have dropped the entry (§5.4.2).
   */
  wait(index: number, n: number, startTerm: number): { data: Uint8Array | null } | null {
    let gaveUp = false;
    const ok = this.waitFor(() => {
      if (this.nCommitted(index).count >= n) return true;
      if (startTerm > -1) {
        for (let i = 0; i < this.servers; i++) {
          if (this.isAlive(i) && this.status(i).term > startTerm) {
            gaveUp = true;
            return true;
          }
        }
      }
      return false;
    }, 3_000);
    if (gaveUp) return null;
    const { count, data } = this.nCommitted(index);
    if (!ok || count < n) this.fail(`only ${count} decided for index ${index}; wanted ${n}`);
    return { data };
  }

  // --- snapshots and membership (issue 3) ------------------------------------------------------

  /** Entries in server i's durable log (the lab's persister.RaftStateSize, in entries). */
  logSize(i: number): number {
    return this.cluster.durableLog(this.id(i)).length;
  }

  /** Index of server i's durable snapshot (0: none). */
  snapshotIndex(i: number): number {
    return this.cluster.snapshot(this.id(i))?.meta.index ?? 0;
  }

  /** The configuration as the cluster's most authoritative up node sees it. */
  config(): ClusterConfig {
    const c = this.cluster.currentConfig();
    if (c === null) this.fail('no server is up to tell the configuration');
    return c;
  }

  /** The lab's start1 for a server that was never started: boot it as a joining node, connected. */
  startNew(i: number): void {
    this.cluster.startNode(this.id(i));
    this.alive[i] = true;
    this.connect(i);
  }

  /**
   * A membership change through the current leader (thesis §4.1): propose it, retrying while the
   * leader refuses (a change in flight, no entry of its term committed yet, a transfer) or loses
   * leadership, until the change is applied at the leader that proposed it. Returns its index.
   */
  changeMembership(change: ConfChange, maxMs = 10_000): number {
    const deadline = this.now() + maxMs;
    let last = '';
    while (this.now() < deadline) {
      const leader = this.checkOneLeader();
      const id = this.id(leader);
      const r = this.cluster.proposeConfChange(id, change);
      if (isRaftError(r)) {
        last = `${r.code}: ${r.message}`;
        if (r.code === 'BAD_REQUEST') this.fail(`${change.type} ${change.node} refused: ${last}`);
        this.sleep(20);
        continue;
      }
      let applied = false;
      this.waitFor(() => {
        const e = this.cluster.appliedLog(id)[r.firstIndex - 1];
        applied = e !== undefined;
        return applied || !this.cluster.isUp(id);
      }, 2_000);
      const e = this.cluster.appliedLog(id)[r.firstIndex - 1];
      if (e !== undefined && e.term === r.term && e.type === 'config') return r.firstIndex;
      last = `proposal at (${r.firstIndex},${r.term}) was not applied as proposed`;
    }
    this.fail(`${change.type} ${change.node} did not commit within ${maxMs} ms (last: ${last})`);
  }

  /** Wait until server i has applied at least `index` (e.g. a new learner catching up). */
  waitApplied(i: number, index: number, maxMs = 5_000): void {
    if (!this.waitFor(() => this.cluster.appliedLog(this.id(i)).length >= index, maxMs)) {
      this.fail(`${this.id(i)} applied only ${this.cluster.appliedLog(this.id(i)).length} of ${index} within ${maxMs} ms`);
    }
  }

  /** Trace lines matching `re` (e.g. to show a snapshot was installed). */
  traceCount(re: RegExp): number {
    let count = 0;
    for (const line of this.cluster.trace()) if (re.test(line)) count++;
    return count;
  }

  // --- message accounting -----------------------------------------------------------------------

  /** Messages sent so far (every message is one "RPC half": a request or a response). */
  rpcCount(): number {
    return this.cluster.messageStats().count;
  }

  /** Encoded bytes of every message sent so far. */
  bytesTotal(): number {
    return this.cluster.messageStats().bytes;
  }

  /**
   * Rejected AppendEntries answers delivered since `sinceMs` (a follower's consistency check failed,
   * §5.3), counted from the simulator's trace lines (`t=…ms n3→n1 AppendEntriesResponse … reject …`).
   */
  appendRejectionsSince(sinceMs: number): number {
    const delivered = /^t=([\d.]+)ms \S+→\S+(?: \(dup\))? AppendEntriesResponse .*\breject\b/;
    let count = 0;
    for (const line of this.cluster.trace()) {
      const m = delivered.exec(line);
      if (m !== null && Number(m[1]) >= sinceMs) count++;
    }
    return count;
  }

  /** Messages sent so far, by message type. */
  countByType(type: string): number {
    const byType = this.cluster.messageStats().byType as Readonly<Record<string, unknown>>;
    const v = byType[type];
    if (v === undefined) return 0;
    if (typeof v === 'number') return v;
    if (typeof v === 'object' && v !== null && 'count' in v && typeof v.count === 'number') return v.count;
    throw new LabFailure(`messageStats().byType[${type}] has an unexpected shape`);
  }
}

// --- running scenarios --------------------------------------------------------------------------

/**
 * The seeds a scenario runs with: the defaults, or `LAB_SEEDS=1,2,3` / `LAB_SEEDS=100-199` from the
 * environment to explore more by hand.
 */
export function labSeeds(defaults: readonly number[]): readonly number[] {
  const env = process.env.LAB_SEEDS;
  if (env === undefined || env.trim() === '') return defaults;
  const range = /^(\d+)-(\d+)$/.exec(env.trim());
  if (range) {
    const out: number[] = [];
    for (let s = Number(range[1]); s <= Number(range[2]); s++) out.push(s);
    return out;
  }
  return env.split(',').map((s) => Number(s.trim()));
}

/**
 * Extra SimCluster options from `LAB_SIM` (JSON), to explore by hand with harsher settings, e.g.
 * `LAB_SIM='{"fsyncDelayMs":[1,20],"linkDelayMs":[1,10]}'`. Unset in CI.
 */
function simOverridesFromEnv(): LabOptions {
  const env = process.env.LAB_SIM;
  if (env === undefined || env.trim() === '') return {};
  const parsed: unknown = JSON.parse(env);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new LabFailure(`LAB_SIM must be a JSON object of SimCluster options, got ${env}`);
  }
  return parsed as LabOptions;
}

/** The seeds 1..count. */
export function firstSeeds(count: number): number[] {
  return Array.from({ length: count }, (_, k) => k + 1);
}

/**
 * Run `body` for every seed (defaults, or LAB_SEEDS), all of them even after a failure, and fail
 * with the list of failing seeds and the first failure's full report.
 */
export function forSeeds(defaults: readonly number[], body: (seed: number) => void): void {
  const failed: { seed: number; error: unknown }[] = [];
  for (const seed of labSeeds(defaults)) {
    try {
      body(seed);
    } catch (error) {
      failed.push({ seed, error });
    }
  }
  const first = failed[0];
  if (first === undefined) return;
  const detail = first.error instanceof Error ? first.error.message : String(first.error);
  throw new Error(`failing seeds: [${failed.map((f) => f.seed).join(', ')}]\nfirst failure: ${detail}`, {
    cause: first.error,
  });
}

/**
 * Build a cluster of `servers` with `seed`, run the scenario, and on any failure (a harness
 * expectation or a simulator invariant) rethrow with the seed and the tail of the trace, so a
 * failing seed can be replayed and read.
 */
export function withLab(servers: number, seed: number, options: LabOptions, body: (lab: Lab) => void): void {
  const lab = new Lab(servers, seed, { ...options, ...simOverridesFromEnv() });
  try {
    body(lab);
  } catch (err) {
    let tail: string;
    try {
      tail = lab.cluster.trace().slice(-60).join('\n');
    } catch (traceErr) {
      tail = `(trace unavailable: ${String(traceErr)})`;
    }
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(
      `seed ${seed} (${servers} servers) failed at ${lab.now()} ms simulated: ${message}\n` +
        `--- last 60 trace lines (replay: LAB_SEEDS=${seed}) ---\n${tail}`,
      { cause: err },
    );
  }
}
