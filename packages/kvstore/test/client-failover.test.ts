// KvClient against an in-process 3-member cluster (real Raft, LevelDB, sockets): it prefers the
// leader, moves on when the leader stops, its session-protected writes apply exactly once across
// the failover (each counter's version equals the writes acknowledged, and the store's revision
// moved by exactly that many), and a watch resumes across a member restart with every revision
// once (no gap, no duplicate).

import { afterEach, describe, expect, it } from 'vitest';
import { KvClient, nativeUrl } from '../src/client/client.js';
import { prefixRange } from '../src/client/keys.js';
import type { WatchResponse } from '../src/types.js';
import { TestCluster, dec, enc } from './client-helpers.js';

let cluster: TestCluster | null = null;
const clients: KvClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await cluster?.stop();
  cluster = null;
});

async function connect(c: TestCluster): Promise<KvClient> {
  const k = await KvClient.connect({ endpoints: c.endpoints, timeoutMs: 20_000 });
  clients.push(k);
  return k;
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('KvClient against a 3-member cluster', () => {
  it('prefers the leader; after the leader stops, retried session writes apply exactly once', async () => {
    cluster = await TestCluster.start(3, 'failover');
    const c = cluster;
    const leader = await c.waitForLeader();
    const client = await connect(c);
    // The leader's client URL is known once it has published it (a log entry after its start).
    await until(() => client.endpoint === nativeUrl(c.endpoints[leader]!), 'the client on the leader');

    const writers = 8;
    const perWriter = 40;
    const startRev = (await client.status()).header.revision;
    // A watch on the same client follows it across the failover and the move to the new leader.
    const watched: WatchResponse[] = [];
    client.watch({ ...prefixRange('ctr/'), startRevision: startRev + 1 }, { send: (r) => watched.push(r) });
    let done = 0;
    const loops = Array.from({ length: writers }, async (_, w) => {
      for (let i = 1; i <= perWriter; i++) {
        await client.put({ key: enc(`ctr/${w}`), value: enc(String(i)) });
        done++;
      }
    });
    // Readers: linearizable reads retried across the failover; each sees every counter only move forward.
    let readsDone = 0;
    const readers = Array.from({ length: 4 }, async () => {
      const last = new Map<number, number>();
      while (done < writers * perWriter) {
        const w = readsDone % writers;
        const kv = await client.get(`ctr/${w}`);
        const v = kv === null ? 0 : Number(dec(kv.value));
        expect(v).toBeGreaterThanOrEqual(last.get(w) ?? 0);
        last.set(w, v);
        readsDone++;
      }
    });
    await until(() => done >= 60, 'some writes before the failover');
    await c.stopMember(leader);
    await Promise.all(loops);
    await Promise.all(readers);
    expect(readsDone).toBeGreaterThan(0);

    const newLeader = await c.waitForLeader();
    expect(newLeader).not.toBe(leader);
    // Every counter saw each of its writes applied once: version = writes, value = the last.
    const kvs = (await client.range({ ...prefixRange('ctr/') })).result.kvs;
    expect(kvs).toHaveLength(writers);
    for (const kv of kvs) {
      expect(kv.version).toBe(perWriter);
      expect(dec(kv.value)).toBe(String(perWriter));
    }
    // ...and nothing else was applied: one revision per acknowledged write.
    const endRev = (await client.range({ key: enc('ctr/0') })).header.revision;
    expect(endRev - startRev).toBe(writers * perWriter);
    expect(client.endpoint).not.toBe(nativeUrl(c.endpoints[leader]!));
    // The failover was survived by retrying (not by luck between two writes).
    expect(client.stats.retries).toBeGreaterThan(0);
    expect(client.stats.connects).toBeGreaterThanOrEqual(2);
    // and it finds its way to the new leader
    await until(() => client.endpoint === nativeUrl(c.endpoints[newLeader]!), 'the client on the new leader');
    const revs = (): number[] => watched.flatMap((r) => r.events.map((e) => e.kv.modRevision));
    await until(() => revs().length >= writers * perWriter, 'the watch to see every write');
    expect(revs()).toEqual(Array.from({ length: writers * perWriter }, (_, i) => startRev + 1 + i));
    expect(watched.filter((r) => r.created === true)).toHaveLength(1);
    expect(watched.some((r) => r.canceled === true)).toBe(false);
  }, 60_000);

  it('a watch resumes across a restart of its member with every revision exactly once', async () => {
    cluster = await TestCluster.start(3, 'watchresume');
    const c = cluster;
    const writer = await connect(c);
    const watcher = await connect(c);
    const from = (await writer.status()).header.revision + 1;
    const got: WatchResponse[] = [];
    watcher.watch({ ...prefixRange('wr/'), startRevision: from }, { send: (r) => got.push(r) });
    await until(() => got.length > 0, 'created');

    const watchedMember = c.endpoints.findIndex((e) => nativeUrl(e) === watcher.endpoint);
    expect(watchedMember).toBeGreaterThanOrEqual(0);
    const acked: number[] = [];
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop || i < 150; i++) {
        const batch = await Promise.all(Array.from({ length: 4 }, (_, j) => writer.put({ key: enc(`wr/${(i * 4 + j) % 50}`), value: enc(`${i}`) })));
        for (const a of batch) acked.push(a.header.revision);
        if (i > 400) break;
      }
    })();
    await until(() => acked.length >= 100, 'writes before the restart');
    await c.stopMember(watchedMember);
    await until(() => acked.length >= 250, 'writes while the member is down');
    await c.restartMember(watchedMember);
    await until(() => acked.length >= 400, 'writes after the restart');
    stop = true;
    await load;

    const maxAcked = Math.max(...acked);
    const revisions = (): number[] => got.flatMap((r) => r.events.map((e) => e.kv.modRevision));
    await until(() => revisions().length > 0 && revisions()[revisions().length - 1]! >= maxAcked, 'the watch to catch up');
    const revs = revisions();
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBeGreaterThan(revs[i - 1]!); // ordered, no duplicate
    expect(revs).toEqual([...acked].sort((a, b) => a - b)); // no gap: every write's revision, once
    expect(got.filter((r) => r.created === true)).toHaveLength(1);
    expect(got.some((r) => r.canceled === true)).toBe(false);
    expect(watcher.stats.watchResumes).toBeGreaterThan(0);
  }, 60_000);

  it('without a quorum a write fails with a clear KvError at its deadline; stale reads still answer; then it recovers', async () => {
    cluster = await TestCluster.start(3, 'noquorum');
    const c = cluster;
    const client = await KvClient.connect({ endpoints: c.endpoints, timeoutMs: 2500 });
    clients.push(client);
    await client.put({ key: enc('q/1'), value: enc('before') });
    const leader = await c.waitForLeader();
    const others = [0, 1, 2].filter((i) => i !== leader);
    await c.stopMember(others[0]!);
    await c.stopMember(others[1]!);
    const e = await client.put({ key: enc('q/1'), value: enc('lost') }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toMatchObject({ name: 'KvError' });
    expect(['NO_LEADER', 'TIMEOUT', 'STOPPED']).toContain((e as { code: string }).code);
    const stale = await client.range({ key: enc('q/1'), serializable: true });
    expect(stale.stale).toBe(true);
    expect(dec(stale.result.kvs[0]!.value)).toBe('before');
    await c.restartMember(others[0]!);
    await c.waitForLeader(20_000);
    await until(
      () => client.put({ key: enc('q/1'), value: enc('after') }).then(() => true, () => false),
      'a write after the quorum is back',
    );
    expect(dec((await client.get('q/1'))!.value)).toBe('after');
  }, 60_000);
});
