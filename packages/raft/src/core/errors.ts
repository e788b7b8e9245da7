// Typed errors. Every error Ballot's Raft layer raises carries a stable `code` that the APIs
// map to an HTTP status (see HTTP_STATUS), and a message a person can act on.

import type { NodeId } from './types.js';

export type RaftErrorCode =
  /** This node is not the leader; `leaderHint` names the one it knows of (the driver redirects). */
  | 'NOT_LEADER'
  /** No leader is known: an election is under way or this node cannot reach a quorum. */
  | 'NO_LEADER'
  /** The leader stepped down before the request finished; a write may or may not have committed. */
  | 'LEADERSHIP_LOST'
  /** The leader holds too many uncommitted bytes: no quorum is acknowledging. */
  | 'UNCOMMITTED_LIMIT'
  /** Too many reads are waiting for a read index. */
  | 'READ_QUEUE_FULL'
  /** The proposed entry was overwritten by another leader's entry: it did not commit. */
  | 'PROPOSAL_DROPPED'
  /** A bounded client-side queue of the driver is full. */
  | 'QUEUE_FULL'
  /** The request did not finish within its deadline; its outcome is unknown. */
  | 'TIMEOUT'
  /** The node is stopping or stopped. */
  | 'STOPPED'
  /** A record on disk failed its checksum or could not be decoded. */
  | 'STORAGE_CORRUPT'
  /** The request itself is malformed. */
  | 'BAD_REQUEST'
  /** A peer from another cluster, or with an unknown id, tried to connect. */
  | 'CLUSTER_MISMATCH'
  /**
   * A membership change cannot be proposed now: another one is not yet committed, or the leader
   * has not yet committed an entry of its own term (thesis §4.1, single-server changes). Retry.
   */
  | 'CONF_CHANGE_IN_PROGRESS'
  /** The leader is handing leadership over (thesis §3.10) and accepts no proposals meanwhile. Retry shortly, maybe elsewhere. */
  | 'TRANSFER_IN_PROGRESS';

export class RaftError extends Error {
  override readonly name = 'RaftError';
  constructor(
    readonly code: RaftErrorCode,
    message: string,
    /** For NOT_LEADER: the leader this node believes in, if any. */
    readonly leaderHint: NodeId | null = null,
  ) {
    super(message);
  }
}

/** How the HTTP APIs report each code. 503 means "try again, maybe elsewhere": the cluster cannot serve it now. */
export const HTTP_STATUS: Readonly<Record<RaftErrorCode, number>> = {
  NOT_LEADER: 421,
  NO_LEADER: 503,
  LEADERSHIP_LOST: 503,
  UNCOMMITTED_LIMIT: 503,
  READ_QUEUE_FULL: 429,
  PROPOSAL_DROPPED: 503,
  QUEUE_FULL: 429,
  TIMEOUT: 504,
  STOPPED: 503,
  STORAGE_CORRUPT: 500,
  BAD_REQUEST: 400,
  CLUSTER_MISMATCH: 403,
  CONF_CHANGE_IN_PROGRESS: 409,
  TRANSFER_IN_PROGRESS: 503,
};

export function isRaftError(e: unknown): e is RaftError {
  return e instanceof RaftError;
}
