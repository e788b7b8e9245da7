// FileHistoryRecorder: events in order, in memory and in history.jsonl (which the checker parses), times from
// start(), the write buffer flushed at 64 KiB, completions paired with their invokes, and the bound on events.

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkHistory, pairOperations, parseHistory } from '../src/checker/index.js';
import { FLUSH_BYTES, FileHistoryRecorder, RecorderError } from '../src/chaos/recorder.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function historyPath(): string {
  const d = mkdtempSync(join(tmpdir(), 'ballot-recorder-'));
  dirs.push(d);
  return join(d, 'history.jsonl');
}

describe('FileHistoryRecorder', () => {
  it('writes the checker\'s format: the file parses, pairs and checks like the events in memory', async () => {
    const path = historyPath();
    const rec = await FileHistoryRecorder.create(path);
    rec.start();
    const p0 = rec.newProcess();
    const p1 = rec.newProcess();
    expect([p0, p1]).toEqual([0, 1]);
    const w = rec.invoke(p0, 'write', 'r1', 1, 'n1');
    const r = rec.invoke(p1, 'read', 'r1', null, 'n2');
    w.complete({ type: 'ok', value: 1 });
    r.complete({ type: 'ok', value: 1 });
    const c = rec.invoke(p0, 'cas', 'r1', [1, 2], 'n1');
    c.complete({ type: 'info', error: 'TIMEOUT: no answer within 1000 ms' });
    const p2 = rec.newProcess(); // after info, a new process
    const f = rec.invoke(p2, 'write', 'r2', 5, 'n1');
    f.complete({ type: 'fail', error: 'NO_LEADER: etcdserver: no leader' });
    const r2 = rec.invoke(p2, 'read', 'r1', null);
    r2.complete({ type: 'ok', value: 2 });
    await rec.close();

    const text = readFileSync(path, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(10);
    expect(lines).toEqual(rec.events.map((e) => JSON.parse(JSON.stringify(e)) as unknown));
    expect(lines[0]).toMatchObject({ process: 0, type: 'invoke', f: 'write', key: 'r1', value: 1, node: 'n1' });
    expect(lines[5]).toMatchObject({ process: 0, type: 'info', f: 'cas', value: [1, 2], error: 'TIMEOUT: no answer within 1000 ms' });
    expect(lines[7]).toMatchObject({ process: 2, type: 'fail', f: 'write', value: 5, error: 'NO_LEADER: etcdserver: no leader' });
    expect(lines[8]).not.toHaveProperty('node');
    // Times are ns since start(), non-decreasing in line order.
    const times = lines.map((l) => l['time'] as number);
    expect(times.every((t, i) => Number.isSafeInteger(t) && t >= 0 && (i === 0 || t >= (times[i - 1] as number)))).toBe(true);

    const events = parseHistory(text);
    const ops = pairOperations(events);
    expect(ops.map((o) => [o.f, o.status])).toEqual([['write', 'ok'], ['read', 'ok'], ['cas', 'info'], ['read', 'ok']]);
    expect(checkHistory(ops).valid).toBe(true); // the info cas took effect: the last read saw 2
  });

  it('a complete() twice, a bad process id, and recording after close() are errors', async () => {
    const rec = await FileHistoryRecorder.create(historyPath());
    const op = rec.invoke(rec.newProcess(), 'read', 'k', null);
    op.complete({ type: 'ok', value: null });
    expect(() => op.complete({ type: 'ok', value: null })).toThrowError(expect.objectContaining({ code: 'already-completed' }));
    expect(() => rec.invoke(-1, 'read', 'k', null)).toThrow(RangeError);
    const open = rec.invoke(1, 'write', 'k', 1);
    expect(rec.openOperations).toBe(1);
    await rec.close();
    await rec.close(); // idempotent
    expect(() => open.complete({ type: 'ok', value: 1 })).toThrowError(expect.objectContaining({ code: 'closed' }));
    expect(() => rec.invoke(2, 'read', 'k', null)).toThrowError(RecorderError);
  });

  it('start() resets time zero, and only before the first event', async () => {
    const rec = await FileHistoryRecorder.create(historyPath());
    await new Promise((r) => setTimeout(r, 30));
    expect(rec.nowNs()).toBeGreaterThanOrEqual(20_000_000);
    rec.start();
    expect(rec.isStarted).toBe(true);
    expect(rec.nowNs()).toBeLessThan(20_000_000);
    rec.invoke(0, 'read', 'k', null).complete({ type: 'ok', value: null });
    expect(() => rec.start()).toThrowError(expect.objectContaining({ code: 'late-start' }));
    await rec.close();
    const viaConstructor = new FileHistoryRecorder(historyPath(), { maxEvents: 10 });
    expect(viaConstructor.maxEvents).toBe(10);
    await viaConstructor.close();
  });

  it('writes out at 64 KiB, holds the rest until flush()', async () => {
    const path = historyPath();
    const rec = await FileHistoryRecorder.create(path);
    rec.start();
    const big = 'x'.repeat(1000);
    let n = 0;
    while (statSync(path).size === 0) {
      rec.invoke(0, 'write', 'k', big).complete({ type: 'ok', value: big });
      n += 2;
      expect(n).toBeLessThan(200); // 64 KiB is ~64 events of 1 KB
    }
    const written = statSync(path).size;
    expect(written).toBeGreaterThanOrEqual(FLUSH_BYTES);
    expect(written).toBeLessThan(FLUSH_BYTES + 1100);
    rec.invoke(0, 'read', 'k', null).complete({ type: 'ok', value: big });
    expect(statSync(path).size).toBe(written); // buffered
    await rec.flush();
    expect(statSync(path).size).toBeGreaterThan(written);
    expect(parseHistory(readFileSync(path, 'utf8'))).toHaveLength(rec.events.length);
    await rec.close();
  });

  it('refuses new operations at maxEvents, but lets every open one complete', async () => {
    const path = historyPath();
    const rec = await FileHistoryRecorder.create(path, { maxEvents: 7 });
    const a = rec.invoke(0, 'write', 'k', 1);
    const b = rec.invoke(1, 'write', 'k', 2);
    const c = rec.invoke(2, 'write', 'k', 3); // 3 invokes + 3 reserved completions = 6
    let refused: unknown;
    try {
      rec.invoke(3, 'write', 'k', 4);
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(RecorderError);
    expect((refused as RecorderError).code).toBe('too-many-events');
    expect((refused as RecorderError).message).toMatch(/most allowed is 7/);
    a.complete({ type: 'ok', value: 1 });
    b.complete({ type: 'info', error: 'TIMEOUT' });
    c.complete({ type: 'ok', value: 3 });
    expect(rec.events).toHaveLength(6);
    expect(() => rec.invoke(4, 'read', 'k', null)).toThrowError(expect.objectContaining({ code: 'too-many-events' }));
    await rec.close();
    expect(pairOperations(parseHistory(readFileSync(path, 'utf8')))).toHaveLength(3);
    await expect(FileHistoryRecorder.create(path, { maxEvents: 1 })).rejects.toThrow(RangeError);
    await expect(FileHistoryRecorder.create(join(path, 'not-a-dir', 'h.jsonl'))).rejects.toThrowError(expect.objectContaining({ code: 'write-failed' }));
  });
});
