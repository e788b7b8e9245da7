// The peer transport: Raft messages over WebSocket, msgpack frames (see codec.ts).
//
// Shape of the links. Every node dials one outbound connection to each peer and only SENDS on it;
// it only RECEIVES on the connections its peers dial to it. So between two nodes there are two
// sockets, one per direction, and "messages to one peer are delivered in order or not at all"
// holds per socket.
//
//   dial ws://host:port/raft → hello {clusterId, from, to} → hello-ack → batches of messages
//
// The accepting side refuses a hello from another cluster (close 4001), from an id that is not
// one of its peers (4002), or addressed to another node (4003); refusals are counted and logged.
//
// Raft tolerates message loss (§5.3: a leader retries AppendEntries indefinitely; elections time
// out and restart), so this transport may drop rather than grow or block:
// - each peer's send queue holds at most maxQueuedMsgsPerPeer messages; when full, NEW messages
//   to that peer are dropped and counted (the queued ones keep their order);
// - when a connection fails or is lost, what was queued for it is dropped and counted: the core
//   will resend what still matters, and stale messages are not delivered late;
// - the messages of one send() call leave at once, as one frame per peer; one frame per peer is
//   in flight at a time, and messages queued meanwhile are coalesced into the next frame, up to
//   maxFrameBytes.
// Nothing a peer sends can throw out of the transport: a malformed frame closes that connection
// (4004), is counted and logged, and the node carries on.

import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { RaftError } from '../core/errors.js';
import type { Message, NodeId } from '../core/types.js';
import {
  type Hello,
  WIRE_VERSION,
  decodeBatch,
  decodeHello,
  decodeHelloAck,
  encodeHello,
  encodeHelloAck,
  encodeMessage,
  frameFromEncoded,
} from './codec.js';
import type { PeerLinkStats, Transport, TransportStats } from './types.js';

export interface WsTransportOptions {
  readonly clusterId: string;
  readonly nodeId: NodeId;
  /** Peer id → "host:port". This node's own entry may be present; it is ignored. */
  readonly peers: Readonly<Record<NodeId, string>>;
  /** An HTTP server the node owns; the transport handles its upgrades on path '/raft' only. */
  readonly server: Server;
  /** Bound on each peer's send queue. Default 4096. When full, new messages are dropped and counted. */
  readonly maxQueuedMsgsPerPeer?: number;
  /** Reconnect backoff: doubles from reconnectMinMs up to reconnectMaxMs, with jitter. Defaults 50 / 2000. */
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /** Target bound on one outgoing frame; a single larger message still goes alone. Default 4 MiB. */
  readonly maxFrameBytes?: number;
  /** Time allowed for the hello/hello-ack exchange. Default 5000. */
  readonly handshakeTimeoutMs?: number;
  /** Keepalive ping on outbound links; a link with no pong for a whole interval is dropped. Default 3000. */
  readonly pingIntervalMs?: number;
  readonly logger?: Logger;
}

/** WebSocket close codes this transport uses (4000-4999 is the application range). */
export const CLOSE_CODES = {
  CLUSTER_MISMATCH: 4001,
  UNKNOWN_PEER: 4002,
  WRONG_NODE: 4003,
  MALFORMED_FRAME: 4004,
  HANDSHAKE_TIMEOUT: 4005,
  REPLACED: 4006,
  WIRE_VERSION: 4007,
  SHUTDOWN: 1001,
} as const;

/** Largest frame a receiver accepts (ws maxPayload); bigger messages are dropped by the sender. */
export const MAX_INCOMING_FRAME_BYTES = 64 * 1024 * 1024;
/** Messages per frame (a msgpack array16 header). */
const MAX_MSGS_PER_FRAME = 0xffff;
/** After close(), how long a peer gets to answer the close handshake before the socket is cut. */
const CLOSE_GRACE_MS = 500;

/** Outbound link to one peer. */
interface PeerLink {
  readonly id: NodeId;
  readonly address: string;
  ws: WebSocket | null;
  /** True once the peer acknowledged our hello on `ws`. */
  connected: boolean;
  queue: Message[];
  /** The socket a frame is being written to (one frame in flight per link), or null. */
  inFlightOn: WebSocket | null;
  flushScheduled: NodeJS.Immediate | null;
  reconnectTimer: NodeJS.Timeout | null;
  pingTimer: NodeJS.Timeout | null;
  /** Consecutive failed attempts, for the backoff. */
  failedAttempts: number;
  dialed: number;
  sentMsgs: number;
  droppedMsgs: number;
  /** Whether the last drop for a full queue was already logged (reset once the queue drains). */
  dropLogged: boolean;
  /** Whether the peer's refusal of our hello was logged at error level (reset on success). */
  refusalLogged: boolean;
}

/** Per inbound socket: who it is from once the hello passed. */
interface InboundConn {
  peer: NodeId | null;
  /** Set once we decided to close it: later frames are ignored. */
  dead: boolean;
  helloTimer: NodeJS.Timeout | null;
}

/** "host:port" (host a name, an IPv4 address or a bracketed IPv6 one), dialled at ws://host:port/raft. */
function isHostPort(address: string): boolean {
  const m = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  return m !== null && Number(m[1]) <= 65535;
}

/** The masking key of our outbound frames (see dial): all zeros, which ws applies as no masking. */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class WsTransport implements Transport {
  private readonly log: Logger;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly wss: WebSocketServer;
  private readonly inbound = new Map<WebSocket, InboundConn>();
  private readonly inboundByPeer = new Map<NodeId, WebSocket>();
  private readonly graceTimers = new Set<NodeJS.Timeout>();
  private handler: ((message: Message) => void) | null = null;
  private started = false;
  private closing: Promise<void> | null = null;

  private readonly maxQueuedMsgsPerPeer: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly maxFrameBytes: number;
  private readonly handshakeTimeoutMs: number;
  private readonly pingIntervalMs: number;

  private receivedMsgs = 0;
  private rejectedConnections = 0;
  private malformedFrames = 0;
  private unroutableMsgs = 0;
  private readonly unroutableLogged = new Set<NodeId>();

  constructor(private readonly opts: WsTransportOptions) {
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.maxQueuedMsgsPerPeer = opts.maxQueuedMsgsPerPeer ?? 4096;
    this.reconnectMinMs = opts.reconnectMinMs ?? 50;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 2000;
    this.maxFrameBytes = opts.maxFrameBytes ?? 4 * 1024 * 1024;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 3000;
    if (!(this.maxQueuedMsgsPerPeer >= 1)) throw new RaftError('BAD_REQUEST', 'maxQueuedMsgsPerPeer must be >= 1');
    if (!(this.reconnectMinMs >= 1 && this.reconnectMaxMs >= this.reconnectMinMs)) {
      throw new RaftError('BAD_REQUEST', 'need 1 <= reconnectMinMs <= reconnectMaxMs');
    }
    for (const [id, address] of Object.entries(opts.peers)) {
      if (id === opts.nodeId) continue;
      this.links.set(id, this.newLink(id, address));
    }
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_INCOMING_FRAME_BYTES });
  }

  private newLink(id: NodeId, address: string): PeerLink {
    if (!isHostPort(address)) {
      throw new RaftError('BAD_REQUEST', `peer ${id}: address ${JSON.stringify(address)} is not "host:port"`);
    }
    return {
      id,
      address,
      ws: null,
      connected: false,
      queue: [],
      inFlightOn: null,
      flushScheduled: null,
      reconnectTimer: null,
      pingTimer: null,
      failedAttempts: 0,
      dialed: 0,
      sentMsgs: 0,
      droppedMsgs: 0,
      dropLogged: false,
      refusalLogged: false,
    };
  }

  /** The peers this transport links to (id → address). */
  peers(): Record<NodeId, string> {
    const out: Record<NodeId, string> = {};
    for (const link of this.links.values()) out[link.id] = link.address;
    return out;
  }

  /**
   * Membership changes (issue 3): starts linking to a new peer (dials it once started, and
   * accepts its connections). Same id and address: nothing to do; a new address replaces the
   * old link (its queued messages are dropped and counted).
   */
  addPeer(id: NodeId, address: string): void {
    if (id === this.opts.nodeId || this.closing !== null) return;
    const existing = this.links.get(id);
    if (existing !== undefined && existing.address === address) return;
    const link = this.newLink(id, address); // validates before anything changes
    if (existing !== undefined) this.dropLink(existing);
    this.links.set(id, link);
    this.unroutableLogged.delete(id);
    this.log.info({ peer: id, address }, 'peer added');
    if (this.started) this.dial(link);
  }

  /**
   * Stops talking to a removed peer: its outbound link is closed (queued messages dropped and
   * counted), its inbound connection is cut, and its new connections are refused (unknown peer).
   */
  removePeer(id: NodeId): void {
    const link = this.links.get(id);
    if (link === undefined) return;
    this.links.delete(id);
    this.dropLink(link);
    const inbound = this.inboundByPeer.get(id);
    if (inbound !== undefined) {
      const conn = this.inbound.get(inbound);
      if (conn !== undefined) this.kill(inbound, conn, CLOSE_CODES.UNKNOWN_PEER, 'peer removed');
      this.inboundByPeer.delete(id);
    }
    this.log.info({ peer: id }, 'peer removed');
  }

  /** Stops a link's timers and drops (and counts) what it still had queued. */
  private quiesceLink(link: PeerLink): void {
    if (link.reconnectTimer !== null) clearTimeout(link.reconnectTimer);
    if (link.pingTimer !== null) clearInterval(link.pingTimer);
    if (link.flushScheduled !== null) clearImmediate(link.flushScheduled);
    link.reconnectTimer = link.pingTimer = link.flushScheduled = null;
    link.droppedMsgs += link.queue.length;
    link.queue = [];
    link.connected = false;
  }

  private dropLink(link: PeerLink): void {
    this.quiesceLink(link);
    const ws = link.ws;
    link.ws = null; // its close handler then sees a replaced link and does not reconnect
    if (ws !== null) void closeSocket(ws, CLOSE_CODES.SHUTDOWN, 'peer removed', CLOSE_GRACE_MS);
  }

  onMessage(handler: (message: Message) => void): void {
    this.handler = handler;
  }

  async start(): Promise<void> {
    if (this.started || this.closing !== null) return;
    this.started = true;
    this.opts.server.on('upgrade', this.onUpgrade);
    for (const link of this.links.values()) this.dial(link);
  }

  send(messages: readonly Message[]): void {
    let touched: PeerLink | Set<PeerLink> | null = null;
    for (const m of messages) {
      const link = this.links.get(m.to);
      if (link === undefined) {
        this.unroutableMsgs++;
        // Logged once per peer: after a membership change the core may address a node whose
        // address is not known yet (or any more).
        if (!this.unroutableLogged.has(m.to) && this.unroutableLogged.size < 1024) {
          this.unroutableLogged.add(m.to);
          this.log.warn({ to: m.to, type: m.type }, 'message to an unknown peer dropped');
        }
        continue;
      }
      if (link.queue.length >= this.maxQueuedMsgsPerPeer) {
        link.droppedMsgs++;
        if (!link.dropLogged) {
          link.dropLogged = true;
          this.log.warn({ peer: link.id, maxQueuedMsgsPerPeer: this.maxQueuedMsgsPerPeer }, 'send queue full: dropping new messages');
        }
        continue;
      }
      link.queue.push(m);
      if (touched === null) touched = link;
      else if (touched !== link) {
        if (!(touched instanceof Set)) touched = new Set([touched]);
        touched.add(link);
      }
    }
    // One frame per peer for this call, written now rather than on a later turn of the event
    // loop: a leader's AppendEntries then leave before the work that follows them in the same
    // turn (applying, answering clients, reading sockets), which is the followers' critical path.
    if (touched === null) return;
    if (touched instanceof Set) for (const link of touched) this.flushNow(link);
    else this.flushNow(touched);
  }

  /** Writes a frame now if the link is idle; otherwise what is queued goes when the frame in flight is written. */
  private flushNow(link: PeerLink): void {
    if (link.flushScheduled !== null) {
      clearImmediate(link.flushScheduled);
      link.flushScheduled = null;
    }
    if (link.inFlightOn === null) this.flush(link);
  }

  stats(): TransportStats {
    const peers: Record<NodeId, PeerLinkStats> = {};
    for (const link of this.links.values()) {
      peers[link.id] = {
        connected: link.connected,
        queuedMsgs: link.queue.length,
        sentMsgs: link.sentMsgs,
        droppedMsgs: link.droppedMsgs,
        reconnects: Math.max(0, link.dialed - 1),
      };
    }
    return {
      peers,
      receivedMsgs: this.receivedMsgs,
      rejectedConnections: this.rejectedConnections,
      malformedFrames: this.malformedFrames,
    };
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.opts.server.off('upgrade', this.onUpgrade);
    const sockets: WebSocket[] = [];
    for (const link of this.links.values()) {
      this.quiesceLink(link);
      if (link.ws !== null) sockets.push(link.ws);
    }
    for (const [ws, conn] of this.inbound) {
      if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
      sockets.push(ws);
    }
    for (const t of this.graceTimers) clearTimeout(t);
    this.graceTimers.clear();
    await Promise.all(sockets.map((ws) => closeSocket(ws, CLOSE_CODES.SHUTDOWN, 'shutting down', CLOSE_GRACE_MS)));
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // -------------------------------------------------------------------------------------------
  // Outbound: dial, handshake, flush, reconnect.

  private dial(link: PeerLink): void {
    if (this.closing !== null) return;
    link.reconnectTimer = null;
    link.dialed++;
    let ws: WebSocket;
    try {
      ws = new WebSocket(`ws://${link.address}/raft`, {
        perMessageDeflate: false,
        maxPayload: MAX_INCOMING_FRAME_BYTES,
        handshakeTimeout: this.handshakeTimeoutMs,
        // RFC 6455 §5.3 masks client frames so a browser script cannot steer what an
        // intermediary proxy sees; these links carry only our own frames between members. An
        // all-zero key leaves the bytes as they are, so ws neither copies and XORs each frame
        // here nor unmasks it at the peer (one pass over every AppendEntries payload each).
        generateMask: zeroMask,
      });
    } catch (e) {
      // The address was checked in the constructor; never let a timer callback throw anyway.
      this.log.error({ peer: link.id, address: link.address, err: (e as Error).message }, 'cannot dial peer');
      this.scheduleReconnect(link);
      return;
    }
    link.ws = ws;
    let acked = false;
    // The HTTP upgrade has its own timeout (handshakeTimeout); this one covers the hello-ack.
    const ackTimer = setTimeout(() => {
      this.log.warn({ peer: link.id, address: link.address }, 'no hello-ack in time; reconnecting');
      ws.terminate();
    }, this.handshakeTimeoutMs);

    ws.on('open', () => {
      ws.send(encodeHello({ clusterId: this.opts.clusterId, from: this.opts.nodeId, to: link.id }));
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (acked || !isBinary) {
        // The accepting side sends exactly one frame, the ack.
        this.malformed(ws, link.id, 'unexpected frame from the accepting side');
        return;
      }
      try {
        const ack = decodeHelloAck(toBuffer(data));
        if (ack.from !== link.id) throw new RaftError('BAD_REQUEST', `hello-ack from ${ack.from}, expected ${link.id}`);
      } catch (e) {
        this.malformed(ws, link.id, (e as Error).message);
        return;
      }
      acked = true;
      clearTimeout(ackTimer);
      if (link.ws !== ws || this.closing !== null) return;
      link.connected = true;
      link.failedAttempts = 0;
      link.refusalLogged = false;
      this.log.info({ peer: link.id, address: link.address, attempt: link.dialed }, 'connected to peer');
      this.startPing(link, ws);
      this.flushSoon(link);
    });
    ws.on('error', (err: Error) => {
      // A 'close' always follows; log here at debug so a down peer does not flood the log.
      this.log.debug({ peer: link.id, address: link.address, err: err.message }, 'peer connection error');
    });
    ws.on('close', (code: number, reason: Buffer) => {
      clearTimeout(ackTimer);
      if (link.ws !== ws) return;
      const wasConnected = link.connected;
      link.ws = null;
      link.connected = false;
      link.inFlightOn = null;
      if (link.pingTimer !== null) clearInterval(link.pingTimer);
      link.pingTimer = null;
      if (link.flushScheduled !== null) clearImmediate(link.flushScheduled);
      link.flushScheduled = null;
      // Undelivered messages go: Raft resends what still matters once the peer is back.
      link.droppedMsgs += link.queue.length;
      link.queue = [];
      link.dropLogged = false;
      if (this.closing !== null) return;
      const why = { peer: link.id, address: link.address, code, reason: reason.toString() };
      if (code >= 4001 && code <= 4007) {
        // A configuration problem: say it loudly once, then keep retrying quietly.
        if (link.refusalLogged) this.log.debug(why, 'peer refused our connection');
        else this.log.error(why, 'peer refused our connection');
        link.refusalLogged = true;
      } else if (wasConnected) this.log.warn(why, 'lost connection to peer');
      else this.log.debug(why, 'could not connect to peer');
      this.scheduleReconnect(link);
    });
  }

  /** Exponential backoff with "equal jitter": a random delay in [d/2, d], d doubling per failure. */
  private scheduleReconnect(link: PeerLink): void {
    const exp = Math.min(link.failedAttempts, 30);
    link.failedAttempts++;
    const ceilingMs = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** exp);
    const delayMs = ceilingMs / 2 + Math.random() * (ceilingMs / 2);
    link.reconnectTimer = setTimeout(() => this.dial(link), delayMs);
  }

  /** A link whose pong does not come back within an interval is half-open: cut it and redial. */
  private startPing(link: PeerLink, ws: WebSocket): void {
    let alive = true;
    ws.on('pong', () => (alive = true));
    link.pingTimer = setInterval(() => {
      if (!alive) {
        this.log.warn({ peer: link.id }, 'peer stopped answering pings; reconnecting');
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping();
    }, this.pingIntervalMs);
  }

  /** Flush on the next turn of the event loop, so messages sent in this one share a frame. */
  private flushSoon(link: PeerLink): void {
    if (!link.connected || link.flushScheduled !== null || link.inFlightOn !== null) return;
    link.flushScheduled = setImmediate(() => {
      link.flushScheduled = null;
      this.flush(link);
    });
  }

  private flush(link: PeerLink): void {
    const ws = link.ws;
    if (!link.connected || ws === null || link.inFlightOn !== null || link.queue.length === 0) return;
    const encoded: Buffer[] = [];
    let frameBytes = 0;
    let taken = 0; // messages removed from the queue (sent in this frame or dropped as too large)
    while (taken < link.queue.length && encoded.length < MAX_MSGS_PER_FRAME) {
      const buf = encodeMessage(link.queue[taken]!);
      if (buf.length + 8 > MAX_INCOMING_FRAME_BYTES) {
        taken++;
        link.droppedMsgs++;
        this.log.error({ peer: link.id, bytes: buf.length }, 'message larger than any frame a peer accepts: dropped');
        continue;
      }
      if (encoded.length > 0 && frameBytes + buf.length > this.maxFrameBytes) break;
      encoded.push(buf);
      frameBytes += buf.length;
      taken++;
    }
    link.queue.splice(0, taken);
    if (link.queue.length === 0) link.dropLogged = false;
    if (encoded.length === 0) return;
    const count = encoded.length;
    link.inFlightOn = ws;
    ws.send(frameFromEncoded(encoded), { binary: true }, (err) => {
      if (link.inFlightOn !== ws) return; // that connection is gone; its close handler cleaned up
      link.inFlightOn = null;
      if (err) return; // the socket is failing; 'close' follows and drops the queue
      link.sentMsgs += count;
      this.flushSoon(link);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Inbound: accept on '/raft', check the hello, validate and deliver batches.

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://peer').pathname;
    } catch {
      return; // not ours to judge
    }
    if (path !== '/raft') return; // the node's own upgrade handlers own every other path
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onInbound(ws, req.socket.remoteAddress ?? '?'));
  };

  private onInbound(ws: WebSocket, remote: string): void {
    if (this.closing !== null) {
      ws.terminate();
      return;
    }
    const conn: InboundConn = { peer: null, dead: false, helloTimer: null };
    this.inbound.set(ws, conn);
    conn.helloTimer = setTimeout(() => {
      conn.helloTimer = null;
      if (conn.peer !== null || conn.dead) return;
      this.rejectedConnections++;
      this.log.warn({ remote }, 'no hello in time: closing');
      this.kill(ws, conn, CLOSE_CODES.HANDSHAKE_TIMEOUT, 'no hello in time');
    }, this.handshakeTimeoutMs);

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (conn.dead) return;
      if (!isBinary) {
        this.malformedInbound(ws, conn, remote, 'text frame');
        return;
      }
      const frame = toBuffer(data);
      if (conn.peer === null) this.onHello(ws, conn, remote, frame);
      else this.onBatch(ws, conn, remote, conn.peer, frame);
    });
    ws.on('error', (err: Error) => {
      this.log.debug({ remote, peer: conn.peer, err: err.message }, 'inbound connection error');
    });
    ws.on('close', () => {
      if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
      conn.dead = true;
      this.inbound.delete(ws);
      if (conn.peer !== null && this.inboundByPeer.get(conn.peer) === ws) {
        this.inboundByPeer.delete(conn.peer);
        if (this.closing === null) this.log.info({ peer: conn.peer }, 'peer disconnected (inbound)');
      }
    });
  }

  private onHello(ws: WebSocket, conn: InboundConn, remote: string, frame: Buffer): void {
    let hello: Hello;
    try {
      hello = decodeHello(frame);
    } catch (e) {
      this.malformedInbound(ws, conn, remote, (e as Error).message);
      return;
    }
    const refuse = (code: number, reason: string): void => {
      this.rejectedConnections++;
      this.log.warn({ remote, from: hello.from, clusterId: hello.clusterId, to: hello.to, code }, `refused peer: ${reason}`);
      this.kill(ws, conn, code, reason);
    };
    if (hello.version !== WIRE_VERSION) {
      return refuse(CLOSE_CODES.WIRE_VERSION, `wire version ${hello.version} unsupported (this node speaks ${WIRE_VERSION})`);
    }
    if (hello.clusterId !== this.opts.clusterId) {
      return refuse(CLOSE_CODES.CLUSTER_MISMATCH, 'cluster id mismatch');
    }
    if (!this.links.has(hello.from)) return refuse(CLOSE_CODES.UNKNOWN_PEER, 'unknown peer id');
    if (hello.to !== this.opts.nodeId) return refuse(CLOSE_CODES.WRONG_NODE, 'hello addressed to another node');

    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    conn.peer = hello.from;
    // A peer that reconnects may do so before we notice its old socket died: newest wins.
    const old = this.inboundByPeer.get(hello.from);
    if (old !== undefined) {
      const oldConn = this.inbound.get(old);
      if (oldConn !== undefined) this.kill(old, oldConn, CLOSE_CODES.REPLACED, 'replaced by a newer connection');
    }
    this.inboundByPeer.set(hello.from, ws);
    ws.send(encodeHelloAck(this.opts.nodeId));
    this.log.info({ peer: hello.from, remote }, 'peer connected (inbound)');
  }

  private onBatch(ws: WebSocket, conn: InboundConn, remote: string, peer: NodeId, frame: Buffer): void {
    let messages: Message[];
    try {
      messages = decodeBatch(frame);
      for (const m of messages) {
        // The hello named who is at the other end; a message claiming otherwise is not trusted.
        if (m.from !== peer || m.to !== this.opts.nodeId) {
          throw new RaftError('BAD_REQUEST', `${m.type} from ${m.from} to ${m.to} on ${peer}'s connection to ${this.opts.nodeId}`);
        }
      }
    } catch (e) {
      this.malformedInbound(ws, conn, remote, (e as Error).message);
      return;
    }
    this.receivedMsgs += messages.length;
    const handler = this.handler;
    if (handler === null) return;
    for (const m of messages) {
      try {
        handler(m);
      } catch (e) {
        // The receiver's bug must not take the transport (or the process) down with it.
        this.log.error({ peer, type: m.type, err: e instanceof Error ? e.message : String(e) }, 'message handler threw');
      }
    }
  }

  private malformedInbound(ws: WebSocket, conn: InboundConn, remote: string, reason: string): void {
    this.malformedFrames++;
    this.log.warn({ remote, peer: conn.peer, reason }, 'malformed frame: closing the connection');
    this.kill(ws, conn, CLOSE_CODES.MALFORMED_FRAME, 'malformed frame');
  }

  /** A malformed frame on an outbound link (the accepting side misbehaved). */
  private malformed(ws: WebSocket, peer: NodeId, reason: string): void {
    this.malformedFrames++;
    this.log.warn({ peer, reason }, 'malformed frame from peer: closing the connection');
    ws.terminate();
  }

  /** Closes an inbound socket with a code, cutting it if the close handshake does not finish. */
  private kill(ws: WebSocket, conn: InboundConn, code: number, reason: string): void {
    conn.dead = true;
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    ws.close(code, reason);
    const t = setTimeout(() => {
      this.graceTimers.delete(t);
      ws.terminate();
    }, CLOSE_GRACE_MS);
    t.unref();
    this.graceTimers.add(t);
  }
}

/** Closes a socket politely, cutting it after graceMs; resolves once it is closed. */
function closeSocket(ws: WebSocket, code: number, reason: string, graceMs: number): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => ws.terminate(), graceMs);
    ws.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(code, reason);
  });
}
