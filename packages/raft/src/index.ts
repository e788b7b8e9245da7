// @ballot/raft: the public surface of the Raft package.

// The pure core.
export * from './core/types.js';
export * from './core/errors.js';
export { RaftNode } from './core/raft.js';
export { encodeConfChange, decodeConfChange, MAX_CONF_CHANGE_CONTEXT_BYTES } from './core/membership.js';

// Stable storage: the log and snapshot files.
export type { LogStorage, SaveBatch, StorageMeta } from './storage/types.js';
export { LevelLogStorage } from './storage/leveldb.js';
export { MemoryLogStorage } from './storage/memory.js';
export {
  SnapshotStore,
  SnapshotWriter,
  verifySnapshotFile,
  snapshotFileName,
  DEFAULT_SNAPSHOTS_KEPT,
  type SnapshotHeader,
  type SnapshotInfo,
  type VerifiedSnapshot,
  type SnapshotStoreOptions,
} from './storage/snapshot.js';

// Peer transport.
export type { Transport, TransportStats, PeerLinkStats } from './transport/types.js';
export { WsTransport, type WsTransportOptions } from './transport/ws.js';

// The node driver and process.
export {
  RaftDriver,
  type RaftDriverOptions,
  type StateMachine,
  type SnapshotPoint,
  type SnapshotSender,
  type ProposeOptions,
  type ProposeAck,
  type ReadOptions,
  type ReadAck,
  type TransferOptions,
  type TransferAck,
  type DriverStatus,
  type RoleChange,
} from './node/driver.js';
export {
  SnapshotStreamer,
  SNAPSHOT_STREAM_PATH,
  SNAPSHOT_STREAM_DEFAULTS,
  type SnapshotStreamerOptions,
  type SnapshotStreamStats,
} from './node/snapshot-stream.js';
export { AppliedDigest } from './node/digest.js';
export { NodeServer, type NodeServerOptions, type MembersInfo } from './node/server.js';
export { registerRaftCommands } from './cli/raft.js';
export { CapturedProcesses, ChildGroup, freePorts, signalAndWait, tailLines, type CapturedChild, type Child, type ChildSpec } from './cli/supervisor.js';

// Deterministic simulation.
export { SimCluster } from './sim/cluster.js';
export { SimRandom, deriveSeed } from './sim/random.js';
export { runSimulation, runSeeds, type SimOptions, type SimResult, type SeedsSummary } from './sim/run.js';
export { InvariantChecker, InvariantViolation } from './sim/invariants.js';
export { generateFaultSchedule, type FaultSchedule, type FaultEvent, type FaultAction } from './sim/faults.js';
export { registerSimCommand } from './sim/command.js';
export { EXIT, NodeStartError, createNodeLogger, runNodeUntilSignal, startError, type RunnableNode, type RunNodeProcessOptions } from './node/process.js';
