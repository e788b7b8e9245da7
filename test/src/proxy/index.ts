// The fault-injecting TCP proxy the chaos runner puts on every peer link.
export { LinkProxy, HEALTHY_FLOW, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_CONNECTIONS } from './link-proxy.js';
export type { FlowPolicy, LinkStats, LinkProxyOptions } from './link-proxy.js';
export { ProxyNetwork } from './proxy-network.js';
export type { ProxyNode, ProxyNetworkOptions, FaultPlan } from './proxy-network.js';
