// @ballot/kvstore: the public surface of the key-value store package.
export * from './types.js';
export * from './errors.js';
