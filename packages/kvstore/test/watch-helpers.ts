// Shared by the watch tests: a real KvStateMachine in a temporary LevelDB folder, driven by real
// encoded commands (encodeCommand) as Raft would apply them, and sinks that record what a watcher
// received (optionally congested, as a slow socket is).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { KvStateMachine } from '../src/state/machine.js';
import { encodeCommand } from '../src/state/codec.js';
import type { Command, CommandOutcome, ResponseHeader, RevisionEvents, WatchResponse } from '../src/types.js';
import type { FlowControlledSink } from '../src/watch/hub.js';

export const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');
export const dec = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

export const HEADER: ResponseHeader = { clusterId: '00000000000000c1', memberId: '00000000000000a1', revision: 0, raftTerm: 1 };

export class TestStore {
  /** Every RevisionEvents the state machine emitted, in order (what the live feed saw). */
  readonly emitted: RevisionEvents[] = [];
  private index = 0;

  private constructor(
    readonly sm: KvStateMachine,
    private readonly dir: string,
  ) {
    sm.on('events', (ev) => this.emitted.push(ev));
  }

  static async open(): Promise<TestStore> {
    const dir = await mkdtemp(join(tmpdir(), 'ballot-watch-'));
    const sm = await KvStateMachine.open({ dir });
    return new TestStore(sm, dir);
  }

  /** Applies one command as the Raft log would (synchronously); returns its outcome. */
  apply(cmd: Command): CommandOutcome {
    this.index++;
    const requestId = `watch-test-${this.index}`;
    let outcome: CommandOutcome | undefined;
    const onOutcome = (id: string, o: CommandOutcome): void => {
      if (id === requestId) outcome = o;
    };
    this.sm.on('outcome', onOutcome);
    try {
      this.sm.apply({ index: this.index, term: 1, type: 'normal', data: encodeCommand({ requestId, timeMs: 1_000_000 + this.index, cmd }) });
    } finally {
      this.sm.off('outcome', onOutcome);
    }
    if (outcome === undefined) throw new Error(`no outcome for ${requestId}`);
    if (!outcome.ok) throw new Error(`command ${cmd.op} failed: ${outcome.code} ${outcome.message}`);
    return outcome;
  }

  put(key: string, value: string, lease = 0): number {
    return this.apply({ op: 'put', req: { key: enc(key), value: enc(value), ...(lease ? { lease } : {}) } }).revision;
  }

  del(key: string, rangeEnd?: Uint8Array): number {
    return this.apply({ op: 'deleteRange', req: { key: enc(key), ...(rangeEnd ? { rangeEnd } : {}) } }).revision;
  }

  get revision(): number {
    return this.sm.revision;
  }

  /** Installs `leader`'s state as a Raft snapshot would on a lagging follower (revision jumps, no 'events'). */
  async installSnapshotFrom(leader: TestStore): Promise<void> {
    const at = { index: leader.index, term: 1 };
    await this.sm.restore(at, leader.sm.snapshot(at));
    this.index = leader.index;
  }

  async close(): Promise<void> {
    await this.sm.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Records every response; `congested` makes it refuse (writable = false) until drain(). */
export class RecordingSink implements FlowControlledSink {
  readonly responses: WatchResponse[] = [];
  writable = true;
  /** When set, the sink turns unwritable after each response it takes (a socket whose buffer fills at once). */
  congestAfterEachSend = false;
  private drainListener: (() => void) | null = null;
  unsubscribed = false;

  send(res: WatchResponse): void {
    this.responses.push(res);
    if (this.congestAfterEachSend && !res.canceled) this.writable = false;
  }

  onDrain(listener: () => void): () => void {
    this.drainListener = listener;
    return () => {
      this.unsubscribed = true;
      this.drainListener = null;
    };
  }

  drain(): void {
    this.writable = true;
    this.drainListener?.();
  }

  get events(): WatchResponse['events'][number][] {
    return this.responses.flatMap((r) => r.events);
  }

  get canceled(): WatchResponse | undefined {
    return this.responses.find((r) => r.canceled === true);
  }

  get lastRevision(): number {
    const ev = this.events;
    return ev.length === 0 ? 0 : (ev[ev.length - 1] as WatchResponse['events'][number]).kv.modRevision;
  }
}

/** A plain sink (no flow control), as the simplest front end would pass. */
export function plainSink(): { sink: { send(r: WatchResponse): void }; responses: WatchResponse[] } {
  const responses: WatchResponse[] = [];
  return { sink: { send: (r) => responses.push(r) }, responses };
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Waits (bounded) until `cond` holds; the message says what never happened. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * The watch guarantees on one watcher's responses: `created` first, then responses whose events
 * are in strictly increasing revision groups (ordered, no duplicates), each revision wholly in one
 * response, header.revision = the response's last event revision. Returns the event list.
 */
export function checkStream(responses: readonly WatchResponse[]): WatchResponse['events'][number][] {
  if (responses.length === 0 || responses[0]?.created !== true) throw new Error('first response is not `created`');
  const seenRevisions = new Set<number>();
  let last = 0;
  for (const r of responses.slice(1)) {
    if (r.created) throw new Error('a second `created`');
    if (r.events.length === 0) continue;
    const revs = r.events.map((e) => e.kv.modRevision);
    // A response starts a new revision (strictly after the last one delivered: ordered, no
    // duplicates, and no revision split over two responses), then its revisions only go up.
    if ((revs[0] as number) <= last) throw new Error(`response starts at revision ${String(revs[0])}, not after ${last}`);
    for (const rev of revs) {
      if (rev < last) throw new Error(`events out of order: ${rev} after ${last}`);
      if (rev !== last && seenRevisions.has(rev)) throw new Error(`revision ${rev} delivered twice`);
      seenRevisions.add(rev);
      last = rev;
    }
    if (r.header.revision !== last) throw new Error(`header.revision ${r.header.revision} != last event revision ${last}`);
  }
  return responses.flatMap((r) => r.events);
}
