// The peer listener's forward endpoint never crashes a member, whatever a peer sends: garbage
// bytes, wrong shapes, unknown methods, a foreign cluster id. Every request gets a well-formed
// reply; afterwards the member still serves writes. fast-check with a fixed seed (printed on failure).
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { FORWARD_PATH, CLUSTER_PATH } from '../src/server/peer.js';
import { clusterSpecs, enc, startMember, stopAll, waitLeader } from './server-helpers.js';

afterEach(async () => {
  await stopAll();
});

const packr = new Packr({ useRecords: false });

describe('peer endpoints', () => {
  it('answer arbitrary forwarded calls with a reply, never a crash', async () => {
    const [spec] = await clusterSpecs(1);
    const node = await startMember(spec!);
    await waitLeader([node]);
    const url = `${node.peerUrls[0]}${FORWARD_PATH}`;
    const send = async (body: Uint8Array, cluster = node.clusterId): Promise<{ ok: boolean; code?: string }> => {
      const res = await fetch(url, { method: 'POST', body, headers: { 'x-ballot-cluster': cluster, 'content-type': 'application/msgpack' } });
      return packr.unpack(Buffer.from(await res.arrayBuffer())) as { ok: boolean; code?: string };
    };
    expect((await send(packr.pack({ method: 'leaseLeases', args: [] }), 'ffffffffffffffff')).code).toBe('BAD_REQUEST');
    expect((await send(new Uint8Array([0xc1, 0xff, 0x00]))).code).toBe('BAD_REQUEST');
    expect((await send(packr.pack({ method: 'nope', args: [] }))).code).toBe('BAD_REQUEST');

    const anyValue = fc.anything({ maxDepth: 3, withTypedArray: true, withNullPrototype: false });
    const call = fc.record({
      method: fc.constantFrom('write', 'leaseKeepAlive', 'leaseTimeToLive', 'leaseLeases', 'memberAdd', 'memberRemove', 'memberPromote', 'other'),
      args: fc.array(anyValue, { maxLength: 3 }),
    });
    const cmd = fc.record({ op: fc.constantFrom('put', 'deleteRange', 'txn', 'compact', 'leaseGrant', 'leaseRevoke', 'registerSession', 'publish', 'x'), req: anyValue, id: anyValue, ttlSec: anyValue, revision: anyValue });
    const body = fc.oneof(
      call.map((c) => packr.pack(c)),
      cmd.map((c) => packr.pack({ method: 'write', args: [c, {}] })),
      fc.uint8Array({ maxLength: 64 }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const reply = await send(b);
        expect(typeof reply.ok).toBe('boolean');
      }),
      { seed: 4242, numRuns: 150 },
    );
    // Still a working member.
    const w = await node.service.put({ key: enc('alive'), value: enc('yes') });
    expect(w.header.memberId).toBe(node.memberId);
    const info = (await (await fetch(`${node.peerUrls[0]}${CLUSTER_PATH}`)).json()) as { clusterId: string; config: { voters: string[] } };
    expect(info.clusterId).toBe(node.clusterId);
    expect(info.config.voters).toEqual([node.memberId]);
  });
});
