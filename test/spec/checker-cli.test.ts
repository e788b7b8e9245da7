import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerCheckCommand, runCheck, type CheckIo } from '../src/cli/check.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ballot-check-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
  process.exitCode = undefined;
});

const ev = (process: number, type: string, f: string, value: unknown, key = 'x'): string =>
  JSON.stringify({ process, type, f, key, value, time: 0 });

function capture(): { io: CheckIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (l) => void out.push(l), stderr: (l) => void err.push(l) }, out, err };
}

async function file(name: string, ...lines: string[]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

const lastJson = (out: readonly string[]): Record<string, unknown> => JSON.parse(out[out.length - 1] ?? '') as Record<string, unknown>;

describe('ballot check', () => {
  it('valid history: exit 0 and the summary JSON as the last line', async () => {
    const f = await file('ok.jsonl', ev(0, 'invoke', 'write', 1), ev(1, 'invoke', 'read', null), ev(1, 'ok', 'read', 1), ev(0, 'ok', 'write', 1));
    const c = capture();
    expect(await runCheck(f, { model: 'register' }, c.io)).toBe(0);
    expect(lastJson(c.out)).toMatchObject({ valid: true, ops: 2, keys: 1 });
    expect(typeof lastJson(c.out)['ms']).toBe('number');
  });

  it('invalid history: exit 1, explains the failure, writes result.json with --out', async () => {
    const f = await file('bad.jsonl', ev(0, 'invoke', 'write', 1), ev(0, 'ok', 'write', 1), ev(1, 'invoke', 'read', null), ev(1, 'ok', 'read', null));
    const c = capture();
    const out = join(dir, 'out');
    expect(await runCheck(f, { model: 'register', out }, c.io)).toBe(1);
    expect(lastJson(c.out)).toMatchObject({ valid: false, ops: 2, keys: 1 });
    expect(c.out.join('\n')).toContain('p1 read -> null (ok, lines 3-4)   <- already returned');
    const saved = JSON.parse(await readFile(join(out, 'result.json'), 'utf8')) as { valid: unknown; key: unknown };
    expect([saved.valid, saved.key]).toEqual([false, 'x']);
  });

  it('bad input: exit 2 and an error naming the line', async () => {
    const f = await file('broken.jsonl', ev(0, 'invoke', 'write', 1), ev(1, 'ok', 'read', 1));
    const c = capture();
    expect(await runCheck(f, { model: 'register' }, c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/line 2: an "ok" on process 1 without an open invoke/);
    expect(lastJson(c.out)).toMatchObject({ valid: 'unknown', ops: 0 });
  });

  it('an exhausted time budget: exit 2, unknown', async () => {
    const f = await file('ok.jsonl', ev(0, 'invoke', 'write', 1), ev(0, 'ok', 'write', 1));
    const c = capture();
    expect(await runCheck(f, { model: 'register', timeBudgetMs: 0 }, c.io)).toBe(2);
    expect(lastJson(c.out)).toMatchObject({ valid: 'unknown', ops: 1, keys: 1 });
  });

  it('--model kv checks put/get/delete/txn; register operations are bad input for it', async () => {
    const bad = await file('kv.jsonl', ev(0, 'invoke', 'put', 1), ev(0, 'ok', 'put', null), ev(0, 'invoke', 'delete', null), ev(0, 'ok', 'delete', 1), ev(1, 'invoke', 'get', null), ev(1, 'ok', 'get', 1));
    const c = capture();
    expect(await runCheck(bad, { model: 'kv' }, c.io)).toBe(1);
    expect(c.out.join('\n')).toContain('p1 get -> 1 (ok, lines 5-6)   <- already returned');
    const mixed = await file('mixed.jsonl', ev(0, 'invoke', 'put', 1), ev(0, 'ok', 'put', null), ev(0, 'invoke', 'read', null), ev(0, 'ok', 'read', 1));
    const m = capture();
    expect(await runCheck(mixed, { model: 'kv' }, m.io)).toBe(2);
    expect(m.err.join('\n')).toMatch(/line 3: "read" is not an operation of the kv model/);
    const r = capture();
    expect(await runCheck(mixed, { model: 'register' }, r.io)).toBe(2);
    expect(r.err.join('\n')).toMatch(/line 1: "put" is not an operation of the register model/);
  });

  it('is wired through commander (registerCheckCommand)', async () => {
    const f = await file('bad.jsonl', ev(0, 'invoke', 'write', 1), ev(0, 'ok', 'write', 1), ev(1, 'invoke', 'read', null), ev(1, 'ok', 'read', 2));
    const c = capture();
    const program = new Command('ballot');
    registerCheckCommand(program, c.io);
    await program.parseAsync(['check', f, '--model', 'register'], { from: 'user' });
    expect(process.exitCode).toBe(1);
    expect(lastJson(c.out)['valid']).toBe(false);
  });
});
