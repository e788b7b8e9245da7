// The linearizability checker's public API.
export {
  HistoryError,
  formatHistory,
  pairOperations,
  parseEvent,
  parseHistory,
  type EventType,
  type HistoryErrorCode,
  type HistoryEvent,
  type JsonValue,
  type KvFunction,
  type KvStep,
  type KvTxn,
  type KvTxnOutput,
  type OpFunction,
  type RegisterFunction,
  parseTxn,
  type Operation,
} from './history.js';
export {
  MODELS,
  jsonEqual,
  kvModel,
  kvRegisterModel,
  multiKeyModel,
  registerModel,
  type KvKeyState,
  type Model,
  type ModelName,
} from './models.js';
export {
  checkHistory,
  checkOperations,
  splitByKey,
  type CheckOptions,
  type CheckResult,
  type FailurePoint,
  type KeyResult,
} from './wgl.js';
export { BRUTE_FORCE_MAX_OPS, bruteForceLinearizable } from './bruteforce.js';
export {
  generateHistory,
  injectLostWrite,
  injectStaleRead,
  KV_INJECT_FUNCTIONS,
  type GenerateOptions,
  type InjectFunctions,
  type GeneratedEvent,
} from './generate.js';
export { describeCall } from './describe.js';
export { renderTimeline, type TimelineInput } from './html.js';
