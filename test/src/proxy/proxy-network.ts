// ProxyNetwork: every peer link of an N-node cluster behind a LinkProxy, and the fault plans the chaos runner applies.
//
// Design
// - For each ordered pair (A, B), A != B, one LinkProxy forwards the connections A dials to B's real peer listener.
//   peerUrlsFor(A) gives the URLs A must use: its own real peer URL for itself, and for every B the proxy A->B.
//   (So A's outbound connections all go through proxies; a connection B dials to A goes through proxy B->A.)
// - Faults are stated per directed byte flow: blocked(A, B) means "bytes A sends to B are dropped", whichever side
//   dialed the TCP connection. Proxy A->B drops its `out` flow when blocked(A, B) and its `back` flow when
//   blocked(B, A); proxy B->A the reverse. A symmetric cut therefore cuts both proxies of the pair fully (new
//   connections reset on accept), and oneWay(A, B) keeps the B -> A bytes flowing on both proxies.
//   See link-proxy.ts for what dropping does to open connections (they are reset; no stale bytes after heal).
// - Latency is stated the same way: delay(A, B, ...) delays the bytes A sends to B.
// - Every fault plan replaces the drop set (plans do not stack); latency is kept until heal() or clearDelays().
//   heal() clears drops and latencies, and resets connections whose stream lost bytes.

import { LinkProxy, HEALTHY_FLOW, type FlowPolicy, type LinkStats } from './link-proxy.js';

export interface ProxyNode {
  readonly name: string;
  /** Host and port of the node's real peer listener. */
  readonly peerHost: string;
  readonly peerPort: number;
}

export interface ProxyNetworkOptions {
  readonly nodes: readonly ProxyNode[];
  /** Bound on bytes held per flow of one connection by the latency queue; see LinkProxy. */
  readonly maxQueuedBytes?: number;
  /** Bound on connections per link; see LinkProxy. */
  readonly maxConnections?: number;
  /** Randomness for jitter (seed it to replay a run). */
  readonly random?: () => number;
}

interface Latency {
  readonly latencyMs: number;
  readonly jitterMs: number;
}

/** The fault plan last applied, for logs and results. */
export type FaultPlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'partition'; readonly groups: readonly (readonly string[])[] }
  | { readonly kind: 'isolate'; readonly node: string }
  | { readonly kind: 'one-way'; readonly from: string; readonly to: string }
  | { readonly kind: 'bridge'; readonly bridge: string; readonly left: readonly string[]; readonly right: readonly string[] }
  | { readonly kind: 'majorities-ring'; readonly ring: readonly string[] };

export class ProxyNetwork {
  readonly nodes: readonly ProxyNode[];
  private readonly links = new Map<string, LinkProxy>();
  /** Directed pairs `${from}\u0000${to}` whose bytes are dropped. */
  private blocked = new Set<string>();
  private readonly latency = new Map<string, Latency>();
  private plan: FaultPlan = { kind: 'none' };

  private constructor(opts: ProxyNetworkOptions) {
    const names = opts.nodes.map((n) => n.name);
    if (new Set(names).size !== names.length) throw new Error(`ProxyNetwork: duplicate node names in ${names.join(',')}`);
    if (names.length < 2) throw new Error('ProxyNetwork: needs at least 2 nodes');
    this.nodes = opts.nodes;
    for (const a of opts.nodes) {
      for (const b of opts.nodes) {
        if (a.name === b.name) continue;
        const proxyOpts = {
          from: a.name,
          to: b.name,
          targetHost: b.peerHost,
          targetPort: b.peerPort,
          ...(opts.maxQueuedBytes !== undefined ? { maxQueuedBytes: opts.maxQueuedBytes } : {}),
          ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}),
          ...(opts.random !== undefined ? { random: opts.random } : {}),
        };
        this.links.set(key(a.name, b.name), new LinkProxy(proxyOpts));
      }
    }
  }

  /** Creates and starts every link proxy (N * (N - 1) listeners on OS-assigned loopback ports). */
  static async start(opts: ProxyNetworkOptions): Promise<ProxyNetwork> {
    const net = new ProxyNetwork(opts);
    try {
      await Promise.all([...net.links.values()].map((l) => l.listen()));
    } catch (err) {
      await net.close();
      throw err;
    }
    return net;
  }

  get names(): readonly string[] {
    return this.nodes.map((n) => n.name);
  }

  link(from: string, to: string): LinkProxy {
    const l = this.links.get(key(from, to));
    if (l === undefined) throw new Error(`ProxyNetwork: no link ${from} -> ${to}`);
    return l;
  }

  /** Peer URL of every member as node `name` must dial it: its own real URL, the proxies for the others. */
  peerUrlsFor(name: string): ReadonlyMap<string, string> {
    const self = this.node(name);
    const out = new Map<string, string>();
    for (const n of this.nodes) {
      out.set(n.name, n.name === name ? `http://${self.peerHost}:${self.peerPort}` : this.link(name, n.name).url);
    }
    return out;
  }

  /** The --initial-cluster value for node `name` (`m1=http://...,m2=http://...`). */
  initialClusterFor(name: string): string {
    return [...this.peerUrlsFor(name)].map(([n, u]) => `${n}=${u}`).join(',');
  }

  get currentPlan(): FaultPlan {
    return this.plan;
  }

  /** Links between different groups drop both ways. Groups must cover every node exactly once. */
  partition(groups: readonly (readonly string[])[]): void {
    const groupOf = new Map<string, number>();
    groups.forEach((g, i) => {
      for (const n of g) {
        this.node(n);
        if (groupOf.has(n)) throw new Error(`ProxyNetwork.partition: ${n} is in two groups`);
        groupOf.set(n, i);
      }
    });
    for (const n of this.names) if (!groupOf.has(n)) throw new Error(`ProxyNetwork.partition: ${n} is in no group`);
    const blocked = new Set<string>();
    for (const a of this.names) for (const b of this.names) if (groupOf.get(a) !== groupOf.get(b)) blocked.add(key(a, b));
    this.applyBlocked(blocked, { kind: 'partition', groups: groups.map((g) => [...g]) });
  }

  /** Cuts `node` off from every other node, both ways. */
  isolate(node: string): void {
    this.partition([[node], this.names.filter((n) => n !== node)]);
    this.plan = { kind: 'isolate', node };
  }

  /** Bytes `from` sends to `to` are dropped; bytes `to` sends to `from` still arrive. */
  oneWay(from: string, to: string): void {
    this.node(from);
    this.node(to);
    if (from === to) throw new Error('ProxyNetwork.oneWay: from and to must differ');
    this.applyBlocked(new Set([key(from, to)]), { kind: 'one-way', from, to });
  }

  /**
   * Jepsen's bridge: two halves that cannot talk to each other, and one node (the middle of `order`) that talks to
   * both. With 5 nodes [a,b,c,d,e]: {a,b} and {d,e} are cut from each other, c reaches all.
   */
  bridge(order: readonly string[] = this.names): void {
    this.checkPermutation(order);
    const mid = Math.floor(order.length / 2);
    const bridgeNode = order[mid] as string;
    const left = order.slice(0, mid);
    const right = order.slice(mid + 1);
    const blocked = new Set<string>();
    for (const a of left) for (const b of right) {
      blocked.add(key(a, b));
      blocked.add(key(b, a));
    }
    this.applyBlocked(blocked, { kind: 'bridge', bridge: bridgeNode, left, right });
  }

  /**
   * Majorities ring: nodes on a ring (in `order`) each reach only their ring neighbours within distance
   * d = ceil(floor(n/2) / 2), so each sees 2d + 1 >= floor(n/2) + 1 nodes, a majority, and no two nodes see the
   * same majority. With 5 nodes each node reaches its 2 ring neighbours. With 3 nodes nothing is cut.
   */
  majoritiesRing(order: readonly string[] = this.names): void {
    this.checkPermutation(order);
    const n = order.length;
    const d = Math.ceil(Math.floor(n / 2) / 2);
    const blocked = new Set<string>();
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (i === j) continue;
        const dist = Math.min(Math.abs(i - j), n - Math.abs(i - j));
        if (dist > d) blocked.add(key(order[i] as string, order[j] as string));
      }
    }
    this.applyBlocked(blocked, { kind: 'majorities-ring', ring: [...order] });
  }

  /** Delays the bytes `from` sends to `to` by latencyMs + U[0, jitterMs) ms (order kept). 0, 0 removes it. */
  delay(from: string, to: string, latencyMs: number, jitterMs = 0): void {
    this.node(from);
    this.node(to);
    if (latencyMs === 0 && jitterMs === 0) this.latency.delete(key(from, to));
    else this.latency.set(key(from, to), { latencyMs, jitterMs });
    this.push();
  }

  clearDelays(): void {
    this.latency.clear();
    this.push();
  }

  /** Resets every open TCP connection between `a` and `b` (either dialer); returns how many. */
  reset(a: string, b: string): number {
    return this.link(a, b).resetConnections() + this.link(b, a).resetConnections();
  }

  /** Clears every drop and latency. Connections that lost bytes are reset; new ones flow. */
  heal(): void {
    this.blocked = new Set();
    this.latency.clear();
    this.plan = { kind: 'none' };
    this.push();
  }

  /** Whether bytes `from` sends to `to` are currently dropped. */
  isBlocked(from: string, to: string): boolean {
    return this.blocked.has(key(from, to));
  }

  stats(): readonly LinkStats[] {
    return [...this.links.values()].map((l) => l.stats());
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
  }

  private applyBlocked(blocked: Set<string>, plan: FaultPlan): void {
    this.blocked = blocked;
    this.plan = plan;
    this.push();
  }

  /** Pushes the current drop set and latencies down to every proxy. */
  private push(): void {
    for (const l of this.links.values()) {
      l.setPolicy(this.flowPolicy(l.from, l.to), this.flowPolicy(l.to, l.from));
    }
  }

  private flowPolicy(sender: string, receiver: string): FlowPolicy {
    const k = key(sender, receiver);
    const lat = this.latency.get(k);
    const drop = this.blocked.has(k);
    if (!drop && lat === undefined) return HEALTHY_FLOW;
    return { drop, latencyMs: lat?.latencyMs ?? 0, jitterMs: lat?.jitterMs ?? 0 };
  }

  private node(name: string): ProxyNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`ProxyNetwork: unknown node ${name}`);
    return n;
  }

  private checkPermutation(order: readonly string[]): void {
    const sorted = [...order].sort();
    const names = [...this.names].sort();
    if (sorted.length !== names.length || sorted.some((n, i) => n !== names[i])) {
      throw new Error(`ProxyNetwork: ${order.join(',')} is not an ordering of ${names.join(',')}`);
    }
  }
}

function key(from: string, to: string): string {
  return `${from}\u0000${to}`;
}
