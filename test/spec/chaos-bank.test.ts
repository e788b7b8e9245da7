// The bank workload: its check (pure) on generated and doctored histories, and short runs on a real cluster.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChaosCluster, defaultBin } from '../src/chaos/cluster.js';
import { useHeldCluster } from './chaos-cluster-helpers.js';
import { FileHistoryRecorder } from '../src/chaos/recorder.js';
import type { JsonValue, RecordedEvent, Workload, WorkloadContext, WorkloadVerdict } from '../src/chaos/types.js';
import { bankAccounts, bankWorkload, checkBank, BANK_INITIAL_BALANCE } from '../src/chaos/workloads/bank.js';
import { assertProperty } from './checker-helpers.js';

const ACCOUNTS = bankAccounts();
const TOTAL = ACCOUNTS.length * BANK_INITIAL_BALANCE;
const NODES = ['n1', 'n2', 'n3'];

type Cmd = { readonly kind: 'transfer'; readonly process: number; readonly from: number; readonly to: number; readonly amount: number; readonly outcome: 'ok' | 'fail' | 'info' } | { readonly kind: 'read'; readonly process: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({
    kind: fc.constant('transfer' as const),
    process: fc.nat({ max: 5 }),
    from: fc.nat({ max: ACCOUNTS.length - 1 }),
    to: fc.nat({ max: ACCOUNTS.length - 1 }),
    amount: fc.integer({ min: 1, max: 5 }),
    outcome: fc.constantFrom('ok' as const, 'ok' as const, 'fail' as const, 'info' as const),
  }),
  fc.record({ kind: fc.constant('read' as const), process: fc.nat({ max: 5 }) }),
);

/**
 * A history of a correct bank: commands run one after another on a sequential store; an info
 * transfer takes effect or not (decided by its amount's parity); reads see the current state.
 * Processes that saw `info` go on as new processes, as the recorder's workers do.
 */
function bankHistory(cmds: readonly Cmd[]): RecordedEvent[] {
  const balances = ACCOUNTS.map(() => BANK_INITIAL_BALANCE);
  const events: RecordedEvent[] = [];
  let time = 0;
  const alias = new Map<number, number>();
  let fresh = 100;
  for (const c of cmds) {
    const process = alias.get(c.process) ?? c.process;
    const node = NODES[c.process % NODES.length] as string;
    const at = (): number => (time += 1_000_000);
    if (c.kind === 'read') {
      events.push({ process, type: 'invoke', f: 'read', key: 'bank/', value: null, time: at(), node });
      const seen: Record<string, JsonValue> = {};
      ACCOUNTS.forEach((a, i) => (seen[a] = balances[i] as number));
      events.push({ process, type: 'ok', f: 'read', key: 'bank/', value: seen, time: at(), node });
      continue;
    }
    const value = { from: ACCOUNTS[c.from] as string, to: ACCOUNTS[c.to] as string, amount: c.amount };
    events.push({ process, type: 'invoke', f: 'transfer', key: `${value.from},${value.to}`, value, time: at(), node });
    const possible = c.from !== c.to && (balances[c.from] as number) >= c.amount;
    const applied = possible && (c.outcome === 'ok' || (c.outcome === 'info' && c.amount % 2 === 0));
    if (applied) {
      balances[c.from] = (balances[c.from] as number) - c.amount;
      balances[c.to] = (balances[c.to] as number) + c.amount;
    }
    const type = !possible ? 'fail' : c.outcome;
    events.push({ process, type, f: 'transfer', key: `${value.from},${value.to}`, value, time: at(), node, ...(type === 'ok' ? {} : { error: 'TIMEOUT: etcdserver: request timed out' }) });
    if (type === 'info') alias.set(c.process, fresh++);
  }
  return events;
}

const okReadIndexes = (events: readonly RecordedEvent[]): number[] =>
  events.flatMap((e, i) => (e.type === 'ok' && e.f === 'read' ? [i] : []));

/** A copy of `events` with the ok read at `index` seeing `value` instead. */
function doctor(events: readonly RecordedEvent[], index: number, value: JsonValue): RecordedEvent[] {
  return events.map((e, i) => (i === index ? { ...e, value } : e));
}

describe('checkBank', () => {
  it('passes a clean history and counts its reads and transfers', () => {
    const events = bankHistory([
      { kind: 'read', process: 0 },
      { kind: 'transfer', process: 1, from: 0, to: 1, amount: 5, outcome: 'ok' },
      { kind: 'transfer', process: 2, from: 2, to: 3, amount: 4, outcome: 'info' },
      { kind: 'transfer', process: 0, from: 3, to: 4, amount: 1, outcome: 'fail' },
      { kind: 'read', process: 1 },
    ]);
    const r = checkBank(events, { accounts: ACCOUNTS, total: TOTAL });
    expect(r.valid).toBe(true);
    expect(r.readsChecked).toBe(2);
    expect(r.transfers).toEqual({ ok: 1, fail: 1, info: 1 });
    expect(r.anomalyCount).toBe(0);
  });

  it('names the operation, process, node and time of a read with the wrong total', () => {
    const events = bankHistory([{ kind: 'transfer', process: 4, from: 0, to: 1, amount: 5, outcome: 'ok' }, { kind: 'read', process: 4 }]);
    const i = okReadIndexes(events)[0] as number;
    const bad = doctor(events, i, { 'bank/0': 95, 'bank/1': 100, 'bank/2': 100, 'bank/3': 100, 'bank/4': 100 });
    const r = checkBank(bad, { accounts: ACCOUNTS, total: TOTAL });
    expect(r.valid).toBe(false);
    expect(r.anomalyCount).toBe(1);
    expect(r.anomalies[0]).toBe(
      `read by process 4 on n2 at ${((events[i] as RecordedEvent).time / 1e9).toFixed(3)} s (history line ${i + 1}): total 495, expected 500 (saw bank/0=95 bank/1=100 bank/2=100 bank/3=100 bank/4=100)`,
    );
  });

  it('finds a negative balance even when the total holds, and a missing or unexpected account', () => {
    const events = bankHistory([{ kind: 'read', process: 0 }]);
    const i = okReadIndexes(events)[0] as number;
    const negative = checkBank(doctor(events, i, { 'bank/0': -1, 'bank/1': 101, 'bank/2': 100, 'bank/3': 100, 'bank/4': 100 }), { accounts: ACCOUNTS, total: TOTAL });
    expect(negative.valid).toBe(false);
    expect(negative.anomalies[0]).toContain('negative bank/0=-1');
    const missing = checkBank(doctor(events, i, { 'bank/0': 200, 'bank/1': 100, 'bank/2': 100, 'bank/3': 100 }), { accounts: ACCOUNTS, total: TOTAL });
    expect(missing.anomalies[0]).toContain('missing bank/4');
    const extra = checkBank(doctor(events, i, { 'bank/0': 100, 'bank/1': 100, 'bank/2': 100, 'bank/3': 100, 'bank/4': 50, 'bank/9': 50 }), { accounts: ACCOUNTS, total: TOTAL });
    expect(extra.anomalies[0]).toContain('unexpected bank/9');
    const garbage = checkBank(doctor(events, i, 'not a map'), { accounts: ACCOUNTS, total: TOTAL });
    expect(garbage.valid).toBe(false);
    expect(garbage.anomalies[0]).toContain('is not {account: balance}');
  });

  it('labels final reads, and is unknown when a node has no ok final read', () => {
    const events = bankHistory([{ kind: 'transfer', process: 0, from: 1, to: 2, amount: 3, outcome: 'ok' }, { kind: 'read', process: 0 }, { kind: 'read', process: 1 }]);
    const finalFromIndex = 3; // the two reads (on n1 and n2)
    const ok = checkBank(events, { accounts: ACCOUNTS, total: TOTAL, finalFromIndex, finalNodes: ['n1', 'n2'] });
    expect(ok.valid).toBe(true);
    const missing = checkBank(events, { accounts: ACCOUNTS, total: TOTAL, finalFromIndex, finalNodes: ['n1', 'n2', 'n3'] });
    expect(missing.valid).toBe('unknown');
    expect(missing.checks.find((c) => c.name === 'bank-final-reads')?.summary).toBe('no ok final read from n3');
    const last = okReadIndexes(events).at(-1) as number;
    const bad = checkBank(doctor(events, last, { 'bank/0': 100 }), { accounts: ACCOUNTS, total: TOTAL, finalFromIndex, finalNodes: ['n1', 'n2'] });
    expect(bad.valid).toBe(false);
    expect(bad.anomalies[0]?.startsWith('final read by process 1 on n2')).toBe(true);
  });

  it('reports a completion without an invoke', () => {
    const r = checkBank([{ process: 3, type: 'ok', f: 'read', key: 'bank/', value: {}, time: 5 }], { accounts: ACCOUNTS, total: TOTAL });
    expect(r.valid).toBe(false);
    expect(r.anomalies[0]).toContain('without an open invoke');
  });

  it('property: generated histories of a correct bank pass; any doctored read fails and is named', () => {
    assertProperty(
      fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 60 }), fc.nat(), fc.nat({ max: ACCOUNTS.length - 1 }), fc.integer({ min: -300, max: 300 }).filter((d) => d !== 0), (cmds, pick, account, delta) => {
        const events = bankHistory([...cmds, { kind: 'read', process: pick % 6 }]);
        expect(checkBank(events, { accounts: ACCOUNTS, total: TOTAL }).valid).toBe(true);
        const reads = okReadIndexes(events);
        const i = reads[pick % reads.length] as number;
        const seen = { ...((events[i] as RecordedEvent).value as Record<string, number>) };
        const name = ACCOUNTS[account] as string;
        seen[name] = (seen[name] as number) + delta;
        const r = checkBank(doctor(events, i, seen), { accounts: ACCOUNTS, total: TOTAL });
        expect(r.valid).toBe(false);
        expect(r.anomalyCount).toBe(1);
        expect(r.anomalies[0]).toContain(`process ${(events[i] as RecordedEvent).process} on ${(events[i] as RecordedEvent).node}`);
        expect(r.anomalies[0]).toContain(`history line ${i + 1}`);
      }),
      200,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The workload on a real 3-member cluster (kv serve processes behind the proxy network), no faults.

const held = useHeldCluster();

/** setup, run for runMs, final reads, check: as the runner does. */
async function runWorkload(workload: Workload, runMs: number): Promise<{ verdict: WorkloadVerdict; recorder: FileHistoryRecorder; ctx: WorkloadContext }> {
  expect(existsSync(defaultBin()), `${defaultBin()} is missing: run npm run build`).toBe(true);
  const root = (held.root = mkdtempSync(join(tmpdir(), 'ballot-chaos-bank-')));
  const c = await ChaosCluster.start({
    nodes: 3, outDir: root, heartbeatIntervalMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 2000,
    readMode: 'read-index', unsafeStaleReads: false, unsafeNoFsync: false, debugClock: false,
  });
  held.cluster = c;
  await c.waitReady(30_000);
  const recorder = new FileHistoryRecorder(join(root, 'history.jsonl'));
  const abort = new AbortController();
  const notes: string[] = [];
  const ctx: WorkloadContext = {
    endpoints: c.endpoints, names: c.names, concurrency: 6, ratePerSec: 150, seed: 5, readMode: 'linearizable',
    requestTimeoutMs: 2000, recorder, signal: abort.signal, outDir: root, log: (m) => notes.push(m),
  };
  await workload.setup(ctx);
  recorder.start();
  const running = workload.run(ctx);
  await new Promise((r) => setTimeout(r, runMs));
  abort.abort();
  await running;
  await workload.finalReads(ctx);
  await recorder.close();
  return { verdict: await workload.check(ctx, 30_000), recorder, ctx };
}

describe('bank workload (real cluster)', () => {
  it('a 3 s run is valid; the same history with one read doctored is not', async () => {
    const { verdict, recorder, ctx } = await runWorkload(bankWorkload(), 3000);
    expect(verdict.anomalies).toEqual([]);
    expect(verdict.valid).toBe(true);
    expect(verdict.checks.map((c) => [c.name, c.valid])).toEqual([['bank-total', true], ['bank-final-reads', true]]);
    const events = recorder.events;
    const okTransfers = events.filter((e) => e.f === 'transfer' && e.type === 'ok').length;
    const reads = okReadIndexes(events);
    expect(okTransfers).toBeGreaterThan(10);
    expect(reads.length).toBeGreaterThan(10);
    // The file is the same history.
    const lines = readFileSync(join(ctx.outDir, 'history.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l) as RecordedEvent)).toEqual(events);
    // The final reads (one per node) see what the ok transfers left, and every read saw 500.
    for (const i of reads) {
      const seen = (events[i] as RecordedEvent).value as Record<string, number>;
      expect(Object.values(seen).reduce((a, b) => a + b, 0)).toBe(TOTAL);
    }
    // Doctored: one read sees 1 more in bank/2 (a write from nowhere).
    const i = reads[Math.floor(reads.length / 2)] as number;
    const seen = { ...((events[i] as RecordedEvent).value as Record<string, number>) };
    seen['bank/2'] = (seen['bank/2'] as number) + 1;
    const bad = checkBank(doctor(events, i, seen), { accounts: ACCOUNTS, total: TOTAL });
    expect(bad.valid).toBe(false);
    expect(bad.anomalies).toHaveLength(1);
    expect(bad.anomalies[0]).toContain(`total ${TOTAL + 1}, expected ${TOTAL}`);
    expect(bad.anomalies[0]).toContain(`process ${(events[i] as RecordedEvent).process} on ${(events[i] as RecordedEvent).node}`);
  });
});
