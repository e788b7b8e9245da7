// Helpers for the proxy suites: loopback servers that record what they receive, and clients that record what
// comes back. Everything listens on OS-assigned ports and is closed by the caller.

import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CapturedProcesses } from '@ballot/raft';
import { afterEach, beforeAll } from 'vitest';

/** A TCP server that records bytes per accepted connection; `echo` sends every byte straight back. */
export class RecordingServer {
  readonly sockets: net.Socket[] = [];
  readonly received: Buffer[][] = [];
  private readonly server: net.Server;
  port = 0;

  constructor(readonly echo: boolean) {
    this.server = net.createServer((s) => {
      s.on('error', () => {});
      const chunks: Buffer[] = [];
      this.sockets.push(s);
      this.received.push(chunks);
      s.on('data', (d: Buffer) => {
        chunks.push(d);
        if (this.echo) s.write(d);
      });
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('no address');
    this.port = a.port;
    return a.port;
  }

  /** All bytes received over every connection, as one string. */
  text(): string {
    return this.received.map((c) => Buffer.concat(c).toString()).join('');
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A client connection that records what it receives and how it ended. */
export class RecordingClient {
  readonly socket: net.Socket;
  readonly chunks: Buffer[] = [];
  error: NodeJS.ErrnoException | undefined;
  closed = false;
  readonly connected: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.connected = new Promise((resolve) => this.socket.once('connect', () => resolve()));
    this.socket.on('data', (d: Buffer) => this.chunks.push(d));
    this.socket.on('error', (e: NodeJS.ErrnoException) => {
      this.error = e;
    });
    this.socket.on('close', () => {
      this.closed = true;
    });
  }

  text(): string {
    return Buffer.concat(this.chunks).toString();
  }

  bytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }
}

/** Polls `cond` every 5 ms until true; fails after `timeoutMs` with `what`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Counts of the process's open TCP handles and timers (process.getActiveResourcesInfo). */
export function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;
}

/**
 * Hooks for a suite that starts `ballot` processes (the built CLI) behind proxies: the binary must exist, and
 * after each test every process is killed by PID (also when the test failed) and every registered cleanup runs
 * (proxy networks closed, temp folders removed), last registered first.
 */
export function useCliProcesses(): { readonly bin: string; readonly procs: CapturedProcesses; readonly cleanups: (() => Promise<void>)[] } {
  const bin = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'packages/cli/dist/bin.js');
  const procs = new CapturedProcesses();
  const cleanups: (() => Promise<void>)[] = [];
  beforeAll(() => {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build\` first`);
  });
  afterEach(async () => {
    await procs.killAll();
    while (cleanups.length > 0) await cleanups.pop()?.();
  });
  return { bin, procs, cleanups };
}
