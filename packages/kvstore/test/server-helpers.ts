// In-process clusters of KvNode members for tests: free ports from the OS, temp data dirs,
// everything closed (and removed) by stopAll() — call it in afterEach so a failing test cleans up.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '@ballot/raft';
import { KvError } from '../src/errors.js';
import { KvNode, type KvNodeStartOptions } from '../src/server/node.js';
import { KvUsageError, parseKvServeFlags, type KvServeOptions } from '../src/server/flags.js';

export { freePorts };

export interface MemberSpec {
  readonly opts: KvServeOptions;
}

const running = new Set<KvNode>();
const dirs: string[] = [];

export function tempRoot(prefix = 'ballot-kv-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/**
 * Flags for an n-member cluster on free loopback ports (50 ms heartbeat, 500 ms election unless
 * given); data dirs under `root` (default: a temp dir stopAll() removes).
 */
export async function clusterSpecs(
  n: number,
  timing: { heartbeatIntervalMs?: number; electionTimeoutMs?: number } = {},
  token = 'test-cluster',
  root?: string,
): Promise<KvServeOptions[]> {
  const ports = await freePorts(2 * n);
  root ??= tempRoot();
  const names = Array.from({ length: n }, (_, i) => `m${i + 1}`);
  const peer = (i: number): string => `http://127.0.0.1:${ports[2 * i]}`;
  const client = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initialCluster: Record<string, string[]> = {};
  names.forEach((name, i) => (initialCluster[name] = [peer(i)]));
  return names.map((name, i) => ({
    name,
    dataDir: join(root, name),
    listenClientUrls: [client(i)],
    advertiseClientUrls: [client(i)],
    listenPeerUrls: [peer(i)],
    initialAdvertisePeerUrls: [peer(i)],
    initialCluster,
    initialClusterState: 'new',
    initialClusterToken: token,
    // Fast, but not so fast that a busy 2-core machine's event-loop stalls look like lost leaders.
    heartbeatIntervalMs: timing.heartbeatIntervalMs ?? 50,
    electionTimeoutMs: timing.electionTimeoutMs ?? 500,
  }));
}

export async function startMember(opts: KvServeOptions, extra: KvNodeStartOptions = {}): Promise<KvNode> {
  const node = await KvNode.start(opts, undefined, extra);
  running.add(node);
  return node;
}

export async function startCluster(specs: readonly KvServeOptions[], extra: KvNodeStartOptions = {}): Promise<KvNode[]> {
  return Promise.all(specs.map((s) => startMember(s, extra)));
}

export async function stopMember(node: KvNode): Promise<void> {
  running.delete(node);
  await node.close();
}

export async function stopAll(): Promise<void> {
  const nodes = [...running];
  running.clear();
  await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Polls `probe` until it gives a value (not null, undefined or false); throws naming `what` (and `logs()`) past `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 10_000, logs?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${logs ? `\n${logs()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The member that leads (as every live member agrees), once there is one. */
export async function waitLeader(nodes: readonly KvNode[], timeoutMs = 10_000): Promise<KvNode> {
  return waitFor(
    'a leader',
    () => {
      const leaders = nodes.filter((n) => n.driver.role === 'leader');
      if (leaders.length !== 1) return null;
      const id = leaders[0]!.memberId;
      return nodes.every((n) => n.driver.leader === id) ? leaders[0]! : null;
    },
    timeoutMs,
  );
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** The KvError a request is refused with (fails the test if it succeeds or throws anything else). */
export async function refusal(p: Promise<unknown>): Promise<KvError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof KvError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

/** The message `ballot kv serve` refuses `argv` with (fails the test if it parses or throws anything else). */
export function usageError(argv: string[]): string {
  try {
    parseKvServeFlags(argv);
  } catch (e) {
    if (e instanceof KvUsageError) return e.message;
    throw e;
  }
  throw new Error(`expected ${argv.join(' ')} to be refused`);
}
