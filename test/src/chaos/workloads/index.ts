// The workloads `ballot chaos --workload` can name. Each factory builds a fresh Workload for one run
// (a workload keeps per-run state: value counters, watchers).

import { WORKLOAD_NAMES, type Workload, type WorkloadName } from '../types.js';
import { bankWorkload } from './bank.js';
import { RegisterWorkload } from './register.js';
import { watchWorkload } from './watch.js';

/** Every workload built so far, by name (a name without a factory is not built yet). */
export const WORKLOADS: Readonly<Partial<Record<WorkloadName, () => Workload>>> = {
  register: () => new RegisterWorkload(),
  bank: bankWorkload,
  watch: watchWorkload,
};

/** A fresh workload named `name`; throws a clear error for a name that is unknown or not built. */
export function workloadFor(name: WorkloadName): Workload {
  if (!(WORKLOAD_NAMES as readonly string[]).includes(name)) throw new Error(`unknown workload ${JSON.stringify(name)} (known: ${WORKLOAD_NAMES.join(', ')})`);
  const factory = WORKLOADS[name];
  if (factory === undefined) {
    const built = WORKLOAD_NAMES.filter((n) => WORKLOADS[n] !== undefined);
    throw new Error(`the ${name} workload is not available in this build (available: ${built.join(', ')})`);
  }
  return factory();
}

export { RegisterWorkload, registerKeys, registerVerdict, readRegister, registerValueOf, REGISTER_DEFAULT_KEYS, REGISTER_MIX, type RegisterWorkloadOptions } from './register.js';
export {
  FINAL_READ_RETRY_MS,
  FINAL_READ_TIMEOUT_MS,
  MAX_ANOMALIES,
  capAnomalies,
  checkLinearizability,
  clientsFor,
  describeFailure,
  describeOp,
  meanGapMs,
  pinnedWorkers,
  retryUntilOk,
  runPaced,
  toHistoryEvents,
  type RetryOptions,
  type Worker,
} from './common.js';
export { bankAccounts, bankWorkload, checkBank, BANK_ACCOUNT_COUNT, BANK_INITIAL_BALANCE, BANK_PREFIX, type BankCheckOptions, type BankCheckResult } from './bank.js';
export {
  checkWatch,
  watchKeys,
  watchStream,
  watchWorkload,
  Watcher,
  WATCH_EVENTS_FILE,
  WATCH_PREFIX,
  WATCH_REFERENCE_FILE,
  type WatchCheckInput,
  type WatchCheckResult,
  type WatcherLog,
  type WatchRecord,
} from './watch.js';
