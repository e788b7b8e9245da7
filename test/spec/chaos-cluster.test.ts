// ChaosCluster: a real 3-member kv serve cluster behind the proxy network. It starts and agrees on a leader, takes
// writes, keeps a killed member's data across a restart (same data dir, log appended with a marker), pauses and
// resumes a member by SIGSTOP/SIGCONT, changes a member's clock through /debug/clock, and stop() leaves no process
// behind (every PID it ever started is gone).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { ChaosCluster, defaultBin, exitCause } from '../src/chaos/cluster.js';
import { useHeldCluster } from './chaos-cluster-helpers.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: unknown): string => Buffer.from(String(s ?? ''), 'base64').toString();

const held = useHeldCluster();

async function post(base: string, path: string, body: unknown, timeoutMs = 3000): Promise<{ status: number; body: Record<string, unknown> } | null> {
  try {
    const r = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    return { status: r.status, body: JSON.parse(await r.text()) as Record<string, unknown> };
  } catch {
    return null;
  }
}

async function eventually<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number, context: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return procState(pid) !== 'Z'; // an exited child of a dead parent, waiting to be reaped, is gone
}

/** The process state letter from /proc (T = stopped), or null off Linux. */
function procState(pid: number): string | null {
  try {
    return /\) (\S) /.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

describe('ChaosCluster (real kv serve processes behind the proxy network)', () => {
  it('starts, takes writes, survives kill + restart with its data, pauses, sets clocks, and stops every PID', async () => {
    expect(existsSync(defaultBin()), `${defaultBin()} is missing: run npm run build`).toBe(true);
    const root = (held.root = mkdtempSync(join(tmpdir(), 'ballot-chaos-cluster-')));
    const notes: string[] = [];
    const c = await ChaosCluster.start({
      nodes: 3, outDir: root, heartbeatIntervalMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 2000,
      readMode: 'read-index', unsafeStaleReads: false, unsafeNoFsync: false, debugClock: true, log: (m) => notes.push(m),
    });
    held.cluster = c;
    const logs = (): string => c.logTails();
    expect(c.names).toEqual(['n1', 'n2', 'n3']);
    expect(c.endpoints).toHaveLength(3);
    const first = await c.waitReady(30_000);
    expect(c.names).toContain(first);
    expect(await c.leader()).toBe(first);
    for (const n of c.names) {
      expect(c.isRunning(n)).toBe(true);
      expect(existsSync(join(root, 'nodes', `${n}.log`))).toBe(true);
      expect(existsSync(join(root, 'nodes', n, 'data'))).toBe(true);
    }

    // A write (on a follower: forwarded to the leader through the proxies).
    const follower = c.names.find((n) => n !== first) as string;
    const fi = c.names.indexOf(follower);
    const put = await post(c.endpoints[fi] as string, '/v3/kv/put', { key: b64('chaos/k'), value: b64('v1') });
    expect(put?.status, JSON.stringify(put?.body)).toBe(200);

    // Kill a follower: it is gone; the other two still take writes; restarted, it has every write.
    const pidBefore = c.pidOf(follower) as number;
    await c.kill(follower);
    expect(c.isRunning(follower)).toBe(false);
    expect(alive(pidBefore)).toBe(false);
    expect((await post(c.endpoints[c.names.indexOf(first)] as string, '/v3/kv/put', { key: b64('chaos/k2'), value: b64('v2') }))?.status).toBe(200);
    await c.restart(follower);
    expect(c.isRunning(follower)).toBe(true);
    expect(c.pidOf(follower)).not.toBe(pidBefore);
    await eventually(`both writes on the restarted ${follower}`, async () => {
      const r = await post(c.endpoints[fi] as string, '/v3/kv/range', { key: b64('chaos/'), range_end: b64('chaos0'), serializable: true }, 1000);
      const kvs = (r?.body['kvs'] ?? []) as { key: string; value: string }[];
      const got = new Map(kvs.map((kv) => [unb64(kv.key), unb64(kv.value)]));
      return got.get('chaos/k') === 'v1' && got.get('chaos/k2') === 'v2' ? true : null;
    }, 20_000, logs);
    expect(readFileSync(c.logFile(follower), 'utf8')).toMatch(/--- restarted at \d{4}-\d\d-\d\dT/);

    // Pause: the process is stopped (no answer); resume: it answers again.
    c.pause(follower);
    expect(c.isPaused(follower)).toBe(true);
    const pausedPid = c.pidOf(follower) as number;
    if (procState(pausedPid) !== null) {
      await eventually(`${follower} in state T (stopped)`, async () => (procState(pausedPid) === 'T' ? true : null), 5000, logs);
    }
    expect(await post(c.endpoints[fi] as string, '/v3/maintenance/status', {}, 300)).toBeNull();
    c.resume(follower);
    expect(c.isPaused(follower)).toBe(false);
    await eventually(`${follower} answering after SIGCONT`, async () => ((await post(c.endpoints[fi] as string, '/v3/maintenance/status', {}, 500))?.status === 200 ? true : null), 10_000, logs);

    // Clock: skew and rate reach the member; {0, 1} puts it back.
    await c.setClock(follower, { skewMs: 1500, rate: 2 });
    const clock = (await (await fetch(`${c.endpoints[fi]}/debug/clock`)).json()) as { skewMs: number; rate: number };
    expect(clock).toMatchObject({ skewMs: 1500, rate: 2 });
    await c.setClock(follower, { skewMs: 0, rate: 1 });
    expect(await (await fetch(`${c.endpoints[fi]}/debug/clock`)).json()).toMatchObject({ skewMs: 0, rate: 1 });
    await expect(c.setClock('n9', { skewMs: 0, rate: 1 })).rejects.toThrow(/unknown member n9/);

    // Stop: a paused member too; afterwards no PID this cluster ever started is alive.
    c.pause(first);
    const pids = c.pids();
    expect(pids.length).toBe(4);
    const watchdog = c.watchdogPid() as number;
    expect(alive(watchdog)).toBe(true);
    expect((JSON.parse(readFileSync(c.pidFilePath(), 'utf8')) as { pids: number[] }).pids.sort()).toEqual(c.names.map((n) => c.pidOf(n)).sort());
    await c.stop();
    for (const pid of pids) expect(alive(pid), `pid ${pid} still alive`).toBe(false);
    await eventually('the watchdog gone', async () => (alive(watchdog) ? null : true), 5000, logs);
    expect(JSON.parse(readFileSync(c.pidFilePath(), 'utf8'))).toMatchObject({ pids: [], watchdog: null });
    for (const n of c.names) expect(c.isRunning(n)).toBe(false);
    await c.stop(); // idempotent
    expect(c.unexpectedExits()).toEqual([]);
    expect(notes.some((n) => n.startsWith('started 3 members'))).toBe(true);
  });

  it('refuses a restart of a running member and bad sizes, and reports a member that died by itself', async () => {
    await expect(ChaosCluster.start({
      nodes: 1, outDir: '/nonexistent', heartbeatIntervalMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 1000,
      readMode: 'read-index', unsafeStaleReads: false, unsafeNoFsync: false, debugClock: false,
    })).rejects.toThrow(/nodes must be 2..9/);
    const root = (held.root = mkdtempSync(join(tmpdir(), 'ballot-chaos-cluster-')));
    const c = await ChaosCluster.start({
      nodes: 2, outDir: root, heartbeatIntervalMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 1000,
      readMode: 'lease', unsafeStaleReads: false, unsafeNoFsync: false, debugClock: false,
    });
    held.cluster = c;
    await expect(c.restart('n1')).rejects.toThrow(/still running/);
    await c.waitReady(30_000);
    // Without --unsafe-debug-clock the member has no /debug/clock.
    await expect(c.setClock('n1', { skewMs: 10, rate: 1 })).rejects.toThrow(/HTTP 404.*debugClock/);
    // A member that dies without being asked is a crash: reported, and waitReady says so.
    const victim = c.pidOf('n2') as number;
    process.kill(victim, 'SIGKILL');
    await eventually('n2 gone', async () => (c.isRunning('n2') ? null : true), 5000, () => c.logTails());
    expect(c.unexpectedExits()).toEqual([expect.objectContaining({ name: 'n2', pid: victim, status: 'SIGKILL', exitCode: null, signal: 'SIGKILL', restarted: false })]);
    expect(c.unexpectedExits()[0]?.logTail).toMatch(/--- started at/);
    await expect(c.waitReady(1000)).rejects.toThrow(/n2 is not running \(SIGKILL\)/);
    // Restarted on a client port another process took meanwhile: it dies, and the exit names the port.
    const port = Number(new URL(c.endpoints[1] as string).port);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    try {
      await c.restart('n2');
      await eventually('n2 refusing to start', async () => (c.isRunning('n2') ? null : true), 15_000, () => c.logTails());
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    const [first, second] = c.unexpectedExits();
    expect(first?.restarted).toBe(true); // the SIGKILLed incarnation was started again
    expect(second).toMatchObject({ name: 'n2', status: 'exit 1', exitCode: 1, signal: null, restarted: false });
    expect(second?.cause).toBe(`port ${port} (its client port, 127.0.0.1:${port}) was taken by another process (EADDRINUSE): ports are only free when drawn, and a restart reuses them`);
    expect(c.describeUnexpectedExits()[1]).toContain(`n2 (pid ${second?.pid}) exit 1 at `);
    await expect(c.waitReady(1000)).rejects.toThrow(new RegExp(`n2 is not running \\(exit 1: port ${port} \\(its client port`));
    const pids = c.pids();
    await c.stop();
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('exitCause names the port of an EADDRINUSE in the log, and which of the member\'s ports it is', () => {
    const urls = { clientUrl: 'http://127.0.0.1:4001', peerUrl: 'http://127.0.0.1:4002' };
    const log = '{"level":60,"msg":"cannot listen on http://127.0.0.1:4002: listen EADDRINUSE: address already in use 127.0.0.1:4002"}';
    expect(exitCause(log, urls)).toMatch(/^port 4002 \(its peer port, 127\.0\.0\.1:4002\) was taken by another process \(EADDRINUSE\)/);
    expect(exitCause('listen EADDRINUSE somewhere', urls)).toMatch(/already in use \(EADDRINUSE\)/);
    expect(exitCause('{"msg":"store opened"}', urls)).toBeUndefined();
  });

  it('a runner SIGKILLed while a member is paused (SIGSTOP) leaves no member behind: the watchdog SIGCONTs and SIGKILLs them', async () => {
    // The runner is a child process using the built cluster (test/dist): it starts 3 members, waits for a leader,
    // pauses n2, prints the PIDs, and is then SIGKILLed (no exit hook runs). n1 and n3 stop by --parent-pid; n2
    // cannot (it is stopped), which is what the watchdog is for.
    const distCluster = join(dirname(defaultBin()), '../../../test/dist/chaos/cluster.js');
    expect(existsSync(distCluster), `${distCluster} is missing: run npm run build`).toBe(true);
    const root = (held.root = mkdtempSync(join(tmpdir(), 'ballot-chaos-cluster-')));
    const script = `
      import { ChaosCluster } from ${JSON.stringify(pathToFileURL(distCluster).href)};
      const c = await ChaosCluster.start({ nodes: 3, outDir: ${JSON.stringify(root)}, heartbeatIntervalMs: 50, electionTimeoutMs: 500,
        requestTimeoutMs: 1000, readMode: 'read-index', unsafeStaleReads: false, unsafeNoFsync: false, debugClock: false });
      await c.waitReady(30000);
      c.pause('n2');
      process.stdout.write(JSON.stringify({ pids: c.pids(), paused: c.pidOf('n2'), watchdog: c.watchdogPid(), pidFile: c.pidFilePath() }) + '\\n');
      setInterval(() => {}, 1000);
    `;
    const runner = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    runner.stdout.on('data', (b: Buffer) => (out += b.toString()));
    runner.stderr.on('data', (b: Buffer) => (err += b.toString()));
    let started: { pids: number[]; paused: number; watchdog: number; pidFile: string } | undefined;
    try {
      started = await eventually('the runner\'s PIDs', async () => (out.includes('\n') ? (JSON.parse(out.split('\n')[0] as string) as typeof started) ?? null : null), 40_000, () => err);
      const s = started as NonNullable<typeof started>;
      expect(s.pids).toHaveLength(3);
      expect(alive(s.watchdog)).toBe(true);
      const listed = JSON.parse(readFileSync(s.pidFile, 'utf8')) as { pids: number[]; watchdog: number };
      expect(listed.pids.sort()).toEqual([...s.pids].sort());
      expect(listed.watchdog).toBe(s.watchdog);
      if (procState(s.paused) !== null) await eventually('n2 stopped', async () => (procState(s.paused) === 'T' ? true : null), 5000, () => err);
      runner.kill('SIGKILL');
      await eventually('every member and the watchdog gone', async () => ([...s.pids, s.watchdog].every((p) => !alive(p)) ? true : null), 10_000, () =>
        [...s.pids, s.watchdog].map((p) => `pid ${p}: ${alive(p) ? `alive (${procState(p) ?? '?'})` : 'gone'}`).join(', '));
    } finally {
      // Whatever is left (a failed assertion) is stopped by PID.
      if (runner.exitCode === null && runner.signalCode === null) runner.kill('SIGKILL');
      for (const p of started === undefined ? [] : [...started.pids, started.watchdog]) {
        if (!alive(p)) continue;
        process.kill(p, 'SIGCONT');
        process.kill(p, 'SIGKILL');
      }
    }
  });
});
