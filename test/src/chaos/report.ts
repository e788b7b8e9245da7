// report.html: one self-contained page per chaos run (no script, no network: styles inline, the
// plots' SVG inline, links only to the run's own files). The verdict first, big and coloured; then
// the command that replays the run, the numbers (counts, latency, every fault window and quiet
// stretch with its availability), the anomalies, the plots, and links to the timeline, the history,
// the applied windows and the nodes' logs. Everything that comes from the run is HTML-escaped.

import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChaosOptions, ChaosResults, OutcomeCounts, WindowStats } from './types.js';

/** Anomalies listed in the report (the results count all of them). */
export const MAX_REPORTED_ANOMALIES = 100;

/** The default inline plots, as writeRunPlots writes them. */
const DEFAULT_PLOTS = ['plots/latency.svg', 'plots/throughput.svg'] as const;

export interface ReportOptions {
  /** SVG files to show inline, relative to outDir (default: plots/latency.svg, plots/throughput.svg); missing ones are noted. */
  readonly plots?: readonly string[];
  /** The HTML timeline, relative to outDir (default: timeline.html when it exists). */
  readonly timelineFile?: string;
  /** The run's options: the reproduce command then names every flag (else it is built from the results). */
  readonly options?: ChaosOptions;
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/** Quotes a shell word when it needs it (POSIX single quotes). */
function shellWord(word: string): string {
  return /^[\w.,/:=@+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line that replays the run (same seed, same schedule; a new output folder). With the
 * run's options every flag is named; from the results alone the flags they do not record (rate,
 * concurrency, keys, timeouts) are left at their defaults.
 */
export function reproduceCommand(results: ChaosResults, options?: ChaosOptions): string {
  const args: string[] = [
    'npx', 'ballot', 'chaos',
    '--nodes', String(results.nodes),
    '--workload', results.workload,
    '--nemesis', results.nemeses.length === 0 ? 'none' : results.nemeses.join(','),
    '--duration', String(results.durationMs / 1000),
    '--seed', String(results.seed),
    '--read-mode', results.readMode,
  ];
  if (options !== undefined) {
    args.push(
      '--rate', String(options.ratePerSec),
      '--concurrency', String(options.concurrency),
      '--keys', String(options.keys),
      '--heartbeat-interval', String(options.heartbeatIntervalMs),
      '--election-timeout', String(options.electionTimeoutMs),
      '--request-timeout-ms', String(options.requestTimeoutMs),
      '--check-budget-ms', String(options.checkBudgetMs),
    );
  }
  if (options?.unsafeStaleReads ?? results.unsafe.includes('unsafe-stale-reads')) args.push('--unsafe-stale-reads');
  if (options?.unsafeNoFsync ?? results.unsafe.includes('unsafe-no-fsync')) args.push('--unsafe-no-fsync');
  return args.map(shellWord).join(' ');
}

/** A plot to show: its file and its SVG text (null when the file could not be read). */
export interface ReportPlot {
  readonly file: string;
  readonly svg: string | null;
}

/** A link to one of the run's files. */
export interface ReportLink {
  readonly href: string;
  readonly label: string;
}

const VERDICTS = {
  true: { word: 'VALID', colour: '#1a7f37', background: '#dafbe1' },
  false: { word: 'INVALID', colour: '#b91c1c', background: '#fee2e2' },
  unknown: { word: 'UNKNOWN', colour: '#92400e', background: '#fef3c7' },
} as const;

function fmt(x: number, digits = 0): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Milliseconds with about three significant digits below 100 (µs resolution below 10 ms). */
function fmtMs(ms: number): string {
  return fmt(ms, ms < 10 ? 3 : ms < 100 ? 2 : ms < 1000 ? 1 : 0);
}

function percent(availability: number | null): string {
  return availability === null ? '–' : `${fmt(availability * 100, 1)} %`;
}

/** Background of an availability cell: green at 100 %, through amber, red at 0 %. */
function availabilityColour(availability: number | null): string {
  if (availability === null) return 'transparent';
  return `hsl(${Math.round(availability * 120)}, 70%, 88%)`;
}

function countsCells(c: OutcomeCounts): string {
  return `<td class="n">${fmt(c.ok + c.fail + c.info)}</td><td class="n">${fmt(c.ok)}</td><td class="n">${fmt(c.fail)}</td><td class="n">${fmt(c.info)}</td>`;
}

function windowRow(w: WindowStats): string {
  const kind = w.kind === 'quiet' ? '<span class="quiet">quiet</span>' : `<b>${escapeHtml(w.kind)}</b>`;
  return (
    `<tr${w.kind === 'quiet' ? ' class="quiet-row"' : ''}><td class="n">${w.kind === 'quiet' ? '' : `#${fmt(w.id)}`}</td><td>${kind}</td>` +
    `<td>${escapeHtml(w.description)}</td><td class="n">${fmt(w.startMs / 1000, 2)}</td><td class="n">${fmt(w.endMs / 1000, 2)}</td>` +
    `${countsCells(w.counts)}<td class="n" style="background:${availabilityColour(w.availability)}">${percent(w.availability)}</td></tr>`
  );
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #1f2328; }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.verdict { border: 3px solid; border-radius: 10px; padding: 14px 20px; margin: 12px 0 18px; }
.verdict .word { font-size: 44px; font-weight: 800; letter-spacing: 0.04em; }
.verdict .summary { font-size: 16px; margin-top: 4px; }
.error { color: #b91c1c; font-weight: 600; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; margin: 6px 0; } th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.quiet { color: #57606a; } tr.quiet-row td { color: #57606a; }
.plot { overflow-x: auto; margin: 10px 0; } .plot svg { max-width: 100%; height: auto; }
.note { color: #57606a; font-size: 13px; }
ol.anomalies li { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; word-break: break-all; }
`;

/** The page (pure): the results, the plots' SVG, links to the run's files, the reproduce command. */
export function renderReport(results: ChaosResults, parts: { readonly plots: readonly ReportPlot[]; readonly links: readonly ReportLink[]; readonly command: string }): string {
  const v = VERDICTS[String(results.valid) as 'true' | 'false' | 'unknown'];
  const r = results;
  const title = `ballot chaos: ${r.workload}, ${r.nodes} nodes, seed ${r.seed} — ${v.word}`;
  const lines: string[] = [];
  const row = (name: string, value: string): void => {
    lines.push(`<tr><th>${escapeHtml(name)}</th><td>${value}</td></tr>`);
  };

  lines.push('<!doctype html>', '<html lang="en"><head><meta charset="utf-8">');
  lines.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  lines.push(`<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>`);
  lines.push(`<h1>ballot chaos: ${escapeHtml(r.workload)} workload, ${fmt(r.nodes)} nodes, nemeses ${escapeHtml(r.nemeses.join(', ') || 'none')}, seed ${fmt(r.seed)}</h1>`);
  lines.push(`<div class="verdict" id="verdict" style="color:${v.colour};background:${v.background};border-color:${v.colour}">`);
  lines.push(`<div class="word">${v.word}</div><div class="summary">${escapeHtml(r.verdict.summary)}</div>`);
  if (r.error !== undefined) {
    // A false verdict stands (it was found in the history); the error came after it.
    const what = r.valid === false ? 'after the verdict, an error' : 'the run failed';
    lines.push(`<div class="error">${what}: ${escapeHtml(r.error)}</div>`);
  }
  lines.push('</div>');

  lines.push('<h2>Reproduce</h2>', `<pre id="command">${escapeHtml(parts.command)}</pre>`);
  lines.push('<p class="note">The same seed draws the same fault schedule and the same operation mix; timing on a real cluster still differs from run to run.</p>');

  lines.push('<h2>Run</h2><table>');
  row('workload', escapeHtml(r.workload));
  row('nodes', fmt(r.nodes));
  row('nemeses', escapeHtml(r.nemeses.join(', ') || 'none'));
  row('read mode', escapeHtml(r.readMode));
  row('unsafe (anomalies expected)', r.unsafe.length === 0 ? 'none' : `<b class="error">${escapeHtml(r.unsafe.join(', '))}</b>`);
  row('duration', `${fmt(r.durationMs / 1000, 1)} s`);
  row('operations', `${fmt(r.ops)} (ok ${fmt(r.counts.ok)}, fail ${fmt(r.counts.fail)}, info ${fmt(r.counts.info)})`);
  row('throughput', `${fmt(r.throughputPerSec, 1)} ok operations/s`);
  row('check', `${fmt(r.checkMs)} ms`);
  row('output folder', escapeHtml(r.outDir));
  lines.push('</table>');

  if (r.verdict.checks.length > 0) {
    lines.push('<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>summary</th></tr>');
    for (const c of r.verdict.checks) {
      const cv = VERDICTS[String(c.valid) as 'true' | 'false' | 'unknown'];
      lines.push(`<tr><td>${escapeHtml(c.name)}</td><td style="color:${cv.colour};font-weight:700">${cv.word}</td><td>${escapeHtml(c.summary)}</td></tr>`);
    }
    lines.push('</table>');
  }

  lines.push('<h2>Operations</h2><table><tr><th>function</th><th>all</th><th>ok</th><th>fail</th><th>info</th></tr>');
  for (const [f, c] of Object.entries(r.byFunction)) lines.push(`<tr><td>${escapeHtml(f)}</td>${countsCells(c)}</tr>`);
  lines.push(`<tr><th>all</th>${countsCells(r.counts)}</tr></table>`);
  lines.push('<p class="note">ok: happened; fail: certainly did not happen; info: may or may not have happened (timeouts, lost connections, and invokes that never returned).</p>');

  const l = r.latencyMs;
  lines.push('<h2>Latency of ok operations (ms)</h2>');
  lines.push('<table><tr><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>');
  lines.push(`<tr><td class="n">${fmt(l.count)}</td>${[l.p50, l.p90, l.p99, l.p999, l.max].map((x) => `<td class="n">${fmtMs(x)}</td>`).join('')}</tr></table>`);
  lines.push('<p class="note">Nearest-rank percentiles: the p-th percentile of n latencies is the ⌈p/100 · n⌉-th smallest.</p>');

  lines.push('<h2>Fault windows and availability</h2>');
  lines.push('<table><tr><th>#</th><th>kind</th><th>description</th><th>start (s)</th><th>end (s)</th><th>ops</th><th>ok</th><th>fail</th><th>info</th><th>availability</th></tr>');
  for (const w of r.windows) lines.push(windowRow(w));
  lines.push('</table>');
  lines.push('<p class="note">An operation belongs to the window it was invoked in; availability = ok / all operations invoked there.</p>');

  lines.push(`<h2>Anomalies (${fmt(r.verdict.anomalyCount)})</h2>`);
  if (r.verdict.anomalies.length === 0) lines.push('<p>None found.</p>');
  else {
    const shown = r.verdict.anomalies.slice(0, MAX_REPORTED_ANOMALIES);
    lines.push(`<ol class="anomalies">${shown.map((a) => `<li>${escapeHtml(a)}</li>`).join('')}</ol>`);
    if (r.verdict.anomalyCount > shown.length) lines.push(`<p class="note">The first ${fmt(shown.length)} of ${fmt(r.verdict.anomalyCount)}; results.json has those the checker kept.</p>`);
  }

  lines.push('<h2>Plots</h2>');
  if (parts.plots.length === 0) lines.push('<p class="note">No plots were written.</p>');
  for (const p of parts.plots) {
    lines.push(
      p.svg === null
        ? `<p class="note">${escapeHtml(p.file)} was not written.</p>`
        : `<div class="plot" id="${escapeHtml(p.file)}">${p.svg}</div>`,
    );
  }

  lines.push('<h2>Files</h2>');
  lines.push(parts.links.length === 0 ? '<p class="note">None.</p>' : `<ul>${parts.links.map((k) => `<li><a href="${escapeHtml(k.href)}">${escapeHtml(k.label)}</a></li>`).join('')}</ul>`);
  lines.push('</body></html>', '');
  return lines.join('\n');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** An SVG file's markup for inlining: from its <svg tag on (no XML prolog); null when unreadable or not SVG. */
async function readSvg(path: string): Promise<string | null> {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return null;
  const start = text.indexOf('<svg');
  return start < 0 ? null : text.slice(start);
}

/** Links to the run's files that exist: timeline, history, applied windows, results, specs, logs. */
async function runLinks(outDir: string, timelineFile: string | undefined): Promise<ReportLink[]> {
  const candidates: [string, string][] = [
    [timelineFile ?? 'timeline.html', 'timeline: the checked history, lanes per key'],
    ['history.jsonl', 'history.jsonl: every operation (JSON Lines, ballot check reads it)'],
    ['nemesis.jsonl', 'nemesis.jsonl: the fault windows as applied'],
    ['results.json', 'results.json: these numbers'],
    ['check.json', "check.json: the checker's full result (the failing key's whole sub-history, every key's linearization)"],
    ['watch-events.jsonl', 'watch-events.jsonl: what every watcher saw'],
    ['plots/latency.vl.json', 'plots/latency.vl.json (vega-lite spec)'],
    ['plots/throughput.vl.json', 'plots/throughput.vl.json (vega-lite spec)'],
  ];
  const links: ReportLink[] = [];
  for (const [file, label] of candidates) if (await exists(join(outDir, file))) links.push({ href: encodeURI(file), label });
  const logs = (await readdir(join(outDir, 'nodes')).catch(() => [] as string[])).filter((f) => f.endsWith('.log')).sort();
  for (const f of logs) links.push({ href: encodeURI(`nodes/${f}`), label: `nodes/${f}` });
  return links;
}

/**
 * Writes outDir/report.html (see the top of this file); returns its path relative to outDir.
 * Reads the inline plots and looks for the run's files in outDir, so call it after writing them.
 */
export async function writeReport(outDir: string, results: ChaosResults, options: ReportOptions = {}): Promise<string> {
  const plots: ReportPlot[] = [];
  for (const file of options.plots?.filter((f) => f.endsWith('.svg')) ?? DEFAULT_PLOTS) plots.push({ file, svg: await readSvg(join(outDir, file)) });
  const links = await runLinks(outDir, options.timelineFile);
  const html = renderReport(results, { plots, links, command: reproduceCommand(results, options.options) });
  await writeFile(join(outDir, 'report.html'), html);
  return 'report.html';
}
