// @ballot/chaos: the chaos runner and the linearizability checker (issue 5).
export {};
export * from './proxy/index.js';
export * from './checker/index.js';
export { registerCheckCommand, runCheck, type CheckCommandOptions, type CheckIo } from './cli/check.js';
