// A rolling restart of three `ballot kv serve` processes by SIGTERM (a leader hands leadership
// over first, thesis §3.10): each exits 0, comes back on its data, and no write acknowledged
// during the whole roll is lost.
import { describe, expect, it } from 'vitest';
import { b64, leaderOf, post, sigterm, spawnMember, startProcCluster, unb64, useProcessHooks, waitFor } from './process-helpers.js';

useProcessHooks();

describe('kv serve processes: rolling restart', () => {
  it('stops each member gracefully (exit 0), restarts it, and keeps every acknowledged write', async () => {
    const { members, procs, logs, bases } = await startProcCluster(3, { heartbeatMs: 50, electionMs: 500 });
    await waitFor('a leader', async () => {
      const ls = await Promise.all(bases.map((b) => leaderOf(b)));
      return ls[0] !== null && ls.every((l) => l === ls[0]);
    }, 20_000, logs);

    const acked: string[] = [];
    const errors = new Map<string, number>();
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const key = `roll/${String(i).padStart(5, '0')}`;
        const r = await post(bases[i % 3]!, '/v3/kv/put', { key: b64(key), value: b64('v') }, 5000).catch((e: Error) => ({ status: -1, body: { message: e.message } }));
        if (r.status === 200) acked.push(key);
        else errors.set(String(r.status), (errors.get(String(r.status)) ?? 0) + 1);
      }
    })();

    for (let i = 0; i < 3; i++) {
      const before = acked.length;
      await waitFor('writes flowing', () => acked.length >= before + 10, 15_000, logs);
      expect(await sigterm(procs[i]!)).toBe(0);
      procs[i] = spawnMember(members[i]!.name, members[i]!.args);
      await waitFor(`${members[i]!.name} healthy again`, async () => (await fetch(`${bases[i]}/health`).catch(() => null))?.status === 200, 20_000, logs);
    }
    const before = acked.length;
    await waitFor('writes flowing after the roll', () => acked.length >= before + 10, 15_000, logs);
    stop = true;
    await writer;

    const all = await post(bases[0]!, '/v3/kv/range', { key: b64('roll/'), range_end: b64('roll0'), keys_only: true });
    expect(all.status).toBe(200);
    const keys = new Set(((all.body['kvs'] as { key: string }[] | undefined) ?? []).map((kv) => unb64(kv.key)));
    const lost = acked.filter((k) => !keys.has(k));
    expect(lost, `errors by status: ${JSON.stringify([...errors])}`).toEqual([]);
    expect(acked.length).toBeGreaterThan(40);
  });
});
