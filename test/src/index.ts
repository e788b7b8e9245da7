// @ballot/chaos: the chaos runner and the linearizability checker (issue 5).
export {};
export * from './proxy/index.js';
export * from './checker/index.js';
