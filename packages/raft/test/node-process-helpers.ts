// Helpers for tests that run real `ballot raft node` processes: free ports from the OS, temp data
// dirs, spawn/kill by PID, and a tiny HTTP client. Every process started here is registered and
// killed by killAll() (call it in afterEach), also when a test fails.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll } from 'vitest';
import { CapturedProcesses, freePorts, signalAndWait, type CapturedChild } from '../src/cli/supervisor.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = join(ROOT, 'packages/cli/dist/bin.js');

export function assertBuilt(): void {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` before the process tests`);
}

export { freePorts };

const tempDirs: string[] = [];
export function tempDir(prefix = 'ballot-node-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export type Proc = CapturedChild;

const procs = new CapturedProcesses();

export function run(args: readonly string[]): Proc {
  return procs.start(BIN, args);
}

/** SIGKILLs every process still running, by PID, and removes temp dirs. */
export async function killAll(): Promise<void> {
  await procs.killAll();
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/**
 * Registers the hooks every process test file needs: fail early if the CLI is not built, and
 * SIGKILL every process the test started (by PID) after each test, also when it failed.
 */
export function useProcessTestHooks(): void {
  beforeAll(() => assertBuilt());
  afterEach(async () => {
    await killAll();
  });
}

export const sigterm = (p: Proc): Promise<number | string> => signalAndWait(p, 'SIGTERM');
export const sigkill = (p: Proc): Promise<number | string> => signalAndWait(p, 'SIGKILL');

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface NodeSpec {
  readonly id: string;
  readonly port: number;
  readonly dataDir: string;
}

export interface ClusterSpec {
  readonly nodes: readonly NodeSpec[];
  readonly peers: string;
}

export async function clusterSpec(n: number): Promise<ClusterSpec> {
  const ports = await freePorts(n);
  const root = tempDir();
  const nodes = ports.map((port, i) => ({ id: `n${i + 1}`, port, dataDir: join(root, `n${i + 1}`) }));
  return { nodes, peers: nodes.map((x) => `${x.id}=127.0.0.1:${x.port}`).join(',') };
}

export const FAST = ['--tick-ms', '20', '--election-ticks', '10', '--log-level', 'info'];

export function startNode(spec: ClusterSpec, node: NodeSpec, extra: readonly string[] = []): Proc {
  return run([
    'raft', 'node',
    '--id', node.id,
    '--data-dir', node.dataDir,
    '--listen', `127.0.0.1:${node.port}`,
    '--peers', spec.peers,
    ...FAST,
    ...extra,
  ]);
}

export async function waitListening(p: Proc): Promise<void> {
  await waitFor(`process ${p.pid} to listen`, () => {
    if (p.exitStatus !== null) throw new Error(`process exited (${p.exitStatus}) before listening:\n${p.stderr}\n${p.stdout.slice(-2000)}`);
    return p.stdout.includes('"msg":"listening"');
  });
}

export interface HttpReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

export async function http(port: number, method: 'GET' | 'POST', path: string, body?: Uint8Array | string, timeoutMs = 10_000): Promise<HttpReply> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
}

export interface Status {
  id: string;
  role: string;
  term: number;
  leader: string | null;
  commit: number;
  applied: number;
  lastIndex: number;
  appliedDigest: string;
  transport: { rejectedConnections: number };
  progress: Record<string, { match: number }>;
}

export async function status(port: number): Promise<Status | null> {
  try {
    const r = await http(port, 'GET', '/status', undefined, 2000);
    return r.status === 200 ? (r.body as unknown as Status) : null;
  } catch {
    return null;
  }
}

export async function waitLeader(spec: ClusterSpec, among: readonly NodeSpec[] = spec.nodes): Promise<NodeSpec> {
  return waitFor('a leader', async () => {
    for (const n of among) {
      const s = await status(n.port);
      if (s?.role === 'leader') return n;
    }
    return null;
  });
}
