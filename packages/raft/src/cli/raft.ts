// `ballot raft ...`: run a node, look at one, write to one, and start a whole local cluster.
//
//   ballot raft node    --id n1 --data-dir DIR --listen HOST:PORT --peers n1=HOST:P1,n2=HOST:P2,...
//   ballot raft status  --endpoint HOST:PORT [--json]
//   ballot raft put     --endpoint HOST:PORT <text>        (follows NOT_LEADER redirects)
//   ballot raft read    --endpoint HOST:PORT               (a linearizable read barrier)
//   ballot raft cluster [--nodes 3] [--data-dir ./data/raft] [--base-port P]   (what `npm start` runs)
//   ballot raft node    --id n4 --data-dir DIR --listen HOST:PORT --join HOST:PORT [--join-as voter|learner]
//   ballot raft member  list|add <id> <host:port>|promote <id>|remove <id> --endpoint HOST:PORT
//   ballot raft transfer [--to n2] --endpoint HOST:PORT
//
// Usage errors exit with code 2 and say which flag is wrong.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option, CommanderError } from 'commander';
import type { LevelWithSilent } from 'pino';

import type { NodeId, ReadMode } from '../core/types.js';
import { EXIT, createNodeLogger, runNodeProcess } from '../node/server.js';
import { ChildGroup, freePorts, sleep, type Child } from './supervisor.js';

export { freePorts } from './supervisor.js';

// ---------------------------------------------------------------------------------------------
// Flag parsing. Each parser throws UsageError with a message naming the flag.

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** "host:port" with a port in [minPort, 65535]. IPv6 hosts go in brackets: "[::1]:7000". */
export function parseHostPort(flag: string, value: string, minPort = 1): HostPort {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim());
  if (!m) throw new UsageError(`${flag}: expected host:port (e.g. 127.0.0.1:7001), got "${value}"`);
  const port = Number(m[2]);
  if (port < minPort || port > 65535) throw new UsageError(`${flag}: port ${port} is out of range ${minPort}-65535 in "${value}"`);
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  return { host, port };
}

/** "n1=127.0.0.1:7001,n2=127.0.0.1:7002" → { n1: "127.0.0.1:7001", ... }. */
export function parsePeers(value: string): Record<NodeId, string> {
  const peers: Record<NodeId, string> = {};
  const parts = value.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) throw new UsageError('--peers: expected id=host:port[,id=host:port...], got an empty list');
  const seenAddresses = new Map<string, string>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UsageError(`--peers: expected id=host:port, got "${part}"`);
    const id = part.slice(0, eq);
    const address = part.slice(eq + 1);
    if (!NODE_ID.test(id)) throw new UsageError(`--peers: invalid node id "${id}" (letters, digits, _ . - ; at most 63)`);
    if (id in peers) throw new UsageError(`--peers: node id "${id}" appears twice`);
    const { host, port } = parseHostPort(`--peers (${id})`, address);
    const normalized = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    const other = seenAddresses.get(normalized);
    if (other !== undefined) throw new UsageError(`--peers: ${id} and ${other} share the address ${normalized}`);
    seenAddresses.set(normalized, id);
    peers[id] = normalized;
  }
  return peers;
}

function intFlag(flag: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value.trim())) throw new UsageError(`${flag}: expected an integer, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new UsageError(`${flag}: ${n} is out of range ${min}-${max}`);
    return n;
  };
}

/** Commander calls option parsers with (value, previous); adapt ours and turn UsageError into exit 2. */
function parser<T>(fn: (value: string) => T): (value: string) => T {
  return (value: string) => {
    try {
      return fn(value);
    } catch (e) {
      if (e instanceof UsageError) usage(e.message);
      throw e;
    }
  };
}

function usage(message: string): never {
  process.stderr.write(`ballot raft: ${message}\n`);
  process.exit(EXIT.USAGE);
}

// ---------------------------------------------------------------------------------------------
// Commands.

export function registerRaftCommands(program: Command): void {
  const raft = program
    .command('raft')
    .description('Raft: run a node, inspect or write to a cluster, or start a local cluster of processes');
  // Usage errors (unknown flag, missing value...) exit with 2, help with 0.
  raft.exitOverride((err: CommanderError) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT.USAGE);
  });

  raft
    .command('node')
    .description('run one Raft node process (LevelDB log, ws peer transport, HTTP status/propose/read API)')
    .requiredOption('--id <id>', 'this node\'s id; must appear in --peers')
    .requiredOption('--data-dir <dir>', 'directory of this node\'s LevelDB (created if missing)')
    .requiredOption('--listen <host:port>', 'address of the HTTP server (client API and /raft peer transport)')
    .option('--peers <list>', 'every bootstrap member as id=host:port, comma-separated, including this node (not with --join)')
    .option('--join <host:port>', 'join a running cluster through any member: start as a learner, get the log or a snapshot, then be promoted')
    .addOption(new Option('--join-as <role>', 'with --join: become a voter once caught up, or stay a learner').choices(['voter', 'learner']).default('voter'))
    .option('--snapshot-entries <n>', 'take a snapshot and compact the log every n applied entries', parser(intFlag('--snapshot-entries', 1, 1_000_000_000)), 10_000)
    .option('--snapshot-trailing-entries <n>', 'entries kept before a snapshot for slow followers', parser(intFlag('--snapshot-trailing-entries', 0, 1_000_000_000)), 5_000)
    .option('--snapshot-bytes <n>', 'also snapshot once this many payload bytes were applied since the last one', parser(intFlag('--snapshot-bytes', 1, Number.MAX_SAFE_INTEGER)), 64 * 1024 * 1024)
    .option('--snapshot-chunk-bytes <n>', 'bytes per chunk when streaming a snapshot to a follower', parser(intFlag('--snapshot-chunk-bytes', 1024, 4 * 1024 * 1024)), 256 * 1024)
    .option('--cluster-id <name>', 'cluster name; peers and data dirs of another cluster are refused', 'ballot')
    .option('--tick-ms <ms>', 'length of one logical clock tick', parser(intFlag('--tick-ms', 1, 60_000)), 100)
    .option('--election-ticks <n>', 'election timeout in ticks (randomized in [n, 2n))', parser(intFlag('--election-ticks', 2, 100_000)), 10)
    .option('--heartbeat-ticks <n>', 'leader heartbeat interval in ticks (< election ticks)', parser(intFlag('--heartbeat-ticks', 1, 100_000)), 1)
    .addOption(new Option('--read-mode <mode>', 'linearizable reads: read-index (safe) or lease (unsafe under clock drift)').choices(['read-index', 'lease']).default('read-index'))
    .addOption(new Option('--log-level <level>', 'pino log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .option('--max-queued-proposals <n>', 'bound on proposals held by the node; past it QUEUE_FULL', parser(intFlag('--max-queued-proposals', 1, 10_000_000)))
    .action(async (o: NodeFlags) => {
      const opts = validateNodeFlags(o);
      await runNodeProcess({
        ...opts,
        logger: createNodeLogger(o.logLevel, { node: opts.id }),
      });
    });

  raft
    .command('status')
    .description("show a node's role, term, leader, commit/applied index and followers' progress")
    .requiredOption('--endpoint <host:port>', 'any node\'s --listen address')
    .option('--json', 'print the raw JSON')
    .action(async (o: { endpoint: string; json?: boolean }) => {
      const ep = endpointOf(o.endpoint);
      const res = await httpJson(`http://${ep}/status`, { method: 'GET' }).catch((e: Error) => fail(e.message));
      if (res.status !== 200) fail(`GET /status on ${ep}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      if (o.json) process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
      else process.stdout.write(formatStatus(res.body as StatusBody));
    });

  raft
    .command('put')
    .description('append <text> to the replicated log (follows NOT_LEADER redirects; retries while no leader is known)')
    .requiredOption('--endpoint <host:port>', 'any node\'s --listen address')
    .option('--wait-ms <ms>', 'how long to retry while no leader is known', parser(intFlag('--wait-ms', 0, 600_000)), 5000)
    .argument('<text>', 'the entry\'s contents (UTF-8)')
    .action(async (text: string, o: { endpoint: string; waitMs: number }) => {
      const ack = await proposeFollowingLeader(endpointOf(o.endpoint), new TextEncoder().encode(text), o.waitMs);
      process.stdout.write(`committed at index ${ack.index}, term ${ack.term} (leader ${ack.endpoint})\n`);
    });

  raft
    .command('read')
    .description('pass a linearizable read barrier (ReadIndex) at a node and print the read index')
    .requiredOption('--endpoint <host:port>', 'any node\'s --listen address')
    .action(async (o: { endpoint: string }) => {
      const ep = endpointOf(o.endpoint);
      const res = await httpJson(`http://${ep}/read`, { method: 'GET' }).catch((e: Error) => fail(e.message));
      if (res.status !== 200) fail(`GET /read on ${ep}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      process.stdout.write(`read index ${(res.body as { index: number }).index}\n`);
    });

  const member = raft.command('member').description('list or change the members of a running cluster (one server at a time, thesis §4.1)');
  member.exitOverride((err: CommanderError) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT.USAGE);
  });
  member
    .command('list')
    .description("show the configuration (voters, learners), addresses and the leader's replication progress")
    .requiredOption('--endpoint <host:port>', "any node's --listen address")
    .option('--json', 'print the raw JSON')
    .action(async (o: { endpoint: string; json?: boolean }) => {
      const ep = endpointOf(o.endpoint);
      // The leader's view has the progress; follow its address when known.
      let res = await httpJson(`http://${ep}/members`, { method: 'GET' }).catch((e: Error) => fail(e.message));
      const leaderAddress = (res.body as { leaderAddress?: string | null }).leaderAddress;
      if (typeof leaderAddress === 'string' && leaderAddress !== ep) {
        res = await httpJson(`http://${leaderAddress}/members`, { method: 'GET' }).catch(() => res);
      }
      if (res.status !== 200) fail(`GET /members on ${ep}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      if (o.json) process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
      else process.stdout.write(formatMembers(res.body as MembersBody));
    });
  member
    .command('add')
    .description('add a node as a learner (it catches up, by snapshot if needed); promote it afterwards')
    .requiredOption('--endpoint <host:port>', "any node's --listen address (requests follow redirects to the leader)")
    .option('--wait-ms <ms>', 'how long to retry while no leader is known or another change is in flight', parser(intFlag('--wait-ms', 0, 600_000)), 10_000)
    .argument('<id>', 'the new node\'s id')
    .argument('<address>', "the new node's --listen address (host:port)")
    .action(async (id: string, address: string, o: { endpoint: string; waitMs: number }) => {
      if (!NODE_ID.test(id)) usage(`member add: invalid node id "${id}"`);
      const addr = endpointOf(address);
      const r = await leaderRequest(endpointOf(o.endpoint), 'POST', '/members', JSON.stringify({ id, address: addr }), o.waitMs, (c) =>
        c.voters.includes(id) || c.learners.includes(id),
      );
      process.stdout.write(`added ${id} (${addr}) as a learner at index ${r.index}; config: ${describeConfig(r.config)}\n`);
    });
  member
    .command('promote')
    .description('make a learner a voter once it has caught up (waits for it, bounded)')
    .requiredOption('--endpoint <host:port>', "any node's --listen address")
    .option('--wait-ms <ms>', 'how long to retry', parser(intFlag('--wait-ms', 0, 600_000)), 30_000)
    .argument('<id>', 'the learner\'s id')
    .action(async (id: string, o: { endpoint: string; waitMs: number }) => {
      const r = await leaderRequest(endpointOf(o.endpoint), 'POST', `/members/${encodeURIComponent(id)}/promote`, '', o.waitMs, (c) =>
        c.voters.includes(id),
      );
      process.stdout.write(`promoted ${id} to voter at index ${r.index}; config: ${describeConfig(r.config)}\n`);
    });
  member
    .command('remove')
    .description('remove a voter or learner (removing the leader makes it step down once the change commits)')
    .requiredOption('--endpoint <host:port>', "any node's --listen address")
    .option('--wait-ms <ms>', 'how long to retry', parser(intFlag('--wait-ms', 0, 600_000)), 10_000)
    .argument('<id>', 'the node to remove')
    .action(async (id: string, o: { endpoint: string; waitMs: number }) => {
      const r = await leaderRequest(endpointOf(o.endpoint), 'DELETE', `/members/${encodeURIComponent(id)}`, undefined, o.waitMs, (c) =>
        !c.voters.includes(id) && !c.learners.includes(id),
      );
      process.stdout.write(`removed ${id} at index ${r.index}; config: ${describeConfig(r.config)}\n`);
    });

  raft
    .command('transfer')
    .description('hand leadership to another voter (thesis §3.10); without --to, the most up-to-date one')
    .requiredOption('--endpoint <host:port>', "any node's --listen address (follows the redirect to the leader)")
    .option('--to <id>', 'the voter that should lead')
    .option('--wait-ms <ms>', 'how long to retry while no leader is known', parser(intFlag('--wait-ms', 0, 600_000)), 10_000)
    .action(async (o: { endpoint: string; to?: string; waitMs: number }) => {
      const r = (await leaderRequest(endpointOf(o.endpoint), 'POST', '/transfer', JSON.stringify(o.to !== undefined ? { to: o.to } : {}), o.waitMs)) as unknown as { leader: string; term: number };
      process.stdout.write(`leadership transferred: ${r.leader} leads term ${r.term}\n`);
    });

  raft
    .command('cluster')
    .description('start a local cluster of separate `raft node` processes, keep proposing, and show it live (Ctrl-C stops)')
    .option('--nodes <n>', 'number of node processes', parser(intFlag('--nodes', 1, 9)), 3)
    .option('--data-dir <dir>', 'parent directory of the nodes\' data dirs and logs', './data/raft')
    .option('--base-port <port>', 'listen on base-port, base-port+1, ... (default: free ports from the OS)', parser(intFlag('--base-port', 1, 65_000)))
    .option('--cluster-id <name>', 'cluster name', 'ballot')
    .option('--tick-ms <ms>', 'tick length passed to every node', parser(intFlag('--tick-ms', 1, 60_000)), 100)
    .option('--election-ticks <n>', 'election timeout in ticks passed to every node', parser(intFlag('--election-ticks', 2, 100_000)), 10)
    .option('--interval-ms <ms>', 'propose an entry and refresh the table this often', parser(intFlag('--interval-ms', 50, 60_000)), 500)
    .option('--duration <seconds>', 'stop after this many seconds (0: run until Ctrl-C)', parser(intFlag('--duration', 0, 10_000_000)), 0)
    .action(async (o: ClusterFlags) => {
      await runCluster(o);
    });
}

interface NodeFlags {
  id: string;
  dataDir: string;
  listen: string;
  clusterId: string;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  readMode: ReadMode;
  logLevel: LevelWithSilent;
  maxQueuedProposals?: number;
  peers?: string;
  join?: string;
  joinAs: 'voter' | 'learner';
  snapshotEntries: number;
  snapshotTrailingEntries: number;
  snapshotBytes: number;
  snapshotChunkBytes: number;
}

function validateNodeFlags(o: NodeFlags) {
  try {
    if (!NODE_ID.test(o.id)) throw new UsageError(`--id: invalid node id "${o.id}" (letters, digits, _ . - ; at most 63)`);
    const listen = parseHostPort('--listen', o.listen);
    if (o.peers === undefined && o.join === undefined) throw new UsageError('give --peers (bootstrap a cluster) or --join (join a running one)');
    if (o.peers !== undefined && o.join !== undefined) throw new UsageError('--peers and --join exclude each other');
    const peers = o.peers !== undefined ? parsePeers(o.peers) : {};
    if (o.peers !== undefined && !(o.id in peers)) {
      throw new UsageError(`--id: "${o.id}" is not in --peers (${Object.keys(peers).join(', ')}); list every member, this node included`);
    }
    const join = o.join !== undefined ? endpointOf(o.join) : undefined;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(o.clusterId)) throw new UsageError(`--cluster-id: invalid name "${o.clusterId}"`);
    if (o.dataDir.trim() === '') throw new UsageError('--data-dir: must not be empty');
    if (o.heartbeatTicks >= o.electionTicks) {
      throw new UsageError(`--heartbeat-ticks (${o.heartbeatTicks}) must be smaller than --election-ticks (${o.electionTicks})`);
    }
    return {
      id: o.id,
      clusterId: o.clusterId,
      dataDir: resolve(o.dataDir),
      listenHost: listen.host,
      listenPort: listen.port,
      peers,
      tickMs: o.tickMs,
      electionTicks: o.electionTicks,
      heartbeatTicks: o.heartbeatTicks,
      readMode: o.readMode,
      ...(o.maxQueuedProposals !== undefined ? { maxQueuedProposals: o.maxQueuedProposals } : {}),
      ...(join !== undefined ? { join, joinAs: o.joinAs } : {}),
      snapshotEntries: o.snapshotEntries,
      snapshotTrailingEntries: o.snapshotTrailingEntries,
      snapshotBytes: o.snapshotBytes,
      snapshotChunkBytes: o.snapshotChunkBytes,
    };
  } catch (e) {
    if (e instanceof UsageError) usage(e.message);
    throw e;
  }
}

function endpointOf(value: string): string {
  try {
    const { host, port } = parseHostPort('--endpoint', value);
    return `${host.includes(':') ? `[${host}]` : host}:${port}`;
  } catch (e) {
    if (e instanceof UsageError) usage(e.message);
    throw e;
  }
}

function fail(message: string): never {
  process.stderr.write(`ballot raft: ${message}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// HTTP client helpers (Node's fetch).

interface HttpResult {
  readonly status: number;
  readonly body: unknown;
}

async function httpJson(url: string, init: { method: string; body?: Uint8Array; timeoutMs?: number }): Promise<HttpResult> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: init.method,
      ...(init.body ? { body: init.body } : {}),
      signal: AbortSignal.timeout(init.timeoutMs ?? 15_000),
    });
  } catch (e) {
    throw new Error(`${init.method} ${url}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body };
}

interface ErrorBody {
  code?: string;
  message?: string;
  leader?: string;
  leaderAddress?: string;
}

async function proposeFollowingLeader(
  endpoint: string,
  data: Uint8Array,
  waitMs: number,
): Promise<{ index: number; term: number; endpoint: string }> {
  const deadline = Date.now() + waitMs;
  let ep = endpoint;
  for (let hops = 0; ; ) {
    const res = await httpJson(`http://${ep}/propose`, { method: 'POST', body: data }).catch((e: Error) => fail(e.message));
    if (res.status === 200) {
      const ack = res.body as { index: number; term: number };
      return { index: ack.index, term: ack.term, endpoint: ep };
    }
    const err = (typeof res.body === 'object' && res.body !== null ? res.body : {}) as ErrorBody;
    if (err.code === 'NOT_LEADER' && err.leaderAddress && hops < 5) {
      hops++;
      ep = err.leaderAddress;
      continue;
    }
    // NO_LEADER: nothing was appended, so retrying cannot duplicate the entry.
    if (err.code === 'NO_LEADER' && Date.now() < deadline) {
      await sleep(200);
      continue;
    }
    fail(`POST /propose on ${ep}: HTTP ${res.status} ${err.code ?? ''}: ${err.message ?? JSON.stringify(res.body)}`);
  }
}

interface ChangeAck {
  index: number;
  term: number;
  config: { voters: string[]; learners: string[] };
}

function describeConfig(c: { voters: readonly string[]; learners: readonly string[] }): string {
  return `voters [${c.voters.join(', ')}] learners [${c.learners.join(', ')}]`;
}

/**
 * A leader-only request: follows NOT_LEADER redirects; retries while it is safe and may help
 * (NO_LEADER, CONF_CHANGE_IN_PROGRESS, TRANSFER_IN_PROGRESS, a not-yet-caught-up learner:
 * nothing was appended) until waitMs; anything else fails with the server's message.
 *
 * A membership change whose outcome is unknown (LEADERSHIP_LOST: the leader stepped down after
 * appending it; TIMEOUT) must not simply be sent again, since it may be in effect already and a
 * second copy would be refused. With `settled`, the leader's configuration is read instead: if
 * the change is in it (a leader never drops entries of its own log, so it will commit), the
 * request succeeded; if not, it is retried.
 */
async function leaderRequest(
  endpoint: string,
  method: string,
  path: string,
  body: string | undefined,
  waitMs: number,
  settled?: (config: ChangeAck['config']) => boolean,
): Promise<ChangeAck> {
  const deadline = Date.now() + waitMs;
  let ep = endpoint;
  for (let hops = 0; ; ) {
    const res = await httpJson(`http://${ep}${path}`, { method, ...(body !== undefined ? { body: new TextEncoder().encode(body) } : {}), timeoutMs: 60_000 }).catch((e: Error) => fail(e.message));
    if (res.status === 200) return res.body as ChangeAck;
    const err = (typeof res.body === 'object' && res.body !== null ? res.body : {}) as ErrorBody;
    if (err.code === 'NOT_LEADER' && err.leaderAddress && hops < 5) {
      hops++;
      ep = err.leaderAddress;
      continue;
    }
    const retryable = ['NO_LEADER', 'CONF_CHANGE_IN_PROGRESS', 'TRANSFER_IN_PROGRESS'].includes(err.code ?? '') || (err.code === 'TIMEOUT' && /not caught up/.test(err.message ?? ''));
    if (retryable && Date.now() < deadline) {
      await sleep(200);
      continue;
    }
    if (settled !== undefined && (err.code === 'LEADERSHIP_LOST' || err.code === 'TIMEOUT') && Date.now() < deadline) {
      await sleep(200);
      const m = await leaderMembers(ep);
      if (m !== null && settled(m.config)) return { index: m.commit, term: 0, config: m.config };
      continue;
    }
    fail(`${method} ${path} on ${ep}: HTTP ${res.status} ${err.code ?? ''}: ${err.message ?? JSON.stringify(res.body)}`);
  }
}

/** The leader's /members (asked through `ep`, following its leader address), or null when no leader answers. */
async function leaderMembers(ep: string): Promise<MembersBody | null> {
  const first = await httpJson(`http://${ep}/members`, { method: 'GET' }).catch(() => null);
  const leaderAddress = (first?.body as { leaderAddress?: string | null } | undefined)?.leaderAddress;
  const res = typeof leaderAddress === 'string' && leaderAddress !== ep ? await httpJson(`http://${leaderAddress}/members`, { method: 'GET' }).catch(() => null) : first;
  if (res === null || res.status !== 200) return null;
  const m = res.body as MembersBody;
  return m.leader !== null && m.leader === m.id ? m : null;
}

interface MembersBody {
  id: string;
  leader: string | null;
  config: { voters: string[]; learners: string[] };
  addresses: Record<string, string>;
  progress: Record<string, { match: number; learner: boolean; state: string }>;
  commit: number;
}

function formatMembers(m: MembersBody): string {
  const rows: string[][] = [['member', 'role', 'address', 'match', 'state']];
  const ids = [...m.config.voters, ...m.config.learners];
  for (const id of ids) {
    const pr = m.progress[id];
    const role = m.config.voters.includes(id) ? (id === m.leader ? 'voter (leader)' : 'voter') : 'learner';
    rows.push([id, role, m.addresses[id] ?? '?', id === m.leader ? String(m.commit) : pr ? String(pr.match) : '-', pr ? pr.state : '-']);
  }
  return `as seen by ${m.id}; leader ${m.leader ?? 'unknown'}, commit ${m.commit}\n` + table(rows);
}

// ---------------------------------------------------------------------------------------------
// Status rendering.

interface StatusBody {
  id: string;
  role: string;
  term: number;
  leader: string | null;
  leaderAddress?: string | null;
  commit: number;
  applied: number;
  lastIndex: number;
  appliedDigest: string;
  appliedCount?: number;
  firstIndex?: number;
  config?: { voters: string[]; learners: string[] };
  snapshot?: { index: number; term: number; fileBytes: number } | null;
  transferee?: string | null;
  progress: Record<string, { match: number; next: number; state: string; inflight: number; recentActive: boolean; learner?: boolean }>;
  transport?: { peers: Record<string, { connected: boolean; queuedMsgs: number; sentMsgs: number; droppedMsgs: number; reconnects: number }> };
}

function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

function formatStatus(s: StatusBody): string {
  let out = table([
    ['node', 'role', 'term', 'leader', 'commit', 'applied', 'lastIndex', 'digest'],
    [s.id, s.role, String(s.term), s.leader ?? '-', String(s.commit), String(s.applied), String(s.lastIndex), s.appliedDigest.slice(0, 12)],
  ]);
  if (s.config !== undefined) {
    out += `config: ${describeConfig(s.config)}; log from index ${s.firstIndex ?? 1}; ` +
      `snapshot ${s.snapshot ? `${s.snapshot.index}/t${s.snapshot.term} (${s.snapshot.fileBytes} bytes)` : 'none'}` +
      (s.transferee ? `; transferring leadership to ${s.transferee}` : '') + '\n';
  }
  const peers = Object.keys({ ...s.progress, ...(s.transport?.peers ?? {}) }).sort();
  if (peers.length > 0) {
    out += '\n';
    const rows: string[][] = [['peer', 'match', 'next', 'state', 'inflight', 'active', 'connected', 'sent', 'dropped']];
    for (const p of peers) {
      const pr = s.progress[p];
      const link = s.transport?.peers[p];
      rows.push([
        p,
        pr ? String(pr.match) : '-',
        pr ? String(pr.next) : '-',
        pr ? pr.state : '-',
        pr ? String(pr.inflight) : '-',
        pr ? String(pr.recentActive) : '-',
        link ? String(link.connected) : '-',
        link ? String(link.sentMsgs) : '-',
        link ? String(link.droppedMsgs) : '-',
      ]);
    }
    out += table(rows);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// `raft cluster`: the `npm start` experience.

interface ClusterFlags {
  nodes: number;
  dataDir: string;
  basePort?: number;
  clusterId: string;
  tickMs: number;
  electionTicks: number;
  intervalMs: number;
  duration: number;
}

interface Member {
  readonly id: string;
  readonly address: string;
  readonly logFile: string;
  readonly child: Child;
  status: StatusBody | null;
}

async function runCluster(o: ClusterFlags): Promise<void> {
  const dataRoot = resolve(o.dataDir);
  mkdirSync(dataRoot, { recursive: true });
  const ids = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
  const ports = o.basePort !== undefined ? ids.map((_, i) => o.basePort! + i) : await freePorts(o.nodes);
  const peers = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]}`).join(',');
  const bin = process.argv[1];
  if (!bin) fail('cannot find the ballot CLI script to start nodes with');
  const tty = process.stdout.isTTY === true;

  const group = new ChildGroup(
    ids.map((id, i) => ({
      name: id,
      logFile: join(dataRoot, `${id}.log`),
      args: [
        'raft', 'node',
        '--id', id,
        '--data-dir', join(dataRoot, id),
        '--listen', `127.0.0.1:${ports[i]}`,
        '--peers', peers,
        '--cluster-id', o.clusterId,
        '--tick-ms', String(o.tickMs),
        '--election-ticks', String(o.electionTicks),
      ],
    })),
    bin,
  );
  const members: Member[] = group.children.map((child, i) => ({ id: child.name, address: `127.0.0.1:${ports[i]}`, logFile: child.logFile, child, status: null }));
  // Every child is stopped by PID however this process ends (the group also SIGKILLs on exit).
  // A node's graceful stop may first try a leadership transfer and drain (bounded, < 10 s).
  const stopAll = (): Promise<void> => group.stopAll(10_000);
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    if (tty) process.stdout.write('\nstopping every node...\n');
    else process.stdout.write('stopping every node\n');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const header =
    `Ballot Raft cluster: ${o.nodes} node process${o.nodes === 1 ? '' : 'es'}, cluster id "${o.clusterId}", data and logs in ${dataRoot}\n` +
    members.map((m) => `  ${m.id}  pid ${m.child.pid}  http://${m.address}/status   log ${m.logFile}`).join('\n') +
    `\nTry:  npx ballot raft status --endpoint ${members[0]!.address}\n` +
    `      npx ballot raft put --endpoint ${members[0]!.address} hello\n` +
    `      curl -s http://${members[0]!.address}/status\n` +
    'Proposing one entry every ' + o.intervalMs + ' ms. Ctrl-C stops every node.\n';
  process.stdout.write(header + '\n');

  const startedMs = Date.now();
  let committed = 0;
  let failed = 0;
  let lastAck = '';
  let lastError = '';
  let proposing = false;
  let seq = 0;
  let drawnLines = 0;
  let lastPlainMs = 0;
  let lastLeaderKey = '';
  const leadersSeen = new Set<string>();

  const poll = async (): Promise<void> => {
    await Promise.all(
      members.map(async (m) => {
        if (m.child.exit !== null) {
          m.status = null;
          return;
        }
        try {
          const res = await httpJson(`http://${m.address}/status`, { method: 'GET', timeoutMs: Math.max(200, o.intervalMs - 50) });
          m.status = res.status === 200 ? (res.body as StatusBody) : null;
        } catch {
          m.status = null;
        }
      }),
    );
  };

  const proposeOne = (): void => {
    const leader = members.find((m) => m.status?.role === 'leader' && m.child.exit === null);
    if (!leader || proposing) return;
    proposing = true;
    const n = ++seq;
    const text = `entry ${n} at ${new Date().toISOString()}`;
    httpJson(`http://${leader.address}/propose`, { method: 'POST', body: new TextEncoder().encode(text), timeoutMs: 5000 })
      .then((res) => {
        if (res.status === 200) {
          committed++;
          const ack = res.body as { index: number; term: number };
          lastAck = `entry ${n} → index ${ack.index}, term ${ack.term} via ${leader.id}`;
        } else {
          failed++;
          const err = res.body as ErrorBody;
          lastError = `${err.code ?? res.status}: ${err.message ?? ''}`;
        }
      })
      .catch((e: Error) => {
        failed++;
        lastError = e.message;
      })
      .finally(() => {
        proposing = false;
      });
  };

  const render = (): void => {
    const elapsedS = ((Date.now() - startedMs) / 1000).toFixed(1);
    const leaders = members.filter((m) => m.status?.role === 'leader');
    const leaderKey = leaders.map((m) => `${m.id}@${m.status!.term}`).join(',');
    for (const l of leaders) leadersSeen.add(`${l.id}@${l.status!.term}`);
    if (tty) {
      const rows: string[][] = [['node', 'pid', 'role', 'term', 'leader', 'commit', 'applied', 'lastIndex', 'digest']];
      for (const m of members) {
        const s = m.status;
        rows.push(
          s
            ? [m.id, String(m.child.pid), s.role, String(s.term), s.leader ?? '-', String(s.commit), String(s.applied), String(s.lastIndex), s.appliedDigest.slice(0, 12)]
            : [m.id, String(m.child.pid), m.child.exit ?? 'starting…', '', '', '', '', '', ''],
        );
      }
      const lines =
        `t=${elapsedS}s  leader: ${leaders.length > 0 ? leaderKey : 'none yet (election under way)'}\n` +
        table(rows) +
        `proposals: ${committed} committed, ${failed} failed${lastAck ? `   last: ${lastAck}` : ''}\n` +
        `leaders so far (id@term): ${[...leadersSeen].join(' → ') || 'none'}\n` +
        (lastError ? `last error: ${lastError}\n` : '');
      const clear = drawnLines > 0 ? `\x1b[${drawnLines}A\x1b[0J` : '';
      process.stdout.write(clear + lines);
      drawnLines = lines.split('\n').length - 1;
    } else if (leaderKey !== lastLeaderKey || Date.now() - lastPlainMs >= 2000) {
      // Plain output: a line every 2 s and whenever the leadership changes.
      lastPlainMs = Date.now();
      const nodes = members
        .map((m) => (m.status ? `${m.id}=${m.status.role}/t${m.status.term}/c${m.status.commit}/a${m.status.applied}` : `${m.id}=${m.child.exit ?? 'starting'}`))
        .join(' ');
      process.stdout.write(
        `t=${elapsedS}s leader=${leaders.length > 0 ? leaderKey : 'none'} ${nodes} committed=${committed} failed=${failed}\n`,
      );
    }
    lastLeaderKey = leaderKey;
  };

  while (!interrupted) {
    await poll();
    proposeOne();
    render();
    if (members.every((m) => m.child.exit !== null)) {
      process.stdout.write(`every node has exited; see the logs in ${dataRoot}\n`);
      process.exitCode = 1;
      break;
    }
    if (o.duration > 0 && Date.now() - startedMs >= o.duration * 1000) break;
    await sleep(o.intervalMs);
  }
  // Counted before stopping: proposals cut off by the shutdown itself are not failures.
  const summary = `stopped ${members.length} nodes; ${committed} entries committed, ${failed} failed, leaders seen: ${[...leadersSeen].join(' ') || 'none'}\n`;
  await stopAll();
  process.stdout.write(summary);
  process.exit(process.exitCode ?? 0);
}
