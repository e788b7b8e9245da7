// Flow-controlled sinks over real transports: a streamed HTTP response to a client that stops
// reading (real loopback socket, OS-assigned port) makes the hub cancel the watcher with a reason
// while its buffer stays bounded; a WebSocket-like buffered socket is polled back to writable.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { WatchResponse } from '../src/types.js';
import { WatchHub } from '../src/watch/hub.js';
import { webSocketSink, writableStreamSink } from '../src/watch/sinks.js';
import { HEADER, TestStore, waitFor } from './watch-helpers.js';

let store: TestStore;
let server: Server | null = null;
const closers: (() => void)[] = [];

beforeEach(async () => {
  store = await TestStore.open();
});

afterEach(async () => {
  for (const c of closers.splice(0)) c();
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((r) => server?.close(() => r()));
    server = null;
  }
  await store.close();
});

describe('watch sinks', () => {
  it('a client that stops reading a streamed watch is canceled as too slow; the hub never holds more than its bound', async () => {
    const maxBufferedBytes = 512 * 1024;
    const maxResponseBytes = 64 * 1024;
    const hub = new WatchHub({ source: store.sm, header: () => HEADER, maxBufferedBytes, maxResponseBytes });
    closers.push(() => hub.close());
    const responses: WatchResponse[] = [];
    let serverRes: ServerResponse | null = null;
    server = createServer((_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      serverRes = res;
      const sink = writableStreamSink(
        res,
        (r) => {
          responses.push(r);
          res.write(JSON.stringify({ watchId: r.watchId, revision: r.header.revision, events: r.events.map((e) => Buffer.from(e.kv.value).toString('base64')) }) + '\n');
        },
        64 * 1024,
      );
      hub.watch({ key: Buffer.from('k'), rangeEnd: Buffer.from('l') }, sink);
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;

    // The client reads the first chunk, then stops reading (its socket buffers fill up).
    const clientRes = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v3/watch' }, resolve);
      req.on('error', reject);
      req.end();
    });
    closers.push(() => clientRes.destroy());
    await new Promise<void>((r) => clientRes.once('data', () => r()));
    clientRes.pause();

    const value = 'v'.repeat(16 * 1024);
    let peakBytes = 0;
    for (let i = 0; i < 4000 && responses.every((r) => !r.canceled); i++) {
      store.put(`k${i % 10}`, value);
      peakBytes = Math.max(peakBytes, hub.stats().bufferedBytes);
      if (i % 50 === 0) await new Promise((r) => setImmediate(r)); // let the socket move what it can
    }
    const canceled = responses.find((r) => r.canceled);
    expect(canceled?.cancelReason).toMatch(/^watcher is too slow: \d+ buffered events, \d+ bytes/);
    expect(peakBytes).toBeLessThanOrEqual(maxBufferedBytes);
    expect(hub.count).toBe(0);
    // What the transport holds is bounded too: the sink stops taking responses above its mark
    // (64 KiB), so at most one more response (<= maxResponseBytes, x2 for base64 and JSON) sits there.
    expect((serverRes as ServerResponse | null)?.writableLength ?? 0).toBeLessThanOrEqual(64 * 1024 + 2 * maxResponseBytes);
  });

  it('a WebSocket sink is congested above its mark and is polled back to writable, waking the hub', async () => {
    const socket = { bufferedAmount: 0, readyState: 1 };
    const hub = new WatchHub({ source: store.sm, header: () => HEADER });
    closers.push(() => hub.close());
    const got: WatchResponse[] = [];
    const sink = webSocketSink(
      socket,
      (r) => {
        got.push(r);
        socket.bufferedAmount += 1000; // what ws.send would queue
      },
      1500,
      2,
    );
    hub.watch({ key: Buffer.from('k') }, sink);
    store.put('k', 'a'); // sent: 2000 buffered > 1500 -> congested
    store.put('k', 'b');
    store.put('k', 'c');
    expect(sink.writable).toBe(false);
    expect(got.map((r) => (r.created ? 'created' : r.events.map((e) => Buffer.from(e.kv.value).toString()).join()))).toEqual(['created', 'a']);
    expect(hub.stats().bufferedEvents).toBe(2);
    socket.bufferedAmount = 0; // the socket flushed
    await waitFor(() => hub.stats().bufferedEvents === 0, 'the poll wakes the hub');
    const values = got.flatMap((r) => r.events.map((e) => Buffer.from(e.kv.value).toString()));
    expect(values).toEqual(['a', 'b', 'c']);
  });
});
