// Backup and restore as a user does it: `ballot kv snapshot save FILE` from a running member,
// `ballot kv snapshot restore FILE --data-dir D`, then a new 1-member `kv cluster` on D serves the
// same keys at the same revision (and takes new writes above it). Real processes, free ports.
// Needs `npm run build` first (the root `npm test` does it).
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { ballot, cleanup, startKvCluster, tempDir, type KvClusterHandle } from './cli-helpers.js';

afterEach(cleanup);

async function stop(c: KvClusterHandle): Promise<void> {
  c.proc.child.kill('SIGTERM');
  expect(await c.proc.exited).toBe(0);
}

async function ok(args: readonly string[]): Promise<string> {
  const r = await ballot(args);
  if (r.code !== 0) throw new Error(`ballot ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

describe('ballot kv snapshot', () => {
  it('save from a running member, restore into a new data dir, and a new 1-member cluster serves the same keys and revision', async () => {
    const first = await startKvCluster(3);
    const ep = ['--endpoints', first.endpoints.join(',')];
    // One txn writes 7 keys in one revision; then updates and a delete (several revisions).
    const puts = Array.from({ length: 7 }, (_, i) => `put snap/k${i} v${i}`).join('\n');
    const txn = await ballot(['kv', 'txn', ...ep], { stdin: `\n${puts}\n\n` });
    expect(txn.stdout).toMatch(/^SUCCESS\n/);
    await ok(['kv', 'put', 'snap/k0', 'again', ...ep]);
    await ok(['kv', 'put', 'snap/k1', 'again', ...ep]);
    await ok(['kv', 'del', 'snap/k6', ...ep]);
    const before = JSON.parse(await ok(['kv', 'get', 'snap/', '--prefix', '-w', 'json', ...ep])) as { header: { revision: number }; kvs: unknown[] };
    expect(before.kvs).toHaveLength(6);

    const dir = tempDir('ballot-cli-snap-');
    const file = join(dir, 'backup.db');
    // From a follower as well as a leader: any member's store is the same image.
    expect(await ok(['kv', 'snapshot', 'save', file, '--endpoints', first.endpoints[1]!])).toBe(`Snapshot saved at ${file}\n`);
    expect(statSync(file).size).toBeGreaterThan(0);
    expect(existsSync(`${file}.part`)).toBe(false);
    await stop(first);

    const newRoot = join(dir, 'restored');
    const restored = await ok(['kv', 'snapshot', 'restore', file, '--data-dir', join(newRoot, 'm1'), '--name', 'm1']);
    expect(restored).toContain(`(revision ${before.header.revision})`);

    // Restoring over a data dir that is in use is refused (usage: exit 2).
    const again = await ballot(['kv', 'snapshot', 'restore', file, '--data-dir', join(newRoot, 'm1')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists and is not empty/);

    const second = await startKvCluster(1, newRoot);
    const ep2 = ['--endpoints', second.endpoints.join(',')];
    const after = JSON.parse(await ok(['kv', 'get', 'snap/', '--prefix', '-w', 'json', ...ep2])) as { header: { revision: number }; kvs: unknown[] };
    expect(after.kvs).toEqual(before.kvs);
    expect(after.header.revision).toBe(before.header.revision);
    // The new cluster continues from the restored revision.
    const put = JSON.parse(await ok(['kv', 'put', 'snap/new', 'x', '-w', 'json', ...ep2])) as { header: { revision: number } };
    expect(put.header.revision).toBe(before.header.revision + 1);
    await stop(second);
  });

  it('refuses a file that is not a backup (exit 1, clear message) and a missing --data-dir (exit 2)', async () => {
    const dir = tempDir('ballot-cli-snap-bad-');
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'this is not a Ballot backup');
    const bad = await ballot(['kv', 'snapshot', 'restore', junk, '--data-dir', join(dir, 'd')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^Error: /);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    const missing = await ballot(['kv', 'snapshot', 'restore', junk]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--data-dir/);
  });
});
