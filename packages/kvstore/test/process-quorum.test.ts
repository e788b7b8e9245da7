// Three real `ballot kv serve` processes with etcd's default timing (heartbeat 100 ms, election
// 1000 ms): a write on a follower is forwarded to the leader; losing the quorum (2 of 3 members
// SIGKILLed by PID) gets writes and linearizable reads refused with 503 "etcdserver: no leader"
// within 2 s, while serializable reads still answer, flagged; after the two restart, every
// acknowledged write is there, and a restarted member did not re-apply its whole log.
import { describe, expect, it } from 'vitest';
import { b64, leaderOf, memberIdOf, post, sigkill, spawnMember, startProcCluster, unb64, useProcessHooks, waitFor } from './process-helpers.js';

useProcessHooks();

describe('kv serve processes: quorum loss and recovery', () => {
  it('forwards, refuses fast without a quorum, and loses no acknowledged write across the restart', async () => {
    const { members, procs, logs, bases } = await startProcCluster(3, { heartbeatMs: 100, electionMs: 1000 });
    const ids = await waitFor('every member answering', async () => {
      try {
        return await Promise.all(bases.map((b) => memberIdOf(b)));
      } catch {
        return null;
      }
    }, 20_000, logs);
    const leaderId = await waitFor('a leader every member agrees on', async () => {
      const ls = await Promise.all(bases.map((b) => leaderOf(b)));
      return ls[0] !== null && ls.every((l) => l === ls[0]) ? ls[0] : null;
    }, 20_000, logs);
    const leaderIdx = ids.indexOf(leaderId);
    expect(leaderIdx).toBeGreaterThanOrEqual(0);
    const followerIdx = [0, 1, 2].filter((i) => i !== leaderIdx);
    const [survivor, other] = followerIdx as [number, number];

    // A write on a follower is forwarded to the leader and answered as if local.
    const fw = await post(bases[survivor]!, '/v3/kv/put', { key: b64('fw'), value: b64('from-follower') });
    expect(fw.status, JSON.stringify(fw.body)).toBe(200);
    expect(String((fw.body['header'] as Record<string, unknown>)['member_id'])).toBe(ids[survivor]);
    const seen = await post(bases[other]!, '/v3/kv/range', { key: b64('fw') });
    // A linearizable read after the acknowledged write: it must answer, and see the write.
    expect(seen.status, JSON.stringify(seen.body)).toBe(200);
    expect(seen.body['kvs'], JSON.stringify(seen.body)).toHaveLength(1);
    expect(unb64((seen.body['kvs'] as { value: string }[])[0]!.value)).toBe('from-follower');

    // Acknowledged writes, spread over every member (followers forward).
    const acked: string[] = [];
    for (let i = 0; i < 60; i++) {
      const key = `ack/${String(i).padStart(3, '0')}`;
      const r = await post(bases[i % 3]!, '/v3/kv/put', { key: b64(key), value: b64(`v${i}`) });
      if (r.status === 200) acked.push(key);
    }
    expect(acked.length).toBe(60);
    // The member killed below as a follower has applied every write (a serializable read there sees
    // the last one), and its write-behind (sealed within ms of an apply) has had time to flush, so
    // the restart below can show that it does not replay them.
    const last = acked[acked.length - 1]!;
    await waitFor('the last write applied on the follower that will be killed', async () => {
      const r = await post(bases[other]!, '/v3/kv/range', { key: b64(last), serializable: true }).catch(() => null);
      return r !== null && r.status === 200 && r.body['count'] === '1' ? true : null;
    }, 10_000, logs);
    await new Promise((resolve) => setTimeout(resolve, 300));

    // Lose the quorum: the leader and one follower die; the survivor is a follower (the slow case).
    await Promise.all([sigkill(procs[leaderIdx]!), sigkill(procs[other]!)]);
    const lostAt = Date.now();
    const refused = await waitFor('503 for a write on the survivor', async () => {
      const r = await post(bases[survivor]!, '/v3/kv/put', { key: b64('after'), value: b64('x') }, 3000).catch(() => null);
      if (r !== null && r.status === 200) acked.push('after'); // acknowledged before the survivor noticed: must survive too
      return r !== null && r.status === 503 ? r : null;
    }, 10_000, logs);
    const refusedAfterMs = Date.now() - lostAt;
    console.log(`quorum loss: first 503 on the surviving follower ${refusedAfterMs} ms after the kill`);
    expect(refusedAfterMs).toBeLessThan(2000);
    expect(String(refused.body['message'])).toMatch(/^etcdserver: no leader/);
    expect(refused.body['code']).toBe(14);
    const lin = await post(bases[survivor]!, '/v3/kv/range', { key: b64('fw') }, 3000);
    expect(lin.status).toBe(503);
    expect(String(lin.body['message'])).toMatch(/^etcdserver: no leader/);
    const ser = await post(bases[survivor]!, '/v3/kv/range', { key: b64('fw'), serializable: true }, 3000);
    expect(ser.status).toBe(200);
    expect(ser.headers.get('ballot-read-consistency')).toBe('serializable');
    expect(unb64((ser.body['kvs'] as { value: string }[])[0]!.value)).toBe('from-follower');
    expect((await fetch(`${bases[survivor]}/health`)).status).toBe(503);

    // Restart the two (same flags, same data): every acknowledged write is there.
    procs[leaderIdx] = spawnMember(members[leaderIdx]!.name, members[leaderIdx]!.args);
    procs[other] = spawnMember(members[other]!.name, members[other]!.args);
    await waitFor('a leader again', async () => {
      const ls = await Promise.all(bases.map((b) => leaderOf(b)));
      return ls[0] !== null && ls.every((l) => l === ls[0]);
    }, 20_000, logs);
    const all = await waitFor('a linearizable read after recovery', async () => {
      const r = await post(bases[leaderIdx]!, '/v3/kv/range', { key: b64('ack/'), range_end: b64('ack0'), keys_only: true }).catch(() => null);
      return r !== null && r.status === 200 ? r : null;
    }, 10_000, logs);
    const keys = ((all.body['kvs'] as { key: string }[] | undefined) ?? []).map((kv) => unb64(kv.key));
    for (const k of acked.filter((k) => k.startsWith('ack/'))) expect(keys).toContain(k);
    if (acked.includes('after')) {
      const a = await post(bases[leaderIdx]!, '/v3/kv/range', { key: b64('after') });
      expect(a.body['count']).toBe('1');
    }

    // A restarted member did not replay its whole log into the store: it had applied at least the
    // 60 writes, and re-applies at most what its write-behind had not flushed when it was killed.
    const metrics = await waitFor('metrics of a restarted member', async () => {
      const m = await fetch(`${bases[other]}/metrics`).then((r) => r.text()).catch(() => null);
      return m !== null && /kind="skipped"/.test(m) ? m : null;
    }, 10_000, logs);
    const skipped = Number(/ballot_kv_apply_entries_total\{[^}]*kind="skipped"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? '0');
    expect(skipped).toBeGreaterThan(0);
    const opened = procs[other]!.stdout.split('\n').find((l) => l.includes('"msg":"store opened"')) ?? '{}';
    const storeApplied = Number((JSON.parse(opened) as { storeAppliedIndex?: number }).storeAppliedIndex ?? -1);
    expect(storeApplied, opened).toBeGreaterThan(60);
  });
});
