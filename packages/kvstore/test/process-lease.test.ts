// Lease expiry across a leader change, with real `ballot kv serve` processes: the leader that
// granted a lease dies before the lease's deadline; the new leader does not expire it because of
// the election (it extends every lease to a full TTL from its election, as etcd does), and then
// the lease still expires, through the log, on every member.
import { describe, expect, it } from 'vitest';
import { b64, leaderOf, memberIdOf, post, sigkill, startProcCluster, useProcessHooks, waitFor } from './process-helpers.js';

useProcessHooks();

describe('kv serve processes: leases across a leader change', () => {
  it('the new leader extends the lease, then the lease expires and its key is deleted everywhere', async () => {
    const { procs, logs, bases } = await startProcCluster(3, { heartbeatMs: 50, electionMs: 500 });
    const ids = await waitFor('every member answering', async () => Promise.all(bases.map((b) => memberIdOf(b))).catch(() => null), 20_000, logs);
    const leaderId = await waitFor('a leader', async () => {
      const ls = await Promise.all(bases.map((b) => leaderOf(b)));
      return ls[0] !== null && ls.every((l) => l === ls[0]) ? ls[0] : null;
    }, 20_000, logs);
    const oldIdx = ids.indexOf(leaderId);
    const rest = [0, 1, 2].filter((i) => i !== oldIdx);

    const ttlSec = 2;
    const grant = await post(bases[oldIdx]!, '/v3/lease/grant', { TTL: String(ttlSec) });
    expect(grant.status, JSON.stringify(grant.body)).toBe(200);
    const grantedAt = Date.now();
    const leaseId = String(grant.body['ID']);
    const put = await post(bases[oldIdx]!, '/v3/kv/put', { key: b64('leased'), value: b64('v'), lease: leaseId });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    // Every member has the key before the leader goes.
    for (const i of rest) {
      await waitFor('the key on a follower', async () => (await post(bases[i]!, '/v3/kv/range', { key: b64('leased'), serializable: true })).body['count'] === '1');
    }

    // The leader dies shortly before the lease's deadline; the new one is elected after it.
    const killAt = grantedAt + ttlSec * 1000 - 200;
    await new Promise((r) => setTimeout(r, Math.max(0, killAt - Date.now())));
    await sigkill(procs[oldIdx]!);
    const newLeader = await waitFor('a new leader', async () => {
      const ls = await Promise.all(rest.map((i) => leaderOf(bases[i]!)));
      return ls[0] !== null && ls[0] !== leaderId && ls.every((l) => l === ls[0]) ? ls[0] : null;
    }, 15_000, logs);
    const newIdx = ids.indexOf(newLeader);
    const electedSeenAt = Date.now();
    // The original deadline has passed; the lease lives on because the new leader extended it.
    expect(electedSeenAt).toBeGreaterThan(grantedAt + ttlSec * 1000);
    const ttl = await post(bases[newIdx]!, '/v3/lease/timetolive', { ID: leaseId, keys: true });
    expect(ttl.status, JSON.stringify(ttl.body)).toBe(200);
    expect(Number(ttl.body['TTL'])).toBeGreaterThan(0);
    expect(Number(ttl.body['grantedTTL'])).toBe(ttlSec);
    const still = await post(bases[newIdx]!, '/v3/kv/range', { key: b64('leased') });
    expect(still.body['count']).toBe('1');

    // ...and then it expires: revoked through the log, so the key is gone on every live member.
    for (const i of rest) {
      await waitFor('the leased key deleted', async () => (await post(bases[i]!, '/v3/kv/range', { key: b64('leased'), serializable: true })).body['count'] === undefined, 15_000, logs);
    }
    const gone = await post(bases[newIdx]!, '/v3/lease/timetolive', { ID: leaseId });
    expect(Number(gone.body['TTL'])).toBe(-1);
  });
});
