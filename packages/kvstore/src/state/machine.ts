// KvStateMachine: what the Raft driver applies committed entries to.
//
// Every replica applies the same entries in the same order and must end in the same state, so
// apply() is deterministic: it depends only on the entry and the state before it (no wall clock,
// no randomness; "time" is the leader's timestamp carried in each envelope). It is synchronous and
// cheap: the state needed to decide a command lives in memory (the MVCC key index with the live
// values, leases, sessions, member attributes), and the changes go to LevelDB behind it
// (mvcc/write-behind.ts), one batch per flush, with the applied index in the same batch.
//
// apply() never throws on a command that decoded: a command that cannot be applied (a lease that
// does not exist, a compacted revision, ...) becomes a failed CommandOutcome and changes nothing.
//
// Exactly-once writes (Ongaro's thesis §6.3): a client registers a session (its id is the index
// of the registering entry); each write carries (clientId, seq). The state machine remembers the
// outcome of every seq it applied for that client, so a retry of the same seq (after a timeout or
// a leader change) gets the first outcome again instead of being applied twice. The client says
// which seqs it will never retry (ackedSeq) and those outcomes are forgotten. Sessions unused for
// sessionTtlMs, measured on the log's own clock (the max timestamp seen), expire on every replica
// at the same entry; at maxSessions the least recently used one expires.

import { EventEmitter } from 'node:events';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import pino, { type Logger } from 'pino';
import type { Entry, SnapshotPoint, StateMachine } from '@ballot/raft';
import { ETCD_MESSAGES, KvError, LIMITS, toKvError } from '../errors.js';
import type {
  Bytes,
  Command,
  CommandEnvelope,
  CommandOutcome,
  Compare,
  DeleteRangeRequest,
  DeleteRangeResult,
  KeyValue,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  RequestOp,
  ResponseOp,
  RevisionEvents,
  TxnRequest,
  TxnResult,
} from '../types.js';
import { keyBytes, keyString, toKeyRange, type KeyString } from '../mvcc/keys.js';
import { MvccStore, StaleStoreError, packr, type RevisionWriter } from '../mvcc/store.js';
import { WriteBehind, type Db } from '../mvcc/write-behind.js';
import { decodeCommand, validateCommand } from './codec.js';
import { SNAPSHOT_FRAME_BYTES, readSnapshotFrames, writeSnapshotFrames } from './snapshot.js';

export interface KvStateMachineOptions {
  /** LevelDB folder of the store (the server uses <data-dir>/kv). */
  readonly dir: string;
  readonly logger?: Logger;
  /** A session unused this long (on the log's clock: max envelope timeMs seen) expires. Default 5 min. */
  readonly sessionTtlMs?: number;
  /** Bound on sessions; at the bound, registering one expires the least recently used. Default 10 000. */
  readonly maxSessions?: number;
  /** Bound on remembered outcomes per session (seqs not yet acknowledged); the oldest is forgotten. Default 1024. */
  readonly maxOutcomesPerSession?: number;
}

/** A lease as the state machine holds it: its TTL and the keys attached (byte order). */
export interface LeaseInfo {
  readonly ttlSec: number;
  readonly keys: readonly Bytes[];
}

export interface MemberAttrs {
  readonly name: string;
  readonly clientUrls: readonly string[];
}

interface Lease {
  readonly id: number;
  readonly ttlSec: number;
  readonly keys: Set<KeyString>;
}

interface Session {
  readonly clientId: number;
  lastUsedMs: number;
  /** Index of the entry that last used it: the least-recently-used order, rebuilt exactly on load. */
  lastUsedIndex: number;
  /** Outcomes of applied seqs above ackedSeq, by seq. */
  readonly outcomes: Map<number, CommandOutcome>;
  ackedSeq: number;
  /** Seqs <= this were forgotten (acknowledged or evicted at the bound): a retry of one is refused. */
  forgottenSeq: number;
}

interface Meta {
  readonly format: 1;
  readonly appliedIndex: number;
  /** Term of the entry at appliedIndex (0 when unknown, e.g. a store restored from a backup). */
  readonly appliedTerm?: number;
  readonly revision: number;
  readonly compactedRevision: number;
  readonly clockMs: number;
  /** Set while a restore is rewriting the database: a store opened in that state starts empty. */
  readonly restoring?: boolean;
}

/** A session's header record; each remembered outcome is a record of its own (written once). */
type PersistedSession = [clientId: number, lastUsedMs: number, lastUsedIndex: number, ackedSeq: number, forgottenSeq: number];

// LevelDB layout besides the revision records ("r", see mvcc/store.ts).
const META_KEY = Uint8Array.of(0x6d); // 'm'
const LEASE_PREFIX = 0x6c; // 'l' + id (8 bytes)
const SESSION_PREFIX = 0x73; // 's' + clientId (8 bytes)
const OUTCOME_PREFIX = 0x6f; // 'o' + clientId (8 bytes) + seq (8 bytes)
const MEMBER_PREFIX = 0x70; // 'p' + member id (utf8)

function idKey(prefix: number, id: number): Uint8Array {
  const k = Buffer.allocUnsafe(9);
  k[0] = prefix;
  k.writeUInt32BE(Math.floor(id / 0x1_0000_0000), 1);
  k.writeUInt32BE(id >>> 0, 5);
  return k;
}

function outcomeKey(clientId: number, seq: number): Uint8Array {
  const k = Buffer.allocUnsafe(17);
  k[0] = OUTCOME_PREFIX;
  k.writeUInt32BE(Math.floor(clientId / 0x1_0000_0000), 1);
  k.writeUInt32BE(clientId >>> 0, 5);
  k.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 9);
  k.writeUInt32BE(seq >>> 0, 13);
  return k;
}

function memberKey(id: string): Uint8Array {
  return Buffer.concat([Uint8Array.of(MEMBER_PREFIX), Buffer.from(id, 'utf8')]);
}

function prefixRange(prefix: number): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: Uint8Array.of(prefix), lt: Uint8Array.of(prefix + 1) };
}

const EMPTY = new Uint8Array(0);
const DEFAULT_SESSION_TTL_MS = 5 * 60_000;
const DEFAULT_MAX_SESSIONS = 10_000;
const DEFAULT_MAX_OUTCOMES = 1024;

export class KvStateMachine
  extends EventEmitter<{ events: [RevisionEvents]; outcome: [string, CommandOutcome] }>
  implements StateMachine
{
  private readonly db: Db;
  private readonly wb: WriteBehind;
  private store: MvccStore;
  private readonly logger: Logger;
  private readonly sessionTtlMs: number;
  private readonly maxSessions: number;
  private readonly maxOutcomes: number;

  private applied = 0;
  private appliedTermValue = 0;
  /** The log's clock: the largest envelope timeMs applied so far. */
  private clockMs = 0;
  private leaseTable = new Map<number, Lease>();
  /** In least-recently-used order (a use moves the session to the end). */
  private sessions = new Map<number, Session>();
  private memberTable = new Map<string, MemberAttrs>();
  private readonly dirtyLeases = new Set<number>();
  private readonly dirtySessions = new Set<number>();
  private readonly dirtyMembers = new Set<string>();
  private closed = false;
  /** Set while restore() rewrites the database; disk reads wait for it. */
  private restoring: Promise<void> | null = null;

  private constructor(db: Db, opts: KvStateMachineOptions) {
    super();
    this.db = db;
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.sessionTtlMs = opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    this.maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.maxOutcomes = opts.maxOutcomesPerSession ?? DEFAULT_MAX_OUTCOMES;
    this.wb = new WriteBehind({ db, logger: this.logger, onSeal: () => this.writeDirty() });
    this.store = new MvccStore(db, this.wb, () => this.restoring);
  }

  /** Opens (or creates) the store in `opts.dir` and loads its state into memory. */
  static async open(opts: KvStateMachineOptions): Promise<KvStateMachine> {
    const db: Db = new ClassicLevel<Uint8Array, Uint8Array>(opts.dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    const sm = new KvStateMachine(db, opts);
    try {
      await sm.load();
    } catch (e) {
      await db.close();
      throw e;
    }
    return sm;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /** Term of the last applied entry. */
  get appliedTerm(): number {
    return this.appliedTermValue;
  }

  get revision(): number {
    return this.store.revision;
  }

  get compactedRevision(): number {
    return this.store.compactedRevision;
  }

  // -------------------------------------------------------------------------------------------
  // Loading and persisting

  private async load(): Promise<void> {
    const metaBytes = await this.db.get(META_KEY);
    let meta: Meta | null = metaBytes === undefined ? null : (packr.unpack(metaBytes) as Meta);
    if (meta?.restoring) {
      // A restore was interrupted: the content is partial. Start empty; the driver restores again.
      this.logger.warn('kv store: an interrupted restore left partial data; starting empty');
      await this.db.clear();
      meta = null;
    }
    // Build the whole state aside, then switch to it at once: a read during a restore sees either
    // the old state or the new one, never half of each.
    const store = new MvccStore(this.db, this.wb, () => this.restoring);
    // etcd's store starts at revision 1 (an empty store answers revision 1; the first write makes 2).
    await store.load(meta?.revision ?? 1, meta?.compactedRevision ?? 0);
    const leaseTable = new Map<number, Lease>();
    for await (const [, v] of this.db.iterator(prefixRange(LEASE_PREFIX))) {
      const [id, ttlSec] = packr.unpack(v) as [number, number];
      leaseTable.set(id, { id, ttlSec, keys: new Set() });
    }
    // Attach live keys to their leases.
    for (const [k, h] of store.index.entries()) {
      if (h.live !== null && h.live.lease !== 0) leaseTable.get(h.live.lease)?.keys.add(k);
    }
    const loaded: Session[] = [];
    for await (const [, v] of this.db.iterator(prefixRange(SESSION_PREFIX))) {
      const [clientId, lastUsedMs, lastUsedIndex, ackedSeq, forgottenSeq] = packr.unpack(v) as PersistedSession;
      loaded.push({ clientId, lastUsedMs, lastUsedIndex, ackedSeq, forgottenSeq, outcomes: new Map() });
    }
    const byId = new Map(loaded.map((x) => [x.clientId, x]));
    for await (const [k, v] of this.db.iterator(prefixRange(OUTCOME_PREFIX))) {
      const b = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
      const clientId = b.readUInt32BE(1) * 0x1_0000_0000 + b.readUInt32BE(5);
      const seq = b.readUInt32BE(9) * 0x1_0000_0000 + b.readUInt32BE(13);
      byId.get(clientId)?.outcomes.set(seq, packr.unpack(v) as CommandOutcome);
    }
    // LRU order = order of last use (each use is a distinct entry), the same on every replica.
    loaded.sort((a, b) => a.lastUsedIndex - b.lastUsedIndex);
    const sessions = new Map(loaded.map((x) => [x.clientId, x]));
    const memberTable = new Map<string, MemberAttrs>();
    for await (const [k, v] of this.db.iterator(prefixRange(MEMBER_PREFIX))) {
      const [name, clientUrls] = packr.unpack(v) as [string, string[]];
      memberTable.set(Buffer.from(k.subarray(1)).toString('utf8'), { name, clientUrls });
    }
    this.applied = meta?.appliedIndex ?? 0;
    this.appliedTermValue = meta?.appliedTerm ?? 0;
    this.clockMs = meta?.clockMs ?? 0;
    this.store.retired = true;
    this.store = store;
    this.leaseTable = leaseTable;
    this.sessions = sessions;
    this.memberTable = memberTable;
  }

  /** Called when a write-behind batch is sealed: adds the changed records and the metadata. */
  private writeDirty(): void {
    for (const id of this.dirtyLeases) {
      const l = this.leaseTable.get(id);
      if (l === undefined) this.wb.del(idKey(LEASE_PREFIX, id));
      else this.wb.put(idKey(LEASE_PREFIX, id), packr.pack([l.id, l.ttlSec]));
    }
    this.dirtyLeases.clear();
    for (const id of this.dirtySessions) {
      const s = this.sessions.get(id);
      if (s === undefined) this.wb.del(idKey(SESSION_PREFIX, id));
      else {
        const rec: PersistedSession = [s.clientId, s.lastUsedMs, s.lastUsedIndex, s.ackedSeq, s.forgottenSeq];
        this.wb.put(idKey(SESSION_PREFIX, id), packr.pack(rec));
      }
    }
    this.dirtySessions.clear();
    for (const id of this.dirtyMembers) {
      const m = this.memberTable.get(id);
      if (m === undefined) this.wb.del(memberKey(id));
      else this.wb.put(memberKey(id), packr.pack([m.name, m.clientUrls]));
    }
    this.dirtyMembers.clear();
    this.wb.put(META_KEY, packr.pack(this.meta()));
  }

  private meta(restoring = false): Meta {
    const m: Meta = {
      format: 1,
      appliedIndex: this.applied,
      appliedTerm: this.appliedTermValue,
      revision: this.store.revision,
      compactedRevision: this.store.compactedRevision,
      clockMs: this.clockMs,
    };
    return restoring ? { ...m, restoring } : m;
  }

  /** Resolves once everything applied so far is in LevelDB. */
  flush(): Promise<void> {
    return this.wb.flushed();
  }

  // -------------------------------------------------------------------------------------------
  // Apply

  apply(entry: Entry): void {
    // After a failed LevelDB write the store can no longer persist anything: stop here (a throw from
    // apply is fatal to the driver, which stops the member) instead of applying on into memory
    // that can never be written. Nothing is lost: a restart re-applies these entries from the log.
    const failed = this.wb.error;
    if (failed !== null) throw new Error(`kv store: a LevelDB write failed, so this member stops: ${failed.message}`);
    if (entry.index <= this.applied) return; // already in LevelDB (restart replays from the log)
    this.applied = entry.index;
    this.appliedTermValue = entry.term;
    this.wb.touch();
    if (entry.type !== 'normal') return;
    let env: CommandEnvelope;
    try {
      env = decodeCommand(entry.data);
    } catch (e) {
      this.logger.warn({ index: entry.index, err: toKvError(e).message }, 'kv store: skipping an undecodable log entry');
      return;
    }
    if (env.timeMs > this.clockMs) this.clockMs = env.timeMs;
    this.expireSessions();
    const outcome = this.applySession(env, entry.index);
    this.emitSafely('outcome', env.requestId, outcome);
  }

  /** Runs `env` under its session (if any): a retried seq gets the remembered outcome. */
  private applySession(env: CommandEnvelope, index: number): CommandOutcome {
    const ref = env.session;
    if (ref === undefined) return this.execute(env.cmd, index);
    const s = this.sessions.get(ref.clientId);
    if (s === undefined) return this.failed('SESSION_EXPIRED', `session ${ref.clientId} is unknown or expired; register a new one`);
    // Touch: the session moves to the most recently used end.
    this.sessions.delete(s.clientId);
    s.lastUsedMs = this.clockMs;
    s.lastUsedIndex = index;
    this.sessions.set(s.clientId, s);
    this.dirtySessions.add(s.clientId);
    if (ref.ackedSeq > s.ackedSeq) {
      s.ackedSeq = ref.ackedSeq;
      if (ref.ackedSeq > s.forgottenSeq) {
        // Every remembered seq is above forgottenSeq (a seq is remembered only above it, and it
        // only grows past the seqs it forgets), so the newly acknowledged ones are the seqs in
        // (forgottenSeq, ackedSeq]: walk that interval, or the map when the jump is longer than
        // it. Amortized O(1) per write rather than O(writes in flight).
        if (ref.ackedSeq - s.forgottenSeq <= s.outcomes.size) {
          for (let seq = s.forgottenSeq + 1; seq <= ref.ackedSeq; seq++) if (s.outcomes.has(seq)) this.forgetOutcome(s, seq);
        } else {
          for (const seq of s.outcomes.keys()) if (seq <= ref.ackedSeq) this.forgetOutcome(s, seq);
        }
        s.forgottenSeq = ref.ackedSeq;
      }
    }
    const seen = s.outcomes.get(ref.seq);
    if (seen !== undefined) return seen; // §6.3: a duplicate: answer as the first time, apply nothing
    if (ref.seq <= s.forgottenSeq)
      return this.failed('SESSION_EXPIRED', `session ${ref.clientId}: the outcome of seq ${ref.seq} was already acknowledged or forgotten`);
    const outcome = this.execute(env.cmd, index);
    s.outcomes.set(ref.seq, outcome);
    this.wb.put(outcomeKey(s.clientId, ref.seq), packr.pack(outcome));
    if (s.outcomes.size > this.maxOutcomes) {
      // The oldest remembered seq is the first one above forgottenSeq (see above): walk up to it,
      // or scan the map when the walk would be longer than the map (gaps of seqs never applied).
      let oldest = Infinity;
      const walkEnd = s.forgottenSeq + s.outcomes.size;
      for (let seq = s.forgottenSeq + 1; seq <= walkEnd; seq++) {
        if (s.outcomes.has(seq)) {
          oldest = seq;
          break;
        }
      }
      if (oldest === Infinity) for (const seq of s.outcomes.keys()) if (seq < oldest) oldest = seq;
      this.forgetOutcome(s, oldest);
      if (oldest > s.forgottenSeq) s.forgottenSeq = oldest;
    }
    return outcome;
  }

  private forgetOutcome(s: Session, seq: number): void {
    s.outcomes.delete(seq);
    this.wb.del(outcomeKey(s.clientId, seq));
  }

  /** Removes a session with its remembered outcomes (expiry, eviction at the bound). */
  private dropSession(s: Session): void {
    this.sessions.delete(s.clientId);
    this.dirtySessions.add(s.clientId);
    for (const seq of s.outcomes.keys()) this.wb.del(outcomeKey(s.clientId, seq));
  }

  /** Sessions idle longer than the TTL (on the log's clock) expire, oldest first. */
  private expireSessions(): void {
    for (const s of this.sessions.values()) {
      if (s.lastUsedMs + this.sessionTtlMs >= this.clockMs) break; // LRU order: the rest are newer
      this.dropSession(s);
    }
  }

  private failed(code: KvError['code'], message: string): CommandOutcome {
    return { ok: false, revision: this.store.revision, code, message };
  }

  /** Applies one command; failures become a failed outcome that changed nothing. */
  private execute(cmd: Command, index: number): CommandOutcome {
    try {
      validateCommand(cmd);
      switch (cmd.op) {
        case 'put': {
          this.checkPut(cmd.req);
          const w = this.store.beginWrite();
          const result = this.put(w, cmd.req);
          this.endWrite(w);
          return { ok: true, revision: this.store.revision, result };
        }
        case 'deleteRange': {
          const w = this.store.beginWrite();
          const result = this.deleteRange(w, cmd.req);
          this.endWrite(w);
          return { ok: true, revision: this.store.revision, result };
        }
        case 'txn': {
          const path = this.decide(cmd.req);
          this.checkPath(cmd.req, path);
          const w = this.store.beginWrite();
          const result = this.runTxn(w, cmd.req, path);
          this.endWrite(w);
          return { ok: true, revision: this.store.revision, result };
        }
        case 'compact': {
          if (cmd.revision <= this.store.compactedRevision) throw new KvError('COMPACTED', ETCD_MESSAGES.COMPACTED);
          if (cmd.revision > this.store.revision) throw new KvError('FUTURE_REV', ETCD_MESSAGES.FUTURE_REV);
          const dropped = this.store.compact(cmd.revision);
          this.logger.debug({ revision: cmd.revision, dropped }, 'kv store: compacted');
          return { ok: true, revision: this.store.revision, result: {} };
        }
        case 'leaseGrant':
          return { ok: true, revision: this.store.revision, result: this.leaseGrant(cmd.id, cmd.ttlSec, index) };
        case 'leaseRevoke':
          this.leaseRevoke(cmd.id);
          return { ok: true, revision: this.store.revision, result: {} };
        case 'registerSession': {
          if (this.sessions.size >= this.maxSessions) {
            const lru = this.sessions.values().next().value;
            if (lru !== undefined) this.dropSession(lru);
          }
          this.sessions.set(index, { clientId: index, lastUsedMs: this.clockMs, lastUsedIndex: index, outcomes: new Map(), ackedSeq: 0, forgottenSeq: 0 });
          this.dirtySessions.add(index);
          return { ok: true, revision: this.store.revision, result: { clientId: index } };
        }
        case 'publish':
          this.memberTable.set(cmd.memberId, { name: cmd.name, clientUrls: [...cmd.clientUrls] });
          this.dirtyMembers.add(cmd.memberId);
          return { ok: true, revision: this.store.revision, result: {} };
      }
    } catch (e) {
      // Every refusal is a KvError thrown BEFORE anything changed (checks come first), so the
      // command simply failed. Anything else is a bug that may have left the state half-changed:
      // crash loudly rather than go on and diverge from the other replicas.
      if (!(e instanceof KvError)) {
        this.logger.fatal({ err: e, op: cmd.op }, 'kv store: invariant broken while applying a command');
        throw e;
      }
      return this.failed(e.code, e.message);
    }
  }

  private endWrite(w: RevisionWriter): void {
    const events = this.store.endWrite(w);
    if (events !== null) this.emitSafely('events', events);
  }

  /** Listeners (watch hub, proposer waiters) must not be able to break apply. */
  private emitSafely<K extends 'events' | 'outcome'>(name: K, ...args: K extends 'events' ? [RevisionEvents] : [string, CommandOutcome]): void {
    try {
      (this.emit as (n: string, ...a: unknown[]) => boolean)(name, ...args);
    } catch (e) {
      this.logger.error({ err: e }, `kv store: an '${name}' listener threw`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Put, delete, txn (all synchronous, on the in-memory index)

  /** The checks etcd makes before a put changes anything (against the state before the command). */
  private checkPut(req: PutRequest): void {
    const lease = req.lease ?? 0;
    if (lease !== 0 && !req.ignoreLease && !this.leaseTable.has(lease)) throw new KvError('LEASE_NOT_FOUND', ETCD_MESSAGES.LEASE_NOT_FOUND);
    if (req.ignoreValue || req.ignoreLease) {
      if (this.store.index.get(keyString(req.key))?.live == null) throw new KvError('KEY_NOT_FOUND', ETCD_MESSAGES.KEY_NOT_FOUND);
    }
  }

  private put(w: RevisionWriter, req: PutRequest): PutResult {
    const k = keyString(req.key);
    const before = this.store.index.get(k)?.live ?? null;
    const value = req.ignoreValue && before !== null ? before.value : req.value;
    const lease = req.ignoreLease && before !== null ? before.lease : (req.lease ?? 0);
    const { prev } = w.put(k, value, lease, req.key);
    if (prev !== null && prev.lease !== 0 && prev.lease !== lease) this.leaseTable.get(prev.lease)?.keys.delete(k);
    if (lease !== 0) this.leaseTable.get(lease)?.keys.add(k);
    return req.prevKv && prev !== null ? { prevKv: prev } : {};
  }

  private deleteRange(w: RevisionWriter, req: DeleteRangeRequest): DeleteRangeResult {
    const keys: KeyString[] = [];
    this.store.index.forEachInRange(toKeyRange(req.key, req.rangeEnd), (k, h) => {
      if (h.live !== null) keys.push(k);
    });
    const prevKvs: KeyValue[] = [];
    for (const k of keys) {
      const prev = w.delete(k);
      if (prev === null) continue;
      if (prev.lease !== 0) this.leaseTable.get(prev.lease)?.keys.delete(k);
      if (req.prevKv) prevKvs.push(prev);
    }
    return { deleted: keys.length, prevKvs };
  }

  /**
   * Which branch every txn on the way takes, decided against the state BEFORE the txn runs (as
   * etcd does): the outer compares pick a branch, and each nested txn in it is decided the same way.
   */
  private decide(t: TxnRequest): TxnPath {
    const succeeded = t.compare.every((c) => this.compareHolds(c));
    const nested: TxnPath[] = [];
    for (const op of succeeded ? t.success : t.failure) if ('txn' in op) nested.push(this.decide(op.txn));
    return { succeeded, nested };
  }

  /** The checks of every put on the decided path, before anything changes (atomicity). */
  private checkPath(t: TxnRequest, path: TxnPath): void {
    let n = 0;
    for (const op of path.succeeded ? t.success : t.failure) {
      if ('put' in op) this.checkPut(op.put);
      else if ('txn' in op) this.checkPath(op.txn, path.nested[n++]!);
    }
  }

  private runTxn(w: RevisionWriter, t: TxnRequest, path: TxnPath): TxnResult {
    const responses: ResponseOp[] = [];
    let n = 0;
    for (const op of path.succeeded ? t.success : t.failure) responses.push(this.runOp(w, op, path.nested, () => n++));
    return { succeeded: path.succeeded, responses };
  }

  private runOp(w: RevisionWriter, op: RequestOp, nested: readonly TxnPath[], next: () => number): ResponseOp {
    if ('range' in op) return { range: this.rangeNow(op.range) };
    if ('put' in op) return { put: this.put(w, op.put) };
    if ('deleteRange' in op) return { deleteRange: this.deleteRange(w, op.deleteRange) };
    return { txn: this.runTxn(w, op.txn, nested[next()]!) };
  }

  /** etcd's compare: every key in the range must satisfy it; a missing key compares as zeros (a value compare fails). */
  private compareHolds(c: Compare): boolean {
    const kvs: KeyValue[] = [];
    this.store.index.forEachInRange(toKeyRange(c.key, c.rangeEnd), (_k, h) => {
      if (h.live !== null) kvs.push(h.live);
    });
    if (kvs.length === 0) {
      if (c.target === 'value') return false;
      return compareOne(c, { key: c.key, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0 });
    }
    return kvs.every((kv) => compareOne(c, kv));
  }

  // -------------------------------------------------------------------------------------------
  // Leases

  private leaseGrant(id: number, ttlSec: number, index: number): { id: number; ttlSec: number } {
    let chosen = id;
    if (chosen === 0) {
      // Deterministic: the entry's index, or the next id not in use.
      chosen = index;
      while (this.leaseTable.has(chosen)) chosen++;
    } else if (this.leaseTable.has(chosen)) {
      throw new KvError('LEASE_EXISTS', ETCD_MESSAGES.LEASE_EXISTS);
    }
    const ttl = Math.max(1, ttlSec);
    if (ttl > LIMITS.maxLeaseTtlSec) throw new KvError('LEASE_TTL_TOO_LARGE', ETCD_MESSAGES.LEASE_TTL_TOO_LARGE);
    this.leaseTable.set(chosen, { id: chosen, ttlSec: ttl, keys: new Set() });
    this.dirtyLeases.add(chosen);
    return { id: chosen, ttlSec: ttl };
  }

  /** Deletes the lease and, in one revision, every key attached to it. */
  private leaseRevoke(id: number): void {
    const lease = this.leaseTable.get(id);
    if (lease === undefined) throw new KvError('LEASE_NOT_FOUND', ETCD_MESSAGES.LEASE_NOT_FOUND);
    const keys = [...lease.keys].sort();
    const w = this.store.beginWrite();
    for (const k of keys) w.delete(k);
    this.leaseTable.delete(id);
    this.dirtyLeases.add(id);
    this.endWrite(w);
  }

  /** Live leases: TTL and attached keys (each lease's keys are listed, in byte order, when read). */
  leases(): ReadonlyMap<number, LeaseInfo> {
    const out = new Map<number, LeaseInfo>();
    for (const l of this.leaseTable.values()) {
      const set = l.keys;
      out.set(l.id, {
        ttlSec: l.ttlSec,
        get keys(): readonly Bytes[] {
          return [...set].sort().map(keyBytes);
        },
      });
    }
    return out;
  }

  /** One lease (TTL and attached keys), or undefined if it does not exist. O(1) (time-to-live). */
  lease(id: number): LeaseInfo | undefined {
    const l = this.leaseTable.get(id);
    if (l === undefined) return undefined;
    const set = l.keys;
    return {
      ttlSec: l.ttlSec,
      get keys(): readonly Bytes[] {
        return [...set].sort().map(keyBytes);
      },
    };
  }

  /** Member attributes published with the 'publish' command, by member id. */
  members(): ReadonlyMap<string, MemberAttrs> {
    return this.memberTable;
  }

  /** How many sessions are open (for metrics and tests). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /** A local read at the current revision or, with req.revision, an older one (from disk). */
  async range(req: RangeRequest): Promise<RangeResult> {
    this.checkOpen();
    const at = req.revision ?? 0;
    if (!Number.isSafeInteger(at) || at < 0) throw new KvError('BAD_REQUEST', 'range revision must be a non-negative integer');
    if (req.limit !== undefined && (!Number.isSafeInteger(req.limit) || req.limit < 0)) throw new KvError('BAD_REQUEST', 'range limit must be a non-negative integer');
    if (req.key.length === 0) throw new KvError('BAD_REQUEST', 'etcdserver: key is not provided');
    this.store.checkReadable(at);
    if (at === 0 || at === this.store.revision) return this.rangeNow(req);
    const plan = rangePlan(req);
    for (;;) {
      try {
        const scan = await this.store.rangeAt(toKeyRange(req.key, req.rangeEnd), at, plan.maxKvs);
        return finishRange(req, plan, scan.kvs, scan.count);
      } catch (e) {
        if (!(e instanceof StaleStoreError)) throw e; // else: a restore replaced the store; read the new one
      }
    }
  }

  /** Synchronous read at the current revision (what a txn's range sees). */
  private rangeNow(req: RangeRequest): RangeResult {
    const plan = rangePlan(req);
    const scan = this.store.rangeCurrent(toKeyRange(req.key, req.rangeEnd), plan.maxKvs);
    return finishRange(req, plan, scan.kvs, scan.count);
  }

  /**
   * Every revision in [fromRevision, min(toRevision, current)], in order, one RevisionEvents each (watch
   * catch-up). KvError COMPACTED if fromRevision < compactedRevision (etcd's rule: the compaction
   * revision itself is kept whole and can be replayed). prevKv is filled when
   * `withPrevKv` (default) and the previous version is still retained.
   */
  history(fromRevision: number, toRevision?: number, withPrevKv = true): AsyncIterable<RevisionEvents> {
    // Capped at the current revision: everything up to it is on disk once pending batches are written.
    const to = Math.min(toRevision ?? this.store.revision, this.store.revision);
    const from = Math.max(1, fromRevision);
    if (from < this.store.compactedRevision) throw new KvError('COMPACTED', ETCD_MESSAGES.COMPACTED);
    return this.historyOf(from, to, withPrevKv);
  }

  private async *historyOf(from: number, to: number, withPrevKv: boolean): AsyncGenerator<RevisionEvents> {
    for (;;) {
      try {
        // A restore may replace the store before the disk is read: then read the new one.
        yield* this.store.history(from, to, withPrevKv);
        return;
      } catch (e) {
        if (!(e instanceof StaleStoreError)) throw e;
      }
    }
  }

  /** Bytes of the store's files on disk. */
  async dbSizeBytes(): Promise<number> {
    let total = 0;
    for (const name of await readdir(this.dirPath)) {
      try {
        total += (await stat(join(this.dirPath, name))).size;
      } catch {
        // a file LevelDB removed meanwhile
      }
    }
    return total;
  }

  private get dirPath(): string {
    return (this.db as unknown as { location: string }).location;
  }

  private checkOpen(): void {
    if (this.closed) throw new KvError('STOPPED', 'the key-value store is closed');
    const e = this.wb.error;
    if (e) throw new KvError('STORAGE_CORRUPT', `the key-value store cannot write to disk: ${e.message}`);
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots (for Raft) and restore

  /**
   * The state as of `at` (the entry just applied), streamed. Captured now: the pending batches up
   * to now are written, later ones are held back until a LevelDB iterator (which reads from an
   * implicit snapshot taken when it is created) pins exactly this state; then writes go on.
   */
  snapshot(at: SnapshotPoint): AsyncIterable<Uint8Array> {
    const seq = this.wb.seal();
    const release = this.wb.holdAfter(seq);
    const header = { ...this.meta(), index: at.index, term: at.term };
    const ready = this.wb.whenWritten(seq).then(
      () => {
        const it = this.db.iterator({ highWaterMarkBytes: SNAPSHOT_FRAME_BYTES });
        release();
        return it;
      },
      (e: unknown) => {
        release();
        throw e;
      },
    );
    ready.catch(() => {}); // reported when the stream is read
    return writeSnapshotFrames(header, ready, META_KEY);
  }

  /**
   * Replaces the whole state with a snapshot image; afterwards appliedIndex = at.index. Idempotent:
   * if the persisted state already covers at.index, it is kept.
   */
  async restore(at: SnapshotPoint, data: AsyncIterable<Uint8Array>): Promise<void> {
    this.checkOpen();
    await this.wb.flushed();
    if (this.applied >= at.index) {
      this.logger.info({ applied: this.applied, at: at.index }, 'kv store: restore skipped, already at or past the snapshot');
      await data[Symbol.asyncIterator]().return?.();
      return;
    }
    await this.replaceState(data, at.index, at.term, false);
    this.logger.info({ at: at.index, revision: this.store.revision }, 'kv store: restored from a snapshot');
  }

  /**
   * Replaces the whole state with an image (see snapshot.ts). A failure midway leaves the database
   * marked "restoring" (it then opens empty) and rejects: the caller must not go on applying.
   * `fresh`: the image seeds a NEW cluster (backup restore): sessions and published member
   * attributes belong to the old cluster's log and are dropped; keys, revisions and leases stay.
   */
  async replaceState(data: AsyncIterable<Uint8Array>, appliedIndex: number, appliedTerm: number, fresh: boolean): Promise<void> {
    this.checkOpen();
    if (this.restoring !== null) throw new KvError('IN_PROGRESS', 'a restore is already in progress');
    const done = this.rewrite(data, appliedIndex, appliedTerm, fresh);
    this.restoring = done;
    try {
      await done;
    } finally {
      this.restoring = null;
    }
  }

  private async rewrite(data: AsyncIterable<Uint8Array>, appliedIndex: number, appliedTerm: number, fresh: boolean): Promise<void> {
    await this.wb.flushed();
    this.wb.discardPending();
    // Mark the database as being rewritten: a crash from here on leaves a store that opens empty.
    await this.db.put(META_KEY, packr.pack({ ...this.meta(), restoring: true }));
    await this.db.clear({ gt: META_KEY });
    await this.db.clear({ lt: META_KEY });
    const header = await readSnapshotFrames(data, async (pairs) => {
      const keep = fresh ? pairs.filter(([k]) => k[0] !== SESSION_PREFIX && k[0] !== OUTCOME_PREFIX && k[0] !== MEMBER_PREFIX) : pairs;
      if (keep.length > 0) await this.db.batch(keep.map(([key, value]) => ({ type: 'put' as const, key, value })));
    });
    const meta: Meta = {
      format: 1,
      appliedIndex,
      appliedTerm,
      revision: header.revision,
      compactedRevision: header.compactedRevision,
      clockMs: header.clockMs,
    };
    await this.db.put(META_KEY, packr.pack(meta));
    this.dirtyLeases.clear();
    this.dirtySessions.clear();
    this.dirtyMembers.clear();
    await this.load();
  }

  /**
   * Closes LevelDB WITHOUT writing the pending batches, as a crash would (a write already handed to
   * LevelDB completes). For tests of restart: the entries lost are re-applied from the Raft log.
   */
  async abandon(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wb.discardPending();
    this.wb.stop();
    await this.db.close();
  }

  /** Writes what is pending and closes LevelDB. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.wb.flushed();
    } catch (e) {
      this.logger.error({ err: e }, 'kv store: final flush failed');
    }
    this.wb.stop();
    await this.db.close();
  }
}

/** Which branch a txn took, and the same for each nested txn on that branch, in order. */
interface TxnPath {
  readonly succeeded: boolean;
  readonly nested: readonly TxnPath[];
}

function compareOne(c: Compare, kv: KeyValue): boolean {
  let cmp: number;
  switch (c.target) {
    case 'version':
      cmp = kv.version - c.version;
      break;
    case 'create':
      cmp = kv.createRevision - c.createRevision;
      break;
    case 'mod':
      cmp = kv.modRevision - c.modRevision;
      break;
    case 'lease':
      cmp = kv.lease - c.lease;
      break;
    case 'value':
      cmp = Buffer.compare(kv.value, c.value);
      break;
  }
  switch (c.result) {
    case 'equal':
      return cmp === 0;
    case 'not_equal':
      return cmp !== 0;
    case 'greater':
      return cmp > 0;
    case 'less':
      return cmp < 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Range results: sort, limit, keys_only, count_only (etcd's rules).

interface RangePlan {
  readonly order: 'none' | 'ascend' | 'descend';
  readonly target: 'key' | 'version' | 'create' | 'mod' | 'value';
  /** How many kvs the scan must collect (all when a sort may reorder them). */
  readonly maxKvs: number;
}

function rangePlan(req: RangeRequest): RangePlan {
  const target = req.sortTarget ?? 'key';
  let order = req.sortOrder ?? 'none';
  // etcd: sorting by something other than the key with no order given means ascending.
  if (order === 'none' && target !== 'key') order = 'ascend';
  const limit = req.limit ?? 0;
  const keyOrder = order === 'none' || (order === 'ascend' && target === 'key');
  const maxKvs = req.countOnly ? 0 : keyOrder && limit > 0 ? limit : Infinity;
  return { order, target, maxKvs };
}

function finishRange(req: RangeRequest, plan: RangePlan, scanned: KeyValue[], count: number): RangeResult {
  if (req.countOnly) return { kvs: [], more: false, count };
  let kvs = scanned;
  if (!(plan.order === 'none' || (plan.order === 'ascend' && plan.target === 'key'))) {
    const sign = plan.order === 'descend' ? -1 : 1;
    const by = sortKey(plan.target);
    kvs = [...kvs].sort((a, b) => sign * by(a, b)); // stable: ties stay in key order
  }
  const limit = req.limit ?? 0;
  if (limit > 0 && kvs.length > limit) kvs = kvs.slice(0, limit);
  if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
  return { kvs, more: limit > 0 && count > limit, count };
}

function sortKey(target: RangePlan['target']): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case 'key':
      return (a, b) => Buffer.compare(a.key, b.key);
    case 'version':
      return (a, b) => a.version - b.version;
    case 'create':
      return (a, b) => a.createRevision - b.createRevision;
    case 'mod':
      return (a, b) => a.modRevision - b.modRevision;
    case 'value':
      return (a, b) => Buffer.compare(a.value, b.value);
  }
}
