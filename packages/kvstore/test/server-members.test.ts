// Membership through the service (etcd's member add/promote/remove as Raft configuration changes,
// thesis §4.1): a learner added from a follower (forwarded), started with
// --initial-cluster-state existing, catches up (by snapshot: the log was compacted), is promoted, publishes its name, and is removed.
import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../src/errors.js';
import { clusterSpecs, dec, enc, freePorts, startCluster, startMember, stopAll, waitFor, waitLeader } from './server-helpers.js';

afterEach(async () => {
  await stopAll();
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof KvError) return e.code;
    throw e;
  }
}

describe('member add, promote, remove', () => {
  it('adds a learner that joins an existing cluster, promotes it once caught up, then removes it', async () => {
    // A small snapshot count: the log is compacted, so the new member gets the store by snapshot.
    const specs = (await clusterSpecs(3)).map((s) => ({ ...s, snapshotCount: 10 }));
    const nodes = await startCluster(specs);
    const leader = await waitLeader(nodes);
    const follower = nodes.find((n) => n !== leader)!;
    for (let i = 0; i < 30; i++) await leader.service.put({ key: enc(`k${i}`), value: enc(`v${i}`) });
    await waitFor('a compacted log', () => leader.driver.status().firstIndex > 1);

    const [peerPort, clientPort] = await freePorts(2);
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    // Refusals etcd also makes.
    expect(await code(follower.service.memberAdd([specs[0]!.initialAdvertisePeerUrls[0]!], true))).toBe('PEER_URL_EXISTS');
    expect(await code(follower.service.memberAdd(['not a url'], true))).toBe('BAD_REQUEST');
    expect(await code(leader.service.memberRemove('0123456789abcdef'))).toBe('MEMBER_NOT_FOUND');
    expect(await code(leader.service.memberPromote(leader.memberId))).toBe('MEMBER_NOT_LEARNER');

    const added = await follower.service.memberAdd([peerUrl], true);
    const newId = added.result.member.id;
    expect(added.result.member).toMatchObject({ name: '', peerUrls: [peerUrl], clientUrls: [], isLearner: true });
    expect(added.result.members.map((m) => m.id)).toContain(newId);
    expect(await code(leader.service.memberAdd([peerUrl], true))).toBe('PEER_URL_EXISTS');

    const joining = await startMember({
      ...specs[0]!,
      name: 'm4',
      dataDir: `${specs[0]!.dataDir}-m4`,
      listenClientUrls: [clientUrl],
      advertiseClientUrls: [clientUrl],
      listenPeerUrls: [peerUrl],
      initialAdvertisePeerUrls: [peerUrl],
      initialCluster: { ...specs[0]!.initialCluster, m4: [peerUrl] },
      initialClusterState: 'existing',
    });
    expect(joining.memberId).toBe(newId);
    expect(joining.clusterId).toBe(leader.clusterId);
    // It catches up (the learner receives the log) and serves serializable reads of it.
    await waitFor('the learner caught up', async () => (await joining.service.range({ key: enc('k29'), serializable: true })).result.kvs.length === 1);
    expect((await joining.service.range({ key: enc('k'), rangeEnd: enc('l'), serializable: true })).result.count).toBe(30);
    expect(joining.driver.snapshot, 'installed a snapshot from the leader').not.toBeNull();
    await waitFor('promotion', async () => (await code(leader.service.memberPromote(newId))) === 'ok');
    const list = await waitFor('m4 published and a voter', async () => {
      const l = await follower.service.memberList();
      const m4 = l.result.members.find((m) => m.id === newId);
      return m4 !== undefined && !m4.isLearner && m4.name === 'm4' ? l.result.members : null;
    });
    expect(list).toHaveLength(4);
    expect(list.find((m) => m.id === newId)!.clientUrls).toEqual([clientUrl]);
    // A voter now: a write through it commits with it counted.
    const w = await joining.service.put({ key: enc('via-m4'), value: enc('yes') });
    expect(w.header.memberId).toBe(newId);
    expect(dec((await leader.service.range({ key: enc('via-m4') })).result.kvs[0]!.value)).toBe('yes');

    const removed = await follower.service.memberRemove(newId);
    expect(removed.result.members.map((m) => m.id)).not.toContain(newId);
    await waitFor('every member sees 3 members', async () => {
      for (const n of nodes) if ((await n.service.memberList()).result.members.length !== 3) return false;
      return true;
    });
  });
});
