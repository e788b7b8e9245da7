// Helper of the suites that start a ChaosCluster in a temp folder (chaos-cluster, chaos-bank): the
// cluster and folder a test holds are stopped and removed after each test, also when it fails.

import { rmSync } from 'node:fs';
import { afterEach } from 'vitest';
import type { ChaosCluster } from '../src/chaos/cluster.js';

/** What the current test started: set these as soon as they exist. */
export interface HeldCluster {
  cluster: ChaosCluster | undefined;
  root: string | undefined;
}

/** Registers an afterEach that stops the held cluster (1 s grace) and removes the held folder. */
export function useHeldCluster(): HeldCluster {
  const held: HeldCluster = { cluster: undefined, root: undefined };
  afterEach(async () => {
    await held.cluster?.stop(1000);
    held.cluster = undefined;
    if (held.root !== undefined) rmSync(held.root, { recursive: true, force: true });
    held.root = undefined;
  });
  return held;
}
