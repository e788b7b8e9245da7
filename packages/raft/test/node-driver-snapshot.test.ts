// RaftDriver with snapshots, over MemoryLogStorage, real snapshot files and an in-memory network:
// the compaction policy, a follower cut off behind the compacted log catching up by snapshot
// (Ready.snapshot switched in, state machine restored), a restart from the snapshot, and a
// leadership transfer under load whose in-flight proposals are all acknowledged.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import type { InstallSnapshot, Message, NodeId } from '../src/core/types.js';
import { AppliedDigest } from '../src/node/digest.js';
import { RaftDriver, type SnapshotSender } from '../src/node/driver.js';
import { MemoryLogStorage } from '../src/storage/memory.js';
import { SnapshotStore, type VerifiedSnapshot } from '../src/storage/snapshot.js';
import type { Transport, TransportStats } from '../src/transport/types.js';

const TICK_MS = 5;
const running: RaftDriver[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop()));
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

class Net {
  readonly handlers = new Map<NodeId, (m: Message) => void>();
  readonly isolated = new Set<NodeId>();
  transport(id: NodeId): Transport {
    return {
      send: (messages) => {
        for (const m of messages) {
          setImmediate(() => {
            if (this.isolated.has(m.from) || this.isolated.has(m.to)) return;
            this.handlers.get(m.to)?.(m);
          });
        }
      },
      onMessage: (h) => void this.handlers.set(id, h),
      start: async () => undefined,
      close: async () => void this.handlers.delete(id),
      stats: (): TransportStats => ({ peers: {}, receivedMsgs: 0, rejectedConnections: 0, malformedFrames: 0 }),
    };
  }
}

interface Node {
  readonly id: NodeId;
  driver: RaftDriver;
  digest: AppliedDigest;
  storage: MemoryLogStorage;
  readonly store: SnapshotStore;
}

/** Copies the file into the receiver's store as the stream receiver would, then delivers it. */
function sender(net: Net, nodes: Map<NodeId, Node>, sent: string[]): SnapshotSender {
  return {
    async send(message: InstallSnapshot, file: VerifiedSnapshot): Promise<void> {
      if (net.isolated.has(message.to) || net.isolated.has(message.from)) throw new Error('unreachable');
      const to = nodes.get(message.to)!;
      const w = await to.store.begin('incoming');
      await w.write(0, await readFile(file.path));
      const got = await w.finish(message.meta);
      sent.push(`${message.to}@${got.index}`);
      to.driver.deliverSnapshot(message, got);
    },
  };
}

async function makeCluster(ids: readonly NodeId[], sent: string[]): Promise<{ net: Net; nodes: Map<NodeId, Node>; make: (id: NodeId, storage: MemoryLogStorage) => RaftDriver }> {
  const net = new Net();
  const nodes = new Map<NodeId, Node>();
  const make = (id: NodeId, storage: MemoryLogStorage): RaftDriver => {
    const n = nodes.get(id)!;
    n.digest = new AppliedDigest();
    n.storage = storage;
    n.driver = new RaftDriver({
      config: { id, peers: ids, electionTicks: 10, heartbeatTicks: 1, randomSeed: 7 + ids.indexOf(id) },
      storage,
      transport: net.transport(id),
      stateMachine: n.digest,
      snapshots: n.store,
      snapshotSender: sender(net, nodes, sent),
      snapshotEntries: 20,
      snapshotTrailingEntries: 5,
      tickMs: TICK_MS,
    });
    running.push(n.driver);
    return n.driver;
  };
  for (const id of ids) {
    const dir = await mkdtemp(join(tmpdir(), `ballot-drv-snap-${id}-`));
    dirs.push(dir);
    const store = await SnapshotStore.open(dir);
    nodes.set(id, { id, store } as Node);
    make(id, new MemoryLogStorage());
  }
  return { net, nodes, make };
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

const leaderOf = (nodes: Map<NodeId, Node>): Node | undefined => [...nodes.values()].find((n) => n.driver.status().role === 'leader');

describe('driver snapshots', () => {
  it('compacts, catches a lagging follower up by snapshot, and restarts from the snapshot', async () => {
    const sent: string[] = [];
    const { net, nodes, make } = await makeCluster(['n1', 'n2', 'n3'], sent);
    await Promise.all([...nodes.values()].map((n) => n.driver.start()));
    let leader = await waitFor('a leader', () => leaderOf(nodes));
    const lagging = [...nodes.values()].find((n) => n !== leader)!;
    net.isolated.add(lagging.id);
    for (let i = 0; i < 60; i++) await leader.driver.propose(new TextEncoder().encode(`e${i}`));
    // The leader compacted past what the lagging follower has, keeping a trailing window.
    const st = await waitFor('the leader to compact', () => {
      const s = leader.driver.status();
      return s.snapshotIndex >= 40 && s.firstIndex > 1 ? s : null;
    });
    expect(st.firstIndex).toBeLessThanOrEqual(st.snapshotIndex - 5 + 1);
    expect((await leader.storage.reopen().load()).snapshot?.index).toBe(st.snapshotIndex);

    net.isolated.delete(lagging.id);
    await waitFor('the follower to catch up', () => lagging.driver.status().applied === leader.driver.status().applied);
    expect(sent.some((s) => s.startsWith(`${lagging.id}@`))).toBe(true);
    expect(lagging.digest.hex).toBe(leader.digest.hex);
    expect(lagging.driver.snapshot).not.toBeNull();
    const restoredLog = await lagging.storage.reopen().load();
    expect(restoredLog.snapshot).toBeDefined();

    // Restart the follower from its storage and snapshot store: applied starts at the snapshot.
    await lagging.driver.stop();
    const d2 = make(lagging.id, lagging.storage.reopen());
    await d2.start();
    expect(d2.status().applied).toBeGreaterThanOrEqual(restoredLog.snapshot!.index);
    leader = await waitFor('a leader', () => leaderOf(nodes));
    await leader.driver.propose(new TextEncoder().encode('after restart'));
    await waitFor('all to converge', () => [...nodes.values()].every((n) => n.driver.status().applied === leader.driver.status().applied));
    expect(new Set([...nodes.values()].map((n) => n.digest.hex)).size).toBe(1);
  });

  it('a leadership transfer under load: every in-flight proposal is acknowledged, the target leads', async () => {
    const { nodes } = await makeCluster(['n1', 'n2', 'n3'], []);
    await Promise.all([...nodes.values()].map((n) => n.driver.start()));
    const leader = await waitFor('a leader', () => leaderOf(nodes));
    const target = [...nodes.values()].find((n) => n !== leader)!;
    const warm = await leader.driver.propose(new TextEncoder().encode('warm-up'));
    const inflight = Array.from({ length: 50 }, (_, i) => leader.driver.propose(new TextEncoder().encode(`p${i}`)));
    const settled = Promise.allSettled(inflight);
    // Transfer once they are in the leader's log (appended, not necessarily committed).
    await waitFor('the proposals to be appended', () => leader.driver.status().lastIndex >= warm.index + 50, 5000);
    const late = leader.driver.propose(new TextEncoder().encode('during the transfer')).then(
      () => null,
      (e: unknown) => e,
    );
    const ack = await leader.driver.transferLeadership(target.id);
    expect(ack.leader).toBe(target.id);
    // Appended before the transfer: handed over, and acknowledged once applied (thesis §3.10).
    const results = await settled;
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    // Proposed during the transfer: refused up front, nothing appended.
    expect(await late).toMatchObject({ code: 'TRANSFER_IN_PROGRESS' });
    expect(target.driver.status().role).toBe('leader');
    await expect(leader.driver.transferLeadership(target.id)).rejects.toMatchObject({ code: 'NOT_LEADER' });
  });
});
