// --unsafe-stale-reads, the deliberate bug issue 5's chaos runner must catch: five in-process
// members on loopback (real LevelDB, real sockets). Members m4 (started with the bug) and m5 (the
// safe default) are cut off from everyone's messages by a TCP proxy in front of their peer
// listener (the others dial them at the proxy's advertised URL; the transport only receives on
// connections peers dial to it, so closing the proxy starves them). A write the majority
// acknowledges after the cut is then missing from a "linearizable" read at m4, while m5 refuses
// with NO_LEADER rather than answer stale (thesis §6.4).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UNSAFE_STALE_READS_STATUS } from '../src/server/service.js';
import type { KvServeOptions } from '../src/server/flags.js';
import type { KvNode } from '../src/server/node.js';
import { clusterSpecs, dec, enc, refusal, startCluster, stopAll, waitFor, waitLeader } from './server-helpers.js';

/** A TCP relay to `targetPort` that cut() closes for good (existing and new connections). */
class CutProxy {
  private readonly sockets = new Set<Socket>();
  private cutOff = false;
  readonly server: Server;

  private constructor(targetPort: number) {
    this.server = createServer((inbound) => {
      if (this.cutOff) return void inbound.destroy();
      const outbound = connect(targetPort, '127.0.0.1');
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.sockets.delete(s);
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound).pipe(inbound);
    });
  }

  static async start(targetPort: number): Promise<CutProxy> {
    const p = new CutProxy(targetPort);
    await new Promise<void>((r) => p.server.listen(0, '127.0.0.1', () => r()));
    return p;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const proxies: CutProxy[] = [];

afterEach(async () => {
  await stopAll();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

/** Routes the other members' traffic to member `i` through a proxy (its advertised peer URL becomes the proxy's). */
async function proxied(specs: KvServeOptions[], i: number): Promise<CutProxy> {
  const listen = new URL(specs[i]!.listenPeerUrls[0]!);
  const proxy = await CutProxy.start(Number(listen.port));
  proxies.push(proxy);
  const name = specs[i]!.name;
  const advertised = `http://127.0.0.1:${proxy.port}`;
  const initialCluster = { ...specs[0]!.initialCluster, [name]: [advertised] };
  for (const [j, s] of specs.entries()) {
    specs[j] = { ...s, initialCluster, ...(j === i ? { initialAdvertisePeerUrls: [advertised] } : {}) };
  }
  return proxy;
}

async function read(node: KvNode, key: string): Promise<string | null> {
  const r = await node.service.range({ key: enc(key) });
  const kv = r.result.kvs[0];
  return kv === undefined ? null : dec(kv.value);
}

describe('--unsafe-stale-reads', () => {
  it('a cut-off member with the bug answers a linearizable read with stale data; the safe default refuses', async () => {
    const specs = await clusterSpecs(5);
    const p4 = await proxied(specs, 3);
    const p5 = await proxied(specs, 4);
    specs[3] = { ...specs[3]!, unsafeStaleReads: true };
    const nodes = await startCluster(specs, { skipPublish: true });
    const [m1, , , m4, m5] = nodes as [KvNode, KvNode, KvNode, KvNode, KvNode];
    let leader = await waitLeader(nodes);
    if (leader === m4 || leader === m5) {
      await leader.driver.transferLeadership(m1.memberId, { timeoutMs: 5000 });
      leader = await waitLeader(nodes);
    }
    expect([m4, m5]).not.toContain(leader);

    // The bug is announced in status errors (only by the member that has it).
    expect((await m4.service.status()).result.errors).toContain(UNSAFE_STALE_READS_STATUS);
    expect((await m5.service.status()).result.errors).not.toContain(UNSAFE_STALE_READS_STATUS);

    await leader.service.put({ key: enc('x'), value: enc('old') });
    await waitFor('every member to apply x=old', async () => nodes.every((n) => n.sm.appliedIndex >= leader.sm.appliedIndex));
    expect(await read(m4, 'x')).toBe('old');
    expect(await read(m5, 'x')).toBe('old');

    p4.cut();
    p5.cut();
    // Acknowledged by m1..m3, a majority of five.
    const put = await leader.service.put({ key: enc('x'), value: enc('new') });
    expect(put.header.revision).toBeGreaterThan(0);
    expect(await read(leader, 'x')).toBe('new');

    // The bug: m4 answers a linearizable read (not flagged stale) with the value the new one replaced.
    const stale = await m4.service.range({ key: enc('x') });
    expect(stale.stale).toBeUndefined();
    expect(stale.result.kvs.map((kv) => dec(kv.value))).toEqual(['old']);
    expect(stale.header.revision).toBeLessThan(put.header.revision);

    // The safe default: once m5 notices it no longer hears the leader, it refuses (never stale).
    await waitFor('m5 to notice it is cut off', () => m5.quorumProblemNow() !== null);
    const e = await refusal(m5.service.range({ key: enc('x') }));
    expect(e.code).toBe('NO_LEADER');
  }, 60_000);

  it('a single member with the bug still reads its own writes (the bug needs a fault to show)', async () => {
    const [spec] = await clusterSpecs(1);
    const [node] = await startCluster([{ ...spec!, unsafeStaleReads: true }], { skipPublish: true });
    await waitLeader([node!]);
    await node!.service.put({ key: enc('k'), value: enc('v1') });
    expect(await read(node!, 'k')).toBe('v1');
  });
});
