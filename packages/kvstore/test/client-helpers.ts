// In-process KvNode clusters for the native protocol and client tests: real Raft, real LevelDB
// under a temp dir, real sockets on OS-assigned free ports; stop() closes every member.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvNode } from '../src/server/node.js';
import type { KvServeOptions } from '../src/server/flags.js';
import { clusterSpecs } from './server-helpers.js';

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export class TestCluster {
  readonly nodes: (KvNode | null)[];
  private constructor(
    readonly dir: string,
    readonly opts: KvServeOptions[],
    nodes: KvNode[],
  ) {
    this.nodes = nodes;
  }

  static async start(size: number, tag: string): Promise<TestCluster> {
    const dir = mkdtempSync(join(tmpdir(), `ballot-${tag}-`));
    const opts = await clusterSpecs(size, {}, `tok-${tag}`, dir);
    const nodes: KvNode[] = [];
    try {
      for (const o of opts) nodes.push(await KvNode.start(o));
    } catch (e) {
      await Promise.all(nodes.map((n) => n.close()));
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    const c = new TestCluster(dir, opts, nodes);
    await c.waitForLeader();
    return c;
  }

  get endpoints(): string[] {
    return this.opts.map((o) => o.advertiseClientUrls[0]!);
  }

  /** Index of the member that leads (as the running members agree), waiting up to `timeoutMs`. */
  async waitForLeader(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const n of this.nodes) {
        if (n === null) continue;
        const s = await n.service.status().catch(() => null);
        const leader = s?.result.leader ?? '';
        const i = this.nodes.findIndex((m) => m !== null && m.memberId === leader);
        if (i >= 0) {
          // Writes must go through: the leader has committed an entry of its term.
          const ok = await this.nodes[i]!.service.range({ key: enc('probe') }).then(
            () => true,
            () => false,
          );
          if (ok) return i;
        }
      }
      if (Date.now() > deadline) throw new Error('no leader within the deadline');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stopMember(i: number): Promise<void> {
    const n = this.nodes[i];
    this.nodes[i] = null;
    await n?.close();
  }

  async restartMember(i: number): Promise<void> {
    if (this.nodes[i] !== null) throw new Error(`member ${i} is running`);
    this.nodes[i] = await KvNode.start(this.opts[i]!);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n?.close()));
    this.nodes.fill(null);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
