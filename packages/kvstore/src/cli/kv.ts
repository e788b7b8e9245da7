// `ballot kv ...`: etcdctl-like commands over Ballot's native client (KvClient), plus `kv serve`
// (one member), `kv cluster` (a local cluster of member processes: `npm start`) and backup/restore.
//
//   ballot kv get <key> [range_end] [--prefix] [--from-key] [--rev N] [--limit N] [--keys-only] [--count-only] [--consistency l|s]
//   ballot kv put <key> [value] [--lease ID] [--prev-kv]         (value from stdin when omitted)
//   ballot kv del <key> [range_end] [--prefix] [--from-key] [--prev-kv]
//   ballot kv txn [-i] [--file F]                                 (etcdctl's txn script from stdin or F)
//   ballot kv watch [key] [range_end] [--prefix] [--rev N] [--prev-kv]   (until Ctrl-C)
//   ballot kv lease grant TTL | revoke ID | keep-alive ID [--once] | timetolive ID [--keys] | list
//   ballot kv member list | add NAME --peer-urls U [--learner] | remove ID | promote ID
//   ballot kv endpoint status [--cluster]   (also: ballot kv status)
//   ballot kv compact REV
//   ballot kv snapshot save FILE | restore FILE --data-dir D [--name N --initial-cluster ... ]
//   ballot kv cluster [--members 3] [--data-dir ./data/kv-cluster] [--base-port P]
//   ballot kv serve --name ... (etcd's flags)
//
// Every client command takes --endpoints (default http://127.0.0.1:2379), -w/--write-out
// simple|json|table and --command-timeout, or etcdctl's environment variables ETCDCTL_ENDPOINTS,
// ETCDCTL_WRITE_OUT, ETCDCTL_COMMAND_TIMEOUT. Exit codes: 0 ok, 1 the request failed (the message
// says why, in etcd's words where etcd has the error), 2 usage (the message names the flag).

import { createWriteStream, existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Command, CommanderError, Option } from 'commander';

import { KvClient } from '../client/client.js';
import { KvError } from '../errors.js';
import { registerKvServeCommand } from '../server/flags.js';
import { restoreBackupInto } from '../state/backup.js';
import type { KvService, WatchResponse } from '../types.js';
import { UsageError, bytes, keyRange, parseEndpoints, parseIntArg, parseLeaseId, parseMemberId, parseUrls, rangeRequest, type GetFlags } from './args.js';
import { runKvCluster } from './cluster.js';
import {
  OUTPUT_FORMATS,
  formatCompact,
  formatDel,
  formatGet,
  formatLeaseGrant,
  formatLeaseKeepAlive,
  formatLeaseList,
  formatLeaseRevoke,
  formatLeaseTimeToLive,
  formatMemberChange,
  formatMemberList,
  formatPut,
  formatStatus,
  formatTxn,
  formatWatch,
  leaseHex,
  type EndpointStatus,
  type OutputFormat,
} from './format.js';
import { parseTxnScript } from './txn.js';

export const EXIT_CODES = { OK: 0, FAILURE: 1, USAGE: 2 } as const;

/** What the commands need from a client: the service, and a way to let go of it. */
export interface CliClient extends KvService {
  close(): Promise<void>;
}

export interface ClientFlags {
  endpoints: string;
  writeOut: string;
  commandTimeout: string;
}

interface Common {
  readonly endpoints: string[];
  readonly fmt: OutputFormat;
  readonly timeoutMs: number;
}

/** etcd-style durations: "5s", "500ms", "1m", or bare milliseconds. */
export function parseDurationMs(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!m) throw new UsageError(`${flag}: expected a duration like 5s, 500ms or 1m, got "${value}"`);
  const n = Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 1);
  if (n < 1 || n > 3_600_000) throw new UsageError(`${flag}: ${value} is out of range 1ms-1h`);
  return Math.round(n);
}

function common(o: ClientFlags): Common {
  if (!(OUTPUT_FORMATS as readonly string[]).includes(o.writeOut)) {
    throw new UsageError(`--write-out: expected one of ${OUTPUT_FORMATS.join(', ')}, got "${o.writeOut}"`);
  }
  return { endpoints: parseEndpoints(o.endpoints), fmt: o.writeOut as OutputFormat, timeoutMs: parseDurationMs('--command-timeout', o.commandTimeout) };
}

async function connect(c: Common, endpoints: readonly string[] = c.endpoints, preferLeader = true): Promise<CliClient> {
  return KvClient.connect({ endpoints, timeoutMs: c.timeoutMs, connectTimeoutMs: Math.min(2000, c.timeoutMs), preferLeader });
}

function out(text: string): void {
  if (text !== '') process.stdout.write(text);
}

/** The message of any failure, without a stack: etcdctl's "Error: ..." line. */
function messageOf(e: unknown): string {
  if (e instanceof KvError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

function exitWith(code: number, message: string): never {
  process.stderr.write(`Error: ${message}\n`);
  process.exit(code);
}

/**
 * Runs a command body: parses the common flags, gives the body a lazy connect (so the body
 * validates its own arguments before any network traffic), closes the client at the end.
 * UsageError → exit 2; any other failure → exit 1 with its message (never a stack trace).
 */
async function run(o: ClientFlags, body: (client: () => Promise<CliClient>, c: Common) => Promise<void>): Promise<void> {
  let c: Common;
  try {
    c = common(o);
  } catch (e) {
    if (e instanceof UsageError) exitWith(EXIT_CODES.USAGE, e.message);
    throw e;
  }
  let opened: Promise<CliClient> | null = null;
  const client = (): Promise<CliClient> => (opened ??= connect(c));
  const close = async (): Promise<void> => {
    if (opened !== null) await (await opened.catch(() => null))?.close().catch(() => undefined);
  };
  try {
    await body(client, c);
  } catch (e) {
    await close();
    if (e instanceof UsageError) exitWith(EXIT_CODES.USAGE, e.message);
    exitWith(EXIT_CODES.FAILURE, messageOf(e));
  }
  await close();
}

function addClientFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--endpoints <urls>', 'comma-separated client URLs of members').default('http://127.0.0.1:2379').env('ETCDCTL_ENDPOINTS'))
    .addOption(new Option('-w, --write-out <format>', 'output format: simple, json or table').default('simple').env('ETCDCTL_WRITE_OUT'))
    .addOption(new Option('--command-timeout <duration>', 'deadline of the command (retries included), e.g. 5s').default('10s').env('ETCDCTL_COMMAND_TIMEOUT'));
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const b = chunk as Buffer;
    total += b.length;
    // Bounded: a request larger than etcd's limit would be refused anyway.
    if (total > 4 * 1024 * 1024) throw new UsageError('stdin: more than 4 MiB of input');
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** etcdctl's interactive txn: prompts for each section and reads lines until the third empty line. */
async function readTxnInteractive(): Promise<string> {
  const prompts = ['compares:', 'success requests (get, put, del):', 'failure requests (get, put, del):'];
  const rl = createInterface({ input: process.stdin, terminal: false });
  const lines: string[] = [];
  let section = 0;
  process.stdout.write(`${prompts[0]}\n`);
  for await (const line of rl) {
    lines.push(line);
    if (line.trim() === '') {
      section++;
      if (section >= 3) break;
      process.stdout.write(`${prompts[section]}\n`);
    }
  }
  rl.close();
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

export function registerKvCommands(program: Command): Command {
  const kv = program
    .command('kv')
    .description('the replicated key-value store (etcd v3 compatible): run members, a local cluster, and etcdctl-like commands');
  const usageExit = (err: CommanderError): never => process.exit(err.exitCode === 0 ? 0 : EXIT_CODES.USAGE);
  kv.exitOverride(usageExit);

  registerKvServeCommand(kv);

  // get
  addClientFlags(kv.command('get'))
    .description('get a key or a range of keys')
    .argument('<key>', 'the key (with --prefix: the prefix; "" with --prefix: every key)')
    .argument('[range_end]', 'end of the range [key, range_end)')
    .option('--prefix', 'get keys with the prefix')
    .option('--from-key', 'get keys >= key (byte order)')
    .option('--rev <n>', 'read at this revision (0: current)')
    .option('--limit <n>', 'maximum number of keys (0: no limit)')
    .option('--keys-only', 'only the keys')
    .option('--count-only', 'only the number of keys')
    .option('--print-value-only', 'only the values (simple format)')
    .option('--order <order>', 'ASCEND or DESCEND')
    .option('--sort-by <target>', 'CREATE, KEY, MODIFY, VALUE or VERSION')
    .option('--consistency <l|s>', 'l: linearizable (default), s: serializable (local, maybe stale)', 'l')
    .action((key: string, rangeEnd: string | undefined, o: ClientFlags & GetFlags & { printValueOnly?: boolean }) =>
      run(o, async (kv, c) => {
        const req = rangeRequest('get', key, rangeEnd, o);
        const a = await (await kv()).range(req, { timeoutMs: c.timeoutMs });
        out(formatGet(a, c.fmt, { keysOnly: o.keysOnly === true, countOnly: o.countOnly === true, printValueOnly: o.printValueOnly === true }));
      }),
    );

  // put
  addClientFlags(kv.command('put'))
    .description('put a key (the value is read from stdin when omitted)')
    .argument('<key>')
    .argument('[value]')
    .option('--lease <id>', 'attach the key to this lease (hex id)')
    .option('--prev-kv', 'print the previous key-value')
    .option('--ignore-value', 'keep the current value (update the lease only)')
    .option('--ignore-lease', 'keep the current lease')
    .action((key: string, value: string | undefined, o: ClientFlags & { lease?: string; prevKv?: boolean; ignoreValue?: boolean; ignoreLease?: boolean }) =>
      run(o, async (kv, c) => {
        if (key === '') throw new UsageError('put: the key must not be empty');
        if (value !== undefined && o.ignoreValue) throw new UsageError('put: a value excludes --ignore-value');
        const v = value ?? (o.ignoreValue ? '' : await readStdin());
        const lease = o.lease !== undefined ? parseLeaseId('--lease', o.lease) : undefined;
        const client = await kv();
        const a = await client.put(
          {
            key: bytes(key),
            value: bytes(v),
            ...(lease !== undefined ? { lease } : {}),
            ...(o.prevKv ? { prevKv: true } : {}),
            ...(o.ignoreValue ? { ignoreValue: true } : {}),
            ...(o.ignoreLease ? { ignoreLease: true } : {}),
          },
          { timeoutMs: c.timeoutMs },
        );
        out(formatPut(a, c.fmt));
      }),
    );

  // del
  addClientFlags(kv.command('del'))
    .description('delete a key or a range of keys')
    .argument('<key>')
    .argument('[range_end]')
    .option('--prefix', 'delete keys with the prefix')
    .option('--from-key', 'delete keys >= key')
    .option('--prev-kv', 'print the deleted key-values')
    .action((key: string, rangeEnd: string | undefined, o: ClientFlags & { prefix?: boolean; fromKey?: boolean; prevKv?: boolean }) =>
      run(o, async (kv, c) => {
        const range = keyRange('del', key, rangeEnd, o);
        const a = await (await kv()).deleteRange({ ...range, ...(o.prevKv ? { prevKv: true } : {}) }, { timeoutMs: c.timeoutMs });
        out(formatDel(a, c.fmt));
      }),
    );

  // txn
  addClientFlags(kv.command('txn'))
    .description("run a transaction written in etcdctl's format (compares, empty line, success ops, empty line, failure ops)")
    .option('-i, --interactive', 'prompt for each section')
    .option('--file <file>', 'read the txn from a file instead of stdin')
    .action((o: ClientFlags & { interactive?: boolean; file?: string }) =>
      run(o, async (kv, c) => {
        let script: string;
        if (o.file !== undefined) {
          try {
            script = readFileSync(o.file, 'utf8');
          } catch (e) {
            throw new UsageError(`--file: cannot read ${o.file}: ${(e as Error).message}`);
          }
        } else script = o.interactive ? await readTxnInteractive() : await readStdin();
        const txn = parseTxnScript(script);
        const a = await (await kv()).txn(txn, { timeoutMs: c.timeoutMs });
        out(formatTxn(a, c.fmt));
      }),
    );

  // watch
  addClientFlags(kv.command('watch'))
    .description('print the events on a key, range or prefix until Ctrl-C (resumes across reconnects)')
    .argument('[key]', 'the key (with --prefix: the prefix)', '')
    .argument('[range_end]')
    .option('--prefix', 'watch the keys with the prefix')
    .option('--from-key', 'watch keys >= key')
    .option('--rev <n>', 'the first revision to deliver (0: only new events)')
    .option('--prev-kv', 'print each key\'s previous value')
    .option('--progress-notify', 'ask for periodic progress notifications (json shows them)')
    .action((key: string, rangeEnd: string | undefined, o: ClientFlags & { prefix?: boolean; fromKey?: boolean; rev?: string; prevKv?: boolean; progressNotify?: boolean }) =>
      run(o, async (kv, c) => {
        const range = keyRange('watch', key, rangeEnd, o);
        const startRevision = o.rev !== undefined ? parseIntArg('--rev', o.rev) : 0;
        const client = await kv();
        await new Promise<void>((resolveWatch, rejectWatch) => {
          const stop = (): void => {
            handle.cancel('interrupted');
            resolveWatch();
          };
          const handle = client.watch(
            { ...range, ...(startRevision > 0 ? { startRevision } : {}), ...(o.prevKv ? { prevKv: true } : {}), ...(o.progressNotify ? { progressNotify: true } : {}) },
            {
              send: (w: WatchResponse) => {
                if (w.canceled) {
                  process.off('SIGINT', stop);
                  process.off('SIGTERM', stop);
                  if (w.cancelReason === 'interrupted') return;
                  // etcdctl's words: "watch was canceled (<reason>)".
                  const reason = w.cancelReason ?? (w.compactRevision ? 'mvcc: required revision has been compacted' : 'canceled by the server');
                  const oldest = w.compactRevision ? `; the oldest revision still available is ${w.compactRevision}` : '';
                  rejectWatch(new KvError(w.compactRevision ? 'COMPACTED' : 'STOPPED', `watch was canceled (${reason})${oldest}`));
                  return;
                }
                out(formatWatch(w, c.fmt));
              },
            },
          );
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      }),
    );

  // lease
  const lease = kv.command('lease').description('grant, revoke, keep alive and inspect leases');
  lease.exitOverride(usageExit);
  addClientFlags(lease.command('grant'))
    .description('grant a lease with a TTL in seconds')
    .argument('<ttl>', 'seconds')
    .action((ttl: string, o: ClientFlags) =>
      run(o, async (kv, c) => {
        const ttlSec = parseIntArg('lease grant: ttl', ttl, 1);
        const a = await (await kv()).leaseGrant({ ttlSec }, { timeoutMs: c.timeoutMs });
        out(formatLeaseGrant(a, c.fmt));
      }),
    );
  addClientFlags(lease.command('revoke'))
    .description('revoke a lease (its keys are deleted)')
    .argument('<id>', 'lease id in hex')
    .action((id: string, o: ClientFlags) =>
      run(o, async (kv, c) => {
        const n = parseLeaseId('lease revoke: id', id);
        const a = await (await kv()).leaseRevoke(n, { timeoutMs: c.timeoutMs });
        out(formatLeaseRevoke(a, n, c.fmt));
      }),
    );
  addClientFlags(lease.command('keep-alive'))
    .description('keep a lease alive (until Ctrl-C, or once)')
    .argument('<id>', 'lease id in hex')
    .option('--once', 'renew once and exit')
    .action((id: string, o: ClientFlags & { once?: boolean }) =>
      run(o, async (kv, c) => {
        const n = parseLeaseId('lease keep-alive: id', id);
        const client = await kv();
        let interrupted = false;
        const stop = (): void => {
          interrupted = true;
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        for (;;) {
          const a = await client.leaseKeepAlive(n);
          out(formatLeaseKeepAlive(a, c.fmt));
          if (a.result.ttlSec <= 0) throw new KvError('LEASE_NOT_FOUND', `lease ${leaseHex(n)} expired or revoked`);
          if (o.once) return;
          // Renew at a third of the TTL, as etcd's client does; Ctrl-C stops between renewals.
          const waitMs = Math.max(500, (a.result.ttlSec * 1000) / 3);
          for (let t = 0; t < waitMs && !interrupted; t += 100) await new Promise((r) => setTimeout(r, 100));
          if (interrupted) return;
        }
      }),
    );
  addClientFlags(lease.command('timetolive'))
    .description("show a lease's granted and remaining TTL")
    .argument('<id>', 'lease id in hex')
    .option('--keys', 'also list the attached keys')
    .action((id: string, o: ClientFlags & { keys?: boolean }) =>
      run(o, async (kv, c) => {
        const n = parseLeaseId('lease timetolive: id', id);
        const a = await (await kv()).leaseTimeToLive(n, o.keys === true);
        out(formatLeaseTimeToLive(a, o.keys === true, c.fmt));
      }),
    );
  addClientFlags(lease.command('list'))
    .description('list the active leases')
    .action((o: ClientFlags) =>
      run(o, async (kv, c) => {
        out(formatLeaseList(await (await kv()).leaseLeases(), c.fmt));
      }),
    );

  // member
  const member = kv.command('member').description('list and change the members of the cluster');
  member.exitOverride(usageExit);
  addClientFlags(member.command('list'))
    .description('list the members')
    .action((o: ClientFlags) =>
      run(o, async (kv, c) => {
        out(formatMemberList(await (await kv()).memberList(), c.fmt));
      }),
    );
  addClientFlags(member.command('add'))
    .description('add a member (then start it with --initial-cluster-state existing)')
    .argument('<name>', 'the new member\'s --name')
    .requiredOption('--peer-urls <urls>', 'comma-separated peer URLs of the new member')
    .option('--learner', 'add it as a learner (promote it once caught up)')
    .action((name: string, o: ClientFlags & { peerUrls: string; learner?: boolean }) =>
      run(o, async (kv, c) => {
        const urls = parseUrls('--peer-urls', o.peerUrls);
        const a = await (await kv()).memberAdd(urls, o.learner === true);
        out(formatMemberChange(a, 'added', a.result.member.id, c.fmt, { name }));
      }),
    );
  addClientFlags(member.command('remove'))
    .description('remove a member')
    .argument('<id>', 'member id in hex')
    .action((id: string, o: ClientFlags) =>
      run(o, async (kv, c) => {
        const mid = parseMemberId('member remove: id', id);
        out(formatMemberChange(await (await kv()).memberRemove(mid), 'removed', mid, c.fmt));
      }),
    );
  addClientFlags(member.command('promote'))
    .description('promote a learner to a voting member')
    .argument('<id>', 'member id in hex')
    .action((id: string, o: ClientFlags) =>
      run(o, async (kv, c) => {
        const mid = parseMemberId('member promote: id', id);
        out(formatMemberChange(await (await kv()).memberPromote(mid), 'promoted', mid, c.fmt));
      }),
    );

  // endpoint status / status
  const statusAction = (o: ClientFlags & { cluster?: boolean }) =>
    run(
      o,
      async (_unused, c) => {
        let endpoints = c.endpoints;
        if (o.cluster) {
          const client = await connect(c);
          try {
            const ms = (await client.memberList()).result.members;
            endpoints = ms.flatMap((m) => m.clientUrls.slice(0, 1));
          } finally {
            await client.close().catch(() => undefined);
          }
        }
        const list: EndpointStatus[] = [];
        const failures: string[] = [];
        for (const endpoint of endpoints) {
          try {
            const client = await connect(c, [endpoint], false);
            try {
              list.push({ endpoint, answer: await client.status() });
            } finally {
              await client.close().catch(() => undefined);
            }
          } catch (e) {
            failures.push(`${endpoint}: ${messageOf(e)}`);
          }
        }
        if (list.length > 0) out(formatStatus(list, c.fmt));
        if (failures.length > 0) throw new KvError('STOPPED', `failed to get the status of ${failures.join('; ')}`);
      },
    );
  const endpoint = kv.command('endpoint').description('the status of each endpoint');
  endpoint.exitOverride(usageExit);
  addClientFlags(endpoint.command('status'))
    .description('show the status of each endpoint (version, db size, leader, raft term and indexes)')
    .option('--cluster', 'every member in the member list instead of --endpoints')
    .action(statusAction);
  addClientFlags(kv.command('status'))
    .description('same as `endpoint status`')
    .option('--cluster', 'every member in the member list instead of --endpoints')
    .action(statusAction);

  // compact
  addClientFlags(kv.command('compact'))
    .description('discard the history below a revision (reads and watches there get "required revision has been compacted")')
    .argument('<revision>')
    .option('--physical', 'wait until the compaction is physically applied (always the case in Ballot)')
    .action((rev: string, o: ClientFlags & { physical?: boolean }) =>
      run(o, async (kv, c) => {
        const revision = parseIntArg('compact: revision', rev, 1);
        const a = await (await kv()).compact({ revision, ...(o.physical ? { physical: true } : {}) }, { timeoutMs: c.timeoutMs });
        out(formatCompact(a, revision, c.fmt));
      }),
    );

  // snapshot
  const snapshot = kv.command('snapshot').description('back up a running member, or restore a backup into a new data dir');
  snapshot.exitOverride(usageExit);
  addClientFlags(snapshot.command('save'))
    .description('save the store of one member (the first of --endpoints) to FILE')
    .argument('<file>')
    .action((file: string, o: ClientFlags) =>
      run(
        o,
        async (_unused, c) => {
          const client = await connect(c, c.endpoints.slice(0, 1), false);
          const part = `${file}.part`;
          try {
            const ws = createWriteStream(part);
            let total = 0;
            for await (const chunk of client.snapshot()) {
              total += chunk.length;
              if (!ws.write(chunk)) await once(ws, 'drain');
            }
            ws.end();
            await once(ws, 'finish');
            renameSync(part, file);
            out(c.fmt === 'json' ? `${JSON.stringify({ path: file, bytes: total })}\n` : `Snapshot saved at ${file}\n`);
          } catch (e) {
            rmSync(part, { force: true });
            throw e;
          } finally {
            await client.close().catch(() => undefined);
          }
        },
      ),
    );
  snapshot
    .command('restore')
    .description('create a new data dir from a backup: start a new cluster on it (`kv serve --data-dir D ...`); revisions are kept')
    .argument('<file>')
    .requiredOption('--data-dir <dir>', 'the new member\'s data dir (must not exist or be empty)')
    .option('--name <name>', 'the member\'s name (for the hint printed)', 'default')
    .option('--initial-cluster <list>', 'name=peer-url,... of the new cluster (for the hint printed)')
    .option('--initial-cluster-token <token>', 'the new cluster\'s token (for the hint printed)', 'etcd-cluster')
    .option('--initial-advertise-peer-urls <urls>', 'the member\'s peer URLs (for the hint printed)', 'http://localhost:2380')
    .action(async (file: string, o: { dataDir: string; name: string; initialCluster?: string; initialClusterToken: string; initialAdvertisePeerUrls: string }) => {
      try {
        if (!existsSync(file)) throw new KvError('BAD_REQUEST', `snapshot restore: ${file} does not exist`);
        const dir = resolve(o.dataDir);
        if (existsSync(dir) && readdirSync(dir).length > 0) throw new UsageError(`--data-dir: ${dir} exists and is not empty (restore makes a new member's data dir)`);
        const peerUrls = parseUrls('--initial-advertise-peer-urls', o.initialAdvertisePeerUrls);
        const initialCluster = o.initialCluster ?? peerUrls.map((u) => `${o.name}=${u}`).join(',');
        // A restore that fails part-way leaves no half-made data dir behind.
        const created = !existsSync(dir);
        const r = await restoreBackupInto(file, join(dir, 'kv')).catch((e: unknown) => {
          if (created) rmSync(dir, { recursive: true, force: true });
          throw e;
        });
        process.stdout.write(
          `restored ${file} into ${dir} (revision ${r.revision})\n` +
            `start the new cluster with: ballot kv serve --name ${o.name} --data-dir ${dir} --initial-cluster ${initialCluster} ` +
            `--initial-cluster-token ${o.initialClusterToken} --initial-advertise-peer-urls ${peerUrls.join(',')} --listen-peer-urls ${peerUrls.join(',')} ...\n`,
        );
      } catch (e) {
        if (e instanceof UsageError) exitWith(EXIT_CODES.USAGE, e.message);
        exitWith(EXIT_CODES.FAILURE, messageOf(e));
      }
    });

  // cluster
  kv.command('cluster')
    .description('start a local cluster of `kv serve` member processes (what `npm start` runs); Ctrl-C stops them all')
    .option('--members <n>', 'number of member processes (1-9)', '3')
    .option('--data-dir <dir>', 'parent folder of the members\' data dirs and logs', './data/kv-cluster')
    .option('--base-port <port>', 'client ports base-port, +1, ...; peer ports after them (default: free ports from the OS)')
    .action(async (o: { members: string; dataDir: string; basePort?: string }) => {
      let members: number;
      let basePort: number | undefined;
      try {
        members = parseIntArg('--members', o.members, 1, 9);
        basePort = o.basePort !== undefined ? parseIntArg('--base-port', o.basePort, 1, 65_000) : undefined;
        if (o.dataDir.trim() === '') throw new UsageError('--data-dir: must not be empty');
      } catch (e) {
        if (e instanceof UsageError) exitWith(EXIT_CODES.USAGE, e.message);
        throw e;
      }
      await runKvCluster({ members, dataDir: o.dataDir, ...(basePort !== undefined ? { basePort } : {}) });
    });

  return kv;
}
