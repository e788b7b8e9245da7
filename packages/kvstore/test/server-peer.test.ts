// The peer listener's forward endpoint (ws /kv/forward) never crashes a member, whatever a peer
// sends: garbage frames, wrong shapes, unknown methods; a foreign cluster id is refused at the
// upgrade. Every frame with an id gets a well-formed reply; a frame without one closes that
// connection. Afterwards the member still serves writes. fast-check with a fixed seed.
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import { CLUSTER_HEADER, CLUSTER_PATH, FORWARD_PATH } from '../src/server/peer.js';
import { clusterSpecs, enc, startMember, stopAll, waitLeader } from './server-helpers.js';

afterEach(async () => {
  await stopAll();
});

const packr = new Packr({ useRecords: false });

function connect(url: string, clusterId: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { [CLUSTER_HEADER]: clusterId } });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends one frame; resolves with the reply for `id`, or 'closed' if the member closed the connection. */
function exchange(ws: WebSocket, frame: Uint8Array, id: number | null): Promise<{ ok: boolean; code?: string } | 'closed'> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer): void => {
      const r = packr.unpack(data) as { id: number; ok: boolean; code?: string };
      if (r.id === id) {
        ws.off('message', onMessage);
        resolve(r);
      }
    };
    ws.on('message', onMessage);
    ws.once('close', () => resolve('closed'));
    ws.send(frame);
  });
}

describe('peer forward endpoint', () => {
  it('answers arbitrary forwarded calls with a reply, never a crash', async () => {
    const [spec] = await clusterSpecs(1);
    const node = await startMember(spec!);
    await waitLeader([node]);
    const url = `${node.peerUrls[0]!.replace('http', 'ws')}${FORWARD_PATH}`;
    await expect(connect(url, 'ffffffffffffffff')).rejects.toThrow(/403/);
    let ws = await connect(url, node.clusterId);
    expect(await exchange(ws, packr.pack({ id: 1, call: { method: 'nope', args: [] } }), 1)).toMatchObject({ ok: false, code: 'BAD_REQUEST' });
    expect(await exchange(ws, packr.pack({ id: 2, call: { method: 'leaseLeases', args: [] } }), 2)).toMatchObject({ ok: true });

    const anyValue = fc.anything({ maxDepth: 3, withTypedArray: true, withNullPrototype: false });
    const call = fc.record({
      method: fc.constantFrom('write', 'leaseKeepAlive', 'leaseTimeToLive', 'leaseLeases', 'memberAdd', 'memberRemove', 'memberPromote', 'other'),
      args: fc.array(anyValue, { maxLength: 3 }),
    });
    const cmd = fc.record({ op: fc.constantFrom('put', 'deleteRange', 'txn', 'compact', 'leaseGrant', 'leaseRevoke', 'registerSession', 'publish', 'x'), req: anyValue, id: anyValue, ttlSec: anyValue, revision: anyValue });
    const frame = fc.oneof(
      call.map((c) => ({ withId: true, call: c as unknown })),
      cmd.map((c) => ({ withId: true, call: { method: 'write', args: [c, {}] } as unknown })),
      anyValue.map((v) => ({ withId: true, call: v })),
      fc.uint8Array({ maxLength: 64 }).map((b) => ({ withId: false, call: b as unknown })),
    );
    let nextId = 10;
    await fc.assert(
      fc.asyncProperty(frame, async (f) => {
        if (ws.readyState !== WebSocket.OPEN) ws = await connect(url, node.clusterId);
        const id = nextId++;
        const bytes = f.withId ? packr.pack({ id, call: f.call }) : (f.call as Uint8Array);
        const reply = await exchange(ws, bytes, f.withId ? id : null);
        if (f.withId) expect(reply === 'closed' ? reply : typeof reply.ok).toBe('boolean');
      }),
      { seed: 4242, numRuns: 150 },
    );
    ws.terminate();
    // Still a working member.
    const w = await node.service.put({ key: enc('alive'), value: enc('yes') });
    expect(w.header.memberId).toBe(node.memberId);
    const info = (await (await fetch(`${node.peerUrls[0]}${CLUSTER_PATH}`)).json()) as { clusterId: string; config: { voters: string[] } };
    expect(info.clusterId).toBe(node.clusterId);
    expect(info.config.voters).toEqual([node.memberId]);
  });
});
