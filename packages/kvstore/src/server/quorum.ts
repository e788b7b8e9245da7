// Failing fast when the quorum is lost. Raft's own signals are slower than the 2 seconds the
// store promises with etcd's defaults (heartbeat 100 ms, election 1000 ms): a leader's
// CheckQuorum (thesis §6.2) steps down after one election timeout, but a follower cut off from
// its leader only notices when its randomized election timeout fires, up to two election
// timeouts later, and until then it would queue writes and ReadIndex requests that can only
// time out.
//
// So the server watches the peer transport itself: it records when each peer last sent this
// member anything (heartbeats flow every heartbeat interval both ways between a leader and its
// followers). A member serves writes and linearizable reads only while
//   - as leader: a majority of the voters (itself included) was heard from within the last
//     election timeout (the same rule as CheckQuorum, judged on every request instead of once
//     per election timeout);
//   - as follower or learner: the leader it knows was heard from within the last election timeout.
// Otherwise the request is refused at once with NO_LEADER ("etcdserver: no leader"). This only
// refuses more, never less, than Raft itself: safety still rests on the Raft core (a write is
// acknowledged only once committed, a ReadIndex read only after a quorum round).
//
// "Within the last election timeout" is measured on the member's own monotonic clock (node.ts
// passes NodeClock.monotonicNow), like the Raft ticks: a member has no other clock. With the chaos
// clock nemesis a slowed member therefore also judges its quorum slowly; that is what a machine
// whose clock drifts would do, and it is why --read-mode lease is unsafe under drift.

import type { Message, NodeId, Transport, TransportStats } from '@ballot/raft';

/** A Transport that passes everything through and remembers when each peer was last heard from. */
export class HeardTracker implements Transport {
  private readonly lastHeardMs = new Map<NodeId, number>();

  /** `nowMs`: the member's monotonic clock in ms (default: the real clock). */
  constructor(
    private readonly inner: Transport,
    readonly nowMs: () => number = Date.now,
  ) {}

  send(messages: readonly Message[]): void {
    this.inner.send(messages);
  }

  onMessage(handler: (message: Message) => void): void {
    this.inner.onMessage((m) => {
      this.lastHeardMs.set(m.from, this.nowMs());
      handler(m);
    });
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  stats(): TransportStats {
    return this.inner.stats();
  }

  /** Milliseconds since `id` last sent this member a message (Infinity: never). */
  sinceHeardMs(id: NodeId, nowMs = this.nowMs()): number {
    const t = this.lastHeardMs.get(id);
    return t === undefined ? Infinity : nowMs - t;
  }

  /** Forgets a removed member. */
  forget(id: NodeId): void {
    this.lastHeardMs.delete(id);
  }
}

export interface QuorumView {
  readonly self: NodeId;
  readonly role: string;
  readonly leader: NodeId | null;
  readonly voters: readonly NodeId[];
}

/**
 * Why this member cannot serve a write or a linearizable read right now, or null if it can
 * (see the header comment for the rule).
 */
export function quorumProblem(view: QuorumView, tracker: HeardTracker, windowMs: number, nowMs = tracker.nowMs()): string | null {
  if (view.role === 'leader') {
    const needed = Math.floor(view.voters.length / 2) + 1;
    let heard = view.voters.includes(view.self) ? 1 : 0;
    for (const v of view.voters) if (v !== view.self && tracker.sinceHeardMs(v, nowMs) <= windowMs) heard++;
    return heard >= needed ? null : `this leader heard from ${heard} of ${view.voters.length} voters within ${windowMs} ms (a quorum is ${needed})`;
  }
  if (view.leader === null) return view.role === 'follower' ? 'no leader is known' : `an election is under way (this member is ${view.role})`;
  const since = tracker.sinceHeardMs(view.leader, nowMs);
  return since <= windowMs ? null : `the leader ${view.leader} was last heard from ${since === Infinity ? 'never' : `${since} ms ago`} (window ${windowMs} ms)`;
}

/**
 * Requests already waiting inside Raft when the quorum goes (a ReadIndex sent to a leader that
 * died, a write forwarded to it, a proposal at a leader that lost its followers) would otherwise
 * wait for an election timeout or two, or for their deadline. The watch checks the rule above
 * every `periodMs` while any request is pending and fails them all at once when it breaks, with
 * the error the caller chooses (a write's outcome is then unknown: not NO_LEADER, which promises
 * nothing was proposed). Raft keeps the abandoned request until it settles or times out (bounded
 * by the driver's queues); only the answer to the client is given early.
 */
export class QuorumWatch {
  private readonly pending = new Set<(problem: string) => void>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly problem: () => string | null,
    private readonly periodMs: number,
  ) {}

  guard<T>(p: Promise<T>, onLoss: (problem: string) => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const abort = (problem: string): void => {
        this.pending.delete(abort);
        reject(onLoss(problem));
      };
      this.pending.add(abort);
      this.ensureTimer();
      p.then(
        (v) => {
          this.pending.delete(abort);
          resolve(v);
        },
        (e: unknown) => {
          this.pending.delete(abort);
          reject(e);
        },
      );
    });
  }

  get size(): number {
    return this.pending.size;
  }

  private ensureTimer(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      if (this.pending.size === 0) {
        clearInterval(this.timer!);
        this.timer = null;
        return;
      }
      const problem = this.problem();
      if (problem !== null) for (const abort of [...this.pending]) abort(problem);
    }, this.periodMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.pending.clear();
  }
}
