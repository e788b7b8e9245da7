// `ballot kv serve` flags (etcd's names and defaults) and member/cluster ids.
import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { KvUsageError, parseKvServeFlags, parseInitialCluster, registerKvServeCommand } from '../src/server/flags.js';
import { computeClusterId, computeMemberId, isMemberId } from '../src/server/ids.js';

describe('kv serve flags', () => {
  it("uses etcd's defaults", () => {
    const o = parseKvServeFlags([]);
    expect(o).toMatchObject({
      name: 'default',
      dataDir: 'default.etcd',
      listenClientUrls: ['http://localhost:2379'],
      advertiseClientUrls: ['http://localhost:2379'],
      listenPeerUrls: ['http://localhost:2380'],
      initialAdvertisePeerUrls: ['http://localhost:2380'],
      initialCluster: { default: ['http://localhost:2380'] },
      initialClusterState: 'new',
      initialClusterToken: 'etcd-cluster',
      heartbeatIntervalMs: 100,
      electionTimeoutMs: 1000,
      readMode: 'read-index',
    });
  });

  it('parses an etcd 3-member command line unchanged (both --flag value and --flag=value)', () => {
    const o = parseKvServeFlags([
      '--name', 'infra1',
      '--data-dir=/tmp/infra1',
      '--listen-client-urls', 'http://0.0.0.0:2379,http://127.0.0.1:22379',
      '--advertise-client-urls', 'http://10.0.0.1:2379',
      '--listen-peer-urls', 'http://0.0.0.0:2380',
      '--initial-advertise-peer-urls', 'http://10.0.0.1:2380',
      '--initial-cluster', 'infra1=http://10.0.0.1:2380,infra2=http://10.0.0.2:2380,infra3=http://10.0.0.3:2380',
      '--initial-cluster-state', 'existing',
      '--initial-cluster-token', 'tok-1',
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--read-mode', 'lease',
    ]);
    expect(o.name).toBe('infra1');
    expect(o.dataDir).toBe('/tmp/infra1');
    expect(o.listenClientUrls).toEqual(['http://0.0.0.0:2379', 'http://127.0.0.1:22379']);
    expect(o.initialCluster).toEqual({ infra1: ['http://10.0.0.1:2380'], infra2: ['http://10.0.0.2:2380'], infra3: ['http://10.0.0.3:2380'] });
    expect(o.initialClusterState).toBe('existing');
    expect(o.heartbeatIntervalMs).toBe(50);
    expect(o.electionTimeoutMs).toBe(500);
    expect(o.readMode).toBe('lease');
  });

  it('refuses bad input, naming the flag', () => {
    const bad: [string[], RegExp][] = [
      [['--listen-client-urls', 'localhost:2379'], /--listen-client-urls/],
      [['--listen-client-urls', 'https://127.0.0.1:2379'], /https/],
      [['--initial-cluster', 'a=http://h:1'], /--name "default" is not in it/],
      [['--name', 'a', '--initial-cluster', 'a=http://h:1', '--initial-advertise-peer-urls', 'http://h:2'], /must match/],
      [['--heartbeat-interval', '300'], /at least 5 times/],
      [['--election-timeout', 'x'], /--election-timeout: expected an integer/],
      [['--initial-cluster-state', 'maybe'], /initial-cluster-state/],
      [['--no-such-flag'], /unknown option/],
      [['--initial-cluster', 'a=http://h:1,b=http://h:1', '--name', 'a', '--initial-advertise-peer-urls', 'http://h:1'], /given to both/],
      [['--initial-advertise-peer-urls', 'http://h:0'], /port 0/],
    ];
    for (const [argv, re] of bad) {
      let err: unknown = null;
      try {
        parseKvServeFlags(argv);
      } catch (e) {
        err = e;
      }
      expect(err, argv.join(' ')).toBeInstanceOf(KvUsageError);
      expect((err as Error).message, argv.join(' ')).toMatch(re);
    }
  });

  it('accepts port 0 in listen URLs (the OS picks) and a repeated name in --initial-cluster', () => {
    const o = parseKvServeFlags(['--listen-peer-urls', 'http://127.0.0.1:0', '--listen-client-urls', 'http://127.0.0.1:0']);
    expect(o.listenPeerUrls).toEqual(['http://127.0.0.1:0']);
    expect(parseInitialCluster('a=http://h:1,a=http://h2:1')).toEqual({ a: ['http://h:1', 'http://h2:1'] });
  });

  it('reads ETCD_* environment variables as etcd does (the command line wins), and accepts etcd-only flags as ignored', () => {
    const saved = { name: process.env['ETCD_NAME'], cluster: process.env['ETCD_INITIAL_CLUSTER'] };
    process.env['ETCD_NAME'] = 'envname';
    process.env['ETCD_INITIAL_CLUSTER'] = 'envname=http://localhost:2380';
    try {
      expect(parseKvServeFlags([]).name).toBe('envname');
      expect(parseKvServeFlags(['--name', 'cli', '--initial-cluster', 'cli=http://localhost:2380']).name).toBe('cli');
    } finally {
      if (saved.name === undefined) delete process.env['ETCD_NAME'];
      else process.env['ETCD_NAME'] = saved.name;
      if (saved.cluster === undefined) delete process.env['ETCD_INITIAL_CLUSTER'];
      else process.env['ETCD_INITIAL_CLUSTER'] = saved.cluster;
    }
    const o = parseKvServeFlags(['--logger', 'zap', '--auto-compaction-retention=1', '--enable-pprof', '--listen-metrics-urls', 'http://127.0.0.1:0']);
    expect(o.ignoredEtcdFlags).toEqual(['--logger', '--auto-compaction-retention', '--enable-pprof']);
    expect(o.listenMetricsUrls).toEqual(['http://127.0.0.1:0']);
    expect(parseKvServeFlags([]).ignoredEtcdFlags).toEqual([]);
  });

  it('registers `serve` under a commander group', () => {
    const kv = new Command('kv');
    const serve = registerKvServeCommand(kv);
    expect(serve.name()).toBe('serve');
    expect(kv.commands.map((c) => c.name())).toContain('serve');
    expect(serve.options.map((o) => o.long)).toEqual(
      expect.arrayContaining(['--name', '--data-dir', '--listen-client-urls', '--advertise-client-urls', '--listen-peer-urls', '--initial-advertise-peer-urls', '--initial-cluster', '--initial-cluster-state', '--initial-cluster-token', '--heartbeat-interval', '--election-timeout']),
    );
  });
});

describe('member and cluster ids', () => {
  it('are 16 hex digits, deterministic, independent of URL order and trailing slashes', () => {
    const a = computeMemberId(['http://10.0.0.1:2380', 'http://10.0.0.9:2380'], 't');
    expect(isMemberId(a)).toBe(true);
    expect(computeMemberId(['http://10.0.0.9:2380/', 'http://10.0.0.1:2380'], 't')).toBe(a);
  });

  it('depend on the token and on the URLs', () => {
    const a = computeMemberId(['http://10.0.0.1:2380'], 't');
    expect(computeMemberId(['http://10.0.0.1:2380'], 'u')).not.toBe(a);
    expect(computeMemberId(['http://10.0.0.2:2380'], 't')).not.toBe(a);
    const c = computeClusterId([a, 'ffffffffffffffff'], 't');
    expect(isMemberId(c)).toBe(true);
    expect(computeClusterId(['ffffffffffffffff', a], 't')).toBe(c);
    expect(computeClusterId([a, 'ffffffffffffffff'], 'u')).not.toBe(c);
  });
});
