// The store's vocabulary, shared by every layer of the package: requests and results (etcd v3's
// messages in TypeScript's camelCase; keys and values are bytes), the service every front end
// (JSON gateway, native protocol) calls, and watch events.
//
// Numbers: revisions, versions, counts, lease ids and TTLs are JS numbers (safe integers). etcd's
// int64 lease ids above 2^53 - 1 are refused with BAD_REQUEST (a difference listed in README).
// Member and cluster ids are etcd-style 64-bit ids written as 16 lowercase hex digits internally
// (the JSON gateway prints them as decimal strings, as etcd does).

export type Bytes = Uint8Array;

/** A stored key's state at one revision (etcd's mvccpb.KeyValue). */
export interface KeyValue {
  readonly key: Bytes;
  /** Revision of the write that created the key (since its last deletion). */
  readonly createRevision: number;
  /** Revision of the last write to the key. */
  readonly modRevision: number;
  /** Writes since creation: 1 at creation; a delete resets the key. */
  readonly version: number;
  readonly value: Bytes;
  /** Attached lease id, 0 for none. */
  readonly lease: number;
}

/** Sent with every response (etcd's ResponseHeader). */
export interface ResponseHeader {
  /** 16 hex digits. */
  readonly clusterId: string;
  /** The member that answered, 16 hex digits. */
  readonly memberId: string;
  /** The store's revision when the response was made (for a write: the revision it created or the current one). */
  readonly revision: number;
  readonly raftTerm: number;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

/**
 * rangeEnd as in etcd: absent or empty = the single key `key`; otherwise keys in [key, rangeEnd);
 * rangeEnd = [0] (a single zero byte) = every key >= key; key = [0] and rangeEnd = [0] = all keys.
 * A prefix p is [p, prefixEnd(p)).
 */
export interface RangeRequest {
  readonly key: Bytes;
  readonly rangeEnd?: Bytes;
  /** 0 or absent: no limit. */
  readonly limit?: number;
  /** 0 or absent: the current revision. */
  readonly revision?: number;
  readonly sortOrder?: SortOrder;
  readonly sortTarget?: SortTarget;
  /** Read this member's local state, possibly stale (the response says so). Default false: linearizable. */
  readonly serializable?: boolean;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
}

export interface RangeResult {
  readonly kvs: readonly KeyValue[];
  /** More keys matched than `limit` returned. */
  readonly more: boolean;
  /** How many keys matched (before limit). */
  readonly count: number;
}

export interface PutRequest {
  readonly key: Bytes;
  readonly value: Bytes;
  /** 0 or absent: no lease. */
  readonly lease?: number;
  readonly prevKv?: boolean;
  /** Keep the current value (KEY_NOT_FOUND if the key does not exist). */
  readonly ignoreValue?: boolean;
  /** Keep the current lease (KEY_NOT_FOUND if the key does not exist). */
  readonly ignoreLease?: boolean;
}

export interface PutResult {
  readonly prevKv?: KeyValue;
}

export interface DeleteRangeRequest {
  readonly key: Bytes;
  readonly rangeEnd?: Bytes;
  readonly prevKv?: boolean;
}

export interface DeleteRangeResult {
  readonly deleted: number;
  readonly prevKvs: readonly KeyValue[];
}

export type CompareResult = 'equal' | 'greater' | 'less' | 'not_equal';

/** One comparison of a txn guard; with rangeEnd it must hold for every key in the range. */
export type Compare = {
  readonly result: CompareResult;
  readonly key: Bytes;
  readonly rangeEnd?: Bytes;
} & (
  | { readonly target: 'version'; readonly version: number }
  | { readonly target: 'create'; readonly createRevision: number }
  | { readonly target: 'mod'; readonly modRevision: number }
  | { readonly target: 'value'; readonly value: Bytes }
  | { readonly target: 'lease'; readonly lease: number }
);

export type RequestOp =
  | { readonly range: RangeRequest }
  | { readonly put: PutRequest }
  | { readonly deleteRange: DeleteRangeRequest }
  | { readonly txn: TxnRequest };

export type ResponseOp =
  | { readonly range: RangeResult }
  | { readonly put: PutResult }
  | { readonly deleteRange: DeleteRangeResult }
  | { readonly txn: TxnResult };

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly RequestOp[];
  readonly failure: readonly RequestOp[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  readonly responses: readonly ResponseOp[];
}

export interface CompactRequest {
  readonly revision: number;
  /** etcd: wait until the compaction is physically applied. Ballot compacts synchronously in apply either way. */
  readonly physical?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Leases

export interface LeaseGrantRequest {
  /** Seconds, >= 1 (smaller values are raised to the minimum TTL, as etcd does). */
  readonly ttlSec: number;
  /** 0 or absent: the store picks an id. */
  readonly id?: number;
}

export interface LeaseGrantResult {
  readonly id: number;
  readonly ttlSec: number;
}

export interface LeaseKeepAliveResult {
  readonly id: number;
  /** The TTL the lease was renewed to; 0 when the lease no longer exists (as etcd answers). */
  readonly ttlSec: number;
}

export interface LeaseTimeToLiveResult {
  readonly id: number;
  /** Remaining seconds (as the leader sees it); -1 when the lease does not exist (as etcd answers). */
  readonly ttlSec: number;
  readonly grantedTtlSec: number;
  /** With keys=true: the keys attached. */
  readonly keys: readonly Bytes[];
}

// ---------------------------------------------------------------------------------------------
// Watches

export interface WatchCreateRequest {
  readonly key: Bytes;
  readonly rangeEnd?: Bytes;
  /** 0 or absent: from the next revision (only new events). Otherwise the first revision to deliver. */
  readonly startRevision?: number;
  /** Send a progress notification (header only) periodically while no events flow. */
  readonly progressNotify?: boolean;
  readonly filters?: readonly ('noput' | 'nodelete')[];
  readonly prevKv?: boolean;
  /** A client-chosen id (etcd 3.4+); 0 or absent: the server assigns one. */
  readonly watchId?: number;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  /** For delete: key and modRevision = the deleting revision, empty value, version 0. */
  readonly kv: KeyValue;
  readonly prevKv?: KeyValue;
}

/**
 * One message to a watcher. Exactly one of: created (first), events (one or more whole revisions,
 * in order, never a revision twice), progress (events empty, header.revision = all events up to it
 * were delivered), canceled (last; with a reason, and compactRevision when the start was compacted).
 */
export interface WatchResponse {
  readonly header: ResponseHeader;
  readonly watchId: number;
  readonly created?: boolean;
  readonly canceled?: boolean;
  readonly cancelReason?: string;
  /** Set when canceled because startRevision was compacted: the oldest revision still available. */
  readonly compactRevision?: number;
  readonly events: readonly WatchEvent[];
}

/** The events of one committed write (a txn's events share its revision and are delivered together). */
export interface RevisionEvents {
  readonly revision: number;
  readonly events: readonly WatchEvent[];
}

// ---------------------------------------------------------------------------------------------
// Cluster and maintenance

export interface Member {
  /** 16 hex digits. It is also the member's Raft node id. */
  readonly id: string;
  /** Empty until the member has started and published its name (as etcd). */
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
  readonly isLearner: boolean;
}

export interface StatusResult {
  readonly version: string;
  /** Bytes of the store's files on disk. */
  readonly dbSize: number;
  /** The leader's member id, '' when none is known. */
  readonly leader: string;
  readonly raftIndex: number;
  readonly raftTerm: number;
  readonly raftAppliedIndex: number;
  readonly isLearner: boolean;
  /** Why the member cannot serve, if it cannot (etcd's `errors`). */
  readonly errors: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// Exactly-once writes (thesis §6.3)

/**
 * A client session: a write carrying one is applied at most once per (clientId, seq). A retry of
 * a seq already applied gets the first application's response again. The state machine remembers
 * each client's responses for seqs above the client's `ackedSeq` (the client promises never to
 * retry those), bounded per client; sessions unused for the session TTL (judged by the leader's
 * timestamps in the log, so the same on every replica) expire: SESSION_EXPIRED.
 */
export interface SessionRef {
  readonly clientId: number;
  readonly seq: number;
  /** Every seq <= ackedSeq has been answered; the store may forget their responses. */
  readonly ackedSeq: number;
}

// ---------------------------------------------------------------------------------------------
// The service behind every front end (JSON gateway, native protocol). Implemented by the server
// layer (server/service.ts): reads go through ReadIndex unless serializable, writes through the
// Raft log (forwarded to the leader from a follower), errors are KvError.

export interface WriteOptions {
  readonly session?: SessionRef;
  readonly timeoutMs?: number;
}

export interface ReadOptions {
  readonly timeoutMs?: number;
}

export interface Answer<T> {
  readonly header: ResponseHeader;
  readonly result: T;
  /** True when the read was served from local, possibly stale state (serializable). */
  readonly stale?: boolean;
}

export interface WatchSink {
  /** Called in order; never concurrently. */
  send(response: WatchResponse): void;
}

export interface WatchHandle {
  readonly watchId: number;
  cancel(reason?: string): void;
  /** Ask for a progress notification now (etcd's progress_request). */
  requestProgress(): void;
}

export interface KvService {
  range(req: RangeRequest, opts?: ReadOptions): Promise<Answer<RangeResult>>;
  put(req: PutRequest, opts?: WriteOptions): Promise<Answer<PutResult>>;
  deleteRange(req: DeleteRangeRequest, opts?: WriteOptions): Promise<Answer<DeleteRangeResult>>;
  txn(req: TxnRequest, opts?: WriteOptions): Promise<Answer<TxnResult>>;
  compact(req: CompactRequest, opts?: WriteOptions): Promise<Answer<Record<string, never>>>;

  leaseGrant(req: LeaseGrantRequest, opts?: WriteOptions): Promise<Answer<LeaseGrantResult>>;
  leaseRevoke(id: number, opts?: WriteOptions): Promise<Answer<Record<string, never>>>;
  leaseKeepAlive(id: number): Promise<Answer<LeaseKeepAliveResult>>;
  leaseTimeToLive(id: number, keys: boolean): Promise<Answer<LeaseTimeToLiveResult>>;
  leaseLeases(): Promise<Answer<{ readonly ids: readonly number[] }>>;

  /** Starts a watch; the sink gets `created` first (or `canceled` with a reason). Throws KvError for a bad request. */
  watch(req: WatchCreateRequest, sink: WatchSink): WatchHandle;

  memberList(): Promise<Answer<{ readonly members: readonly Member[] }>>;
  memberAdd(peerUrls: readonly string[], isLearner: boolean): Promise<Answer<{ readonly member: Member; readonly members: readonly Member[] }>>;
  memberRemove(id: string): Promise<Answer<{ readonly members: readonly Member[] }>>;
  memberPromote(id: string): Promise<Answer<{ readonly members: readonly Member[] }>>;

  status(): Promise<Answer<StatusResult>>;
  /** Registers a client session (one log entry); its clientId is that entry's index. */
  registerSession(opts?: WriteOptions): Promise<Answer<{ readonly clientId: number }>>;
  /** The store's image for backup (`ballot kv snapshot save`), streamed; ends with a checksum. */
  snapshot(): AsyncIterable<Uint8Array>;
}

// ---------------------------------------------------------------------------------------------
// What goes into the Raft log: one entry per write request. The proposer (the leader, or the
// leader on a follower's behalf) builds the envelope; the state machine (state/machine.ts)
// decodes it and applies it deterministically: the same entries give the same state on every
// replica. Encoding: msgpackr (state/codec.ts: encodeCommand / decodeCommand).

export type Command =
  | { readonly op: 'put'; readonly req: PutRequest }
  | { readonly op: 'deleteRange'; readonly req: DeleteRangeRequest }
  | { readonly op: 'txn'; readonly req: TxnRequest }
  | { readonly op: 'compact'; readonly revision: number }
  /** id 0: the state machine picks an unused id deterministically. */
  | { readonly op: 'leaseGrant'; readonly id: number; readonly ttlSec: number }
  /** expired: the leader's lessor revokes a lease whose TTL ran out (same effect as a revoke). */
  | { readonly op: 'leaseRevoke'; readonly id: number; readonly expired?: boolean }
  /** Opens a client session; its clientId is the entry's index. */
  | { readonly op: 'registerSession' }
  /** A member announces its name and client URLs once started (etcd's "publish"). */
  | { readonly op: 'publish'; readonly memberId: string; readonly name: string; readonly clientUrls: readonly string[] };

export interface CommandEnvelope {
  /** Unique per proposing member and process lifetime (`<memberId>-<start ms>-<counter>`); the proposer's waiter for the outcome. */
  readonly requestId: string;
  /** The proposer's wall clock (ms). The state machine's clock is the max seen so far (session expiry uses it). */
  readonly timeMs: number;
  readonly session?: SessionRef;
  readonly cmd: Command;
}

/** The outcome of applying one command, reported to the member that proposed it. */
export type CommandOutcome =
  | {
      readonly ok: true;
      /** The store's revision after the command (unchanged by reads-only txns and failed commands). */
      readonly revision: number;
      readonly result:
        | PutResult
        | DeleteRangeResult
        | TxnResult
        | LeaseGrantResult
        | { readonly clientId: number }
        | Record<string, never>;
    }
  | { readonly ok: false; readonly revision: number; readonly code: import('./errors.js').KvErrorCode; readonly message: string };
