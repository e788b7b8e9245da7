// A group of local child processes for the `cluster` commands (`ballot raft cluster`, `ballot kv
// cluster`): each child runs this same CLI script with its own arguments and writes its output to
// a log file; the group knows why each child ended, stops them all by PID (SIGTERM, a bounded
// wait, then SIGKILL), and kills any still running if this process exits some other way.
// CapturedProcesses: children whose output is kept in memory, for tests that run real processes.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** Asks the OS for `n` distinct free TCP ports on 127.0.0.1 (holds them all open until all are known). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolveServer, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolveServer(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (typeof a !== 'object' || a === null) throw new Error('no port assigned');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The last `lines` lines of a text file ('' if it cannot be read); bounded to the file's last 64 KiB. */
export function tailLines(path: string, lines: number): string {
  try {
    const buf = readFileSync(path);
    const text = buf.subarray(Math.max(0, buf.length - 64 * 1024)).toString('utf8');
    return text.split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export interface ChildSpec {
  /** A short name for messages ("n1", "m2"). */
  readonly name: string;
  /** Arguments after the CLI script, e.g. ['raft', 'node', '--id', 'n1', ...]. */
  readonly args: readonly string[];
  /** stdout and stderr of the child are appended here. */
  readonly logFile: string;
}

export interface Child {
  readonly name: string;
  readonly logFile: string;
  readonly process: ChildProcess;
  readonly pid: number | undefined;
  /** null while running; then "exited with code N" or "killed by SIGNAL". */
  exit: string | null;
}

export class ChildGroup {
  readonly children: readonly Child[];
  private stopping: Promise<void> | null = null;
  private readonly exitListeners: ((c: Child) => void)[] = [];

  /** Starts one `node <script> ...args` per spec (script: this CLI, process.argv[1] by default). */
  constructor(specs: readonly ChildSpec[], script: string | undefined = process.argv[1]) {
    if (!script) throw new Error('cannot find the ballot CLI script to start child processes with');
    this.children = specs.map((spec) => {
      const fd = openSync(spec.logFile, 'a');
      const child = spawn(process.execPath, [script, ...spec.args], { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      const c: Child = { name: spec.name, logFile: spec.logFile, process: child, pid: child.pid, exit: null };
      child.on('exit', (code, signal) => {
        c.exit = signal ? `killed by ${signal}` : `exited with code ${code}`;
        for (const l of this.exitListeners) l(c);
      });
      child.on('error', (e) => {
        c.exit ??= `could not start: ${e.message}`;
      });
      return c;
    });
    // However this process ends, no child outlives it.
    process.on('exit', () => this.killAll('SIGKILL'));
  }

  /** Called once per child when it ends (also during stopAll). */
  onExit(listener: (c: Child) => void): void {
    this.exitListeners.push(listener);
  }

  get running(): readonly Child[] {
    return this.children.filter((c) => c.exit === null);
  }

  killAll(signal: NodeJS.Signals): void {
    for (const c of this.children) if (c.exit === null && c.pid !== undefined) safeKill(c.pid, signal);
  }

  /** SIGTERM to every running child by PID, wait up to graceMs for all to exit, then SIGKILL the rest (and wait for them). */
  stopAll(graceMs = 10_000): Promise<void> {
    this.stopping ??= (async () => {
      this.killAll('SIGTERM');
      const deadline = Date.now() + graceMs;
      while (this.running.length > 0 && Date.now() < deadline) await sleep(50);
      if (this.running.length > 0) {
        this.killAll('SIGKILL');
        const hardDeadline = Date.now() + 5_000;
        while (this.running.length > 0 && Date.now() < hardDeadline) await sleep(20);
      }
    })();
    return this.stopping;
  }
}

/** A child process whose output is kept in memory, with its end as a promise. */
export interface CapturedChild {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** null while running. */
  exitStatus: number | string | null;
}

/**
 * Children of `node <script> ...args` (tests of real processes: `ballot raft node`, `ballot kv
 * serve`), each stopped by PID: killAll() SIGKILLs those still running and waits for them.
 */
export class CapturedProcesses {
  private readonly running = new Set<CapturedChild>();

  start(script: string, args: readonly string[]): CapturedChild {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error(`could not start ${script}`);
    const p: CapturedChild = {
      child,
      pid: child.pid,
      stdout: '',
      stderr: '',
      exitStatus: null,
      exited: new Promise((resolveExit) => {
        child.on('exit', (code, signal) => {
          p.exitStatus = code ?? signal ?? -1;
          this.running.delete(p);
          resolveExit(p.exitStatus);
        });
      }),
    };
    child.stdout?.on('data', (b: Buffer) => (p.stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (p.stderr += b.toString()));
    this.running.add(p);
    return p;
  }

  /** SIGKILLs every child still running, by PID, and waits until each has exited. */
  async killAll(): Promise<void> {
    const waits: Promise<unknown>[] = [];
    for (const p of this.running) {
      safeKill(p.pid, 'SIGKILL');
      waits.push(p.exited);
    }
    await Promise.all(waits);
  }
}

/** Sends `signal` to `p` by PID unless it has ended; resolves with its exit status. */
export function signalAndWait(p: CapturedChild, signal: NodeJS.Signals): Promise<number | string> {
  if (p.exitStatus === null) safeKill(p.pid, signal);
  return p.exited;
}
