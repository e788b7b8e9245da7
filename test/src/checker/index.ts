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
  type OpFunction,
  type Operation,
} from './history.js';
export { MODELS, jsonEqual, kvRegisterModel, registerModel, type Model, type ModelName } from './models.js';
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
  type GenerateOptions,
  type GeneratedEvent,
} from './generate.js';
