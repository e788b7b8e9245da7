// The client listener's routes:
//
//   /v3/*          the etcd v3 JSON gateway (json/gateway.ts)
//   ws /ballot/v1  the native protocol (native/server.ts), when mounted
//   GET /health    etcd's shape: 200 {"health":"true","reason":""} while this member can serve
//                  writes and linearizable reads (a leader heard from recently), else 503
//                  {"health":"false","reason":"RAFT NO LEADER: ..."}
//   GET /readyz    200 "ok" when healthy and the store is not far behind the commit index, else
//                  503 with the reason (Kubernetes-style probe)
//   GET /livez     200 "ok" while the process serves HTTP
//   GET /version   etcd's shape: {"etcdserver": "<Ballot's version>", "etcdcluster": "3.5.0"}
//   GET /metrics   Prometheus text (metrics.ts)

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { createJsonGateway, type JsonGatewayHandler } from '../json/gateway.js';
import { attachNativeServer } from '../native/server.js';
import { NATIVE_PATH } from '../native/protocol.js';
import type { KvService } from '../types.js';
import type { KvMetrics } from './metrics.js';
import { KV_SERVER_VERSION } from './service.js';

export interface ClientApis {
  readonly gateway: JsonGatewayHandler;
  /** ws paths some API handles (other upgrades are refused). */
  readonly upgradePaths: readonly string[];
  close(): Promise<void>;
}

export function mountClientApis(server: Server, service: KvService, opts: { readonly maxRequestBytes: number; readonly logger: Logger }): ClientApis {
  const gateway = createJsonGateway(service, { maxRequestBytes: opts.maxRequestBytes, logger: opts.logger.child({ api: 'json' }) });
  const native = attachNativeServer(server, service, { maxRequestBytes: opts.maxRequestBytes, logger: opts.logger.child({ api: 'native' }) });
  return { gateway, upgradePaths: [NATIVE_PATH], close: () => native.close() };
}

export function handleClientRequest(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  ctx: { readonly apis: ClientApis; readonly metrics: KvMetrics; readonly problem: () => string | null; readonly ready: () => string | null },
): void {
  switch (path) {
    case '/health': {
      req.resume();
      const p = ctx.problem();
      return json(res, p === null ? 200 : 503, p === null ? { health: 'true', reason: '' } : { health: 'false', reason: `RAFT NO LEADER: ${p}` });
    }
    case '/readyz': {
      req.resume();
      const p = ctx.ready();
      return text(res, p === null ? 200 : 503, p === null ? 'ok\n' : `not ready: ${p}\n`);
    }
    case '/livez':
      req.resume();
      return text(res, 200, 'ok\n');
    case '/version':
      req.resume();
      return json(res, 200, { etcdserver: KV_SERVER_VERSION, etcdcluster: '3.5.0' });
    case '/metrics':
      req.resume();
      ctx.metrics.text().then(
        (body) => {
          res.writeHead(200, { 'content-type': ctx.metrics.contentType, 'content-length': Buffer.byteLength(body) });
          res.end(body);
        },
        (e: unknown) => text(res, 500, `metrics failed: ${(e as Error).message}\n`),
      );
      return;
    default:
      if (ctx.apis.gateway(req, res)) return;
      req.resume();
      return json(res, 404, { error: `no such endpoint: ${path}`, code: 5, message: `no such endpoint: ${path}` });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const t = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(t) });
  res.end(t);
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
