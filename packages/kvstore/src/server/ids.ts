// Member and cluster ids, etcd's way: a member's id is a 64-bit hash of what identifies it in the
// cluster (its advertised peer URLs, sorted) and the cluster token; the cluster id is a hash of
// the initial members' ids and the token. Every member computes the same ids from the same
// flags, so nobody has to hand them out, and two clusters started with different
// --initial-cluster-token values never mistake each other's members (the peer transport refuses
// a connection whose cluster id differs).
//
// Ids are written as 16 lowercase hex digits; the member id IS the member's Raft NodeId.

import { createHash } from 'node:crypto';

function hash64Hex(parts: readonly string[]): string {
  const h = createHash('sha256');
  // A separator that cannot appear in a URL or a token, so ["a,b"] and ["a", "b"] differ.
  for (const p of parts) h.update(p).update('\0');
  const hex = h.digest('hex').slice(0, 16);
  // etcd refuses id 0 (it means "none"); so do we, deterministically.
  return hex === '0000000000000000' ? '0000000000000001' : hex;
}

/** A member's id: its advertised peer URLs (sorted, so the order of the flag does not matter) and the cluster token. */
export function computeMemberId(peerUrls: readonly string[], clusterToken: string): string {
  if (peerUrls.length === 0) throw new Error('computeMemberId: a member needs at least one peer URL');
  return hash64Hex(['member', clusterToken, ...[...peerUrls].map(normalizeUrl).sort()]);
}

/** The cluster's id: the initial members' ids (sorted) and the token. */
export function computeClusterId(memberIds: readonly string[], clusterToken: string): string {
  if (memberIds.length === 0) throw new Error('computeClusterId: a cluster needs at least one member');
  return hash64Hex(['cluster', clusterToken, ...[...memberIds].sort()]);
}

/** "http://127.0.0.1:2380/" and "http://127.0.0.1:2380" name the same member. */
export function normalizeUrl(url: string): string {
  return url.trim().replace(/\/+$/, '');
}

/** True for a member id as Ballot writes them. */
export function isMemberId(id: string): boolean {
  return /^[0-9a-f]{16}$/.test(id);
}
