// The nemesis: applies a fault schedule (schedule.ts) to a ChaosTarget on time, and heals everything at the end.
//
// - start() notes time zero (the workload's start) and runs one timer-driven loop: for each window, sleep until its
//   startMs, apply it, sleep until its endMs, heal it. Windows never overlap (the schedule says so), so the loop
//   needs no more than one fault at a time; an apply that took long (waiting for a leader answer, a SIGKILL to be
//   reaped) only makes that window shorter.
// - 'leader' is resolved when the window opens, with target.leader() (what a majority of the answering members
//   say). When no leader is agreed (an election is running, the last fault still echoes), a node is picked from the
//   schedule's seed and the window says so, so a replay with the same seed picks the same node.
// - An isolate-leader window with leaderClockRate (schedule.ts: 'partition' and 'clock' together) first sets the
//   resolved leader's clock to that rate (skew 0), then isolates it; healing reconnects it, then sets its clock back
//   to {0, 1}. Slowing first means the leader's lease, counted in its own slow ticks, is already long when the
//   majority stops hearing from it.
// - A fault that fails to apply or heal (the member is already gone, a clock request times out) is recorded on the
//   window (AppliedWindow.error) and the run goes on: the loop never throws.
// - stopAndHealAll() cancels the timers, waits for an apply in progress, then undoes everything any window left:
//   heals the network, clears delays, resumes paused members, restarts killed ones, sets changed clocks back to
//   {skewMs: 0, rate: 1}. It is idempotent (a second call returns the first call's promise).

import { performance } from 'node:perf_hooks';
import { SimRandom, deriveSeed } from '@ballot/raft';
import { describeFault } from './schedule.js';
import type { AppliedWindow, ChaosTarget, FaultSpec, FaultWindow, Schedule } from './types.js';

export interface NemesisOptions {
  /** Called when a window's fault has been applied (or failed to be: see error). */
  readonly onApplied?: (w: AppliedWindow) => void;
  /** Called when a window has been healed (endMs set), also by stopAndHealAll. */
  readonly onHealed?: (w: AppliedWindow) => void;
  /** Progress notes (never stdout). */
  readonly log?: (msg: string) => void;
}

/** What a window did, so that healing undoes exactly that. */
interface Undo {
  readonly killed: string[];
  readonly paused: string[];
  readonly clocked: string[];
  network: boolean;
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class Nemesis {
  private readonly abort = new AbortController();
  private readonly windows: AppliedWindow[] = [];
  private originMs = 0;
  private loop: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private open: { readonly window: AppliedWindow; readonly undo: Undo } | null = null;
  // Everything still in effect, whichever window did it (for stopAndHealAll).
  private readonly killed = new Set<string>();
  private readonly paused = new Set<string>();
  private readonly clocked = new Set<string>();
  private networkFaulty = false;
  private readonly log: (msg: string) => void;

  constructor(
    private readonly target: ChaosTarget,
    private readonly schedule: Schedule,
    private readonly opts: NemesisOptions = {},
  ) {
    if (schedule.nodeCount !== target.names.length) {
      throw new Error(`Nemesis: the schedule is for ${schedule.nodeCount} nodes, the target has ${target.names.length} (${target.names.join(', ')})`);
    }
    this.log = opts.log ?? (() => {});
  }

  /** Starts the loop; window times count from `originMs` (performance.now() scale; default: now). */
  start(originMs: number = performance.now()): void {
    if (this.loop !== null) throw new Error('Nemesis.start: already started');
    if (this.stopping !== null) throw new Error('Nemesis.start: already stopped');
    this.originMs = originMs;
    this.loop = this.run().catch((e: unknown) => this.log(`nemesis: loop ended by an unexpected error: ${errorText(e)}`));
  }

  /** Resolves when the loop has applied and healed every window (or was stopped). */
  done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** Windows applied so far, in order (the open one has endMs null). */
  applied(): readonly AppliedWindow[] {
    return this.windows;
  }

  /** The window whose fault holds now, or null. */
  current(): AppliedWindow | null {
    return this.open?.window ?? null;
  }

  /** Milliseconds since start(). */
  elapsedMs(): number {
    return performance.now() - this.originMs;
  }

  /** Cancels the timers and undoes every fault still in effect; idempotent. */
  stopAndHealAll(): Promise<void> {
    this.stopping ??= (async () => {
      this.abort.abort();
      await this.loop;
      const errors: string[] = [];
      const attempt = async (what: string, f: () => void | Promise<void>): Promise<boolean> => {
        try {
          await f();
          return true;
        } catch (e) {
          errors.push(`${what}: ${errorText(e)}`);
          return false;
        }
      };
      await attempt('heal the network', () => {
        this.target.network.heal();
        this.target.network.clearDelays();
      });
      this.networkFaulty = false;
      for (const n of [...this.paused]) if (await attempt(`resume ${n}`, () => this.target.resume(n))) this.paused.delete(n);
      for (const n of [...this.killed]) if (await attempt(`restart ${n}`, () => this.target.restart(n))) this.killed.delete(n);
      for (const n of [...this.clocked]) if (await attempt(`reset the clock of ${n}`, () => this.target.setClock(n, { skewMs: 0, rate: 1 }))) this.clocked.delete(n);
      const open = this.open;
      if (open !== null) this.close(open.window, errors);
      else if (errors.length > 0) this.log(`nemesis: healing at the end: ${errors.join('; ')}`);
      this.log('nemesis: stopped; every fault healed');
    })();
    return this.stopping;
  }

  private async run(): Promise<void> {
    for (const w of this.schedule.windows) {
      if (!(await this.sleepUntil(w.startMs))) return;
      await this.apply(w);
      if (!(await this.sleepUntil(w.endMs))) return;
      await this.heal();
    }
  }

  /**
   * Resolves true at originMs + ms (never before it), or false as soon as the nemesis is stopped.
   * Node's timers count on the event loop's millisecond clock and can fire up to ~1 ms early by
   * performance.now(), so a timer that fires early is armed again for the rest.
   */
  private sleepUntil(ms: number): Promise<boolean> {
    const signal = this.abort.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const arm = (): void => {
        const remainingMs = this.originMs + ms - performance.now();
        if (remainingMs <= 0) {
          signal.removeEventListener('abort', onAbort);
          resolve(true);
          return;
        }
        timer = setTimeout(arm, Math.ceil(remainingMs));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      arm();
    });
  }

  /** The leader's name; without an agreed leader, a node picked from the seed (the same on a replay). */
  private async resolveLeader(w: FaultWindow): Promise<{ readonly name: string; readonly agreed: boolean }> {
    let leader: string | null = null;
    try {
      leader = await this.target.leader();
    } catch {
      leader = null;
    }
    if (leader !== null) return { name: leader, agreed: true };
    const rng = new SimRandom(deriveSeed(this.schedule.seed, 0x1ead, w.id));
    return { name: rng.pick(this.target.names), agreed: false };
  }

  private async apply(w: FaultWindow): Promise<void> {
    const f = w.fault;
    const names = this.target.names;
    const usesLeader = f.kind === 'partition-isolate-leader' ||
      (f.kind === 'partition-one-way' && f.from === 'leader') ||
      ((f.kind === 'kill' || f.kind === 'pause') && f.nodes.includes('leader'));
    const leader = usesLeader ? await this.resolveLeader(w) : null;
    const nameOf = (i: number | 'leader'): string => (i === 'leader' ? (leader?.name as string) : (names[i] as string));
    const undo: Undo = { killed: [], paused: [], clocked: [], network: false };
    let nodes: string[] = [];
    let description = describeFault(f, names, leader?.name);
    if (leader !== null && !leader.agreed) description += ' [no agreed leader: picked from the seed]';
    let error: string | undefined;
    try {
      nodes = this.touched(f, nameOf);
      description = await this.act(f, nameOf, nodes, undo, description);
    } catch (e) {
      error = `apply: ${errorText(e)}`;
    }
    const applied: AppliedWindow = { id: w.id, kind: f.kind, startMs: Math.round(this.elapsedMs()), endMs: null, nodes, description, ...(error !== undefined ? { error } : {}) };
    this.windows.push(applied);
    this.open = { window: applied, undo };
    this.log(`nemesis: window ${w.id} at ${(applied.startMs / 1000).toFixed(2)} s: ${description}${error !== undefined ? ` (${error})` : ''}`);
    this.callback(this.opts.onApplied, applied);
  }

  /** Node names a fault touches (AppliedWindow.nodes). */
  private touched(f: FaultSpec, nameOf: (i: number | 'leader') => string): string[] {
    const all = [...this.target.names];
    switch (f.kind) {
      case 'partition-halves':
        return f.minority.map(nameOf);
      case 'partition-isolate-leader':
        return [nameOf('leader')];
      case 'partition-bridge':
        return [nameOf(f.order[Math.floor(f.order.length / 2)] ?? 0)];
      case 'partition-majorities-ring':
        return f.order.map(nameOf);
      case 'partition-one-way':
        return [...new Set([nameOf(f.from), this.oneWayTo(f.to, nameOf(f.from))])];
      case 'kill':
      case 'pause':
        return [...new Set(f.nodes.map(nameOf))];
      case 'clock':
        return f.changes.map((c) => nameOf(c.node));
      case 'latency':
      case 'reset':
        return all;
    }
  }

  /** One-way `to`: when the resolved leader is `to` itself, the next node in the list. */
  private oneWayTo(to: number, from: string): string {
    const names = this.target.names;
    const name = names[to] as string;
    return name !== from ? name : (names[(to + 1) % names.length] as string);
  }

  /** Applies the fault; returns the description (completed with what only applying tells). */
  private async act(f: FaultSpec, nameOf: (i: number | 'leader') => string, nodes: readonly string[], undo: Undo, description: string): Promise<string> {
    const t = this.target;
    const net = t.network;
    const markNetwork = (): void => {
      undo.network = true;
      this.networkFaulty = true;
    };
    switch (f.kind) {
      case 'partition-halves': {
        markNetwork();
        net.partition([nodes, t.names.filter((n) => !nodes.includes(n))]);
        return description;
      }
      case 'partition-isolate-leader': {
        const leader = nameOf('leader');
        if (f.leaderClockRate !== undefined) {
          undo.clocked.push(leader);
          this.clocked.add(leader);
          await t.setClock(leader, { skewMs: 0, rate: f.leaderClockRate });
        }
        markNetwork();
        net.isolate(leader);
        return description;
      }
      case 'partition-bridge':
        markNetwork();
        net.bridge(f.order.map(nameOf));
        return description;
      case 'partition-majorities-ring':
        markNetwork();
        net.majoritiesRing(f.order.map(nameOf));
        return description;
      case 'partition-one-way': {
        const from = nameOf(f.from);
        const to = this.oneWayTo(f.to, from);
        markNetwork();
        net.oneWay(from, to);
        return `one-way: ${from}${f.from === 'leader' ? ' (the leader)' : ''} -> ${to} dropped`;
      }
      case 'kill': {
        for (const n of nodes) {
          undo.killed.push(n);
          this.killed.add(n);
        }
        await Promise.all(nodes.map((n) => t.kill(n)));
        return description;
      }
      case 'pause':
        for (const n of nodes) {
          t.pause(n);
          undo.paused.push(n);
          this.paused.add(n);
        }
        return description;
      case 'clock':
        for (const c of f.changes) {
          const n = nameOf(c.node);
          undo.clocked.push(n);
          this.clocked.add(n);
          await t.setClock(n, { skewMs: c.skewMs, rate: c.rate });
        }
        return description;
      case 'latency':
        markNetwork();
        for (const a of t.names) for (const b of t.names) if (a !== b) net.delay(a, b, f.latencyMs, f.jitterMs);
        return description;
      case 'reset': {
        let count = 0;
        t.names.forEach((a, i) => {
          for (const b of t.names.slice(i + 1)) count += net.reset(a, b);
        });
        return `${description} (${count} reset)`;
      }
    }
  }

  /** Heals the open window: undoes what it did. */
  private async heal(): Promise<void> {
    const open = this.open;
    if (open === null) return;
    const { undo } = open;
    const t = this.target;
    const errors: string[] = [];
    if (undo.network) {
      try {
        t.network.heal();
        this.networkFaulty = false;
      } catch (e) {
        errors.push(`heal the network: ${errorText(e)}`);
      }
    }
    for (const n of undo.paused) {
      try {
        t.resume(n);
        this.paused.delete(n);
      } catch (e) {
        errors.push(`resume ${n}: ${errorText(e)}`);
      }
    }
    await Promise.all(undo.killed.map(async (n) => {
      try {
        await t.restart(n);
        this.killed.delete(n);
      } catch (e) {
        errors.push(`restart ${n}: ${errorText(e)}`);
      }
    }));
    for (const n of undo.clocked) {
      try {
        await t.setClock(n, { skewMs: 0, rate: 1 });
        this.clocked.delete(n);
      } catch (e) {
        errors.push(`reset the clock of ${n}: ${errorText(e)}`);
      }
    }
    this.close(open.window, errors);
  }

  private close(w: AppliedWindow, errors: readonly string[]): void {
    w.endMs = Math.round(this.elapsedMs());
    if (errors.length > 0) w.error = [w.error, `heal: ${errors.join('; ')}`].filter((x) => x !== undefined).join('; ');
    this.open = null;
    this.log(`nemesis: window ${w.id} healed at ${(w.endMs / 1000).toFixed(2)} s${errors.length > 0 ? ` (${errors.join('; ')})` : ''}`);
    this.callback(this.opts.onHealed, w);
  }

  private callback(f: ((w: AppliedWindow) => void) | undefined, w: AppliedWindow): void {
    try {
      f?.(w);
    } catch (e) {
      this.log(`nemesis: a callback threw: ${errorText(e)}`);
    }
  }

  /** Whether some fault is still in effect (for tests and the runner's final check). */
  faultsInEffect(): { readonly killed: readonly string[]; readonly paused: readonly string[]; readonly clocked: readonly string[]; readonly network: boolean } {
    return { killed: [...this.killed], paused: [...this.paused], clocked: [...this.clocked], network: this.networkFaulty };
  }
}
