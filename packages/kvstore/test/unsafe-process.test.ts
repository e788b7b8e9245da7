// The chaos flags on a real `ballot kv serve` process: a malformed value exits 2 naming the flag;
// the deliberate bugs are announced by loud warnings at start and in /v3/maintenance/status
// `errors`; /debug/clock answers only with --unsafe-debug-clock.
import { describe, expect, it } from 'vitest';
import { clusterArgs, post, b64, sigterm, spawnMember, tail, useProcessHooks, waitFor } from './process-helpers.js';

useProcessHooks();

describe('kv serve chaos flags (process)', () => {
  it('exits 2 naming the flag on a malformed clock setting', async () => {
    const p = spawnMember('bad', ['--clock-rate', 'fast']);
    expect(await p.exited).toBe(2);
    expect(p.stderr).toMatch(/--clock-rate: expected a positive number, got "fast"/);
    const q = spawnMember('bad2', ['--clock-skew-ms', '12.5']);
    expect(await q.exited).toBe(2);
    expect(q.stderr).toMatch(/--clock-skew-ms: expected an integer/);
  });

  it('warns loudly at start, reports --unsafe-stale-reads in status errors, serves /debug/clock, and still stops with 0', async () => {
    const [m] = await clusterArgs(1, { heartbeatMs: 20, electionMs: 200 }, ['--unsafe-stale-reads', '--unsafe-no-fsync', '--unsafe-debug-clock', '--clock-rate', '2']);
    const p = spawnMember(m!.name, m!.args);
    await waitFor('a write', async () => (await post(m!.clientUrl, '/v3/kv/put', { key: b64('k'), value: b64('v') }).catch(() => null))?.status === 200, 20_000, () => tail(p));
    const warnings = p.stdout.split('\n').filter((l) => l.includes('"level":40'));
    expect(warnings.some((l) => l.includes('--unsafe-stale-reads') && l.includes('UNSAFE'))).toBe(true);
    expect(warnings.some((l) => l.includes('--unsafe-no-fsync') && l.includes('UNSAFE'))).toBe(true);
    expect(warnings.some((l) => l.includes('--unsafe-debug-clock'))).toBe(true);
    const st = await post(m!.clientUrl, '/v3/maintenance/status', {});
    expect(st.status).toBe(200);
    expect(JSON.stringify(st.body['errors'])).toMatch(/--unsafe-stale-reads/);
    const clock = await fetch(`${m!.clientUrl}/debug/clock`, { method: 'POST', body: JSON.stringify({ skewMs: -5000 }) });
    expect(clock.status).toBe(200);
    expect(await clock.json()).toMatchObject({ skewMs: -5000, rate: 2 });
    const metrics = await (await fetch(`${m!.clientUrl}/metrics`)).text();
    expect(metrics).toMatch(/ballot_kv_unsafe_mode\{flag="--unsafe-stale-reads"[^}]*\} 1/);
    expect(metrics).toMatch(/ballot_kv_unsafe_mode\{flag="--unsafe-no-fsync"[^}]*\} 1/);
    expect(metrics).toMatch(/ballot_kv_clock_skew_ms\{[^}]*\} -5000/);
    expect(metrics).toMatch(/ballot_kv_clock_rate\{[^}]*\} 2/);
    expect(await sigterm(p)).toBe(0);
  });

  it('a member without the flags has no /debug/clock and no unsafe status error', async () => {
    const [m] = await clusterArgs(1, { heartbeatMs: 20, electionMs: 200 });
    const p = spawnMember(m!.name, m!.args);
    await waitFor('a write', async () => (await post(m!.clientUrl, '/v3/kv/put', { key: b64('k'), value: b64('v') }).catch(() => null))?.status === 200, 20_000, () => tail(p));
    const st = await post(m!.clientUrl, '/v3/maintenance/status', {});
    expect(JSON.stringify(st.body['errors'] ?? [])).not.toMatch(/unsafe/i);
    expect((await fetch(`${m!.clientUrl}/debug/clock`, { method: 'POST', body: '{"rate":3}' })).status).toBe(404);
    expect(p.stdout).not.toMatch(/UNSAFE/);
    expect(await (await fetch(`${m!.clientUrl}/metrics`)).text()).not.toMatch(/ballot_kv_unsafe_mode|ballot_kv_clock_rate/);
    expect(await sigterm(p)).toBe(0);
  });
});
