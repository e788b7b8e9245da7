// --peer-dial-override: this member dials some members elsewhere (the chaos runner's proxies), while ids and
// membership still come from the shared --initial-cluster URLs.
import { describe, expect, it } from 'vitest';
import { KvUsageError, parseKvServeFlags } from '../src/server/flags.js';
import { computeMemberId } from '../src/server/ids.js';
import { PeerBook } from '../src/server/peers.js';
import { spawnMember, useProcessHooks } from './process-helpers.js';

useProcessHooks();

const CLUSTER = 'n1=http://127.0.0.1:7001,n2=http://127.0.0.1:7002,n3=http://127.0.0.1:7003';
const base = ['--name', 'n1', '--initial-advertise-peer-urls', 'http://127.0.0.1:7001', '--initial-cluster', CLUSTER];

function usageError(argv: readonly string[]): string {
  try {
    parseKvServeFlags(argv);
  } catch (e) {
    if (e instanceof KvUsageError) return e.message;
    throw e;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
}

describe('--peer-dial-override flag', () => {
  it('is absent by default and parses name=url pairs (normalized) otherwise', () => {
    expect(parseKvServeFlags(base).peerDialOverride).toBeUndefined();
    const o = parseKvServeFlags([...base, '--peer-dial-override', 'n2=http://127.0.0.1:9002/, n3=http://localhost:9003']);
    expect(o.peerDialOverride).toEqual({ n2: 'http://127.0.0.1:9002', n3: 'http://localhost:9003' });
    // Membership is unchanged: the initial cluster still has the advertised URLs.
    expect(o.initialCluster).toEqual({ n1: ['http://127.0.0.1:7001'], n2: ['http://127.0.0.1:7002'], n3: ['http://127.0.0.1:7003'] });
  });

  it('refuses unknown names, this member, repeats, bad URLs and empty lists, naming the flag', () => {
    expect(usageError([...base, '--peer-dial-override', 'n9=http://127.0.0.1:9009'])).toMatch(/--peer-dial-override: "n9" is not a member of --initial-cluster \(n1, n2, n3\)/);
    expect(usageError([...base, '--peer-dial-override', 'n1=http://127.0.0.1:9001'])).toMatch(/"n1" is this member/);
    expect(usageError([...base, '--peer-dial-override', 'n2=http://127.0.0.1:9002,n2=http://127.0.0.1:9003'])).toMatch(/"n2" is given twice/);
    expect(usageError([...base, '--peer-dial-override', 'n2=127.0.0.1:9002'])).toMatch(/--peer-dial-override \(n2\)/);
    expect(usageError([...base, '--peer-dial-override', 'n2=http://127.0.0.1'])).toMatch(/--peer-dial-override \(n2\).*has no port/);
    expect(usageError([...base, '--peer-dial-override', 'n2=https://127.0.0.1:9002'])).toMatch(/https/);
    expect(usageError([...base, '--peer-dial-override', 'http://127.0.0.1:9002'])).toMatch(/expected name=url/);
    expect(usageError([...base, '--peer-dial-override', ','])).toMatch(/expected name=url/);
  });

  it('`ballot kv serve` exits 2 with the message on a bad override', async () => {
    const p = spawnMember('bad-override', [...base, '--peer-dial-override', 'nx=http://127.0.0.1:9009']);
    expect(await p.exited).toBe(2);
    expect(p.stderr).toMatch(/ballot kv serve: --peer-dial-override: "nx" is not a member of --initial-cluster/);
  });
});

describe('PeerBook with dial overrides', () => {
  const token = 'etcd-cluster';
  const id = (port: number): string => computeMemberId([`http://127.0.0.1:${port}`], token);

  it('dials the override, keeps the advertised URLs as the member list, and dials members without one as advertised', () => {
    const book = new PeerBook(id(7001), new Map([[id(7002), 'http://127.0.0.1:9002']]));
    for (const port of [7001, 7002, 7003]) book.set(id(port), [`http://127.0.0.1:${port}`]);
    expect(book.dialAddress(id(7002))).toBe('127.0.0.1:9002');
    expect(book.baseUrl(id(7002))).toBe('http://127.0.0.1:9002');
    expect(book.get(id(7002))).toEqual(['http://127.0.0.1:7002']);
    expect(book.toSnapshotAddresses()[id(7002)]).toBe('http://127.0.0.1:7002');
    expect(book.dialAddress(id(7003))).toBe('127.0.0.1:7003');
    // A member added later (learned from a config entry) has no override: its advertised URL.
    book.set(id(7004), ['http://127.0.0.1:7004']);
    expect(book.dialAddress(id(7004))).toBe('127.0.0.1:7004');
    expect(book.baseUrl(id(7004))).toBe('http://127.0.0.1:7004');
  });

  it('without overrides behaves as before', () => {
    const book = new PeerBook(id(7001));
    book.set(id(7002), ['http://127.0.0.1:7002', 'http://127.0.0.1:7102']);
    expect(book.dialAddress(id(7002))).toBe('127.0.0.1:7002');
    expect(book.baseUrl(id(7002))).toBe('http://127.0.0.1:7002');
    expect(book.dialAddress(id(7009))).toBeUndefined();
  });
});
