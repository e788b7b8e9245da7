// Crash safety of snapshot installs on real files and real LevelDB: a child process receives
// snapshots the way a follower does (raw file bytes streamed into a temp file in chunks, fsync,
// verify, rename, then ONE log batch that records the snapshot and resets the log) in a loop, and
// is killed with SIGKILL mid-install, several times over. After every kill the node's storage
// must open cleanly on either the last installed snapshot or the one in flight (never a record
// pointing at a missing or torn file), with no temp file left, and the next child restarts on it.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect, it } from 'vitest';
import { LevelLogStorage } from '../src/storage/leveldb.js';
import { SnapshotStore } from '../src/storage/snapshot.js';
import { childProcessHarness } from './child-process-helpers.js';

const KILL_ROUNDS = 6;

const CHILD = String.raw`
import { readFile } from 'node:fs/promises';
import { LevelLogStorage } from './storage/leveldb.js';
import { SnapshotStore } from './storage/snapshot.js';

const [dir] = process.argv.slice(2);
const storage = await LevelLogStorage.open(dir + '/log');
const store = await SnapshotStore.open(dir + '/snapshots');
const scratch = await SnapshotStore.open(dir + '/scratch');
const restored = await storage.load();
const current = restored.snapshot ?? null;
if (current !== null) await store.verify(current.index, current.term); // throws if torn or missing
process.stdout.write('ready ' + (current?.index ?? 0) + '\n');
let index = current?.index ?? 0;
const data = new Uint8Array(3 * 1024 * 1024);
for (let i = 0; i < data.length; i += 4096) data[i] = (i >> 12) & 0xff;
for (;;) {
  index += 100;
  const term = 1 + Math.floor(index / 1000);
  const meta = { index, term, config: { voters: ['n1', 'n2', 'n3'], learners: [] } };
  // What the leader would stream: a whole snapshot file's bytes.
  const made = await scratch.write({ meta, addresses: { n1: '127.0.0.1:1' } }, [data]);
  const bytes = await readFile(made.path);
  await scratch.prune(null);
  process.stdout.write('begin ' + index + '\n');
  const w = await store.begin('incoming-' + index);
  for (let off = 0; off < bytes.length; off += 256 * 1024) await w.write(off, bytes.subarray(off, Math.min(bytes.length, off + 256 * 1024)));
  await w.finish(meta);
  process.stdout.write('file ' + index + '\n');
  await storage.save({ snapshot: meta, hardState: { term, vote: null, commit: index }, entries: [{ index: index + 1, term, type: 'normal', data: Uint8Array.of(1) }] });
  process.stdout.write('installed ' + index + '\n');
  await store.prune(meta);
}
`;

// The child runs the real storage code, transpiled (types stripped) from src.
const harness = childProcessHarness({
  name: 'snapshot-crash',
  srcDirs: ['core', 'storage'],
  childSource: CHILD,
  dataDirPrefix: 'ballot-snapshot-crash-',
});

it('a SIGKILL mid-install leaves the last installed snapshot or the one in flight, verified, and no temp file', async () => {
  let lastRecovered = -1;
  const dataDir = harness.dataDir;
  let killsMidWrite = 0;
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const proc = harness.spawn([dataDir]);
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<void>((res) => proc.once('close', () => res()));
    let installed = -1;
    let inFlight: number | null = null;
    let phase = '';
    // Even rounds: kill while the temp file is being written; odd rounds: right after the rename,
    // before (or while) the log batch records it.
    const killOn = round % 2 === 0 ? 'begin' : 'file';
    const lines = createInterface({ input: proc.stdout! });
    const killPoint = new Promise<void>((res, rej) => {
      lines.on('line', (line) => {
        const [what, a] = line.split(' ');
        const n = Number(a);
        if (what === 'ready') {
          if (lastRecovered >= 0 && n !== lastRecovered) rej(new Error(`child restarted on ${n}, expected ${lastRecovered}`));
          installed = n;
        } else if (what === 'begin') {
          inFlight = n;
        } else if (what === 'installed') {
          installed = n;
          inFlight = null;
        }
        phase = what!;
        // The second snapshot of this run, so every run installs at least one.
        if (what === killOn && n >= (lastRecovered < 0 ? 0 : lastRecovered) + 200) res();
      });
      proc.once('exit', () => rej(new Error(`child exited early: ${stderr}`)));
    });
    await killPoint;
    if (killOn === 'begin') await new Promise((r) => setTimeout(r, 2 + round));
    process.kill(proc.pid!, 'SIGKILL');
    await closed;
    lines.close();
    if (phase === 'begin') killsMidWrite++;

    // Restart: temp files go, the log opens, and its snapshot's file verifies.
    const store = await SnapshotStore.open(join(dataDir, 'snapshots'));
    expect((await readdir(store.dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const storage = await LevelLogStorage.open(join(dataDir, 'log'));
    try {
      const restored = await storage.load();
      const s = restored.snapshot;
      expect(s, `round ${round}: a snapshot is recorded`).toBeDefined();
      const allowed = [installed, inFlight].filter((x): x is number => x !== null && x > 0);
      expect(allowed, `round ${round}: recorded snapshot ${s!.index} is neither the installed nor the in-flight one`).toContain(s!.index);
      const v = await store.verify(s!.index, s!.term);
      expect(v.header.meta.index).toBe(s!.index);
      // The log after it: the entry written in the same batch.
      expect(restored.entries.map((e) => e.index)).toEqual([s!.index + 1]);
      expect(restored.hardState.commit).toBe(s!.index);
      // What a node does at start: files the log does not record are dropped.
      await store.prune(s!);
      expect((await store.list()).every((f) => f.index <= s!.index)).toBe(true);
      lastRecovered = s!.index;
    } finally {
      await storage.close();
    }
  }
  if (killsMidWrite === 0) console.warn('storage-snapshot-crash: no kill landed during a temp-file write this run');
});
