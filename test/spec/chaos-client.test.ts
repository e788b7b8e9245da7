// JsonKvClient: the chaos workloads' one-attempt client over the etcd v3 JSON API. Against a real 3-member
// cluster it reads, writes, compares-and-sets and reports status; and every way a call can go wrong is
// classified as Jepsen needs it: fail only when the call certainly had no effect (a refused or failed read,
// NO_LEADER, a 4xx, a refused connection), info when it may have (no answer in time, a connection lost
// mid-call, LEADER_CHANGED, a 5xx).

import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonKvClient, classifyFailure, errorCodeOf, failureOf } from '../src/chaos/client.js';
import { startInProcessCluster, type InProcessCluster } from './chaos-kv-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function cluster(n: number): Promise<InProcessCluster> {
  const c = await startInProcessCluster(n);
  cleanups.push(() => c.stop());
  return c;
}

/** A loopback server whose handler decides what to do with each connection; closed after the test. */
async function rawServer(onConnection: (s: net.Socket) => void): Promise<string> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const a = server.address() as net.AddressInfo;
  return `http://127.0.0.1:${a.port}`;
}

/** An HTTP server that answers every request with `status` and `body`. */
async function answering(status: number, body: unknown): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

describe('classification of failed calls', () => {
  const http503 = (message: string) => ({ kind: 'http', status: 503, message }) as const;

  it('names the store error behind an HTTP answer from its status and etcd wording', () => {
    expect(errorCodeOf(503, 'etcdserver: no leader (the member cannot reach a quorum)')).toBe('NO_LEADER');
    expect(errorCodeOf(503, 'etcdserver: leader changed (proposal dropped)')).toBe('LEADER_CHANGED');
    expect(errorCodeOf(504, 'etcdserver: request timed out')).toBe('TIMEOUT');
    expect(errorCodeOf(504, 'something else')).toBe('TIMEOUT');
    expect(errorCodeOf(429, '12 requests are already being forwarded')).toBe('QUEUE_FULL');
    expect(errorCodeOf(503, 'the key-value store is closed')).toBeNull();
  });

  it('writes: fail only when certainly not applied, info otherwise', () => {
    const cases: [Parameters<typeof classifyFailure>[0], 'fail' | 'info'][] = [
      [http503('etcdserver: no leader'), 'fail'],
      [{ kind: 'http', status: 429, message: 'queue full' }, 'fail'],
      [{ kind: 'http', status: 400, message: 'etcdserver: duplicate key given in txn request' }, 'fail'],
      [{ kind: 'refused', detail: 'ECONNREFUSED' }, 'fail'],
      [http503('etcdserver: leader changed'), 'info'],
      [http503('the key-value store is closed'), 'info'],
      [{ kind: 'http', status: 504, message: 'etcdserver: request timed out' }, 'info'],
      [{ kind: 'http', status: 500, message: 'internal' }, 'info'],
      [{ kind: 'timeout', timeoutMs: 1000 }, 'info'],
      [{ kind: 'lost', detail: 'ECONNRESET' }, 'info'],
    ];
    for (const [failure, type] of cases) {
      const out = classifyFailure(failure, false);
      expect(out.type, JSON.stringify(failure)).toBe(type);
    }
    expect(classifyFailure(http503('etcdserver: no leader'), false)).toEqual({ type: 'fail', error: 'NO_LEADER: etcdserver: no leader' });
    expect(classifyFailure({ kind: 'timeout', timeoutMs: 250 }, false)).toEqual({ type: 'info', error: 'TIMEOUT: no answer within 250 ms' });
  });

  it('reads: every failure is a fail (a read has no effect)', () => {
    for (const failure of [http503('etcdserver: leader changed'), { kind: 'timeout', timeoutMs: 5 } as const, { kind: 'lost', detail: 'x' } as const]) {
      expect(classifyFailure(failure, true).type).toBe('fail');
    }
  });

  it('tells a refused connection from one lost mid-call and from a deadline', () => {
    const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    expect(failureOf(refused, 100).kind).toBe('refused');
    const reset = new TypeError('fetch failed', { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) });
    expect(failureOf(reset, 100).kind).toBe('lost');
    expect(failureOf(new DOMException('timed out', 'TimeoutError'), 100)).toEqual({ kind: 'timeout', timeoutMs: 100 });
    expect(failureOf(new Error('weird'), 100).kind).toBe('lost');
  });
});

describe('JsonKvClient against a real 3-member cluster', () => {
  it('gets, ranges, puts, txns, cas and status on the leader and on a follower', async () => {
    const c = await cluster(3);
    const leader = await c.leaderIndex();
    const follower = (leader + 1) % 3;
    const onLeader = new JsonKvClient(c.endpoints[leader] as string, { requestTimeoutMs: 3000 });
    const onFollower = new JsonKvClient(`${c.endpoints[follower] as string}/`, { requestTimeoutMs: 3000 });

    const absent = await onFollower.get('r1');
    expect(absent.type).toBe('ok');
    if (absent.type !== 'ok') return;
    expect(absent.value).toMatchObject({ value: null, modRevision: 0, version: 0, stale: false });

    const put = await onFollower.put('r1', '5'); // forwarded to the leader
    expect(put.type).toBe('ok');
    if (put.type !== 'ok') return;
    expect(put.value.revision).toBeGreaterThan(absent.value.revision);

    const got = await onLeader.get('r1');
    expect(got).toMatchObject({ type: 'ok', value: { value: '5', modRevision: put.value.revision, version: 1, revision: put.value.revision } });

    // A linearizable read on the follower sees the write it forwarded (ReadIndex).
    expect(await onFollower.get('r1')).toMatchObject({ type: 'ok', value: { value: '5' } });
    const serializable = await onFollower.get('r1', { serializable: true });
    expect(serializable.type).toBe('ok');
    if (serializable.type === 'ok') expect(serializable.value.stale).toBe(true);

    // cas: a wrong expectation is ok(false) and writes nothing; the right one is ok(true).
    expect(await onFollower.cas('r1', '4', '6')).toEqual({ type: 'ok', value: false });
    expect(await onFollower.cas('r1', '5', '6')).toEqual({ type: 'ok', value: true });
    expect(await onLeader.cas('r2', '0', '1')).toEqual({ type: 'ok', value: false }); // absent: a value compare fails
    expect(await onLeader.cas('r2', null, '1')).toEqual({ type: 'ok', value: true }); // null: create if absent
    expect(await onLeader.cas('r2', null, '2')).toEqual({ type: 'ok', value: false });

    // txn on mod_revision, with results of both kinds.
    const r1 = await onLeader.get('r1');
    if (r1.type !== 'ok') throw new Error('read failed');
    const txn = await onLeader.txn(
      [{ key: 'r1', target: 'mod', modRevision: r1.value.modRevision }],
      [{ type: 'put', key: 'r1', value: '7' }, { type: 'get', key: 'r2' }],
      [{ type: 'get', key: 'r1' }],
    );
    expect(txn).toMatchObject({ type: 'ok', value: { succeeded: true, results: [{ type: 'put' }, { type: 'get', entries: [{ key: 'r2', value: '1' }] }] } });
    const stale = await onLeader.txn([{ key: 'r1', target: 'mod', modRevision: r1.value.modRevision }], [{ type: 'put', key: 'r1', value: '8' }], [{ type: 'get', key: 'r1' }]);
    expect(stale).toMatchObject({ type: 'ok', value: { succeeded: false, results: [{ type: 'get', entries: [{ key: 'r1', value: '7', version: 3 }] }] } });
    const del = await onLeader.txn([], [{ type: 'delete', key: 'r2' }]);
    expect(del).toMatchObject({ type: 'ok', value: { succeeded: true, results: [{ type: 'delete', deleted: 1 }] } });

    expect(await onLeader.put('bank/1', '10')).toMatchObject({ type: 'ok' });
    expect(await onLeader.put('bank/0', '20')).toMatchObject({ type: 'ok' });
    expect(await onLeader.put('bank0', 'not in the prefix')).toMatchObject({ type: 'ok' });
    const range = await onFollower.range('bank/');
    expect(range.type).toBe('ok');
    if (range.type === 'ok') expect(range.value.entries.map((e) => [e.key, e.value])).toEqual([['bank/0', '20'], ['bank/1', '10']]);

    const status = await onFollower.status();
    const leaderStatus = await onLeader.status();
    expect(status.type).toBe('ok');
    expect(leaderStatus.type).toBe('ok');
    if (status.type === 'ok' && leaderStatus.type === 'ok') {
      expect(status.value.leader).toBe(leaderStatus.value.memberId);
      expect(status.value.memberId).not.toBe(leaderStatus.value.memberId);
      expect(status.value.raftTerm).toBeGreaterThan(0);
    }
  });

  it('a member without a quorum refuses writes and linearizable reads with NO_LEADER (fail), still serves serializable reads', async () => {
    const c = await cluster(3);
    const leader = await c.leaderIndex();
    const survivor = (leader + 1) % 3;
    const client = new JsonKvClient(c.endpoints[survivor] as string, { requestTimeoutMs: 3000 });
    expect(await client.put('k', 'before')).toMatchObject({ type: 'ok' });
    // The put was acknowledged once the leader and ONE follower had it: the survivor may not have applied
    // it yet (under load it often has not), and a serializable read answers from what it applied. A
    // linearizable read there (ReadIndex) returns only once the survivor applied at least up to the put.
    expect(await client.get('k')).toMatchObject({ type: 'ok', value: { value: 'before' } });
    await c.stopMember(leader);
    await c.stopMember((leader + 2) % 3);
    // Quorum loss is noticed within an election timeout (500 ms); until then a write may still be tried.
    let put = await client.put('k', 'after');
    for (let i = 0; i < 50 && !(put.type === 'fail' && put.error.startsWith('NO_LEADER')); i++) {
      await new Promise((r) => setTimeout(r, 100));
      put = await client.put('k', 'after');
    }
    expect(put.type).toBe('fail');
    if (put.type === 'fail') expect(put.error).toMatch(/^NO_LEADER: etcdserver: no leader/);
    const read = await client.get('k');
    expect(read.type).toBe('fail');
    const local = await client.get('k', { serializable: true });
    expect(local).toMatchObject({ type: 'ok', value: { value: 'before', stale: true } });
  });

  it('a stopped cluster: connection refused is a fail, for writes and reads', async () => {
    const c = await cluster(3);
    await c.leaderIndex();
    await c.stop();
    for (const endpoint of c.endpoints) {
      const client = new JsonKvClient(endpoint, { requestTimeoutMs: 1000 });
      const put = await client.put('k', 'v');
      expect(put.type).toBe('fail');
      if (put.type === 'fail') expect(put.error).toMatch(/^REFUSED: ECONNREFUSED/);
      expect((await client.cas('k', 'v', 'w')).type).toBe('fail');
      expect((await client.get('k')).type).toBe('fail');
      expect((await client.status()).type).toBe('fail');
    }
  });
});

describe('JsonKvClient when the member misbehaves', () => {
  it('no answer within the deadline: a write is info, a read fail', async () => {
    const url = await rawServer(() => {}); // accepts, reads nothing, never answers
    const client = new JsonKvClient(url, { requestTimeoutMs: 150 });
    expect(await client.put('k', 'v')).toEqual({ type: 'info', error: 'TIMEOUT: no answer within 150 ms' });
    expect(await client.txn([], [{ type: 'put', key: 'k', value: 'v' }])).toMatchObject({ type: 'info' });
    expect(await client.get('k')).toEqual({ type: 'fail', error: 'TIMEOUT: no answer within 150 ms' });
  });

  it('a connection reset after the request was sent: a write is info', async () => {
    const url = await rawServer((s) => s.once('data', () => s.resetAndDestroy()));
    const client = new JsonKvClient(url, { requestTimeoutMs: 2000 });
    const put = await client.put('k', 'v');
    expect(put.type).toBe('info');
    if (put.type === 'info') expect(put.error).toMatch(/^LOST: /);
    expect((await client.get('k')).type).toBe('fail');
  });

  it('HTTP errors: 503 NO_LEADER and 429 fail, 503 LEADER_CHANGED info, garbage 200 info', async () => {
    const noLeader = new JsonKvClient(await answering(503, { error: 'etcdserver: no leader', message: 'etcdserver: no leader', code: 14 }), { requestTimeoutMs: 2000 });
    expect(await noLeader.put('k', 'v')).toEqual({ type: 'fail', error: 'NO_LEADER: etcdserver: no leader' });
    const busy = new JsonKvClient(await answering(429, { error: 'full', message: 'full', code: 8 }), { requestTimeoutMs: 2000 });
    expect(await busy.put('k', 'v')).toEqual({ type: 'fail', error: 'QUEUE_FULL: full' });
    const changed = new JsonKvClient(await answering(503, { error: 'etcdserver: leader changed', message: 'etcdserver: leader changed', code: 14 }), { requestTimeoutMs: 2000 });
    expect(await changed.put('k', 'v')).toEqual({ type: 'info', error: 'LEADER_CHANGED: etcdserver: leader changed' });
    expect(await changed.get('k')).toEqual({ type: 'fail', error: 'LEADER_CHANGED: etcdserver: leader changed' });
    const garbage = new JsonKvClient(await answering(200, 'not an object'), { requestTimeoutMs: 2000 });
    expect((await garbage.put('k', 'v')).type).toBe('info');
    expect((await garbage.get('k')).type).toBe('fail');
  });
});
