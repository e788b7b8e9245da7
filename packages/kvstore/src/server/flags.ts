// `ballot kv serve` takes etcd's own flag names and defaults, so an etcd user's scripts work
// unchanged:
//
//   --name default                 --data-dir <name>.etcd
//   --listen-client-urls           http://localhost:2379      (comma-separated; 0.0.0.0 accepted)
//   --advertise-client-urls        http://localhost:2379
//   --listen-peer-urls             http://localhost:2380
//   --initial-advertise-peer-urls  http://localhost:2380
//   --initial-cluster              <name>=<initial-advertise-peer-urls>   (name=url[,name=url...])
//   --initial-cluster-state        new | existing
//   --initial-cluster-token        etcd-cluster
//   --heartbeat-interval           100 (ms)   one Raft tick
//   --election-timeout             1000 (ms)  electionTicks = election-timeout / heartbeat-interval
//   --snapshot-count               100000     entries applied between snapshots (each one copies the whole store)
//   --max-request-bytes            1572864    (etcd's 1.5 MiB)
//   --log-level                    info
//   --listen-metrics-urls          (none) extra listeners for /metrics /health /readyz /livez
// and Ballot's own: --read-mode read-index|lease, --request-timeout-ms, and for chaos experiments
// and teaching --unsafe-stale-reads, --unsafe-no-fsync (deliberate bugs), --clock-skew-ms,
// --clock-rate and --unsafe-debug-clock (a per-member clock, clock.ts), and --peer-dial-override
// (dial some members at other URLs than they advertise: the chaos runner's proxies). Every etcd flag may also
// come from its environment variable (ETCD_NAME, ETCD_INITIAL_CLUSTER, ...), as in etcd; a flag
// on the command line wins. A few etcd flags that do not apply to Ballot (IGNORED_ETCD_FLAGS) are
// accepted and ignored with a warning, so etcd command lines keep working.
//
// Members dial each other at the advertised peer URLs and listen on the listen URLs (which may
// differ, as in etcd). Only http:// URLs are supported (no TLS; a difference from etcd).

import { Command, CommanderError, Option } from 'commander';
import { LIMITS } from '../errors.js';
import { normalizeUrl } from './ids.js';

export interface KvServeOptions {
  name: string;
  dataDir: string;
  listenClientUrls: string[];
  advertiseClientUrls: string[];
  listenPeerUrls: string[];
  initialAdvertisePeerUrls: string[];
  /** name → peer URLs of every initial member, this one included. */
  initialCluster: Record<string, string[]>;
  initialClusterState: 'new' | 'existing';
  initialClusterToken: string;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  /** Ballot's --read-mode: how linearizable reads are served (lease-based reads are an opt-in for experiments). */
  readMode?: 'read-index' | 'lease';
  logLevel?: string;
  /** Entries applied between two snapshots of the store (the Raft log is compacted then). */
  snapshotCount?: number;
  /** Bound on one client request (etcd's --max-request-bytes). */
  maxRequestBytes?: number;
  /** Deadline of a client request that gives none. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** etcd's --listen-metrics-urls: extra listeners serving only /metrics, /health, /readyz, /livez. */
  listenMetricsUrls?: string[];
  /** etcd flags given that Ballot accepts but ignores (the member logs a warning naming them). */
  ignoredEtcdFlags?: string[];
  /** DELIBERATE BUG (teaching, chaos runs): linearizable reads answered from the local store, no ReadIndex, no quorum check. */
  unsafeStaleReads?: boolean;
  /** DELIBERATE BUG: the Raft log is written without fsync, so entries are acknowledged before they are durable. */
  unsafeNoFsync?: boolean;
  /** Chaos: this member's clock skew in ms (wall-clock reads: lessor, proposal timestamps). Default 0. */
  clockSkewMs?: number;
  /** Chaos: this member's clock rate (1.5 = 50% fast): Raft ticks and wall-clock reads scale with it. Default 1. */
  clockRate?: number;
  /** Chaos: POST /debug/clock {skewMs, rate} on the client listener changes the clock at run time (404 without it). */
  unsafeDebugClock?: boolean;
  /**
   * Ballot's --peer-dial-override: member name (of --initial-cluster) → the URL this member dials
   * for it instead of its advertised peer URL (a fault-injecting proxy, in chaos runs). Ids and
   * membership still come from the advertised URLs; members without an override are dialed as usual.
   */
  peerDialOverride?: Record<string, string>;
  /**
   * Ballot's --max-batch-entries: the most proposals the leader appends (and sends) in one batch.
   * Default 1024; 1 turns batching off (one entry per fsync), for the consistency trade-off bench.
   */
  maxBatchEntries?: number;
  /**
   * Ballot's --parent-pid: the member stops (as on SIGTERM) once this process is gone, so a chaos
   * run or bench that dies without cleaning up leaves no member behind. Checked every 500 ms.
   */
  parentPid?: number;
}

export class KvUsageError extends Error {
  override readonly name = 'KvUsageError';
}

export const KV_SERVE_DEFAULTS = {
  name: 'default',
  clientUrl: 'http://localhost:2379',
  peerUrl: 'http://localhost:2380',
  initialClusterState: 'new',
  initialClusterToken: 'etcd-cluster',
  heartbeatIntervalMs: 100,
  electionTimeoutMs: 1000,
  snapshotCount: 100_000,
  logLevel: 'info',
} as const;

export interface ParsedUrl {
  /** The URL as given, without a trailing slash. */
  readonly url: string;
  /** The host to listen on or dial, without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
  /** "host:port" for dialing (IPv6 in brackets). */
  readonly hostPort: string;
}

/** One http:// URL with a host and a port (0 is accepted for a listen URL: the OS picks a port). */
export function parseUrl(flag: string, value: string, allowPortZero = false): ParsedUrl {
  let u: URL;
  try {
    u = new URL(value.trim());
  } catch {
    throw new KvUsageError(`${flag}: "${value}" is not a URL (expected e.g. http://127.0.0.1:2379)`);
  }
  if (u.protocol === 'https:') throw new KvUsageError(`${flag}: "${value}": https (TLS) is not supported by Ballot; use http://`);
  if (u.protocol !== 'http:') throw new KvUsageError(`${flag}: "${value}": expected an http:// URL`);
  if (u.hostname === '') throw new KvUsageError(`${flag}: "${value}" has no host`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    throw new KvUsageError(`${flag}: "${value}" must not have a path, query or fragment`);
  }
  if (u.port === '' && !/:0\/?$/.test(value.trim())) throw new KvUsageError(`${flag}: "${value}" has no port (e.g. http://127.0.0.1:2379)`);
  const port = u.port === '' ? 0 : Number(u.port);
  if (port === 0 && !allowPortZero) throw new KvUsageError(`${flag}: "${value}": port 0 is only allowed in listen URLs`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { url: `http://${u.hostname}:${port}`, host, port, hostPort: `${u.hostname}:${port}` };
}

/** A comma-separated list of URLs (at least one, no duplicates). */
export function parseUrlList(flag: string, value: string, allowPortZero = false): string[] {
  const parts = value.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) throw new KvUsageError(`${flag}: expected at least one URL`);
  const urls = parts.map((p) => parseUrl(flag, p, allowPortZero).url);
  const dup = urls.find((u, i) => urls.indexOf(u) !== i);
  if (dup !== undefined) throw new KvUsageError(`${flag}: ${dup} is listed twice`);
  return urls;
}

/** "n1=http://a:2380,n2=http://b:2380,n1=http://a2:2380" → { n1: [a, a2], n2: [b] } (etcd allows a name to repeat). */
export function parseInitialCluster(value: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const parts = value.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) throw new KvUsageError('--initial-cluster: expected name=url[,name=url...]');
  const owner = new Map<string, string>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new KvUsageError(`--initial-cluster: expected name=url, got "${part}"`);
    const name = part.slice(0, eq);
    const url = parseUrl(`--initial-cluster (${name})`, part.slice(eq + 1)).url;
    const other = owner.get(url);
    if (other !== undefined) throw new KvUsageError(`--initial-cluster: ${url} is given to both ${other} and ${name}`);
    owner.set(url, name);
    (out[name] ??= []).push(url);
  }
  return out;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function intOf(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) throw new KvUsageError(`${flag}: expected an integer, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new KvUsageError(`${flag}: ${n} is out of range ${min}-${max}`);
  return n;
}

/** What commander hands the action (strings, checked by validateKvServeFlags). */
interface RawServeFlags {
  name: string;
  dataDir?: string;
  listenClientUrls: string;
  advertiseClientUrls: string;
  listenPeerUrls: string;
  initialAdvertisePeerUrls: string;
  initialCluster?: string;
  initialClusterState: string;
  initialClusterToken: string;
  heartbeatInterval: string;
  electionTimeout: string;
  snapshotCount: string;
  maxRequestBytes: string;
  readMode: 'read-index' | 'lease';
  logLevel: string;
  requestTimeoutMs?: string;
  listenMetricsUrls?: string;
  unsafeStaleReads?: boolean;
  unsafeNoFsync?: boolean;
  clockSkewMs?: string;
  clockRate?: string;
  unsafeDebugClock?: boolean;
  peerDialOverride?: string;
  maxBatchEntries?: string;
  parentPid?: string;
  [ignored: string]: unknown;
}

/**
 * etcd flags Ballot accepts so etcd command lines and ETCD_* environments keep working, but that
 * change nothing here (the member logs a warning naming them): logging backends, bbolt quotas,
 * auto-compaction, pprof, WAL/snapshot file counts, v2 API, pre-vote and reconfig checks (Ballot
 * always pre-votes and checks quorum), TLS-less security flags.
 */
export const IGNORED_ETCD_FLAGS = [
  'logger', 'log-outputs', 'quota-backend-bytes', 'auto-compaction-retention', 'auto-compaction-mode', 'enable-pprof',
  'max-snapshots', 'max-wals', 'strict-reconfig-check', 'pre-vote', 'enable-v2', 'enable-grpc-gateway', 'max-txn-ops',
  'grpc-keepalive-min-time', 'grpc-keepalive-interval', 'grpc-keepalive-timeout', 'socket-reuse-port', 'socket-reuse-address',
  'backend-batch-interval', 'backend-batch-limit', 'metrics',
] as const;

/** etcd reads every flag also from the environment: --initial-cluster ↔ ETCD_INITIAL_CLUSTER. */
function envOf(flag: string): string {
  return `ETCD_${flag.replace(/-/g, '_').toUpperCase()}`;
}

/** Adds etcd's serve flags to `cmd` (each also from its ETCD_* environment variable, as etcd). */
function addServeOptions(cmd: Command): Command {
  const d = KV_SERVE_DEFAULTS;
  const etcd = (flag: string, arg: string, description: string, defaultValue?: string, choices?: readonly string[]): Option => {
    const o = new Option(`--${flag} ${arg}`, description).env(envOf(flag));
    if (choices !== undefined) o.choices(choices);
    if (defaultValue !== undefined) o.default(defaultValue);
    return o;
  };
  cmd
    .addOption(etcd('name', '<name>', "this member's human-readable name (a key of --initial-cluster)", d.name))
    .addOption(etcd('data-dir', '<dir>', 'where the member keeps its Raft log (<dir>/raft) and its store (<dir>/kv); default <name>.etcd'))
    .addOption(etcd('listen-client-urls', '<urls>', 'URLs to listen on for client traffic (comma-separated; 0.0.0.0 accepted)', d.clientUrl))
    .addOption(etcd('advertise-client-urls', '<urls>', "this member's client URLs as published to the cluster and clients", d.clientUrl))
    .addOption(etcd('listen-peer-urls', '<urls>', 'URLs to listen on for peer traffic (Raft, snapshots, forwarded requests)', d.peerUrl))
    .addOption(etcd('initial-advertise-peer-urls', '<urls>', "this member's peer URLs as the other members dial them", d.peerUrl))
    .addOption(etcd('listen-metrics-urls', '<urls>', 'extra URLs serving only /metrics, /health, /readyz and /livez'))
    .addOption(etcd('initial-cluster', '<list>', 'every initial member as name=peer-url, comma-separated (default: <name>=<initial-advertise-peer-urls>)'))
    .addOption(etcd('initial-cluster-state', '<state>', 'new: bootstrap a cluster; existing: join one that already added this member', d.initialClusterState, ['new', 'existing']))
    .addOption(etcd('initial-cluster-token', '<token>', 'distinguishes clusters started with the same member URLs (member and cluster ids depend on it)', d.initialClusterToken))
    .addOption(etcd('heartbeat-interval', '<ms>', 'time between leader heartbeats; one Raft tick', String(d.heartbeatIntervalMs)))
    .addOption(etcd('election-timeout', '<ms>', 'time a follower waits for a leader before campaigning (randomized up to 2x)', String(d.electionTimeoutMs)))
    .addOption(etcd('snapshot-count', '<n>', 'entries applied between two snapshots of the store (the log is compacted then)', String(d.snapshotCount)))
    .addOption(etcd('max-request-bytes', '<n>', 'largest client request accepted', String(LIMITS.maxRequestBytes)))
    .addOption(etcd('log-level', '<level>', 'log level', d.logLevel, ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .addOption(new Option('--read-mode <mode>', 'Ballot: linearizable reads by ReadIndex (safe) or leader lease (faster, unsafe under clock drift)').choices(['read-index', 'lease']).default('read-index'))
    .addOption(new Option('--request-timeout-ms <ms>', 'Ballot: deadline of a client request that gives none'))
    // Chaos and teaching only: deliberate bugs and a per-member clock (issue 5's chaos runner).
    .addOption(new Option('--unsafe-stale-reads', 'UNSAFE (deliberate bug): answer linearizable reads from the local store without ReadIndex'))
    .addOption(new Option('--unsafe-no-fsync', 'UNSAFE (deliberate bug): write the Raft log without fsync (acknowledge before durable)'))
    .addOption(new Option('--clock-skew-ms <ms>', "chaos: shift this member's wall clock by ms (may be negative)"))
    .addOption(new Option('--clock-rate <rate>', "chaos: how fast this member's clock runs (1.5 = 50% fast; ticks every heartbeat-interval / rate)"))
    .addOption(new Option('--unsafe-debug-clock', 'chaos: enable POST /debug/clock {skewMs, rate} on the client listener'))
    .addOption(new Option(
      '--peer-dial-override <list>',
      'Ballot (chaos): name=url[,name=url...]: this member dials the named --initial-cluster members at these URLs (e.g. proxies) ' +
        'instead of their advertised peer URLs, for Raft, snapshots and forwarding; ids and membership still come from --initial-cluster; ' +
        'members without an entry (also ones added later) are dialed at their advertised URLs',
    ))
    .addOption(new Option('--max-batch-entries <n>', 'Ballot: most proposals the leader appends in one batch (default 1024; 1 turns batching off)'))
    .addOption(new Option('--parent-pid <pid>', 'Ballot (chaos, benches): stop as on SIGTERM once the process with this PID is gone'));
  for (const flag of IGNORED_ETCD_FLAGS) {
    cmd.addOption(new Option(`--${flag} [value]`, 'accepted for etcd compatibility; ignored by Ballot').env(envOf(flag)).hideHelp());
  }
  return cmd;
}

/** Checks every flag and builds the options (KvUsageError names the wrong flag). */
function validateKvServeFlags(o: RawServeFlags): KvServeOptions {
  const name = o.name.trim();
  if (name === '' || /[=,\s]/.test(name)) throw new KvUsageError(`--name: "${o.name}" must be non-empty without '=', ',' or spaces`);
  const listenClientUrls = parseUrlList('--listen-client-urls', o.listenClientUrls, true);
  const advertiseClientUrls = parseUrlList('--advertise-client-urls', o.advertiseClientUrls);
  const listenPeerUrls = parseUrlList('--listen-peer-urls', o.listenPeerUrls, true);
  const initialAdvertisePeerUrls = parseUrlList('--initial-advertise-peer-urls', o.initialAdvertisePeerUrls);
  const initialCluster = parseInitialCluster(o.initialCluster ?? `${name}=${initialAdvertisePeerUrls.join(`,${name}=`)}`);
  const mine = initialCluster[name];
  if (mine === undefined) {
    throw new KvUsageError(`--initial-cluster: this member's --name "${name}" is not in it (${Object.keys(initialCluster).join(', ')}); list every member, this one included`);
  }
  const sortedMine = [...mine].map(normalizeUrl).sort().join(',');
  const sortedAdvertised = [...initialAdvertisePeerUrls].map(normalizeUrl).sort().join(',');
  if (sortedMine !== sortedAdvertised) {
    throw new KvUsageError(`--initial-cluster has ${name}=${mine.join(',')} but --initial-advertise-peer-urls is ${initialAdvertisePeerUrls.join(',')}; they must match (as etcd requires)`);
  }
  const heartbeatIntervalMs = intOf('--heartbeat-interval', o.heartbeatInterval, 1, 60_000);
  const electionTimeoutMs = intOf('--election-timeout', o.electionTimeout, 1, 600_000);
  // etcd's own rule, with its wording's meaning: elections must not race heartbeats.
  if (electionTimeoutMs < 5 * heartbeatIntervalMs) {
    throw new KvUsageError(`--election-timeout (${electionTimeoutMs} ms) should be at least 5 times --heartbeat-interval (${heartbeatIntervalMs} ms)`);
  }
  if (o.initialClusterState !== 'new' && o.initialClusterState !== 'existing') {
    throw new KvUsageError(`--initial-cluster-state: expected new or existing, got "${o.initialClusterState}"`);
  }
  const token = o.initialClusterToken.trim();
  if (token === '') throw new KvUsageError('--initial-cluster-token: must not be empty');
  const dataDir = (o.dataDir ?? `${name}.etcd`).trim();
  if (dataDir === '') throw new KvUsageError('--data-dir: must not be empty');
  return {
    name,
    dataDir,
    listenClientUrls,
    advertiseClientUrls,
    listenPeerUrls,
    initialAdvertisePeerUrls,
    initialCluster,
    initialClusterState: o.initialClusterState,
    initialClusterToken: token,
    heartbeatIntervalMs,
    electionTimeoutMs,
    readMode: o.readMode,
    logLevel: o.logLevel,
    snapshotCount: intOf('--snapshot-count', o.snapshotCount, 1, 1_000_000_000),
    maxRequestBytes: intOf('--max-request-bytes', o.maxRequestBytes, 1024, 64 * 1024 * 1024),
    ...(o.requestTimeoutMs !== undefined ? { requestTimeoutMs: intOf('--request-timeout-ms', o.requestTimeoutMs, 1, 3_600_000) } : {}),
    ...(o.listenMetricsUrls !== undefined ? { listenMetricsUrls: parseUrlList('--listen-metrics-urls', o.listenMetricsUrls, true) } : {}),
    ignoredEtcdFlags: IGNORED_ETCD_FLAGS.filter((f) => o[camel(f)] !== undefined).map((f) => `--${f}`),
    ...(o.unsafeStaleReads === true ? { unsafeStaleReads: true } : {}),
    ...(o.unsafeNoFsync === true ? { unsafeNoFsync: true } : {}),
    ...(o.unsafeDebugClock === true ? { unsafeDebugClock: true } : {}),
    ...(o.clockSkewMs !== undefined ? { clockSkewMs: numberOf('--clock-skew-ms', o.clockSkewMs, -86_400_000, 86_400_000, true) } : {}),
    ...(o.clockRate !== undefined ? { clockRate: numberOf('--clock-rate', o.clockRate, 0.01, 100, false) } : {}),
    ...(o.peerDialOverride !== undefined ? { peerDialOverride: parsePeerDialOverride(o.peerDialOverride, name, initialCluster) } : {}),
    ...(o.maxBatchEntries !== undefined ? { maxBatchEntries: intOf('--max-batch-entries', o.maxBatchEntries, 1, 1_000_000) } : {}),
    ...(o.parentPid !== undefined ? { parentPid: intOf('--parent-pid', o.parentPid, 1, 4_194_304) } : {}),
  };
}

/**
 * "n2=http://127.0.0.1:7002,n3=http://127.0.0.1:7003" → { n2: ..., n3: ... }. Every name must be
 * another member of --initial-cluster, named once; every URL a dialable http:// URL.
 */
export function parsePeerDialOverride(value: string, self: string, initialCluster: Readonly<Record<string, readonly string[]>>): Record<string, string> {
  const flag = '--peer-dial-override';
  const parts = value.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) throw new KvUsageError(`${flag}: expected name=url[,name=url...]`);
  const out: Record<string, string> = {};
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new KvUsageError(`${flag}: expected name=url, got "${part}"`);
    const name = part.slice(0, eq);
    if (initialCluster[name] === undefined) {
      throw new KvUsageError(`${flag}: "${name}" is not a member of --initial-cluster (${Object.keys(initialCluster).join(', ')})`);
    }
    if (name === self) throw new KvUsageError(`${flag}: "${name}" is this member; only other members can be dialed elsewhere`);
    if (out[name] !== undefined) throw new KvUsageError(`${flag}: "${name}" is given twice`);
    out[name] = parseUrl(`${flag} (${name})`, part.slice(eq + 1)).url;
  }
  return out;
}

/** A decimal number (an integer when `integer`) within [min, max]. */
function numberOf(flag: string, value: string, min: number, max: number, integer: boolean): number {
  const t = value.trim();
  const ok = integer ? /^-?\d+$/.test(t) : /^\d+(\.\d+)?$/.test(t);
  if (!ok) throw new KvUsageError(`${flag}: expected ${integer ? 'an integer' : 'a positive number'}, got "${value}"`);
  const n = Number(t);
  if (n < min || n > max) throw new KvUsageError(`${flag}: ${n} is out of range ${min}-${max}`);
  return n;
}

/**
 * Parses `kv serve` flags (argv without the command words, e.g. ['--name', 'n1', ...]).
 * Throws KvUsageError on a bad or unknown flag.
 */
export function parseKvServeFlags(argv: readonly string[]): KvServeOptions {
  const cmd = addServeOptions(new Command('serve'))
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined })
    .allowExcessArguments(false);
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) throw new KvUsageError(e.message.replace(/^error: /, ''));
    throw e;
  }
  return validateKvServeFlags(cmd.opts<RawServeFlags>());
}

/**
 * Adds `serve` to a commander group (the CLI's `ballot kv`): runs one member in this process
 * until SIGTERM/SIGINT. Usage errors exit with 2 and name the flag.
 */
export function registerKvServeCommand(kv: Command): Command {
  const serve = addServeOptions(
    kv.command('serve').description('run one key-value store member (Raft + MVCC store + etcd v3 JSON API + native ws API), with etcd\'s flag names'),
  );
  serve.action(async (o: RawServeFlags) => {
    let opts: KvServeOptions;
    try {
      opts = validateKvServeFlags(o);
    } catch (e) {
      if (e instanceof KvUsageError) {
        process.stderr.write(`ballot kv serve: ${e.message}\n`);
        process.exit(2);
      }
      throw e;
    }
    // Loaded on use: parsing flags (and every other `ballot kv` command) needs none of the server's modules.
    const { runKvServe } = await import('./run.js');
    await runKvServe(opts);
  });
  return serve;
}
