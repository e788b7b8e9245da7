// A small process supervisor for benchmarks: spawn real processes with their output in log files,
// wait for readiness, stop them by PID (also when the benchmark fails or is interrupted), find free
// ports, and read a process's CPU time. Reusable by every benchmark under bench/.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

export interface SpawnOptions {
  /** Human name used in messages, e.g. "ballot/n1". */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** stdout and stderr are appended to this file (never piped to the benchmark, so a chatty child cannot stall it). */
  readonly logFile: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  isRunning(): boolean;
  /** Sends a signal to this PID if it is still running. */
  signal(sig: NodeJS.Signals): void;
}

/** Tracks every process it started, so all of them can be stopped by PID on any exit path. */
export class Supervisor {
  private readonly live = new Map<number, ManagedProcess>();
  private handlersInstalled = false;

  spawn(options: SpawnOptions): ManagedProcess {
    const fd = openSync(options.logFile, 'a');
    let child;
    try {
      child = spawn(options.command, [...options.args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd); // the child holds its own copy
    }
    const pid = child.pid;
    if (pid === undefined) {
      throw new Error(`could not start ${options.name} (${options.command}): see ${options.logFile}`);
    }
    let running = true;
    const exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        running = false;
        this.live.delete(pid);
        resolve({ code, signal });
      });
      child.once('error', () => {
        running = false;
        this.live.delete(pid);
        resolve({ code: null, signal: null });
      });
    });
    const proc: ManagedProcess = {
      name: options.name,
      pid,
      logFile: options.logFile,
      exited,
      isRunning: () => running,
      signal: (sig) => {
        if (!running) return;
        try {
          process.kill(pid, sig);
        } catch {
          // already gone
        }
      },
    };
    this.live.set(pid, proc);
    return proc;
  }

  /** Processes started by this supervisor that have not exited yet. */
  running(): readonly ManagedProcess[] {
    return [...this.live.values()];
  }

  /** SIGTERM, then SIGKILL after graceMs if still running; resolves when the process is gone. */
  async stop(proc: ManagedProcess, graceMs = 3000): Promise<ExitInfo> {
    if (!proc.isRunning()) return proc.exited;
    proc.signal('SIGTERM');
    const timer = setTimeout(() => proc.signal('SIGKILL'), graceMs);
    try {
      return await proc.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async stopAll(graceMs = 3000): Promise<void> {
    await Promise.all(this.running().map((p) => this.stop(p, graceMs)));
  }

  /** Synchronous SIGKILL of every live child, by PID. Safe inside process.on('exit'). */
  killAllSync(): void {
    for (const proc of this.live.values()) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /**
   * Makes sure children never outlive the benchmark: on normal exit, Ctrl-C, SIGTERM, an uncaught
   * exception or an unhandled rejection, every live child is SIGKILLed by PID, then `onExitSync`
   * runs (e.g. to remove temporary directories). Installs the handlers once.
   */
  installCleanupHandlers(onExitSync: () => void = () => {}): void {
    if (this.handlersInstalled) return;
    this.handlersInstalled = true;
    let cleaned = false;
    const cleanup = (): void => {
      if (cleaned) return;
      cleaned = true;
      this.killAllSync();
      try {
        onExitSync();
      } catch (err) {
        process.stderr.write(`cleanup failed: ${String(err)}\n`);
      }
    };
    process.on('exit', cleanup);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, () => {
        process.stderr.write(`\n${sig}: stopping ${this.live.size} child process(es) by PID\n`);
        cleanup();
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    }
    const fatal = (kind: string) => (err: unknown) => {
      process.stderr.write(`\n${kind}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      cleanup();
      process.exit(1);
    };
    process.on('uncaughtException', fatal('uncaught exception'));
    process.on('unhandledRejection', fatal('unhandled rejection'));
  }
}

/**
 * Asks the OS for `count` distinct free TCP ports on host: all listeners are held open together,
 * so the ports differ, then closed. (Another process could take one before it is used; the
 * benchmark's readiness check then fails with the child's log file named.)
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('listener has no TCP address');
      ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Thrown by a waitUntil probe to stop waiting at once (e.g. the process being waited for exited). */
export class StopWaiting extends Error {
  override readonly name = 'StopWaiting';
}

/**
 * Calls `probe` every intervalMs until it returns a value other than undefined (errors count as
 * "not yet", except StopWaiting, which is rethrown); throws after timeoutMs with `what` and the
 * last error in the message.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: { readonly timeoutMs: number; readonly intervalMs?: number },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  const intervalMs = options.intervalMs ?? 50;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError === null ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux builds in practice). */
const USER_HZ = 100;

/** User+system CPU time of a live process in ms (from /proc), or null if unavailable (exited, not Linux). */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at index 2 (state).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
    return ((utime + stime) * 1000) / USER_HZ;
  } catch {
    return null;
  }
}
