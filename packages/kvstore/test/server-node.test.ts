// KvNode in-process: one member and three members on loopback (real LevelDB, real sockets):
// writes through the log, linearizable and serializable reads, forwarding from a follower,
// publish and member list, quorum loss refused fast, restart without re-applying the log,
// /health /readyz /metrics and the JSON gateway mounted on the client listener.
import { afterEach, describe, expect, it } from 'vitest';
import { clusterSpecs, dec, enc, freePorts, refusal, startCluster, startMember, stopAll, stopMember, waitFor, waitLeader } from './server-helpers.js';

afterEach(async () => {
  await stopAll();
});

describe('KvNode, one member', () => {
  it('writes through the log, reads linearizably and serializably, and answers with its ids', async () => {
    const [spec] = await clusterSpecs(1);
    const node = await startMember(spec!);
    await waitLeader([node]);
    const before = node.sm.revision;
    const put = await node.service.put({ key: enc('a'), value: enc('1') });
    expect(put.header.memberId).toBe(node.memberId);
    expect(put.header.clusterId).toBe(node.clusterId);
    expect(put.header.revision).toBe(before + 1);
    const r = await node.service.range({ key: enc('a') });
    expect(r.stale).toBeUndefined();
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['1']);
    const s = await node.service.range({ key: enc('a'), serializable: true });
    expect(s.stale).toBe(true);
    expect(s.result.kvs).toHaveLength(1);
    const st = await node.service.status();
    expect(st.result.leader).toBe(node.memberId);
    expect(st.result.errors).toEqual([]);
    // Bad requests are refused before anything is proposed.
    const tooMany = await refusal(node.service.txn({ compare: [], success: Array.from({ length: 129 }, (_, i) => ({ put: { key: enc(`k${i}`), value: enc('v') } })), failure: [] }));
    expect(tooMany.code).toBe('TOO_MANY_OPS');
  });

  it('serves /health, /readyz, /metrics and the etcd JSON gateway on the client URL', async () => {
    const [spec] = await clusterSpecs(1);
    const node = await startMember({ ...spec!, listenMetricsUrls: ['http://127.0.0.1:0'] });
    await waitLeader([node]);
    const base = node.clientUrls[0]!;
    const health = await waitFor('healthy', async () => {
      const r = await fetch(`${base}/health`);
      return r.status === 200 ? r.json() : null;
    });
    expect(health).toEqual({ health: 'true', reason: '' });
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${base}/livez`)).text()).toBe('ok\n');
    expect(await (await fetch(`${base}/version`)).json()).toMatchObject({ etcdcluster: '3.5.0' });
    const put = await fetch(`${base}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('x').toString('base64'), value: Buffer.from('y').toString('base64') }) });
    expect(put.status).toBe(200);
    const range = (await (await fetch(`${base}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('x').toString('base64') }) })).json()) as { kvs: { value: string }[] };
    expect(Buffer.from(range.kvs[0]!.value, 'base64').toString()).toBe('y');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/ballot_kv_proposals_total\{[^}]*result="ok"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/ballot_kv_requests_total\{[^}]*route="\/v3\/kv\/put"/);
    expect(metrics).toMatch(/ballot_kv_raft_log_save_duration_seconds_count/);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    // --listen-metrics-urls: probes and metrics only, no client API.
    const extra = node.metricsUrls[0]!;
    expect(await (await fetch(`${extra}/metrics`)).text()).toMatch(/ballot_kv_raft_applied_index/);
    expect((await fetch(`${extra}/health`)).status).toBe(200);
    expect((await fetch(`${extra}/v3/kv/range`, { method: 'POST', body: '{}' })).status).toBe(404);
  });

  it('restarts on its data without re-applying the log it had applied', async () => {
    const [spec] = await clusterSpecs(1);
    let node = await startMember(spec!);
    await waitLeader([node]);
    for (let i = 0; i < 20; i++) await node.service.put({ key: enc(`k${i}`), value: enc(`v${i}`) });
    const applied = node.sm.appliedIndex;
    // Let the store's write-behind flush, then stop cleanly.
    await stopMember(node);
    node = await startMember(spec!);
    await waitLeader([node]);
    const r = await node.service.range({ key: enc('k'), rangeEnd: enc('l') });
    expect(r.result.count).toBe(20);
    const metrics = await node.metrics.text();
    const skipped = Number(/ballot_kv_apply_entries_total\{[^}]*kind="skipped"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? '0');
    const reapplied = Number(/ballot_kv_apply_entries_total\{[^}]*kind="applied"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? '0');
    // What the store had was skipped, not applied again; only new entries (the new term's no-op, publish) were applied.
    expect(skipped).toBeGreaterThan(0);
    expect(reapplied).toBeLessThan(applied);
  });
});

describe('KvNode, three members', () => {
  it('dials the advertised peer URLs, which may differ from the listen URLs, and serves every listen client URL', async () => {
    const specs = await clusterSpecs(3);
    const [extraPort] = await freePorts(1);
    // Members advertise `localhost` and listen on 127.0.0.1; m1 has a second client listener.
    const adv = (u: string): string => u.replace('127.0.0.1', 'localhost');
    const initialCluster: Record<string, string[]> = {};
    for (const s of specs) initialCluster[s.name] = s.initialAdvertisePeerUrls.map(adv);
    const nodes = await startCluster(
      specs.map((s, i) => ({
        ...s,
        initialAdvertisePeerUrls: s.initialAdvertisePeerUrls.map(adv),
        initialCluster,
        listenClientUrls: i === 0 ? [...s.listenClientUrls, `http://127.0.0.1:${extraPort}`] : s.listenClientUrls,
      })),
    );
    await waitLeader(nodes);
    expect(nodes[0]!.clientUrls).toHaveLength(2);
    const w = await nodes[1]!.service.put({ key: enc('adv'), value: enc('ok') });
    expect(w.header.revision).toBeGreaterThan(0);
    for (const base of nodes[0]!.clientUrls) {
      const r = (await (await fetch(`${base}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('adv').toString('base64') }) })).json()) as { kvs: unknown[] };
      expect(r.kvs).toHaveLength(1);
    }
    const members = (await nodes[2]!.service.memberList()).result.members;
    expect(members.map((m) => m.peerUrls[0]).every((u) => u!.startsWith('http://localhost:'))).toBe(true);
  });

  it('forwards a write from a follower and answers it as if local; every member reads it', async () => {
    const specs = await clusterSpecs(3);
    const nodes = await startCluster(specs);
    const leader = await waitLeader(nodes);
    const follower = nodes.find((n) => n !== leader)!;
    const put = await follower.service.put({ key: enc('f'), value: enc('from-follower') }, { timeoutMs: 5000 });
    expect(put.header.memberId).toBe(follower.memberId);
    for (const n of nodes) {
      const r = await n.service.range({ key: enc('f') });
      expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['from-follower']);
    }
    const metrics = await follower.metrics.text();
    expect(metrics).toMatch(/ballot_kv_forwarded_requests_total\{[^}]*result="ok"[^}]*\} [1-9]/);
  });

  it('serves linearizable reads with --read-mode lease (the leader\'s lease, thesis §6.4.1)', async () => {
    const specs = (await clusterSpecs(3)).map((s) => ({ ...s, readMode: 'lease' as const }));
    const nodes = await startCluster(specs);
    const leader = await waitLeader(nodes);
    for (let i = 0; i < 5; i++) {
      await leader.service.put({ key: enc('l'), value: enc(`v${i}`) });
      for (const n of nodes) expect(dec((await n.service.range({ key: enc('l') })).result.kvs[0]!.value)).toBe(`v${i}`);
    }
  });

  it('publishes names and client URLs: member list shows them on every member', async () => {
    const specs = await clusterSpecs(3);
    const nodes = await startCluster(specs);
    await waitLeader(nodes);
    const list = await waitFor('published members', async () => {
      const l = await nodes[2]!.service.memberList();
      return l.result.members.every((m) => m.name !== '' && m.clientUrls.length > 0) ? l.result.members : null;
    });
    expect(list.map((m) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
    for (const m of list) {
      const spec = specs.find((s) => s.name === m.name)!;
      expect(m.peerUrls).toEqual(spec.initialAdvertisePeerUrls);
      expect(m.clientUrls).toEqual(spec.advertiseClientUrls);
      expect(m.isLearner).toBe(false);
    }
  });

  for (const survivorRole of ['follower', 'leader'] as const) {
    it(`refuses writes and linearizable reads with NO_LEADER within 2 s of losing the quorum (survivor: the ${survivorRole}); serializable reads still answer, flagged stale`, async () => {
      const specs = await clusterSpecs(3, { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 });
      const nodes = await startCluster(specs);
      const leader = await waitLeader(nodes);
      await leader.service.put({ key: enc('q'), value: enc('before') });
      const survivor = survivorRole === 'leader' ? leader : nodes.find((n) => n !== leader)!;
      await waitFor('survivor applied', async () => (await survivor.service.range({ key: enc('q'), serializable: true })).result.count === 1);
      await Promise.all(nodes.filter((n) => n !== survivor).map((n) => stopMember(n)));
      // The two others are gone now (their Raft stopped): the quorum is lost.
      const lostAt = Date.now();
      // A linearizable read issued at once, with a long deadline: it waits inside Raft (ReadIndex)
      // until the member sees the quorum is gone, then fails with NO_LEADER, not at its deadline.
      const early = refusal(survivor.service.range({ key: enc('q') }, { timeoutMs: 10_000 })).then((e) => ({ e, ms: Date.now() - lostAt }));
      const write = await waitFor('a fast NO_LEADER for a write', async () => {
        const e = await refusal(survivor.service.put({ key: enc('q'), value: enc('after') }, { timeoutMs: 500 })).catch(() => null);
        return e !== null && e.code === 'NO_LEADER' ? e : null;
      }, 5000);
      expect(Date.now() - lostAt).toBeLessThan(2000);
      expect(write.message).toMatch(/^etcdserver: no leader/);
      const earlyRead = await early;
      expect(earlyRead.e.code).toBe('NO_LEADER');
      expect(earlyRead.ms).toBeLessThan(2000);
      const read = await refusal(survivor.service.range({ key: enc('q') }));
      expect(read.code).toBe('NO_LEADER');
      const stale = await survivor.service.range({ key: enc('q'), serializable: true });
      expect(stale.stale).toBe(true);
      expect(stale.result.kvs.map((kv) => dec(kv.value))).toEqual(['before']);
      const health = await fetch(`${survivor.clientUrls[0]}/health`);
      expect(health.status).toBe(503);
      expect((await survivor.service.status()).result.errors[0]).toMatch(/^etcdserver: no leader/);
    });
  }
});
