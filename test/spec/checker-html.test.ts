// The HTML timeline: produced by `ballot check --out`, self-contained, and it points at the failure.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pairOperations, parseHistory } from '../src/checker/history.js';
import { renderTimeline } from '../src/checker/html.js';
import { kvModel } from '../src/checker/models.js';
import { checkHistory } from '../src/checker/wgl.js';
import { runCheck, type CheckIo } from '../src/cli/check.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ballot-html-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ev = (process: number, type: string, f: string, value: unknown, key = 'x'): string =>
  JSON.stringify({ process, type, f, key, value, time: 1000 * process });
const quiet: CheckIo = { stdout: () => undefined, stderr: () => undefined };

/** The opening tag of the element with this id, or undefined. */
const tagOf = (html: string, id: string): string | undefined => new RegExp(`<div [^>]*id="${id}"[^>]*>`).exec(html)?.[0];

function expectSelfContained(html: string): void {
  expect(html.startsWith('<!doctype html>')).toBe(true);
  expect(html).not.toMatch(/https?:/i);
  expect(html).not.toMatch(/\b(src|href)\s*=\s*"(?!#)/i); // only in-page links
  expect(html).not.toMatch(/@import|url\(/i);
  expect(html).toContain('<style>');
  expect(html).toContain('<script>');
}

describe('HTML timeline', () => {
  it('ballot check --out writes timeline.html and result.json; an invalid history highlights the stuck operations', async () => {
    // Key "a" is fine; on key "x" a write of 1 completes, then a read sees nothing: the read is stuck.
    const lines = [
      ev(0, 'invoke', 'write', 5, 'a'), ev(0, 'ok', 'write', 5, 'a'),
      ev(0, 'invoke', 'write', 1), ev(0, 'ok', 'write', 1),
      ev(1, 'invoke', 'write', 2), ev(1, 'fail', 'write', 2),
      ev(2, 'invoke', 'write', 3), ev(2, 'info', 'write', 3),
      ev(3, 'invoke', 'read', null), ev(3, 'ok', 'read', 7),
    ];
    const file = join(dir, 'h.jsonl');
    await writeFile(file, `${lines.join('\n')}\n`);
    const out = join(dir, 'out');
    expect(await runCheck(file, { model: 'register', out }, quiet)).toBe(1);
    const html = await readFile(join(out, 'timeline.html'), 'utf8');
    expectSelfContained(html);

    const result = checkHistory(pairOperations(parseHistory(lines.join('\n'))));
    expect(result.valid).toBe(false);
    if (result.valid !== false) return;
    expect(result.point.stuck.length).toBeGreaterThan(0);
    for (const op of result.point.stuck) {
      expect(tagOf(html, `op-${op.id}`)).toMatch(/class="[^"]*\bstuck\b/);
      expect(html).toContain(`href="#op-${op.id}"`); // listed in the failure summary
    }
    expect(tagOf(html, `op-${result.point.overdue.id}`)).toMatch(/class="[^"]*\boverdue\b/);
    expect(html).toContain('Not linearizable: key &quot;x&quot;');
    // The failing key's lane comes first; the failed write and the indeterminate one are drawn too.
    expect(html.indexOf('key &quot;x&quot;')).toBeLessThan(html.indexOf('key &quot;a&quot;'));
    expect(html).toMatch(/<div class="fail" id="fail-line-5"/);
    expect(html).toMatch(/<div class="info[^"]*" id="op-\d+"[^>]*>(#\d+ )?p2 write 3</);

    const saved = JSON.parse(await readFile(join(out, 'result.json'), 'utf8')) as { valid: unknown; key: unknown; linearizations: unknown };
    expect(saved).toMatchObject({ valid: false, key: 'x', linearizations: { a: [0] } });
  });

  it('a valid history shows the linearization found as #n on each bar, in its order', () => {
    // The read returns 1 before the write of 1 completes: linearization write(#1), read(#2).
    const text = [ev(0, 'invoke', 'put', 1), ev(1, 'invoke', 'get', null), ev(1, 'ok', 'get', 1), ev(0, 'ok', 'put', null)].join('\n');
    const events = parseHistory(text);
    const ops = pairOperations(events);
    const result = checkHistory(ops, { model: kvModel, recordLinearizations: true });
    expect(result.valid).toBe(true);
    const html = renderTimeline({ events, ops, result });
    expectSelfContained(html);
    const put = ops.find((o) => o.f === 'put');
    const get = ops.find((o) => o.f === 'get');
    expect(html).toMatch(new RegExp(`id="op-${put?.id}"[^>]*>#1 p0 put 1<`));
    expect(html).toMatch(new RegExp(`id="op-${get?.id}"[^>]*>#2 p1 get -&gt; 1<`));
    expect(html).not.toMatch(/<div class="[^"]*\b(stuck|overdue)\b/);
  });

  it('draws at most maxBars bars and says how many keys it left out', () => {
    const text = ['a', 'b', 'c'].flatMap((k) => [ev(0, 'invoke', 'write', 1, k), ev(0, 'ok', 'write', 1, k)]).join('\n');
    const events = parseHistory(text);
    const ops = pairOperations(events);
    const html = renderTimeline({ events, ops, result: checkHistory(ops, { recordLinearizations: true }), maxBars: 2 });
    expect(html.match(/<div class="ok"/g)?.length).toBe(2);
    expect(html).toContain('1 more keys not drawn');
  });

  it('escapes keys and values', () => {
    const text = [ev(0, 'invoke', 'write', '<script>x</script>', '<k>'), ev(0, 'ok', 'write', '<script>x</script>', '<k>')].join('\n');
    const events = parseHistory(text);
    const ops = pairOperations(events);
    const html = renderTimeline({ events, ops, result: checkHistory(ops) });
    expect(html).not.toContain('<script>x');
    expect(html).toContain('&lt;k&gt;');
  });
});
