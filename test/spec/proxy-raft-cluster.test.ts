// A real 3-node `ballot raft node` cluster whose peer links all go through a ProxyNetwork: isolating the leader
// through the proxies makes the majority elect a new leader while the old one steps down (CheckQuorum, thesis §6.2)
// and refuses proposals; heal brings it back as a follower of the new leader.
//
// `raft node` takes explicit ids (--peers id=host:port), so each node can be given its own view of the others'
// addresses (the proxies). `kv serve` derives member ids from the peer URLs, so it takes --peer-dial-override
// instead (proxy-kv-cluster.test.ts).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, type CapturedChild } from '@ballot/raft';
import { describe, expect, it } from 'vitest';
import { ProxyNetwork } from '../src/proxy/index.js';
import { useCliProcesses } from './proxy-helpers.js';

const { bin: BIN, procs, cleanups } = useCliProcesses();

interface Status {
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
}

async function status(port: number): Promise<Status | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(2000) });
    return r.status === 200 ? ((await r.json()) as Status) : null;
  } catch {
    return null;
  }
}

async function propose(port: number, text: string): Promise<number | 'no-answer'> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/propose`, { method: 'POST', body: text, signal: AbortSignal.timeout(3000) });
    await r.text();
    return r.status;
  } catch {
    return 'no-answer';
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('a real raft cluster behind the proxy network', () => {
  it('isolating the leader: the majority elects a new one, the old one refuses proposals, heal rejoins it', async () => {
    const names = ['n1', 'n2', 'n3'];
    // The nodes' ports come from the OS and are free again when the proxies bind theirs (port 0), so the OS may hand
    // a proxy a node's port; start over when that happens, or a node would fail to listen.
    let portOf = new Map<string, number>();
    let net: ProxyNetwork | undefined;
    for (let attempt = 0; net === undefined; attempt++) {
      const ports = await freePorts(names.length);
      portOf = new Map(names.map((n, i) => [n, ports[i] as number]));
      const candidate = await ProxyNetwork.start({ nodes: names.map((name) => ({ name, peerHost: '127.0.0.1', peerPort: portOf.get(name) as number })) });
      if (candidate.stats().every((l) => !ports.includes(l.port))) net = candidate;
      else await candidate.close();
      if (attempt > 10) throw new Error('could not find ports for the nodes apart from the proxies');
    }
    const network = net;
    cleanups.push(() => network.close());
    const root = mkdtempSync(join(tmpdir(), 'ballot-proxy-'));
    cleanups.push(async () => rmSync(root, { recursive: true, force: true }));

    const children: CapturedChild[] = [];
    for (const name of names) {
      const peers = [...net.peerUrlsFor(name)].map(([n, url]) => `${n}=${url.replace('http://', '')}`).join(',');
      children.push(procs.start(BIN, [
        'raft', 'node', '--id', name, '--data-dir', join(root, name), '--listen', `127.0.0.1:${portOf.get(name)}`,
        '--peers', peers, '--tick-ms', '20', '--election-ticks', '10', '--log-level', 'warn',
      ]));
    }
    const leaderOf = async (among: readonly string[]): Promise<{ name: string; term: number } | null> => {
      for (const c of children) if (c.exitStatus !== null) throw new Error(`node ${c.pid} exited (${c.exitStatus}): ${c.stderr.slice(-2000)}`);
      for (const n of among) {
        const s = await status(portOf.get(n) as number);
        if (s?.role === 'leader') return { name: n, term: s.term };
      }
      return null;
    };
    const first = await waitFor('a first leader', () => leaderOf(names));
    const oldPort = portOf.get(first.name) as number;
    expect(await propose(oldPort, 'before')).toBe(200);
    // Traffic went through the proxies.
    expect(net.stats().reduce((n, s) => n + s.bytesForwardedOut, 0)).toBeGreaterThan(0);

    net.isolate(first.name);
    const rest = names.filter((n) => n !== first.name);
    const second = await waitFor('the majority to elect a new leader', () => leaderOf(rest)).catch(async (e: unknown) => {
      const statuses = await Promise.all(names.map(async (n) => [n, await status(portOf.get(n) as number)]));
      throw new Error(`${String(e)}; first ${JSON.stringify(first)}; statuses ${JSON.stringify(statuses)}; links ${JSON.stringify(net.stats())}`);
    });
    expect(second.term).toBeGreaterThan(first.term);
    expect(await propose(portOf.get(second.name) as number, 'during')).toBe(200);
    // The old leader steps down after an election timeout without a quorum and does not commit anything.
    await waitFor('the old leader to step down', async () => ((await status(oldPort))?.role === 'leader' ? null : true));
    const staleStatus = await propose(oldPort, 'stale');
    if (process.env.PROXY_DEBUG) console.log('stale propose at the old leader:', staleStatus);
    expect(staleStatus).not.toBe(200);
    const cut = net.stats().filter((s) => s.from === first.name || s.to === first.name);
    expect(cut.reduce((n, s) => n + s.connectionsRefused + s.connectionsReset, 0)).toBeGreaterThan(0);

    net.heal();
    await waitFor('the old leader to follow the new one', async () => {
      const s = await status(oldPort);
      return s !== null && s.role === 'follower' && s.leader === second.name ? true : null;
    });
    expect(await propose(portOf.get(second.name) as number, 'after')).toBe(200);
  });
});
