// Membership changes, one server at a time (thesis §4.1), and learners.
//
// A configuration (types.ts: ClusterConfig) lists the voters and the learners. It changes through
// `config` entries in the log, each adding, promoting or removing ONE server. With single-server
// changes, any majority of the old voters and any majority of the new voters share at least one
// server (thesis §4.1, Figure 4.3), so two leaders can never be elected by disjoint majorities
// while the cluster moves from one configuration to the next: no joint consensus is needed.
// The rules that make this safe, and where they are enforced:
//
//   1. A server uses the LATEST configuration in its log, committed or not (thesis §4.1). When a
//      conflicting suffix is truncated, the configuration reverts to the one before it
//      (ConfigHistory below keeps the configurations of the uncompacted log).
//   2. Only one change may be in flight: a leader appends a config entry only when the previous
//      one is committed (leader.ts: proposeConfChange).
//   3. The 2015 fix (Ongaro, raft-dev, "bug in single-server membership changes"): a leader
//      appends no config entry until it has committed an entry of its own term. Without it, a
//      change proposed by a new leader could overlap an uncommitted change of a deposed leader
//      and two leaders could be elected in one term.
//   4. A leader that removes itself keeps leading until the change commits, without counting
//      itself in majorities, then steps down (thesis §4.2.2).
//
// Learners (a feature of etcd-io/raft, in the spirit of thesis §4.2.1's "catch up new servers"):
// they receive the log but never campaign and are never counted in a quorum. A new server joins
// as a learner, catches up (maybe by snapshot), then is promoted.

import { Packr } from 'msgpackr';
import { invariant } from './assert.js';
import { RaftError } from './errors.js';
import type { ClusterConfig, ConfChange, ConfChangeType, Entry, NodeId } from './types.js';

/** Bound on ConfChange.context (e.g. an address); keeps config entries small. */
export const MAX_CONF_CHANGE_CONTEXT_BYTES = 4096;
/** Bound on a node id's length, as the transport's codec allows. */
export const MAX_NODE_ID_CHARS = 256;

const packr = new Packr({ useRecords: false });
const CHANGE_TYPES: readonly ConfChangeType[] = ['add-learner', 'promote', 'add-voter', 'remove'];

export function encodeConfChange(change: ConfChange): Uint8Array {
  checkConfChangeShape(change);
  const wire: Record<string, unknown> = { type: change.type, node: change.node };
  if (change.context !== undefined) wire['context'] = change.context;
  const buf = packr.pack(wire);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Decodes the data of a `config` entry. Throws RaftError('BAD_REQUEST') naming the problem. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  let x: unknown;
  try {
    x = packr.unpack(data);
  } catch (e) {
    throw new RaftError('BAD_REQUEST', `config entry data is not msgpack: ${(e as Error).message}`);
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new RaftError('BAD_REQUEST', 'config entry data is not a map');
  const o = x as Record<string, unknown>;
  const keys = Object.keys(o);
  const allowed = ['type', 'node', 'context'];
  if (!keys.every((k) => allowed.includes(k))) throw new RaftError('BAD_REQUEST', `config entry has fields [${keys.join(', ')}]`);
  const ctx = o['context'];
  const change: ConfChange =
    ctx === undefined
      ? { type: o['type'] as ConfChangeType, node: o['node'] as NodeId }
      : { type: o['type'] as ConfChangeType, node: o['node'] as NodeId, context: ctx instanceof Uint8Array ? new Uint8Array(ctx.buffer, ctx.byteOffset, ctx.byteLength) : (ctx as Uint8Array) };
  checkConfChangeShape(change);
  return change;
}

function checkConfChangeShape(c: ConfChange): void {
  const bad = (what: string): never => {
    throw new RaftError('BAD_REQUEST', `invalid ConfChange: ${what}`);
  };
  if (!CHANGE_TYPES.includes(c.type)) bad(`type must be one of ${CHANGE_TYPES.join(', ')}, got ${String(c.type)}`);
  if (typeof c.node !== 'string' || c.node === '' || c.node.length > MAX_NODE_ID_CHARS) bad(`node must be a non-empty string of at most ${MAX_NODE_ID_CHARS} chars`);
  if (c.context !== undefined) {
    if (!(c.context instanceof Uint8Array)) bad('context must be a Uint8Array');
    else if (c.context.byteLength > MAX_CONF_CHANGE_CONTEXT_BYTES) bad(`context of ${c.context.byteLength} bytes exceeds ${MAX_CONF_CHANGE_CONTEXT_BYTES}`);
  }
}

export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id);
}

export function isLearner(config: ClusterConfig, id: NodeId): boolean {
  return config.learners.includes(id);
}

export function isMember(config: ClusterConfig, id: NodeId): boolean {
  return isVoter(config, id) || isLearner(config, id);
}

export function describeConfig(c: ClusterConfig): string {
  return `voters [${c.voters.join(', ')}]${c.learners.length > 0 ? ` learners [${c.learners.join(', ')}]` : ''}`;
}

/**
 * Why `change` cannot be applied to `config`, or null if it can. A leader refuses such a change
 * (BAD_REQUEST); a follower never sees one (its log prefix, hence its configuration, is the
 * leader's: Log Matching).
 */
export function confChangeError(config: ClusterConfig, change: ConfChange): string | null {
  const { node } = change;
  switch (change.type) {
    case 'add-learner':
    case 'add-voter':
      return isMember(config, node) ? `${node} is already a ${isVoter(config, node) ? 'voter' : 'learner'}` : null;
    case 'promote':
      return isLearner(config, node) ? null : `${node} is not a learner (only a learner can be promoted)`;
    case 'remove':
      if (!isMember(config, node)) return `${node} is not a member`;
      if (config.voters.length === 1 && config.voters[0] === node) return `${node} is the last voter`;
      return null;
  }
}

/** The configuration after `change`; the change must be valid (see confChangeError). */
export function applyConfChange(config: ClusterConfig, change: ConfChange): ClusterConfig {
  const err = confChangeError(config, change);
  invariant(err === null, `config change ${change.type} ${change.node} on ${describeConfig(config)}: ${err}`);
  const { node } = change;
  const voters = config.voters.filter((v) => v !== node);
  const learners = config.learners.filter((l) => l !== node);
  switch (change.type) {
    case 'add-learner':
      return { voters, learners: [...learners, node] };
    case 'add-voter':
    case 'promote':
      return { voters: [...voters, node], learners };
    case 'remove':
      return { voters, learners };
  }
}

export function checkConfig(c: ClusterConfig, what: string): void {
  const all = [...c.voters, ...c.learners];
  invariant(new Set(all).size === all.length, `${what}: a node appears twice in ${describeConfig(c)}`);
  invariant(all.every((id) => typeof id === 'string' && id !== ''), `${what}: bad node id in ${describeConfig(c)}`);
}

/**
 * The configurations of one log: the one at `baseIndex` (the bootstrap configuration at 0, or a
 * snapshot's), and one per `config` entry after it, in index order. The configuration in effect
 * is the last (rule 1 above). RaftLog keeps it in step with every append, truncation, compaction
 * and snapshot install.
 */
export class ConfigHistory {
  private base: ClusterConfig;
  private baseIndex: number;
  private readonly changes: { readonly index: number; readonly config: ClusterConfig }[] = [];

  constructor(base: ClusterConfig, baseIndex: number) {
    checkConfig(base, 'base configuration');
    this.base = base;
    this.baseIndex = baseIndex;
  }

  /** The configuration in effect (the latest in the log). */
  current(): ClusterConfig {
    return this.changes[this.changes.length - 1]?.config ?? this.base;
  }

  /** Index of the entry that set the current configuration (the base index if none in the log). */
  currentIndex(): number {
    return this.changes[this.changes.length - 1]?.index ?? this.baseIndex;
  }

  /** The configuration as of `index` (at or after the base index): the latest set at or before it. */
  at(index: number): ClusterConfig {
    invariant(index >= this.baseIndex, `configuration at ${index} is before the known base at ${this.baseIndex}`);
    let config = this.base;
    for (const c of this.changes) {
      if (c.index > index) break;
      config = c.config;
    }
    return config;
  }

  /** Whether `id` is a member of any configuration this history holds (the base or a later one). */
  everMember(id: NodeId): boolean {
    return isMember(this.base, id) || this.changes.some((c) => isMember(c.config, id));
  }

  /** An entry was appended to the log. */
  onAppend(entry: Entry): void {
    if (entry.type !== 'config' || entry.index <= this.baseIndex) return;
    const change = decodeConfChange(entry.data);
    this.changes.push({ index: entry.index, config: applyConfChange(this.current(), change) });
  }

  /** Entries from `index` on were deleted: their configurations are undone (rule 1). */
  truncateFrom(index: number): void {
    while ((this.changes[this.changes.length - 1]?.index ?? -1) >= index) this.changes.pop();
  }

  /** The log now starts after a snapshot at `index`: forget history before it. */
  compact(index: number): void {
    if (index <= this.baseIndex) return;
    this.base = this.at(index);
    this.baseIndex = index;
    while ((this.changes[0]?.index ?? Infinity) <= index) this.changes.shift();
  }

  /** A snapshot replaced the whole log. */
  reset(base: ClusterConfig, baseIndex: number): void {
    checkConfig(base, 'snapshot configuration');
    this.base = base;
    this.baseIndex = baseIndex;
    this.changes.length = 0;
  }
}
