// bench tradeoffs — failover: the distribution and the table (pure), and one tiny real run (3
// `ballot kv serve` members, 2 leader SIGKILLs; etcd too when installed). No timing assertions:
// the real run checks that samples exist, are positive and are reported, not how fast they are.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Progress } from '../raft/progress.js';
import { Supervisor } from '../raft/supervisor.js';
import type { FailoverSample } from '../raft/failover.js';
import {
  estimateFailoverMs,
  failoverDistribution,
  failoverMarkdown,
  heartbeatForTimeout,
  ratioOf,
  runFailoverSection,
  timeoutDetail,
} from './failover.js';
import type { TradeoffIo, TradeoffSettings } from './types.js';
import { ballotBin, tinySettings as tinyRun } from './test-helpers.js';

/** Settings of a tiny run; each test overrides what it looks at. */
function tinySettings(overrides: Partial<TradeoffSettings> = {}): TradeoffSettings {
  return tinyRun({ sections: ['failover'], failoverKills: 2, etcd: true, etcdFailoverKills: 1, ...overrides });
}

const ok = (ms: number): FailoverSample => ({ ok: true, killed: 'b1', ms });
const bad = (reason: string): FailoverSample => ({ ok: false, killed: 'b2', reason });

describe('failover distribution', () => {
  it('takes nearest-rank percentiles of the successful samples and lists the failures', () => {
    const d = failoverDistribution([ok(400), ok(100), bad('no commit acknowledged within 30000 ms'), ok(300), ok(200)], ['kill 6: no leader']);
    expect(d.kills).toBe(5);
    expect(d.samplesMs).toEqual([400, 100, 300, 200]);
    expect(d.minMs).toBe(100);
    expect(d.p50Ms).toBe(200);
    expect(d.p90Ms).toBe(400);
    expect(d.maxMs).toBe(400);
    expect(d.failures).toEqual(['kill of b2: no commit acknowledged within 30000 ms', 'kill 6: no leader']);
  });

  it('has no figures when no kill gave a sample', () => {
    const d = failoverDistribution([bad('x')]);
    expect([d.minMs, d.p50Ms, d.p90Ms, d.p99Ms, d.maxMs]).toEqual([null, null, null, null, null]);
  });

  it('heartbeat is a tenth of the election timeout; the ratio needs two positive numbers', () => {
    expect([300, 1000, 2000].map(heartbeatForTimeout)).toEqual([30, 100, 200]);
    expect(ratioOf(600, 300)).toBe(2);
    expect(ratioOf(600, null)).toBeNull();
    expect(ratioOf(600, 0)).toBeNull();
  });

  it('puts Ballot and etcd side by side per timeout, with the ratio of the medians', () => {
    const row = timeoutDetail(1000, failoverDistribution([ok(1500), ok(1700), ok(1600)]), failoverDistribution([ok(1000), ok(1200), ok(800)]));
    expect(row.heartbeatMs).toBe(100);
    expect(row.p50Ms).toBe(1600);
    expect(row.ratioP50).toBeCloseTo(1.6);
    const md = failoverMarkdown([row], { found: true, binary: 'etcd', version: '3.4.23' });
    expect(md).toContain('| 1000 ms | 100 ms | 3/3 | 1,500 | 1,600 | 1,700 | 1,700 | 3/3 | 1,000 | 1,200 | 1,200 | 1.60x |');
    expect(failoverMarkdown([timeoutDetail(300, failoverDistribution([ok(500)]), null)], { found: false, reason: 'skipped (--no-etcd)' })).toContain(
      'etcd: skipped (--no-etcd)',
    );
  });

  it('estimates more time for more kills, longer timeouts and etcd', () => {
    const base = estimateFailoverMs(tinySettings({ etcd: false }));
    expect(estimateFailoverMs(tinySettings({ etcd: false, failoverKills: 4 }))).toBeGreaterThan(base);
    expect(estimateFailoverMs(tinySettings({ etcd: false, electionTimeoutsMs: [300, 2000] }))).toBeGreaterThan(base);
    expect(estimateFailoverMs(tinySettings({ etcd: true }))).toBeGreaterThan(base);
  });
});

describe('failover, a tiny real run', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('kills the leader twice per system and reports a sample per kill', async () => {
    expect(existsSync(ballotBin), `${ballotBin} is missing: run npm run build`).toBe(true);
    const supervisor = new Supervisor();
    const workDir = mkdtempSync(join(tmpdir(), 'ballot-tradeoffs-failover-'));
    const progress = new Progress();
    cleanups.push(async () => {
      progress.stop();
      await supervisor.stopAll(1000);
      rmSync(workDir, { recursive: true, force: true });
    });
    const io: TradeoffIo = { progress, supervisor, workDir, parentPid: process.pid };
    const result = await runFailoverSection(tinySettings(), io);
    expect(supervisor.running()).toEqual([]); // every member stopped by the section itself
    expect(result.byTimeout).toHaveLength(1);
    const row = result.byTimeout[0];
    if (row === undefined) throw new Error('no row');
    expect(row.failures).toEqual([]);
    expect(row.samplesMs).toHaveLength(2);
    for (const ms of row.samplesMs) expect(ms).toBeGreaterThan(0);
    expect(row.p50Ms).not.toBeNull();
    if (result.etcd.found) {
      expect(row.etcd?.samplesMs).toHaveLength(2);
      expect(row.ratioP50).not.toBeNull();
      expect(result.markdown).toContain(`etcd ${result.etcd.version}`);
    }
    expect(result.markdown).toContain('| 300 ms | 30 ms | 2/2 |');
    process.stderr.write(`failover tiny run: ${JSON.stringify(result.byTimeout)}\n`);
  }, 120_000);
});
