// LinkProxy: a fault-injecting TCP proxy for one directed peer link (node `from` dials node `to`).
//
// Design
// - The proxy listens on 127.0.0.1 at a port the OS chooses (port 0) and forwards every accepted connection to the
//   target (`to`'s real peer listener). The runner gives node `from` the proxy's address as `to`'s peer URL, so every
//   connection `from` opens to `to` passes through this proxy.
// - A TCP connection carries bytes both ways. The proxy sees two byte flows per connection:
//     `out`:  dialer -> target, i.e. bytes `from` sends to `to`;
//     `back`: target -> dialer, i.e. bytes `to` sends to `from`.
//   Each flow has its own policy: forwarded or dropped, and a latency with jitter.
// - Dropping is real and immediate. When a flow starts dropping, every open connection is reset (RST on both
//   sockets, so both ends see a broken link at once), and from then on that flow's bytes are discarded, never
//   buffered for later: a partition must not deliver stale bytes after heal. A connection that has lost bytes has a
//   gap in its stream, which TCP itself never produces, so it is reset as soon as the flow heals; peers reconnect.
//   - Both flows dropped (a full cut): new connections are reset as soon as they are accepted, and the target is
//     never dialed (the dialer sees ECONNRESET at once, like iptables REJECT --reject-with tcp-reset; Jepsen's DROP
//     would make the dial hang until the dialer's own timeout, with the same end result, only later).
//   - One flow dropped (one-way): new connections are accepted and forwarded; the dropped flow's bytes are
//     black-holed while the other flow's bytes still arrive. This is message-level one-way: over a real network a
//     one-way packet drop also kills the TCP acks, so a TCP stream would stall in both directions; here the side
//     whose bytes flow keeps hearing its peer, which is the interesting case for Raft (a leader that hears
//     responses but whose appends are lost, or the reverse).
// - Latency: each chunk is held for latencyMs + U[0, jitterMs) ms, but never overtakes an earlier chunk of the same
//   flow (a TCP stream is ordered), so a chunk's delivery time is max(previous delivery time, now + delay).
//   Bound: at most `maxQueuedBytes` bytes wait per flow of a connection. At the bound the proxy stops reading the
//   source socket (pause), so TCP flow control pushes back on the sender, exactly as a full link buffer would; it
//   resumes reading when the queue drains below half the bound. The same pause/resume follows the destination's
//   write backpressure ('drain'), so the proxy never buffers without bound.
// - At most `maxConnections` connections (open or being dialed) per link; one more is reset on accept and counted
//   as refused. A Raft peer keeps one or two connections per link, so the bound only stops a reconnect storm.
// - close() stops the server, destroys every socket and clears every timer.

import net from 'node:net';

/** The policy of one byte flow: dropped or forwarded, and with what delay. */
export interface FlowPolicy {
  readonly drop: boolean;
  readonly latencyMs: number;
  readonly jitterMs: number;
}

export const HEALTHY_FLOW: FlowPolicy = Object.freeze({ drop: false, latencyMs: 0, jitterMs: 0 });

/** Counters of one link, for the runner's results. */
export interface LinkStats {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  /** Bytes delivered `from` -> `to` and `to` -> `from`. */
  readonly bytesForwardedOut: number;
  readonly bytesForwardedBack: number;
  /** Bytes black-holed because their flow was dropped. */
  readonly bytesDroppedOut: number;
  readonly bytesDroppedBack: number;
  /** Connections accepted and forwarded to the target. */
  readonly connectionsAccepted: number;
  /** Connections reset on accept because the link was fully cut or at maxConnections. */
  readonly connectionsRefused: number;
  /** Accepted connections reset because the target could not be dialed (e.g. the node is down). */
  readonly dialFailures: number;
  /** Open connections reset by a fault (a cut, a heal after a gap, or reset()). */
  readonly connectionsReset: number;
  readonly openConnections: number;
  /** Most bytes ever waiting in one flow's latency queue (never above maxQueuedBytes + one read chunk). */
  readonly peakQueuedBytes: number;
  /** Times a source socket was paused because its flow's queue reached maxQueuedBytes. */
  readonly pausesAtBound: number;
}

export interface LinkProxyOptions {
  readonly from: string;
  readonly to: string;
  readonly targetHost: string;
  readonly targetPort: number;
  /** Bound on bytes waiting in one flow of one connection (latency queue); default 4 MiB. */
  readonly maxQueuedBytes?: number;
  /** Bound on connections open or being dialed on this link; default 64. */
  readonly maxConnections?: number;
  /** Source of randomness for jitter, in [0, 1); pass a seeded one to replay a run. Default Math.random. */
  readonly random?: () => number;
}

export const DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 64;

type FlowName = 'out' | 'back';

interface QueuedChunk {
  readonly data: Buffer;
  readonly dueAtMs: number;
}

/** One direction of one proxied connection: reads `src`, writes `dst`. */
interface Flow {
  readonly name: FlowName;
  readonly src: net.Socket;
  readonly dst: net.Socket;
  readonly queue: QueuedChunk[];
  queuedBytes: number;
  lastDueAtMs: number;
  timer: NodeJS.Timeout | undefined;
  /** Paused because the queue is at its bound or the destination is not draining. */
  pausedForQueue: boolean;
  pausedForDrain: boolean;
  /** The source half-closed; end dst once the queue is empty. */
  srcEnded: boolean;
}

interface Conn {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  readonly out: Flow;
  readonly back: Flow;
  /** Bytes of this connection were dropped: its stream has a gap and must not resume. */
  tainted: boolean;
  closed: boolean;
}

export class LinkProxy {
  readonly from: string;
  readonly to: string;
  private readonly targetHost: string;
  private readonly targetPort: number;
  private readonly maxQueuedBytes: number;
  private readonly maxConnections: number;
  private readonly random: () => number;
  private readonly server: net.Server;
  private readonly conns = new Set<Conn>();
  /** Accepted connections whose target dial is still in progress. */
  private readonly pending = new Set<{ readonly client: net.Socket; readonly upstream: net.Socket }>();
  private policy: { out: FlowPolicy; back: FlowPolicy } = { out: HEALTHY_FLOW, back: HEALTHY_FLOW };
  private listeningPort = 0;
  private closed = false;
  private counters = {
    bytesForwardedOut: 0,
    bytesForwardedBack: 0,
    bytesDroppedOut: 0,
    bytesDroppedBack: 0,
    connectionsAccepted: 0,
    connectionsRefused: 0,
    connectionsReset: 0,
    dialFailures: 0,
    peakQueuedBytes: 0,
    pausesAtBound: 0,
  };

  constructor(opts: LinkProxyOptions) {
    this.from = opts.from;
    this.to = opts.to;
    this.targetHost = opts.targetHost;
    this.targetPort = opts.targetPort;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    if (!(this.maxQueuedBytes > 0)) throw new RangeError('LinkProxy: maxQueuedBytes must be positive');
    this.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (!(this.maxConnections >= 1)) throw new RangeError('LinkProxy: maxConnections must be at least 1');
    this.random = opts.random ?? Math.random;
    this.server = net.createServer({ allowHalfOpen: true }, (s) => this.onAccept(s));
  }

  /** Starts listening on 127.0.0.1 at an OS-assigned port; resolves to the port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('LinkProxy: no TCP address');
    this.listeningPort = addr.port;
    return addr.port;
  }

  get port(): number {
    return this.listeningPort;
  }

  /** The URL `from` must use to reach `to`. */
  get url(): string {
    return `http://127.0.0.1:${this.listeningPort}`;
  }

  /** Sets the policy of both flows. A flow that starts dropping resets every open connection at once. */
  setPolicy(out: FlowPolicy, back: FlowPolicy): void {
    checkPolicy(out);
    checkPolicy(back);
    const startsDropping = (out.drop && !this.policy.out.drop) || (back.drop && !this.policy.back.drop);
    this.policy = { out, back };
    if (startsDropping) {
      this.resetConnections();
      return;
    }
    // Connections whose stream has a gap cannot resume once nothing drops any more.
    if (!out.drop && !back.drop) {
      for (const c of [...this.conns]) if (c.tainted) this.resetConn(c);
    }
  }

  get currentPolicy(): { readonly out: FlowPolicy; readonly back: FlowPolicy } {
    return this.policy;
  }

  /** Resets (RST) every open connection of this link; returns how many. */
  resetConnections(): number {
    let n = 0;
    for (const p of [...this.pending]) {
      this.pending.delete(p);
      this.counters.connectionsReset++;
      p.client.resetAndDestroy();
      p.upstream.destroy();
      n++;
    }
    for (const c of [...this.conns]) {
      this.resetConn(c);
      n++;
    }
    return n;
  }

  stats(): LinkStats {
    return { from: this.from, to: this.to, port: this.listeningPort, ...this.counters, openConnections: this.conns.size };
  }

  /** Bytes currently waiting in latency queues (all connections, both flows). */
  queuedBytes(): number {
    let n = 0;
    for (const c of this.conns) n += c.out.queuedBytes + c.back.queuedBytes;
    return n;
  }

  /** Stops listening and destroys every socket and timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.conns]) this.destroyConn(c, false);
    for (const p of [...this.pending]) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pending.clear();
    if (this.server.listening) {
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
  }

  private onAccept(client: net.Socket): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    client.on('error', () => {});
    const full = this.conns.size + this.pending.size >= this.maxConnections;
    if (full || (this.policy.out.drop && this.policy.back.drop)) {
      this.counters.connectionsRefused++;
      client.resetAndDestroy();
      return;
    }
    client.pause();
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort, allowHalfOpen: true });
    upstream.on('error', () => {});
    const pending = { client, upstream };
    this.pending.add(pending);
    const fail = (): void => {
      if (!this.pending.delete(pending)) return;
      if (!client.destroyed) {
        this.counters.dialFailures++;
        client.resetAndDestroy();
      }
      upstream.destroy();
    };
    client.once('close', fail);
    upstream.once('error', fail);
    upstream.once('connect', () => {
      client.off('close', fail);
      upstream.off('error', fail);
      const stillPending = this.pending.delete(pending);
      if (this.closed || client.destroyed || !stillPending) {
        upstream.destroy();
        client.destroy();
        return;
      }
      this.pair(client, upstream);
    });
  }

  private pair(client: net.Socket, upstream: net.Socket): void {
    const conn: Conn = {
      client,
      upstream,
      out: newFlow('out', client, upstream),
      back: newFlow('back', upstream, client),
      tainted: false,
      closed: false,
    };
    this.conns.add(conn);
    this.counters.connectionsAccepted++;
    for (const flow of [conn.out, conn.back]) {
      flow.src.on('data', (chunk: Buffer) => this.onData(conn, flow, chunk));
      flow.src.on('end', () => {
        // Half-close follows the data: end dst once everything queued has been written.
        flow.srcEnded = true;
        if (flow.queue.length === 0) flow.dst.end();
      });
      flow.dst.on('drain', () => {
        flow.pausedForDrain = false;
        this.maybeResume(flow);
      });
    }
    const onClose = (): void => this.destroyConn(conn, false);
    client.on('close', onClose);
    upstream.on('close', onClose);
    client.resume();
  }

  private onData(conn: Conn, flow: Flow, chunk: Buffer): void {
    if (conn.closed) return;
    const p = this.policy[flow.name];
    if (p.drop) {
      conn.tainted = true;
      if (flow.name === 'out') this.counters.bytesDroppedOut += chunk.length;
      else this.counters.bytesDroppedBack += chunk.length;
      return;
    }
    const delayMs = p.latencyMs + (p.jitterMs > 0 ? this.random() * p.jitterMs : 0);
    if (delayMs <= 0 && flow.queue.length === 0) {
      this.write(flow, chunk);
      return;
    }
    // FIFO: a chunk never overtakes an earlier one of the same flow.
    const dueAtMs = Math.max(flow.lastDueAtMs, Date.now() + delayMs);
    flow.lastDueAtMs = dueAtMs;
    flow.queue.push({ data: chunk, dueAtMs });
    flow.queuedBytes += chunk.length;
    this.counters.peakQueuedBytes = Math.max(this.counters.peakQueuedBytes, flow.queuedBytes);
    if (flow.queuedBytes >= this.maxQueuedBytes && !flow.pausedForQueue) {
      this.counters.pausesAtBound++;
      flow.pausedForQueue = true;
      flow.src.pause();
    }
    this.schedule(conn, flow);
  }

  private schedule(conn: Conn, flow: Flow): void {
    if (flow.timer !== undefined || flow.queue.length === 0 || conn.closed) return;
    const head = flow.queue[0];
    if (head === undefined) return;
    flow.timer = setTimeout(() => {
      flow.timer = undefined;
      if (conn.closed) return;
      const now = Date.now();
      while (flow.queue.length > 0 && (flow.queue[0]?.dueAtMs ?? Infinity) <= now) {
        const c = flow.queue.shift();
        if (c === undefined) break;
        flow.queuedBytes -= c.data.length;
        // A flow that started dropping meanwhile has had its connection reset, so anything still here is forwarded.
        this.write(flow, c.data);
      }
      if (flow.pausedForQueue && flow.queuedBytes < this.maxQueuedBytes / 2) {
        flow.pausedForQueue = false;
        this.maybeResume(flow);
      }
      if (flow.queue.length === 0 && flow.srcEnded) flow.dst.end();
      this.schedule(conn, flow);
    }, Math.max(0, head.dueAtMs - Date.now()));
  }

  private write(flow: Flow, data: Buffer): void {
    if (flow.dst.destroyed || flow.dst.writableEnded) return;
    if (flow.name === 'out') this.counters.bytesForwardedOut += data.length;
    else this.counters.bytesForwardedBack += data.length;
    if (!flow.dst.write(data) && !flow.pausedForDrain) {
      flow.pausedForDrain = true;
      flow.src.pause();
    }
  }

  private maybeResume(flow: Flow): void {
    if (!flow.pausedForQueue && !flow.pausedForDrain && !flow.src.destroyed) flow.src.resume();
  }

  private resetConn(c: Conn): void {
    if (c.closed) return;
    this.counters.connectionsReset++;
    this.destroyConn(c, true);
  }

  private destroyConn(c: Conn, rst: boolean): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c);
    for (const f of [c.out, c.back]) {
      if (f.timer !== undefined) clearTimeout(f.timer);
      f.timer = undefined;
      f.queue.length = 0;
      f.queuedBytes = 0;
    }
    for (const s of [c.client, c.upstream]) {
      if (s.destroyed) continue;
      if (rst) s.resetAndDestroy();
      else s.destroy();
    }
  }
}

function newFlow(name: FlowName, src: net.Socket, dst: net.Socket): Flow {
  return { name, src, dst, queue: [], queuedBytes: 0, lastDueAtMs: 0, timer: undefined, pausedForQueue: false, pausedForDrain: false, srcEnded: false };
}

function checkPolicy(p: FlowPolicy): void {
  if (!(p.latencyMs >= 0) || !(p.jitterMs >= 0) || !Number.isFinite(p.latencyMs) || !Number.isFinite(p.jitterMs)) {
    throw new RangeError(`LinkProxy: latencyMs and jitterMs must be finite and >= 0 (got ${p.latencyMs}, ${p.jitterMs})`);
  }
}
