// Leader failover: SIGKILL the leader and measure the time until the first proposal is
// acknowledged by the new leader. Probes go to every surviving member at a fixed rate with a
// bounded number in flight per member, identically for every system under test.

import type { BenchCluster, ProposeClient } from './cluster.js';
import { sleep } from './supervisor.js';

export interface FailoverOptions {
  /** A new probe is sent to each survivor every probeIntervalMs (default 5 ms): the resolution of the measurement. */
  readonly probeIntervalMs?: number;
  /**
   * Each probe is abandoned after probeTimeoutMs (default 500 ms). A probe a follower forwarded to
   * the dead leader may hang until the server's own request timeout (7 s on etcd); abandoning it
   * keeps fresh probes flowing. A healthy commit takes a few ms, far below this.
   */
  readonly probeTimeoutMs?: number;
  /** Give up on one failover after this long (default 30 s); it is then reported as failed. */
  readonly timeoutMs?: number;
  /** Quiet time before the kill, plus a random 0..jitterMs so kills do not line up with heartbeats. */
  readonly settleMs?: number;
  readonly jitterMs?: number;
}

/**
 * Probes in flight per survivor at most: enough that abandoned probes never stall new ones
 * (interval 5 ms, timeout 500 ms: 101). Clients used for failover must allow twice this many
 * concurrent requests (two survivors).
 */
export function maxProbesInFlight(options: FailoverOptions = {}): number {
  return Math.ceil((options.probeTimeoutMs ?? 500) / (options.probeIntervalMs ?? 5)) + 1;
}

export type FailoverSample =
  | { readonly ok: true; readonly killed: string; readonly ms: number }
  | { readonly ok: false; readonly killed: string; readonly reason: string };

/**
 * One failover: waits for a stable, caught-up cluster, kills its leader by PID (SIGKILL), probes
 * the survivors until one acknowledges a proposal, then restarts the killed member.
 */
export async function measureFailover(
  cluster: BenchCluster,
  client: ProposeClient,
  options: FailoverOptions = {},
): Promise<FailoverSample> {
  const probeIntervalMs = options.probeIntervalMs ?? 5;
  const probeTimeoutMs = options.probeTimeoutMs ?? 500;
  const maxInFlight = maxProbesInFlight(options);
  const timeoutMs = options.timeoutMs ?? 30_000;

  await cluster.waitCaughtUp(60_000);
  const leader = await cluster.waitForLeader(30_000);
  const survivors = cluster.members.filter((m) => m !== leader);
  await client.warm(survivors);
  await sleep((options.settleMs ?? 300) + Math.random() * (options.jitterMs ?? 200));

  let ackedAt: number | null = null;
  let done = false;
  const killedAt = performance.now();
  const killed = cluster.kill(leader);

  const probeLoop = async (member: string): Promise<void> => {
    let inFlight = 0;
    while (!done) {
      if (inFlight < maxInFlight) {
        inFlight++;
        void client.tryProposeAt(member, probeTimeoutMs).then((ok) => {
          inFlight--;
          if (ok && ackedAt === null) {
            ackedAt = performance.now();
            done = true;
          }
        });
      }
      await sleep(probeIntervalMs);
    }
  };
  const deadline = sleep(timeoutMs).then(() => {
    done = true;
  });
  await Promise.race([Promise.all(survivors.map(probeLoop)), deadline]);
  done = true;
  await killed;
  await cluster.restart(leader);

  if (ackedAt === null) return { ok: false, killed: leader, reason: `no commit acknowledged within ${timeoutMs} ms` };
  return { ok: true, killed: leader, ms: ackedAt - killedAt };
}
