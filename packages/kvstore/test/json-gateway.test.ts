// The etcd v3 JSON gateway end to end, over real HTTP, on an in-process 1-member KvNode (Raft,
// LevelDB, sockets): every path, the serializable-read header, errors and their statuses, the
// two streams, bounds; then a fast-check fuzz of the API at a fixed seed: the member never
// crashes, every bad request gets a 4xx with etcd's JSON error body, and a rejected request
// leaves the store unchanged.
import { connect } from 'node:net';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { maxBodyBytesFor, READ_CONSISTENCY_HEADER } from '../src/json/gateway.js';
import { LIMITS } from '../src/errors.js';
import { call, freePorts, startBallot, StreamCall, type BallotMember, type Reply } from './json-harness.js';

const b = (s: string): string => Buffer.from(s).toString('base64');

let m: BallotMember;
beforeAll(async () => {
  // Leases never expire by themselves here: the fuzz's "a rejected request changes nothing" check
  // must not see a lease expiry that happened meanwhile.
  m = await startBallot({ leaseCheckIntervalMs: 3_600_000 });
}, 30_000);
afterAll(async () => {
  await m?.stop();
});

function expectError(r: Reply, status: number, grpcCode: number, message?: RegExp): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers['content-type']).toBe('application/json');
  const body = r.json as { error: string; message: string; code: number };
  expect(Object.keys(body)).toEqual(['error', 'message', 'code']);
  expect(body.code).toBe(grpcCode);
  expect(body.message).toBe(body.error);
  if (message) expect(body.error).toMatch(message);
}

const HEADER_KEYS = ['cluster_id', 'member_id', 'revision', 'raft_term'];

describe('every path', () => {
  it('kv: put, range, deleterange, txn, compaction', async () => {
    const put = await call(m.url, '/v3/kv/put', { key: b('p/1'), value: b('one') });
    expect(put.status).toBe(200);
    expect(put.headers['content-type']).toBe('application/json');
    const header = (put.json as { header: Record<string, string> }).header;
    expect(Object.keys(header)).toEqual(HEADER_KEYS);
    expect(header.member_id).toMatch(/^[0-9]+$/);
    const rev = Number(header.revision);

    const range = await call(m.url, '/v3/kv/range', { key: b('p/'), range_end: b('p0') });
    expect(range.json).toMatchObject({ kvs: [{ key: b('p/1'), value: b('one'), create_revision: String(rev), mod_revision: String(rev), version: '1' }], count: '1' });
    expect(range.headers[READ_CONSISTENCY_HEADER.toLowerCase()]).toBeUndefined();

    const txn = await call(m.url, '/v3/kv/txn', {
      compare: [{ key: b('p/1'), target: 'MOD', result: 'EQUAL', mod_revision: String(rev) }],
      success: [{ request_put: { key: b('p/2'), value: b('two') } }, { request_range: { key: b('p/'), range_end: b('p0'), count_only: true } }],
    });
    expect(txn.json).toMatchObject({ succeeded: true, responses: [{ response_put: { header: { revision: String(rev + 1) } } }, { response_range: { count: '2' } }] });

    const del = await call(m.url, '/v3/kv/deleterange', { key: b('p/'), range_end: b('p0'), prev_kv: true });
    expect(del.json).toMatchObject({ deleted: '2', prev_kvs: [{ key: b('p/1') }, { key: b('p/2') }] });

    const compact = await call(m.url, '/v3/kv/compaction', { revision: String(rev + 1), physical: true });
    expect(compact.status).toBe(200);
    expectError(await call(m.url, '/v3/kv/range', { key: b('p/1'), revision: String(rev) }), 400, 11, /^etcdserver: mvcc: required revision has been compacted$/);
    expectError(await call(m.url, '/v3/kv/range', { key: b('p/1'), revision: String(rev + 100) }), 400, 11, /^etcdserver: mvcc: required revision is a future revision$/);
  });

  it('a serializable read is flagged by the Ballot-Read-Consistency header; the body header stays etcd-shaped', async () => {
    const r = await call(m.url, '/v3/kv/range', { key: b('x'), serializable: true });
    expect(r.status).toBe(200);
    expect(r.headers[READ_CONSISTENCY_HEADER.toLowerCase()]).toBe('serializable');
    expect(Object.keys((r.json as { header: object }).header)).toEqual(HEADER_KEYS);
  });

  it('leases: grant, timetolive, leases, revoke, and the /v3/kv/lease/* aliases', async () => {
    const g = await call(m.url, '/v3/lease/grant', { TTL: '100' });
    const id = (g.json as { ID: string }).ID;
    expect(g.json).toMatchObject({ ID: expect.stringMatching(/^[1-9][0-9]*$/), TTL: '100' });
    await call(m.url, '/v3/kv/put', { key: b('leased'), value: b('v'), lease: id });
    for (const p of ['/v3/lease/timetolive', '/v3/kv/lease/timetolive']) {
      expect((await call(m.url, p, { ID: id, keys: true })).json).toMatchObject({ ID: id, grantedTTL: '100', keys: [b('leased')] });
    }
    for (const p of ['/v3/lease/leases', '/v3/kv/lease/leases']) {
      expect(((await call(m.url, p)).json as { leases: { ID: string }[] }).leases).toContainEqual({ ID: id });
    }
    expect((await call(m.url, '/v3/kv/lease/revoke', { ID: id })).status).toBe(200);
    expect((await call(m.url, '/v3/kv/range', { key: b('leased') })).json).not.toHaveProperty('kvs');
    expectError(await call(m.url, '/v3/lease/revoke', { ID: id }), 404, 5, /^etcdserver: requested lease not found$/);
  });

  it('lease keepalive streams one result per request, in order; an unknown lease gets TTL omitted', async () => {
    const id = (await call(m.url, '/v3/lease/grant', { TTL: '50' })).json as { ID: string };
    const s = new StreamCall(m.url, '/v3/lease/keepalive');
    try {
      s.send(`{"ID":"${id.ID}"}\n{"ID":"424242"}{"ID":${id.ID}}`);
      expect(await s.status).toBe(200);
      expect(await s.next()).toMatchObject({ result: { ID: id.ID, TTL: '50' } });
      const unknown = (await s.next()) as { result: Record<string, unknown> };
      expect(unknown.result.ID).toBe('424242');
      expect(unknown.result).not.toHaveProperty('TTL');
      expect(await s.next()).toMatchObject({ result: { ID: id.ID, TTL: '50' } });
      // A bad message later in the stream: an error line, then the stream ends.
      s.send('{"ID":"x"}');
      expect(await s.next()).toMatchObject({ code: 3, error: expect.stringMatching(/field "ID" must be an integer/) });
      expect(await s.next()).toBeUndefined();
      expect(s.ended).toBe(true);
    } finally {
      s.close();
    }
  });

  it('watch streams created, events (with prev_kv, DELETE by name), cancel; closing the stream frees its watchers', async () => {
    const before = m.node.hub.count;
    const s = new StreamCall(m.url, '/v3/watch');
    try {
      s.send({ create_request: { key: b('w/'), range_end: b('w0'), prev_kv: true } });
      expect(await s.status).toBe(200);
      const created = (await s.next()) as { result: { created: boolean; watch_id?: string; header: object } };
      expect(created.result.created).toBe(true);
      expect(m.node.hub.count).toBe(before + 1);
      await call(m.url, '/v3/kv/put', { key: b('w/a'), value: b('1') });
      await call(m.url, '/v3/kv/put', { key: b('w/a'), value: b('2') });
      await call(m.url, '/v3/kv/deleterange', { key: b('w/a') });
      expect(await s.next()).toMatchObject({ result: { events: [{ kv: { key: b('w/a'), value: b('1'), version: '1' } }] } });
      const second = (await s.next()) as { result: { events: { type?: string; prev_kv: object }[] } };
      expect(second.result.events[0]!.type).toBeUndefined();
      expect(second.result.events[0]!.prev_kv).toMatchObject({ value: b('1') });
      expect(await s.next()).toMatchObject({ result: { events: [{ type: 'DELETE', kv: { key: b('w/a') }, prev_kv: { value: b('2') } }] } });
      // A second watch on the same stream, then cancel it.
      s.send({ create_request: { key: b('other'), watch_id: '777' } });
      expect(await s.next()).toMatchObject({ result: { watch_id: '777', created: true } });
      s.send({ cancel_request: { watch_id: '777' } });
      expect(await s.next()).toMatchObject({ result: { watch_id: '777', canceled: true } });
      s.send({ progress_request: {} });
      expect(await s.next()).toMatchObject({ result: { header: { revision: expect.any(String) } } });
    } finally {
      s.close();
    }
    const deadline = Date.now() + 5000;
    while (m.node.hub.count !== before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(m.node.hub.count).toBe(before);
  });

  it('watch: a bad first request is a plain 400, a bad later one an error line that ends the stream', async () => {
    const first = new StreamCall(m.url, '/v3/watch');
    first.send('{"create_request":{"key":"!!"}}');
    expect(await first.status).toBe(400);
    expect(await first.next()).toMatchObject({ code: 3, error: expect.stringMatching(/field "create_request.key" is not valid base64/) });
    first.close();

    const later = new StreamCall(m.url, '/v3/watch');
    try {
      later.send({ create_request: { key: b('k') } });
      expect(await later.next()).toMatchObject({ result: { created: true } });
      later.send('[1,2]');
      expect(await later.next()).toMatchObject({ code: 3, error: expect.stringMatching(/sequence of JSON objects/) });
      expect(await later.next()).toBeUndefined();
    } finally {
      later.close();
    }
  });

  it('cluster: member list, add (learner), promote, remove; status', async () => {
    const list = (await call(m.url, '/v3/cluster/member/list')).json as { members: { ID: string; name: string; peerURLs: string[]; clientURLs: string[] }[] };
    expect(list.members).toHaveLength(1);
    expect(list.members[0]).toMatchObject({ name: 'e1', clientURLs: [m.url] });
    const [port] = await freePorts(1);
    const add = await call(m.url, '/v3/cluster/member/add', { peerURLs: [`http://127.0.0.1:${port}`], isLearner: true });
    expect(add.status, add.text).toBe(200);
    const added = (add.json as { member: { ID: string; isLearner: boolean }; members: unknown[] });
    expect(added.member.isLearner).toBe(true);
    expect(added.members).toHaveLength(2);
    // The learner never started, so it cannot be in sync with the leader.
    const promote = await call(m.url, '/v3/cluster/member/promote', { ID: added.member.ID });
    expect(promote.status, promote.text).toBe(400);
    const remove = await call(m.url, '/v3/cluster/member/remove', { ID: added.member.ID });
    expect(remove.status, remove.text).toBe(200);
    expect((remove.json as { members: unknown[] }).members).toHaveLength(1);
    expectError(await call(m.url, '/v3/cluster/member/remove', { ID: added.member.ID }), 404, 5, /member not found/);

    const status = (await call(m.url, '/v3/maintenance/status')).json as Record<string, string>;
    expect(status.leader).toBe(list.members[0]!.ID);
    expect(Number(status.raftIndex)).toBeGreaterThan(0);
    expect(Number(status.dbSize)).toBeGreaterThan(0);
  });
});

describe('errors', () => {
  it('unknown paths are 404 and other methods 405, with a JSON error; other paths are left to the server', async () => {
    expectError(await call(m.url, '/v3/kv/nothing', {}), 404, 12, /unknown path \/v3\/kv\/nothing/);
    expectError(await call(m.url, '/v3/kv/range', '', 'GET'), 405, 12, /use POST/);
    expect((await call(m.url, '/health', '', 'GET')).status).toBe(200);
  });

  it('malformed bodies are 400 with a message naming the field', async () => {
    expectError(await call(m.url, '/v3/kv/put', { key: b('a'), value: b('v'), bogus: true }), 400, 3, /unknown field "bogus"/);
    expectError(await call(m.url, '/v3/kv/put', '{"key":'), 400, 3, /not valid JSON/);
    expectError(await call(m.url, '/v3/kv/txn', { success: [{ request_txn: { failure: [{ request_delete_range: { key: 'YQ=', prev_kv: 1 } }] } }] }), 400, 3,
      /field "success\[0\]\.request_txn\.failure\[0\]\.request_delete_range\.key" is not valid base64/);
    expectError(await call(m.url, '/v3/lease/grant', { TTL: '1e3' }), 400, 3, /field "TTL" must be an integer/);
    expectError(await call(m.url, '/v3/cluster/member/remove', { ID: 'abc' }), 400, 3, /field "ID"/);
    expectError(await call(m.url, '/v3/kv/txn', { success: Array.from({ length: 129 }, (_, i) => ({ request_put: { key: b(`t${i}`) } })) }), 400, 3, /too many operations/);
  });

  it('deep nesting and odd JSON are 400s, not crashes', async () => {
    let deep: unknown = {};
    for (let i = 0; i < 40; i++) deep = { success: [{ request_txn: deep }] };
    expectError(await call(m.url, '/v3/kv/txn', deep), 400, 3, /nests txns deeper than/);
    expectError(await call(m.url, '/v3/kv/put', `{"key":${'['.repeat(200_000)}${']'.repeat(200_000)}}`), 400, 3, /field "key" must be a base64 string, got an array/);
    expectError(await call(m.url, '/v3/kv/put', '{"__proto__":{"key":"YQ=="}}'), 400, 3, /unknown field "__proto__"/);
    expectError(await call(m.url, '/v3/kv/put', '{"key":"YQ==","key":"\ud800"}'), 400, 3, /not valid base64/);
    expect((await call(m.url, '/v3/kv/range', { key: b('a') })).status).toBe(200);
  });

  it('clients that vanish mid-body or mid-stream leave the member serving', async () => {
    const { port } = new URL(m.url);
    for (const [path, body] of [['/v3/kv/put', '{"key":"YQ=='], ['/v3/watch', '{"create_request":{"key":"YQ=="}}{"create_req'], ['/v3/lease/keepalive', '{"ID":"1"}{']]) {
      await new Promise<void>((resolve) => {
        const sock = connect(Number(port), '127.0.0.1', () => {
          sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${body}`);
          setTimeout(() => {
            sock.destroy();
            resolve();
          }, 50);
        });
        sock.on('error', () => resolve());
      });
    }
    await new Promise((r) => setTimeout(r, 50));
    expect((await call(m.url, '/v3/kv/range', { key: b('a') })).status).toBe(200);
  });

  it('a body beyond the limit is refused with 400 "request is too large", and the member keeps serving', async () => {
    const limit = maxBodyBytesFor(LIMITS.maxRequestBytes);
    const big = JSON.stringify({ key: b('big'), value: 'A'.repeat(limit) });
    expectError(await call(m.url, '/v3/kv/put', big), 400, 3, /request is too large/);
    // A value over 1.5 MiB in a body under the limit: the decoded request is refused.
    const value = Buffer.alloc(LIMITS.maxRequestBytes + 1024, 1).toString('base64');
    expectError(await call(m.url, '/v3/kv/put', { key: b('big'), value }), 400, 3, /request is too large/);
    expect((await call(m.url, '/v3/kv/range', { key: b('big') })).json).not.toHaveProperty('kvs');
  });
});

describe('without a quorum', () => {
  it('writes and linearizable reads are 503 with etcd\'s "no leader" body; serializable reads answer, flagged', async () => {
    const lone = await startBallot();
    try {
      await call(lone.url, '/v3/kv/put', { key: b('q'), value: b('1') });
      expect((await call(lone.url, '/v3/lease/grant', { TTL: '100', ID: '7' })).status).toBe(200);
      // A second voter that never starts: 1 of 2 voters is no quorum.
      const [port] = await freePorts(1);
      const add = await call(lone.url, '/v3/cluster/member/add', { peerURLs: [`http://127.0.0.1:${port}`] });
      expect([200, 503], add.text).toContain(add.status);
      const deadline = Date.now() + 5000;
      let put = await call(lone.url, '/v3/kv/put', { key: b('q'), value: b('2') });
      while (put.status === 200 && Date.now() < deadline) put = await call(lone.url, '/v3/kv/put', { key: b('q'), value: b('2') });
      expectError(put, 503, 14, /^etcdserver: no leader/);
      expectError(await call(lone.url, '/v3/kv/range', { key: b('q') }), 503, 14, /^etcdserver: no leader/);
      expectError(await call(lone.url, '/v3/kv/txn', { success: [{ request_put: { key: b('q'), value: b('3') } }] }), 503, 14);
      const stale = await call(lone.url, '/v3/kv/range', { key: b('q'), serializable: true });
      expect(stale.status).toBe(200);
      expect(stale.headers[READ_CONSISTENCY_HEADER.toLowerCase()]).toBe('serializable');
      expect((stale.json as { kvs: { value: string }[] }).kvs[0]!.value).toBe(b('1'));
      // A keep-alive stream gets the error as a line, then ends.
      const ka = new StreamCall(lone.url, '/v3/lease/keepalive');
      try {
        ka.send({ ID: '7' });
        // A leader that lost its quorum cannot renew a lease.
        expect(await ka.next()).toMatchObject({ code: 14, error: expect.stringMatching(/^etcdserver: no leader/) });
        expect(await ka.next()).toBeUndefined();
      } finally {
        ka.close();
      }
    } finally {
      await lone.stop();
    }
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// Fuzz

type J = null | boolean | number | string | J[] | { [k: string]: J };

const keyArb = fc.constantFrom(b('a'), b('b'), b('z'), 'AA==', b('fuzz/x'));
const validBodies: Readonly<Record<string, fc.Arbitrary<J>>> = {
  '/v3/kv/range': fc.record({ key: keyArb, range_end: fc.constantFrom('AA==', b('zz')), limit: fc.constantFrom('0', '2'), serializable: fc.boolean() }),
  '/v3/kv/put': fc.record({ key: keyArb, value: fc.constantFrom(b('1'), ''), prev_kv: fc.boolean() }),
  '/v3/kv/deleterange': fc.record({ key: keyArb, range_end: fc.constantFrom('AA==', b('c')), prev_kv: fc.boolean() }),
  // Random txns over a few keys: duplicate keys in a branch (refused), nested txns, every compare.
  '/v3/kv/txn': fc.letrec<{ txn: J; op: J }>((tie) => ({
    txn: fc.record({
      compare: fc.array(fc.record({
        key: keyArb,
        result: fc.constantFrom('EQUAL', 'NOT_EQUAL', 'GREATER', 'LESS'),
        target: fc.constant('VERSION'),
        version: fc.constantFrom('0', '1', '2'),
      }), { maxLength: 2 }),
      success: fc.array(tie('op'), { maxLength: 3 }),
      failure: fc.array(tie('op'), { maxLength: 3 }),
    }),
    op: fc.oneof(
      { depthSize: 'small' },
      fc.record({ request_put: fc.record({ key: keyArb, value: fc.constantFrom(b('1'), b('2')) }) }),
      fc.record({ request_range: fc.record({ key: keyArb }) }),
      fc.record({ request_delete_range: fc.record({ key: keyArb, prev_kv: fc.boolean() }) }),
      fc.record({ request_txn: tie('txn') }),
    ),
  })).txn,
  '/v3/kv/compaction': fc.record({ revision: fc.constantFrom('1', '2', '100000') }),
  '/v3/lease/grant': fc.record({ TTL: fc.constantFrom('60', '3600'), ID: fc.constantFrom('0', '5', '6') }),
  '/v3/lease/revoke': fc.record({ ID: fc.constantFrom('5', '6', '7') }),
  '/v3/lease/timetolive': fc.record({ ID: fc.constantFrom('5', '6'), keys: fc.boolean() }),
  '/v3/lease/leases': fc.constant({}),
  '/v3/cluster/member/list': fc.constant({}),
  '/v3/cluster/member/remove': fc.record({ ID: fc.constantFrom('1', '12345') }),
  '/v3/cluster/member/promote': fc.record({ ID: fc.constantFrom('1', '12345') }),
  '/v3/maintenance/status': fc.constant({}),
  '/v3/kv/nope': fc.constant({}),
  '/v3/': fc.constant({}),
};

const junk: fc.Arbitrary<J> = fc.oneof(
  fc.constantFrom<J>(null, true, false, 0, -1, 1.5, 1e300, 2 ** 60, '', '!!', 'YQ', 'YQ==', '-5', '99999999999999999999', 'EQUAL', 'VALUE', [], {}, [1], { key: 'YQ==' }),
  fc.string({ maxLength: 8 }),
  fc.integer(),
);

interface FuzzCase {
  readonly path: string;
  /** The body as sent (text). */
  readonly text: string;
}

const fieldNames = ['key', 'value', 'range_end', 'limit', 'revision', 'TTL', 'ID', 'compare', 'success', 'prev_kv', 'sort_order', 'request_put', 'target', 'bogus'];

function mutate(body: J, mutation: number, field: string, value: J, cut: number): string {
  const o = body !== null && typeof body === 'object' && !Array.isArray(body) ? { ...body } : {};
  const keys = Object.keys(o);
  const victim = keys.length > 0 ? keys[mutation % keys.length]! : field;
  switch (mutation % 7) {
    case 0: return JSON.stringify(body); // unchanged: valid
    case 1: delete o[victim]; return JSON.stringify(o);
    case 2: o[victim] = value; return JSON.stringify(o);
    case 3: o[field] = value; return JSON.stringify(o);
    case 4: { const t = JSON.stringify(body); return t.slice(0, cut % (t.length + 1)); }
    case 5: { const t = JSON.stringify(body); const i = cut % (t.length + 1); return `${t.slice(0, i)}${String(value).slice(0, 3)}${t.slice(i)}`; }
    default: return JSON.stringify(value);
  }
}

const caseArb: fc.Arbitrary<FuzzCase> = fc
  .constantFrom(...Object.keys(validBodies))
  .chain((path) =>
    fc.tuple(validBodies[path]!, fc.nat(), fc.constantFrom(...fieldNames), junk, fc.nat()).map(([body, mutation, field, value, cut]) => ({
      path,
      text: mutate(body, mutation, field, value, cut),
    })),
  );

async function storeFingerprint(): Promise<string> {
  // A local read of everything (serializable: no dependence on the read path) plus the revision.
  const r = await call(m.url, '/v3/kv/range', { key: 'AA==', range_end: 'AA==', serializable: true });
  const j = r.json as { header: { revision: string }; kvs?: unknown[] };
  const leases = (await call(m.url, '/v3/lease/leases')).json as { leases?: unknown[] };
  return JSON.stringify([j.header.revision, j.kvs ?? [], leases.leases ?? []]);
}

describe('fuzz', () => {
  it('random and mutated bodies on every path: never a crash, 4xx with a JSON error, the store unchanged when rejected', async () => {
    const seed = 20261121;
    let runs = 0;
    const statuses = new Map<number, number>();
    try {
      await fc.assert(
        fc.asyncProperty(caseArb, async (c) => {
          runs++;
          const before = await storeFingerprint();
          const r = await call(m.url, c.path, c.text);
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          const where = `${c.path} ${c.text.slice(0, 200)} -> ${r.status} ${r.text.slice(0, 300)}`;
          expect(r.headers['content-type'], where).toBe('application/json');
          if (r.status === 200) return;
          expect(r.status >= 400 && r.status < 500, where).toBe(true);
          const e = r.json as { error: unknown; message: unknown; code: unknown };
          expect(typeof e.error === 'string' && e.error.length > 0 && e.message === e.error && typeof e.code === 'number', where).toBe(true);
          expect(await storeFingerprint(), `a rejected request changed the store: ${where}`).toBe(before);
        }),
        { seed, numRuns: 250 },
      );
    } catch (e) {
      console.log(`json fuzz failed at seed ${seed} after ${runs} requests`);
      throw e;
    }
    console.log(`json fuzz: statuses ${JSON.stringify([...statuses])}`);
    // The fuzz exercised both sides: accepted requests and rejected ones.
    expect(statuses.get(200) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(20);
    expect(statuses.get(400) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(50);
    // Still alive and serving linearizable reads.
    expect((await call(m.url, '/v3/kv/range', { key: b('a') })).status).toBe(200);
  }, 120_000);

  it('random request streams on /v3/watch and /v3/lease/keepalive: 200 or 4xx, never a crash', async () => {
    const seed = 1121;
    const stream = fc.tuple(
      fc.constantFrom('/v3/watch', '/v3/lease/keepalive'),
      fc.array(fc.oneof(
        fc.constantFrom('{"create_request":{"key":"YQ=="}}', '{"cancel_request":{"watch_id":"0"}}', '{"progress_request":{}}', '{"ID":"5"}', '{}', '[]', '{"create_request":{"key":"!"}}', '}{', '{"ID":"x"}', ' '),
        fc.string({ maxLength: 6 }),
      ), { maxLength: 5 }),
    );
    await fc.assert(
      fc.asyncProperty(stream, async ([path, parts]) => {
        const s = new StreamCall(m.url, path);
        try {
          s.send(parts.join(''));
          const status = await Promise.race([s.status, new Promise<number>((r) => setTimeout(() => r(-1), 300))]);
          // -1: nothing complete was sent yet, so the stream is still waiting for its first request.
          expect([-1, 200, 400, 429], `${path} ${parts.join('')}`).toContain(status);
          if (status === 400) expect(await s.next(), `${path} ${parts.join('')}`).toMatchObject({ code: 3 });
        } finally {
          s.close();
        }
      }),
      { seed, numRuns: 60 },
    );
    expect((await call(m.url, '/v3/kv/range', { key: b('a') })).status).toBe(200);
  }, 60_000);
});
