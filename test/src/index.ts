// @ballot/chaos: the chaos runner and the linearizability checker (issue 5).
export {};
export * from './proxy/index.js';
export * from './checker/index.js';
export { registerCheckCommand, runCheck, type CheckCommandOptions, type CheckIo } from './cli/check.js';
export * from './chaos/index.js';
export {
  registerChaosCommands,
  parseChaosFlags,
  parseSoakFlags,
  parseNemesisList,
  exitCodeOf,
  soakExitCode,
  defaultOutDir,
  ChaosUsageError,
  CHAOS_DEFAULTS,
  type ChaosCliDeps,
  type RawChaosFlags,
} from './cli/chaos.js';
export { exitCause, CRASH_LOG_LINES, PID_FILE, WATCHDOG_GRACE_MS, WATCHDOG_POLL_MS, type MemberExit } from './chaos/cluster.js';
