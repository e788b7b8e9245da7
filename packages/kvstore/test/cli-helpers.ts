// Helpers for the `ballot kv` process tests: run the built CLI (packages/cli/dist/bin.js; the root
// `npm test` builds first), start `ballot kv cluster` on OS-assigned free ports in a temp folder,
// and make sure every process started here is stopped by PID, also when a test fails.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = resolve(here, '../../cli/dist/bin.js');

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Every process started through these helpers: killed by PID in cleanup(). */
const started = new Set<number>();
const tempDirs = new Set<string>();

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitGone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pids.every((p) => !alive(p))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return pids.every((p) => !alive(p));
}

/** SIGKILLs every process started here that is still alive, and removes the temp dirs. */
export async function cleanup(): Promise<void> {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await waitGone([...started], 5000);
  started.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/** Runs `ballot <args>` to completion (bounded), with optional stdin. */
export function ballot(args: readonly string[], opts: { stdin?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    if (child.pid !== undefined) started.add(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Starts `ballot <args>` and leaves it running; its output accumulates in `output()`. */
export function start(args: readonly string[]): { child: ChildProcess; output: () => string; waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) started.add(child.pid);
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const waitFor = async (re: RegExp, timeoutMs = 45_000): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(text);
      if (m) return m;
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`did not see ${re} (exit ${child.exitCode}); output so far:\n${text}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, output: () => text, waitFor, exited };
}

export interface KvClusterHandle {
  readonly endpoints: string[];
  readonly memberPids: number[];
  readonly dataDir: string;
  readonly proc: ReturnType<typeof start>;
}

/** `ballot kv cluster --members n` in a temp folder; resolves once it printed its endpoints. */
export async function startKvCluster(n: number, dataDir = tempDir('ballot-cli-kvc-')): Promise<KvClusterHandle> {
  const proc = start(['kv', 'cluster', '--members', String(n), '--data-dir', dataDir]);
  // The member PIDs are printed first; remember them so cleanup kills them even if the start fails.
  await proc.waitFor(new RegExp(`m${n}: pid \\d+`), 20_000);
  const memberPids = [...proc.output().matchAll(/m\d+: pid (\d+)/g)].map((m) => Number(m[1]));
  for (const pid of memberPids) started.add(pid);
  const m = await proc.waitFor(/endpoints: (\S+)/);
  return { endpoints: m[1]!.split(','), memberPids, dataDir, proc };
}

export function isAlive(pid: number): boolean {
  return alive(pid);
}
