// bench tradeoffs — what the section specs share: where the built `ballot` CLI is, and the settings
// of a tiny run (each spec passes its section's values, and each test overrides what it looks at).

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TradeoffSettings } from './types.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const ballotBin = join(repoRoot, 'packages/cli/dist/bin.js');

/** Settings of a tiny run: short cells, 3 members, no etcd unless `overrides` asks for it. */
export function tinySettings(overrides: Partial<TradeoffSettings> = {}): TradeoffSettings {
  return {
    quick: true,
    sections: [],
    seed: 7,
    readRatio: 0.9,
    valueBytes: 64,
    keys: 20,
    clients: 2,
    durationMs: 400,
    warmupMs: 100,
    heartbeatMs: 50,
    electionTimeoutMs: 500,
    faultsNodes: 3,
    faultsDurationMs: 5000,
    faultsRatePerSec: 50,
    faultsConcurrency: 3,
    failoverKills: 1,
    electionTimeoutsMs: [300],
    etcd: false,
    etcdBin: 'etcd',
    etcdFailoverKills: 0,
    ballotBin,
    logLevel: 'warn',
    ...overrides,
  };
}
