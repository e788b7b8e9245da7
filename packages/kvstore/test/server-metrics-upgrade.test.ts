// An Upgrade request to the --listen-metrics-urls listener is refused at once (404), not left hanging:
// every listener gets an 'upgrade' listener (so a reset socket has an error listener, see node.ts), and
// one that claims no upgrade path must then answer the request itself.
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterSpecs, startMember, stopAll, waitLeader } from './server-helpers.js';

afterEach(async () => {
  await stopAll();
});

/** Sends a WebSocket upgrade to `url` and resolves with what came back by the time the server closed (or 'no answer' after 5 s). */
function upgradeAnswer(url: string, path: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let got = '';
    const s = connect(Number(port), hostname, () => {
      s.write(
        `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
    });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(`no answer (got ${JSON.stringify(got)})`);
    }, 5000);
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.on('error', () => {});
  });
}

describe('the metrics listener and WebSocket upgrades', () => {
  it('refuses an upgrade to /metrics with 404 and closes, and still serves /metrics', async () => {
    const [spec] = await clusterSpecs(1);
    const node = await startMember({ ...spec!, listenMetricsUrls: ['http://127.0.0.1:0'] });
    await waitLeader([node]);
    const metricsUrl = node.metricsUrls[0]!;
    expect(await upgradeAnswer(metricsUrl, '/metrics')).toMatch(/^HTTP\/1\.1 404 /);
    expect(await upgradeAnswer(metricsUrl, '/raft')).toMatch(/^HTTP\/1\.1 404 /);
    expect((await fetch(`${metricsUrl}/metrics`)).status).toBe(200);
  });
});
