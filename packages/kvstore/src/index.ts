// @ballot/kvstore: the public surface of the key-value store package.
export * from './types.js';
export * from './errors.js';
export { createJsonGateway, READ_CONSISTENCY_HEADER, type JsonGatewayOptions, type JsonGatewayHandler } from './json/gateway.js';
export * as etcdJson from './json/codec.js';
