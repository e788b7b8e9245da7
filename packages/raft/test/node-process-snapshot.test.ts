// Real `ballot raft node` processes: a node killed after compaction restarts from its snapshot
// (state machine restored, then the log after it re-applied) and agrees with the others; a node
// whose snapshot file was corrupted refuses to start (exit 3), naming the file.
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { assertBuilt, clusterSpec, http, killAll, sigkill, sigterm, startNode, status, waitFor, waitLeader, waitListening } from './node-process-helpers.js';

beforeAll(() => assertBuilt());
afterEach(async () => {
  await killAll();
});

interface Status3 {
  role: string;
  commit: number;
  applied: number;
  firstIndex: number;
  appliedDigest: string;
  snapshot: { index: number; term: number } | null;
}

const status3 = async (port: number): Promise<Status3 | null> => (await status(port)) as unknown as Status3 | null;
const COMPACT = ['--snapshot-entries', '30', '--snapshot-trailing-entries', '5'];

/**
 * Proposes through whichever node leads (an election may happen under load): follows redirects,
 * retries NO_LEADER. This test is about snapshots, not exactly-once writes: a proposal whose
 * outcome is unknown (LEADERSHIP_LOST when a busy CI machine brings a spurious election, TIMEOUT)
 * is retried, which at worst applies the same payload twice on every node (the digests still agree).
 */
const RETRYABLE = ['NOT_LEADER', 'NO_LEADER', 'LEADERSHIP_LOST', 'TIMEOUT'];
async function propose(ports: readonly number[], data: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let i = 0; ; i++) {
    const r = await http(ports[i % ports.length]!, 'POST', '/propose', data).catch(() => null);
    if (r?.status === 200) return;
    if (r !== null && !RETRYABLE.includes(String(r.body.code))) throw new Error(`propose failed: ${r.status} ${JSON.stringify(r.body)}`);
    if (Date.now() > deadline) throw new Error('no leader accepted the proposal in time');
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe('raft node processes: restart from a snapshot', () => {
  it('a SIGKILLed node restarts from its snapshot and converges; a corrupt snapshot file stops it with exit 3', async () => {
    const spec = await clusterSpec(3);
    const procs = spec.nodes.map((n) => startNode(spec, n, COMPACT));
    await Promise.all(procs.map(waitListening));
    const leader = await waitLeader(spec);
    const ports = spec.nodes.map((n) => n.port);
    for (let i = 0; i < 80; i++) await propose([leader.port, ...ports], `v${i}`);
    const victimIndex = spec.nodes.findIndex((n) => n !== leader);
    const victim = spec.nodes[victimIndex]!;
    await waitFor('the follower to compact', async () => {
      const s = await status3(victim.port);
      return s !== null && s.snapshot !== null && s.snapshot.index >= 30 && s.firstIndex > 1;
    });
    expect(await sigkill(procs[victimIndex]!)).toBe('SIGKILL');
    // Writes go on without it.
    const alive = ports.filter((p) => p !== victim.port);
    for (let i = 0; i < 10; i++) await propose(alive, `w${i}`);

    const again = startNode(spec, victim, COMPACT);
    await waitListening(again);
    expect(again.stdout).toMatch(/"msg":"log loaded and verified"/);
    const restarted = (await status3(victim.port))!;
    expect(restarted.snapshot!.index).toBeGreaterThanOrEqual(30); // restored from it, not replayed from 1
    const all = await waitFor('every node to apply the same prefix', async () => {
      const ss = await Promise.all(spec.nodes.map((n) => status3(n.port)));
      const target = Math.max(...ss.map((s) => s?.commit ?? 0));
      return ss.every((s) => s !== null && s.applied === target) ? (ss as Status3[]) : null;
    });
    expect(new Set(all.map((s) => s.appliedDigest)).size).toBe(1);

    // Corrupt the snapshot the log starts after (the newest file): the node must refuse to start.
    expect(await sigterm(again)).toBe(0);
    const dir = join(victim.dataDir, 'snapshots');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.snap')).sort();
    const newest = join(dir, files[files.length - 1]!);
    const bytes = await readFile(newest);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x55;
    await writeFile(newest, bytes);
    const refused = startNode(spec, victim, COMPACT);
    expect(await refused.exited).toBe(3);
    expect(refused.stderr).toContain('corrupt snapshot file');
    expect(refused.stderr).toContain(newest);
  });
});
