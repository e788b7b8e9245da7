// The chaos runner's public surface (issue 5): one run (runChaos), the soak (runSoak), the `ballot
// chaos` and `ballot chaos-soak` commands, and the modules a run is made of (see types.ts for the map).
export * from './types.js';
export {
  runChaos,
  prepareOutDir,
  checkChaosOptions,
  RUNNER_TIMEOUTS,
  type ChaosIo,
} from './runner.js';
export { ProgressLine, RateMeter, formatProgress, formatCount, type ProgressSnapshot, type ProgressOptions } from './progress.js';
export {
  runSoak,
  formatSoakTable,
  soakRowOf,
  SOAK_RUN_OVERHEAD_MS,
  type RunChaos,
  type SoakOptions,
  type SoakRunSummary,
  type SoakSummary,
} from './soak.js';
export { scheduleFaults, parseNemeses, describeFault, SCHEDULE_SHAPE, KINDS_OF, MAX_NODES, MIN_SHORT_WINDOW_MS, CLOCK_SKEW_MS, CLOCK_RATES, LATENCY_MS, type ScheduleRequest } from './schedule.js';
export * from './client.js';
export { ChaosCluster, defaultBin, STOP_GRACE_MS, STATUS_TIMEOUT_MS, type ChaosClusterOptions, type ServerReadMode } from './cluster.js';
export * from './recorder.js';
export { Nemesis, type NemesisOptions } from './nemesis.js';
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
} from './results.js';
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
} from './plots.js';
export * from './workloads/index.js';
export { writeReport, renderReport, reproduceCommand, escapeHtml, MAX_REPORTED_ANOMALIES, type ReportOptions, type ReportPlot, type ReportLink } from './report.js';
