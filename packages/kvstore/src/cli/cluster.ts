// `ballot kv cluster`: the `npm start` experience. Starts N `ballot kv serve` member processes on
// loopback (free ports from the OS unless --base-port), each with its LevelDB data dir and log file
// under one named folder, waits until each answers /health, prints the endpoints and commands to
// try, and then supervises: a member that dies is named with its last log lines and the rest are
// stopped (exit 1); Ctrl-C / SIGTERM stops every member by PID, waits for them, and exits 0.
// The process group (spawn, exit reasons, stop by PID) is raft's ChildGroup, shared with
// `ballot raft cluster`.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { ChildGroup, freePorts, tailLines, type Child } from '@ballot/raft';

import { KvClient } from '../client/client.js';

export interface KvClusterOptions {
  readonly members: number;
  readonly dataDir: string;
  /** Client ports basePort..basePort+N-1, peer ports basePort+N..basePort+2N-1. */
  readonly basePort?: number;
  /** Bound on waiting for every member to answer /health. */
  readonly startTimeoutMs?: number;
  /** Bound on a graceful stop before SIGKILL. */
  readonly stopGraceMs?: number;
}

interface MemberSpec {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
}

const CLUSTER_TOKEN = 'ballot-kv-cluster';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function healthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** The cluster's layout, kept in <data-dir>/cluster.json: a restart reuses the same URLs (member ids derive from peer URLs). */
interface Layout {
  readonly members: readonly MemberSpec[];
}

const LAYOUT_FILE = 'cluster.json';

function readLayout(dataRoot: string): Layout | null {
  const file = join(dataRoot, LAYOUT_FILE);
  if (!existsSync(file)) return null;
  try {
    const l = JSON.parse(readFileSync(file, 'utf8')) as Layout;
    if (!Array.isArray(l.members) || l.members.some((m) => typeof m.name !== 'string' || typeof m.clientUrl !== 'string' || typeof m.peerUrl !== 'string')) {
      throw new Error('unexpected contents');
    }
    return l;
  } catch (e) {
    throw new ClusterStartError(`${file} is not a cluster layout written by \`ballot kv cluster\` (${(e as Error).message}); use another --data-dir`);
  }
}

export class ClusterStartError extends Error {
  override readonly name = 'ClusterStartError';
}

/** Is 127.0.0.1:port free to listen on? */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const srv = createServer();
    srv.once('error', () => resolvePort(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolvePort(true)));
  });
}

/**
 * The members' URLs: those of the folder's previous run (a member's id derives from its peer
 * URLs, so a restart must keep them), or new ones from --base-port or free ports. Throws
 * ClusterStartError when the folder holds another layout or a port of it is taken.
 */
async function layoutFor(dataRoot: string, n: number, basePort: number | undefined): Promise<MemberSpec[]> {
  const saved = readLayout(dataRoot);
  if (saved !== null) {
    if (saved.members.length !== n) {
      throw new ClusterStartError(`${dataRoot} holds a ${saved.members.length}-member cluster; run with --members ${saved.members.length}, or use another --data-dir`);
    }
    const ports = saved.members.flatMap((m) => [Number(new URL(m.clientUrl).port), Number(new URL(m.peerUrl).port)]);
    if (basePort !== undefined && Math.min(...ports) !== basePort) {
      throw new ClusterStartError(`${dataRoot} holds a cluster on ports ${Math.min(...ports)}-${Math.max(...ports)}; leave out --base-port (or give that one), or use another --data-dir`);
    }
    const busy = (await Promise.all(ports.map(async (p) => ((await portFree(p)) ? null : p)))).filter((p) => p !== null);
    if (busy.length > 0) {
      throw new ClusterStartError(`port${busy.length > 1 ? 's' : ''} ${busy.join(', ')} of the cluster in ${dataRoot} ${busy.length > 1 ? 'are' : 'is'} in use (is it already running?); stop what uses ${busy.length > 1 ? 'them' : 'it'}, or use another --data-dir`);
    }
    return [...saved.members];
  }
  const ports = basePort !== undefined ? Array.from({ length: 2 * n }, (_, i) => basePort + i) : await freePorts(2 * n);
  const members = Array.from({ length: n }, (_, i) => ({
    name: `m${i + 1}`,
    clientUrl: `http://127.0.0.1:${ports[i]}`,
    peerUrl: `http://127.0.0.1:${ports[n + i]}`,
  }));
  writeFileSync(join(dataRoot, LAYOUT_FILE), `${JSON.stringify({ members } satisfies Layout, null, 2)}\n`);
  return members;
}

/** "  leader: m2 (id ..., term N)" once the members agree on one, or null after timeoutMs. */
async function findLeader(specs: readonly MemberSpec[], timeoutMs: number): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  let client: KvClient | null = null;
  try {
    client = await KvClient.connect({ endpoints: specs.map((s) => s.clientUrl), timeoutMs, preferLeader: false });
    while (Date.now() < deadline) {
      const st = await client.status().catch(() => null);
      if (st !== null && st.result.leader !== '') {
        // The leader's name shows once it has published itself (its first entry as a member).
        const members = await client.memberList().catch(() => null);
        const name = members?.result.members.find((m) => m.id === st.result.leader)?.name ?? '';
        if (name !== '') return `  leader: ${name} (member id ${st.result.leader}, term ${st.result.raftTerm})`;
      }
      await sleep(200);
    }
    return null;
  } catch {
    return null;
  } finally {
    await client?.close().catch(() => undefined);
  }
}

export async function runKvCluster(o: KvClusterOptions): Promise<never> {
  const dataRoot = resolve(o.dataDir);
  mkdirSync(dataRoot, { recursive: true });
  const n = o.members;
  let specs: MemberSpec[];
  try {
    specs = await layoutFor(dataRoot, n, o.basePort);
  } catch (e) {
    if (e instanceof ClusterStartError) {
      process.stderr.write(`Error: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  const restart = specs.some((s) => existsSync(join(dataRoot, s.name)));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');

  say(`ballot kv cluster: ${restart ? 'restarting' : 'starting'} ${n} member process${n === 1 ? '' : 'es'}; data and logs in ${dataRoot}${restart ? ' (same URLs as before, from cluster.json)' : ''}`);
  const group = new ChildGroup(
    specs.map((s) => ({
      name: s.name,
      logFile: join(dataRoot, `${s.name}.log`),
      args: [
        'kv', 'serve',
        '--name', s.name,
        '--data-dir', join(dataRoot, s.name),
        '--listen-client-urls', s.clientUrl,
        '--advertise-client-urls', s.clientUrl,
        '--listen-peer-urls', s.peerUrl,
        '--initial-advertise-peer-urls', s.peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', CLUSTER_TOKEN,
      ],
    })),
  );
  for (const c of group.children) say(`  ${c.name}: pid ${c.pid ?? '?'}, log ${c.logFile}`);

  let stopping = false;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (finish = r));

  const stopAll = async (why: string, code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say(why);
    await group.stopAll(o.stopGraceMs ?? 10_000);
    const left = group.children.filter((c) => c.exit === null);
    for (const c of group.children) say(`  ${c.name} (pid ${c.pid ?? '?'}) ${c.exit ?? 'still running'}`);
    if (left.length > 0) {
      say(`could not stop ${left.map((c) => c.name).join(', ')}`);
      finish(1);
      return;
    }
    say(`stopped ${group.children.length} member${group.children.length === 1 ? '' : 's'}; data kept in ${dataRoot}`);
    finish(code);
  };

  group.onExit((c: Child) => {
    if (stopping) return;
    const tail = tailLines(c.logFile, 15);
    say(`member ${c.name} (pid ${c.pid ?? '?'}) ${c.exit}; its last log lines (${c.logFile}):`);
    say(tail === '' ? '  (empty log)' : tail.split('\n').map((l) => `  | ${l}`).join('\n'));
    void stopAll('stopping the other members', 1);
  });
  const onSignal = (signal: string): void => {
    void stopAll(`${signal}: stopping ${group.running.length} member${group.running.length === 1 ? '' : 's'}...`, 0);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  // Progress while starting: one line per member when it answers /health.
  const startDeadline = Date.now() + (o.startTimeoutMs ?? 60_000);
  const ready = new Set<string>();
  while (!stopping && ready.size < n) {
    if (Date.now() > startDeadline) {
      const late = specs.filter((s) => !ready.has(s.name));
      for (const s of late) {
        const c = group.children.find((x) => x.name === s.name)!;
        const tail = tailLines(c.logFile, 10);
        say(`member ${s.name} did not answer ${s.clientUrl}/health within ${Math.round((o.startTimeoutMs ?? 60_000) / 1000)} s; its last log lines:`);
        say(tail === '' ? '  (empty log)' : tail.split('\n').map((l) => `  | ${l}`).join('\n'));
      }
      await stopAll('stopping every member', 1);
      break;
    }
    await Promise.all(
      specs.map(async (s) => {
        if (ready.has(s.name) || stopping) return;
        if (await healthy(s.clientUrl)) {
          ready.add(s.name);
          say(`  ${s.name} ready at ${s.clientUrl} (${ready.size}/${n})`);
        }
      }),
    );
    if (ready.size < n) await sleep(200);
  }

  if (!stopping) {
    const leader = await findLeader(specs, 10_000);
    say(leader ?? '  no leader elected yet (the members keep trying; see their logs)');
  }

  if (!stopping) {
    const endpoints = specs.map((s) => s.clientUrl).join(',');
    say('');
    say(`Ballot KV cluster is up: ${n} member${n === 1 ? '' : 's'} (etcd v3 JSON API and Ballot's native protocol on each client URL)`);
    for (const s of specs) {
      const c = group.children.find((x) => x.name === s.name)!;
      say(`  ${s.name}  pid ${c.pid ?? '?'}  client ${s.clientUrl}  peer ${s.peerUrl}  data ${join(dataRoot, s.name)}`);
    }
    say(`endpoints: ${endpoints}`);
    say('');
    say('Try:');
    say(`  npx ballot kv --help`);
    say(`  npx ballot kv put hello world --endpoints ${endpoints}`);
    say(`  npx ballot kv get hello --endpoints ${endpoints} -w json`);
    say(`  npx ballot kv watch --prefix "" --endpoints ${endpoints}`);
    say(`  npx ballot kv member list --endpoints ${endpoints} -w table`);
    say(`  npx ballot kv endpoint status --cluster --endpoints ${specs[0]!.clientUrl} -w table`);
    say(`  curl -s ${specs[0]!.clientUrl}/v3/kv/range -X POST -d '{"key":"aGVsbG8="}'`);
    say(`  curl -s ${specs[0]!.clientUrl}/metrics`);
    say('Ctrl-C stops every member.');
  }

  const code = await done;
  process.exit(code);
}
