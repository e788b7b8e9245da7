// bench tradeoffs — the price of consistency under faults. For each read mode (linearizable =
// ReadIndex, lease, serializable) one chaos run (issue 5's runChaos: real `ballot kv serve`
// processes behind fault-injecting proxies, the register workload, nemesis partition) with the
// SAME seed, so every mode meets the same partition schedule and the same operation mix. Per mode:
//
//   availability  ok / invoked, per fault window (and quiet stretch), and for the two partitions
//                 with a clear minority (partition-halves, partition-isolate-leader) separately on
//                 the minority side and the majority side, by the node each operation was sent to;
//   correctness   the checker's verdict (linearizability of the whole register history: an
//                 `invalid` verdict is the formal proof that some read was not linearizable), and
//                 the count of stale reads, computed directly from history.jsonl (countStaleReads).
//
// The schedule: nemeses partition AND clock, from the first seed at or after --seed whose schedule
// cuts off a leader whose clock runs slow (faultsSeedFor) and, when the run has room for more than
// one window, also has a plain minority partition. A partition alone cannot break lease reads (the
// cut-off leader's lease runs out before the majority can elect another leader); a leader whose
// clock runs slow keeps its lease for electionTimeout / rate of real time, and that is when lease
// reads go stale. Every mode meets that same schedule.
//
// A stale read (our definition, deliberately conservative): an ok read of key k returned value v,
// and before the read was invoked, some write of k that CERTAINLY came after the write of v had
// already completed ok. "Certainly after" is a fact of the history alone: B comes after A when A
// completed before B was invoked (real time), or when B is a compare-and-set that expected A's
// value (it saw A), or by a chain of those. Values are unique per key in the register workload, so
// a value names its write. Such a read returned a value that was already overwritten when it
// started: no linearization can explain it. Reads of a value no write produced are counted apart
// ("unexplained"). Concurrent writes are never used as evidence, so the count is a lower bound.
//
// What to expect (Raft thesis §6.4): linearizable reads are refused on the minority side (no
// quorum to confirm leadership) and never stale; serializable reads stay available on the
// minority side and return stale values; lease reads are as fast as serializable ones on the
// leader and are safe while clocks run at the same rate (a partition alone does not break them;
// clock drift does, see `ballot chaos --nemesis clock`).

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pairOperations, parseHistory, scheduleFaults, type AppliedWindow, type ChaosIo, type ChaosOptions, type ChaosResults, type JsonValue, type Operation } from '@ballot/chaos';
import {
  TRADEOFF_READ_MODES,
  type FaultsModeResult,
  type FaultsSectionResult,
  type FaultWindowAvailability,
  type OutcomeTally,
  type TradeoffIo,
  type TradeoffReadMode,
  type TradeoffSettings,
} from './types.js';

// ---- stale reads (pure) ----

/** One stale read, for people: what it returned and which completed write had already replaced it. */
export interface StaleRead {
  readonly key: string;
  readonly process: number;
  /** 1-based line of the read's invoke in history.jsonl. */
  readonly invokeLine: number;
  readonly invokeTimeNs: number;
  readonly value: JsonValue;
  /** The value of the earliest-completing write certainly after the one the read saw. */
  readonly overwrittenBy: JsonValue;
  /** Line of that write's ok completion (before the read's invoke). */
  readonly overwriteLine: number | null;
}

export interface StaleReadCount {
  /** ok register reads examined. */
  readonly reads: number;
  readonly stale: number;
  /** ok reads of a value no write (and not the initial null) produced: another anomaly, not counted as stale. */
  readonly unexplained: number;
  /** The stale reads (at most MAX_STALE_LISTED; `stale` counts them all), in invoke order. */
  readonly staleReads: readonly StaleRead[];
}

/** Bound on the stale reads listed (the count goes on past it). */
export const MAX_STALE_LISTED = 10_000;

type Write = Extract<Operation, { readonly f: 'write' } | { readonly f: 'cas' }>;
type Read = Extract<Operation, { readonly f: 'read' }>;

const valueKey = (v: JsonValue): string => JSON.stringify(v);
const producedValue = (w: Write): JsonValue => (w.f === 'write' ? w.value : w.next);

/** Earliest ok completion among the writes certainly after `from` (see the header); Infinity when none. */
interface Overwrite {
  readonly completeIndex: number;
  readonly write: Write | null;
}

/**
 * Counts stale reads in a register history (the checker's pairOperations output: failed operations
 * already dropped, indeterminate ones with completeIndex Infinity). Operations of other functions
 * are ignored. Pure.
 */
export function countStaleReads(ops: readonly Operation[]): StaleReadCount {
  const byKey = new Map<string, { writes: Write[]; reads: Read[] }>();
  for (const op of ops) {
    if (op.f !== 'read' && op.f !== 'write' && op.f !== 'cas') continue;
    let entry = byKey.get(op.key);
    if (entry === undefined) {
      entry = { writes: [], reads: [] };
      byKey.set(op.key, entry);
    }
    if (op.f === 'read') {
      if (op.status === 'ok') entry.reads.push(op);
    } else entry.writes.push(op);
  }

  let reads = 0;
  let unexplained = 0;
  let stale = 0;
  const listed: StaleRead[] = [];
  for (const [key, { writes, reads: keyReads }] of byKey) {
    const producers = new Map<string, Write[]>();
    for (const w of writes) {
      const k = valueKey(producedValue(w));
      const list = producers.get(k);
      if (list === undefined) producers.set(k, [w]);
      else list.push(w);
    }
    // cas successors: a cas that expected value v (it saw v, so it came after v's write when v has one writer).
    const casExpecting = new Map<string, Write[]>();
    for (const w of writes) {
      if (w.f !== 'cas') continue;
      const k = valueKey(w.expected);
      const list = casExpecting.get(k);
      if (list === undefined) casExpecting.set(k, [w]);
      else list.push(w);
    }

    // Writes by invoke position: the real-time successors of an ok write x are a suffix of this list
    // (every write invoked after x completed).
    const byInvoke = [...writes].sort((p, q) => p.invokeIndex - q.invokeIndex);
    const memo = new Map<Write, Overwrite>();
    /**
     * Everything certainly after `start`, breadth first: O(writes) per start, since the real-time
     * part of the reached set is one suffix of byInvoke that only grows (its bound is the earliest
     * completion reached so far). Returns the earliest ok completion reached whose value differs.
     */
    const overwriteOf = (start: Write): Overwrite => {
      const cached = memo.get(start);
      if (cached !== undefined) return cached;
      const startValue = valueKey(producedValue(start));
      let best: Overwrite = { completeIndex: Infinity, write: null };
      const seen = new Set<Write>([start]);
      const queue: Write[] = [start];
      let suffixStart = byInvoke.length; // byInvoke[suffixStart..] are reached
      const reach = (y: Write): void => {
        if (seen.has(y)) return;
        seen.add(y);
        queue.push(y);
        if (y.status === 'ok' && valueKey(producedValue(y)) !== startValue && y.completeIndex < best.completeIndex) {
          best = { completeIndex: y.completeIndex, write: y };
        }
      };
      for (let head = 0; head < queue.length; head++) {
        const x = queue[head] as Write;
        // Real time: x completed (ok) before y was invoked.
        if (x.status === 'ok') {
          while (suffixStart > 0 && (byInvoke[suffixStart - 1] as Write).invokeIndex > x.completeIndex) {
            suffixStart--;
            reach(byInvoke[suffixStart] as Write);
          }
        }
        // A cas that saw x's value, when x alone wrote that value.
        const xv = valueKey(producedValue(x));
        if ((producers.get(xv)?.length ?? 0) === 1) for (const y of casExpecting.get(xv) ?? []) reach(y);
      }
      memo.set(start, best);
      return best;
    };
    // The initial (absent) value: every write comes after it; the earliest ok completion of a non-null write replaces it.
    const initialOverwrite = (): Overwrite => {
      let best: Overwrite = { completeIndex: Infinity, write: null };
      for (const w of writes) {
        if (w.status === 'ok' && producedValue(w) !== null && w.completeIndex < best.completeIndex) best = { completeIndex: w.completeIndex, write: w };
      }
      return best;
    };
    let initial: Overwrite | null = null;

    for (const r of keyReads) {
      reads++;
      const v = r.output === undefined ? null : r.output;
      const ps = producers.get(valueKey(v)) ?? [];
      // Every possible writer of v must have been overwritten (v is stale whichever write it came from).
      let latest: Overwrite = { completeIndex: -Infinity, write: null };
      if (ps.length === 0) {
        if (v !== null) {
          unexplained++;
          continue;
        }
        initial ??= initialOverwrite();
        latest = initial;
      } else {
        for (const p of ps) {
          const o = overwriteOf(p);
          if (o.completeIndex > latest.completeIndex) latest = o;
        }
        if (v === null) {
          // null is also the initial value: it too must have been overwritten.
          initial ??= initialOverwrite();
          if (initial.completeIndex > latest.completeIndex) latest = initial;
        }
      }
      if (latest.completeIndex < r.invokeIndex && latest.write !== null) {
        stale++;
        if (listed.length < MAX_STALE_LISTED) {
          listed.push({
            key,
            process: r.process,
            invokeLine: r.invokeLine,
            invokeTimeNs: r.invokeTimeNs,
            value: v,
            overwrittenBy: producedValue(latest.write),
            overwriteLine: latest.write.completeLine,
          });
        }
      }
    }
  }
  listed.sort((a, b) => a.invokeLine - b.invokeLine);
  return { reads, stale, unexplained, staleReads: listed };
}

// ---- availability per window and side (pure) ----

/** One operation of history.jsonl as the availability count needs it. */
export interface SidedOp {
  readonly f: string;
  readonly node: string | null;
  readonly invokeMs: number;
  readonly outcome: 'ok' | 'fail' | 'info';
}

/** Pairs history.jsonl's events by process (an invoke with no completion is info). Tolerates blank lines. */
export function sidedOps(historyText: string): SidedOp[] {
  const out: SidedOp[] = [];
  const open = new Map<number, { readonly f: string; readonly node: string | null; readonly invokeMs: number }>();
  for (const line of historyText.split('\n')) {
    if (line.trim() === '') continue;
    const e = JSON.parse(line) as { process: number; type: string; f: string; time: number; node?: string };
    if (e.type === 'invoke') {
      const prior = open.get(e.process);
      if (prior !== undefined) out.push({ ...prior, outcome: 'info' });
      open.set(e.process, { f: e.f, node: e.node ?? null, invokeMs: e.time / 1e6 });
      continue;
    }
    const inv = open.get(e.process);
    if (inv === undefined) continue;
    open.delete(e.process);
    out.push({ ...inv, outcome: e.type === 'ok' ? 'ok' : e.type === 'fail' ? 'fail' : 'info' });
  }
  for (const inv of open.values()) out.push({ ...inv, outcome: 'info' });
  return out;
}

/** The nodes cut off as a minority by a partition window (the isolated leader, the smaller half); null for the others. */
export function minorityOf(w: Pick<AppliedWindow, 'kind' | 'nodes'>, nodeCount: number): readonly string[] | null {
  if (w.kind === 'partition-isolate-leader') return w.nodes;
  if (w.kind === 'partition-halves' && w.nodes.length > 0 && 2 * w.nodes.length < nodeCount) return w.nodes;
  return null;
}

export const emptyTally = (): { ok: number; fail: number; info: number } => ({ ok: 0, fail: 0, info: 0 });
export const availabilityOf = (t: OutcomeTally): number | null => {
  const n = t.ok + t.fail + t.info;
  return n === 0 ? null : t.ok / n;
};

export interface SideTallies {
  readonly reads: OutcomeTally;
  readonly writes: OutcomeTally;
}

/** A window with the counts per side (reads, and writes = every other function) and the stale reads invoked in it. */
export interface FaultWindowDetail extends FaultWindowAvailability {
  readonly minority: readonly string[] | null;
  readonly minoritySide: SideTallies | null;
  readonly majoritySide: SideTallies | null;
  readonly staleReads: number;
}

export interface WindowInput {
  readonly id: number;
  readonly kind: string;
  readonly description: string;
  readonly startMs: number;
  readonly endMs: number;
}

/**
 * Per window (the runner's tiling of the run: fault windows and quiet stretches): outcome counts of
 * the operations invoked in it, overall and per side for partitions with a minority, and the stale
 * reads invoked in it. An op belongs to the window with startMs <= invokeMs < endMs (the last
 * window also takes its end instant). Pure.
 */
export function windowAvailability(
  windows: readonly WindowInput[],
  applied: readonly Pick<AppliedWindow, 'id' | 'kind' | 'nodes'>[],
  nodeCount: number,
  ops: readonly SidedOp[],
  staleInvokeMs: readonly number[],
): FaultWindowDetail[] {
  const indexOf = (ms: number): number => {
    for (let i = 0; i < windows.length; i++) {
      const w = windows[i] as WindowInput;
      if (ms >= w.startMs && (ms < w.endMs || (i === windows.length - 1 && ms <= w.endMs))) return i;
    }
    return -1;
  };
  const minorities = windows.map((w) => {
    if (w.kind === 'quiet') return null;
    const a = applied.find((x) => x.id === w.id);
    return a === undefined ? null : minorityOf(a, nodeCount);
  });
  const all = windows.map(emptyTally);
  const sides = windows.map(() => ({
    minority: { reads: emptyTally(), writes: emptyTally() },
    majority: { reads: emptyTally(), writes: emptyTally() },
  }));
  const stale = windows.map(() => 0);
  for (const op of ops) {
    const i = indexOf(op.invokeMs);
    if (i < 0) continue;
    (all[i] as OutcomeTallyMut)[op.outcome]++;
    const minority = minorities[i];
    if (minority === null || minority === undefined || op.node === null) continue;
    const side = sides[i]?.[minority.includes(op.node) ? 'minority' : 'majority'];
    if (side !== undefined) (op.f === 'read' ? side.reads : side.writes)[op.outcome]++;
  }
  for (const ms of staleInvokeMs) {
    const i = indexOf(ms);
    if (i >= 0) stale[i] = (stale[i] ?? 0) + 1;
  }
  const sum = (a: OutcomeTally, b: OutcomeTally): OutcomeTally => ({ ok: a.ok + b.ok, fail: a.fail + b.fail, info: a.info + b.info });
  return windows.map((w, i) => {
    const minority = minorities[i] ?? null;
    const s = sides[i] as { minority: SideTallies; majority: SideTallies };
    const counts = all[i] as OutcomeTally;
    return {
      id: w.id,
      kind: w.kind,
      description: w.description,
      startMs: w.startMs,
      endMs: w.endMs,
      counts,
      availability: availabilityOf(counts),
      minorityAvailability: minority === null ? null : availabilityOf(sum(s.minority.reads, s.minority.writes)),
      majorityAvailability: minority === null ? null : availabilityOf(sum(s.majority.reads, s.majority.writes)),
      minority,
      minoritySide: minority === null ? null : s.minority,
      majoritySide: minority === null ? null : s.majority,
      staleReads: stale[i] ?? 0,
    };
  });
}

type OutcomeTallyMut = { ok: number; fail: number; info: number };

// ---- the section ----

export interface FaultsModeDetail extends FaultsModeResult {
  readonly windows: readonly FaultWindowDetail[];
  /** ok reads examined for staleness, reads of values nobody wrote, a few stale reads as examples. */
  readonly readsChecked: number;
  readonly unexplainedReads: number;
  readonly staleExamples: readonly StaleRead[];
  /** Over all fault windows with a minority: reads and writes per side. */
  readonly minoritySide: SideTallies | null;
  readonly majoritySide: SideTallies | null;
  /** The chaos run's folder (history.jsonl, report.html, timeline.html), under the bench's work dir. */
  readonly outDir: string;
}

export interface FaultsSectionDetail extends FaultsSectionResult {
  readonly modes: readonly FaultsModeDetail[];
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

/** Timing of the chaos clusters (the chaos runner's defaults): short, so a partition elects a new leader well within a window. */
export const FAULTS_TIMING = { heartbeatIntervalMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 1000 } as const;
/** Register keys of the workload (the chaos runner's default). */
export const FAULTS_KEYS = 10;

/** The nemeses of the faults section (see the header: a partition alone cannot show lease reads' price). */
export const FAULTS_NEMESES = ['partition', 'clock'] as const;
/** How far past --seed faultsSeedFor looks. */
const FAULTS_SEED_SEARCH = 10_000;

/**
 * The seed the faults section runs: the first at or after settings.seed whose schedule has a
 * partition-isolate-leader window with a slowed leader clock, preferring one that also has a plain
 * minority partition (halves, or isolate-leader at normal speed). A pure function of the settings.
 */
export function faultsSeedFor(settings: TradeoffSettings): number {
  let drifted: number | null = null;
  for (let seed = settings.seed; seed < settings.seed + FAULTS_SEED_SEARCH; seed++) {
    const { windows } = scheduleFaults({ seed, durationMs: settings.faultsDurationMs, nodeCount: settings.faultsNodes, nemeses: FAULTS_NEMESES });
    const slowLeader = windows.some((w) => w.fault.kind === 'partition-isolate-leader' && w.fault.leaderClockRate !== undefined);
    if (!slowLeader) continue;
    const plain = windows.some((w) => w.fault.kind === 'partition-halves' || (w.fault.kind === 'partition-isolate-leader' && w.fault.leaderClockRate === undefined));
    if (plain) return seed;
    drifted ??= seed;
  }
  return drifted ?? settings.seed;
}

/** The chaos options of one read mode: only readMode and outDir differ between modes. */
export function chaosOptionsFor(settings: TradeoffSettings, readMode: TradeoffReadMode, outDir: string): ChaosOptions {
  return {
    nodes: settings.faultsNodes,
    workload: 'register',
    nemeses: FAULTS_NEMESES,
    durationMs: settings.faultsDurationMs,
    ratePerSec: settings.faultsRatePerSec,
    concurrency: settings.faultsConcurrency,
    seed: faultsSeedFor(settings),
    outDir,
    readMode,
    unsafeStaleReads: false,
    unsafeNoFsync: false,
    heartbeatIntervalMs: FAULTS_TIMING.heartbeatIntervalMs,
    electionTimeoutMs: FAULTS_TIMING.electionTimeoutMs,
    requestTimeoutMs: FAULTS_TIMING.requestTimeoutMs,
    checkBudgetMs: settings.quick ? 20_000 : 60_000,
    keys: FAULTS_KEYS,
  };
}

/** Start, leader, healing, final reads, check and stopping, per run (measured: ~3 s for 3 nodes and 6 s on 2 cores). */
const RUN_OVERHEAD_MS = 8000;
/** The chaos runner's own progress line (once a second) is passed on at most this often. */
const CHAOS_TICK_MS = 5000;

export function estimateFaultsMs(settings: TradeoffSettings): number {
  return TRADEOFF_READ_MODES.length * (settings.faultsDurationMs + RUN_OVERHEAD_MS);
}

const sumTally = (a: OutcomeTally, b: OutcomeTally): OutcomeTally => ({ ok: a.ok + b.ok, fail: a.fail + b.fail, info: a.info + b.info });
const sumSides = (sides: readonly SideTallies[]): SideTallies | null =>
  sides.length === 0
    ? null
    : sides.reduce((a, b) => ({ reads: sumTally(a.reads, b.reads), writes: sumTally(a.writes, b.writes) }), { reads: emptyTally(), writes: emptyTally() });

/** Everything a mode reports, from its chaos results and the files of its run. Pure. */
export function modeResult(
  readMode: TradeoffReadMode,
  results: Pick<ChaosResults, 'valid' | 'verdict' | 'ops' | 'counts' | 'windows' | 'error' | 'nodes'>,
  historyText: string,
  applied: readonly Pick<AppliedWindow, 'id' | 'kind' | 'nodes'>[],
  outDir: string,
): FaultsModeDetail {
  const ops = pairOperations(parseHistory(historyText));
  const staleCount = countStaleReads(ops);
  const windows = windowAvailability(results.windows, applied, results.nodes, sidedOps(historyText), staleCount.staleReads.map((s) => s.invokeTimeNs / 1e6));
  const faultWindows = windows.filter((w) => w.kind !== 'quiet');
  const inFaults = faultWindows.reduce((t, w) => sumTally(t, w.counts), emptyTally());
  return {
    readMode,
    valid: results.valid,
    verdictSummary: results.verdict.summary,
    staleReads: staleCount.stale,
    ops: results.ops,
    counts: results.counts,
    faultAvailability: availabilityOf(inFaults),
    windows,
    readsChecked: staleCount.reads,
    unexplainedReads: staleCount.unexplained,
    staleExamples: staleCount.staleReads.slice(0, 5),
    minoritySide: sumSides(faultWindows.flatMap((w) => (w.minoritySide === null ? [] : [w.minoritySide]))),
    majoritySide: sumSides(faultWindows.flatMap((w) => (w.majoritySide === null ? [] : [w.majoritySide]))),
    outDir,
    ...(results.error !== undefined ? { error: results.error } : {}),
  };
}

/** Parses nemesis.jsonl (the applied windows); an absent or empty file gives none. */
export function parseApplied(text: string): AppliedWindow[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AppliedWindow);
}

const pct = (a: number | null): string => (a === null ? 'n/a' : `${(100 * a).toFixed(a > 0 && a < 0.1 ? 1 : 0)}%`);
const verdictWord = (v: true | false | 'unknown'): string => (v === true ? 'linearizable' : v === false ? 'NOT linearizable' : 'unknown');
const sideCell = (s: SideTallies | null): string => (s === null ? 'n/a' : `${pct(availabilityOf(s.reads))} / ${pct(availabilityOf(s.writes))}`);

/** The section's markdown: a summary per mode, then the windows side by side. */
export function faultsMarkdown(section: Omit<FaultsSectionDetail, 'markdown'>): string {
  const lines = [
    `One chaos run per read mode (\`ballot chaos\`'s runner): ${section.nodes} \`kv serve\` members behind fault-injecting proxies, ` +
      `register workload (read 50%, write 25%, cas 25% over ${FAULTS_KEYS} keys), nemeses partition and clock, seed ${section.seed} (the first seed from --seed on whose schedule cuts off a leader whose clock runs slow), ` +
      `${(section.durationMs / 1000).toFixed(0)} s each; the same seed gives every mode the same partition schedule and operation mix. ` +
      `Heartbeat ${section.heartbeatMs} ms, election timeout ${section.electionTimeoutMs} ms, request timeout ${section.requestTimeoutMs} ms. ` +
      `Each client worker is pinned to one member, so the minority side gets traffic too.`,
    '',
    '| read mode | checker verdict | stale reads | ops | availability in fault windows | minority side, reads / writes | majority side, reads / writes |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...section.modes.map(
      (m) =>
        `| ${m.readMode} | ${m.error !== undefined ? `error: ${m.error.replace(/\|/g, '/').slice(0, 120)}` : verdictWord(m.valid)} | ${m.staleReads} of ${m.readsChecked} | ` +
        `${m.ops} | ${pct(m.faultAvailability)} | ${sideCell(m.minoritySide)} | ${sideCell(m.majoritySide)} |`,
    ),
    '',
    'Availability = ok / invoked (a refused or timed-out operation counts against it). Sides: for partitions with a ' +
      'minority (the isolated leader, the smaller half), by the member each operation was sent to. ' +
      'Stale read: a read that returned a value already overwritten by a write completed before the read was invoked ' +
      '(computed from history.jsonl; concurrent writes are never counted as evidence, so it is a lower bound); the ' +
      "checker's verdict is the formal proof.",
  ];
  const first = section.modes.find((m) => m.error === undefined) ?? section.modes[0];
  if (first !== undefined) {
    const faults = first.windows.filter((w) => w.kind !== 'quiet');
    if (faults.length > 0) {
      lines.push(
        '',
        'Per window: availability of all operations invoked in it; for a partition with a minority, reads / writes on the ' +
          'minority side and on the majority side; and the stale reads invoked in it. "quiet" sums the stretches without a fault.',
        '',
        `| window | ${section.modes.map((m) => m.readMode).join(' | ')} |`,
        `|---|${section.modes.map(() => '---').join('|')}|`,
      );
      const cell = (w: FaultWindowDetail | undefined): string => {
        if (w === undefined) return 'n/a';
        const sides = w.minoritySide === null ? '' : `; minority ${sideCell(w.minoritySide)}, majority ${sideCell(w.majoritySide)}`;
        return `${pct(w.availability)}${sides}; stale ${w.staleReads}`;
      };
      for (const w of faults) {
        const cells = section.modes.map((m) => cell(m.windows.find((x) => x.id === w.id && x.kind !== 'quiet')));
        lines.push(`| #${w.id} ${(w.startMs / 1000).toFixed(1)}-${(w.endMs / 1000).toFixed(1)} s: ${w.description.replace(/\|/g, '/')} | ${cells.join(' | ')} |`);
      }
      const quiet = section.modes.map((m) => {
        const q = m.windows.filter((w) => w.kind === 'quiet');
        const counts = q.reduce((t, w) => sumTally(t, w.counts), emptyTally());
        return `${pct(availabilityOf(counts))}; stale ${q.reduce((n, w) => n + w.staleReads, 0)}`;
      });
      lines.push(`| quiet | ${quiet.join(' | ')} |`);
    }
  }
  const examples = section.modes.flatMap((m) =>
    m.staleExamples.slice(0, 2).map(
      (s) =>
        `- ${m.readMode}: read of ${s.key} (history.jsonl line ${s.invokeLine}) returned ${JSON.stringify(s.value)}, ` +
        `but ${JSON.stringify(s.overwrittenBy)} had already been written (ok on line ${s.overwriteLine ?? '?'})`,
    ),
  );
  if (examples.length > 0) lines.push('', 'Stale reads, examples:', ...examples);
  lines.push(
    '',
    'Linearizable (ReadIndex) reads need a quorum, so the minority side refuses them: unavailability is their price. ' +
      'Serializable reads answer from the member\'s own store: available on the minority side, and stale there; ' +
      'they can be stale without any fault too (the quiet row), since a follower answers before it has applied the ' +
      'latest commits. ' +
      'Lease reads skip the quorum round while the leader\'s lease holds; a deposed leader on the minority stops ' +
      'serving them when its lease (shorter than the election timeout) runs out, so a partition alone leaves them ' +
      'correct. Clock drift breaks them: in the window that cuts off a leader whose clock runs slow, its lease lasts ' +
      'electionTimeout / rate of real time, the majority elects another leader and takes writes meanwhile, and the ' +
      'old leader\'s lease reads return overwritten values (Raft thesis §6.4.1: leases assume bounded clock drift).',
  );
  return lines.join('\n');
}

/**
 * faults: one chaos run per read mode, same seed and schedule; availability, verdict and stale reads
 * per mode. `readModes` narrows the modes (tests run one); the bench runs all three.
 */
export async function runFaultsSection(
  settings: TradeoffSettings,
  io: TradeoffIo,
  readModes: readonly TradeoffReadMode[] = TRADEOFF_READ_MODES,
): Promise<FaultsSectionDetail> {
  // Loaded here, not at the top: the runner brings vega and the whole chaos stack, which the pure
  // parts of this module (and their tests) do not need.
  const { runChaos } = await import('@ballot/chaos');
  const modes: FaultsModeDetail[] = [];
  const perRunMs = settings.faultsDurationMs + RUN_OVERHEAD_MS;
  const seed = faultsSeedFor(settings);
  for (const [i, readMode] of readModes.entries()) {
    const outDir = join(io.workDir, 'faults', readMode);
    const label = `faults ${i + 1}/${readModes.length} (${readMode} reads, ${settings.faultsNodes} nodes, seed ${seed})`;
    io.progress.stage(label, (readModes.length - i) * perRunMs);
    let pending = '';
    let lastTickAt = 0;
    const stage = (line: string): void => io.progress.stage(`${label}: ${line.replace(/^chaos:? /, '').slice(0, 110)}`, (readModes.length - i) * perRunMs);
    const chaosIo: ChaosIo = {
      stdout: () => {}, // the results JSON line: the section reads the returned object instead
      stderr: (text) => {
        pending += text;
        const parts = pending.split(/[\r\n]/);
        pending = parts.pop() ?? '';
        for (const line of parts) {
          const l = line.trim();
          if (/^chaos: (INVALID|VALID|UNKNOWN|ERROR|error|failed|interrupted)|nemesis: window/.test(l)) io.progress.note(`  ${readMode}: ${l}`);
          else if (/^chaos: (starting|waiting|running|healing|final reads|checking|stopping)/.test(l)) stage(l);
          else if (/^chaos [0-9.]+\/[0-9.]+ s \|/.test(l) && Date.now() - lastTickAt >= CHAOS_TICK_MS) {
            lastTickAt = Date.now();
            stage(l);
          }
        }
      },
      isTTY: false,
    };
    const results = await runChaos(chaosOptionsFor(settings, readMode, outDir), chaosIo);
    let mode: FaultsModeDetail;
    try {
      const history = await readFile(join(outDir, 'history.jsonl'), 'utf8').catch(() => '');
      const applied = parseApplied(await readFile(join(outDir, 'nemesis.jsonl'), 'utf8').catch(() => ''));
      mode = modeResult(readMode, results, history, applied, outDir);
    } catch (err) {
      const message = `reading the run's files: ${err instanceof Error ? err.message : String(err)}`;
      mode = modeResult(readMode, { ...results, valid: 'unknown', error: results.error ?? message }, '', [], outDir);
    }
    modes.push(mode);
    io.progress.note(
      `faults ${readMode}: ${verdictWord(mode.valid)}${mode.error !== undefined ? ` (error: ${mode.error})` : ''}, ${mode.staleReads} stale reads of ${mode.readsChecked}, ` +
        `availability in fault windows ${pct(mode.faultAvailability)}, minority reads/writes ${sideCell(mode.minoritySide)}, majority ${sideCell(mode.majoritySide)}`,
    );
  }
  const section: Omit<FaultsSectionDetail, 'markdown'> = {
    section: 'faults',
    nodes: settings.faultsNodes,
    seed,
    durationMs: settings.faultsDurationMs,
    modes,
    heartbeatMs: FAULTS_TIMING.heartbeatIntervalMs,
    electionTimeoutMs: FAULTS_TIMING.electionTimeoutMs,
    requestTimeoutMs: FAULTS_TIMING.requestTimeoutMs,
  };
  return { ...section, markdown: faultsMarkdown(section) };
}
