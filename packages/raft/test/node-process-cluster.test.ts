// Real `ballot raft node` processes on loopback: election and commit over HTTP, redirects, the
// ws /client API, cluster-id checks, flag validation, and `ballot raft cluster` (npm start).
// Needs `npm run build` first (the root `npm test` does it).
import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';

import {
  clusterSpec,
  http,
  run,
  sigkill,
  sigterm,
  startNode,
  status,
  tempDir,
  waitFor,
  waitLeader,
  useProcessTestHooks,
  waitListening,
} from './node-process-helpers.js';

useProcessTestHooks();

describe('raft node processes', () => {
  it('three processes elect a leader, commit via POST /propose, redirect from followers, and agree on the applied digest', async () => {
    const spec = await clusterSpec(3);
    const procs = spec.nodes.map((n) => startNode(spec, n));
    await Promise.all(procs.map(waitListening));
    const leader = await waitLeader(spec);

    const acks: { index: number; term: number }[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await http(leader.port, 'POST', '/propose', `entry-${i}`);
      expect(r.status).toBe(200);
      acks.push(r.body as { index: number; term: number });
    }
    expect(acks.map((a) => a.index)).toEqual([...acks.map((a) => a.index)].sort((a, b) => a - b));

    // A follower does not forward: 421 NOT_LEADER with the leader's id and client address.
    const follower = spec.nodes.find((n) => n !== leader)!;
    await waitFor('the follower to know the leader', async () => (await status(follower.port))?.leader === leader.id);
    const redirect = await http(follower.port, 'POST', '/propose', 'via follower');
    expect(redirect.status).toBe(421);
    expect(redirect.body).toMatchObject({ code: 'NOT_LEADER', leader: leader.id, leaderAddress: `127.0.0.1:${leader.port}` });

    // A linearizable read at a follower covers every acknowledged write.
    const read = await http(follower.port, 'GET', '/read');
    expect(read.status).toBe(200);
    expect(read.body.index as number).toBeGreaterThanOrEqual(acks[4]!.index);

    // Same applied index → same digest (state machine safety, §5.4.3).
    const statuses = await waitFor('every node to apply the last entry', async () => {
      const all = await Promise.all(spec.nodes.map((n) => status(n.port)));
      const target = Math.max(...all.map((s) => s?.commit ?? 0));
      return all.every((s) => s !== null && s.applied === target) ? all : null;
    });
    expect(new Set(statuses.map((s) => s!.appliedDigest)).size).toBe(1);
    expect(statuses.find((s) => s!.role === 'leader')!.progress).toHaveProperty(follower.id);

    // Unknown paths and methods are answered, not hung.
    expect((await http(leader.port, 'GET', '/nope')).status).toBe(404);
    expect((await http(leader.port, 'GET', '/propose')).status).toBe(405);

    // SIGTERM is a graceful stop: exit code 0.
    expect(await Promise.all(procs.map(sigterm))).toEqual([0, 0, 0]);
  });

  it('`raft put` follows the redirect; without a quorum, writes and reads fail fast with 503 instead of hanging', async () => {
    const spec = await clusterSpec(3);
    const procs = spec.nodes.map((n) => startNode(spec, n));
    await Promise.all(procs.map(waitListening));
    const leader = await waitLeader(spec);
    const follower = spec.nodes.find((n) => n !== leader)!;
    await waitFor('the follower to know the leader', async () => (await status(follower.port))?.leader === leader.id);
    const put = run(['raft', 'put', '--endpoint', `127.0.0.1:${follower.port}`, 'hello via the CLI']);
    expect(await put.exited).toBe(0);
    expect(put.stdout).toMatch(new RegExp(`committed at index \\d+, term \\d+ \\(leader 127.0.0.1:${leader.port}\\)`));
    const st = run(['raft', 'status', '--endpoint', `127.0.0.1:${leader.port}`, '--json']);
    expect(await st.exited).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ id: leader.id, role: 'leader' });

    // Kill both followers: the leader can no longer reach a quorum.
    await Promise.all(spec.nodes.map((n, i) => (n === leader ? null : sigkill(procs[i]!))));
    // Deadlines of 30 s: a 504 TIMEOUT would mean the request hung until its deadline.
    const [write, read] = await Promise.all([
      http(leader.port, 'POST', '/propose?timeoutMs=30000', 'no quorum', 40_000),
      http(leader.port, 'GET', '/read?timeoutMs=30000', undefined, 40_000),
    ]);
    expect(write.status).toBe(503);
    expect(['LEADERSHIP_LOST', 'NO_LEADER']).toContain(write.body.code);
    expect(read.status).toBe(503);
    expect(['LEADERSHIP_LOST', 'NO_LEADER']).toContain(read.body.code);
    // CheckQuorum (§6.2) has deposed it; later requests are refused at once.
    await waitFor('the leader to step down', async () => (await status(leader.port))?.role !== 'leader');
    const later = await http(leader.port, 'POST', '/propose?timeoutMs=30000', 'still no quorum', 40_000);
    expect(later.status).toBe(503);
    expect(later.body.code).toBe('NO_LEADER');
  });

  it('ws /client answers pipelined msgpack proposals and reads, and closes a connection on a malformed frame', async () => {
    const spec = await clusterSpec(1);
    const p = startNode(spec, spec.nodes[0]!);
    await waitListening(p);
    await waitLeader(spec);
    const packr = new Packr({ useRecords: false });
    const ws = new WebSocket(`ws://127.0.0.1:${spec.nodes[0]!.port}/client`);
    await new Promise((res, rej) => ws.once('open', res).once('error', rej));
    const replies = new Map<number, Record<string, unknown>>();
    ws.on('message', (b: Buffer) => {
      const r = packr.unpack(b) as Record<string, unknown>;
      replies.set(r.id as number, r);
    });
    for (let id = 1; id <= 50; id++) ws.send(packr.pack({ id, op: 'propose', data: Buffer.from(`c${id}`) }));
    ws.send(packr.pack({ id: 51, op: 'read' }));
    await waitFor('51 replies', () => replies.size === 51);
    const indexes = Array.from({ length: 50 }, (_, i) => replies.get(i + 1)!);
    for (const r of indexes) expect(r).toMatchObject({ ok: true });
    expect(new Set(indexes.map((r) => r.index)).size).toBe(50);
    expect(replies.get(51)).toMatchObject({ ok: true });

    const closed = new Promise<number>((res) => ws.once('close', (code) => res(code)));
    ws.send(Buffer.from([0xc1, 0xff, 0x00])); // not a request
    expect(await closed).toBe(1007);
    // The node is still serving.
    expect((await http(spec.nodes[0]!.port, 'POST', '/propose', 'still here')).status).toBe(200);
  });

  it('refuses a peer with another --cluster-id, and a data dir that belongs to another cluster', async () => {
    const spec = await clusterSpec(3);
    const [n1, n2, n3] = spec.nodes as [typeof spec.nodes[0], typeof spec.nodes[0], typeof spec.nodes[0]];
    const p1 = startNode(spec, n1);
    const p2 = startNode(spec, n2);
    const p3 = startNode(spec, n3, ['--cluster-id', 'other']);
    await Promise.all([p1, p2, p3].map(waitListening));
    const leader = await waitLeader(spec, [n1, n2]);
    expect((await http(leader.port, 'POST', '/propose', 'two of three')).status).toBe(200);
    await waitFor('a refused handshake to be counted', async () => {
      const all = await Promise.all(spec.nodes.map((n) => status(n.port)));
      return all.some((s) => (s?.transport.rejectedConnections ?? 0) > 0);
    });
    const s3 = await status(n3.port);
    expect(s3?.leader).toBeNull();
    expect(s3?.applied).toBe(0);
    const sl = await status(leader.port);
    expect(sl?.progress.n3?.match ?? 0).toBe(0);

    // n1's data dir is cluster "ballot": starting it as cluster "other" is refused (exit 4).
    expect(await sigterm(p1)).toBe(0);
    const wrong = startNode(spec, n1, ['--cluster-id', 'other']);
    expect(await wrong.exited).toBe(4);
    expect(wrong.stderr).toMatch(/belongs to node n1 of cluster ballot/);
    expect(wrong.stdout).not.toContain('"msg":"listening"');
  });

  it('rejects bad flags with exit code 2 and a message naming the flag', async () => {
    const dir = tempDir();
    const cases: { args: string[]; message: RegExp }[] = [
      { args: ['--id', 'n4', '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002', '--listen', '127.0.0.1:7001'], message: /--id: "n4" is not in --peers/ },
      { args: ['--id', 'n1', '--peers', 'n1=127.0.0.1', '--listen', '127.0.0.1:7001'], message: /--peers \(n1\): expected host:port/ },
      { args: ['--id', 'n1', '--peers', 'n1:127.0.0.1:7001', '--listen', '127.0.0.1:7001'], message: /--peers: expected id=host:port/ },
      { args: ['--id', 'n1', '--peers', 'n1=127.0.0.1:7001,n1=127.0.0.1:7002', '--listen', '127.0.0.1:7001'], message: /appears twice/ },
      { args: ['--id', 'n1', '--peers', 'n1=127.0.0.1:7001', '--listen', '127.0.0.1:99999'], message: /--listen: port 99999 is out of range/ },
      { args: ['--id', 'n1', '--peers', 'n1=127.0.0.1:7001', '--listen', '127.0.0.1:7001', '--tick-ms', 'fast'], message: /--tick-ms: expected an integer/ },
      { args: ['--id', 'n1', '--peers', 'n1=127.0.0.1:7001', '--listen', '127.0.0.1:7001', '--heartbeat-ticks', '10'], message: /--heartbeat-ticks \(10\) must be smaller/ },
      { args: ['--id', 'n1', '--peers', 'n1=127.0.0.1:7001', '--listen', '127.0.0.1:7001', '--read-mode', 'stale'], message: /--read-mode/ },
      { args: ['--id', 'n1', '--peers', 'n1=127.0.0.1:7001'], message: /--listen/ },
    ];
    const procs = cases.map((c) => run(['raft', 'node', '--data-dir', dir, ...c.args]));
    const codes = await Promise.all(procs.map((p) => p.exited));
    cases.forEach((c, i) => {
      expect(codes[i], procs[i]!.stderr).toBe(2);
      expect(procs[i]!.stderr).toMatch(c.message);
    });
  });

  it('`raft cluster` (npm start) starts separate node processes, commits, and stops every child on SIGTERM', async () => {
    const dir = tempDir('ballot-cluster-');
    const p = run(['raft', 'cluster', '--nodes', '3', '--data-dir', dir, '--tick-ms', '20', '--interval-ms', '100']);
    await waitFor('the cluster to commit entries', () => {
      if (p.exitStatus !== null) throw new Error(`cluster exited early (${p.exitStatus}):\n${p.stdout}\n${p.stderr}`);
      return /leader=n\d@\d+ .*committed=[1-9]/.test(p.stdout);
    });
    const pids = [...p.stdout.matchAll(/ pid (\d+) /g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(3);
    expect(new Set(pids).size).toBe(3);
    expect(pids).not.toContain(p.pid);
    expect(await sigterm(p)).toBe(0);
    expect(p.stdout).toMatch(/stopped 3 nodes; \d+ entries committed/);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
