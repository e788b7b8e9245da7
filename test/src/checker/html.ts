// The HTML timeline of a checked history: one self-contained file (inline CSS and a few lines of
// inline JS, nothing fetched from the network) that a person opens in a browser.
//
// Layout. Each key gets a lane; inside it every operation is a bar from its invoke to its
// completion, stacked in as many rows as the key had operations in flight at once. The horizontal
// axis is the order of events in the history (real-time order is what linearizability is about;
// the `time` field is shown in each bar's tooltip). An operation that never completed, or completed
// with `info`, runs to the right edge: it may have taken effect any time after its invoke.
//
// Colours: ok green, info amber (striped), fail grey. A bar's label `#n` is its position in the
// linearization the checker found for that key. For an invalid history the failing key comes
// first: `#n` numbers the longest linearization the search reached, the operations that could not
// take effect after it are outlined red ("stuck"), and the one that had already returned - so
// the search could go no further - is filled red ("overdue").

import { describeCall } from './describe.js';
import type { HistoryEvent, Operation } from './history.js';
import type { CheckResult } from './wgl.js';

export interface TimelineInput {
  readonly events: readonly HistoryEvent[];
  /** The paired operations of `events` (pairOperations). */
  readonly ops: readonly Operation[];
  /** The verdict; pass recordLinearizations to checkHistory to get the `#n` labels of valid keys. */
  readonly result: CheckResult;
  readonly title?: string;
  /**
   * Upper bound on bars drawn (default 20,000). Keys are drawn failing key first, then by name,
   * until the next key would pass the bound; the page says how many keys were left out.
   */
  readonly maxBars?: number;
}

const DEFAULT_MAX_BARS = 20_000;
const ROW_HEIGHT_PX = 18;
const PX_PER_EVENT = 8;
const MIN_WIDTH_PX = 900;
const MAX_WIDTH_PX = 200_000;

/** One bar: a paired operation, or a failed call (which pairOperations drops: it did not happen). */
interface Bar {
  readonly domId: string;
  readonly status: 'ok' | 'info' | 'fail';
  readonly key: string;
  readonly start: number;
  /** Event index of the completion; `Infinity` when indeterminate. */
  readonly end: number;
  readonly label: string;
  readonly tooltip: string;
  readonly classes: readonly string[];
}

const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** Calls that completed with `fail`, paired from the raw events (each with its invoke event). */
function failedCalls(events: readonly HistoryEvent[]): { readonly invoke: HistoryEvent; readonly start: number; readonly end: number; readonly done: HistoryEvent }[] {
  const open = new Map<number, { readonly e: HistoryEvent; readonly i: number }>();
  const out: { invoke: HistoryEvent; start: number; end: number; done: HistoryEvent }[] = [];
  events.forEach((e, i) => {
    if (e.type === 'invoke') open.set(e.process, { e, i });
    else {
      const inv = open.get(e.process);
      open.delete(e.process);
      if (inv !== undefined && e.type === 'fail') out.push({ invoke: inv.e, start: inv.i, end: i, done: e });
    }
  });
  return out;
}

/** Greedy interval packing: the row of each bar, so that bars in one row never overlap. */
function packRows(bars: readonly Bar[]): number[] {
  const rowEnds: number[] = [];
  return bars.map((b) => {
    let row = rowEnds.findIndex((end) => end < b.start);
    if (row < 0) row = rowEnds.push(b.end) - 1;
    else rowEnds[row] = b.end;
    return row;
  });
}

function opTooltip(op: Operation, order: number | undefined): string {
  const lines = op.completeLine === null ? `line ${op.invokeLine}, never completed` : `lines ${op.invokeLine}-${op.completeLine}`;
  const times = `time ${op.invokeTimeNs}..${op.completeTimeNs ?? '?'} ns`;
  const lin = order === undefined ? '' : `, linearized #${order}`;
  return `op ${op.id}: p${op.process} ${describeCall(op)} (${op.status}, ${lines}, ${times}${lin})`;
}

/** Renders the whole page. */
export function renderTimeline(input: TimelineInput): string {
  const { events, ops, result } = input;
  const total = Math.max(1, events.length);
  const maxBars = input.maxBars ?? DEFAULT_MAX_BARS;

  // Linearization positions (1-based) per operation id, and the failure's highlighted operations.
  const order = new Map<number, number>();
  for (const lin of result.valid === 'unknown' ? [] : (result.linearizations?.values() ?? [])) lin.forEach((op, i) => order.set(op.id, i + 1));
  const stuck = new Set<number>();
  let overdue = -1;
  if (result.valid === false) {
    result.point.linearized.forEach((op, i) => order.set(op.id, i + 1));
    for (const op of result.point.stuck) stuck.add(op.id);
    overdue = result.point.overdue.id;
  }

  const barsByKey = new Map<string, Bar[]>();
  const add = (b: Bar): void => {
    const list = barsByKey.get(b.key);
    if (list === undefined) barsByKey.set(b.key, [b]);
    else list.push(b);
  };
  for (const op of ops) {
    const n = order.get(op.id);
    const classes = [op.status, ...(stuck.has(op.id) ? ['stuck'] : []), ...(op.id === overdue ? ['overdue'] : [])];
    add({
      domId: `op-${op.id}`,
      status: op.status,
      key: op.key,
      start: op.invokeIndex,
      end: op.completeIndex,
      label: `${n === undefined ? '' : `#${n} `}p${op.process} ${describeCall(op)}`,
      tooltip: opTooltip(op, n),
      classes,
    });
  }
  for (const f of failedCalls(events)) {
    add({
      domId: `fail-line-${f.invoke.line}`,
      status: 'fail',
      key: f.invoke.key,
      start: f.start,
      end: f.end,
      label: `p${f.invoke.process} ${f.invoke.f} (fail)`,
      tooltip: `p${f.invoke.process} ${f.invoke.f} ${JSON.stringify(f.invoke.value)} (fail: did not happen, lines ${f.invoke.line}-${f.done.line})`,
      classes: ['fail'],
    });
  }

  // Failing key first, then by name; stop before the bar bound.
  const failingKey = result.valid === false ? result.key : undefined;
  const keys = [...barsByKey.keys()].sort((a, b) => (a === failingKey ? -1 : b === failingKey ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const shown: string[] = [];
  let barCount = 0;
  for (const k of keys) {
    const n = barsByKey.get(k)?.length ?? 0;
    if (shown.length > 0 && barCount + n > maxBars) break;
    shown.push(k);
    barCount += n;
  }

  const widthPx = Math.min(MAX_WIDTH_PX, Math.max(MIN_WIDTH_PX, total * PX_PER_EVENT));
  const pct = (i: number): number => (100 * Math.min(i, total)) / total;
  const lanes = shown.map((key) => {
    const bars = [...(barsByKey.get(key) ?? [])].sort((a, b) => a.start - b.start);
    const rows = packRows(bars);
    const height = (Math.max(0, ...rows) + 1) * ROW_HEIGHT_PX;
    const checked = result.valid === true || (result.valid === false && result.linearizations?.has(key) === true);
    const status =
      key === failingKey
        ? '<span class="verdict bad">not linearizable</span>'
        : checked
          ? '<span class="verdict good">linearizable</span>'
          : '<span class="verdict">not checked</span>';
    const divs = bars
      .map((b, i) => {
        const left = pct(b.start);
        const width = Math.max(0.05, pct(b.end === Infinity ? total : b.end + 1) - left);
        return `<div class="${b.classes.join(' ')}" id="${escapeHtml(b.domId)}" style="left:${left.toFixed(3)}%;width:${width.toFixed(3)}%;top:${(rows[i] ?? 0) * ROW_HEIGHT_PX}px" title="${escapeHtml(b.tooltip)}">${escapeHtml(b.label)}</div>`;
      })
      .join('\n');
    return `<section class="lane"><h2>key ${escapeHtml(JSON.stringify(key))} ${status} <small>${bars.length} operations</small></h2><div class="bars" style="height:${height}px">\n${divs}\n</div></section>`;
  });

  const verdict =
    result.valid === true
      ? '<p class="verdict good">Linearizable.</p>'
      : result.valid === 'unknown'
        ? `<p class="verdict">Unknown: the time budget ran out after ${result.keysChecked} of ${result.keys} keys.</p>`
        : failureSummary(result);
  const omitted = keys.length - shown.length;
  const title = input.title ?? 'Linearizability check';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 8px}h2{font-size:13px;margin:12px 0 4px}small{color:#777;font-weight:normal}
.verdict{font-weight:bold}.good{color:#1a7f37}.bad{color:#c62828}
.scroll{overflow-x:auto;border:1px solid #ddd;padding:4px}
.track{position:relative;width:${widthPx}px}
.bars{position:relative}
.bars>div{position:absolute;height:${ROW_HEIGHT_PX - 3}px;box-sizing:border-box;border:1px solid #0003;border-radius:3px;
  font-size:10px;white-space:nowrap;overflow:hidden;padding:0 2px;cursor:pointer}
.ok{background:#a5d6a7}.info{background:repeating-linear-gradient(45deg,#ffe082,#ffe082 4px,#fff3c4 4px,#fff3c4 8px)}
.fail{background:#e0e0e0;color:#666}
.stuck{outline:2px solid #c62828;z-index:1}.overdue{background:#ef9a9a;outline:3px solid #b71c1c;z-index:2}
.selected{outline:3px solid #1565c0!important;z-index:3}
.legend span{display:inline-block;padding:0 6px;margin-right:6px;border:1px solid #0003;border-radius:3px}
#detail{position:sticky;top:0;background:#fffde7;border:1px solid #ddd;padding:4px 8px;min-height:1.4em;z-index:5}
ol{margin:4px 0}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p>${result.ops} operations, ${result.keys} keys. Horizontal axis: order of events in the history (real-time order).</p>
${verdict}
<p class="legend"><span class="ok">ok</span><span class="info">info / never completed</span><span class="fail">fail (did not happen)</span><span class="ok stuck">stuck</span><span class="overdue">overdue</span> <code>#n</code>: position in the linearization</p>
<div id="detail">Click an operation for its details.</div>
${omitted > 0 ? `<p>${omitted} more keys not drawn (over ${maxBars} bars).</p>` : ''}
<div class="scroll"><div class="track">
${lanes.join('\n')}
</div></div>
<script>
document.addEventListener('click', function (ev) {
  var t = ev.target;
  if (!(t instanceof HTMLElement) || !t.parentElement || !t.parentElement.classList.contains('bars')) return;
  document.querySelectorAll('.selected').forEach(function (e) { e.classList.remove('selected'); });
  t.classList.add('selected');
  document.getElementById('detail').textContent = t.title;
});
</script>
</body></html>
`;
}

function failureSummary(result: Extract<CheckResult, { readonly valid: false }>): string {
  const p = result.point;
  const item = (op: Operation, note = ''): string =>
    `<li><a href="#op-${op.id}">op ${op.id}</a>: p${op.process} ${escapeHtml(describeCall(op))} (${op.status}, line ${op.invokeLine})${note}</li>`;
  return `<p class="verdict bad">Not linearizable: key ${escapeHtml(JSON.stringify(result.key))} (${result.subHistory.length} operations).</p>
<p>The longest linearization found (${p.linearized.length} operations), ending in state <code>${escapeHtml(p.stateAfter)}</code>:</p>
<ol>${p.linearized.map((op) => item(op)).join('')}</ol>
<p>After it, none of these pending operations can take effect:</p>
<ul>${p.stuck.map((op) => item(op, op.id === p.overdue.id ? ' <b>&larr; already returned</b>' : '')).join('')}</ul>`;
}
