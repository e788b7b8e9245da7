// @ballot/raft: the public surface of the Raft package.

// The pure core.
export * from './core/types.js';
export * from './core/errors.js';
export { RaftNode } from './core/raft.js';

// Stable storage.
export type { LogStorage, SaveBatch, StorageMeta } from './storage/types.js';
export { LevelLogStorage } from './storage/leveldb.js';
export { MemoryLogStorage } from './storage/memory.js';

// Peer transport.
export type { Transport, TransportStats, PeerLinkStats } from './transport/types.js';
export { WsTransport, type WsTransportOptions } from './transport/ws.js';

// The node driver and process.
export { RaftDriver, type RaftDriverOptions, type StateMachine } from './node/driver.js';
export { registerRaftCommands } from './cli/raft.js';

// Deterministic simulation.
export { SimCluster } from './sim/cluster.js';
export { runSimulation, runSeeds, type SimOptions, type SimResult, type SeedsSummary } from './sim/run.js';
export { registerSimCommand } from './sim/command.js';
