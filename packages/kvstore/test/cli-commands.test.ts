// `ballot kv` commands as a user runs them, against a real 3-member `ballot kv cluster` (separate
// processes, free ports): put/get/del/txn/watch/lease/member/status/compact round-trips in the
// simple and JSON formats (etcdctl 3.4's shapes), and failures as exit 1 with etcd's message.
// Needs `npm run build` first (the root `npm test` does it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ballot, cleanup, start, startKvCluster, type KvClusterHandle, type RunResult } from './cli-helpers.js';

let cluster: KvClusterHandle;
let ep: string;

beforeAll(async () => {
  cluster = await startKvCluster(3);
  ep = cluster.endpoints.join(',');
}, 90_000);

afterAll(async () => {
  cluster?.proc.child.kill('SIGTERM');
  await cluster?.proc.exited;
  await cleanup();
}, 30_000);

async function kv(args: readonly string[], stdin?: string): Promise<RunResult> {
  const r = await ballot(['kv', ...args, '--endpoints', ep], stdin !== undefined ? { stdin } : {});
  if (r.code !== 0) throw new Error(`ballot kv ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

async function kvJson<T = Record<string, unknown>>(args: readonly string[], stdin?: string): Promise<T> {
  return JSON.parse((await kv([...args, '-w', 'json'], stdin)).stdout) as T;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

interface JsonKv {
  key: string;
  value?: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease?: number;
}
interface JsonHeader {
  cluster_id: number;
  member_id: number;
  revision: number;
  raft_term: number;
}

describe('ballot kv commands against a 3-member cluster', () => {
  it('put and get in the simple and JSON formats, with prefixes, prev-kv, revisions, limits, order and stdin values', async () => {
    expect((await kv(['put', 'fruit/apple', 'red'])).stdout).toBe('OK\n');
    expect((await kv(['put', 'fruit/banana', 'yellow'])).stdout).toBe('OK\n');
    expect((await kv(['put', 'fruit/apple', 'green', '--prev-kv'])).stdout).toBe('OK\nfruit/apple\nred\n');
    expect((await kv(['get', 'fruit/apple'])).stdout).toBe('fruit/apple\ngreen\n');
    expect((await kv(['get', 'fruit/', '--prefix'])).stdout).toBe('fruit/apple\ngreen\nfruit/banana\nyellow\n');
    expect((await kv(['get', 'fruit/', '--prefix', '--keys-only'])).stdout).toBe('fruit/apple\n\nfruit/banana\n\n');
    expect((await kv(['get', 'fruit/', '--prefix', '--count-only'])).stdout).toBe('2\n');
    expect((await kv(['get', 'fruit/', '--prefix', '--print-value-only', '--consistency', 's'])).stdout).toBe('green\nyellow\n');
    expect((await kv(['get', 'fruit/', '--prefix', '--order', 'DESCEND', '--limit', '1'])).stdout).toBe('fruit/banana\nyellow\n');
    // The value can come from stdin, as with etcdctl.
    expect((await kv(['put', 'fruit/cherry'], 'dark red')).stdout).toBe('OK\n');

    const g = await kvJson<{ header: JsonHeader; kvs: JsonKv[]; count: number; more?: boolean }>(['get', 'fruit/', '--prefix', '--limit', '2']);
    expect(g.count).toBe(3);
    expect(g.more).toBe(true);
    expect(g.kvs.map((k) => k.key)).toEqual([b64('fruit/apple'), b64('fruit/banana')]);
    const apple = g.kvs[0]!;
    expect(apple).toMatchObject({ value: b64('green'), version: 2 });
    expect(apple.mod_revision).toBeGreaterThan(apple.create_revision);
    expect(g.header.revision).toBeGreaterThanOrEqual(apple.mod_revision);
    expect(typeof g.header.cluster_id).toBe('number');
    expect(g.header.raft_term).toBeGreaterThan(0);

    // Historical read: the revision that created apple still shows "red".
    expect((await kv(['get', 'fruit/apple', '--rev', String(apple.create_revision)])).stdout).toBe('fruit/apple\nred\n');

  });

  it('put --prev-kv and del in JSON, del in simple, etcdctl environment variables, get as a table', async () => {
    const g = await kvJson<{ header: JsonHeader }>(['get', 'fruit/banana']);
    const put = await kvJson<{ header: JsonHeader; prev_kv?: JsonKv }>(['put', 'fruit/banana', 'brown', '--prev-kv']);
    expect(put.prev_kv).toMatchObject({ key: b64('fruit/banana'), value: b64('yellow') });
    expect(put.header.revision).toBeGreaterThan(g.header.revision);

    expect((await kv(['del', 'fruit/banana', '--prev-kv'])).stdout).toBe('1\nfruit/banana\nbrown\n');
    expect((await kv(['del', 'fruit/none'])).stdout).toBe('0\n');
    const del = await kvJson<{ header: JsonHeader; deleted?: number; prev_kvs?: JsonKv[] }>(['del', 'fruit/', '--prefix']);
    expect(del.deleted).toBe(2);
    expect((await kv(['get', 'fruit/', '--prefix', '--count-only'])).stdout).toBe('0\n');

    // etcdctl's environment variables stand in for the flags.
    await kv(['put', 'env/k', 'v']);
    const env = await ballot(['kv', 'get', 'env/k'], { env: { ETCDCTL_ENDPOINTS: ep, ETCDCTL_WRITE_OUT: 'json' } });
    expect((JSON.parse(env.stdout) as { kvs: JsonKv[] }).kvs[0]!.value).toBe(b64('v'));

    const table = await kv(['get', 'nothing', '-w', 'table']);
    expect(table.stdout).toContain('| KEY | VALUE | CREATE REV | MOD REV | VERSION | LEASE |');
  });

  it("txn from stdin in etcdctl's format: success and failure branches, simple and JSON", async () => {
    await kv(['put', 'acct/a', '10']);
    const ok = await kv(['txn'], 'value("acct/a") = "10"\n\nput acct/a 7\nput acct/b 3\nget acct/ --prefix\n\nput acct/failed yes\n');
    expect(ok.stdout).toBe('SUCCESS\n\nOK\n\nOK\n\nacct/a\n7\nacct/b\n3\n');
    const fail = await kv(['txn'], 'value("acct/a") = "10"\nversion("acct/a") > 0\n\nput acct/a 0\n\nget acct/a\n');
    expect(fail.stdout).toBe('FAILURE\n\nacct/a\n7\n');
    const j = await kvJson<{ header: JsonHeader; succeeded?: boolean; responses: { Response: Record<string, { header: { revision: number } }> }[] }>(
      ['txn'],
      'mod("acct/b") > "0"\n\nput acct/c 1\ndel acct/b\n\n',
    );
    expect(j.succeeded).toBe(true);
    expect(j.responses.map((r) => Object.keys(r.Response)[0])).toEqual(['ResponsePut', 'ResponseDeleteRange']);
    expect((await kv(['get', 'acct/', '--prefix', '--keys-only'])).stdout).toBe('acct/a\n\nacct/c\n\n');

    // Interactive mode prints etcdctl's prompts.
    const inter = await kv(['txn', '-i'], 'create("acct/z") = "0"\n\nput acct/z 1\n\n\n');
    expect(inter.stdout).toBe('compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n');
  });

  it('watch prints the events from a revision, then live ones, with prev-kv, until SIGINT (exit 0)', async () => {
    const first = await kvJson<{ header: JsonHeader }>(['put', 'w/one', '1']);
    await kv(['put', 'w/one', '2']);
    const w = start(['kv', 'watch', 'w/', '--prefix', '--prev-kv', '--rev', String(first.header.revision), '--endpoints', ep]);
    await w.waitFor(/PUT\nw\/one\n1\nw\/one\n2\n/);
    expect(w.output().startsWith('PUT\nw/one\n1\n')).toBe(true);
    await kv(['del', 'w/one']);
    await w.waitFor(/DELETE\nw\/one\n2\nw\/one\n\n/);
    w.child.kill('SIGINT');
    expect(await w.exited).toBe(0);

    const two = await kvJson<{ header: JsonHeader }>(['put', 'w/two', 'x']);
    const wj = start(['kv', 'watch', 'w/two', '-w', 'json', '--rev', String(two.header.revision), '--endpoints', ep]);
    const line = (await wj.waitFor(/\{"Header".*"Events":\[\{"kv".*\n/))[0];
    const ev = JSON.parse(line) as { Events: { type?: number; kv: JsonKv }[] };
    expect(ev.Events[0]!.kv).toMatchObject({ key: b64('w/two'), value: b64('x'), version: 1 });
    expect(wj.output()).not.toContain('"Created":true');
    wj.child.kill('SIGTERM');
    expect(await wj.exited).toBe(0);
  });

  it('lease grant, attach, timetolive, keep-alive, list and revoke (keys go with the lease)', async () => {
    const grant = (await kv(['lease', 'grant', '60'])).stdout;
    const id = /^lease ([0-9a-f]{16}) granted with TTL\(60s\)\n$/.exec(grant)![1]!;
    await kv(['put', 'leased/k', 'v', '--lease', id]);
    expect((await kv(['lease', 'timetolive', id, '--keys'])).stdout).toMatch(new RegExp(`^lease ${id} granted with TTL\\(60s\\), remaining\\(\\d+s\\), attached keys\\(\\[leased/k\\]\\)\\n$`));
    const ttl = await kvJson<{ id: number; ttl: number; 'granted-ttl': number; keys: string[] }>(['lease', 'timetolive', id, '--keys']);
    expect(ttl).toMatchObject({ id: Number.parseInt(id, 16), 'granted-ttl': 60, keys: [b64('leased/k')] });
    expect(ttl.ttl).toBeGreaterThan(50);
    expect((await kv(['lease', 'keep-alive', id, '--once'])).stdout).toBe(`lease ${id} keepalived with TTL(60)\n`);
    expect((await kv(['lease', 'list'])).stdout).toContain(`${id}\n`);
    const list = await kvJson<{ leases: { id: number }[] }>(['lease', 'list']);
    expect(list.leases.map((l) => l.id)).toContain(Number.parseInt(id, 16));
    // Without --once it renews (every TTL/3) until SIGINT, then exits 0.
    const short = /^lease ([0-9a-f]{16})/.exec((await kv(['lease', 'grant', '2'])).stdout)![1]!;
    const ka = start(['kv', 'lease', 'keep-alive', short, '--endpoints', ep]);
    await ka.waitFor(new RegExp(`(lease ${short} keepalived with TTL\\(2\\)\n){2}`), 20_000);
    ka.child.kill('SIGINT');
    expect(await ka.exited).toBe(0);
    expect((await kv(['lease', 'revoke', id])).stdout).toBe(`lease ${id} revoked\n`);
    expect((await kv(['get', 'leased/k', '--count-only'])).stdout).toBe('0\n');
    expect((await kv(['lease', 'timetolive', id])).stdout).toBe(`lease ${id} already expired\n`);

    const again = await ballot(['kv', 'lease', 'revoke', id, '--endpoints', ep]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^Error: .*requested lease not found/);
  });

  it('member list/add/promote/remove and endpoint status, simple, table and JSON', async () => {
    const list = (await kv(['member', 'list'])).stdout.trim().split('\n');
    expect(list).toHaveLength(3);
    for (const line of list) expect(line).toMatch(/^[0-9a-f]{16}, started, m\d, http:\/\/127\.0\.0\.1:\d+, http:\/\/127\.0\.0\.1:\d+, false$/);
    const j = await kvJson<{ members: { ID: number; name: string; peerURLs: string[]; clientURLs: string[] }[] }>(['member', 'list']);
    expect(j.members.map((m) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
    expect(j.members.flatMap((m) => m.clientURLs).sort()).toEqual([...cluster.endpoints].sort());

    // A learner that never starts: added, not promotable (not caught up), removed.
    const add = await kv(['member', 'add', 'm4', '--peer-urls', 'http://127.0.0.1:9', '--learner']);
    const id = /^Member ([0-9a-f]{16}) added to cluster [0-9a-f]{16}\n/.exec(add.stdout)![1]!;
    expect(add.stdout).toContain('ETCD_NAME="m4"');
    expect(add.stdout).toContain('ETCD_INITIAL_CLUSTER_STATE="existing"');
    expect((await kv(['member', 'list'])).stdout).toContain(`${id}, unstarted, , http://127.0.0.1:9, , true`);
    const promote = await ballot(['kv', 'member', 'promote', id, '--endpoints', ep]);
    expect(promote.code).toBe(1);
    expect(promote.stderr).toMatch(/^Error: .*learner/);
    expect((await kv(['member', 'remove', id])).stdout).toMatch(new RegExp(`^Member ${id} removed from cluster [0-9a-f]{16}\\n$`));
    expect((await kv(['member', 'list'])).stdout.trim().split('\n')).toHaveLength(3);

    const status = (await kv(['endpoint', 'status'])).stdout.trim().split('\n');
    expect(status).toHaveLength(3);
    expect(status.filter((l) => l.split(', ')[4] === 'true')).toHaveLength(1);
    const sj = await kvJson<{ Endpoint: string; Status: { header: JsonHeader; leader: number; raftIndex: number; dbSize: number } }[]>(['status']);
    expect(sj.map((s) => s.Endpoint)).toEqual(cluster.endpoints);
    expect(new Set(sj.map((s) => String(s.Status.leader))).size).toBe(1);
    expect(sj.every((s) => s.Status.raftIndex > 0 && s.Status.dbSize > 0)).toBe(true);
    const cl = await ballot(['kv', 'endpoint', 'status', '--cluster', '-w', 'table', '--endpoints', cluster.endpoints[0]!]);
    expect(cl.code).toBe(0);
    expect(cl.stdout).toMatch(/\|\s+ENDPOINT\s+\|\s+ID\s+\|/);
    expect(cl.stdout.split('\n').filter((l) => l.startsWith('| http://'))).toHaveLength(3);
  });

  it('compact: older revisions are refused with etcd\'s message; later ones still read', async () => {
    const p1 = await kvJson<{ header: JsonHeader }>(['put', 'c/k', '1']);
    const p2 = await kvJson<{ header: JsonHeader }>(['put', 'c/k', '2']);
    expect((await kv(['compact', String(p2.header.revision)])).stdout).toBe(`compacted revision ${p2.header.revision}\n`);
    const old = await ballot(['kv', 'get', 'c/k', '--rev', String(p1.header.revision), '--endpoints', ep]);
    expect(old.code).toBe(1);
    expect(old.stderr).toBe('Error: mvcc: required revision has been compacted\n');
    expect((await kv(['get', 'c/k', '--rev', String(p2.header.revision)])).stdout).toBe('c/k\n2\n');
    // A watch from a compacted revision is canceled: exit 1 with etcdctl's words.
    const w = await ballot(['kv', 'watch', 'c/k', '--rev', String(p1.header.revision), '--endpoints', ep]);
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/^Error: watch was canceled \(.*compacted.*\)/);
    // Compacting again at the same revision is refused, as etcd does.
    const again = await ballot(['kv', 'compact', String(p2.header.revision), '--endpoints', ep]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/required revision has been compacted/);
    const p3 = await kvJson<{ header: JsonHeader }>(['put', 'c/k', '3']);
    const j = await kvJson<{ header: JsonHeader }>(['compact', String(p3.header.revision)]);
    expect(j.header.revision).toBeGreaterThanOrEqual(p3.header.revision);
  });
});
