// Typed errors of the key-value store. Every error carries a stable `code`; the JSON gateway maps
// it to an HTTP status and to the gRPC code etcd's gateway would report, and the message says what
// happened in words a person can act on (etcd's own wording where etcd has the same error, so
// scripts that match on etcd's messages keep working).

import { RaftError, type RaftErrorCode } from '@ballot/raft';

export type KvErrorCode =
  /** Malformed request: bad JSON, bad base64, a missing or unknown field, a value out of range. */
  | 'BAD_REQUEST'
  /** The request (or a proposal it makes) is larger than the limit (etcd: 1.5 MiB). */
  | 'REQUEST_TOO_LARGE'
  /** A txn with more operations than the limit (etcd: 128). */
  | 'TOO_MANY_OPS'
  /** The same key is written twice in one txn branch. */
  | 'DUPLICATE_KEY'
  /** A read or watch below the compacted revision. */
  | 'COMPACTED'
  /** A read at, or compaction to, a revision greater than the current one. */
  | 'FUTURE_REV'
  /** put with ignore_value / ignore_lease on a key that does not exist. */
  | 'KEY_NOT_FOUND'
  | 'LEASE_NOT_FOUND'
  | 'LEASE_EXISTS'
  /** A lease TTL beyond the maximum. */
  | 'LEASE_TTL_TOO_LARGE'
  | 'MEMBER_NOT_FOUND'
  | 'MEMBER_EXISTS'
  | 'PEER_URL_EXISTS'
  /** Promote of a member that is not a learner, or of a learner not yet caught up. */
  | 'MEMBER_NOT_LEARNER'
  | 'LEARNER_NOT_READY'
  /** A client session (thesis §6.3) unknown or expired: register a new one. */
  | 'SESSION_EXPIRED'
  /** No leader is known, or this member cannot reach a quorum: writes and linearizable reads are refused. */
  | 'NO_LEADER'
  /** The leader changed while the request was in flight; a write may or may not have been applied. */
  | 'LEADER_CHANGED'
  /** The request did not finish within its deadline; a write may or may not have been applied. */
  | 'TIMEOUT'
  /** A bounded queue is full (back-pressure): retry later. */
  | 'QUEUE_FULL'
  /** A membership change or leadership transfer is in progress. */
  | 'IN_PROGRESS'
  /** The member is stopping, or not yet started. */
  | 'STOPPED'
  /** Data on disk failed verification. */
  | 'STORAGE_CORRUPT'
  /** A bug: an invariant failed. */
  | 'INTERNAL';

export class KvError extends Error {
  override readonly name = 'KvError';
  constructor(
    readonly code: KvErrorCode,
    message: string,
    /** The leader's client URL when known (a client may retry there). */
    readonly leaderUrl: string | null = null,
  ) {
    super(message);
  }
}

/** HTTP status of each code. 503: the cluster cannot serve it now (try again, maybe elsewhere). */
export const KV_HTTP_STATUS: Readonly<Record<KvErrorCode, number>> = {
  BAD_REQUEST: 400,
  REQUEST_TOO_LARGE: 400,
  TOO_MANY_OPS: 400,
  DUPLICATE_KEY: 400,
  COMPACTED: 400,
  FUTURE_REV: 400,
  KEY_NOT_FOUND: 400,
  LEASE_NOT_FOUND: 404,
  LEASE_EXISTS: 400,
  LEASE_TTL_TOO_LARGE: 400,
  MEMBER_NOT_FOUND: 404,
  MEMBER_EXISTS: 409,
  PEER_URL_EXISTS: 409,
  MEMBER_NOT_LEARNER: 400,
  LEARNER_NOT_READY: 400,
  SESSION_EXPIRED: 400,
  NO_LEADER: 503,
  LEADER_CHANGED: 503,
  TIMEOUT: 504,
  QUEUE_FULL: 429,
  IN_PROGRESS: 503,
  STOPPED: 503,
  STORAGE_CORRUPT: 500,
  INTERNAL: 500,
};

/** The gRPC status code etcd's JSON gateway reports in its error body (`"code": N`). */
export const KV_GRPC_CODE: Readonly<Record<KvErrorCode, number>> = {
  BAD_REQUEST: 3, // InvalidArgument
  REQUEST_TOO_LARGE: 3,
  TOO_MANY_OPS: 3,
  DUPLICATE_KEY: 3,
  COMPACTED: 11, // OutOfRange
  FUTURE_REV: 11,
  KEY_NOT_FOUND: 3,
  LEASE_NOT_FOUND: 5, // NotFound
  LEASE_EXISTS: 9, // FailedPrecondition
  LEASE_TTL_TOO_LARGE: 11,
  MEMBER_NOT_FOUND: 5,
  MEMBER_EXISTS: 9,
  PEER_URL_EXISTS: 9,
  MEMBER_NOT_LEARNER: 9,
  LEARNER_NOT_READY: 9,
  SESSION_EXPIRED: 9,
  NO_LEADER: 14, // Unavailable
  LEADER_CHANGED: 14,
  TIMEOUT: 14,
  QUEUE_FULL: 8, // ResourceExhausted
  IN_PROGRESS: 14,
  STOPPED: 14,
  STORAGE_CORRUPT: 15, // DataLoss
  INTERNAL: 13,
};

/** etcd's own messages for the errors etcd also has (clients match on these strings). */
export const ETCD_MESSAGES = {
  COMPACTED: 'mvcc: required revision has been compacted',
  FUTURE_REV: 'mvcc: required revision is a future revision',
  TOO_MANY_OPS: 'etcdserver: too many operations in txn request',
  REQUEST_TOO_LARGE: 'etcdserver: request is too large',
  DUPLICATE_KEY: 'etcdserver: duplicate key given in txn request',
  KEY_NOT_FOUND: 'etcdserver: key not found',
  LEASE_NOT_FOUND: 'etcdserver: requested lease not found',
  LEASE_EXISTS: 'etcdserver: lease already exists',
  LEASE_TTL_TOO_LARGE: 'etcdserver: too large lease TTL',
  MEMBER_NOT_FOUND: 'etcdserver: member not found',
  MEMBER_EXISTS: 'etcdserver: member ID already exist',
  PEER_URL_EXISTS: 'etcdserver: Peer URLs already exists',
  MEMBER_NOT_LEARNER: 'etcdserver: can only promote a learner member',
  LEARNER_NOT_READY: 'etcdserver: can only promote a learner member which is in sync with leader',
  NO_LEADER: 'etcdserver: no leader',
  LEADER_CHANGED: 'etcdserver: leader changed',
  TIMEOUT: 'etcdserver: request timed out',
} as const satisfies Partial<Record<KvErrorCode, string>>;

/** Limits etcd enforces by default, which Ballot shares. */
export const LIMITS = {
  /** etcd's --max-request-bytes default: 1.5 MiB. */
  maxRequestBytes: 1.5 * 1024 * 1024,
  /** etcd's --max-txn-ops default. */
  maxTxnOps: 128,
  /** etcd's maximum lease TTL (9 000 000 000 s); Ballot keeps TTLs in safe integers of ms, so less. */
  maxLeaseTtlSec: 9_000_000_000,
} as const;

/** Translates a Raft-layer error into the store's vocabulary (the message keeps the Raft detail). */
export function fromRaftError(e: RaftError, leaderUrl: string | null = null): KvError {
  const map: Record<RaftErrorCode, KvErrorCode> = {
    NOT_LEADER: 'NO_LEADER', // only reached when forwarding to the leader failed
    NO_LEADER: 'NO_LEADER',
    LEADERSHIP_LOST: 'LEADER_CHANGED',
    UNCOMMITTED_LIMIT: 'NO_LEADER',
    READ_QUEUE_FULL: 'QUEUE_FULL',
    PROPOSAL_DROPPED: 'LEADER_CHANGED',
    QUEUE_FULL: 'QUEUE_FULL',
    TIMEOUT: 'TIMEOUT',
    STOPPED: 'STOPPED',
    STORAGE_CORRUPT: 'STORAGE_CORRUPT',
    BAD_REQUEST: 'BAD_REQUEST',
    CLUSTER_MISMATCH: 'BAD_REQUEST',
    CONF_CHANGE_IN_PROGRESS: 'IN_PROGRESS',
    TRANSFER_IN_PROGRESS: 'IN_PROGRESS',
  };
  const code = map[e.code];
  const etcd = (ETCD_MESSAGES as Partial<Record<KvErrorCode, string>>)[code];
  return new KvError(code, etcd ? `${etcd} (${e.message})` : e.message, leaderUrl);
}

/** Any thrown value as a KvError (unknown errors become INTERNAL, with their message). */
export function toKvError(e: unknown): KvError {
  if (e instanceof KvError) return e;
  if (e instanceof RaftError) return fromRaftError(e);
  return new KvError('INTERNAL', e instanceof Error ? e.message : String(e));
}
