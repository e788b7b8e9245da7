// Real `ballot kv serve` processes for tests: free ports from the OS, temp data dirs, spawn and
// kill by PID (SIGKILL for every process still running in afterEach, also when a test failed),
// and a tiny etcd-JSON client. Processes are started and killed by @ballot/raft's
// CapturedProcesses, as raft's own process tests do.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CapturedProcesses, freePorts, signalAndWait, type CapturedChild } from '@ballot/raft';
import { afterEach, beforeAll } from 'vitest';
import { waitFor as waitForIn } from './server-helpers.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = join(ROOT, 'packages/cli/dist/bin.js');

export interface Proc extends CapturedChild {
  readonly name: string;
  readonly args: readonly string[];
}

const procs = new CapturedProcesses();
const dirs: string[] = [];

export function spawnMember(name: string, args: readonly string[]): Proc {
  return Object.assign(procs.start(BIN, ['kv', 'serve', ...args]), { name, args });
}

export const sigkill = (p: Proc): Promise<number | string> => signalAndWait(p, 'SIGKILL');
export const sigterm = (p: Proc): Promise<number | string> => signalAndWait(p, 'SIGTERM');

async function killAll(): Promise<void> {
  await procs.killAll();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** beforeAll: the CLI must be built; afterEach: SIGKILL every member still running, by PID, and remove temp dirs. */
export function useProcessHooks(): void {
  beforeAll(() => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` before the process tests`);
  });
  afterEach(async () => {
    await killAll();
  });
}

export interface MemberArgs {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly args: string[];
}

/** etcd-style flags for an n-member cluster on free loopback ports. */
export async function clusterArgs(n: number, timing: { heartbeatMs: number; electionMs: number }, extra: readonly string[] = []): Promise<MemberArgs[]> {
  const ports = await freePorts(2 * n);
  const root = mkdtempSync(join(tmpdir(), 'ballot-kv-proc-'));
  dirs.push(root);
  const names = Array.from({ length: n }, (_, i) => `m${i + 1}`);
  const peer = (i: number): string => `http://127.0.0.1:${ports[2 * i]}`;
  const client = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initialCluster = names.map((name, i) => `${name}=${peer(i)}`).join(',');
  return names.map((name, i) => ({
    name,
    clientUrl: client(i),
    peerUrl: peer(i),
    args: [
      '--name', name,
      '--data-dir', join(root, name),
      '--listen-client-urls', client(i),
      '--advertise-client-urls', client(i),
      '--listen-peer-urls', peer(i),
      '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', 'proc-test',
      '--heartbeat-interval', String(timing.heartbeatMs),
      '--election-timeout', String(timing.electionMs),
      '--log-level', 'info',
      ...extra,
    ],
  }));
}

export interface ProcCluster {
  readonly members: readonly MemberArgs[];
  /** By member index; a test that restarts member i puts the new process here. */
  readonly procs: Proc[];
  /** The members' client URLs. */
  readonly bases: readonly string[];
  /** The last lines of every member's output (for timeout messages). */
  readonly logs: () => string;
}

/** Starts an n-member cluster of `ballot kv serve` processes (see clusterArgs). */
export async function startProcCluster(n: number, timing: { heartbeatMs: number; electionMs: number }, extra: readonly string[] = []): Promise<ProcCluster> {
  const members = await clusterArgs(n, timing, extra);
  const procs = members.map((m) => spawnMember(m.name, m.args));
  return { members, procs, bases: members.map((m) => m.clientUrl), logs: () => procs.map((p) => tail(p)).join('\n') };
}

export interface JsonReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Headers;
}

/** POST a JSON body to an etcd v3 JSON path; never throws on an HTTP status (network errors do throw). */
export async function post(base: string, path: string, body: unknown, timeoutMs = 5000): Promise<JsonReply> {
  const res = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let parsed: unknown = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: (parsed ?? {}) as Record<string, unknown>, headers: res.headers };
}

export const b64 = (s: string): string => Buffer.from(s).toString('base64');
export const unb64 = (s: unknown): string => Buffer.from(String(s ?? ''), 'base64').toString();

/** server-helpers' waitFor with a longer default (processes start slower than in-process members). */
export function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 20_000, logs?: () => string): Promise<T> {
  return waitForIn(what, probe, timeoutMs, logs);
}

/** The member id of the leader as `base` reports it (maintenance/status), or null. */
export async function leaderOf(base: string): Promise<string | null> {
  try {
    const r = await post(base, '/v3/maintenance/status', {}, 2000);
    const leader = r.body['leader'];
    return r.status === 200 && typeof leader === 'string' && leader !== '0' && leader !== '' ? leader : null;
  } catch {
    return null;
  }
}

/** member id (decimal, as the JSON gateway prints it) of the member at `base`. */
export async function memberIdOf(base: string): Promise<string> {
  const r = await post(base, '/v3/maintenance/status', {}, 2000);
  return String((r.body['header'] as Record<string, unknown>)['member_id']);
}

export function tail(p: Proc, lines = 25): string {
  return `--- ${p.name} (pid ${p.pid}, exit ${String(p.exitStatus)}) ---\n${p.stdout.split('\n').slice(-lines).join('\n')}\n${p.stderr}`;
}
