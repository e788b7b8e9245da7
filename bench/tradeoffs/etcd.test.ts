// bench tradeoffs — side by side with etcd: the per-figure medians, ratios and table (pure), the
// "skipped" answer without etcd, and one tiny real run (3 Ballot members and 3 etcd members, short
// cells, one failover each) when etcd is installed. No timing assertions.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { failedResult } from '../kv/report.js';
import type { ClosedLoopResult } from '../raft/load.js';
import { Progress } from '../raft/progress.js';
import { Supervisor } from '../raft/supervisor.js';
import { cellSide, estimateEtcdMs, etcdComparisonRows, etcdMarkdown, runEtcdSection, type EtcdCellRecord } from './etcd.js';
import { failoverDistribution } from './failover.js';
import type { TradeoffIo, TradeoffSettings } from './types.js';
import { ballotBin, tinySettings as tinyRun } from './test-helpers.js';

/** Settings of a tiny run of the etcd section; each test overrides what it looks at. */
function tinySettings(overrides: Partial<TradeoffSettings> = {}): TradeoffSettings {
  return tinyRun({ sections: ['etcd'], heartbeatMs: 30, electionTimeoutMs: 300, etcd: true, etcdFailoverKills: 1, ...overrides });
}

function result(ackedPerSec: number, p50Ms: number, p99Ms: number, errors = 0): ClosedLoopResult {
  return {
    concurrency: 2,
    measuredMs: 1000,
    acked: ackedPerSec,
    ackedPerSec,
    errors,
    errorsByCode: errors > 0 ? { HTTP_503: errors } : {},
    latency: { count: ackedPerSec, minMs: p50Ms / 2, p50Ms, p90Ms: p99Ms, p99Ms, maxMs: p99Ms, meanMs: p50Ms },
    clientCpuMs: 10,
    undrained: 0,
  };
}

const rec = (system: 'ballot' | 'etcd', metric: EtcdCellRecord['metric'], round: number, r: ClosedLoopResult): EtcdCellRecord => ({
  system,
  metric,
  round,
  result: r,
  loadAverage1m: 1,
});

describe('etcd comparison figures', () => {
  it('takes medians across the rounds that measured and sums errors over all', () => {
    const records = [
      rec('ballot', 'put', 1, result(1000, 2, 9)),
      rec('ballot', 'put', 2, result(3000, 4, 7, 2)),
      rec('ballot', 'put', 3, result(2000, 3, 8)),
      rec('ballot', 'put', 4, failedResult(2, 'CELL_FAILED')),
    ];
    expect(cellSide(records, 'ballot', 'put')).toEqual({ opsPerSec: 2000, p50Ms: 3, p99Ms: 8, errors: 3 });
    expect(cellSide(records, 'etcd', 'put')).toEqual({ opsPerSec: null, p50Ms: null, p99Ms: null, errors: 0 });
  });

  it('rows: ops/s ratio for operations, p50 ratio for failover', () => {
    const records = [
      rec('ballot', 'put', 1, result(500, 4, 10)),
      rec('etcd', 'put', 1, result(1000, 2, 5)),
      rec('ballot', 'linearizable-get', 1, result(3000, 1, 3)),
      rec('etcd', 'linearizable-get', 1, result(2000, 1, 3)),
      rec('ballot', 'serializable-get', 1, result(4000, 1, 2)),
    ];
    const ok = (ms: number) => ({ ok: true as const, killed: 'x', ms });
    const rows = etcdComparisonRows(records, { ballot: failoverDistribution([ok(600)]), etcd: failoverDistribution([ok(400)]) });
    expect(rows.map((r) => r.metric)).toEqual(['put', 'linearizable-get', 'serializable-get', 'failover']);
    expect(rows[0]?.ratio).toBeCloseTo(0.5);
    expect(rows[1]?.ratio).toBeCloseTo(1.5);
    expect(rows[2]?.ratio).toBeNull(); // etcd's cell missing
    expect(rows[3]?.ratio).toBeCloseTo(1.5);
    expect(rows[3]?.ballot.opsPerSec).toBeNull();
    expect(etcdComparisonRows(records, null)).toHaveLength(3);
    const md = etcdMarkdown(rows, { version: '3.4.23', rounds: 1, settings: tinySettings(), failoverKills: 1 });
    expect(md).toContain('| put | 500 | 4 | 10 | 1,000 | 2 | 5 | 0.50x (ops/s) |');
    expect(md).toContain('| failover (SIGKILL leader -> first write) | n/a | 600 | 600 | n/a | 400 | 400 | 1.50x (p50) |');
  });

  it('estimates nothing without etcd and more with more rounds or kills', () => {
    expect(estimateEtcdMs(tinySettings({ etcd: false }))).toBe(0);
    expect(estimateEtcdMs(tinySettings({ quick: false }))).toBeGreaterThan(estimateEtcdMs(tinySettings()));
    expect(estimateEtcdMs(tinySettings({ etcdFailoverKills: 5 }))).toBeGreaterThan(estimateEtcdMs(tinySettings()));
  });
});

describe('etcd section, real', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const setup = (): TradeoffIo => {
    const supervisor = new Supervisor();
    const workDir = mkdtempSync(join(tmpdir(), 'ballot-tradeoffs-etcd-'));
    const progress = new Progress();
    cleanups.push(async () => {
      progress.stop();
      await supervisor.stopAll(1000);
      rmSync(workDir, { recursive: true, force: true });
    });
    return { progress, supervisor, workDir, parentPid: process.pid };
  };

  it('says "skipped" without etcd (a missing binary is not an error)', async () => {
    const io = setup();
    const missing = await runEtcdSection(tinySettings({ etcdBin: join(io.workDir, 'no-such-etcd') }), io);
    expect(missing.found).toBe(false);
    expect(missing.markdown).toMatch(/^skipped: etcd not installed/);
    const off = await runEtcdSection(tinySettings({ etcd: false }), io);
    expect(off.markdown).toMatch(/^skipped: --no-etcd/);
  });

  it(
    'measures put, linearizable and serializable get and failover on both, with ratios (or says etcd is missing)',
    async () => {
      expect(existsSync(ballotBin), `${ballotBin} is missing: run npm run build`).toBe(true);
      const io = setup();
      const r = await runEtcdSection(tinySettings(), io);
      expect(io.supervisor.running()).toEqual([]);
      if (!existsSync('/usr/bin/etcd')) {
        // etcd is optional (apt-get install etcd-server): without it the section must say so, not fail.
        expect(r.found).toBe(false);
        expect(r.markdown).toMatch(/^skipped: etcd not installed/);
        return;
      }
      if (!r.found) throw new Error(r.reason);
      expect(r.rows.map((x) => x.metric)).toEqual(['put', 'linearizable-get', 'serializable-get', 'failover']);
      for (const row of r.rows) {
        expect(row.ballot.errors).toBe(0);
        expect(row.etcd.errors).toBe(0);
        expect(row.ratio).not.toBeNull();
        expect(row.ratio ?? 0).toBeGreaterThan(0);
        if (row.metric !== 'failover') expect(row.ballot.opsPerSec ?? 0).toBeGreaterThan(0);
      }
      expect(r.markdown).toContain(`etcd ${r.version}`);
      process.stderr.write(`etcd tiny run: ${JSON.stringify(r.rows)}\n`);
    },
    120_000,
  );
});
