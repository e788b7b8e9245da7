// Output of `ballot kv ...` in etcdctl 3.4's three formats, so scripts written against etcdctl's
// output keep working:
//   simple  etcdctl's default: `OK`, key/value lines, `lease 0123... granted with TTL(60s)`, ...
//   json    etcdctl's `-w json`: the response as etcd's Go client marshals it: snake_case, ids and
//           revisions as JSON numbers (uint64 ids printed in decimal, exactly), keys and values in
//           base64, zero values omitted.
//   table   etcdctl's box tables (member list, endpoint status); for get/put/del/txn/lease/watch,
//           where etcdctl 3.4 says "table not supported as output format", Ballot prints a table
//           too (a difference listed in README).
// Every function is pure: it returns the text to print (ending in a newline when not empty).

import type {
  Answer,
  DeleteRangeResult,
  KeyValue,
  LeaseGrantResult,
  LeaseKeepAliveResult,
  LeaseTimeToLiveResult,
  Member,
  PutResult,
  RangeResult,
  ResponseHeader,
  ResponseOp,
  StatusResult,
  TxnResult,
  WatchResponse,
} from '../types.js';

export type OutputFormat = 'simple' | 'json' | 'table';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['simple', 'json', 'table'];

const utf8 = new TextDecoder();
const text = (b: Uint8Array): string => utf8.decode(b);
const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** A lease id as etcdctl prints it: 16 hex digits. */
export function leaseHex(id: number): string {
  return id.toString(16).padStart(16, '0');
}

// ---------------------------------------------------------------------------------------------
// JSON: uint64 ids must be printed exactly (they exceed 2^53), so they travel through
// JSON.stringify as marked strings and are unquoted afterwards.

const U64 = '\u0000u64:';

/** A 16-hex-digit id as a marked decimal (printed as a bare JSON number). */
function u64(hexId: string): string {
  if (!/^[0-9a-f]{1,16}$/i.test(hexId)) return `${U64}0`;
  return `${U64}${BigInt(`0x${hexId}`).toString(10)}`;
}

function toJson(value: unknown): string {
  return JSON.stringify(value).replace(/"\\u0000u64:(\d+)"/g, '$1');
}

/** Drops keys whose value is a zero value (0, false, '', empty array, undefined), as Go's omitempty. */
function omitEmpty(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === 0 || v === false || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    out[k] = v;
  }
  return out;
}

function headerJson(h: ResponseHeader, withRevision = true): Record<string, unknown> {
  return omitEmpty({
    cluster_id: u64(h.clusterId),
    member_id: u64(h.memberId),
    revision: withRevision ? h.revision : 0,
    raft_term: h.raftTerm,
  });
}

function kvJson(kv: KeyValue): Record<string, unknown> {
  return omitEmpty({
    key: b64(kv.key),
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: b64(kv.value),
    lease: kv.lease,
  });
}

// ---------------------------------------------------------------------------------------------
// Tables: etcdctl's style (olekukonko/tablewriter): a box, headers upper-case and centred, cells
// right-aligned.

export function boxTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const centre = (s: string, w: number): string => {
    const left = Math.floor((w - s.length) / 2);
    return ' '.repeat(left) + s + ' '.repeat(w - s.length - left);
  };
  const line = (cells: readonly string[], head: boolean): string =>
    `|${widths.map((w, i) => ` ${head ? centre(cells[i] ?? '', w) : (cells[i] ?? '').padStart(w)} `).join('|')}|`;
  return [rule, line(headers.map((h) => h.toUpperCase()), true), rule, ...rows.map((r) => line(r, false)), rule].join('\n') + '\n';
}

function kvRows(kvs: readonly KeyValue[]): string[][] {
  return kvs.map((kv) => [text(kv.key), text(kv.value), String(kv.createRevision), String(kv.modRevision), String(kv.version), kv.lease ? leaseHex(kv.lease) : '0']);
}
const KV_HEADERS = ['key', 'value', 'create rev', 'mod rev', 'version', 'lease'];

// ---------------------------------------------------------------------------------------------
// get

export interface GetPrintOptions {
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  readonly printValueOnly?: boolean;
}

export function formatGet(a: Answer<RangeResult>, fmt: OutputFormat, o: GetPrintOptions = {}): string {
  const r = a.result;
  switch (fmt) {
    case 'json':
      return toJson(omitEmpty({ header: headerJson(a.header), kvs: r.kvs.map(kvJson), more: r.more, count: r.count })) + '\n';
    case 'table':
      if (o.countOnly) return boxTable(['count', 'revision'], [[String(r.count), String(a.header.revision)]]);
      return boxTable(KV_HEADERS, kvRows(r.kvs)) + (r.more ? `(${r.count - r.kvs.length} more keys not shown: --limit)\n` : '');
    case 'simple': {
      if (o.countOnly) return `${r.count}\n`;
      let out = '';
      for (const kv of r.kvs) {
        if (!o.printValueOnly) out += `${text(kv.key)}\n`;
        if (!o.keysOnly) out += `${text(kv.value)}\n`;
        else out += '\n';
      }
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// put, del, compact

export function formatPut(a: Answer<PutResult>, fmt: OutputFormat): string {
  const prev = a.result.prevKv;
  switch (fmt) {
    case 'json':
      return toJson(omitEmpty({ header: headerJson(a.header), prev_kv: prev ? kvJson(prev) : undefined })) + '\n';
    case 'table':
      return boxTable(['result', 'revision'], [['OK', String(a.header.revision)]]) + (prev ? boxTable(['prev ' + KV_HEADERS[0]!, ...KV_HEADERS.slice(1)], kvRows([prev])) : '');
    case 'simple':
      return 'OK\n' + (prev ? `${text(prev.key)}\n${text(prev.value)}\n` : '');
  }
}

export function formatDel(a: Answer<DeleteRangeResult>, fmt: OutputFormat): string {
  const r = a.result;
  switch (fmt) {
    case 'json':
      return toJson(omitEmpty({ header: headerJson(a.header), deleted: r.deleted, prev_kvs: r.prevKvs.map(kvJson) })) + '\n';
    case 'table':
      return boxTable(['deleted', 'revision'], [[String(r.deleted), String(a.header.revision)]]) + (r.prevKvs.length > 0 ? boxTable(KV_HEADERS, kvRows(r.prevKvs)) : '');
    case 'simple':
      return `${r.deleted}\n` + r.prevKvs.map((kv) => `${text(kv.key)}\n${text(kv.value)}\n`).join('');
  }
}

export function formatCompact(a: Answer<Record<string, never>>, revision: number, fmt: OutputFormat): string {
  switch (fmt) {
    case 'json':
      return toJson({ header: headerJson(a.header) }) + '\n';
    case 'table':
      return boxTable(['compacted revision'], [[String(revision)]]);
    case 'simple':
      return `compacted revision ${revision}\n`;
  }
}

// ---------------------------------------------------------------------------------------------
// txn: etcdctl prints SUCCESS/FAILURE, then each response after a blank line (put: OK; get:
// key/value lines; del: the count); nested txns recursively.

function responseSimple(op: ResponseOp): string {
  if ('put' in op) return 'OK\n' + (op.put.prevKv ? `${text(op.put.prevKv.key)}\n${text(op.put.prevKv.value)}\n` : '');
  if ('range' in op) return op.range.kvs.map((kv) => `${text(kv.key)}\n${text(kv.value)}\n`).join('');
  if ('deleteRange' in op) return `${op.deleteRange.deleted}\n` + op.deleteRange.prevKvs.map((kv) => `${text(kv.key)}\n${text(kv.value)}\n`).join('');
  return txnSimple(op.txn);
}

function txnSimple(r: TxnResult): string {
  return (r.succeeded ? 'SUCCESS\n' : 'FAILURE\n') + r.responses.map((op) => `\n${responseSimple(op)}`).join('');
}

function responseJson(op: ResponseOp, revision: number): Record<string, unknown> {
  const header = { revision };
  if ('put' in op) return { Response: { ResponsePut: omitEmpty({ header, prev_kv: op.put.prevKv ? kvJson(op.put.prevKv) : undefined }) } };
  if ('range' in op) return { Response: { ResponseRange: omitEmpty({ header, kvs: op.range.kvs.map(kvJson), more: op.range.more, count: op.range.count }) } };
  if ('deleteRange' in op) {
    return { Response: { ResponseDeleteRange: omitEmpty({ header, deleted: op.deleteRange.deleted, prev_kvs: op.deleteRange.prevKvs.map(kvJson) }) } };
  }
  return { Response: { ResponseTxn: omitEmpty({ header, succeeded: op.txn.succeeded, responses: op.txn.responses.map((o) => responseJson(o, revision)) }) } };
}

function txnRows(r: TxnResult, prefix: string): string[][] {
  const rows: string[][] = [];
  r.responses.forEach((op, i) => {
    const n = `${prefix}${i + 1}`;
    if ('put' in op) rows.push([n, 'put', 'OK']);
    else if ('range' in op) rows.push([n, 'get', op.range.kvs.map((kv) => `${text(kv.key)}=${text(kv.value)}`).join(' ') || '(none)']);
    else if ('deleteRange' in op) rows.push([n, 'del', `${op.deleteRange.deleted} deleted`]);
    else {
      rows.push([n, 'txn', op.txn.succeeded ? 'SUCCESS' : 'FAILURE']);
      rows.push(...txnRows(op.txn, `${n}.`));
    }
  });
  return rows;
}

export function formatTxn(a: Answer<TxnResult>, fmt: OutputFormat): string {
  const r = a.result;
  switch (fmt) {
    case 'json':
      return toJson(omitEmpty({ header: headerJson(a.header), succeeded: r.succeeded, responses: r.responses.map((op) => responseJson(op, a.header.revision)) })) + '\n';
    case 'table':
      return `${r.succeeded ? 'SUCCESS' : 'FAILURE'} at revision ${a.header.revision}\n` + boxTable(['#', 'op', 'result'], txnRows(r, ''));
    case 'simple':
      return txnSimple(r);
  }
}

// ---------------------------------------------------------------------------------------------
// watch: one response at a time. As etcdctl (whose Go client never hands the `created` response
// to it): simple/table print events only; json prints responses with events and progress
// notifications; `canceled` is the caller's business (it ends the watch with an error).

export function formatWatch(w: WatchResponse, fmt: OutputFormat): string {
  if (w.created === true && w.events.length === 0) return '';
  if (fmt === 'json') {
    return (
      toJson({
        Header: headerJson(w.header),
        Events: w.events.map((e) => omitEmpty({ type: e.type === 'delete' ? 1 : 0, kv: kvJson(e.kv), prev_kv: e.prevKv ? kvJson(e.prevKv) : undefined })),
        CompactRevision: w.compactRevision ?? 0,
        Canceled: w.canceled === true,
        Created: w.created === true,
      }) + '\n'
    );
  }
  if (w.events.length === 0) return '';
  if (fmt === 'table') {
    return boxTable(
      ['type', 'key', 'value', 'mod rev', 'prev value'],
      w.events.map((e) => [e.type.toUpperCase(), text(e.kv.key), text(e.kv.value), String(e.kv.modRevision), e.prevKv ? text(e.prevKv.value) : '']),
    );
  }
  return w.events
    .map((e) => `${e.type.toUpperCase()}\n` + (e.prevKv ? `${text(e.prevKv.key)}\n${text(e.prevKv.value)}\n` : '') + `${text(e.kv.key)}\n${text(e.kv.value)}\n`)
    .join('');
}

// ---------------------------------------------------------------------------------------------
// leases: etcdctl's JSON flattens the header into the object.

function flatHeader(h: ResponseHeader): Record<string, unknown> {
  return { cluster_id: u64(h.clusterId), member_id: u64(h.memberId), revision: h.revision, raft_term: h.raftTerm };
}

export function formatLeaseGrant(a: Answer<LeaseGrantResult>, fmt: OutputFormat): string {
  const { id, ttlSec } = a.result;
  switch (fmt) {
    case 'json':
      return toJson({ ...flatHeader(a.header), ID: id, TTL: ttlSec, Error: '' }) + '\n';
    case 'table':
      return boxTable(['lease', 'ttl'], [[leaseHex(id), `${ttlSec}s`]]);
    case 'simple':
      return `lease ${leaseHex(id)} granted with TTL(${ttlSec}s)\n`;
  }
}

export function formatLeaseRevoke(a: Answer<Record<string, never>>, id: number, fmt: OutputFormat): string {
  switch (fmt) {
    case 'json':
      return toJson({ header: headerJson(a.header) }) + '\n';
    case 'table':
      return boxTable(['lease', 'result'], [[leaseHex(id), 'revoked']]);
    case 'simple':
      return `lease ${leaseHex(id)} revoked\n`;
  }
}

export function formatLeaseKeepAlive(a: Answer<LeaseKeepAliveResult>, fmt: OutputFormat): string {
  const { id, ttlSec } = a.result;
  switch (fmt) {
    case 'json':
      return toJson({ ...flatHeader(a.header), ID: id, TTL: ttlSec }) + '\n';
    case 'table':
      return boxTable(['lease', 'ttl'], [[leaseHex(id), ttlSec > 0 ? `${ttlSec}s` : 'expired']]);
    case 'simple':
      return ttlSec > 0 ? `lease ${leaseHex(id)} keepalived with TTL(${ttlSec})\n` : `lease ${leaseHex(id)} expired or revoked.\n`;
  }
}

export function formatLeaseTimeToLive(a: Answer<LeaseTimeToLiveResult>, withKeys: boolean, fmt: OutputFormat): string {
  const r = a.result;
  switch (fmt) {
    case 'json':
      return toJson({ ...flatHeader(a.header), id: r.id, ttl: r.ttlSec, 'granted-ttl': r.grantedTtlSec, keys: r.keys.length > 0 ? r.keys.map(b64) : null }) + '\n';
    case 'table':
      return boxTable(
        withKeys ? ['lease', 'granted ttl', 'remaining', 'keys'] : ['lease', 'granted ttl', 'remaining'],
        [[leaseHex(r.id), r.ttlSec === -1 ? '-' : `${r.grantedTtlSec}s`, r.ttlSec === -1 ? 'expired' : `${r.ttlSec}s`, ...(withKeys ? [r.keys.map(text).join(' ')] : [])]],
      );
    case 'simple':
      if (r.ttlSec === -1) return `lease ${leaseHex(r.id)} already expired\n`;
      return (
        `lease ${leaseHex(r.id)} granted with TTL(${r.grantedTtlSec}s), remaining(${r.ttlSec}s)` +
        (withKeys ? `, attached keys([${r.keys.map(text).join(' ')}])` : '') +
        '\n'
      );
  }
}

export function formatLeaseList(a: Answer<{ readonly ids: readonly number[] }>, fmt: OutputFormat): string {
  const ids = a.result.ids;
  switch (fmt) {
    case 'json':
      return toJson({ ...flatHeader(a.header), leases: ids.map((id) => ({ id })) }) + '\n';
    case 'table':
      return boxTable(['lease'], ids.map((id) => [leaseHex(id)]));
    case 'simple':
      return `found ${ids.length} leases\n` + ids.map((id) => `${leaseHex(id)}\n`).join('');
  }
}

// ---------------------------------------------------------------------------------------------
// members

function memberJson(m: Member): Record<string, unknown> {
  return omitEmpty({ ID: u64(m.id), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner });
}

export function formatMemberList(a: Answer<{ readonly members: readonly Member[] }>, fmt: OutputFormat): string {
  const ms = a.result.members;
  const row = (m: Member): string[] => [m.id, m.name === '' ? 'unstarted' : 'started', m.name, m.peerUrls.join(','), m.clientUrls.join(','), String(m.isLearner)];
  switch (fmt) {
    case 'json':
      return toJson({ header: headerJson(a.header, false), members: ms.map(memberJson) }) + '\n';
    case 'table':
      return boxTable(['id', 'status', 'name', 'peer addrs', 'client addrs', 'is learner'], ms.map(row));
    case 'simple':
      return ms.map((m) => row(m).join(', ') + '\n').join('');
  }
}

export type MemberChange = 'added' | 'removed' | 'promoted';

export function formatMemberChange(
  a: Answer<{ readonly members: readonly Member[]; readonly member?: Member }>,
  change: MemberChange,
  memberId: string,
  fmt: OutputFormat,
  added?: { readonly name: string },
): string {
  switch (fmt) {
    case 'json':
      return toJson(omitEmpty({ header: headerJson(a.header, false), member: a.result.member ? memberJson(a.result.member) : undefined, members: a.result.members.map(memberJson) })) + '\n';
    case 'table':
      return boxTable(['member', 'result', 'cluster'], [[memberId, change, a.header.clusterId]]) + formatMemberList(a, 'table');
    case 'simple': {
      const verb = change === 'promoted' ? 'promoted in' : `${change} ${change === 'added' ? 'to' : 'from'}`;
      let out = `Member ${memberId} ${verb} cluster ${a.header.clusterId}\n`;
      if (change === 'added' && added !== undefined) {
        // etcdctl's hint: the environment the new member starts with.
        const peers: string[] = [];
        for (const m of a.result.members) {
          const name = m.id === memberId ? added.name : m.name;
          if (name === '') continue;
          for (const u of m.peerUrls) peers.push(`${name}=${u}`);
        }
        const self = a.result.members.find((m) => m.id === memberId);
        out +=
          `\nETCD_NAME="${added.name}"\nETCD_INITIAL_CLUSTER="${peers.join(',')}"\n` +
          `ETCD_INITIAL_ADVERTISE_PEER_URLS="${(self?.peerUrls ?? []).join(',')}"\nETCD_INITIAL_CLUSTER_STATE="existing"\n`;
      }
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// endpoint status

/** Bytes as etcdctl prints them (go-humanize, SI units): "20 kB", "1.2 MB". */
export function humanBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  const e = Math.min(Math.floor(Math.log10(n) / 3), units.length - 1);
  const v = n / 10 ** (3 * e);
  return `${v < 10 ? Math.floor(v * 10 + 0.5) / 10 : Math.floor(v + 0.5)} ${units[e]}`;
}

export interface EndpointStatus {
  readonly endpoint: string;
  readonly answer: Answer<StatusResult>;
}

export function formatStatus(list: readonly EndpointStatus[], fmt: OutputFormat): string {
  const row = ({ endpoint, answer: { header, result: s } }: EndpointStatus): string[] => [
    endpoint,
    header.memberId,
    s.version,
    humanBytes(s.dbSize),
    String(s.leader !== '' && s.leader === header.memberId),
    String(s.isLearner),
    String(s.raftTerm),
    String(s.raftIndex),
    String(s.raftAppliedIndex),
    s.errors.join(', '),
  ];
  switch (fmt) {
    case 'json':
      return (
        toJson(
          list.map(({ endpoint, answer: { header, result: s } }) => ({
            Endpoint: endpoint,
            Status: omitEmpty({
              header: headerJson(header),
              version: s.version,
              dbSize: s.dbSize,
              leader: s.leader === '' ? 0 : u64(s.leader),
              raftIndex: s.raftIndex,
              raftTerm: s.raftTerm,
              raftAppliedIndex: s.raftAppliedIndex,
              errors: s.errors,
              isLearner: s.isLearner,
            }),
          })),
        ) + '\n'
      );
    case 'table':
      return boxTable(['endpoint', 'id', 'version', 'db size', 'is leader', 'is learner', 'raft term', 'raft index', 'raft applied index', 'errors'], list.map(row));
    case 'simple':
      return list.map((e) => row(e).join(', ') + '\n').join('');
  }
}
