// Two process-level flags of `ballot kv serve` used by the chaos runner and the benches:
// --max-batch-entries (1 turns Raft proposal batching off) and --parent-pid (the member stops
// once the process that started it is gone, so a runner killed with SIGKILL leaves nothing behind).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CapturedProcesses, freePorts } from '@ballot/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { parseKvServeFlags } from '../src/server/flags.js';
import { usageError } from './server-helpers.js';

const BIN = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'packages/cli/dist/bin.js');
const procs = new CapturedProcesses();
const parents: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await procs.killAll();
  for (const p of parents.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('--max-batch-entries and --parent-pid', () => {
  it('parse, default off, and are refused when malformed', () => {
    const none = parseKvServeFlags([]);
    expect(none.maxBatchEntries).toBeUndefined();
    expect(none.parentPid).toBeUndefined();
    const o = parseKvServeFlags(['--max-batch-entries', '1', '--parent-pid', '4242']);
    expect(o.maxBatchEntries).toBe(1);
    expect(o.parentPid).toBe(4242);
    expect(usageError(['--max-batch-entries', '0'])).toMatch(/--max-batch-entries/);
    expect(usageError(['--max-batch-entries', 'many'])).toMatch(/--max-batch-entries/);
    expect(usageError(['--parent-pid', '-3'])).toMatch(/--parent-pid/);
  });

  it('a member started with --parent-pid stops by itself (exit 0) once that process is killed', async () => {
    expect(existsSync(BIN), `${BIN} is missing: run npm run build`).toBe(true);
    const parent = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    parents.push(parent);
    if (parent.pid === undefined) throw new Error('could not start the stand-in parent');
    const dir = mkdtempSync(join(tmpdir(), 'ballot-parent-pid-'));
    dirs.push(dir);
    const [client, peer] = (await freePorts(2)) as [number, number];
    const member = procs.start(BIN, [
      'kv', 'serve', '--name', 'solo', '--data-dir', join(dir, 'solo'),
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--max-batch-entries', '1', '--parent-pid', String(parent.pid), '--log-level', 'warn',
    ]);
    // Serving (a write commits with batching off), then the parent goes away.
    const deadline = Date.now() + 20_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline && member.exitStatus === null) {
      const r = await fetch(`http://127.0.0.1:${client}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: 'YQ==', value: 'Yg==' }) }).catch(() => null);
      status = r?.status ?? 0;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status, member.stderr.slice(-2000)).toBe(200);
    parent.kill('SIGKILL');
    const exit = await Promise.race([member.exited, new Promise((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
    expect(exit, member.stdout.slice(-2000)).toBe(0);
    expect(member.stdout + member.stderr).toMatch(/parent process is gone/);
  });
});
