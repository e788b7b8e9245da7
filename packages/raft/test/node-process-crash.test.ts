// Crash safety of real node processes: SIGKILL under load loses no acknowledged entry, and a
// corrupted LevelDB record makes the node refuse to start, naming the record.
// Needs `npm run build` first (the root `npm test` does it).
//
// CI runs this file next to the rest of the suite on 2 cores, where an event loop may stall for
// longer than the 200-400 ms election timeout: elections then happen at any moment, and every
// proposal in flight at a deposed leader ends LEADERSHIP_LOST / TIMEOUT (outcome unknown, never
// counted as acknowledged). So the test waits for conditions (a leader, acknowledged writes,
// convergence) with generous bounded deadlines instead of assuming how long they take, and what
// it asserts does not depend on timing: every acknowledged entry is on every node's disk at its
// index and term. On a failure it prints each node's log tail and the load's outcome counts.
import { afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
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

/** Generous, bounded waits: a busy 2-core machine may stall the nodes for seconds at a time. */
const PHASE_MS = 30_000;
const TEST_MS = 150_000;

/** Every process a test started (restarts too), so a failure can show what each node logged. */
let started: Proc[] = [];
function track<T extends Proc | Proc[]>(p: T): T {
  started.push(...(Array.isArray(p) ? p : [p]));
  return p;
}
function dumpOnFailure(extra: () => string = () => ''): void {
  started = [];
  onTestFailed(() => {
    const tail = (s: string, n: number): string => s.split('\n').slice(-n).join('\n');
    const parts = started.map((p) => `--- pid ${p.pid} exit ${String(p.exitStatus)}\nstderr: ${tail(p.stderr, 20)}\nstdout (last lines):\n${tail(p.stdout, 40)}`);
    process.stderr.write(`${extra()}\n${parts.join('\n')}\n`);
  });
}

/**
 * SIGTERM must be a clean exit (0); on anything else, say what the node logged last. Exit 13 is
 * Node's "unsettled top-level await": the graceful stop awaited an event that never came and the
 * event loop ran out of handles (seen under load before 4b47dbf bounded the wait for the HTTP
 * server's 'close'; it made this test fail at this step, with no acknowledged entry lost).
 */
async function expectCleanStop(p: Proc): Promise<void> {
  const code = await sigterm(p);
  expect(code, `exit status of pid ${p.pid} after SIGTERM; stderr: ${p.stderr.slice(-2000)}\nstdout: ${p.stdout.slice(-3000)}`).toBe(0);
}

interface Ack {
  readonly index: number;
  readonly term: number;
  readonly data: string;
}

/**
 * Concurrent proposers that follow redirects and move on from dead nodes; only 200s are recorded
 * as acknowledged. Every other outcome (a redirect, LEADERSHIP_LOST, TIMEOUT, a refused or cut
 * connection, the client's own timeout) may or may not have committed and is only counted.
 */
function startLoad(spec: ClusterSpec, workers: number): { acks: Ack[]; outcomes: Map<string, number>; stop: () => Promise<void> } {
  const acks: Ack[] = [];
  const outcomes = new Map<string, number>();
  const count = (k: string): void => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
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
        count(r.status === 200 ? '200' : `${r.status} ${String(r.body.code)}`);
        if (r.status === 200) acks.push({ index: r.body.index as number, term: r.body.term as number, data });
        else if (r.status === 421 && typeof r.body.leaderAddress === 'string') target = byAddress.get(r.body.leaderAddress) ?? next();
        else {
          target = next();
          await new Promise((res) => setTimeout(res, 20));
        }
      } catch (e) {
        count(`no answer: ${(e as Error).name}`);
        target = next();
        await new Promise((res) => setTimeout(res, 20));
      }
    }
  });
  return {
    acks,
    outcomes,
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
  }, PHASE_MS);
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

/** The first of `among` whose /status says it leads, or null (no deadline of its own: the caller's waitFor bounds it). */
async function leaderAmong(among: readonly NodeSpec[]): Promise<NodeSpec | null> {
  const all = await Promise.all(among.map((n) => status(n.port)));
  const i = all.findIndex((s) => s?.role === 'leader');
  return i < 0 ? null : among[i]!;
}

async function startAll(spec: ClusterSpec): Promise<Proc[]> {
  const procs = track(spec.nodes.map((n) => startNode(spec, n)));
  await Promise.all(procs.map(waitListening));
  return procs;
}

describe('raft node processes under SIGKILL and corruption', () => {
  it('SIGKILL the leader mid-load: every acknowledged entry survives at its index after restart', async () => {
    let load: ReturnType<typeof startLoad> | null = null;
    dumpOnFailure(() => `load outcomes: ${JSON.stringify([...(load?.outcomes ?? [])])}, acknowledged: ${load?.acks.length ?? 0}`);
    const spec = await clusterSpec(3);
    const procs = await startAll(spec);
    const leader = await waitFor('a leader', () => leaderAmong(spec.nodes), PHASE_MS);
    load = startLoad(spec, 8);
    const acks = load.acks;
    await waitFor('some acknowledged writes', () => acks.length >= 50, PHASE_MS);
    // (Under load leadership may have moved since: then a follower dies here, which the
    // assertions below must survive just as well.)
    const li = spec.nodes.indexOf(leader);
    await sigkill(procs[li]!);
    const acksAtKill = acks.length;
    // The others elect a new leader and the load continues there.
    await waitFor('a leader among the survivors', () => leaderAmong(spec.nodes.filter((n) => n !== leader)), PHASE_MS);
    await waitFor('writes acknowledged by the new leader', () => acks.length >= acksAtKill + 50, PHASE_MS);
    procs[li] = track(startNode(spec, leader));
    await waitListening(procs[li]!);
    await waitFor('more writes with the old leader back', () => acks.length >= acksAtKill + 100, PHASE_MS);
    await load.stop();
    const maxIndex = Math.max(...acks.map((a) => a.index));
    // Two acknowledgements at one index would mean two different entries committed there.
    expect(new Set(acks.map((a) => a.index)).size).toBe(acks.length);
    await waitConverged(spec, maxIndex);
    for (const p of procs) await expectCleanStop(p);
    await checkAckedOnDisk(spec, acks);
  }, TEST_MS);

  it('SIGKILL all three nodes mid-load: after a restart every acknowledged entry is there', async () => {
    let load: ReturnType<typeof startLoad> | null = null;
    dumpOnFailure(() => `load outcomes: ${JSON.stringify([...(load?.outcomes ?? [])])}, acknowledged: ${load?.acks.length ?? 0}`);
    const spec = await clusterSpec(3);
    let procs = await startAll(spec);
    await waitFor('a leader', () => leaderAmong(spec.nodes), PHASE_MS);
    load = startLoad(spec, 8);
    const running = load.acks;
    await waitFor('some acknowledged writes', () => running.length >= 100, PHASE_MS);
    await Promise.all(procs.map(sigkill));
    await load.stop();
    const acks = [...load.acks];
    procs = await startAll(spec);
    // The new leader's no-op commits its whole log (§5.4.2); one more write shows it is serving.
    // Leadership may still move right after the restart (and again under load): ask whichever
    // node leads now, until one acknowledges. A write whose outcome is unknown (LEADERSHIP_LOST,
    // TIMEOUT) is simply tried again; only the acknowledged one is used below.
    const after = await waitFor('a write after the restart', async () => {
      const leader = await leaderAmong(spec.nodes);
      if (leader === null) return null;
      const r = await http(leader.port, 'POST', '/propose?timeoutMs=3000', 'after restart', 5000).catch(() => null);
      return r?.status === 200 ? r : null;
    }, PHASE_MS);
    await waitConverged(spec, Math.max(after.body.index as number, ...acks.map((a) => a.index)));
    for (const p of procs) await expectCleanStop(p);
    await checkAckedOnDisk(spec, acks);
  }, TEST_MS);

  it('a corrupted record makes the node refuse to start (exit 3), naming the record', async () => {
    dumpOnFailure();
    const spec = await clusterSpec(1);
    const node = spec.nodes[0]!;
    const p = track(startNode(spec, node));
    await waitListening(p);
    await waitLeader(spec);
    for (let i = 0; i < 3; i++) expect((await http(node.port, 'POST', '/propose', `v${i}`)).status).toBe(200);
    await expectCleanStop(p);

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

    const again = track(startNode(spec, node));
    expect(await again.exited).toBe(3);
    expect(again.stderr).toMatch(/refusing to start/i);
    expect(again.stderr).toMatch(/index 2\b/);
    expect(again.stdout).not.toContain('"msg":"listening"');
  });
});
