// `ballot kv` output formats against etcdctl 3.4's, recorded from a real etcd (the expected
// strings below are etcdctl's own output for the same responses, ids and all).
import { describe, expect, it } from 'vitest';

import {
  boxTable,
  formatCompact,
  formatDel,
  formatGet,
  formatLeaseGrant,
  formatLeaseKeepAlive,
  formatLeaseList,
  formatLeaseTimeToLive,
  formatMemberChange,
  formatMemberList,
  formatPut,
  formatStatus,
  formatTxn,
  formatWatch,
  humanBytes,
} from '../src/cli/format.js';
import type { KeyValue, ResponseHeader } from '../src/types.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
// etcd's cluster_id 15118495548433857066 and member_id 13668033151171901709, in hex.
const header = (revision: number): ResponseHeader => ({ clusterId: 'd1cfaf999eb97a2a', memberId: 'bdae9bbc11dd390d', revision, raftTerm: 2 });
const kv = (key: string, value: string, create: number, mod: number, version: number, lease = 0): KeyValue => ({
  key: b(key),
  value: b(value),
  createRevision: create,
  modRevision: mod,
  version,
  lease,
});

describe('etcdctl output formats', () => {
  it('get: simple and json as etcdctl prints them (uint64 ids exact, base64, zero values omitted)', () => {
    const a = { header: header(7), result: { kvs: [kv('foo', 'bar2', 5, 6, 2)], more: false, count: 1 } };
    expect(formatGet(a, 'simple')).toBe('foo\nbar2\n');
    expect(formatGet(a, 'json')).toBe(
      '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":7,"raft_term":2},' +
        '"kvs":[{"key":"Zm9v","create_revision":5,"mod_revision":6,"version":2,"value":"YmFyMg=="}],"count":1}\n',
    );
    const two = { header: header(7), result: { kvs: [kv('foo', '', 5, 6, 2), kv('foo2', '', 7, 7, 1)], more: false, count: 2 } };
    expect(formatGet(two, 'simple', { keysOnly: true })).toBe('foo\n\nfoo2\n\n');
    expect(formatGet(a, 'simple', { printValueOnly: true })).toBe('bar2\n');
    expect(formatGet(two, 'simple', { countOnly: true })).toBe('2\n');
    expect(formatGet(a, 'table')).toContain('| foo |  bar2 |          5 |       6 |       2 |     0 |');
  });

  it('put and del', () => {
    expect(formatPut({ header: header(4), result: {} }, 'simple')).toBe('OK\n');
    expect(formatPut({ header: header(4), result: { prevKv: kv('foo', 'bar', 5, 5, 1) } }, 'simple')).toBe('OK\nfoo\nbar\n');
    expect(formatPut({ header: header(12), result: {} }, 'json')).toBe(
      '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":12,"raft_term":2}}\n',
    );
    expect(formatDel({ header: header(8), result: { deleted: 1, prevKvs: [kv('foo', 'bar2', 5, 6, 2)] } }, 'simple')).toBe('1\nfoo\nbar2\n');
    expect(formatDel({ header: header(8), result: { deleted: 0, prevKvs: [] } }, 'simple')).toBe('0\n');
    expect(formatDel({ header: header(9), result: { deleted: 0, prevKvs: [] } }, 'json')).toBe(
      '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":9,"raft_term":2}}\n',
    );
    expect(formatCompact({ header: header(9), result: {} }, 3, 'simple')).toBe('compacted revision 3\n');
  });

  it('txn: SUCCESS/FAILURE then each response after a blank line; json wraps responses like the Go client', () => {
    const r = {
      header: header(5),
      result: {
        succeeded: true,
        responses: [{ put: {} }, { range: { kvs: [kv('a', '5', 2, 5, 3)], more: false, count: 1 } }, { deleteRange: { deleted: 0, prevKvs: [] } }],
      },
    };
    expect(formatTxn(r, 'simple')).toBe('SUCCESS\n\nOK\n\na\n5\n\n0\n');
    const put = { header: header(6), result: { succeeded: true, responses: [{ put: {} }] } };
    expect(formatTxn(put, 'json')).toBe(
      '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":6,"raft_term":2},"succeeded":true,' +
        '"responses":[{"Response":{"ResponsePut":{"header":{"revision":6}}}}]}\n',
    );
    expect(formatTxn({ header: header(6), result: { succeeded: false, responses: [] } }, 'simple')).toBe('FAILURE\n');
  });

  it('watch events', () => {
    const w = {
      header: header(9),
      watchId: 0,
      events: [{ type: 'put' as const, kv: kv('w1', 'b', 8, 9, 2), prevKv: kv('w1', 'a', 8, 8, 1) }],
    };
    expect(formatWatch(w, 'simple')).toBe('PUT\nw1\na\nw1\nb\n');
    const del = { header: header(10), watchId: 0, events: [{ type: 'delete' as const, kv: kv('w1', '', 0, 10, 0) }] };
    expect(formatWatch(del, 'simple')).toBe('DELETE\nw1\n\n');
    expect(formatWatch(del, 'json')).toBe(
      '{"Header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":10,"raft_term":2},' +
        '"Events":[{"type":1,"kv":{"key":"dzE=","mod_revision":10}}],"CompactRevision":0,"Canceled":false,"Created":false}\n',
    );
    expect(formatWatch({ header: header(10), watchId: 0, created: true, events: [] }, 'simple')).toBe('');
    expect(formatWatch({ header: header(10), watchId: 0, created: true, events: [] }, 'json')).toBe('');
    expect(formatWatch({ header: header(11), watchId: 0, events: [] }, 'json')).toContain('"Events":[]'); // a progress notification
  });

  it('leases', () => {
    expect(formatLeaseGrant({ header: header(13), result: { id: 0x1f, ttlSec: 60 } }, 'simple')).toBe('lease 000000000000001f granted with TTL(60s)\n');
    expect(formatLeaseGrant({ header: header(13), result: { id: 0x1f, ttlSec: 60 } }, 'json')).toBe(
      '{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":13,"raft_term":2,"ID":31,"TTL":60,"Error":""}\n',
    );
    const ttl = { header: header(13), result: { id: 0x21, ttlSec: 29, grantedTtlSec: 30, keys: [b('k')] } };
    expect(formatLeaseTimeToLive(ttl, false, 'simple')).toBe('lease 0000000000000021 granted with TTL(30s), remaining(29s)\n');
    expect(formatLeaseTimeToLive(ttl, true, 'simple')).toBe('lease 0000000000000021 granted with TTL(30s), remaining(29s), attached keys([k])\n');
    expect(formatLeaseTimeToLive(ttl, true, 'json')).toBe(
      '{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":13,"raft_term":2,"id":33,"ttl":29,"granted-ttl":30,"keys":["aw=="]}\n',
    );
    expect(formatLeaseTimeToLive({ header: header(13), result: { id: 0x21, ttlSec: -1, grantedTtlSec: 0, keys: [] } }, false, 'simple')).toBe(
      'lease 0000000000000021 already expired\n',
    );
    expect(formatLeaseKeepAlive({ header: header(13), result: { id: 0x21, ttlSec: 30 } }, 'simple')).toBe('lease 0000000000000021 keepalived with TTL(30)\n');
    expect(formatLeaseList({ header: header(13), result: { ids: [0x21, 0x1f] } }, 'simple')).toBe('found 2 leases\n0000000000000021\n000000000000001f\n');
  });

  it('member list and endpoint status: simple and etcdctl-style tables', () => {
    const members = { header: header(0), result: { members: [{ id: 'bdae9bbc11dd390d', name: 'e1', peerUrls: ['http://127.0.0.1:23801'], clientUrls: ['http://127.0.0.1:23791'], isLearner: false }] } };
    expect(formatMemberList(members, 'simple')).toBe('bdae9bbc11dd390d, started, e1, http://127.0.0.1:23801, http://127.0.0.1:23791, false\n');
    expect(formatMemberList(members, 'table')).toBe(
      '+------------------+---------+------+------------------------+------------------------+------------+\n' +
        '|        ID        | STATUS  | NAME |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |\n' +
        '+------------------+---------+------+------------------------+------------------------+------------+\n' +
        '| bdae9bbc11dd390d | started |   e1 | http://127.0.0.1:23801 | http://127.0.0.1:23791 |      false |\n' +
        '+------------------+---------+------+------------------------+------------------------+------------+\n',
    );
    expect(formatMemberList(members, 'json')).toBe(
      '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"raft_term":2},' +
        '"members":[{"ID":13668033151171901709,"name":"e1","peerURLs":["http://127.0.0.1:23801"],"clientURLs":["http://127.0.0.1:23791"]}]}\n',
    );
    expect(formatMemberChange(members, 'removed', 'bdae9bbc11dd390d', 'simple')).toBe('Member bdae9bbc11dd390d removed from cluster d1cfaf999eb97a2a\n');
    const st = {
      endpoint: 'http://127.0.0.1:23791',
      answer: { header: header(17), result: { version: '3.4.23', dbSize: 20480, leader: 'bdae9bbc11dd390d', raftIndex: 32, raftTerm: 2, raftAppliedIndex: 32, isLearner: false, errors: [] } },
    };
    expect(formatStatus([st], 'simple')).toBe('http://127.0.0.1:23791, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 32, 32, \n');
    expect(formatStatus([st], 'table')).toContain('| http://127.0.0.1:23791 | bdae9bbc11dd390d |  3.4.23 |   20 kB |      true |      false |         2 |         32 |                 32 |        |');
    expect(formatStatus([st], 'json')).toContain('"leader":13668033151171901709,"raftIndex":32');
  });

  it('humanizes bytes like go-humanize and draws boxes', () => {
    expect([humanBytes(0), humanBytes(20480), humanBytes(1_234_567), humanBytes(999)]).toEqual(['0 B', '20 kB', '1.2 MB', '999 B']);
    expect(boxTable(['a'], [])).toBe('+---+\n| A |\n+---+\n+---+\n');
  });
});
