// The bank workload (Jepsen's bank test): money moves between accounts in transactions, and every
// read must see the same total. A lost or half-applied transfer, or a read of a state no
// transaction produced, shows up as a read whose balances do not sum to the total.
//
//   setup     accounts "bank/0".."bank/4", 100 each (total 500), in one txn
//   transfer  read both accounts (one range over the prefix), then one txn:
//               compare mod_revision of both unchanged -> put both new balances
//             recorded f "transfer", value {from, to, amount} (amount 1..5; skipped, as a fail,
//             when it would make `from` negative; a txn whose compare failed did not happen: fail)
//   read      one range over the prefix, recorded f "read", ok value {account: balance}
//   final     after the faults heal, one linearizable read on every node (retried until ok)
//
// The check (checkBank) is pure: every ok read, final reads included, must have every account,
// no negative balance, and the total. Each anomaly line names the operation: its process, node,
// time and the balances it saw.

import type { JsonKvClient, KvEntry } from '../client.js';
import type { CallOutcome, JsonValue, RecordedEvent, Workload, WorkloadContext, WorkloadVerdict } from '../types.js';
import { clientsFor, pinnedWorkers, retryUntilOk, runPaced } from './common.js';

export const BANK_PREFIX = 'bank/';
export const BANK_ACCOUNT_COUNT = 5;
export const BANK_INITIAL_BALANCE = 100;
/** A transfer moves 1..BANK_MAX_TRANSFER. */
export const BANK_MAX_TRANSFER = 5;
/** Anomaly lines kept in a verdict (the count says how many in all). */
export const MAX_ANOMALY_LINES = 100;

/** The account keys "bank/0".."bank/{n-1}". */
export function bankAccounts(count = BANK_ACCOUNT_COUNT): readonly string[] {
  return Array.from({ length: count }, (_, i) => `${BANK_PREFIX}${i}`);
}

/** One check of a verdict. */
export type CheckLine = WorkloadVerdict['checks'][number];

/** Collects anomaly lines, keeping the first MAX_ANOMALY_LINES and counting all. */
export class AnomalyLog {
  readonly lines: string[] = [];
  count = 0;

  add(line: string): void {
    this.count++;
    if (this.lines.length < MAX_ANOMALY_LINES) this.lines.push(line);
  }
}

/** Seconds since the workload started, for people: "12.345 s". */
export function formatTimeNs(timeNs: number): string {
  return `${(timeNs / 1e9).toFixed(3)} s`;
}

/** "process 7 on n2 at 1.234 s (event 45)": where an operation ran, for anomaly lines. */
export function whereOf(invoke: RecordedEvent, done: RecordedEvent, eventIndex: number): string {
  const node = done.node ?? invoke.node;
  return `process ${invoke.process}${node === undefined ? '' : ` on ${node}`} at ${formatTimeNs(done.time)} (history line ${eventIndex + 1})`;
}

/** valid only if every check is; invalid if any is; else unknown. */
export function combineChecks(checks: readonly CheckLine[]): true | false | 'unknown' {
  if (checks.some((c) => c.valid === false)) return false;
  if (checks.some((c) => c.valid === 'unknown')) return 'unknown';
  return true;
}

/** An operation as recorded: its invoke, its completion (null while open) and the completion's line index. */
export interface PairedOp {
  readonly invoke: RecordedEvent;
  readonly done: RecordedEvent | null;
  /** Index of the completion in the history (of the invoke while open). */
  readonly index: number;
}

/**
 * Pairs each invoke with its process's next completion, in completion order (open operations last,
 * in invoke order). A completion without an open invoke is reported through `stray`.
 */
export function pairRecorded(events: readonly RecordedEvent[], stray: (event: RecordedEvent, index: number) => void = () => {}): PairedOp[] {
  const open = new Map<number, { readonly invoke: RecordedEvent; readonly index: number }>();
  const out: PairedOp[] = [];
  events.forEach((e, index) => {
    if (e.type === 'invoke') {
      open.set(e.process, { invoke: e, index });
      return;
    }
    const inv = open.get(e.process);
    if (inv === undefined) {
      stray(e, index);
      return;
    }
    open.delete(e.process);
    out.push({ invoke: inv.invoke, done: e, index });
  });
  for (const o of [...open.values()].sort((a, b) => a.index - b.index)) out.push({ invoke: o.invoke, done: null, index: o.index });
  return out;
}

/** The balances of an ok read's value, or a reason it is not {account: number}. */
function balancesOf(value: JsonValue): ReadonlyMap<string, number> | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `the value ${JSON.stringify(value)} is not {account: balance}`;
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(value as { readonly [k: string]: JsonValue })) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return `the balance of ${k} is ${JSON.stringify(v)}, not a number`;
    out.set(k, v);
  }
  return out;
}

export interface BankCheckOptions {
  readonly accounts: readonly string[];
  readonly total: number;
  /** Index in `events` where the final reads begin (they are checked like other reads, and counted). */
  readonly finalFromIndex?: number;
  /** Nodes that must each have an ok final read (a missing one makes the check unknown). */
  readonly finalNodes?: readonly string[];
}

export interface BankCheckResult {
  readonly valid: true | false | 'unknown';
  readonly checks: readonly CheckLine[];
  readonly anomalies: readonly string[];
  readonly anomalyCount: number;
  /** Ok reads checked (final ones included). */
  readonly readsChecked: number;
  readonly transfers: { readonly ok: number; readonly fail: number; readonly info: number };
}

/**
 * Checks a bank history: every ok read (final reads too) has every account and nothing else, no
 * negative balance, and the total. Pure: the same events give the same result.
 */
export function checkBank(events: readonly RecordedEvent[], opts: BankCheckOptions): BankCheckResult {
  const anomalies = new AnomalyLog();
  const expected = new Set(opts.accounts);
  const transfers = { ok: 0, fail: 0, info: 0 };
  let readsChecked = 0;
  let badReads = 0;
  const finalFrom = opts.finalFromIndex ?? Infinity;
  const finalOk = new Map<string, number>();
  let strays = 0;
  const paired = pairRecorded(events, (e, index) => {
    strays++;
    anomalies.add(`history line ${index + 1}: an "${e.type}" of ${e.f} on process ${e.process} without an open invoke`);
  });
  for (const { invoke, done, index } of paired) {
    if (invoke.f === 'transfer') {
      if (done === null || done.type === 'info') transfers.info++;
      else if (done.type === 'ok') transfers.ok++;
      else transfers.fail++;
      continue;
    }
    if (invoke.f !== 'read' || done === null || done.type !== 'ok') continue;
    readsChecked++;
    const node = done.node ?? invoke.node;
    if (index >= finalFrom && node !== undefined) finalOk.set(node, (finalOk.get(node) ?? 0) + 1);
    const what = `${index >= finalFrom ? 'final read' : 'read'} by ${whereOf(invoke, done, index)}`;
    const balances = balancesOf(done.value);
    if (typeof balances === 'string') {
      badReads++;
      anomalies.add(`${what}: ${balances}`);
      continue;
    }
    const problems: string[] = [];
    const missing = opts.accounts.filter((a) => !balances.has(a));
    if (missing.length > 0) problems.push(`missing ${missing.join(', ')}`);
    const extra = [...balances.keys()].filter((a) => !expected.has(a));
    if (extra.length > 0) problems.push(`unexpected ${extra.join(', ')}`);
    const negative = [...balances].filter(([, b]) => b < 0);
    if (negative.length > 0) problems.push(`negative ${negative.map(([a, b]) => `${a}=${b}`).join(', ')}`);
    let total = 0;
    for (const b of balances.values()) total += b;
    if (total !== opts.total) problems.push(`total ${total}, expected ${opts.total}`);
    if (problems.length > 0) {
      badReads++;
      const seen = [...balances].map(([a, b]) => `${a}=${b}`).join(' ');
      anomalies.add(`${what}: ${problems.join('; ')} (saw ${seen === '' ? 'no accounts' : seen})`);
    }
  }
  const checks: CheckLine[] = [
    {
      name: 'bank-total',
      valid: badReads === 0 && strays === 0,
      summary:
        badReads === 0
          ? `${readsChecked} ok reads, each with all ${opts.accounts.length} accounts summing to ${opts.total}, none negative`
          : `${badReads} of ${readsChecked} ok reads broke the invariant (total ${opts.total}, no negative balance, all accounts)`,
    },
  ];
  if (opts.finalNodes !== undefined) {
    const without = opts.finalNodes.filter((n) => !finalOk.has(n));
    checks.push({
      name: 'bank-final-reads',
      valid: without.length === 0 ? true : 'unknown',
      summary: without.length === 0 ? `a final read on each of ${opts.finalNodes.length} nodes` : `no ok final read from ${without.join(', ')}`,
    });
  }
  return { valid: combineChecks(checks), checks, anomalies: anomalies.lines, anomalyCount: anomalies.count, readsChecked, transfers };
}

// ---------------------------------------------------------------------------------------------
// The workload: clients on real members.

/** Seeds the workers' random streams apart from other workloads'. */
const BANK_SALT = 0xba4c;
/** Share of reads in the op mix (the rest are transfers). */
export const BANK_READ_SHARE = 0.5;
/** Bound of each setup step (opening the accounts, reading them back), retried within it. */
export const BANK_SETUP_TIMEOUT_MS = 12_000;

/** A balance as stored (decimal text), back to a number; anything else stays text (the check reports it). */
function balanceOf(text: string): JsonValue {
  return /^-?[0-9]{1,15}$/.test(text) ? Number(text) : text;
}

/** {account: balance} of a range answer. */
function balancesRead(entries: readonly KvEntry[]): { [account: string]: JsonValue } {
  const out: { [account: string]: JsonValue } = {};
  for (const e of entries) out[e.key] = balanceOf(e.value);
  return out;
}

/** The transfer's two reads and one txn, as one recorded operation (see the top of the file). */
async function transfer(client: JsonKvClient, serializable: boolean, from: string, to: string, amount: number): Promise<CallOutcome<JsonValue>> {
  const read = await client.range(BANK_PREFIX, { serializable });
  if (read.type !== 'ok') return read;
  const a = read.value.entries.find((e) => e.key === from);
  const b = read.value.entries.find((e) => e.key === to);
  if (a === undefined || b === undefined) return { type: 'fail', error: `SKIPPED: ${a === undefined ? from : to} is missing from the read` };
  const fromBalance = Number(a.value);
  const toBalance = Number(b.value);
  if (!Number.isSafeInteger(fromBalance) || !Number.isSafeInteger(toBalance)) {
    return { type: 'fail', error: `SKIPPED: unreadable balances ${from}=${JSON.stringify(a.value)} ${to}=${JSON.stringify(b.value)}` };
  }
  if (fromBalance < amount) return { type: 'fail', error: `SKIPPED: ${from} holds ${fromBalance}, less than ${amount}` };
  const r = await client.txn(
    [
      { key: from, target: 'mod', modRevision: a.modRevision },
      { key: to, target: 'mod', modRevision: b.modRevision },
    ],
    [
      { type: 'put', key: from, value: String(fromBalance - amount) },
      { type: 'put', key: to, value: String(toBalance + amount) },
    ],
  );
  if (r.type !== 'ok') return r;
  // A failed compare wrote nothing: the transfer certainly did not happen.
  if (!r.value.succeeded) return { type: 'fail', error: `CONFLICT: ${from} or ${to} changed since the read` };
  return { type: 'ok', value: { from, to, amount } };
}

class BankWorkload implements Workload {
  readonly name = 'bank' as const;
  readonly accounts = bankAccounts();
  readonly total = BANK_ACCOUNT_COUNT * BANK_INITIAL_BALANCE;
  /** Index of the first event of the final reads (Infinity until they start). */
  private finalFromIndex = Infinity;

  /** Opens the accounts in one txn, only if bank/0 does not exist yet (so a retry after an unknown outcome is safe). */
  async setup(ctx: WorkloadContext): Promise<void> {
    const clients = clientsFor(ctx);
    let attempt = 0;
    const first = this.accounts[0] as string;
    const opened = await retryUntilOk(
      async () => {
        const client = clients[attempt++ % clients.length] as JsonKvClient;
        return client.txn(
          [{ key: first, target: 'version', version: 0 }],
          this.accounts.map((key) => ({ type: 'put' as const, key, value: String(BANK_INITIAL_BALANCE) })),
        );
      },
      { timeoutMs: BANK_SETUP_TIMEOUT_MS, signal: ctx.signal },
    );
    if (opened.type !== 'ok') throw new Error(`bank setup: could not open the accounts: ${opened.error}`);
    // Check what is there now (a linearizable read): every account, the total.
    const read = await retryUntilOk(async () => (clients[attempt++ % clients.length] as JsonKvClient).range(BANK_PREFIX), {
      timeoutMs: BANK_SETUP_TIMEOUT_MS,
      signal: ctx.signal,
    });
    if (read.type !== 'ok') throw new Error(`bank setup: could not read the accounts back: ${read.error}`);
    const seen = balancesRead(read.value.entries);
    const sum = Object.values(seen).reduce<number>((s, v) => s + (typeof v === 'number' ? v : NaN), 0);
    if (this.accounts.some((a) => !(a in seen)) || sum !== this.total) {
      throw new Error(`bank setup: the accounts read back are ${JSON.stringify(seen)}, not ${this.accounts.length} summing to ${this.total}`);
    }
    ctx.log(`bank: ${this.accounts.length} accounts of ${BANK_INITIAL_BALANCE} (total ${this.total})`);
  }

  async run(ctx: WorkloadContext): Promise<void> {
    const serializable = ctx.readMode === 'serializable';
    const workers = pinnedWorkers(ctx, BANK_SALT);
    await runPaced(ctx, workers, async (w) => {
      if (w.random.chance(BANK_READ_SHARE)) {
        await w.perform('read', BANK_PREFIX, null, async () => {
          const r = await w.client.range(BANK_PREFIX, { serializable });
          return r.type === 'ok' ? { type: 'ok', value: balancesRead(r.value.entries) } : r;
        });
        return;
      }
      const n = this.accounts.length;
      const i = w.random.int(0, n - 1);
      const j = (i + w.random.int(1, n - 1)) % n; // never i
      const from = this.accounts[i] as string;
      const to = this.accounts[j] as string;
      const amount = w.random.int(1, BANK_MAX_TRANSFER);
      await w.perform('transfer', `${from},${to}`, { from, to, amount }, () => transfer(w.client, serializable, from, to, amount));
    });
  }

  /** One linearizable read on every node (each attempt recorded), retried until ok. */
  async finalReads(ctx: WorkloadContext): Promise<void> {
    this.finalFromIndex = ctx.recorder.events.length;
    const clients = clientsFor(ctx);
    await Promise.all(
      clients.map(async (client, i) => {
        const node = ctx.names[i] ?? `node${i}`;
        const process = ctx.recorder.newProcess();
        const r = await retryUntilOk(async () => {
          const op = ctx.recorder.invoke(process, 'read', BANK_PREFIX, null, node);
          const read = await client.range(BANK_PREFIX);
          const outcome: CallOutcome<JsonValue> = read.type === 'ok' ? { type: 'ok', value: balancesRead(read.value.entries) } : read;
          op.complete(outcome);
          return outcome;
        });
        if (r.type !== 'ok') ctx.log(`bank: no final read from ${node}: ${r.error}`);
      }),
    );
  }

  async check(ctx: WorkloadContext): Promise<WorkloadVerdict> {
    const r = checkBank(ctx.recorder.events, { accounts: this.accounts, total: this.total, finalFromIndex: this.finalFromIndex, finalNodes: ctx.names });
    const t = r.transfers;
    const summary =
      r.valid === true
        ? `bank ok: ${r.readsChecked} reads all saw ${this.total}; transfers ok ${t.ok}, fail ${t.fail}, info ${t.info}`
        : r.checks.filter((c) => c.valid !== true).map((c) => `${c.name}: ${c.summary}`).join('; ');
    return { valid: r.valid, checks: r.checks, summary, anomalies: r.anomalies, anomalyCount: r.anomalyCount };
  }
}

/** The bank workload (one instance per run: it remembers where its final reads begin). */
export function bankWorkload(): Workload {
  return new BankWorkload();
}
