// The native protocol end to end against an in-process 1-member KvNode (real Raft, LevelDB,
// sockets): pipelined calls, KvErrors mapped back, watches multiplexed on the socket, and the
// bounds (a too large request or frame, garbage, a wrong shape) answered or refused without
// crashing the member.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createServer, type Server } from 'node:http';
import { pack, unpackMultiple } from 'msgpackr';
import { KvClient } from '../src/client/client.js';
import { prefixRange } from '../src/client/keys.js';
import { attachNativeServer, type NativeServer } from '../src/native/server.js';
import { DEFAULT_LIMITS, NATIVE_PATH } from '../src/native/protocol.js';
import { KvError } from '../src/errors.js';
import type { WatchResponse } from '../src/types.js';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { readBackup } from '../src/state/backup.js';
import { TestCluster, dec, enc } from './client-helpers.js';

let cluster: TestCluster;
let client: KvClient;

beforeAll(async () => {
  cluster = await TestCluster.start(1, 'native1');
  client = await KvClient.connect({ endpoints: cluster.endpoints, timeoutMs: 5000 });
}, 30_000);

afterAll(async () => {
  await client?.close();
  await cluster?.stop();
});

async function rejection(p: Promise<unknown>): Promise<KvError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KvError);
    return e as KvError;
  }
  throw new Error('expected a rejection');
}

/** A raw ws to the member's native endpoint; resolves the close code. */
function rawSocket(): Promise<{ ws: WebSocket; closed: Promise<number>; messages: unknown[] }> {
  const url = cluster.endpoints[0]!.replace('http://', 'ws://') + NATIVE_PATH;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: 1 << 26 });
    const messages: unknown[] = [];
    ws.on('message', (d: Buffer) => messages.push(...unpackMultiple(d)));
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    ws.once('open', () => resolve({ ws, closed, messages }));
    ws.once('error', reject);
  });
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('native protocol against a 1-member KvNode', () => {
  it('serves puts, ranges, txns and deletes', async () => {
    const p = await client.put({ key: enc('a/1'), value: enc('one') });
    expect(p.header.revision).toBeGreaterThanOrEqual(1);
    const p2 = await client.put({ key: enc('a/1'), value: enc('uno'), prevKv: true });
    expect(dec(p2.result.prevKv!.value)).toBe('one');
    expect(p2.header.revision).toBe(p.header.revision + 1);
    const g = await client.get('a/1');
    expect(dec(g!.value)).toBe('uno');
    expect(g!.version).toBe(2);
    const t = await client.txn({
      compare: [{ result: 'equal', target: 'value', key: enc('a/1'), value: enc('uno') }],
      success: [{ put: { key: enc('a/2'), value: enc('two') } }, { range: { key: enc('a/1') } }],
      failure: [],
    });
    expect(t.result.succeeded).toBe(true);
    expect((await client.getPrefix('a/')).map((kv) => dec(kv.key))).toEqual(['a/1', 'a/2']);
    const d = await client.deleteRange({ ...prefixRange('a/'), prevKv: true });
    expect(d.result.deleted).toBe(2);
    expect(await client.get('a/1')).toBeNull();
    const s = await client.range({ key: enc('a/1'), serializable: true });
    expect(s.stale).toBe(true);
  });

  it('pipelines many calls on one socket; each write applies exactly once', async () => {
    const before = (await client.status()).header.revision;
    const n = 400;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => client.put({ key: enc(`p/${i}`), value: enc(String(i)) })));
    const revs = answers.map((a) => a.header.revision).sort((x, y) => x - y);
    expect(new Set(revs).size).toBe(n);
    expect(revs[0]).toBe(before + 1);
    expect(revs[n - 1]).toBe(before + n);
    const all = await client.range({ ...prefixRange('p/') });
    expect(all.result.count).toBe(n);
    expect(all.result.kvs.every((kv) => kv.version === 1)).toBe(true);
    const reads = await Promise.all(Array.from({ length: n }, (_, i) => client.get(`p/${i}`)));
    expect(reads.map((kv) => dec(kv!.value))).toEqual(Array.from({ length: n }, (_, i) => String(i)));
  });

  it('bounds pending session writes and in-flight calls by queueing, not failing', async () => {
    const c = await KvClient.connect({ endpoints: cluster.endpoints, maxPendingWrites: 4, maxInFlight: 8 });
    try {
      const n = 200;
      const puts = Promise.all(Array.from({ length: n }, (_, i) => c.put({ key: enc(`q/${i}`), value: enc('v') })));
      const gets = Promise.all(Array.from({ length: n }, () => c.range({ key: enc('q/0'), serializable: true })));
      const answers = await puts;
      await gets;
      expect(new Set(answers.map((a) => a.header.revision)).size).toBe(n);
      const all = await c.range({ ...prefixRange('q/'), countOnly: true });
      expect(all.result.count).toBe(n);
    } finally {
      await c.close();
    }
  });

  it('a write retried under the same session seq applies once and gets the first answer again', async () => {
    const { clientId } = (await client.registerSession()).result;
    const session = { clientId, seq: 1, ackedSeq: 0 };
    const first = await client.put({ key: enc('s/1'), value: enc('x') }, { session });
    const again = await client.put({ key: enc('s/1'), value: enc('x') }, { session });
    expect(again.header.revision).toBe(first.header.revision);
    expect((await client.get('s/1'))!.version).toBe(1);
    const next = await client.put({ key: enc('s/1'), value: enc('y') }, { session: { clientId, seq: 2, ackedSeq: 1 } });
    expect(next.header.revision).toBe(first.header.revision + 1);
    expect((await client.get('s/1'))!.version).toBe(2);
  });

  it('maps errors back to KvError with their codes', async () => {
    const cur = (await client.status()).header.revision;
    expect((await rejection(client.range({ key: enc('x'), revision: cur + 100 }))).code).toBe('FUTURE_REV');
    expect((await rejection(client.leaseRevoke(123456))).code).toBe('LEASE_NOT_FOUND');
    expect((await rejection(client.put({ key: enc('nope'), value: enc(''), ignoreValue: true }))).code).toBe('KEY_NOT_FOUND');
    const ops = Array.from({ length: 129 }, (_, i) => ({ put: { key: enc(`o/${i}`), value: enc('v') } }));
    expect((await rejection(client.txn({ compare: [], success: ops, failure: [] }))).code).toBe('TOO_MANY_OPS');
    await client.put({ key: enc('c/1'), value: enc('1') });
    const r = (await client.put({ key: enc('c/1'), value: enc('2') })).header.revision;
    await client.compact({ revision: r });
    const e = await rejection(client.range({ key: enc('c/1'), revision: r - 1 }));
    expect(e.code).toBe('COMPACTED');
    expect(e.message).toMatch(/required revision has been compacted/);
    // the client goes on after errors
    expect(dec((await client.get('c/1'))!.value)).toBe('2');
  });

  it('refuses a request above the size limit with REQUEST_TOO_LARGE, and keeps working', async () => {
    const big = new Uint8Array(2 * 1024 * 1024);
    expect((await rejection(client.put({ key: enc('big'), value: big }))).code).toBe('REQUEST_TOO_LARGE');
    // just above etcd's 1.5 MiB but within the frame's envelope allowance: the member refuses it
    const over = new Uint8Array(1.5 * 1024 * 1024 + 16);
    expect((await rejection(client.put({ key: enc('big'), value: over }))).code).toBe('REQUEST_TOO_LARGE');
    expect((await client.put({ key: enc('small'), value: enc('ok') })).header.revision).toBeGreaterThan(0);
  });

  it('a raw peer: wrong shapes are answered BAD_REQUEST, garbage and oversized frames close only that socket', async () => {
    const a = await rawSocket();
    a.ws.send(pack({ id: 7, op: 'put', args: [{ key: 'not-bytes', value: 1 }] }));
    a.ws.send(pack({ id: 8, op: 'nope', args: [] }));
    a.ws.send(Buffer.concat([pack({ id: 9, op: 'status', args: [] }), pack({ id: 10, op: 'range', args: [{ key: enc('small') }] })]));
    await until(() => a.messages.length >= 4, 'answers');
    const byId = new Map(a.messages.map((m) => [(m as { id: number }).id, m as Record<string, unknown>]));
    expect(byId.get(7)).toMatchObject({ ok: false, code: 'BAD_REQUEST', message: expect.stringMatching(/key must be bytes/) });
    expect(byId.get(8)).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(byId.get(9)).toMatchObject({ ok: true });
    expect(byId.get(10)).toMatchObject({ ok: true });
    a.ws.send(Buffer.from([0xc1, 0xc1, 0xc1])); // 0xc1 is never valid msgpack
    expect(await a.closed).toBe(1007);

    const b = await rawSocket();
    b.ws.send(Buffer.alloc(DEFAULT_LIMITS.maxFrameBytes + 1));
    expect(await b.closed).toBe(1009);

    const c = await rawSocket();
    c.ws.send('text');
    expect(await c.closed).toBe(1003);

    // the member is fine
    expect((await client.status()).result.errors).toEqual([]);
  });

  it('multiplexes watches: created, events in order, prevKv, cancel', async () => {
    const start = (await client.status()).header.revision + 1;
    const got: WatchResponse[] = [];
    const w = client.watch({ ...prefixRange('w/'), startRevision: start, prevKv: true }, { send: (r) => got.push(r) });
    const other: WatchResponse[] = [];
    const w2 = client.watch({ key: enc('w/b') }, { send: (r) => other.push(r) });
    await until(() => got.length > 0 && other.length > 0, 'created');
    expect(got[0]!.created).toBe(true);
    expect(got[0]!.watchId).toBe(w.watchId);
    await client.put({ key: enc('w/a'), value: enc('1') });
    await client.put({ key: enc('w/a'), value: enc('2') });
    await client.put({ key: enc('w/b'), value: enc('3') });
    await client.deleteRange({ key: enc('w/a') });
    const events = (): WatchResponse['events'] => got.flatMap((r) => r.events);
    await until(() => events().length === 4, 'four events');
    expect(events().map((e) => [e.type, dec(e.kv.key), e.kv.modRevision])).toEqual([
      ['put', 'w/a', start],
      ['put', 'w/a', start + 1],
      ['put', 'w/b', start + 2],
      ['delete', 'w/a', start + 3],
    ]);
    expect(dec(events()[1]!.prevKv!.value)).toBe('1');
    await until(() => other.some((r) => r.events.length > 0), 'w/b event');
    expect(other.flatMap((r) => r.events).map((e) => dec(e.kv.value))).toEqual(['3']);
    w.cancel();
    await until(() => got.some((r) => r.canceled === true), 'canceled');
    await client.put({ key: enc('w/a'), value: enc('after') });
    await new Promise((r) => setTimeout(r, 100));
    expect(events()).toHaveLength(4);
    expect(got.filter((r) => r.canceled)).toHaveLength(1);
    w2.cancel();
  });

  it('a malformed watch is refused at once; a client-chosen watch id is kept', async () => {
    expect(() => client.watch({ key: 'k' as unknown as Uint8Array }, { send: () => undefined })).toThrow(/key must be bytes/);
    const got: WatchResponse[] = [];
    const h = client.watch({ key: enc('id/1'), watchId: 4242 }, { send: (r) => got.push(r) });
    expect(h.watchId).toBe(4242);
    await until(() => got.length > 0, 'created');
    await client.put({ key: enc('id/1'), value: enc('v') });
    await until(() => got.length > 1, 'event');
    expect(got.every((r) => r.watchId === 4242)).toBe(true);
    h.cancel();
  });

  it('a watch below the compacted revision is canceled with compactRevision', async () => {
    const got: WatchResponse[] = [];
    client.watch({ key: enc('c/1'), startRevision: 1 }, { send: (r) => got.push(r) });
    await until(() => got.some((r) => r.canceled === true), 'canceled');
    const c = got.find((r) => r.canceled)!;
    expect(c.compactRevision).toBeGreaterThan(1);
  });

  it('streams a snapshot (bounded chunks in flight) that verifies as a backup file', async () => {
    const revision = (await client.status()).header.revision;
    const file = join(cluster.dir, 'backup.db');
    const out = createWriteStream(file);
    let chunks = 0;
    for await (const chunk of client.snapshot()) {
      chunks++;
      await new Promise((r) => setTimeout(r, chunks < 4 ? 20 : 0)); // a slow reader: the member waits for credit
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
    expect(chunks).toBeGreaterThan(2);
    const { header, data } = await readBackup(file);
    expect(header.revision).toBe(revision);
    let bytes = 0;
    for await (const chunk of data) bytes += chunk.byteLength;
    expect(bytes).toBeGreaterThan(400 * 10); // the pipelined keys are in it
    // the client goes on after the stream
    expect((await client.get('small'))!.version).toBeGreaterThan(0);
  });

  it('a second native server on another HTTP server: a closed client leaves no connection behind', async () => {
    const http: Server = createServer();
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const port = (http.address() as { port: number }).port;
    const native: NativeServer = attachNativeServer(http, cluster.nodes[0]!.service);
    const c = await KvClient.connect({ endpoints: [`http://127.0.0.1:${port}`], preferLeader: false });
    expect((await c.get('small'))!.value).toEqual(Buffer.from('ok'));
    const seen: WatchResponse[] = [];
    c.watch({ key: enc('zz') }, { send: (r) => seen.push(r) });
    await until(() => seen.length > 0, 'created');
    expect(native.connections).toBe(1);
    await c.close();
    await until(() => native.connections === 0, 'server side close');
    await expect(c.get('small')).rejects.toMatchObject({ code: 'STOPPED' });
    await native.close();
    expect(native.connections).toBe(0);
    await new Promise<void>((r) => http.close(() => r()));
  });

  it('a member bounds requests in flight and watches per connection (QUEUE_FULL), the rest are served', async () => {
    const http: Server = createServer();
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const port = (http.address() as { port: number }).port;
    const native = attachNativeServer(http, cluster.nodes[0]!.service, { maxInFlight: 3, maxWatches: 1 });
    const ws = new WebSocket(`ws://127.0.0.1:${port}${NATIVE_PATH}`);
    const messages: Record<string, unknown>[] = [];
    ws.on('message', (d: Buffer) => messages.push(...(unpackMultiple(d) as Record<string, unknown>[])));
    await new Promise((r) => ws.once('open', r));
    try {
      const puts = Array.from({ length: 10 }, (_, i) => pack({ id: i + 1, op: 'put', args: [{ key: enc(`b/${i}`), value: enc('v') }] }));
      ws.send(Buffer.concat(puts)); // one frame: ten requests arrive at once
      ws.send(Buffer.concat([pack({ id: 20, op: 'watch', args: [{ key: enc('b/0') }] }), pack({ id: 21, op: 'watch', args: [{ key: enc('b/1') }] })]));
      await until(() => messages.filter((m) => typeof m['id'] === 'number' && (m['id'] as number) <= 10).length === 10 && messages.some((m) => m['id'] === 21), 'answers');
      const answers = messages.filter((m) => (m['id'] as number) <= 10);
      expect(answers.filter((m) => m['ok'] === true)).toHaveLength(3);
      expect(answers.filter((m) => m['code'] === 'QUEUE_FULL')).toHaveLength(7);
      expect(messages.find((m) => m['id'] === 21)).toMatchObject({ ok: false, code: 'QUEUE_FULL' });
      expect(messages.find((m) => m['id'] === 20)).toMatchObject({ watch: { created: true } });
      // exactly the three accepted puts were applied
      const r = await client.range({ ...prefixRange('b/'), countOnly: true });
      expect(r.result.count).toBe(3);
    } finally {
      ws.terminate();
      await native.close();
      await new Promise<void>((r) => http.close(() => r()));
    }
  });

  it('a client that does not read its answers is disconnected at the buffered-bytes bound', async () => {
    await client.put({ key: enc('big/v'), value: new Uint8Array(200 * 1024) });
    const http: Server = createServer();
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const port = (http.address() as { port: number }).port;
    const native = attachNativeServer(http, cluster.nodes[0]!.service, { maxBufferedBytes: 1024 * 1024 });
    const ws = new WebSocket(`ws://127.0.0.1:${port}${NATIVE_PATH}`);
    await new Promise((r) => ws.once('open', r));
    try {
      // Stop reading (the test plays a stuck client), then ask for ~40 MB of answers.
      (ws as unknown as { _socket: { pause(): void } })._socket.pause();
      for (let i = 0; i < 200; i++) {
        ws.send(pack({ id: i + 1, op: 'range', args: [{ key: enc('big/v'), serializable: true }] }));
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 10)); // answers leave in several frames
        if (native.connections === 0) break;
      }
      await until(() => native.connections === 0, 'the member to drop the stuck client', 10_000);
      expect((await client.status()).result.errors).toEqual([]);
    } finally {
      ws.terminate();
      await native.close();
      await new Promise<void>((r) => http.close(() => r()));
    }
  });

  it('close() leaves no timer of the client behind', async () => {
    // Track the timers created from client.ts (by stack) until they fire or are cleared.
    const live = new Set<unknown>();
    const orig = { setTimeout, setInterval, clearTimeout, clearInterval };
    const fromClient = (): boolean => /client[\\/]client\.(ts|js)/.test(new Error().stack ?? '');
    const g = globalThis as unknown as Record<string, unknown>;
    g['setTimeout'] = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout => {
      const track = fromClient();
      const t: NodeJS.Timeout = orig.setTimeout(() => {
        live.delete(t);
        fn(...args);
      }, ms);
      if (track) live.add(t);
      return t;
    };
    g['setInterval'] = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout => {
      const t = orig.setInterval(fn, ms, ...args);
      if (fromClient()) live.add(t);
      return t;
    };
    g['clearTimeout'] = (t: NodeJS.Timeout | undefined): void => {
      live.delete(t);
      orig.clearTimeout(t);
    };
    g['clearInterval'] = (t: NodeJS.Timeout | undefined): void => {
      live.delete(t);
      orig.clearInterval(t);
    };
    try {
      const c = await KvClient.connect({ endpoints: cluster.endpoints, keepAliveMs: 100 });
      await Promise.all(Array.from({ length: 20 }, (_, i) => c.put({ key: enc(`r/${i}`), value: enc('v') })));
      const seen: WatchResponse[] = [];
      c.watch({ ...prefixRange('r/') }, { send: (r) => seen.push(r) });
      await until(() => seen.length > 0, 'created');
      await new Promise((r) => orig.setTimeout(r, 250)); // a few pings
      expect(live.size).toBeGreaterThan(0); // the tracking sees the client's timers
      await c.close();
      await until(() => live.size === 0, `the client's timers to end (${live.size} left)`, 3000);
    } finally {
      Object.assign(globalThis, orig);
    }
  });
});
