// Helpers shared by the state machine tests: temp folders, entries, envelopes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '@ballot/raft';
import { encodeCommand } from '../src/state/codec.js';
import type { Command, CommandEnvelope, CommandOutcome, SessionRef } from '../src/types.js';
import type { KvStateMachine } from '../src/state/machine.js';

export const te = (s: string): Uint8Array => new TextEncoder().encode(s);
export const td = (b: Uint8Array): string => new TextDecoder().decode(b);

export function tempDir(prefix = 'kv-state-'): { readonly dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Feeds commands to a state machine as consecutive log entries; returns each outcome. */
export class LogFeeder {
  index: number;
  timeMs = 1_000;
  private readonly outcomes = new Map<string, CommandOutcome>();
  constructor(
    readonly sm: KvStateMachine,
    startIndex = sm.appliedIndex,
    /** Every entry built is appended here (the "Raft log" a restarted store replays). */
    readonly log: Entry[] = [],
  ) {
    this.index = startIndex;
    sm.on('outcome', (id, o) => this.outcomes.set(id, o));
  }

  entryFor(cmd: Command, session?: SessionRef, timeMs = this.timeMs): Entry {
    const env: CommandEnvelope = session ? { requestId: `r${this.index + 1}`, timeMs, session, cmd } : { requestId: `r${this.index + 1}`, timeMs, cmd };
    const e: Entry = { index: ++this.index, term: 1, type: 'normal', data: encodeCommand(env) };
    this.log.push(e);
    return e;
  }

  apply(cmd: Command, session?: SessionRef, timeMs?: number): CommandOutcome {
    const e = this.entryFor(cmd, session, timeMs);
    this.sm.apply(e);
    const o = this.outcomes.get(`r${e.index}`);
    if (o === undefined) throw new Error(`no outcome for entry ${e.index}`);
    return o;
  }

  noop(): void {
    const e: Entry = { index: ++this.index, term: 1, type: 'noop', data: new Uint8Array(0) };
    this.log.push(e);
    this.sm.apply(e);
  }
}
