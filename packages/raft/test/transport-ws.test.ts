// WsTransport over real HTTP servers on OS-assigned loopback ports: ordered delivery, the hello
// handshake and its refusals, malformed frames, reconnection, the send-queue bound, and sharing
// the server with the node's own upgrade paths.

import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { Message, NodeId } from '../src/core/types.js';
import { encodeBatch, encodeHello } from '../src/transport/codec.js';
import { CLOSE_CODES, WsTransport, type WsTransportOptions } from '../src/transport/ws.js';

const raw = new Packr({ useRecords: false });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function listen(port = 0): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return server;
}

function addressOf(server: Server): string {
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface TestNode {
  readonly id: NodeId;
  readonly server: Server;
  transport: WsTransport;
  readonly received: Message[];
}

function makeTransport(
  id: NodeId,
  server: Server,
  peers: Record<NodeId, string>,
  received: Message[],
  extra: Partial<WsTransportOptions> = {},
): WsTransport {
  const t = new WsTransport({
    clusterId: 'ballot',
    nodeId: id,
    peers,
    server,
    reconnectMinMs: 10,
    reconnectMaxMs: 100,
    ...extra,
  });
  t.onMessage((m) => received.push(m));
  cleanups.push(() => t.close());
  return t;
}

/** Servers first (so every address is known), then one transport per node. */
async function cluster(
  ids: readonly NodeId[],
  extra: Partial<WsTransportOptions> = {},
  opts: { start?: boolean; spareIds?: readonly NodeId[] } = {},
): Promise<{ nodes: Record<NodeId, TestNode>; peers: Record<NodeId, string> }> {
  const servers: Record<NodeId, Server> = {};
  const peers: Record<NodeId, string> = {};
  for (const id of [...ids, ...(opts.spareIds ?? [])]) {
    servers[id] = await listen();
    peers[id] = addressOf(servers[id]!);
  }
  const nodes: Record<NodeId, TestNode> = {};
  for (const id of ids) {
    const received: Message[] = [];
    nodes[id] = { id, server: servers[id]!, received, transport: makeTransport(id, servers[id]!, peers, received, extra) };
  }
  if (opts.start !== false) {
    for (const id of ids) await nodes[id]!.transport.start();
  }
  return { nodes, peers };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function connected(nodes: Record<NodeId, TestNode>, among: readonly NodeId[] = Object.keys(nodes)): Promise<void> {
  await waitFor('all links connected', () =>
    among.every((a) => among.every((b) => a === b || nodes[a]!.transport.stats().peers[b]?.connected === true)),
  );
}

const hb = (from: NodeId, to: NodeId, readRound: number): Message => ({
  type: 'Heartbeat',
  from,
  to,
  term: 1,
  commit: 0,
  readRound,
});

/** A raw WebSocket client on /raft; resolves its close code and reason. */
function rawClient(address: string): { ws: WebSocket; opened: Promise<void>; closed: Promise<{ code: number; reason: string }> } {
  const ws = new WebSocket(`ws://${address}/raft`);
  ws.on('error', () => undefined);
  const opened = new Promise<void>((resolve) => ws.once('open', () => resolve()));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
  );
  cleanups.push(async () => ws.terminate());
  return { ws, opened, closed };
}

describe('WsTransport delivery', () => {
  it('three transports exchange messages, in order per sender, with an AppendEntries payload intact', async () => {
    const { nodes } = await cluster(['n1', 'n2', 'n3']);
    await connected(nodes);
    const ids = ['n1', 'n2', 'n3'];
    const N = 300;
    // Many send() calls across event-loop turns, so frames coalesce differently along the way.
    for (let i = 0; i < N; i++) {
      for (const from of ids) {
        nodes[from]!.transport.send(ids.filter((to) => to !== from).map((to) => hb(from, to, i)));
      }
      if (i % 37 === 0) await new Promise((r) => setImmediate(r));
    }
    const append: Message = {
      type: 'AppendEntries',
      from: 'n1',
      to: 'n2',
      term: 1,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array(100_000).fill(7) }],
      leaderCommit: 0,
    };
    nodes['n1']!.transport.send([append]);
    await waitFor('all messages', () => ids.every((id) => nodes[id]!.received.length === 2 * N + (id === 'n2' ? 1 : 0)));
    for (const to of ids) {
      for (const from of ids.filter((f) => f !== to)) {
        const rounds = nodes[to]!.received
          .filter((m) => m.from === from && m.type === 'Heartbeat')
          .map((m) => (m as { readRound: number }).readRound);
        expect(rounds).toEqual(Array.from({ length: N }, (_, i) => i));
      }
    }
    // Order is promised per sender (one socket per direction), not across senders: n3's heartbeats
    // may reach n2 after n1's AppendEntries. Among n1's messages to n2 the AppendEntries is last.
    const n1ToN2 = nodes['n2']!.received.filter((m) => m.from === 'n1');
    expect(n1ToN2).toHaveLength(N + 1);
    expect(n1ToN2[N]).toEqual(append);
    const s1 = nodes['n1']!.transport.stats();
    expect(s1.peers['n2']).toMatchObject({ connected: true, sentMsgs: N + 1, droppedMsgs: 0, queuedMsgs: 0 });
    expect(s1.peers['n3']).toMatchObject({ connected: true, sentMsgs: N, droppedMsgs: 0 });
    expect(nodes['n2']!.transport.stats().receivedMsgs).toBe(2 * N + 1);
    expect(Object.keys(s1.peers).sort()).toEqual(['n2', 'n3']); // its own entry is ignored
  });

  it('a throwing message handler neither stops delivery nor escapes the transport', async () => {
    const { nodes } = await cluster(['n1', 'n2']);
    await connected(nodes);
    let calls = 0;
    nodes['n2']!.transport.onMessage(() => {
      calls++;
      throw new Error('handler bug');
    });
    nodes['n1']!.transport.send([hb('n1', 'n2', 1), hb('n1', 'n2', 2)]);
    await waitFor('two calls', () => calls === 2);
    nodes['n1']!.transport.send([hb('n1', 'n2', 3)]);
    await waitFor('third call', () => calls === 3);
    expect(nodes['n1']!.transport.stats().peers['n2']!.connected).toBe(true);
  });
});

describe('WsTransport handshake refusals', () => {
  it('a transport of another cluster is refused, counted, and never delivers', async () => {
    const { nodes, peers } = await cluster(['n1', 'n2']);
    const foreignServer = await listen();
    const foreignReceived: Message[] = [];
    const foreign = makeTransport('n2', foreignServer, { n1: peers['n1']!, n2: addressOf(foreignServer) }, foreignReceived, {
      clusterId: 'someone-else',
    });
    await foreign.start();
    foreign.send([hb('n2', 'n1', 99)]);
    await waitFor('refusals counted', () => nodes['n1']!.transport.stats().rejectedConnections >= 2);
    expect(foreign.stats().peers['n1']!.connected).toBe(false);
    expect(nodes['n1']!.received.filter((m) => m.type === 'Heartbeat' && m.readRound === 99)).toEqual([]);
    // The real n2 still gets through.
    await connected(nodes);
    nodes['n2']!.transport.send([hb('n2', 'n1', 5)]);
    await waitFor('real n2 delivers', () => nodes['n1']!.received.some((m) => m.type === 'Heartbeat' && m.readRound === 5));
  });

  it.each([
    ['wrong cluster id', { clusterId: 'other', from: 'n2', to: 'n1' }, CLOSE_CODES.CLUSTER_MISMATCH],
    ['unknown peer id', { clusterId: 'ballot', from: 'n9', to: 'n1' }, CLOSE_CODES.UNKNOWN_PEER],
    ['its own id as peer', { clusterId: 'ballot', from: 'n1', to: 'n1' }, CLOSE_CODES.UNKNOWN_PEER],
    ['hello addressed to another node', { clusterId: 'ballot', from: 'n2', to: 'n3' }, CLOSE_CODES.WRONG_NODE],
  ])('%s: closed with its code and counted', async (_name, hello, code) => {
    const { nodes, peers } = await cluster(['n1'], {}, { spareIds: ['n2', 'n3'] });
    const c = rawClient(peers['n1']!);
    await c.opened;
    c.ws.send(encodeHello(hello));
    const closed = await c.closed;
    expect(closed.code).toBe(code);
    expect(closed.reason.length).toBeGreaterThan(0);
    expect(nodes['n1']!.transport.stats().rejectedConnections).toBe(1);
  });

  it('a connection that never says hello is closed', async () => {
    const { nodes, peers } = await cluster(['n1'], { handshakeTimeoutMs: 100 }, { spareIds: ['n2'] });
    const c = rawClient(peers['n1']!);
    await c.opened;
    expect((await c.closed).code).toBe(CLOSE_CODES.HANDSHAKE_TIMEOUT);
    expect(nodes['n1']!.transport.stats().rejectedConnections).toBe(1);
  });
});

describe('WsTransport malformed frames', () => {
  const helloFromN3 = encodeHello({ clusterId: 'ballot', from: 'n3', to: 'n1' });
  const cases: [string, (ws: WebSocket) => void][] = [
    ['garbage bytes after the hello', (ws) => ws.send(Buffer.from([0xc1, 0xff, 0x00, 0x13]))],
    ['msgpack that is not a batch', (ws) => ws.send(raw.pack({ hello: 'world' }))],
    ['a message of the wrong shape', (ws) => ws.send(raw.pack([{ type: 'Heartbeat', from: 'n3', to: 'n1', term: '1' }]))],
    ['a text frame', (ws) => ws.send('hello')],
    ['a message claiming another sender', (ws) => ws.send(encodeBatch([hb('n2', 'n1', 1)]))],
    ['a truncated frame', (ws) => ws.send(encodeBatch([hb('n3', 'n1', 1), hb('n3', 'n1', 2)]).subarray(0, 9))],
  ];

  it.each(cases)('%s closes that connection, is counted, and the transport keeps working', async (_name, sendBad) => {
    // n3 is a configured peer that is not running; the raw client speaks as n3.
    const { nodes, peers } = await cluster(['n1', 'n2'], {}, { spareIds: ['n3'] });
    await connected(nodes);
    const c = rawClient(peers['n1']!);
    await c.opened;
    c.ws.send(helloFromN3);
    await new Promise<void>((resolve) => c.ws.once('message', () => resolve())); // the hello-ack
    c.ws.send(encodeBatch([hb('n3', 'n1', 41)])); // a good frame first: delivered
    sendBad(c.ws);
    expect((await c.closed).code).toBe(CLOSE_CODES.MALFORMED_FRAME);
    const s = nodes['n1']!.transport.stats();
    expect(s.malformedFrames).toBe(1);
    expect(nodes['n1']!.received.filter((m) => m.from === 'n3').map((m) => (m as { readRound: number }).readRound)).toEqual([41]);
    // Still working: n2 → n1 and n1 → n2.
    nodes['n2']!.transport.send([hb('n2', 'n1', 7)]);
    nodes['n1']!.transport.send([hb('n1', 'n2', 8)]);
    await waitFor('delivery after the bad frame', () =>
      nodes['n1']!.received.some((m) => m.from === 'n2' && m.type === 'Heartbeat' && m.readRound === 7) &&
      nodes['n2']!.received.some((m) => m.from === 'n1' && m.type === 'Heartbeat' && m.readRound === 8),
    );
  });

  it('refusals and malformed frames are logged (pino JSON lines)', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const { peers } = await cluster(['n1'], { logger }, { spareIds: ['n2'] });
    const refused = rawClient(peers['n1']!);
    await refused.opened;
    refused.ws.send(encodeHello({ clusterId: 'elsewhere', from: 'n2', to: 'n1' }));
    await refused.closed;
    const garbled = rawClient(peers['n1']!);
    await garbled.opened;
    garbled.ws.send(Buffer.from([0xc1]));
    await garbled.closed;
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 40, msg: 'refused peer: cluster id mismatch', clusterId: 'elsewhere', code: 4001 }),
    );
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, msg: 'malformed frame: closing the connection' }));
  });

  it('garbage instead of a hello is a malformed frame too', async () => {
    const { nodes, peers } = await cluster(['n1'], {}, { spareIds: ['n2'] });
    const c = rawClient(peers['n1']!);
    await c.opened;
    c.ws.send(Buffer.from('not msgpack at all, just bytes'));
    expect((await c.closed).code).toBe(CLOSE_CODES.MALFORMED_FRAME);
    expect(nodes['n1']!.transport.stats().malformedFrames).toBe(1);
  });
});

describe('WsTransport reconnection and bounds', () => {
  it('reconnects after the peer server restarts, dropping (and counting) what was queued meanwhile', async () => {
    const { nodes, peers } = await cluster(['n1', 'n2']);
    await connected(nodes);
    nodes['n1']!.transport.send([hb('n1', 'n2', 1)]);
    await waitFor('first delivery', () => nodes['n2']!.received.length === 1);

    // n2 goes away: transport and server.
    await nodes['n2']!.transport.close();
    await new Promise<void>((resolve) => {
      nodes['n2']!.server.closeAllConnections();
      nodes['n2']!.server.close(() => resolve());
    });
    await waitFor('n1 sees n2 gone', () => !nodes['n1']!.transport.stats().peers['n2']!.connected);
    nodes['n1']!.transport.send([hb('n1', 'n2', 2)]); // lost: the peer is down
    await waitFor('the queued message is dropped', () => nodes['n1']!.transport.stats().peers['n2']!.droppedMsgs >= 1);

    // n2 comes back on the same address (a restarted process).
    const port = Number(peers['n2']!.split(':')[1]);
    const server2 = await listen(port);
    const received2: Message[] = [];
    const t2 = makeTransport('n2', server2, peers, received2);
    await t2.start();
    await waitFor('n1 reconnected', () => nodes['n1']!.transport.stats().peers['n2']!.connected);
    nodes['n1']!.transport.send([hb('n1', 'n2', 3)]);
    await waitFor('delivery after restart', () => received2.length === 1);
    expect(received2[0]).toEqual(hb('n1', 'n2', 3));
    expect(nodes['n1']!.transport.stats().peers['n2']!.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('a full send queue drops new messages and counts them; the queued ones arrive in order', async () => {
    const { nodes } = await cluster(['n1', 'n2'], { maxQueuedMsgsPerPeer: 4 }, { start: false });
    await nodes['n2']!.transport.start();
    // n1 is not started: nothing can leave yet, so the queue fills.
    nodes['n1']!.transport.send(Array.from({ length: 10 }, (_, i) => hb('n1', 'n2', i)));
    expect(nodes['n1']!.transport.stats().peers['n2']).toMatchObject({ queuedMsgs: 4, droppedMsgs: 6, sentMsgs: 0 });
    await nodes['n1']!.transport.start();
    await waitFor('queued messages delivered', () => nodes['n2']!.received.length === 4);
    expect(nodes['n2']!.received.map((m) => (m as { readRound: number }).readRound)).toEqual([0, 1, 2, 3]);
    expect(nodes['n1']!.transport.stats().peers['n2']).toMatchObject({ queuedMsgs: 0, droppedMsgs: 6, sentMsgs: 4 });
  });

  it('a peer that stops answering pings is cut off and redialled (half-open connection)', async () => {
    // A fake peer: accepts the hello, acknowledges it, then never answers a ping.
    const fakeServer = await listen();
    const fake = new WebSocketServer({ server: fakeServer, path: '/raft', autoPong: false });
    cleanups.push(async () => {
      for (const c of fake.clients) c.terminate();
      fake.close();
    });
    let accepted = 0;
    fake.on('connection', (ws) => {
      accepted++;
      ws.once('message', () => ws.send(raw.pack({ type: 'hello-ack', version: 1, from: 'n2' })));
    });
    const n1Server = await listen();
    const t = makeTransport('n1', n1Server, { n1: addressOf(n1Server), n2: addressOf(fakeServer) }, [], {
      pingIntervalMs: 30,
    });
    await t.start();
    await waitFor('connected to the fake peer', () => t.stats().peers['n2']!.connected);
    await waitFor('redialled after missing pongs', () => accepted >= 2);
    expect(t.stats().peers['n2']!.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('a malformed peer address is refused at construction', async () => {
    const server = await listen();
    for (const bad of ['localhost', 'a:b', 'h:1/x', 'x:1@y', 'h:99999', '']) {
      expect(() => new WsTransport({ clusterId: 'c', nodeId: 'n1', peers: { n2: bad }, server })).toThrow(/not "host:port"/);
    }
    for (const good of ['127.0.0.1:80', 'node-2.local:9000', '[::1]:5']) {
      expect(() => new WsTransport({ clusterId: 'c', nodeId: 'n1', peers: { n2: good }, server })).not.toThrow();
    }
  });

  it('messages to an unknown peer are dropped without throwing', async () => {
    const { nodes } = await cluster(['n1', 'n2']);
    expect(() => nodes['n1']!.transport.send([hb('n1', 'n7', 1), hb('n1', 'n1', 2)])).not.toThrow();
  });
});

describe('WsTransport shares the HTTP server', () => {
  it("handles only '/raft' upgrades: the node's other upgrade paths keep working", async () => {
    const { nodes, peers } = await cluster(['n1', 'n2']);
    // The node's own WebSocket endpoint on the same server.
    const clientWss = new WebSocketServer({ noServer: true });
    cleanups.push(async () => clientWss.close());
    nodes['n1']!.server.on('upgrade', (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/client') return;
      clientWss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (d) => ws.send(`echo:${d.toString()}`)));
    });
    const client = new WebSocket(`ws://${peers['n1']}/client`);
    cleanups.push(async () => client.terminate());
    client.on('error', () => undefined);
    await new Promise<void>((resolve) => client.once('open', () => resolve()));
    const echoed = new Promise<string>((resolve) => client.once('message', (d) => resolve(d.toString())));
    client.send('ping');
    expect(await echoed).toBe('echo:ping');
    // And the peer transport on the same server still works.
    await connected(nodes);
    nodes['n2']!.transport.send([hb('n2', 'n1', 1)]);
    await waitFor('peer delivery', () => nodes['n1']!.received.length === 1);
    expect(nodes['n1']!.transport.stats().malformedFrames).toBe(0);
  });

  it('close() ends every socket and timer; the peer notices and the server can close', async () => {
    const { nodes } = await cluster(['n1', 'n2']);
    await connected(nodes);
    await nodes['n1']!.transport.close();
    await nodes['n1']!.transport.close(); // idempotent
    await waitFor('n2 sees n1 gone', () => !nodes['n2']!.transport.stats().peers['n1']!.connected);
    expect(nodes['n1']!.transport.stats().peers['n2']!.connected).toBe(false);
    // With the transport closed, the server closes without being held open by upgraded sockets.
    await new Promise<void>((resolve) => nodes['n1']!.server.close(() => resolve()));
  });
});
