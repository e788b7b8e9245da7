// @ballot/kvstore: the public surface of the key-value store package.
export * from './types.js';
export * from './errors.js';
export { createJsonGateway, READ_CONSISTENCY_HEADER, type JsonGatewayOptions, type JsonGatewayHandler } from './json/gateway.js';
export * as etcdJson from './json/codec.js';
export { attachNativeServer, type NativeServer, type NativeServerOptions } from './native/server.js';
export { NATIVE_PATH } from './native/protocol.js';
export { KvClient, nativeUrl, type KvClientOptions, type KvClientStats } from './client/client.js';
export { prefixEnd, prefixRange, toBytes, bytesToString } from './client/keys.js';
export { registerKvCommands, parseDurationMs, type CliClient } from './cli/kv.js';
export { KvStateMachine, type KvStateMachineOptions, type LeaseInfo, type MemberAttrs } from './state/machine.js';
export { encodeCommand, decodeCommand, validateCommand } from './state/codec.js';
export { WatchHub, WATCH_DEFAULTS, isFlowControlled, type WatchHubOptions, type WatchHubStats, type WatchSource, type FlowControlledSink } from './watch/hub.js';
export { Lessor, LESSOR_DEFAULTS, type LessorOptions, type LessorStats } from './lease/lessor.js';
export { KvNode, type KvNodeStartOptions } from './server/node.js';
export { NodeKvService, KV_SERVER_VERSION } from './server/service.js';
export { runKvServe } from './server/run.js';
export { parseKvServeFlags, registerKvServeCommand, KvUsageError, KV_SERVE_DEFAULTS, type KvServeOptions } from './server/flags.js';
export { computeMemberId, computeClusterId } from './server/ids.js';
