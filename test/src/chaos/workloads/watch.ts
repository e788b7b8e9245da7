// The watch workload: every watcher must see every revision exactly once, in order, matching the
// key-value history.
//
//   writers   workers put to keys "w/0".."w/9" (values unique per key: increasing integers) and get
//             them; recorded as the checker's kv model (f "put" / "get")
//   watchers  one per node, on that node's etcd JSON stream (POST /v3/watch), prefix "w/" from the
//             start revision; after a break (member killed, stream cut) it watches again from the
//             last revision it saw + 1. Every event goes to <out>/watch-events.jsonl
//             {watcher, node, revision, key, value, type, time}
//   final     after the faults heal: a get of every key on every node, then each watcher is given
//             time to reach the last revision, then one reference watch replays the start revision
//             to the last one (<out>/watch-reference.jsonl)
//
// The check (checkWatch) is pure:
//   watch-reference     the replay is complete and in order (revisions rise, no event twice)
//   watch-exactly-once  each watcher's events == the reference: no gap, no duplicate, same order,
//                       same values. A watcher missing only the end of the reference (nothing
//                       after the missing events arrived: it had not caught up, or a compaction
//                       cancel stopped it) proves nothing either way: 'unknown', not invalid
//   watch-puts          every ok put is in the reference exactly once, no definitely failed put
//                       is, and every event of the reference is a put some client made
//   linearizability     the put/get history, with the checker's kv model

import { jsonEqual, type CheckResult } from '../../checker/index.js';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { etcdJson, prefixRange, type WatchEvent, type WatchResponse } from '@ballot/kvstore';
import type { JsonKvClient } from '../client.js';
import type { CallOutcome, JsonValue, RecordedEvent, Workload, WorkloadContext, WorkloadVerdict } from '../types.js';
import { AnomalyLog, combineChecks, formatTimeNs, pairRecorded, type CheckLine } from './bank.js';
import { checkLinearizability, clientsFor, pinnedWorkers, retryUntilOk, runPaced } from './common.js';

export const WATCH_PREFIX = 'w/';
export const WATCH_KEY_COUNT = 10;
export const WATCH_EVENTS_FILE = 'watch-events.jsonl';
export const WATCH_REFERENCE_FILE = 'watch-reference.jsonl';

/** The writers' keys "w/0".."w/9". */
export function watchKeys(count = WATCH_KEY_COUNT): readonly string[] {
  return Array.from({ length: count }, (_, i) => `${WATCH_PREFIX}${i}`);
}

/** One event a watcher received (a line of watch-events.jsonl). The reference replay's watcher is -1. */
export interface WatchRecord {
  readonly watcher: number;
  readonly node: string;
  readonly revision: number;
  readonly key: string;
  /** The value put (decoded as the writers encode it); null for a delete. */
  readonly value: JsonValue;
  readonly type: 'put' | 'delete';
  /** Nanoseconds since the workload started. */
  readonly time: number;
}

/** What one watcher saw, in arrival order. */
export interface WatcherLog {
  readonly watcher: number;
  readonly node: string;
  readonly events: readonly WatchRecord[];
  /** Why the watcher gave up for good before the end (a compaction cancel, too many events), if it did. */
  readonly stoppedBy?: string;
}

export interface WatchCheckInput {
  readonly watchers: readonly WatcherLog[];
  /** The reference replay, in order; null when it could not be taken. */
  readonly reference: readonly WatchRecord[] | null;
  /** The put/get history (as recorded). */
  readonly history: readonly RecordedEvent[];
  /** The first revision watched. */
  readonly startRevision: number;
  /** The revision of the last write to the prefix (the reference must reach it); startRevision - 1 if none. */
  readonly finalRevision: number;
}

export interface WatchCheckResult {
  readonly valid: true | false | 'unknown';
  readonly checks: readonly CheckLine[];
  readonly anomalies: readonly string[];
  readonly anomalyCount: number;
  readonly linearizability?: CheckResult;
}

/** Identity of an event: a revision holds at most one event per key. */
const eventId = (e: { readonly revision: number; readonly key: string }): string => `${e.revision}\u0000${e.key}`;
/** Identity of a write: values are unique per key. */
const writeId = (key: string, value: JsonValue): string => `${key}\u0000${JSON.stringify(value)}`;
const show = (e: WatchRecord): string => `${e.key}${e.type === 'delete' ? ' deleted' : `=${JSON.stringify(e.value)}`}@${e.revision}`;

/** The largest revision of a non-empty list (a loop: Math.max(...list) throws past ~120k elements). */
function maxRevision(events: readonly { readonly revision: number }[], empty: number): number {
  let m = empty;
  for (const e of events) if (e.revision > m) m = e.revision;
  return m;
}

/** Groups sorted indexes into runs of consecutive ones: [[first, last], ...]. */
function runsOf(indexes: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const i of indexes) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[1] === i - 1) last[1] = i;
    else runs.push([i, i]);
  }
  return runs;
}

/** The reference's own soundness: ordered, no event twice, within [startRevision, finalRevision], complete. */
function checkReference(input: WatchCheckInput, log: AnomalyLog): CheckLine {
  const ref = input.reference;
  if (ref === null) return { name: 'watch-reference', valid: 'unknown', summary: 'no reference replay could be taken after the heal' };
  let bad = 0;
  const seen = new Set<string>();
  let prev = input.startRevision;
  ref.forEach((e, i) => {
    if (e.revision < prev) {
      bad++;
      log.add(`reference replay: event ${i + 1} ${show(e)} comes after revision ${prev}`);
    } else if (seen.has(eventId(e))) {
      bad++;
      log.add(`reference replay: event ${i + 1} ${show(e)} delivered twice`);
    }
    seen.add(eventId(e));
    prev = Math.max(prev, e.revision);
  });
  const last = ref.length === 0 ? input.startRevision - 1 : prev;
  if (bad > 0) return { name: 'watch-reference', valid: false, summary: `the reference replay is out of order or repeats (${bad} events)` };
  if (last < input.finalRevision) {
    return { name: 'watch-reference', valid: 'unknown', summary: `the reference replay ended at revision ${last}, before the last write's revision ${input.finalRevision}` };
  }
  return { name: 'watch-reference', valid: true, summary: `${ref.length} events, revisions ${input.startRevision}..${input.finalRevision}` };
}

/** Compares each watcher's events with the reference. */
function checkWatchers(input: WatchCheckInput, log: AnomalyLog): CheckLine {
  const ref = input.reference;
  if (ref === null) return { name: 'watch-exactly-once', valid: 'unknown', summary: 'no reference to compare the watchers with' };
  const refIndex = new Map<string, number>();
  ref.forEach((e, i) => {
    if (!refIndex.has(eventId(e))) refIndex.set(eventId(e), i);
  });
  const refEnd = maxRevision(ref, input.startRevision - 1);
  const complete = refEnd >= input.finalRevision;
  let badWatchers = 0;
  /** Watchers missing only the reference's end: one line each for the summary (not anomalies). */
  const behind: string[] = [];
  for (const w of input.watchers) {
    const who = `watcher ${w.watcher} on ${w.node}`;
    const before = log.count;
    const firstAt = new Map<number, number>();
    let highest = -1;
    w.events.forEach((e, pos) => {
      const i = refIndex.get(eventId(e));
      if (i === undefined) {
        // Past the end of an incomplete reference nothing can be said.
        if (complete || e.revision <= refEnd) log.add(`${who}: event ${pos + 1} ${show(e)} at ${formatTimeNs(e.time)} is not in the reference`);
        return;
      }
      const r = ref[i] as WatchRecord;
      const first = firstAt.get(i);
      if (first !== undefined) {
        log.add(`${who}: duplicate: event ${pos + 1} ${show(e)} at ${formatTimeNs(e.time)} was already delivered as event ${first + 1}`);
        return;
      }
      firstAt.set(i, pos);
      if (i < highest) {
        const h = ref[highest] as WatchRecord;
        log.add(`${who}: out of order: event ${pos + 1} ${show(e)} at ${formatTimeNs(e.time)} arrived after ${show(h)}`);
      }
      if (e.type !== r.type || !jsonEqual(e.value, r.value)) {
        log.add(`${who}: value mismatch at revision ${e.revision}: saw ${show(e)}, the reference has ${show(r)}`);
      }
      highest = Math.max(highest, i);
    });
    const missing = ref.map((_, i) => i).filter((i) => !firstAt.has(i));
    for (const [a, b] of runsOf(missing)) {
      const from = ref[a] as WatchRecord;
      const to = ref[b] as WatchRecord;
      const count = b - a + 1;
      if (a > highest) {
        // Only the end is missing and nothing later arrived: the watcher is behind (or was stopped), not wrong.
        behind.push(`${who} stopped at revision ${highest < 0 ? input.startRevision - 1 : (ref[highest] as WatchRecord).revision}, ${count} events short${w.stoppedBy === undefined ? '' : ` (${w.stoppedBy})`}`);
        continue;
      }
      log.add(
        count === 1
          ? `${who}: gap: never saw ${show(from)}`
          : `${who}: gap: never saw ${count} events, ${show(from)} .. ${show(to)}`,
      );
    }
    if (log.count > before) badWatchers++;
  }
  const n = input.watchers.length;
  if (badWatchers > 0) return { name: 'watch-exactly-once', valid: false, summary: `${badWatchers} of ${n} watchers differ from the reference (${ref.length} events)` };
  if (behind.length > 0) {
    return { name: 'watch-exactly-once', valid: 'unknown', summary: `no watcher saw a gap, duplicate or reordering, but ${behind.length} of ${n} did not reach the end: ${behind.join('; ')}` };
  }
  return {
    name: 'watch-exactly-once',
    valid: complete ? true : 'unknown',
    summary: `${n} watchers each saw the reference's ${ref.length} events exactly once, in order${complete ? '' : ' (the reference is incomplete)'}`,
  };
}

/** Ok puts in the reference exactly once, failed puts absent, every reference event a client's put. */
function checkPuts(input: WatchCheckInput, log: AnomalyLog): CheckLine {
  const ref = input.reference;
  if (ref === null) return { name: 'watch-puts', valid: 'unknown', summary: 'no reference to find the puts in' };
  const applied = new Map<string, WatchRecord[]>();
  for (const e of ref) {
    if (e.type !== 'put') continue;
    const id = writeId(e.key, e.value);
    const list = applied.get(id);
    if (list === undefined) applied.set(id, [e]);
    else list.push(e);
  }
  const refEnd = maxRevision(ref, input.startRevision - 1);
  const complete = refEnd >= input.finalRevision;
  const attempted = new Set<string>();
  let okPuts = 0;
  let failedPuts = 0;
  let bad = 0;
  let unsure = 0;
  for (const { invoke, done, index } of pairRecorded(input.history)) {
    if (invoke.f !== 'put') continue;
    const id = writeId(invoke.key, invoke.value);
    const what = `put ${invoke.key}=${JSON.stringify(invoke.value)} by process ${invoke.process}${invoke.node === undefined ? '' : ` on ${invoke.node}`}`;
    const found = applied.get(id) ?? [];
    if (done !== null && done.type === 'fail') {
      failedPuts++;
      if (found.length > 0) {
        bad++;
        log.add(`${what} failed (history line ${index + 1}: ${done.error ?? 'no reason'}) but took effect at revision ${(found[0] as WatchRecord).revision}`);
      }
      continue;
    }
    attempted.add(id);
    if (done === null || done.type !== 'ok') continue;
    okPuts++;
    if (found.length === 0) {
      if (complete) {
        bad++;
        log.add(`${what} was acknowledged at ${formatTimeNs(done.time)} (history line ${index + 1}) but is not in the reference: a lost write`);
      } else unsure++;
    }
  }
  for (const [id, list] of applied) {
    const e = list[0] as WatchRecord;
    if (!attempted.has(id)) {
      bad++;
      log.add(`reference event ${show(e)} is no put any client made (or one that failed)`);
    } else if (list.length > 1) {
      bad++;
      log.add(`put ${e.key}=${JSON.stringify(e.value)} took effect ${list.length} times, at revisions ${list.map((x) => x.revision).join(', ')}`);
    }
  }
  if (bad > 0) return { name: 'watch-puts', valid: false, summary: `${bad} puts lost, applied twice, applied though failed, or from nowhere` };
  if (unsure > 0) return { name: 'watch-puts', valid: 'unknown', summary: `${unsure} ok puts are not in the (incomplete) reference` };
  return { name: 'watch-puts', valid: true, summary: `${okPuts} ok puts each in the reference once; none of ${failedPuts} failed puts took effect` };
}

/** Judges a watch run (pure but for the time budget of the linearizability search). */
export function checkWatch(input: WatchCheckInput, timeBudgetMs = 60_000): WatchCheckResult {
  const log = new AnomalyLog();
  const lin = checkLinearizability(input.history, 'kv', timeBudgetMs);
  for (const line of lin.anomalies) log.add(line);
  const checks = [checkReference(input, log), checkWatchers(input, log), checkPuts(input, log), lin.check];
  return { valid: combineChecks(checks), checks, anomalies: log.lines, anomalyCount: log.count, ...(lin.result === null ? {} : { linearizability: lin.result }) };
}

/** A verdict line for people from the checks. */
export function summarizeChecks(checks: readonly CheckLine[]): string {
  const bad = checks.filter((c) => c.valid !== true);
  if (bad.length === 0) return checks.map((c) => c.summary).join('; ');
  return bad.map((c) => `${c.name}: ${c.summary}`).join('; ');
}


// ---------------------------------------------------------------------------------------------
// Watching over the etcd JSON gateway: POST /v3/watch with one create_request; the answer is a
// stream of newline-terminated {"result": WatchResponse} lines (or one {"error": ...} line) that
// lasts until either side closes it.

/** How the writers encode a value as text, and back: integers as decimal text, anything else as is. */
export function decodeWatchValue(text: string): JsonValue {
  return /^-?[0-9]{1,15}$/.test(text) ? Number(text) : text;
}

/** Why a watch stream ended. */
export type StreamEnd =
  | { readonly kind: 'stopped' }
  /** The connection could not be made or broke, or the member answered with an error. */
  | { readonly kind: 'broken'; readonly reason: string }
  /** The member canceled the watch (compaction, a slow watcher, ...). */
  | { readonly kind: 'canceled'; readonly reason: string; readonly compactRevision?: number };

/** The longest line a watch stream may send before it is treated as broken (a bound on what we buffer). */
export const MAX_WATCH_LINE_CHARS = 16 * 1024 * 1024;

/** What a watch stream tells its owner while it runs. */
export interface StreamHandlers {
  /** The member accepted the watch (answered 200); events may follow. */
  readonly onOpen?: () => void;
  /** The events of one revision, in order. */
  readonly onEvents: (revision: number, events: readonly WatchEvent[]) => void;
}

/**
 * One /v3/watch stream on `endpoint` for keys under `prefix` from `fromRevision`. Calls
 * `onEvents(revision, events)` once per revision, in order; resolves when the stream ends.
 * Never throws.
 */
export async function watchStream(endpoint: string, prefix: string, fromRevision: number, signal: AbortSignal, handlers: StreamHandlers): Promise<StreamEnd> {
  const { onEvents } = handlers;
  const body = etcdJson.encodeWatchCreateRequest({ ...prefixRange(prefix), startRevision: fromRevision });
  let res: Response;
  try {
    res = await fetch(`${endpoint.replace(/\/+$/, '')}/v3/watch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal });
  } catch (e) {
    return signal.aborted ? { kind: 'stopped' } : { kind: 'broken', reason: `connect: ${describeError(e)}` };
  }
  if (res.status !== 200 || res.body === null) {
    const text = await res.text().catch(() => '');
    return { kind: 'broken', reason: `HTTP ${res.status}: ${text.slice(0, 200)}` };
  }
  handlers.onOpen?.();
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line === '') continue;
        const end = onLine(line, onEvents);
        if (end !== null) {
          await res.body.cancel().catch(() => {});
          return end;
        }
      }
      if (buffered.length > MAX_WATCH_LINE_CHARS) {
        await res.body.cancel().catch(() => {});
        return { kind: 'broken', reason: `a watch line longer than ${MAX_WATCH_LINE_CHARS} characters` };
      }
    }
  } catch (e) {
    return signal.aborted ? { kind: 'stopped' } : { kind: 'broken', reason: `stream: ${describeError(e)}` };
  }
  return signal.aborted ? { kind: 'stopped' } : { kind: 'broken', reason: 'the member ended the stream' };
}

/** One line of the stream: events delivered, or why the stream is over (null: go on). */
function onLine(line: string, onEvents: (revision: number, events: readonly WatchEvent[]) => void): StreamEnd | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { kind: 'broken', reason: `not JSON: ${line.slice(0, 200)}` };
  }
  const o = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (o['result'] === undefined) {
    const err = o['error'] ?? o['message'] ?? line.slice(0, 200);
    return { kind: 'broken', reason: `error line: ${typeof err === 'string' ? err : JSON.stringify(err)}` };
  }
  let r: WatchResponse;
  try {
    r = etcdJson.decodeWatchResponse(o['result']);
  } catch (e) {
    return { kind: 'broken', reason: `unreadable watch response: ${describeError(e)}` };
  }
  // Events of one revision come in one response, but one response may hold several revisions.
  let i = 0;
  while (i < r.events.length) {
    const rev = (r.events[i] as WatchEvent).kv.modRevision;
    let j = i;
    while (j < r.events.length && (r.events[j] as WatchEvent).kv.modRevision === rev) j++;
    onEvents(rev, r.events.slice(i, j));
    i = j;
  }
  if (r.canceled === true) {
    return { kind: 'canceled', reason: r.cancelReason ?? 'canceled by the member', ...(r.compactRevision !== undefined ? { compactRevision: r.compactRevision } : {}) };
  }
  return null;
}

function describeError(e: unknown): string {
  const err = e as { message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const cause = err.cause;
  const c = cause === undefined ? '' : ` (${String(cause.code ?? '')} ${String(cause.message ?? '')})`.replace('( ', '(');
  return `${String(err.message ?? e)}${c}`;
}

/** Events a watcher keeps before it stops (a bound on memory; the recorder's bound is the same). */
export const MAX_WATCHER_EVENTS = 2_000_000;
/** Pause between two attempts of a broken watch (the member may be down or restarting). */
export const WATCH_RETRY_MS = 100;

export interface WatcherOptions {
  readonly watcher: number;
  readonly node: string;
  readonly endpoint: string;
  readonly prefix: string;
  readonly startRevision: number;
  /** Nanoseconds since the workload started. */
  readonly nowNs: () => number;
  /** Called with every event, in arrival order (e.g. to append it to watch-events.jsonl). */
  readonly onRecord?: (r: WatchRecord) => void;
  readonly log?: (msg: string) => void;
  /** Re-watch from lastSeen + 1 after a break (default true; the reference replay does not). */
  readonly resume?: boolean;
}

/**
 * A watcher pinned to one member: watches the prefix from the start revision and, whenever the
 * stream breaks (the member killed, the connection reset), watches again from the last revision it
 * saw + 1 - so it should see every revision exactly once. Runs until stop().
 */
export class Watcher {
  readonly events: WatchRecord[] = [];
  /** The last revision whose events arrived (startRevision - 1 before any). */
  lastSeen: number;
  /** Streams the member accepted (1 + re-watches after breaks). */
  streams = 0;
  /** Attempts to open a stream, accepted or not. */
  attempts = 0;
  /** Why each stream ended, in order (bounded: the last MAX_END_REASONS). */
  readonly ends: string[] = [];
  /** Set when the watcher gave up for good (a compacted start, too many events). */
  failure: string | null = null;
  private readonly stopper = new AbortController();
  private readonly waiters = new Set<() => void>();
  private loop: Promise<void> | null = null;

  constructor(readonly opts: WatcherOptions) {
    this.lastSeen = opts.startRevision - 1;
  }

  start(): void {
    if (this.loop === null) this.loop = this.run();
  }

  /** Resolves true once lastSeen >= revision, false after timeoutMs (or if the watcher stopped). */
  async waitFor(revision: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.lastSeen < revision) {
      if (this.stopper.signal.aborted || this.failure !== null) return false;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(left, 200));
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.waiters.add(done);
      });
    }
    return true;
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    for (const w of [...this.waiters]) w();
    await this.loop;
  }

  get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private async run(): Promise<void> {
    const { opts } = this;
    const signal = this.stopper.signal;
    const who = `watcher ${opts.watcher} on ${opts.node}`;
    /** Attempts in a row that were not accepted (the member down or restarting): logged once, then summed up. */
    let refused = 0;
    while (!signal.aborted && this.failure === null) {
      this.attempts++;
      let opened = false;
      const end = await watchStream(opts.endpoint, opts.prefix, this.lastSeen + 1, signal, {
        onOpen: () => {
          opened = true;
          this.streams++;
          if (refused > 0) opts.log?.(`${who}: watching again from revision ${this.lastSeen + 1} after ${refused} refused attempts`);
          refused = 0;
        },
        onEvents: (revision, events) => this.deliver(revision, events),
      });
      if (end.kind === 'stopped' || signal.aborted) break;
      const why = `${end.kind}: ${end.reason}`;
      this.ends.push(why);
      if (this.ends.length > MAX_END_REASONS) this.ends.shift();
      if (opened) opts.log?.(`${who}: stream ${this.streams} ended after revision ${this.lastSeen} (${why})`);
      else if (refused++ === 0) opts.log?.(`${who}: cannot watch from revision ${this.lastSeen + 1} yet (${why}); retrying every ${WATCH_RETRY_MS} ms`);
      if (end.kind === 'canceled' && end.compactRevision !== undefined) {
        this.failure = `revision ${this.lastSeen + 1} was compacted (oldest kept ${end.compactRevision})`;
        break;
      }
      if (opts.resume === false) {
        this.failure = `the stream ended (${why})`;
        break;
      }
      await sleepUnless(WATCH_RETRY_MS, signal);
    }
    for (const w of [...this.waiters]) w();
  }

  private deliver(revision: number, events: readonly WatchEvent[]): void {
    if (this.failure !== null) return;
    const time = this.opts.nowNs();
    for (const e of events) {
      if (this.events.length >= MAX_WATCHER_EVENTS) {
        this.failure = `more than ${MAX_WATCHER_EVENTS} events`;
        this.stopper.abort();
        return;
      }
      const record: WatchRecord = {
        watcher: this.opts.watcher,
        node: this.opts.node,
        revision,
        key: textDecoder.decode(e.kv.key),
        value: e.type === 'delete' ? null : decodeWatchValue(textDecoder.decode(e.kv.value)),
        type: e.type,
        time,
      };
      this.events.push(record);
      this.opts.onRecord?.(record);
    }
    // Kept as the highest revision seen, so a re-watch never asks for one twice even if the
    // member sent revisions out of order (the check reports that).
    this.lastSeen = Math.max(this.lastSeen, revision);
    for (const w of [...this.waiters]) w();
  }
}

/** Reasons kept in Watcher.ends. */
export const MAX_END_REASONS = 100;
const textDecoder = new TextDecoder();

function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    // Unref'd: a watcher retrying a member that is gone for good never keeps the process alive.
    const t = setTimeout(done, ms);
    t.unref();
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The workload: writers and watchers on real members.

/** Seeds the writers' random streams apart from other workloads'. */
const WATCH_SALT = 0x3a7c;
/** Share of puts in the writers' op mix (the rest are gets). */
export const WATCH_PUT_SHARE = 0.6;
/** Bounds of the final phase (together under the runner's 60 s for final reads). */
export const WATCH_FINAL_TIMEOUTS = {
  /** The gets of every key on every node. */
  getsMs: 15_000,
  /** The read that tells the last write's revision. */
  lastRevisionMs: 8_000,
  /** Every watcher reaching that revision. */
  catchUpMs: 12_000,
  /** The reference replay (over every node in turn if one fails). */
  referenceMs: 15_000,
} as const;
/** A watcher still running this long after the workload phase ended is stopped (a run that failed never calls finalReads). */
export const WATCHER_LINGER_MS = 150_000;
/** watch-events.jsonl is written out whenever this much is buffered. */
export const EVENTS_FLUSH_BYTES = 64 * 1024;

/** Appends JSON lines to a file with a bounded buffer (written out at EVENTS_FLUSH_BYTES and on close). */
class JsonLinesFile {
  private fd: number | null;
  private buffer: string[] = [];
  private bytes = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w');
  }

  append(value: unknown): void {
    if (this.fd === null) return;
    const line = `${JSON.stringify(value)}\n`;
    this.buffer.push(line);
    this.bytes += Buffer.byteLength(line);
    if (this.bytes >= EVENTS_FLUSH_BYTES) this.flush();
  }

  flush(): void {
    if (this.fd === null || this.buffer.length === 0) return;
    const data = Buffer.from(this.buffer.join(''));
    this.buffer = [];
    this.bytes = 0;
    for (let off = 0; off < data.length; ) off += writeSync(this.fd, data, off, data.length - off);
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    closeSync(this.fd);
    this.fd = null;
  }
}

/** The recorder's clock when it has one (FileHistoryRecorder.nowNs), so watch events and history share time zero. */
function clockOf(recorder: WorkloadContext['recorder']): () => number {
  const r = recorder as { nowNs?: unknown };
  if (typeof r.nowNs === 'function') return () => (r.nowNs as () => number).call(recorder);
  const t0 = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - t0);
}

class WatchWorkload implements Workload {
  readonly name = 'watch' as const;
  readonly keys = watchKeys();
  private startRevision = 0;
  /** The revision of the last write to the prefix, once the final reads found it. */
  private finalRevision: number | null = null;
  private watchers: Watcher[] = [];
  private reference: readonly WatchRecord[] | null = null;
  private eventsFile: JsonLinesFile | null = null;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;

  /** The revision watching starts from: the store's current one + 1 (linearizable read). */
  async setup(ctx: WorkloadContext): Promise<void> {
    const clients = clientsFor(ctx);
    let attempt = 0;
    const r = await retryUntilOk(async () => (clients[attempt++ % clients.length] as JsonKvClient).range(WATCH_PREFIX), { timeoutMs: 20_000, signal: ctx.signal });
    if (r.type !== 'ok') throw new Error(`watch setup: could not read the store's revision: ${r.error}`);
    this.startRevision = r.value.revision + 1;
    this.eventsFile = new JsonLinesFile(join(ctx.outDir, WATCH_EVENTS_FILE));
    ctx.log(`watch: watching ${WATCH_PREFIX} from revision ${this.startRevision}`);
  }

  async run(ctx: WorkloadContext): Promise<void> {
    const nowNs = clockOf(ctx.recorder);
    const file = this.eventsFile;
    this.watchers = ctx.endpoints.map(
      (endpoint, i) =>
        new Watcher({
          watcher: i,
          node: ctx.names[i] ?? `node${i}`,
          endpoint,
          prefix: WATCH_PREFIX,
          startRevision: this.startRevision,
          nowNs,
          onRecord: (r) => file?.append(r),
          log: ctx.log,
        }),
    );
    for (const w of this.watchers) w.start();
    // If the run fails after this phase, finalReads never comes: do not watch forever.
    const linger = (): void => {
      this.lingerTimer = setTimeout(() => void this.stopWatchers(), WATCHER_LINGER_MS);
      this.lingerTimer.unref();
    };
    if (ctx.signal.aborted) linger();
    else ctx.signal.addEventListener('abort', linger, { once: true });

    const serializable = ctx.readMode === 'serializable';
    const counters = new Map<string, number>();
    const workers = pinnedWorkers(ctx, WATCH_SALT);
    await runPaced(ctx, workers, async (w) => {
      const key = w.random.pick(this.keys);
      if (w.random.chance(WATCH_PUT_SHARE)) {
        // Values unique per key: increasing integers (one counter per key, shared by all writers).
        const value = (counters.get(key) ?? 0) + 1;
        counters.set(key, value);
        await w.perform('put', key, value, async () => {
          const r = await w.client.put(key, String(value));
          return r.type === 'ok' ? { type: 'ok', value } : r;
        });
      } else {
        await w.perform('get', key, null, async () => {
          const r = await w.client.get(key, { serializable });
          return r.type === 'ok' ? { type: 'ok', value: r.value.value === null ? null : decodeWatchValue(r.value.value) } : r;
        });
      }
    });
  }

  /**
   * After the heal: a linearizable get of every key on every node (recorded), the last write's
   * revision, every watcher given time to reach it, then the reference replay.
   */
  async finalReads(ctx: WorkloadContext): Promise<void> {
    const clients = clientsFor(ctx);
    const getsDeadline = performance.now() + WATCH_FINAL_TIMEOUTS.getsMs;
    await Promise.all(
      clients.map(async (client, i) => {
        const node = ctx.names[i] ?? `node${i}`;
        const process = ctx.recorder.newProcess();
        for (const key of this.keys) {
          const r = await retryUntilOk(
            async () => {
              const op = ctx.recorder.invoke(process, 'get', key, null, node);
              const got = await client.get(key);
              const outcome: CallOutcome<JsonValue> = got.type === 'ok' ? { type: 'ok', value: got.value.value === null ? null : decodeWatchValue(got.value.value) } : got;
              op.complete(outcome);
              return outcome;
            },
            { timeoutMs: Math.max(0, getsDeadline - performance.now()) },
          );
          if (r.type !== 'ok') ctx.log(`watch: no final get of ${key} on ${node}: ${r.error}`);
        }
      }),
    );

    // Only puts write to the prefix, so the newest mod_revision under it is the last write's revision.
    let attempt = 0;
    const range = await retryUntilOk(async () => (clients[attempt++ % clients.length] as JsonKvClient).range(WATCH_PREFIX), { timeoutMs: WATCH_FINAL_TIMEOUTS.lastRevisionMs });
    if (range.type === 'ok') {
      this.finalRevision = range.value.entries.reduce((m, e) => Math.max(m, e.modRevision), this.startRevision - 1);
      const last = this.finalRevision;
      const reached = await Promise.all(this.watchers.map((w) => w.waitFor(last, WATCH_FINAL_TIMEOUTS.catchUpMs)));
      this.watchers.forEach((w, i) => {
        if (!reached[i]) ctx.log(`watch: watcher ${w.opts.watcher} on ${w.opts.node} is at revision ${w.lastSeen}, not ${last} (${w.failure ?? w.ends.at(-1) ?? 'no break'})`);
      });
    } else ctx.log(`watch: could not read the last revision: ${range.error}`);
    await this.stopWatchers();
    if (this.finalRevision !== null) this.reference = await this.replay(ctx, this.finalRevision);
    if (this.reference !== null) {
      const ref = new JsonLinesFile(join(ctx.outDir, WATCH_REFERENCE_FILE));
      for (const e of this.reference) ref.append(e);
      ref.close();
    }
  }

  /** One fresh watch from the start revision to `last`, on each node in turn until one completes; null if none does. */
  private async replay(ctx: WorkloadContext, last: number): Promise<readonly WatchRecord[] | null> {
    const deadline = performance.now() + WATCH_FINAL_TIMEOUTS.referenceMs;
    const nowNs = clockOf(ctx.recorder);
    for (let i = 0; i < ctx.endpoints.length; i++) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const node = ctx.names[i] ?? `node${i}`;
      const w = new Watcher({ watcher: -1, node, endpoint: ctx.endpoints[i] as string, prefix: WATCH_PREFIX, startRevision: this.startRevision, nowNs, resume: false });
      w.start();
      const ok = await w.waitFor(last, left);
      await w.stop();
      if (ok) return w.events;
      ctx.log(`watch: the reference replay on ${node} stopped at revision ${w.lastSeen} of ${last} (${w.failure ?? 'too slow'})`);
    }
    return null;
  }

  private async stopWatchers(): Promise<void> {
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    await Promise.all(this.watchers.map((w) => w.stop()));
    this.eventsFile?.close();
  }

  async check(ctx: WorkloadContext, timeBudgetMs: number): Promise<WorkloadVerdict> {
    await this.stopWatchers();
    const last = this.finalRevision ?? this.startRevision - 1;
    // Judged up to the last write the final reads found (a write still in flight then is not judged).
    const upTo = (events: readonly WatchRecord[]): WatchRecord[] => events.filter((e) => e.revision <= last);
    const r = checkWatch(
      {
        watchers: this.watchers.map((w) => ({ watcher: w.opts.watcher, node: w.opts.node, events: upTo(w.events), ...(w.failure === null ? {} : { stoppedBy: w.failure }) })),
        reference: this.reference === null ? null : upTo(this.reference),
        history: ctx.recorder.events,
        startRevision: this.startRevision,
        finalRevision: last,
      },
      timeBudgetMs,
    );
    const streams = this.watchers.map((w) => `${w.opts.node} ${w.streams}`).join(', ');
    const summary = r.valid === true ? `watch ok: ${summarizeChecks(r.checks)} (streams per watcher: ${streams})` : summarizeChecks(r.checks);
    return {
      valid: r.valid,
      checks: r.checks,
      summary,
      anomalies: r.anomalies,
      anomalyCount: r.anomalyCount,
      ...(r.linearizability === undefined ? {} : { linearizability: r.linearizability }),
      model: 'kv',
    };
  }
}

/** The watch workload (one instance per run: it holds its watchers and their events). */
export function watchWorkload(): Workload {
  return new WatchWorkload();
}
