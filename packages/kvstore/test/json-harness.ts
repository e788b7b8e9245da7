// Helpers for the JSON gateway tests: free ports, a real etcd process (killed by PID), a small
// HTTP client for unary calls and for etcd's streamed /v3/watch and /v3/lease/keepalive, and the
// request sequence the compat test sends to both etcd and Ballot.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePorts } from '@ballot/raft';
import { KvNode, type KvNodeStartOptions } from '../src/server/node.js';

export const ETCD_BINARY = '/usr/bin/etcd';

export { freePorts };

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly text: string;
  /** The body parsed as JSON, or undefined if it is not JSON. */
  readonly json: unknown;
}

/** One HTTP request; `body` is sent as is when a string, else as JSON. */
export function call(base: string, path: string, body: unknown = {}, method = 'POST'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, base);
    const data = typeof body === 'string' ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method, headers: { 'Content-Type': 'application/json', 'Content-Length': data.length }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text) as unknown;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(20_000, () => req.destroy(new Error(`${path}: no answer within 20 s`)));
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : data);
  });
}

/** A streamed call (/v3/watch, /v3/lease/keepalive): messages go out as JSON, lines come back. */
export class StreamCall {
  readonly status: Promise<number>;
  private readonly req: ClientRequest;
  private buf = '';
  private readonly lines: unknown[] = [];
  private waiter: (() => void) | null = null;
  ended = false;

  constructor(base: string, path: string) {
    const u = new URL(path, base);
    this.req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'Content-Type': 'application/json' }, agent: false });
    this.status = new Promise((resolve, reject) => {
      this.req.on('response', (res) => {
        resolve(res.statusCode ?? 0);
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          this.buf += c;
          let i: number;
          while ((i = this.buf.indexOf('\n')) >= 0 || (this.buf.trim().endsWith('}') && tryParse(this.buf.trim()) !== undefined)) {
            const line = i >= 0 ? this.buf.slice(0, i) : this.buf;
            this.buf = i >= 0 ? this.buf.slice(i + 1) : '';
            if (line.trim() !== '') this.lines.push(tryParse(line.trim()) ?? line);
          }
          this.wake();
        });
        res.on('end', () => {
          this.ended = true;
          this.wake();
        });
        res.on('error', () => undefined);
      });
      this.req.on('error', (e) => {
        this.ended = true;
        this.wake();
        reject(e);
      });
    });
    this.status.catch(() => undefined);
  }

  send(msg: unknown): void {
    this.req.write(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** The next line (parsed JSON), or undefined if the stream ended or nothing came within timeoutMs. */
  async next(timeoutMs = 5000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0 && !this.ended && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, Math.max(1, deadline - Date.now()));
      });
    }
    return this.lines.shift();
  }

  close(): void {
    this.req.destroy();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}

function tryParse(s: string): unknown {
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// A real etcd

export interface EtcdProcess {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export function etcdInstalled(): boolean {
  return existsSync(ETCD_BINARY);
}

/** Starts a 1-member etcd on free ports in a temp dir; stop() kills it by PID and removes the dir. */
export async function startEtcd(): Promise<EtcdProcess> {
  const [cp, pp] = await freePorts(2);
  const dir = tempDir('ballot-json-etcd-');
  const client = `http://127.0.0.1:${cp}`;
  const peer = `http://127.0.0.1:${pp}`;
  const child: ChildProcess = spawn(
    ETCD_BINARY,
    ['--name', 'e1', '--data-dir', join(dir, 'data'), '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `e1=${peer}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    if (log.length < 100_000) log += c.toString();
  });
  const pid = child.pid ?? 0;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await call(client, '/v3/kv/range', { key: 'AA==' });
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`etcd did not start within 20 s:\n${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: client, pid, stop };
}

// ---------------------------------------------------------------------------------------------
// The compat sequence: the same requests, in the same order, to an empty etcd and an empty Ballot.

export interface StepResult {
  readonly name: string;
  readonly status: number;
  /** The body after normalization (see normalize): what must be equal on both sides. */
  readonly body: unknown;
}

const b = (s: string): string => Buffer.from(s).toString('base64');

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const REVISION_FIELDS = new Set(['revision', 'create_revision', 'mod_revision', 'compact_revision']);

/**
 * What may differ between two correct servers: cluster/member ids, terms, lease ids the server
 * picked, timing (a TTL's remaining seconds), ports, versions and sizes. Error bodies keep the
 * gRPC code and etcd's message when it is one of etcd's own (a parse error's wording is Go's).
 * Revisions are shifted by `revisionOffset` (the server's first write minus etcd's, which is 2).
 */
export function normalize(v: unknown, key = '', revisionOffset = 0): Json {
  if (Array.isArray(v)) return v.map((x) => normalize(x, key, revisionOffset));
  if (typeof v === 'string' && REVISION_FIELDS.has(key) && /^[0-9]+$/.test(v)) return String(Number(v) - revisionOffset);
  if (v === null || typeof v !== 'object') return v as Json;
  const o = v as Record<string, unknown>;
  const out: { [k: string]: Json } = {};
  for (const [k, x] of Object.entries(o)) {
    if (k === 'cluster_id' || k === 'member_id' || k === 'raft_term') continue;
    if (key === 'members' || key === 'member') {
      if (k === 'ID') out[k] = 'member-id';
      else if (k === 'peerURLs' || k === 'clientURLs') out[k] = (x as unknown[]).map(() => 'url');
      else out[k] = normalize(x, k, revisionOffset);
      continue;
    }
    out[k] = normalize(x, k, revisionOffset);
  }
  return out;
}

export async function runCompatSequence(url: string): Promise<StepResult[]> {
  const results: StepResult[] = [];
  // etcd's empty store is at revision 1, so its first write creates revision 2. A server that
  // numbers differently is compared modulo that offset (and the literal revisions below move with it).
  let offset = 0;
  const rev = (n: number): string => String(n + offset);
  const norm = (v: unknown): Json => normalize(v, '', offset);
  const step = async (name: string, path: string, body: unknown, shape: (j: Json) => Json = (j) => j): Promise<Json> => {
    const r = await call(url, path, body);
    let out = norm(r.json);
    if (r.status !== 200 && out && typeof out === 'object' && !Array.isArray(out)) {
      const e = out as { [k: string]: Json };
      // Ballot's own parse-error wording differs from Go's; etcd's messages are kept as they are.
      out = typeof e.error === 'string' && e.error.startsWith('etcdserver: ') ? e : { code: e.code ?? null };
    } else if (r.status === 200) {
      out = shape(out);
    }
    results.push({ name, status: r.status, body: out });
    return out;
  };

  const first = await call(url, '/v3/kv/put', { key: b('foo'), value: b('bar') });
  offset = Number((first.json as { header?: { revision?: string } }).header?.revision ?? 2) - 2;
  if (offset !== 0) console.log(`${url}: the first write created revision ${2 + offset}, etcd's creates 2: revisions compared modulo ${offset}`);
  results.push({ name: 'put foo', status: first.status, body: norm(first.json) });
  await step('put foo prev_kv', '/v3/kv/put', { key: b('foo'), value: b('baz'), prev_kv: true });
  await step('range foo', '/v3/kv/range', { key: b('foo') });
  await step('range foo serializable', '/v3/kv/range', { key: b('foo'), serializable: true });
  await step('range missing key', '/v3/kv/range', { key: b('none') });
  for (const k of ['a', 'b', 'c', 'd']) await step(`put ${k}`, '/v3/kv/put', { key: b(k), value: b(`v-${k}`) });
  await step('range all count_only', '/v3/kv/range', { key: 'AA==', range_end: 'AA==', count_only: true });
  await step('range [a,d) limit 2', '/v3/kv/range', { key: b('a'), range_end: b('d'), limit: '2' });
  await step('range >= b keys_only sort DESCEND MOD', '/v3/kv/range', { key: b('b'), range_end: 'AA==', keys_only: true, sort_order: 'DESCEND', sort_target: 'MOD' });
  await step('range sort ASCEND VALUE numbers as enums', '/v3/kv/range', { key: b('a'), range_end: b('z'), sort_order: 1, sort_target: 4 });
  await step('range at revision 2', '/v3/kv/range', { key: b('foo'), revision: rev(2) });
  await step('range at a future revision', '/v3/kv/range', { key: b('foo'), revision: rev(100) });
  await step('deleterange foo prev_kv', '/v3/kv/deleterange', { key: b('foo'), prev_kv: true });
  await step('deleterange foo again', '/v3/kv/deleterange', { key: b('foo') });
  await step('deleterange [c, e)', '/v3/kv/deleterange', { key: b('c'), range_end: b('e') });
  await step('txn success branch with every op', '/v3/kv/txn', {
    compare: [{ key: b('a'), result: 'EQUAL', target: 'VALUE', value: b('v-a') }],
    success: [
      { request_put: { key: b('t'), value: b('1'), prev_kv: true } },
      { request_range: { key: b('a') } },
      { request_delete_range: { key: b('zz') } },
      { request_txn: { success: [{ request_range: { key: b('t') } }] } },
    ],
    failure: [{ request_put: { key: b('f'), value: b('1') } }],
  });
  await step('txn failure branch', '/v3/kv/txn', {
    compare: [{ key: b('a'), result: 'GREATER', target: 'VERSION', version: '5' }],
    success: [{ request_put: { key: b('s'), value: b('1') } }],
    failure: [{ request_range: { key: b('a') } }, { request_put: { key: b('t'), value: b('2') } }],
  });
  await step('txn compare create_revision = 0 (absent key)', '/v3/kv/txn', {
    compare: [{ key: b('new'), target: 'CREATE', create_revision: '0' }],
    success: [{ request_put: { key: b('new'), value: b('1') } }],
  });
  await step('txn compare mod and lease', '/v3/kv/txn', {
    compare: [{ key: b('a'), target: 'MOD', result: 'LESS', mod_revision: rev(100) }, { key: b('a'), target: 'LEASE', result: 'EQUAL', lease: '0' }],
  });
  await step('empty txn', '/v3/kv/txn', {});
  await step('txn duplicate key', '/v3/kv/txn', { success: [{ request_put: { key: b('x'), value: b('1') } }, { request_put: { key: b('x'), value: b('2') } }] });
  await step('txn too many ops', '/v3/kv/txn', { success: Array.from({ length: 129 }, (_, i) => ({ request_range: { key: b(`k${i}`) } })) });
  await step('compaction to 3', '/v3/kv/compaction', { revision: rev(3) });
  await step('range at a compacted revision', '/v3/kv/range', { key: b('foo'), revision: rev(2) });
  await step('range at the compaction revision itself (kept)', '/v3/kv/range', { key: b('foo'), revision: rev(3) });
  await step('compaction to 3 again', '/v3/kv/compaction', { revision: rev(3) });
  await step('compaction to a future revision', '/v3/kv/compaction', { revision: rev(300) });
  await step('lease grant ID 77', '/v3/lease/grant', { TTL: '30', ID: '77' });
  await step('put with lease 77', '/v3/kv/put', { key: b('l'), value: b('1'), lease: '77' });
  await step('range a leased key', '/v3/kv/range', { key: b('l') });
  await step('timetolive 77 with keys', '/v3/lease/timetolive', { ID: '77', keys: true }, (j) => {
    const o = j as { [k: string]: Json };
    return { ...o, TTL: Number(o.TTL) > 0 && Number(o.TTL) <= 30 ? 'remaining' : o.TTL ?? null };
  });
  await step('timetolive of an unknown lease', '/v3/kv/lease/timetolive', { ID: '78' });
  await step('lease grant with an id the server picks', '/v3/lease/grant', { TTL: '60' }, (j) => ({ ...(j as object), ID: 'picked' }));
  await step('lease leases', '/v3/lease/leases', {}, (j) => {
    const o = j as { header: Json; leases?: { ID: string }[] };
    return { header: o.header, leases: (o.leases ?? []).map((l) => (l.ID === '77' ? '77' : 'picked')).sort() };
  });
  await step('put with an unknown lease', '/v3/kv/put', { key: b('m'), value: b('1'), lease: '123' });
  await step('lease revoke 77 (deletes its key)', '/v3/lease/revoke', { ID: '77' });
  await step('range the revoked lease key', '/v3/kv/range', { key: b('l') });
  await step('lease revoke 77 again', '/v3/kv/lease/revoke', { ID: '77' });
  await step('put ignore_value on a missing key', '/v3/kv/put', { key: b('nope'), ignore_value: true });
  await step('put ignore_value on an existing key', '/v3/kv/put', { key: b('a'), ignore_value: true, prev_kv: true });
  await step('member list', '/v3/cluster/member/list', {});
  await step('member remove of an unknown id', '/v3/cluster/member/remove', { ID: '1' });
  await step('member promote of an unknown id', '/v3/cluster/member/promote', { ID: '1' });
  await step('status', '/v3/maintenance/status', {}, (j) => {
    const o = j as { [k: string]: Json };
    return { header: o.header ?? null, leader: typeof o.leader, raftIndex: typeof o.raftIndex, version: typeof o.version };
  });
  // Malformed requests: same status and gRPC code (the wording of parse errors is Go's on etcd).
  await step('bad base64', '/v3/kv/range', { key: '!!!' });
  await step('key of the wrong type', '/v3/kv/range', { key: 5 });
  await step('not JSON', '/v3/kv/range', 'notjson');
  await step('empty body: no key', '/v3/kv/range', '');
  await step('key null', '/v3/kv/put', { key: null, value: b('v') });
  await step('limit not an integer', '/v3/kv/range', { key: b('a'), limit: 1.5 });
  await step('limit beyond int64', '/v3/kv/range', { key: b('a'), limit: '9999999999999999999' });
  await step('unknown sort order', '/v3/kv/range', { key: b('a'), sort_order: 'UP' });
  await step('keys_only as a string', '/v3/kv/range', { key: b('a'), keys_only: 'true' });
  await step('unknown compare result', '/v3/kv/txn', { compare: [{ key: b('a'), result: 'BOGUS' }] });
  await step('body is an array', '/v3/kv/range', '[]');

  // Streams
  const ka = new StreamCall(url, '/v3/lease/keepalive');
  const lease = (await call(url, '/v3/lease/grant', { TTL: '40', ID: '500' })).json;
  ka.send({ ID: '500' });
  results.push({ name: 'keepalive (grant 500, then keep it alive)', status: await ka.status, body: [norm(lease), norm(await ka.next())] });
  ka.send({ ID: '501' });
  results.push({ name: 'keepalive of an unknown lease', status: 200, body: norm(await ka.next()) });
  ka.close();

  const w = new StreamCall(url, '/v3/watch');
  w.send({ create_request: { key: b('w'), prev_kv: true } });
  const created = await w.next();
  await call(url, '/v3/kv/put', { key: b('w'), value: b('1') });
  await call(url, '/v3/kv/txn', { success: [{ request_put: { key: b('w'), value: b('2') } }, { request_put: { key: b('w2'), value: b('x') } }] });
  await call(url, '/v3/kv/deleterange', { key: b('w') });
  const events = [await w.next(), await w.next(), await w.next()];
  w.close();
  // A cancel reason is Ballot's addition (etcd 3.4 sends one only for a duplicate watch id), and
  // etcd's cancel for a compacted start carries an empty header.
  const noId = (x: unknown): Json => {
    const n = norm(x) as { [k: string]: Json } | null;
    const res = n && typeof n.result === 'object' && n.result !== null ? (n.result as { [k: string]: Json }) : null;
    if (res) {
      if (res.watch_id !== '-1') delete res.cancel_reason;
      if (res.compact_revision !== undefined) res.header = {};
    }
    return n;
  };
  results.push({ name: 'watch key w with prev_kv: created, put, txn, delete', status: await w.status, body: [noId(created), ...events.map(noId)] });

  // History replay: etcd batches many revisions in one response, Ballot may send several; the
  // events and their order must be the same.
  const r = new StreamCall(url, '/v3/watch');
  r.send({ create_request: { key: b('a'), range_end: 'AA==', start_revision: rev(4) } });
  const rCreated = noId(await r.next());
  const upTo = Number(((rCreated as { result?: { header?: { revision?: string } } } | null)?.result?.header?.revision) ?? 0);
  const replayed: Json[] = [];
  for (let lastRev = 0; lastRev < upTo; ) {
    const line = (await r.next()) as { result?: { events?: { kv: { mod_revision: string } }[] } } | undefined;
    const evs = line?.result?.events;
    if (!evs || evs.length === 0) break;
    const n = normalize(evs, 'events', offset) as { kv: { mod_revision: string } }[];
    replayed.push(...(n as unknown as Json[]));
    lastRev = Number(n[n.length - 1]!.kv.mod_revision);
  }
  r.close();
  results.push({ name: 'watch >= a from revision 4 (history)', status: await r.status, body: { created: rCreated, events: replayed } });

  const c = new StreamCall(url, '/v3/watch');
  c.send({ create_request: { key: b('a'), start_revision: rev(2) } });
  const compacted = [await c.next(), await c.next()];
  c.close();
  results.push({ name: 'watch from a compacted revision', status: await c.status, body: compacted.map(noId) });

  const k = new StreamCall(url, '/v3/watch');
  k.send({ create_request: { key: b('foo'), start_revision: rev(3) } });
  const kept = [noId(await k.next()), noId(await k.next())];
  k.close();
  // A catch-up response's header: etcd puts the store's current revision, Ballot the revision of
  // the response's last event (all events up to it delivered). A difference Ballot keeps.
  const catchUp = kept[1] as { result?: { header?: { [k: string]: Json }; events?: Json } } | null;
  if (catchUp?.result?.events && catchUp.result.header) delete catchUp.result.header.revision;
  results.push({ name: 'watch from the compaction revision itself (kept)', status: await k.status, body: kept });

  const x = new StreamCall(url, '/v3/watch');
  x.send({ create_request: { key: b('x') } });
  const xCreated = await x.next();
  x.send({ cancel_request: { watch_id: String(((xCreated as { result?: { watch_id?: string } }).result?.watch_id) ?? '0') } });
  const xCanceled = await x.next();
  x.close();
  results.push({ name: 'watch then cancel it', status: await x.status, body: [noId(xCreated), noId(xCanceled)] });
  // Watch ids are the stream's: chosen by the client, or the next unused one from 0; a duplicate is refused.
  const ids = new StreamCall(url, '/v3/watch');
  ids.send('{"create_request":{"key":"YQ==","watch_id":"1"}}{"create_request":{"key":"YQ==","watch_id":"1"}}{"create_request":{"key":"YQ=="}}{"create_request":{"key":"YQ=="}}{"create_request":{"key":"YQ=="}}{"cancel_request":{"watch_id":"9"}}');
  const idLines: Json[] = [];
  for (let i = 0; i < 5; i++) idLines.push(noId(await ids.next()));
  ids.close();
  results.push({ name: 'watch ids per stream: chosen, duplicate, then 0, 2, 3', status: await ids.status, body: idLines });
  return results;
}

// ---------------------------------------------------------------------------------------------
// An in-process 1-member Ballot (a real KvNode: Raft, LevelDB, HTTP on free ports)

export interface BallotMember {
  readonly url: string;
  readonly node: KvNode;
  stop(): Promise<void>;
}

export async function startBallot(extra: KvNodeStartOptions = {}): Promise<BallotMember> {
  const [cp, pp] = await freePorts(2);
  const dir = tempDir('ballot-json-kv-');
  const client = `http://127.0.0.1:${cp}`;
  const peer = `http://127.0.0.1:${pp}`;
  const node = await KvNode.start({
    name: 'e1', dataDir: dir, listenClientUrls: [client], advertiseClientUrls: [client], listenPeerUrls: [peer],
    initialAdvertisePeerUrls: [peer], initialCluster: { e1: [peer] }, initialClusterState: 'new', initialClusterToken: 'json-test',
    heartbeatIntervalMs: 20, electionTimeoutMs: 200,
  }, undefined, extra);
  const stop = async (): Promise<void> => {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await call(client, '/v3/kv/range', { key: 'AA==' }).catch(() => null);
    // Serving, and the member has published its name and client URLs (as etcd's member list shows).
    const m = r?.status === 200 ? await call(client, '/v3/cluster/member/list', {}).catch(() => null) : null;
    const members = (m?.json as { members?: { name?: string }[] } | undefined)?.members;
    if (members?.[0]?.name === 'e1') break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Ballot did not serve a linearizable read and publish its name within 20 s (last member list: ${m?.text ?? 'none'})`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  return { url: client, node, stop };
}
