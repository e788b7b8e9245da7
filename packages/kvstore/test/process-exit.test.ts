// `ballot kv serve` as a process: the "listening" line, exit codes like `ballot raft node`
// (2: bad flags, 0: SIGTERM, 4: a data dir that belongs to another member).
import { describe, expect, it } from 'vitest';
import { clusterArgs, post, b64, sigterm, spawnMember, tail, useProcessHooks, waitFor } from './process-helpers.js';
import { freePorts } from './server-helpers.js';

useProcessHooks();

describe('kv serve process lifecycle', () => {
  it('exits 2 naming the flag on bad flags', async () => {
    const p = spawnMember('bad', ['--heartbeat-interval', '300', '--election-timeout', '1000']);
    expect(await p.exited).toBe(2);
    expect(p.stderr).toMatch(/--election-timeout.*5 times --heartbeat-interval/);
  });

  it('logs one "listening" line, serves, stops with 0 on SIGTERM, and refuses (4) a data dir of another member', async () => {
    const [m] = await clusterArgs(1, { heartbeatMs: 20, electionMs: 200 });
    const p = spawnMember(m!.name, m!.args);
    const line = await waitFor('the listening line', () => p.stdout.split('\n').find((l) => l.includes('"msg":"listening"')), 20_000, () => tail(p));
    const listening = JSON.parse(line) as { clientUrls: string[]; peerUrls: string[]; memberId: string; clusterId: string };
    expect(listening.clientUrls).toEqual([m!.clientUrl]);
    expect(listening.peerUrls).toEqual([m!.peerUrl]);
    expect(listening.memberId).toMatch(/^[0-9a-f]{16}$/);
    await waitFor('a write', async () => (await post(m!.clientUrl, '/v3/kv/put', { key: b64('k'), value: b64('v') }).catch(() => null))?.status === 200, 10_000, () => tail(p));
    expect(await sigterm(p)).toBe(0);
    expect(p.stdout).toMatch(/"msg":"stopped"/);

    // Same data dir, another member's peer URL (so another member id): refused with 4.
    const [port] = await freePorts(1);
    const other = `http://127.0.0.1:${port}`;
    const args = m!.args.map((a) => (a === m!.peerUrl ? other : a.replace(`=${m!.peerUrl}`, `=${other}`)));
    const q = spawnMember('wrong', args);
    expect(await q.exited).toBe(4);
    expect(q.stderr).toMatch(/belongs to member/);
  });
});
