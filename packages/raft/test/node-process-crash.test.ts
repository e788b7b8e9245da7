// Crash safety of real node processes: SIGKILL under load loses no acknowledged entry, and a
// corrupted LevelDB record makes the node refuse to start, naming the record.
// Needs `npm run build` first (the root `npm test` does it).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClassicLevel } from 'classic-level';

import { LevelLogStorage } from '../src/storage/leveldb.js';
import { entryKey } from '../src/storage/codec.js';
import {
  assertBuilt,
  clusterSpec,
  http,
  killAll,
  sigkill,
  sigterm,
  startNode,
  status,
  waitFor,
  waitLeader,
  waitListening,
  type ClusterSpec,
  type NodeSpec,
  type Proc,
} from './node-process-helpers.js';

beforeAll(() => assertBuilt());
afterEach(async () => {
  await killAll();
});

interface Ack {
  readonly index: number;
  readonly term: number;
  readonly data: string;
}

/** Concurrent proposers that follow redirects and move on from dead nodes; only 200s are recorded as acknowledged. */
function startLoad(spec: ClusterSpec, workers: number): { acks: Ack[]; stop: () => Promise<void> } {
  const acks: Ack[] = [];
  let stopped = false;
  const byAddress = new Map(spec.nodes.map((n) => [`127.0.0.1:${n.port}`, n]));
  const loops = Array.from({ length: workers }, async (_, w) => {
    let target: NodeSpec = spec.nodes[w % spec.nodes.length]!;
    let seq = 0;
    const next = (): NodeSpec => spec.nodes[(spec.nodes.indexOf(target) + 1) % spec.nodes.length]!;
    while (!stopped) {
      const data = `w${w}-${seq++}`;
      try {
        const r = await http(target.port, 'POST', '/propose?timeoutMs=2000', data, 3000);
        if (r.status === 200) acks.push({ index: r.body.index as number, term: r.body.term as number, data });
        else if (r.status === 421 && typeof r.body.leaderAddress === 'string') target = byAddress.get(r.body.leaderAddress) ?? next();
        else {
          target = next();
          await new Promise((res) => setTimeout(res, 20));
        }
      } catch {
        target = next();
        await new Promise((res) => setTimeout(res, 20));
      }
    }
  });
  return {
    acks,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Waits until every node applied at least `index` and all show the same applied digest at the same applied index. */
async function waitConverged(spec: ClusterSpec, index: number): Promise<void> {
  await waitFor(`every node to apply ${index} and agree`, async () => {
    const all = await Promise.all(spec.nodes.map((n) => status(n.port)));
    if (all.some((s) => s === null || s.applied < index)) return false;
    const applied = new Set(all.map((s) => s!.applied));
    const digests = new Set(all.map((s) => s!.appliedDigest));
    return applied.size === 1 && digests.size === 1;
  }, 20_000);
}

/** Reads every node's LevelDB offline (nodes stopped) and checks each acknowledged entry is there, at its index and term. */
async function checkAckedOnDisk(spec: ClusterSpec, acks: readonly Ack[]): Promise<void> {
  const logs: string[][] = [];
  for (const n of spec.nodes) {
    const storage = await LevelLogStorage.open(n.dataDir);
    const { entries, hardState } = await storage.load();
    await storage.close();
    for (const ack of acks) {
      expect(hardState.commit, `${n.id} commit`).toBeGreaterThanOrEqual(ack.index);
      const e = entries[ack.index - 1];
      expect(e, `${n.id} entry ${ack.index}`).toBeDefined();
      expect({ index: e!.index, term: e!.term, data: new TextDecoder().decode(e!.data) }).toEqual(ack);
    }
    logs.push(entries.slice(0, hardState.commit).map((e) => `${e.index}/${e.term}/${Buffer.from(e.data).toString('hex')}`));
  }
  // Log matching (§5.3): committed prefixes agree wherever both nodes have them.
  const shortest = Math.min(...logs.map((l) => l.length));
  for (const l of logs) expect(l.slice(0, shortest)).toEqual(logs[0]!.slice(0, shortest));
}

async function startAll(spec: ClusterSpec): Promise<Proc[]> {
  const procs = spec.nodes.map((n) => startNode(spec, n));
  await Promise.all(procs.map(waitListening));
  return procs;
}

describe('raft node processes under SIGKILL and corruption', () => {
  it('SIGKILL the leader mid-load: every acknowledged entry survives at its index after restart', async () => {
    const spec = await clusterSpec(3);
    const procs = await startAll(spec);
    const leader = await waitLeader(spec);
    const load = startLoad(spec, 8);
    await waitFor('some acknowledged writes', () => load.acks.length >= 50);
    const li = spec.nodes.indexOf(leader);
    await sigkill(procs[li]!);
    const acksAtKill = load.acks.length;
    // The others elect a new leader and the load continues there.
    await waitLeader(spec, spec.nodes.filter((n) => n !== leader));
    await waitFor('writes acknowledged by the new leader', () => load.acks.length >= acksAtKill + 50);
    procs[li] = startNode(spec, leader);
    await waitListening(procs[li]!);
    await waitFor('more writes with the old leader back', () => load.acks.length >= acksAtKill + 100);
    await load.stop();
    const maxIndex = Math.max(...load.acks.map((a) => a.index));
    expect(new Set(load.acks.map((a) => a.index)).size).toBe(load.acks.length);
    await waitConverged(spec, maxIndex);
    for (const p of procs) expect(await sigterm(p)).toBe(0);
    await checkAckedOnDisk(spec, load.acks);
  });

  it('SIGKILL all three nodes mid-load: after a restart every acknowledged entry is there', async () => {
    const spec = await clusterSpec(3);
    let procs = await startAll(spec);
    await waitLeader(spec);
    const load = startLoad(spec, 8);
    await waitFor('some acknowledged writes', () => load.acks.length >= 100);
    await Promise.all(procs.map(sigkill));
    await load.stop();
    const acks = [...load.acks];
    procs = await startAll(spec);
    // The new leader's no-op commits its whole log (§5.4.2); one more write shows it is serving.
    // (Leadership may still move right after the restart: retry until some leader takes it.)
    const after = await waitFor('a write after the restart', async () => {
      const leader = await waitLeader(spec);
      const r = await http(leader.port, 'POST', '/propose', 'after restart').catch(() => null);
      return r?.status === 200 ? r : null;
    });
    await waitConverged(spec, Math.max(after.body.index as number, ...acks.map((a) => a.index)));
    for (const p of procs) expect(await sigterm(p)).toBe(0);
    await checkAckedOnDisk(spec, acks);
  });

  it('a corrupted record makes the node refuse to start (exit 3), naming the record', async () => {
    const spec = await clusterSpec(1);
    const node = spec.nodes[0]!;
    const p = startNode(spec, node);
    await waitListening(p);
    await waitLeader(spec);
    for (let i = 0; i < 3; i++) expect((await http(node.port, 'POST', '/propose', `v${i}`)).status).toBe(200);
    expect(await sigterm(p)).toBe(0);

    // Flip one byte in the middle of entry 2's record, as a bad sector or torn write would.
    const db = new ClassicLevel<Buffer, Buffer>(node.dataDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const key = entryKey(2);
    const value = await db.get(key);
    expect(value).toBeDefined();
    const garbled = Buffer.from(value!);
    garbled[Math.floor(garbled.length / 2)]! ^= 0xff;
    await db.put(key, garbled);
    await db.close();

    const again = startNode(spec, node);
    expect(await again.exited).toBe(3);
    expect(again.stderr).toMatch(/refusing to start/i);
    expect(again.stderr).toMatch(/index 2\b/);
    expect(again.stdout).not.toContain('"msg":"listening"');
  });
});
