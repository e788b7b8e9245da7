// Plain-text tables for benchmark reports: one row per metric, one column per system, and the
// ratio of the system under test to the reference. Pure, so it is unit-tested.

/** One comparison row: a metric measured on the system under test and on the reference. */
export interface ComparisonRow {
  readonly metric: string;
  /** Unit shown after the metric name, e.g. "commits/s" or "ms". */
  readonly unit: string;
  /** null when not measured (e.g. the reference is not installed). */
  readonly subject: number | null;
  readonly reference: number | null;
}

/** Formats a number for a table: thousands separators for big values, 2-3 significant decimals for small ones. */
export function formatValue(value: number | null): string {
  if (value === null || Number.isNaN(value)) return 'n/a';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100 || Number.isInteger(value)) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs === 0) return '0';
  return value.toFixed(3);
}

/** subject / reference, formatted like "1.85x"; "n/a" when either side is missing or the reference is 0. */
export function formatRatio(subject: number | null, reference: number | null): string {
  if (subject === null || reference === null || !Number.isFinite(subject) || !Number.isFinite(reference)) {
    return 'n/a';
  }
  if (reference === 0) return 'n/a';
  const ratio = subject / reference;
  return `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}x`;
}

/**
 * Left-aligns the first column and right-aligns the others; a dashed rule separates the header.
 * Every row must have as many cells as the header.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  for (const [i, row] of rows.entries()) {
    if (row.length !== header.length) {
      throw new RangeError(`row ${i} has ${row.length} cells, header has ${header.length}`);
    }
  }
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((r) => (r[col] as string).length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, col) => (col === 0 ? cell.padEnd(widths[col] as number) : cell.padStart(widths[col] as number)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** The comparison table: metric, subject, reference, ratio subject/reference. */
export function formatComparison(
  subjectName: string,
  referenceName: string,
  rows: readonly ComparisonRow[],
): string {
  return formatTable(
    ['metric', subjectName, referenceName, `ratio ${subjectName}/${referenceName}`],
    rows.map((r) => [
      `${r.metric} (${r.unit})`,
      formatValue(r.subject),
      formatValue(r.reference),
      formatRatio(r.subject, r.reference),
    ]),
  );
}
