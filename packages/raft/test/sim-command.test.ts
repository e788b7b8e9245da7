// `ballot sim`: output contract (last stdout line is the JSON summary), replay of one seed with its
// timeline, exit codes (0 ok, 2 bad arguments). Runs the commander command in-process.

import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerSimCommand } from '../src/sim/command.js';

interface Run {
  stdout: string;
  stderr: string;
  exitCode: number;
}

class ExitCalled extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

async function runSim(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const exit = vi.spyOn(process, 'exit').mockImplementation((code?: string | number | null) => {
    throw new ExitCalled(Number(code ?? 0));
  });
  process.exitCode = 0;
  let exitCode: number;
  try {
    const program = new Command().name('ballot');
    registerSimCommand(program);
    await program.parseAsync(['sim', ...args], { from: 'user' });
    exitCode = Number(process.exitCode ?? 0);
  } catch (e) {
    if (!(e instanceof ExitCalled)) throw e;
    exitCode = e.code;
  } finally {
    out.mockRestore();
    err.mockRestore();
    exit.mockRestore();
    process.exitCode = 0;
  }
  return { stdout, stderr, exitCode };
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trimEnd().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}

afterEach(() => {
  process.exitCode = 0;
});

describe('ballot sim', () => {
  it('runs N seeds, shows progress on stderr, ends stdout with the JSON summary', async () => {
    const r = await runSim(['--seeds', '4', '--nodes', '3', '--duration-ms', '800']);
    expect(r.exitCode).toBe(0);
    const summary = lastJson(r.stdout);
    expect(Object.keys(summary)).toEqual(['seeds', 'violations', 'failedSeeds', 'commits', 'elections', 'traceHash']);
    expect(summary['seeds']).toBe(4);
    expect(summary['violations']).toBe(0);
    expect(summary['failedSeeds']).toEqual([]);
    expect(summary['commits']).toEqual(expect.any(Number));
    expect(summary['traceHash']).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stderr).toMatch(/sim: 4\/4 seeds, 0 violations/);
    // Same arguments, same hash.
    const again = await runSim(['--seeds', '4', '--nodes', '3', '--duration-ms', '800']);
    expect(lastJson(again.stdout)['traceHash']).toBe(summary['traceHash']);
  });

  it('--seed S --trace replays one seed and prints its timeline before the summary', async () => {
    const r = await runSim(['--seed', '17', '--nodes', '3', '--duration-ms', '500', '--trace']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^t=0\.0ms START 3 nodes, seed 17/);
    expect(r.stdout).toMatch(/t=\d+\.\dms n\d→n\d (AppendEntries|Heartbeat|PreVote|RequestVote)/);
    const summary = lastJson(r.stdout);
    expect(summary['seeds']).toBe(1);
    expect(summary['violations']).toBe(0);
  });

  it('exits 2 on bad arguments', async () => {
    for (const args of [['--seeds', 'many'], ['--nodes', '0'], ['--seed', '-3'], ['--duration-ms', '1.5'], ['--bogus'], ['--seeds', '3', '--trace']]) {
      const r = await runSim(args);
      expect(r.exitCode, args.join(' ')).toBe(2);
    }
  });
});
