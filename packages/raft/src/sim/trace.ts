// The simulator's timeline: one human-readable line per thing that happened (a message delivered or
// lost, a role change, a persist, a crash, a partition), e.g.
//   t=1234.0ms n1→n3 AppendEntries term=3 prev=(12,2) n=4 [13..16] commit=11
// Every line also feeds a running sha256, so two runs can be compared by one hash: the same seed
// must give the same hash, byte for byte.

import { createHash, type Hash } from 'node:crypto';
import type { Entry, HardState, Message } from '../core/types.js';

/** Formats one simulated instant, e.g. `t=1234.5ms`. */
export function formatTime(timeMs: number): string {
  return `t=${timeMs.toFixed(1)}ms`;
}

function range(entries: readonly Entry[]): string {
  const first = entries[0];
  const last = entries[entries.length - 1];
  if (first === undefined || last === undefined) return '[]';
  return first.index === last.index ? `[${first.index}]` : `[${first.index}..${last.index}]`;
}

/** One message, without its sender and receiver: `AppendEntries term=3 prev=(12,2) n=4 [13..16] commit=11`. */
export function formatMessage(m: Message): string {
  switch (m.type) {
    case 'RequestVote':
      return `${m.preVote ? 'PreVote' : 'RequestVote'} term=${m.term} last=(${m.lastLogIndex},${m.lastLogTerm})`;
    case 'RequestVoteResponse':
      return `${m.preVote ? 'PreVoteResponse' : 'RequestVoteResponse'} term=${m.term} ${m.granted ? 'granted' : 'rejected'}`;
    case 'AppendEntries':
      return (
        `AppendEntries term=${m.term} prev=(${m.prevLogIndex},${m.prevLogTerm}) n=${m.entries.length}` +
        (m.entries.length > 0 ? ` ${range(m.entries)}` : '') +
        ` commit=${m.leaderCommit}`
      );
    case 'AppendEntriesResponse':
      return m.success
        ? `AppendEntriesResponse term=${m.term} ok index=${m.index}`
        : `AppendEntriesResponse term=${m.term} reject index=${m.index} conflict=(${m.conflictIndex},${m.conflictTerm})`;
    case 'Heartbeat':
      return `Heartbeat term=${m.term} commit=${m.commit} round=${m.readRound}`;
    case 'HeartbeatResponse':
      return `HeartbeatResponse term=${m.term} round=${m.readRound}`;
    case 'ReadIndex':
      return `ReadIndex term=${m.term} reads=${m.requestIds.length}`;
    case 'ReadIndexResponse':
      return `ReadIndexResponse term=${m.term} reads=${m.requestIds.length} index=${m.index}`;
    case 'InstallSnapshot':
      return `InstallSnapshot term=${m.term} snapshot=(${m.meta.index},${m.meta.term}) voters=${m.meta.config.voters.join(',')}`;
    case 'TimeoutNow':
      return `TimeoutNow term=${m.term}`;
  }
}

/** `term=3 vote=n1 commit=11`. */
export function formatHardState(hs: HardState): string {
  return `term=${hs.term} vote=${hs.vote ?? '-'} commit=${hs.commit}`;
}

export function formatEntries(entries: readonly Entry[]): string {
  return `${range(entries)}@${entries.map((e) => e.term).filter((t, i, a) => a.indexOf(t) === i).join('/')}`;
}

/**
 * Trace lines with a bounded memory: the newest `maxLines` are kept for trace() and reports
 * (older ones are dropped from memory), while the hash covers every line ever written.
 */
export class Trace {
  private lines: string[] = [];
  private droppedLines = 0;
  private total = 0;
  private readonly hash: Hash = createHash('sha256');

  constructor(private readonly maxLines = 200_000) {
    if (maxLines < 1) throw new RangeError('maxLines must be at least 1');
  }

  add(timeMs: number, text: string): void {
    const line = `${formatTime(timeMs)} ${text}`;
    this.hash.update(line);
    this.hash.update('\n');
    this.total++;
    this.lines.push(line);
    // At the bound, drop the oldest half at once (amortized O(1) per line).
    if (this.lines.length > this.maxLines) {
      const cut = this.lines.length - Math.ceil(this.maxLines / 2);
      this.lines = this.lines.slice(cut);
      this.droppedLines += cut;
    }
  }

  /** The kept lines (the newest up to maxLines). */
  all(): readonly string[] {
    return this.lines;
  }

  last(n: number): readonly string[] {
    return this.lines.slice(Math.max(0, this.lines.length - n));
  }

  /** How many lines were ever written (kept or not). */
  get lineCount(): number {
    return this.total;
  }

  get dropped(): number {
    return this.droppedLines;
  }

  /** sha256 (hex) of every line written so far, each followed by '\n'. */
  digest(): string {
    return this.hash.copy().digest('hex');
  }
}
