// WsTransport membership changes (issue 3): addPeer starts linking to a new node (both ways: dial
// and accept), removePeer drops the link, cuts the peer's inbound connection and refuses its new
// ones; messages to a node without a link are dropped and counted.

import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../src/core/types.js';
import { WsTransport } from '../src/transport/ws.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function listen(): Promise<{ server: Server; address: string }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function transport(id: string, server: Server, peers: Record<string, string>, received: Message[]): WsTransport {
  const t = new WsTransport({ clusterId: 'ballot', nodeId: id, peers, server, reconnectMinMs: 10, reconnectMaxMs: 50 });
  t.onMessage((m) => received.push(m));
  cleanups.push(() => t.close());
  return t;
}

const hb = (from: string, to: string, term: number): Message => ({ type: 'Heartbeat', from, to, term, commit: 0, readRound: 0 });

async function waitFor(what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('WsTransport addPeer / removePeer', () => {
  it('a peer added at runtime is dialled and accepted; a removed one is cut off and refused', async () => {
    const a = await listen();
    const b = await listen();
    const gotA: Message[] = [];
    const gotB: Message[] = [];
    // A starts knowing nobody; B knows A (as a new member knows the cluster it joins).
    const ta = transport('a', a.server, {}, gotA);
    const tb = transport('b', b.server, { a: a.address }, gotB);
    await ta.start();
    await tb.start();

    ta.send([hb('a', 'b', 1)]);
    expect(ta.stats().peers).toEqual({});
    // B dials A, but A does not know B yet: refused.
    await waitFor('A to refuse B', () => ta.stats().rejectedConnections > 0);

    ta.addPeer('b', b.address);
    ta.addPeer('b', b.address); // idempotent
    expect(ta.peers()).toEqual({ b: b.address });
    await waitFor('A to reach B', () => ta.stats().peers['b']?.connected === true);
    ta.send([hb('a', 'b', 2)]);
    await waitFor('B to receive from A', () => gotB.length === 1);
    expect(gotB[0]).toMatchObject({ from: 'a', term: 2 });
    await waitFor('B to reach A (A accepts it now)', () => tb.stats().peers['a']?.connected === true);
    tb.send([hb('b', 'a', 3)]);
    await waitFor('A to receive from B', () => gotA.length === 1);

    // B removes A: no link, A's connection into B is cut and new ones are refused.
    const rejectedBefore = tb.stats().rejectedConnections;
    tb.removePeer('a');
    expect(tb.peers()).toEqual({});
    tb.send([hb('b', 'a', 4)]); // unroutable now: dropped
    await waitFor('B to refuse A again', () => tb.stats().rejectedConnections > rejectedBefore);
    ta.send([hb('a', 'b', 5)]);
    await new Promise((r) => setTimeout(r, 100));
    expect(gotB.map((m) => m.term)).toEqual([2]);
    expect(gotA.map((m) => m.term)).toEqual([3]);
    expect(() => ta.addPeer('c', 'not an address')).toThrow(/host:port/);
  });
});
