// Helpers of the chaos run suites (chaos-run, chaos-bug): `ballot` as a child process run to its end,
// the member PIDs a run's folder names, and its history.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordedEvent } from '../src/chaos/types.js';

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The last stdout line, parsed ({} when it is not JSON). */
  readonly last: Record<string, unknown>;
}

/** The PIDs a run's nodes/pids.json lists (the members running at its last rewrite, and the watchdog). */
export function listedPids(outDir: string): number[] {
  try {
    const f = JSON.parse(readFileSync(join(outDir, 'nodes', 'pids.json'), 'utf8')) as { pids?: unknown; watchdog?: unknown };
    const all = [...(Array.isArray(f.pids) ? f.pids : []), f.watchdog];
    return all.filter((p): p is number => Number.isInteger(p) && (p as number) > 1);
  } catch {
    return [];
  }
}

/** SIGCONT + SIGKILL by PID, each that still exists. */
export function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    for (const sig of ['SIGCONT', 'SIGKILL'] as const) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  }
}

/**
 * Runs `node BIN <args>` to its end; after `timeoutMs` it is SIGKILLed by PID and the promise rejects.
 * Then the members it had running (and its watchdog), as <--out>/nodes/pids.json lists them, are
 * SIGCONTed and SIGKILLed by PID too, so a hung run leaves nothing behind.
 * `onStderr` sees the stderr so far each time more arrives (with the child's PID).
 */
export function runCli(bin: string, args: readonly string[], timeoutMs = 90_000, onStderr?: (text: string, pid: number) => void): Promise<CliRun> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      onStderr?.(stderr, child.pid ?? 0);
    });
    const outAt = args.indexOf('--out');
    const outDir = outAt >= 0 ? args[outAt + 1] : undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      if (outDir !== undefined) killPids([...listedPids(outDir), ...memberPids(outDir, stderr)]);
      reject(new Error(`ballot ${args.join(' ')}: still running after ${timeoutMs} ms\n${stderr.slice(-4000)}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const lines = stdout.trim().split('\n');
      let last: Record<string, unknown> = {};
      try {
        last = JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>;
      } catch {
        // left empty: the assertions say what was expected
      }
      resolveRun({ code, stdout, stderr, last });
    });
  });
}

/**
 * Every member PID of a run: results.json's `pids`, and what the runner said on stderr when it
 * started and restarted members ("started 3 members (pids 1, 2, 3)", "restarted n2 (pid 4)").
 */
export function memberPids(outDir: string, stderr: string): number[] {
  const pids = new Set<number>();
  const resultsFile = join(outDir, 'results.json');
  if (existsSync(resultsFile)) for (const p of (JSON.parse(readFileSync(resultsFile, 'utf8')) as { pids?: number[] }).pids ?? []) pids.add(p);
  for (const m of stderr.matchAll(/\(pids? ([\d, ]+)\)/g)) for (const p of (m[1] ?? '').split(',')) pids.add(Number(p.trim()));
  for (const p of listedPids(outDir)) pids.add(p);
  return [...pids];
}

/** Whether a process with this PID exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** history.jsonl of a run folder. */
export function historyOf(outDir: string): RecordedEvent[] {
  return readFileSync(join(outDir, 'history.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as RecordedEvent);
}
