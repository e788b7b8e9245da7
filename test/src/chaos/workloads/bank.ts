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

import type { JsonValue, RecordedEvent, WorkloadVerdict } from '../types.js';

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
