// @ballot/bench: the benchmarks the ballot CLI exposes (`ballot bench tradeoffs`).
export { registerBenchCommand, resolveOptions, runTradeoffs, type ResolvedRun } from './run.js';
export type { TradeoffResults } from './report.js';
export type * from './types.js';
