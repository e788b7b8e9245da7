// The simulated network: which directed links are up, and how each one misbehaves.
//
// Connectivity and reliability are separate layers:
//  - connectivity (partitions, disconnected nodes, one-way blocked links) decides whether a
//    message can cross a link at all; it is checked when a message is sent AND when it would be
//    delivered, so a partition also cuts the wire for messages already in flight;
//  - reliability (per directed link: drop probability, duplicate probability, delay range) decides
//    what happens to a message on a connected link. Independent random delays reorder messages.

import type { NodeId } from '../core/types.js';
import type { SimRandom } from './random.js';

export interface LinkReliability {
  /** Probability that a message is lost, in [0, 1]. */
  readonly drop: number;
  /** Probability that a delivered message is delivered a second time (independent delay), in [0, 1]. */
  readonly duplicate: number;
  /** Uniform one-way delay range in ms; different delays reorder messages. */
  readonly delayMs: readonly [number, number];
}

export interface UnreliableOptions {
  readonly drop: number;
  readonly duplicate?: number;
  readonly delayMs?: readonly [number, number];
}

function validate(r: LinkReliability): LinkReliability {
  const [lo, hi] = r.delayMs;
  if (!(r.drop >= 0 && r.drop <= 1)) throw new RangeError(`drop must be in [0, 1], got ${r.drop}`);
  if (!(r.duplicate >= 0 && r.duplicate <= 1)) throw new RangeError(`duplicate must be in [0, 1], got ${r.duplicate}`);
  if (!(lo >= 0 && hi >= lo && Number.isFinite(hi))) throw new RangeError(`bad delay range [${lo}, ${hi}]`);
  return r;
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`;
}

/** Bound on copies of one message (1 original + duplicates): a duplicate is never duplicated again. */
export const MAX_COPIES_PER_MESSAGE = 2;

export class SimNetwork {
  private base: LinkReliability;
  private readonly perLink = new Map<string, LinkReliability>();
  private readonly disconnected = new Set<NodeId>();
  private readonly blocked = new Set<string>();
  /** When set, two nodes can talk iff some group contains both. */
  private groups: readonly (readonly NodeId[])[] | null = null;
  private groupOf: Map<string, boolean> | null = null;

  constructor(
    readonly ids: readonly NodeId[],
    private readonly reliableDelayMs: readonly [number, number],
  ) {
    this.base = validate({ drop: 0, duplicate: 0, delayMs: reliableDelayMs });
  }

  // ----- reliability -----

  /** All links: null restores reliable links with the default delay (and clears per-link settings). */
  setUnreliable(opts: UnreliableOptions | null): void {
    this.perLink.clear();
    this.base =
      opts === null
        ? validate({ drop: 0, duplicate: 0, delayMs: this.reliableDelayMs })
        : validate({ drop: opts.drop, duplicate: opts.duplicate ?? 0, delayMs: opts.delayMs ?? this.reliableDelayMs });
  }

  /** One directed link; null returns it to the all-links setting. */
  setLinkUnreliable(from: NodeId, to: NodeId, opts: UnreliableOptions | null): void {
    this.checkId(from);
    this.checkId(to);
    if (opts === null) this.perLink.delete(linkKey(from, to));
    else
      this.perLink.set(
        linkKey(from, to),
        validate({ drop: opts.drop, duplicate: opts.duplicate ?? 0, delayMs: opts.delayMs ?? this.base.delayMs }),
      );
  }

  reliability(from: NodeId, to: NodeId): LinkReliability {
    return this.perLink.get(linkKey(from, to)) ?? this.base;
  }

  /**
   * What happens to one message sent now on from→to: the delays of the copies to deliver
   * (empty: lost). At most MAX_COPIES_PER_MESSAGE copies.
   */
  plan(from: NodeId, to: NodeId, rng: SimRandom): number[] {
    const r = this.reliability(from, to);
    if (rng.chance(r.drop)) return [];
    const delays = [rng.between(r.delayMs)];
    if (rng.chance(r.duplicate)) delays.push(rng.between(r.delayMs));
    return delays;
  }

  // ----- connectivity -----

  canTalk(from: NodeId, to: NodeId): boolean {
    if (from === to) return true;
    if (this.disconnected.has(from) || this.disconnected.has(to)) return false;
    if (this.blocked.has(linkKey(from, to))) return false;
    if (this.groupOf !== null && !this.groupOf.has(linkKey(from, to))) return false;
    return true;
  }

  /** 6.5840's disconnect: cut every link of `id`, both ways (partitions stay as they are). */
  disconnect(id: NodeId): void {
    this.checkId(id);
    this.disconnected.add(id);
  }

  connect(id: NodeId): void {
    this.checkId(id);
    this.disconnected.delete(id);
  }

  /**
   * Replaces the partition: two nodes can talk iff some group contains both. Groups may overlap
   * (a bridge node in two groups; a ring of pairs). A node in no group is isolated.
   */
  partition(groups: readonly (readonly NodeId[])[]): void {
    const pairs = new Map<string, boolean>();
    for (const g of groups) {
      for (const a of g) {
        this.checkId(a);
        for (const b of g) pairs.set(linkKey(a, b), true);
      }
    }
    this.groups = groups.map((g) => g.slice());
    this.groupOf = pairs;
  }

  /** One-way cut: `to` no longer hears `from` (but `from` may still hear `to`). */
  blockLink(from: NodeId, to: NodeId): void {
    this.checkId(from);
    this.checkId(to);
    this.blocked.add(linkKey(from, to));
  }

  unblockLink(from: NodeId, to: NodeId): void {
    this.blocked.delete(linkKey(from, to));
  }

  /** Restores full connectivity: no partition, no blocked link, no disconnected node. Reliability is unchanged. */
  heal(): void {
    this.groups = null;
    this.groupOf = null;
    this.blocked.clear();
    this.disconnected.clear();
  }

  /** A one-line description of the current connectivity, for the trace. */
  describe(): string {
    const parts: string[] = [];
    if (this.groups !== null) parts.push(`groups ${this.groups.map((g) => `{${g.join(',')}}`).join(' ')}`);
    if (this.blocked.size > 0) parts.push(`blocked ${[...this.blocked].map((k) => k.replace('>', '↛')).join(' ')}`);
    if (this.disconnected.size > 0) parts.push(`disconnected ${[...this.disconnected].join(',')}`);
    return parts.length === 0 ? 'fully connected' : parts.join('; ');
  }

  private checkId(id: NodeId): void {
    if (!this.ids.includes(id)) throw new RangeError(`unknown node ${id}`);
  }
}
