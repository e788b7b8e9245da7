// `ballot kv cluster` (what `npm start` runs) as real processes: it starts N `kv serve` members on
// free ports, says when each is ready, stops them all on SIGTERM (exit 0, no orphan), names a
// member that dies with its last log lines and stops the rest (exit 1); usage errors exit 2.
// Needs `npm run build` first (the root `npm test` does it).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { ballot, cleanup, isAlive, startKvCluster, waitGone } from './cli-helpers.js';

afterEach(cleanup);

describe('ballot kv cluster', () => {
  it('starts 3 member processes with data under the named folder, and SIGTERM stops every one (exit 0, no orphan PID)', async () => {
    const c = await startKvCluster(3);
    expect(c.endpoints).toHaveLength(3);
    expect(c.memberPids).toHaveLength(3);
    const out = c.proc.output();
    expect(out).toContain(`data and logs in ${c.dataDir}`);
    expect(out).toMatch(/m1 ready at http:\/\/127\.0\.0\.1:\d+ \(\d\/3\)/);
    expect(out).toContain('npx ballot kv put hello world --endpoints');
    expect(out).toMatch(/leader: m[123] \(member id [0-9a-f]{16}, term \d+\)/);
    for (const e of c.endpoints) expect((await fetch(`${e}/health`)).status).toBe(200);
    for (const m of ['m1', 'm2', 'm3']) expect(existsSync(join(c.dataDir, m))).toBe(true);
    expect(c.memberPids.every(isAlive)).toBe(true);

    const put = await ballot(['kv', 'put', 'survives', 'restart', '--endpoints', c.endpoints.join(',')]);
    expect(put.stdout).toBe('OK\n');

    c.proc.child.kill('SIGTERM');
    expect(await c.proc.exited).toBe(0);
    expect(c.proc.output()).toMatch(/SIGTERM: stopping 3 members/);
    expect(c.proc.output()).toMatch(/stopped 3 members/);
    expect(await waitGone(c.memberPids, 2000)).toBe(true);

    // Another member count on the same folder is refused; the same one restarts on the same URLs
    // (member ids derive from peer URLs) with the data kept.
    const other = await ballot(['kv', 'cluster', '--members', '1', '--data-dir', c.dataDir]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/holds a 3-member cluster; run with --members 3/);
    const again = await startKvCluster(3, c.dataDir);
    expect(again.endpoints).toEqual(c.endpoints);
    expect(again.proc.output()).toMatch(/restarting 3 member processes/);
    const get = await ballot(['kv', 'get', 'survives', '--endpoints', again.endpoints.join(',')]);
    expect(get.stdout).toBe('survives\nrestart\n');
    again.proc.child.kill('SIGTERM');
    expect(await again.proc.exited).toBe(0);
    expect(await waitGone(again.memberPids, 2000)).toBe(true);
  });

  it('names a member that dies, shows its last log lines, stops the others and exits 1', async () => {
    const c = await startKvCluster(3);
    process.kill(c.memberPids[1]!, 'SIGKILL');
    expect(await c.proc.exited).toBe(1);
    const out = c.proc.output();
    expect(out).toMatch(new RegExp(`member m2 \\(pid ${c.memberPids[1]}\\) killed by SIGKILL; its last log lines \\(.*m2\\.log\\):\\n  \\| `));
    expect(out).toContain('stopping the other members');
    expect(await waitGone(c.memberPids, 2000)).toBe(true);
  });

  it('refuses bad flags with exit code 2 and a message naming the flag, and reports failures with exit 1 and no stack trace', async () => {
    const bad = await ballot(['kv', 'cluster', '--members', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--members: 0 is out of range 1-9/);

    const noKey = await ballot(['kv', 'get']);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/missing required argument 'key'/);

    const format = await ballot(['kv', 'get', 'k', '-w', 'xml']);
    expect(format.code).toBe(2);
    expect(format.stderr).toMatch(/--write-out: expected one of simple, json, table, got "xml"/);

    const unknown = await ballot(['kv', 'put', 'k', 'v', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown option '--bogus'/);

    const rev = await ballot(['kv', 'get', 'k', '--rev', 'x']);
    expect(rev.code).toBe(2);
    expect(rev.stderr).toMatch(/--rev: expected a non-negative integer/);

    // Nothing listens on port 1: a failure, said in one line, no stack trace.
    const down = await ballot(['kv', 'put', 'k', 'v', '--endpoints', 'http://127.0.0.1:1', '--command-timeout', '1s']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^Error: .*127\.0\.0\.1:1/);
    expect(down.stderr).not.toMatch(/\n\s+at /);

    const txn = await ballot(['kv', 'txn', '--endpoints', 'http://127.0.0.1:1'], { stdin: 'value(a) = 1\n' });
    expect(txn.code).toBe(2);
    expect(txn.stderr).toMatch(/txn line 1: expected a compare/);
  });
});
