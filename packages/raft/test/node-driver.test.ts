// RaftDriver over MemoryLogStorage and an in-memory loopback network: the Ready loop, group
// commit, redirects, fail-fast without a quorum, bounded queues, and fatal storage errors.
import { afterEach, describe, expect, it } from 'vitest';

import { RaftError } from '../src/core/errors.js';
import type { Entry, Message, NodeId } from '../src/core/types.js';
import { RaftDriver, type RaftDriverOptions, type StateMachine } from '../src/node/driver.js';
import { MemoryLogStorage } from '../src/storage/memory.js';
import type { LogStorage, SaveBatch, StorageMeta } from '../src/storage/types.js';
import type { Transport, TransportStats } from '../src/transport/types.js';

// ---------------------------------------------------------------------------------------------
// Test doubles: a loopback network with cuttable links, a recording state machine, a gated storage.

class LoopbackNetwork {
  private readonly handlers = new Map<NodeId, (m: Message) => void>();
  /** Nodes cut off from everyone (messages to and from them are dropped). */
  readonly isolated = new Set<NodeId>();

  transport(id: NodeId): Transport {
    let received = 0;
    return {
      send: (messages) => {
        for (const m of messages) {
          if (this.isolated.has(m.from) || this.isolated.has(m.to)) continue;
          // Asynchronous delivery, as a socket would do.
          setImmediate(() => {
            if (this.isolated.has(m.from) || this.isolated.has(m.to)) return;
            const h = this.handlers.get(m.to);
            if (h) {
              received++;
              h(m);
            }
          });
        }
      },
      onMessage: (handler) => {
        this.handlers.set(id, handler);
      },
      start: async () => undefined,
      close: async () => {
        this.handlers.delete(id);
      },
      stats: (): TransportStats => ({ peers: {}, receivedMsgs: received, rejectedConnections: 0, malformedFrames: 0 }),
    };
  }
}

class RecordingStateMachine implements StateMachine {
  readonly applied: Entry[] = [];
  apply(entry: Entry): void {
    this.applied.push(entry);
  }
  normalData(): string[] {
    return this.applied.filter((e) => e.type === 'normal').map((e) => new TextDecoder().decode(e.data));
  }
}

/** Wraps a storage; while `gate` is set, save() waits for it (a slow disk), and `failWith` makes save() fail. */
class ControlledStorage implements LogStorage {
  gate: Promise<void> | null = null;
  failWith: Error | null = null;
  saves = 0;
  constructor(readonly inner: LogStorage) {}
  load() {
    return this.inner.load();
  }
  async save(batch: SaveBatch): Promise<void> {
    this.saves++;
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    return this.inner.save(batch);
  }
  readMeta(): Promise<StorageMeta | null> {
    return this.inner.readMeta();
  }
  writeMeta(meta: StorageMeta): Promise<void> {
    return this.inner.writeMeta(meta);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const TICK_MS = 5;
const ELECTION_TICKS = 10;

interface TestNode {
  readonly id: NodeId;
  readonly driver: RaftDriver;
  readonly sm: RecordingStateMachine;
  readonly storage: ControlledStorage;
}

const running: RaftDriver[] = [];

function makeCluster(ids: readonly NodeId[], extra: Partial<RaftDriverOptions> = {}, seed = 1): { net: LoopbackNetwork; nodes: TestNode[] } {
  const net = new LoopbackNetwork();
  const nodes = ids.map((id, i) => {
    const sm = new RecordingStateMachine();
    const storage = new ControlledStorage(new MemoryLogStorage());
    const driver = new RaftDriver({
      config: { id, peers: ids, electionTicks: ELECTION_TICKS, heartbeatTicks: 1, randomSeed: seed * 100 + i },
      storage,
      transport: net.transport(id),
      stateMachine: sm,
      tickMs: TICK_MS,
      ...extra,
    });
    running.push(driver);
    return { id, driver, sm, storage };
  });
  return { net, nodes };
}

async function waitFor<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function leaderOf(nodes: readonly TestNode[], exclude: ReadonlySet<NodeId> = new Set()): TestNode | undefined {
  return nodes.find((n) => !exclude.has(n.id) && n.driver.status().role === 'leader');
}

async function rejection(p: Promise<unknown>): Promise<RaftError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RaftError) return e;
    throw e;
  }
  throw new Error('expected the promise to reject');
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop()));
});

describe('RaftDriver', () => {
  it('single node: elects itself, commits and applies a proposal, passes a read barrier', async () => {
    const { nodes } = makeCluster(['n1']);
    const n1 = nodes[0]!;
    await n1.driver.start();
    await waitFor('n1 to lead', () => n1.driver.status().role === 'leader');
    const ack = await n1.driver.propose(enc('hello'));
    expect(ack.term).toBe(n1.driver.status().term);
    expect(n1.sm.applied.find((e) => e.index === ack.index)?.data).toEqual(enc('hello'));
    const read = await n1.driver.read();
    expect(read.index).toBeGreaterThanOrEqual(ack.index);
    expect(n1.driver.status().applied).toBeGreaterThanOrEqual(read.index);
  });

  it('three nodes: concurrent proposals all commit, in one order on every node (group commit batches them)', async () => {
    const { nodes } = makeCluster(['n1', 'n2', 'n3']);
    await Promise.all(nodes.map((n) => n.driver.start()));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    const savesBefore = leader.storage.saves;
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => leader.driver.propose(enc(`v${i}`))));
    // Every proposal got its own index.
    expect(new Set(acks.map((a) => a.index)).size).toBe(200);
    // 200 proposals made in one turn of the event loop were batched: far fewer fsyncs than entries.
    expect(leader.storage.saves - savesBefore).toBeLessThan(200);
    const last = Math.max(...acks.map((a) => a.index));
    await waitFor('every node to apply', () => nodes.every((n) => n.driver.status().applied >= last));
    const reference = leader.sm.applied.slice(0, last).map((e) => `${e.index}/${e.term}/${e.type}/${Buffer.from(e.data).toString('hex')}`);
    for (const n of nodes) {
      expect(n.sm.applied.slice(0, last).map((e) => `${e.index}/${e.term}/${e.type}/${Buffer.from(e.data).toString('hex')}`)).toEqual(reference);
    }
    // Each acknowledged proposal is applied at its index with its data.
    for (const [i, ack] of acks.entries()) {
      const e = leader.sm.applied[ack.index - 1]!;
      expect(e.index).toBe(ack.index);
      expect(new TextDecoder().decode(e.data)).toBe(`v${i}`);
    }
  });

  it('a follower refuses a proposal with NOT_LEADER naming the leader, and serves reads via the leader', async () => {
    const { nodes } = makeCluster(['n1', 'n2', 'n3']);
    await Promise.all(nodes.map((n) => n.driver.start()));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    const follower = nodes.find((n) => n !== leader)!;
    await waitFor('the follower to know the leader', () => follower.driver.status().leader === leader.id);
    const err = await rejection(follower.driver.propose(enc('x')));
    expect(err.code).toBe('NOT_LEADER');
    expect(err.leaderHint).toBe(leader.id);
    const ack = await leader.driver.propose(enc('y'));
    const read = await follower.driver.read();
    // Linearizable: a read that starts after a write was acknowledged sees it.
    expect(read.index).toBeGreaterThanOrEqual(ack.index);
    expect(follower.sm.normalData()).toContain('y');
  });

  it('many concurrent reads at the leader and a follower all pass the barrier after an acknowledged write', async () => {
    const { nodes } = makeCluster(['n1', 'n2', 'n3']);
    await Promise.all(nodes.map((n) => n.driver.start()));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    const follower = nodes.find((n) => n !== leader)!;
    await waitFor('the follower to know the leader', () => follower.driver.status().leader === leader.id);
    const ack = await leader.driver.propose(enc('w'));
    const reads = await Promise.all([
      ...Array.from({ length: 500 }, () => leader.driver.read()),
      ...Array.from({ length: 500 }, () => follower.driver.read()),
    ]);
    for (const r of reads) expect(r.index).toBeGreaterThanOrEqual(ack.index);
    expect(follower.driver.status().applied).toBeGreaterThanOrEqual(ack.index);
    expect(leader.driver.status().pendingReads + follower.driver.status().pendingReads).toBe(0);
  });

  it('an isolated leader fails pending proposals and reads with LEADERSHIP_LOST / NO_LEADER instead of hanging', async () => {
    const { net, nodes } = makeCluster(['n1', 'n2', 'n3']);
    await Promise.all(nodes.map((n) => n.driver.start()));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    await leader.driver.propose(enc('before'));
    net.isolated.add(leader.id);
    // Deadlines far beyond the test: a TIMEOUT here would mean the request hung.
    const pendingWrite = rejection(leader.driver.propose(enc('during'), { timeoutMs: 60_000 }));
    const pendingRead = rejection(leader.driver.read({ timeoutMs: 60_000 }));
    const [w, r] = await Promise.all([pendingWrite, pendingRead]);
    expect(['LEADERSHIP_LOST', 'UNCOMMITTED_LIMIT']).toContain(w.code);
    expect(['LEADERSHIP_LOST', 'NO_LEADER']).toContain(r.code);
    // CheckQuorum (§6.2) made it step down; new requests fail at once.
    await waitFor('the old leader to step down', () => leader.driver.status().role !== 'leader');
    const now = await rejection(leader.driver.propose(enc('after'), { timeoutMs: 60_000 }));
    expect(['NO_LEADER', 'NOT_LEADER']).toContain(now.code);
    const nowRead = await rejection(leader.driver.read({ timeoutMs: 60_000 }));
    expect(['NO_LEADER', 'NOT_LEADER', 'LEADERSHIP_LOST']).toContain(nowRead.code);
    // The majority side elects a new leader and keeps committing.
    const newLeader = await waitFor('a new leader', () => leaderOf(nodes, new Set([leader.id])));
    const ack = await newLeader.driver.propose(enc('majority'));
    expect(ack.term).toBeGreaterThan(0);
  });

  it('with every link cut, the leader steps down and every request fails fast (no quorum anywhere)', async () => {
    const { net, nodes } = makeCluster(['n1', 'n2', 'n3']);
    await Promise.all(nodes.map((n) => n.driver.start()));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    await leader.driver.propose(enc('before'));
    for (const n of nodes) net.isolated.add(n.id);
    const writes = Array.from({ length: 10 }, (_, i) => rejection(leader.driver.propose(enc(`w${i}`), { timeoutMs: 60_000 })));
    const reads = nodes.map((n) => rejection(n.driver.read({ timeoutMs: 60_000 })));
    for (const e of await Promise.all(writes)) expect(['LEADERSHIP_LOST', 'UNCOMMITTED_LIMIT']).toContain(e.code);
    for (const e of await Promise.all(reads)) expect(['LEADERSHIP_LOST', 'NO_LEADER']).toContain(e.code);
    await waitFor('nobody leads', () => nodes.every((n) => n.driver.status().role !== 'leader'));
  });

  it('a full proposal queue rejects with QUEUE_FULL at once; queued proposals still commit', async () => {
    const { nodes } = makeCluster(['n1'], { maxQueuedProposals: 5 });
    const n1 = nodes[0]!;
    await n1.driver.start();
    await waitFor('n1 to lead', () => n1.driver.status().role === 'leader');
    await n1.driver.propose(enc('warm-up'));
    // A slow disk: the next save waits until released.
    let release!: () => void;
    n1.storage.gate = new Promise<void>((r) => (release = r));
    const accepted = Array.from({ length: 5 }, (_, i) => n1.driver.propose(enc(`q${i}`)));
    const err = await rejection(n1.driver.propose(enc('one too many')));
    expect(err.code).toBe('QUEUE_FULL');
    expect(n1.driver.status().pendingProposals).toBe(5);
    n1.storage.gate = null;
    release();
    const acks = await Promise.all(accepted);
    expect(acks.map((a) => a.index)).toEqual([...acks.map((a) => a.index)].sort((a, b) => a - b));
    expect(n1.sm.normalData()).toEqual(['warm-up', 'q0', 'q1', 'q2', 'q3', 'q4']);
    expect(n1.driver.status().pendingProposals).toBe(0);
  });

  it('a proposal past its deadline rejects with TIMEOUT', async () => {
    const { nodes } = makeCluster(['n1']);
    const n1 = nodes[0]!;
    await n1.driver.start();
    await waitFor('n1 to lead', () => n1.driver.status().role === 'leader');
    let release!: () => void;
    n1.storage.gate = new Promise<void>((r) => (release = r));
    const err = await rejection(n1.driver.propose(enc('slow'), { timeoutMs: 30 }));
    expect(err.code).toBe('TIMEOUT');
    n1.storage.gate = null;
    release();
  });

  it('a failed save is fatal: the driver stops, pending requests fail with STOPPED, nothing is applied', async () => {
    const { nodes } = makeCluster(['n1']);
    const n1 = nodes[0]!;
    const fatal = new Promise<Error>((r) => n1.driver.once('fatal', r));
    await n1.driver.start();
    await waitFor('n1 to lead', () => n1.driver.status().role === 'leader');
    await n1.driver.propose(enc('ok'));
    const appliedBefore = n1.sm.applied.length;
    n1.storage.failWith = new Error('EIO: fsync failed');
    const err = await rejection(n1.driver.propose(enc('lost')));
    expect(err.code).toBe('STOPPED');
    expect((await fatal).message).toContain('fsync failed');
    expect(n1.sm.applied.length).toBe(appliedBefore);
    expect(n1.driver.status().running).toBe(false);
    expect((await rejection(n1.driver.propose(enc('later')))).code).toBe('STOPPED');
  });

  it('a restarted node re-applies its committed log and keeps its term', async () => {
    const { nodes } = makeCluster(['n1']);
    const n1 = nodes[0]!;
    await n1.driver.start();
    await waitFor('n1 to lead', () => n1.driver.status().role === 'leader');
    for (let i = 0; i < 5; i++) await n1.driver.propose(enc(`e${i}`));
    const term = n1.driver.status().term;
    await n1.driver.stop();
    const storage = (n1.storage.inner as MemoryLogStorage).reopen();
    const sm = new RecordingStateMachine();
    const again = new RaftDriver({
      config: { id: 'n1', peers: ['n1'], electionTicks: ELECTION_TICKS, heartbeatTicks: 1, randomSeed: 7 },
      storage,
      transport: new LoopbackNetwork().transport('n1'),
      stateMachine: sm,
      tickMs: TICK_MS,
    });
    running.push(again);
    await again.start();
    await waitFor('n1 to lead again', () => again.status().role === 'leader');
    const ack = await again.propose(enc('after restart'));
    expect(ack.term).toBeGreaterThan(term);
    expect(sm.normalData()).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'after restart']);
  });

  it('a commit-only hard state change costs no fsync of its own, and stop() still saves the last commit', async () => {
    const { nodes } = makeCluster(['n1']);
    const n1 = nodes[0]!;
    await n1.driver.start();
    await waitFor('n1 to lead', () => n1.driver.status().role === 'leader');
    await n1.driver.propose(enc('warm-up'));
    const before = n1.storage.saves;
    let last = 0;
    for (let i = 0; i < 20; i++) last = (await n1.driver.propose(enc(`s${i}`))).index;
    // One synced save per proposal (its entry), not two (entry, then the new commit index).
    expect(n1.storage.saves - before).toBeLessThanOrEqual(20);
    await n1.driver.stop();
    const restored = await (n1.storage.inner as MemoryLogStorage).reopen().load();
    expect(restored.hardState.commit).toBe(last);
  });

  it('rejects requests before start and after stop with STOPPED', async () => {
    const { nodes } = makeCluster(['n1']);
    const n1 = nodes[0]!;
    expect((await rejection(n1.driver.propose(enc('x')))).code).toBe('STOPPED');
    await n1.driver.start();
    await n1.driver.stop();
    expect((await rejection(n1.driver.read())).code).toBe('STOPPED');
  });
});
