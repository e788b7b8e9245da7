// The same request sequence (every /v3 path, errors, streams) to a real 1-member etcd 3.4 and to
// an in-process 1-member Ballot, both starting empty: the answers must be equal modulo cluster and
// member ids, terms, server-picked lease ids, timing and Go's wording of parse errors (see
// normalize in json-harness.ts); revisions must match exactly. Without /usr/bin/etcd, Ballot is
// compared with etcd 3.4.23's answers recorded in json-etcd-compat.fixture.json.
//
// The differences Ballot keeps on purpose are asserted at the end, on both servers.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import {
  call,
  etcdInstalled,
  ETCD_BINARY,
  runCompatSequence,
  startBallot,
  startEtcd,
  StreamCall,
  type BallotMember,
  type EtcdProcess,
  type StepResult,
} from './json-harness.js';

const FIXTURE = new URL('./json-etcd-compat.fixture.json', import.meta.url);

let etcd: EtcdProcess | null = null;
let ballot: BallotMember | null = null;
afterEach(async () => {
  await etcd?.stop();
  await ballot?.stop();
  etcd = null;
  ballot = null;
});

async function etcdSide(): Promise<readonly StepResult[]> {
  if (!etcdInstalled()) {
    console.log(`${ETCD_BINARY} not found: comparing with etcd 3.4.23's recorded answers`);
    return JSON.parse(readFileSync(FIXTURE, 'utf8')) as StepResult[];
  }
  etcd = await startEtcd();
  try {
    return await runCompatSequence(etcd.url);
  } finally {
    await etcd.stop();
    etcd = null;
  }
}

describe('etcd v3 JSON compatibility', () => {
  it('answers the compat sequence as etcd does', async () => {
    const expected = await etcdSide();
    ballot = await startBallot();
    const actual = await runCompatSequence(ballot.url);
    expect(actual.map((s) => s.name)).toEqual(expected.map((s) => s.name));
    const diffs: string[] = [];
    for (let i = 0; i < expected.length; i++) {
      const e = expected[i]!;
      const a = actual[i]!;
      if (a.status !== e.status || JSON.stringify(a.body) !== JSON.stringify(e.body)) {
        diffs.push(`step ${i} "${e.name}":\n  etcd   ${e.status} ${JSON.stringify(e.body)}\n  ballot ${a.status} ${JSON.stringify(a.body)}`);
      }
    }
    expect(diffs.join('\n'), `${diffs.length} of ${expected.length} steps differ`).toBe('');
  }, 120_000);

  it('keeps these differences from etcd on purpose (README lists them)', async () => {
    ballot = await startBallot();
    const bogus = { key: Buffer.from('a').toString('base64'), bogus: 1 };
    // 1. Unknown fields: etcd ignores them, Ballot refuses them (a typo would silently change a request).
    const unknown = await call(ballot.url, '/v3/kv/range', bogus);
    expect(unknown.status).toBe(400);
    expect(unknown.json).toMatchObject({ code: 3, error: expect.stringMatching(/unknown field "bogus"/) });
    // 2. Lease already exists: etcd 412 (FailedPrecondition), Ballot 400.
    await call(ballot.url, '/v3/lease/grant', { TTL: '30', ID: '9' });
    const again = await call(ballot.url, '/v3/lease/grant', { TTL: '30', ID: '9' });
    expect([again.status, again.json]).toEqual([400, { error: 'etcdserver: lease already exists', message: 'etcdserver: lease already exists', code: 9 }]);
    // 3. A bad first watch request: etcd 500 with gRPC code 2 (Unknown), Ballot 400 with code 3.
    const w = new StreamCall(ballot.url, '/v3/watch');
    w.send('{"create_request":{"key":"!!"}}');
    expect(await w.status).toBe(400);
    w.close();
    // 4. Other methods than POST: etcd 405 text/plain, Ballot 405 with a JSON error body.
    const get = await call(ballot.url, '/v3/kv/range', '', 'GET');
    expect(get.status).toBe(405);
    expect(get.json).toMatchObject({ code: 12 });
    // 5. A negative revision: etcd reads the current revision, Ballot refuses it.
    expect((await call(ballot.url, '/v3/kv/range', { key: 'YQ==', revision: '-2' })).status).toBe(400);

    if (etcdInstalled()) {
      etcd = await startEtcd();
      expect((await call(etcd.url, '/v3/kv/range', bogus)).status).toBe(200);
      await call(etcd.url, '/v3/lease/grant', { TTL: '30', ID: '9' });
      expect((await call(etcd.url, '/v3/lease/grant', { TTL: '30', ID: '9' })).status).toBe(412);
      const ew = new StreamCall(etcd.url, '/v3/watch');
      ew.send('{"create_request":{"key":"!!"}}');
      expect(await ew.status).toBe(500);
      ew.close();
      expect((await call(etcd.url, '/v3/kv/range', '', 'GET')).status).toBe(405);
      expect((await call(etcd.url, '/v3/kv/range', { key: 'YQ==', revision: '-2' })).status).toBe(200);
    }
  }, 60_000);
});
