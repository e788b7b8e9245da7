// The fault-injecting proxy on loopback: recording/echo servers stand in for the nodes' peer listeners.
// Assertions are about what arrives and in what order, never about how fast.

import { afterEach, describe, expect, it } from 'vitest';
import { LinkProxy, ProxyNetwork } from '../src/proxy/index.js';
import { RecordingClient, RecordingServer, tcpHandles, waitFor } from './proxy-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function server(echo: boolean): Promise<RecordingServer> {
  const s = new RecordingServer(echo);
  await s.listen();
  cleanups.push(() => s.close());
  return s;
}

/** A network of nodes a, b, c whose peer listeners are recording servers. */
async function network(opts: { echo?: boolean; maxQueuedBytes?: number } = {}) {
  const servers = { a: await server(opts.echo ?? false), b: await server(opts.echo ?? false), c: await server(opts.echo ?? false) };
  const net = await ProxyNetwork.start({
    nodes: Object.entries(servers).map(([name, s]) => ({ name, peerHost: '127.0.0.1', peerPort: s.port })),
    ...(opts.maxQueuedBytes !== undefined ? { maxQueuedBytes: opts.maxQueuedBytes } : {}),
  });
  cleanups.push(() => net.close());
  return { net, servers };
}

function client(port: number): RecordingClient {
  const c = new RecordingClient(port);
  cleanups.push(async () => {
    c.socket.destroy();
  });
  return c;
}

describe('LinkProxy forwarding', () => {
  it('forwards bytes both ways and counts them', async () => {
    const { net, servers } = await network({ echo: true });
    const c = client(net.link('a', 'b').port);
    await c.connected;
    c.socket.write('hello');
    await waitFor(() => c.text() === 'hello', 'the echo');
    expect(servers.b.text()).toBe('hello');
    expect(servers.a.text()).toBe('');
    const st = net.link('a', 'b').stats();
    expect(st).toMatchObject({ from: 'a', to: 'b', bytesForwardedOut: 5, bytesForwardedBack: 5, connectionsAccepted: 1, openConnections: 1 });
  });

  it('gives each node the proxies as its peers and its own real URL for itself', async () => {
    const { net, servers } = await network();
    const urls = net.peerUrlsFor('a');
    expect(urls.get('a')).toBe(`http://127.0.0.1:${servers.a.port}`);
    expect(urls.get('b')).toBe(`http://127.0.0.1:${net.link('a', 'b').port}`);
    expect(urls.get('c')).toBe(`http://127.0.0.1:${net.link('a', 'c').port}`);
    expect(net.initialClusterFor('b')).toBe(
      `a=http://127.0.0.1:${net.link('b', 'a').port},b=http://127.0.0.1:${servers.b.port},c=http://127.0.0.1:${net.link('b', 'c').port}`,
    );
    const ports = new Set(net.stats().map((s) => s.port));
    expect(ports.size).toBe(6);
  });
});

describe('partitions', () => {
  it('a partition resets open connections, refuses new ones both ways, and heal restores new connections', async () => {
    const { net, servers } = await network({ echo: true });
    const ab = client(net.link('a', 'b').port);
    const ba = client(net.link('b', 'a').port);
    await Promise.all([ab.connected, ba.connected]);
    ab.socket.write('x');
    await waitFor(() => ab.text() === 'x', 'echo before the partition');

    net.partition([['a'], ['b', 'c']]);
    await waitFor(() => ab.closed && ba.closed, 'both connections across the cut to close');
    expect(ab.error?.code).toBe('ECONNRESET');
    expect(net.isBlocked('a', 'b') && net.isBlocked('b', 'a') && !net.isBlocked('b', 'c')).toBe(true);

    const during = client(net.link('b', 'a').port);
    await waitFor(() => during.closed, 'a new connection across the cut to be refused');
    expect(net.link('b', 'a').stats().connectionsRefused).toBe(1);
    // Inside a group, links still work.
    const bc = client(net.link('b', 'c').port);
    await bc.connected;
    bc.socket.write('inside');
    await waitFor(() => bc.text() === 'inside', 'echo inside the majority');

    net.heal();
    const after = client(net.link('a', 'b').port);
    await after.connected;
    after.socket.write('again');
    await waitFor(() => after.text() === 'again', 'echo after heal');
    expect(servers.b.text()).toBe('xagain');
  });

  it('isolate cuts one node off from every other; stale bytes are never delivered after heal', async () => {
    const { net, servers } = await network();
    const ca = client(net.link('c', 'a').port);
    await ca.connected;
    net.isolate('a');
    expect(net.currentPlan).toEqual({ kind: 'isolate', node: 'a' });
    await waitFor(() => ca.closed, 'the connection to the isolated node to be reset');
    expect(ca.socket.write('late')).toBe(false);
    net.heal();
    const ca2 = client(net.link('c', 'a').port);
    await ca2.connected;
    ca2.socket.write('fresh');
    await waitFor(() => servers.a.text() === 'fresh', 'only the fresh bytes at a');
  });

  it('one-way a->b drops what a sends to b, whoever dialed, and keeps b->a flowing', async () => {
    const { net, servers } = await network();
    net.oneWay('a', 'b');
    // a dials b: a's bytes are black-holed, b's replies arrive.
    const ab = client(net.link('a', 'b').port);
    await ab.connected;
    ab.socket.write('from-a');
    await waitFor(() => net.link('a', 'b').stats().bytesDroppedOut === 6, 'the drop to be counted');
    await waitFor(() => servers.b.sockets.length === 1, 'b to accept the forwarded connection');
    servers.b.sockets[0]?.write('from-b');
    await waitFor(() => ab.text() === 'from-b', 'b -> a bytes at a');
    expect(servers.b.text()).toBe('');
    // b dials a: b's bytes arrive, a's replies are black-holed.
    const ba = client(net.link('b', 'a').port);
    await ba.connected;
    ba.socket.write('hi-a');
    await waitFor(() => servers.a.text() === 'hi-a', 'b -> a bytes at a');
    servers.a.sockets[0]?.write('reply');
    await waitFor(() => net.link('b', 'a').stats().bytesDroppedBack === 5, 'the reply drop to be counted');
    expect(ba.text()).toBe('');
    expect(ab.closed || ba.closed).toBe(false);

    // Heal resets connections whose stream has a gap; a fresh one flows both ways.
    net.heal();
    await waitFor(() => ab.closed && ba.closed, 'connections with dropped bytes to be reset at heal');
    const fresh = client(net.link('a', 'b').port);
    await fresh.connected;
    fresh.socket.write('ok');
    await waitFor(() => servers.b.text() === 'ok', 'a -> b after heal');
  });

  it('bytes held by latency when a partition starts are discarded, never delivered after heal', async () => {
    const { net, servers } = await network();
    net.delay('a', 'b', 60_000);
    const c = client(net.link('a', 'b').port);
    await c.connected;
    c.socket.write('stale');
    await waitFor(() => net.link('a', 'b').queuedBytes() === 5, 'the bytes to be held');
    net.partition([['a'], ['b', 'c']]);
    await waitFor(() => c.closed, 'the reset');
    expect(net.link('a', 'b').queuedBytes()).toBe(0);
    net.heal();
    const fresh = client(net.link('a', 'b').port);
    await fresh.connected;
    fresh.socket.write('fresh');
    await waitFor(() => servers.b.text().length > 0, 'the fresh bytes');
    expect(servers.b.text()).toBe('fresh');
  });

  it('a connection to a node that is down is reset and counted as a dial failure', async () => {
    const { net, servers } = await network();
    await servers.c.close();
    const c = client(net.link('a', 'c').port);
    await waitFor(() => c.closed, 'the reset');
    expect(net.link('a', 'c').stats()).toMatchObject({ dialFailures: 1, connectionsAccepted: 0, openConnections: 0 });
  });

  it('bridge and majorities ring cut the right links among 5 nodes', async () => {
    const servers = await Promise.all(['n1', 'n2', 'n3', 'n4', 'n5'].map(async (name) => ({ name, s: await server(false) })));
    const net = await ProxyNetwork.start({ nodes: servers.map(({ name, s }) => ({ name, peerHost: '127.0.0.1', peerPort: s.port })) });
    cleanups.push(() => net.close());
    const reach = (n: string): string[] => net.names.filter((m) => m === n || !net.isBlocked(n, m));

    net.bridge();
    expect(reach('n1')).toEqual(['n1', 'n2', 'n3']);
    expect(reach('n3')).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    expect(reach('n5')).toEqual(['n3', 'n4', 'n5']);

    net.majoritiesRing();
    const seen = new Set<string>();
    for (const n of net.names) {
      const r = reach(n);
      expect(r.length).toBe(3);
      for (const m of r) expect(net.isBlocked(m, n)).toBe(false);
      seen.add(r.join(','));
    }
    expect(seen.size).toBe(5);
    expect(reach('n1')).toEqual(['n1', 'n2', 'n5']);

    net.heal();
    for (const n of net.names) expect(reach(n).length).toBe(5);
  });
});

describe('latency, resets and bounds', () => {
  it('latency holds bytes back, then delivers them in order', async () => {
    const { net, servers } = await network();
    net.delay('a', 'b', 1500, 200);
    const c = client(net.link('a', 'b').port);
    await c.connected;
    const parts = Array.from({ length: 20 }, (_, i) => `<${i}>`);
    for (const p of parts) c.socket.write(p);
    await waitFor(() => net.link('a', 'b').queuedBytes() === parts.join('').length, 'all bytes to be queued');
    expect(servers.b.text()).toBe('');
    await waitFor(() => servers.b.text().length === parts.join('').length, 'delayed delivery');
    expect(servers.b.text()).toBe(parts.join(''));
    // The delay is on a -> b only: b's bytes to a flow at once.
    net.delay('a', 'b', 0, 0);
    servers.b.sockets[0]?.write('back');
    await waitFor(() => c.text() === 'back', 'b -> a bytes');
  });

  it('reset destroys the current connections of a pair, and new ones work', async () => {
    const { net } = await network({ echo: true });
    const ab = client(net.link('a', 'b').port);
    const ba = client(net.link('b', 'a').port);
    const ac = client(net.link('a', 'c').port);
    await Promise.all([ab.connected, ba.connected, ac.connected]);
    await waitFor(() => net.link('a', 'b').stats().openConnections === 1 && net.link('b', 'a').stats().openConnections === 1, 'pairing');
    expect(net.reset('a', 'b')).toBe(2);
    await waitFor(() => ab.closed && ba.closed, 'the pair to be reset');
    expect(ac.closed).toBe(false);
    expect(net.link('a', 'b').stats().connectionsReset).toBe(1);
    const again = client(net.link('a', 'b').port);
    await again.connected;
    again.socket.write('z');
    await waitFor(() => again.text() === 'z', 'echo after reset');
  });

  it('the latency queue is bounded: the sender is paused at the bound and every byte still arrives intact', async () => {
    const maxQueuedBytes = 64 * 1024;
    const { net, servers } = await network({ maxQueuedBytes });
    net.delay('a', 'b', 20, 10);
    const c = client(net.link('a', 'b').port);
    await c.connected;
    const payload = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 8)) & 0xff;
    c.socket.write(payload);
    const got = (): number => servers.b.received.flat().reduce((n, d) => n + d.length, 0);
    await waitFor(() => got() === payload.length, 'all 2 MiB', 30_000);
    expect(Buffer.concat(servers.b.received.flat()).equals(payload)).toBe(true);
    const st = net.link('a', 'b').stats();
    expect(st.pausesAtBound).toBeGreaterThan(0);
    // At most one read chunk (64 KiB) beyond the bound.
    expect(st.peakQueuedBytes).toBeLessThanOrEqual(maxQueuedBytes + 64 * 1024);
  });

  it('connections per link are bounded: one more is reset on accept', async () => {
    const s = await server(true);
    const p = new LinkProxy({ from: 'x', to: 'y', targetHost: '127.0.0.1', targetPort: s.port, maxConnections: 2 });
    await p.listen();
    cleanups.push(() => p.close());
    const [c1, c2] = [client(p.port), client(p.port)];
    await Promise.all([c1.connected, c2.connected]);
    await waitFor(() => p.stats().openConnections === 2, 'two paired connections');
    const c3 = client(p.port);
    await waitFor(() => c3.closed, 'the third connection to be reset');
    expect(p.stats().connectionsRefused).toBe(1);
    c1.socket.write('still');
    await waitFor(() => c1.text() === 'still', 'the first connection to keep working');
  });

  it('close() leaves no open TCP handles, also with queued bytes and open connections', async () => {
    // Every earlier test of this file closed its proxies, servers and clients in afterEach: nothing may linger.
    await waitFor(() => tcpHandles() === 0, 'the handles of earlier tests to close');
    const before = tcpHandles();
    const s = new RecordingServer(true);
    await s.listen();
    const p = new LinkProxy({ from: 'x', to: 'y', targetHost: '127.0.0.1', targetPort: s.port });
    await p.listen();
    p.setPolicy({ drop: false, latencyMs: 60_000, jitterMs: 0 }, { drop: false, latencyMs: 0, jitterMs: 0 });
    const c = new RecordingClient(p.port);
    await c.connected;
    c.socket.write('held for a minute');
    await waitFor(() => p.queuedBytes() > 0, 'bytes in the queue');
    await p.close();
    await waitFor(() => c.closed, 'the client to see the close');
    await s.close();
    await waitFor(() => tcpHandles() === before, 'every TCP handle to close');
    expect(tcpHandles()).toBe(before);
    expect(p.queuedBytes()).toBe(0);
  });
});
