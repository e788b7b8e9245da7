// close() must not leave the process hanging: a child process runs one WsTransport with an
// outbound link to a live peer (in this test process), an inbound connection from it, and a
// pending redial to a peer that is down. It then closes the transport and its server while the
// peers stay up, and must exit on its own — no process.exit() — with code 0.

import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Message } from '../src/core/types.js';
import { encodeHello } from '../src/transport/codec.js';
import { WsTransport } from '../src/transport/ws.js';
import { childProcessHarness } from './child-process-helpers.js';

/** A bound on how long the child may take, not a performance assertion: a hang never ends. */
const EXIT_DEADLINE_MS = 20_000;

const CHILD = String.raw`
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { WsTransport } from './transport/ws.js';

const [n2Address, n3Address] = process.argv.slice(2);
const server = createServer();
await new Promise((res) => server.listen(0, '127.0.0.1', res));
const peers = { n1: '127.0.0.1:' + server.address().port, n2: n2Address, n3: n3Address };
const t1 = new WsTransport({ clusterId: 'c', nodeId: 'n1', peers, server, reconnectMinMs: 5, reconnectMaxMs: 20 });
t1.onMessage(() => {});
await t1.start();
process.stdout.write('port ' + server.address().port + '\n');
const beat = setInterval(() => t1.send([{ type: 'HeartbeatResponse', from: 'n1', to: 'n2', term: 1, readRound: 1 }]), 10);
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line !== 'close') continue;
  clearInterval(beat);
  lines.close();
  await t1.close();
  await new Promise((res) => { server.closeAllConnections(); server.close(res); });
  process.stdout.write('closed\n');
}
process.stdin.destroy();
`;

// The child runs the real transport code, transpiled (types stripped) from src.
const harness = childProcessHarness({ name: 'transport-exit', srcDirs: ['core', 'transport'], childSource: CHILD });

async function listen(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  return server;
}
const portOf = (s: Server): number => (s.address() as AddressInfo).port;

it('after close() the process exits by itself while its peers stay up', async () => {
  // n2 lives here and stays up; n3's address is a port nobody listens on.
  const n2Server = await listen();
  const down = await listen();
  const n3Address = `127.0.0.1:${portOf(down)}`;
  await new Promise<void>((res) => down.close(() => res()));
  const n2Received: Message[] = [];
  let n2: WsTransport | null = null;
  let rawPeer: WebSocket | null = null;
  try {
    const proc = harness.spawn([`127.0.0.1:${portOf(n2Server)}`, n3Address], 'pipe');
    let stdout = '';
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const childPort = await new Promise<number>((res, rej) => {
      proc.stdout!.on('data', (d: Buffer) => {
        stdout += d.toString();
        const m = /port (\d+)/.exec(stdout);
        if (m) res(Number(m[1]));
      });
      proc.once('close', () => rej(new Error(`child ended early: ${stderr}`)));
    });
    n2 = new WsTransport({
      clusterId: 'c',
      nodeId: 'n2',
      peers: { n1: `127.0.0.1:${childPort}`, n2: `127.0.0.1:${portOf(n2Server)}` },
      server: n2Server,
      reconnectMinMs: 5,
      reconnectMaxMs: 20,
    });
    n2.onMessage((m) => n2Received.push(m));
    await n2.start();
    // An extra inbound connection to the child that this side never closes.
    rawPeer = new WebSocket(`ws://127.0.0.1:${childPort}/raft`);
    rawPeer.on('error', () => undefined);
    const ws = rawPeer;
    await new Promise<void>((res) => ws.once('open', () => res()));
    ws.send(encodeHello({ clusterId: 'c', from: 'n3', to: 'n1' }));
    await new Promise<void>((res) => ws.once('message', () => res())); // the hello-ack
    const deadline = Date.now() + EXIT_DEADLINE_MS;
    while (n2Received.length === 0 || !n2.stats().peers['n1']!.connected) {
      if (Date.now() > deadline) throw new Error('child never connected');
      await new Promise((r) => setTimeout(r, 10));
    }

    const closed = new Promise<{ code: number | null; hung: boolean }>((res) => {
      const t = setTimeout(() => res({ code: null, hung: true }), EXIT_DEADLINE_MS);
      proc.once('close', (code) => {
        clearTimeout(t);
        res({ code, hung: false });
      });
    });
    proc.stdin!.write('close\n');
    const outcome = await closed;
    expect(outcome.hung ? `still running after close(); stdout: ${stdout}` : 'exited').toBe('exited');
    expect(stderr).toBe('');
    expect(outcome.code).toBe(0);
    expect(stdout).toMatch(/closed\n$/);
  } finally {
    rawPeer?.terminate();
    await n2?.close();
    n2Server.closeAllConnections();
    await new Promise<void>((res) => n2Server.close(() => res()));
  }
});
