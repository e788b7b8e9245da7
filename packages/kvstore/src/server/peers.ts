// The member address book: member id → advertised peer URLs. Sources, as in `ballot raft node`'s
// address book: the initial cluster (or, for a member joining an existing cluster, what a running
// member reported), the `context` of add-learner/add-voter config entries (a member's peer URLs,
// comma-separated, written by member add), and the addresses recorded in snapshot headers (so
// members whose config entries were compacted away stay reachable). The Raft transport dials the
// first peer URL's host:port; the transport's links follow the configuration in effect (plus the
// leader), level-triggered.
//
// --peer-dial-override (chaos runs) gives some members another URL to DIAL (a proxy in front of
// them): dialing follows the override, while the book's advertised URLs (what ids, member list and
// snapshot headers carry) stay the shared ones, so every member still agrees on who is who.

import type { ConfChange, NodeId, WsTransport } from '@ballot/raft';
import { KvUsageError, parseUrl } from './flags.js';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Peer URLs as a config entry's context (what member add writes). */
export function encodePeerUrls(urls: readonly string[]): Uint8Array {
  return utf8.encode(urls.join(','));
}

export function decodePeerUrls(context: Uint8Array | undefined): string[] | null {
  if (context === undefined || context.byteLength === 0) return null;
  const urls = fromUtf8.decode(context).split(',').filter((u) => u.length > 0);
  try {
    for (const u of urls) parseUrl('peer URL', u);
  } catch (e) {
    if (e instanceof KvUsageError) return null;
    throw e;
  }
  return urls.length > 0 ? urls : null;
}

export class PeerBook {
  private readonly urls = new Map<NodeId, readonly string[]>();

  /** member id → the URL this member dials instead of the advertised one (--peer-dial-override). */
  private readonly dialOverrides: ReadonlyMap<NodeId, string>;

  constructor(
    private readonly self: NodeId,
    dialOverrides: ReadonlyMap<NodeId, string> = new Map(),
  ) {
    this.dialOverrides = new Map(dialOverrides);
  }

  set(id: NodeId, urls: readonly string[]): void {
    if (urls.length > 0) this.urls.set(id, [...urls]);
  }

  get(id: NodeId): readonly string[] | undefined {
    return this.urls.get(id);
  }

  /** host:port the transport (and the snapshot streamer) dials for `id`: its override, else its first peer URL. */
  dialAddress(id: NodeId): string | undefined {
    const u = this.baseUrl(id);
    return u === undefined ? undefined : parseUrl('peer URL', u).hostPort;
  }

  /** The peer URL the server sends forwarded requests to (the override, if `id` has one). */
  baseUrl(id: NodeId): string | undefined {
    return this.dialOverrides.get(id) ?? this.urls.get(id)?.[0];
  }

  /** A config entry that adds a member carries its peer URLs. */
  learnFromConfChange(change: ConfChange): void {
    if (change.type !== 'add-learner' && change.type !== 'add-voter') return;
    const urls = decodePeerUrls(change.context);
    if (urls !== null) this.set(change.node, urls);
  }

  /** A snapshot header's addresses (written by `toSnapshotAddresses`). */
  learnFromSnapshot(addresses: Readonly<Record<NodeId, string>>): void {
    for (const [id, joined] of Object.entries(addresses)) {
      const urls = decodePeerUrls(utf8.encode(joined));
      if (urls !== null && id !== this.self) this.set(id, urls);
    }
  }

  toSnapshotAddresses(): Record<NodeId, string> {
    const out: Record<NodeId, string> = {};
    for (const [id, urls] of this.urls) out[id] = urls.join(',');
    return out;
  }

  toRecord(): Record<NodeId, string[]> {
    const out: Record<NodeId, string[]> = {};
    for (const [id, urls] of this.urls) out[id] = [...urls];
    return out;
  }

  /**
   * Level-triggered: the transport links to every member of `config` and the leader (when their
   * address is known), and to nobody else.
   */
  reconcile(transport: WsTransport, members: readonly NodeId[], leader: NodeId | null): void {
    const desired = new Set<NodeId>(members);
    if (leader !== null) desired.add(leader);
    desired.delete(this.self);
    for (const id of desired) {
      const a = this.dialAddress(id);
      if (a !== undefined) transport.addPeer(id, a);
    }
    for (const id of Object.keys(transport.peers())) if (!desired.has(id)) transport.removePeer(id);
  }
}
