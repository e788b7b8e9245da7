// How the node driver talks to its peers. Sending never blocks and never throws: Raft tolerates
// lost messages, so a full per-peer queue drops (and counts) rather than grows without bound.

import type { Message, NodeId } from '../core/types.js';

export interface Transport {
  /** Queue messages for delivery. Messages to one peer are delivered in order or not at all. */
  send(messages: readonly Message[]): void;
  /** Register the single receiver of incoming, validated messages addressed to this node. */
  onMessage(handler: (message: Message) => void): void;
  start(): Promise<void>;
  close(): Promise<void>;
  stats(): TransportStats;
}

export interface PeerLinkStats {
  readonly connected: boolean;
  readonly queuedMsgs: number;
  readonly sentMsgs: number;
  readonly droppedMsgs: number;
  readonly reconnects: number;
}

export interface TransportStats {
  readonly peers: Readonly<Record<NodeId, PeerLinkStats>>;
  readonly receivedMsgs: number;
  readonly rejectedConnections: number;
  readonly malformedFrames: number;
}
