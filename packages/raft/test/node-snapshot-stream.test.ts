// Snapshot streaming between two nodes over real sockets (node/snapshot-stream.ts): chunks with a
// bounded window, a connection cut mid-stream that resumes at the receiver's written offset, and
// refusals (wrong cluster, a file that does not verify).

import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { InstallSnapshot, SnapshotMeta } from '../src/core/types.js';
import { SnapshotStore, type VerifiedSnapshot } from '../src/storage/snapshot.js';
import { SnapshotStreamer } from '../src/node/snapshot-stream.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(server: Server | TcpServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ballot-stream-'));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** A TCP proxy that cuts the first connection once `cutAfterBytes` went from client to server. */
async function cuttingProxy(targetPort: number, cutAfterBytes: number): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const proxy = createTcpServer((client) => {
    const n = ++connections;
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let forwarded = 0;
    client.on('data', (b: Buffer) => {
      forwarded += b.length;
      upstream.write(b);
      if (n === 1 && forwarded >= cutAfterBytes) {
        client.destroy();
        upstream.destroy();
      }
    });
    upstream.on('data', (b: Buffer) => client.write(b));
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  const port = await listen(proxy);
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => proxy.close(() => r()));
  });
  return { port, connections: () => connections };
}

interface Side {
  readonly http: Server;
  readonly port: number;
  readonly store: SnapshotStore;
  readonly streamer: SnapshotStreamer;
  readonly received: { message: InstallSnapshot; file: VerifiedSnapshot }[];
}

async function side(id: string, clusterId: string, addressOf: (id: string) => string | undefined): Promise<Side> {
  const http = createHttpServer();
  const port = await listen(http);
  const store = await SnapshotStore.open(await tempDir());
  const received: Side['received'] = [];
  const streamer = new SnapshotStreamer({
    clusterId,
    nodeId: id,
    server: http,
    store,
    addressOf,
    onSnapshot: (message, file) => received.push({ message, file }),
    chunkBytes: 64 * 1024,
    windowChunks: 3,
    retryMinMs: 20,
    retryMaxMs: 50,
    idleTimeoutMs: 3000,
  });
  cleanups.push(async () => {
    await streamer.close();
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });
  return { http, port, store, streamer, received };
}

/** The receiver's address book: it knows the leader n1. */
const knowsN1 = (id: string): string | undefined => (id === 'n1' ? '127.0.0.1:1' : undefined);

const META: SnapshotMeta = { index: 500, term: 3, config: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } };
const MESSAGE: InstallSnapshot = { type: 'InstallSnapshot', from: 'n1', to: 'n4', term: 3, meta: META };

function payload(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 2654435761) >>> 24;
  return b;
}

describe('snapshot streaming', () => {
  it('streams a multi-chunk snapshot; a connection cut mid-stream resumes at the written offset', async () => {
    const addresses: Record<string, string> = {};
    const receiver = await side('n4', 'c1', knowsN1);
    const sender = await side('n1', 'c1', (id) => addresses[id]);
    const proxy = await cuttingProxy(receiver.port, 1024 * 1024);
    addresses['n4'] = `127.0.0.1:${proxy.port}`;

    const data = payload(3 * 1024 * 1024 + 123);
    const file = await sender.store.write({ meta: META, addresses: { n1: '127.0.0.1:1' } }, [data.subarray(0, 1_000_000), data.subarray(1_000_000)]);
    await sender.streamer.send(MESSAGE, file);

    expect(proxy.connections()).toBeGreaterThanOrEqual(2);
    const st = sender.streamer.stats();
    expect(st.resumedAttempts).toBeGreaterThanOrEqual(1);
    expect(st.resumedBytes).toBeGreaterThan(0);
    // Resumed, not restarted: far less than two whole files went out.
    expect(st.sentBytes).toBeLessThan(file.fileBytes * 1.5);
    expect(st.completedSends).toBe(1);

    expect(receiver.received).toHaveLength(1);
    const got = receiver.received[0]!;
    expect(got.message).toEqual(MESSAGE);
    expect(got.file.header.meta).toEqual(META);
    expect(got.file.header.addresses).toEqual({ n1: '127.0.0.1:1' });
    expect((await readFile(got.file.path)).equals(await readFile(file.path))).toBe(true);
    // Switched in under its final name; no temp file left behind.
    expect((await readdir(receiver.store.dir)).sort()).toEqual([got.file.path.split('/').pop()]);
  });

  it('refuses a stream from another cluster, and a file that does not verify; neither leaves a file', async () => {
    const addresses: Record<string, string> = {};
    const receiver = await side('n4', 'c1', knowsN1);
    const stranger = await side('n1', 'other', (id) => addresses[id]);
    const sender = await side('n1', 'c1', (id) => addresses[id]);
    addresses['n4'] = `127.0.0.1:${receiver.port}`;

    const file = await sender.store.write({ meta: META, addresses: {} }, [payload(200_000)]);
    await expect(stranger.streamer.send(MESSAGE, file)).rejects.toThrow(/refused.*cluster id mismatch/);
    // A sender the receiver has never heard of is refused too (as on /raft).
    await expect(sender.streamer.send({ ...MESSAGE, from: 'n9' }, file)).rejects.toThrow(/refused.*unknown sender n9/);

    // Flip a data byte in the sender's file: the receiver's verification fails, and says so.
    const bytes = await readFile(file.path);
    bytes[100_000]! ^= 0xff;
    await writeFile(file.path, bytes);
    await expect(sender.streamer.send(MESSAGE, file)).rejects.toThrow(/could not verify.*checksum mismatch/);
    expect(receiver.received).toHaveLength(0);
    expect(await readdir(receiver.store.dir)).toEqual([]);
    expect(sender.streamer.stats().failedSends).toBe(2); // the unknown sender, the bad file
  });
});
