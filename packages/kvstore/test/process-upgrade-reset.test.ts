// A peer connection reset in the middle of a WebSocket upgrade must not crash a member. Node removes
// its own error listener from a socket it hands to 'upgrade' listeners; a socket that no listener
// takes over (a /raft upgrade that arrives before the Raft transport listens, or one refused with a
// 403 like here) then had none, and a reset of it (a chaos proxy's partition resets every link) was
// an uncaught ECONNRESET that killed the process. Found by the chaos runner (an isolated leader died).
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { clusterArgs, post, b64, sigterm, spawnMember, tail, useProcessHooks, waitFor } from './process-helpers.js';

useProcessHooks();

/** Sends an upgrade the member refuses (wrong cluster header) and resets the connection after `afterMs`. */
function refusedUpgradeThenReset(peerUrl: string, afterMs: number): Promise<void> {
  const { hostname, port } = new URL(peerUrl);
  return new Promise((resolve) => {
    const s = connect(Number(port), hostname, () => {
      s.write(
        'GET /kv/forward HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-ballot-cluster: not-this-one\r\n\r\n',
      );
      setTimeout(() => {
        s.resetAndDestroy();
        resolve();
      }, afterMs);
    });
    s.on('error', () => resolve());
  });
}

describe('kv serve under peer connection resets (process)', () => {
  it('survives upgrades reset mid-way and still serves writes', async () => {
    const [m] = await clusterArgs(1, { heartbeatMs: 20, electionMs: 200 });
    const p = spawnMember(m!.name, m!.args);
    await waitFor('a write', async () => (await post(m!.clientUrl, '/v3/kv/put', { key: b64('k'), value: b64('v') }).catch(() => null))?.status === 200, 20_000, () => tail(p));
    for (let i = 0; i < 40; i++) await refusedUpgradeThenReset(m!.peerUrl, i % 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(p.stderr).not.toMatch(/ECONNRESET|Unhandled 'error' event/);
    expect((await post(m!.clientUrl, '/v3/kv/put', { key: b64('k'), value: b64('w') })).status).toBe(200);
    expect(await sigterm(p)).toBe(0);
  });
});
