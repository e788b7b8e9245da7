// The pure parts of bench:raft:memory: parsing /proc/PID/status, summarizing per-second samples
// of each member's RSS and data directory size into max/final figures, the ETA shown while a
// run is in progress, and the comparison rows. No I/O, so it is unit-tested (bench/raft/memory.test.ts).

import type { ComparisonRow } from './table.js';

/** VmRSS of a /proc/PID/status text, in bytes; null when the line is missing (e.g. a zombie). */
export function parseVmRssBytes(statusText: string): number | null {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(statusText);
  return m === null ? null : Number(m[1]) * 1024;
}

/** One member at one sampling instant. null: not measurable at that instant (process gone, dir missing). */
export interface MemberSample {
  readonly rssBytes: number | null;
  /** Disk usage of the data directory, like `du -s` (allocated blocks x 512), recursively. */
  readonly diskBytes: number | null;
}

/** One sampling instant: elapsed time since the load started, entries acknowledged so far, every member. */
export interface Sample {
  readonly elapsedMs: number;
  readonly done: number;
  readonly members: Readonly<Record<string, MemberSample>>;
}

export interface MemberSummary {
  readonly maxRssBytes: number | null;
  readonly finalRssBytes: number | null;
  readonly maxDiskBytes: number | null;
  readonly finalDiskBytes: number | null;
}

const maxOf = (values: readonly (number | null)[]): number | null => {
  let best: number | null = null;
  for (const v of values) if (v !== null && (best === null || v > best)) best = v;
  return best;
};

/** The last non-null value (the final measurement of a member that was measurable at least once). */
const lastOf = (values: readonly (number | null)[]): number | null => {
  for (let i = values.length - 1; i >= 0; i--) {
    const v = values[i];
    if (v !== undefined && v !== null) return v;
  }
  return null;
};

/** Max and final RSS and disk usage per member over the samples (in order). */
export function summarizeMembers(samples: readonly Sample[]): Record<string, MemberSummary> {
  const names = new Set<string>();
  for (const s of samples) for (const name of Object.keys(s.members)) names.add(name);
  const out: Record<string, MemberSummary> = {};
  for (const name of [...names].sort()) {
    const rss = samples.map((s) => s.members[name]?.rssBytes ?? null);
    const disk = samples.map((s) => s.members[name]?.diskBytes ?? null);
    out[name] = { maxRssBytes: maxOf(rss), finalRssBytes: lastOf(rss), maxDiskBytes: maxOf(disk), finalDiskBytes: lastOf(disk) };
  }
  return out;
}

/** The largest value of one figure across members (the per-node bound is what README states). */
export function worstMember(summary: Readonly<Record<string, MemberSummary>>, pick: (m: MemberSummary) => number | null): number | null {
  return maxOf(Object.values(summary).map(pick));
}

/**
 * The samples up to and including the first one at which `done` reached `entries` (all samples
 * if it never did): to compare two runs of different lengths at the same number of entries.
 */
export function samplesUpTo(samples: readonly Sample[], entries: number): Sample[] {
  const i = samples.findIndex((s) => s.done >= entries);
  return i === -1 ? [...samples] : samples.slice(0, i + 1);
}

/** Milliseconds left at the average rate so far; null before anything was done. */
export function etaMs(done: number, total: number, elapsedMs: number): number | null {
  if (done <= 0 || elapsedMs <= 0) return null;
  if (done >= total) return 0;
  return ((total - done) * elapsedMs) / done;
}

/** "1m 05s" / "42s"; "?" when unknown. */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

const MIB = 1024 * 1024;
const toMiB = (bytes: number | null): number | null => (bytes === null ? null : bytes / MIB);

/** What one system's run produced, as the rows need it. */
export interface RunFigures {
  readonly entries: number;
  readonly entriesPerSec: number | null;
  readonly members: Readonly<Record<string, MemberSummary>>;
}

/**
 * Rows comparing two runs: per-node worst max/final RSS and data dir size (MiB), then each member
 * by position (n1 vs e1, ...), then throughput. Either side may be missing (null).
 */
export function memoryRows(subject: RunFigures | null, reference: RunFigures | null): ComparisonRow[] {
  const worst = (run: RunFigures | null, pick: (m: MemberSummary) => number | null): number | null =>
    run === null ? null : toMiB(worstMember(run.members, pick));
  const rows: ComparisonRow[] = [
    { metric: 'entries committed', unit: 'n', subject: subject?.entries ?? null, reference: reference?.entries ?? null },
    { metric: 'max RSS, worst node', unit: 'MiB', subject: worst(subject, (m) => m.maxRssBytes), reference: worst(reference, (m) => m.maxRssBytes) },
    { metric: 'final RSS, worst node', unit: 'MiB', subject: worst(subject, (m) => m.finalRssBytes), reference: worst(reference, (m) => m.finalRssBytes) },
    { metric: 'max data dir, worst node', unit: 'MiB', subject: worst(subject, (m) => m.maxDiskBytes), reference: worst(reference, (m) => m.maxDiskBytes) },
    { metric: 'final data dir, worst node', unit: 'MiB', subject: worst(subject, (m) => m.finalDiskBytes), reference: worst(reference, (m) => m.finalDiskBytes) },
  ];
  const names = (run: RunFigures | null): string[] => (run === null ? [] : Object.keys(run.members).sort());
  const s = names(subject);
  const r = names(reference);
  for (let i = 0; i < Math.max(s.length, r.length); i++) {
    const sm = s[i] === undefined ? undefined : subject?.members[s[i] as string];
    const rm = r[i] === undefined ? undefined : reference?.members[r[i] as string];
    const label = `${s[i] ?? '-'}/${r[i] ?? '-'}`;
    rows.push({ metric: `  ${label} max RSS`, unit: 'MiB', subject: toMiB(sm?.maxRssBytes ?? null), reference: toMiB(rm?.maxRssBytes ?? null) });
    rows.push({ metric: `  ${label} max data dir`, unit: 'MiB', subject: toMiB(sm?.maxDiskBytes ?? null), reference: toMiB(rm?.maxDiskBytes ?? null) });
    rows.push({ metric: `  ${label} final data dir`, unit: 'MiB', subject: toMiB(sm?.finalDiskBytes ?? null), reference: toMiB(rm?.finalDiskBytes ?? null) });
  }
  rows.push({ metric: 'throughput over the run', unit: 'entries/s', subject: subject?.entriesPerSec ?? null, reference: reference?.entriesPerSec ?? null });
  return rows;
}
