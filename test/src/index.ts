// @ballot/chaos: the chaos runner and the linearizability checker (issue 5).
export {};
export * from './proxy/index.js';
export * from './checker/index.js';
export { registerCheckCommand, runCheck, type CheckCommandOptions, type CheckIo } from './cli/check.js';
export { scheduleFaults, parseNemeses, describeFault, SCHEDULE_SHAPE, KINDS_OF, MAX_NODES, MIN_SHORT_WINDOW_MS, CLOCK_SKEW_MS, CLOCK_RATES, LATENCY_MS, type ScheduleRequest } from './chaos/schedule.js';
export * from './chaos/client.js';
export { ChaosCluster, defaultBin, STOP_GRACE_MS, STATUS_TIMEOUT_MS, type ChaosClusterOptions, type ServerReadMode } from './chaos/cluster.js';
export * from './chaos/recorder.js';
export { Nemesis, type NemesisOptions } from './chaos/nemesis.js';
export {
  summarize,
  recordedOps,
  runWindows,
  windowStats,
  latencySummary,
  countOutcomes,
  nearestRank,
  type Outcome,
  type RecordedOp,
  type RunWindow,
  type RunSummary,
  type SummaryInput,
} from './chaos/results.js';
export {
  renderVegaLiteSvg,
  writePlot,
  writeRunPlots,
  latencySpec,
  throughputSpec,
  latencyPoints,
  lineChart,
  histogram,
  cdf,
  shadedWindows,
  windowLayers,
  MAX_LATENCY_POINTS,
  MAX_THROUGHPUT_BUCKETS,
  MAX_CDF_POINTS,
  MAX_INLINE_VALUES,
  type VegaLiteSpec,
  type ChartRow,
  type ChartAxis,
  type LineChartOptions,
  type HistogramOptions,
  type CdfOptions,
  type ShadedWindow,
  type RunPlotInput,
} from './chaos/plots.js';
export * from './chaos/workloads/index.js';
export { writeReport, renderReport, reproduceCommand, escapeHtml, MAX_REPORTED_ANOMALIES, type ReportOptions, type ReportPlot, type ReportLink } from './chaos/report.js';
export * from './chaos/types.js';
export { runChaos, prepareOutDir, checkChaosOptions, RUNNER_TIMEOUTS, type ChaosIo } from './chaos/runner.js';
export { ProgressLine, RateMeter, formatProgress, formatCount, type ProgressSnapshot, type ProgressOptions } from './chaos/progress.js';
export { runSoak, formatSoakTable, soakRowOf, SOAK_RUN_OVERHEAD_MS, type RunChaos, type SoakOptions, type SoakRunSummary, type SoakSummary } from './chaos/soak.js';
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
