// A real kv cluster for the chaos client and workload suites: n KvNode members in this process (real sockets,
// real LevelDB in a temp folder, real Raft), on OS-assigned loopback ports. `stop()` closes every member and
// removes the folder; call it in afterEach/finally so a failing test cleans up too.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvNode, type KvServeOptions } from '@ballot/kvstore';
import { freePorts } from '@ballot/raft';

export interface InProcessCluster {
  readonly names: readonly string[];
  /** Client URL of each member, index i = names[i]. */
  readonly endpoints: readonly string[];
  readonly nodes: readonly KvNode[];
  /** Index of the member every member names as leader (waits up to `timeoutMs`). */
  leaderIndex(timeoutMs?: number): Promise<number>;
  /** Closes member i (idempotent). */
  stopMember(i: number): Promise<void>;
  /** Closes every member and removes the data folder (idempotent). */
  stop(): Promise<void>;
}

export async function startInProcessCluster(n: number): Promise<InProcessCluster> {
  const ports = await freePorts(2 * n);
  const root = mkdtempSync(join(tmpdir(), 'ballot-chaos-kv-'));
  const names = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const peer = (i: number): string => `http://127.0.0.1:${ports[2 * i]}`;
  const client = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initialCluster: Record<string, string[]> = Object.fromEntries(names.map((name, i) => [name, [peer(i)]]));
  const specs: KvServeOptions[] = names.map((name, i) => ({
    name,
    dataDir: join(root, name),
    listenClientUrls: [client(i)],
    advertiseClientUrls: [client(i)],
    listenPeerUrls: [peer(i)],
    initialAdvertisePeerUrls: [peer(i)],
    initialCluster,
    initialClusterState: 'new',
    initialClusterToken: 'chaos-spec',
    heartbeatIntervalMs: 50,
    electionTimeoutMs: 500,
    logLevel: 'warn',
  }));
  const started = await Promise.allSettled(specs.map((s) => KvNode.start(s)));
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const closed = new Set<number>();
  const stopMember = async (i: number): Promise<void> => {
    if (closed.has(i)) return;
    closed.add(i);
    await nodes[i]?.close();
  };
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((_, i) => stopMember(i).catch(() => undefined)));
    rmSync(root, { recursive: true, force: true });
  };
  if (nodes.length !== n) {
    await stop();
    const why = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    throw new Error(`a member failed to start: ${String(why?.reason)}`);
  }
  const leaderIndex = async (timeoutMs = 10_000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const live = nodes.filter((_, i) => !closed.has(i));
      const leaders = live.filter((x) => x.driver.role === 'leader');
      const first = leaders[0];
      if (leaders.length === 1 && first !== undefined && live.every((x) => x.driver.leader === first.memberId)) return nodes.indexOf(first);
      if (Date.now() > deadline) throw new Error('no leader elected in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { names, endpoints: names.map((_, i) => client(i)), nodes, leaderIndex, stopMember, stop };
}
