// Membership changes, one server at a time (thesis §4.1, with the 2015 fix), and learners, as
// scenario transcripts over the in-memory cluster of core-helpers.ts. New nodes are started as
// non-members (RaftConfig.joining) and added by the leader: as learners, then promoted.

import { describe, expect, it } from 'vitest';
import { decodeConfChange, encodeConfChange } from '../src/core/membership.js';
import { RaftNode } from '../src/core/raft.js';
import type { ConfChange, NodeId } from '../src/core/types.js';
import { quorumsOverlap } from './core-chaos.js';
import { Cluster, enc, thrown } from './core-helpers.js';

/** Proposes `change` at the leader and runs the cluster until every node in `until` applied it. */
function change(c: Cluster, leader: NodeId, ch: ConfChange, until: readonly NodeId[] = c.ids): void {
  const p = c.node(leader).proposeConfChange(ch);
  c.tickUntil(() => until.every((id) => c.applied.get(id)!.some((e) => e.index === p.lastIndex && e.term === p.term)), 200);
}

const voters = (c: Cluster, id: NodeId) => c.node(id).status().config.voters;

describe('ConfChange encoding', () => {
  it('round-trips through msgpack, context included, and refuses bad shapes', () => {
    const ch: ConfChange = { type: 'add-learner', node: 'n4', context: enc('127.0.0.1:9004') };
    expect(decodeConfChange(encodeConfChange(ch))).toEqual(ch);
    expect(decodeConfChange(encodeConfChange({ type: 'remove', node: 'n2' }))).toEqual({ type: 'remove', node: 'n2' });
    expect(thrown(() => encodeConfChange({ type: 'demote' as 'remove', node: 'n2' })).code).toBe('BAD_REQUEST');
    expect(thrown(() => encodeConfChange({ type: 'remove', node: '' })).code).toBe('BAD_REQUEST');
    expect(thrown(() => decodeConfChange(enc('not msgpack at all \u00ff'))).code).toBe('BAD_REQUEST');
  });
});

describe('growing and shrinking', () => {
  it('a 1-node cluster grows to 5: each new node joins as a learner, catches up, and is promoted', () => {
    const c = new Cluster(1);
    c.elect('n1');
    c.node('n1').propose([enc('before')]);
    c.stabilize();
    for (const id of ['n2', 'n3', 'n4', 'n5']) {
      c.addNode(id);
      expect(c.node(id).status()).toMatchObject({ config: { voters: ['n1'], learners: [] } }); // not a member yet
      change(c, 'n1', { type: 'add-learner', node: id });
      expect(c.node(id).status().config.learners).toEqual([id]);
      expect(c.node('n1').status().progress[id]).toMatchObject({ learner: true, match: c.node('n1').status().lastIndex });
      change(c, 'n1', { type: 'promote', node: id });
      expect(c.node('n1').status().progress[id]).toMatchObject({ learner: false });
    }
    for (const id of c.ids) expect(c.node(id).status().config).toEqual({ voters: ['n1', 'n2', 'n3', 'n4', 'n5'], learners: [] });
    c.node('n1').propose([enc('after')]);
    c.stabilize();
    c.tick();
    for (const id of c.ids) expect(c.appliedData(id)).toEqual(['before', 'after']);
    // Five voters: two down still commit, three down do not.
    c.isolate('n4');
    c.isolate('n5');
    const p = c.node('n1').propose([enc('with 3 of 5')]);
    c.stabilize();
    expect(c.node('n1').status().commit).toBe(p.lastIndex);
    c.isolate('n3');
    const q = c.node('n1').propose([enc('with 2 of 5')]);
    c.stabilize();
    expect(c.node('n1').status().commit).toBe(p.lastIndex);
    expect(q.lastIndex).toBe(p.lastIndex + 1);
  });

  it('removing a follower: the leader stops replicating to it, it never campaigns, the quorum shrinks', () => {
    const c = new Cluster(3);
    c.elect('n1');
    // n3 gets the entry but, no longer replicated to once it commits, never learns that it did.
    change(c, 'n1', { type: 'remove', node: 'n3' }, ['n1', 'n2']);
    expect(voters(c, 'n1')).toEqual(['n1', 'n2']);
    expect(voters(c, 'n3')).toEqual(['n1', 'n2']); // it got the entry: it knows it is out
    const before = c.sent.length;
    const termBefore = c.node('n3').status().term;
    for (let t = 0; t < 60; t++) c.tick();
    expect(c.sent.slice(before).filter((m) => m.to === 'n3' || m.from === 'n3')).toEqual([]);
    expect(c.node('n3').status()).toMatchObject({ role: 'follower', term: termBefore });
    // {n1, n2} both needed now.
    c.isolate('n2');
    const p = c.node('n1').propose([enc('x')]);
    c.stabilize();
    expect(c.node('n1').status().commit).toBeLessThan(p.lastIndex);
  });

  it('removing the leader: it leads until the change commits (not counting itself), then steps down; a new leader emerges', () => {
    const c = new Cluster(3);
    c.elect('n1');
    // With n3 cut off, the new configuration {n2, n3} cannot commit: n1 + n2 is a majority of
    // the old voters but n1 no longer counts (thesis §4.2.2).
    c.isolate('n3');
    const p = c.node('n1').proposeConfChange({ type: 'remove', node: 'n1' });
    for (let t = 0; t < 3; t++) c.tick(['n1', 'n2']);
    expect(c.node('n1').status()).toMatchObject({ role: 'leader', commit: p.lastIndex - 1, config: { voters: ['n2', 'n3'] } });
    c.heal();
    c.tickUntil(() => c.leader() !== null && c.leader() !== 'n1', 100);
    const leader = c.leader()!;
    expect(['n2', 'n3']).toContain(leader);
    expect(c.node('n1').status()).toMatchObject({ role: 'follower' });
    // It handed over with TimeoutNow rather than leaving the others to time out.
    expect(c.countSent('TimeoutNow', (m) => m.from === 'n1')).toBe(1);
    c.node(leader).propose([enc('without n1')]);
    c.stabilize();
    c.tick();
    for (const id of ['n2', 'n3']) expect(c.appliedData(id)).toEqual(['without n1']);
    // n1 never campaigns again.
    const term = c.node('n1').status().term;
    for (let t = 0; t < 50; t++) c.tick();
    expect(c.node('n1').status()).toMatchObject({ role: 'follower', term });
    expect(c.leader()).toBe(leader);
  });

  it('a leader that removed itself and lost leadership before the change committed campaigns to finish it (thesis §4.2.2)', () => {
    const c = new Cluster(3);
    c.elect('n1');
    change(c, 'n1', { type: 'remove', node: 'n2' }, ['n1', 'n3']);
    // n1 removes itself while n3, the only other voter, is cut off; CheckQuorum deposes n1.
    c.isolate('n3');
    c.node('n1').proposeConfChange({ type: 'remove', node: 'n1' });
    c.tickUntil(() => c.node('n1').status().role !== 'leader', 100, ['n1']);
    expect(c.node('n1').status().config.voters).toEqual(['n3']);
    expect(c.node('n3').status().config.voters).toEqual(['n1', 'n3']);
    // n3 cannot win alone: n1's log is longer, so n1 refuses it. n1, not in its own latest
    // configuration but needed until that configuration commits, campaigns and wins n3's vote.
    c.heal();
    c.tickUntil(() => c.node('n3').status().role === 'leader' && c.node('n3').status().config.voters.length === 1, 200, ['n1', 'n3']);
    expect(c.node('n1').status()).toMatchObject({ role: 'follower' });
    expect([...c.leaderOfTerm.entries()].some(([term, id]) => id === 'n1' && term > 1)).toBe(true);
    c.node('n3').propose([enc('alone')]);
    c.stabilize();
    expect(c.appliedData('n3')).toContain('alone');
  });

  it('a removed node that never learned of its removal does not disrupt the rest (PreVote)', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.isolate('n3');
    change(c, 'n1', { type: 'remove', node: 'n3' }, ['n1', 'n2']);
    expect(voters(c, 'n3')).toEqual(['n1', 'n2', 'n3']); // n3 still believes it is a voter
    const terms = { n1: c.node('n1').status().term, n2: c.node('n2').status().term };
    c.heal();
    for (let t = 0; t < 100; t++) c.tick();
    expect(c.countSent('RequestVote', (m) => m.from === 'n3')).toBeGreaterThan(0); // it tries (pre-votes)
    expect(c.node('n1').status()).toMatchObject({ role: 'leader', term: terms.n1 });
    expect(c.node('n2').status()).toMatchObject({ leader: 'n1', term: terms.n2 });
  });

  it('replacing a node: add a learner, promote it, remove the old one', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.isolate('n3'); // n3 "crashed"
    c.addNode('n4');
    change(c, 'n1', { type: 'add-learner', node: 'n4' }, ['n1', 'n2', 'n4']);
    change(c, 'n1', { type: 'promote', node: 'n4' }, ['n1', 'n2', 'n4']);
    change(c, 'n1', { type: 'remove', node: 'n3' }, ['n1', 'n2', 'n4']);
    expect(c.node('n4').status().config).toEqual({ voters: ['n1', 'n2', 'n4'], learners: [] });
    // n1 can now fail too: n2 and n4 elect a leader.
    c.isolate('n1');
    c.tickUntil(() => c.leader() !== null && c.leader() !== 'n1', 200, ['n2', 'n4']);
  });

  it('a new node catches up from a snapshot that carries the configuration', () => {
    const c = new Cluster(3);
    c.elect('n1');
    for (let i = 0; i < 5; i++) c.node('n1').propose([enc(`c${i}`)]);
    c.stabilize();
    c.addNode('n4');
    const p = c.node('n1').proposeConfChange({ type: 'add-learner', node: 'n4', context: enc('addr-of-n4') });
    c.isolate('n4');
    c.stabilize();
    c.tick();
    c.compact('n1');
    expect(c.node('n1').status().snapshotIndex).toBe(p.lastIndex);
    c.heal();
    c.tickUntil(() => c.node('n4').status().applied >= p.lastIndex);
    expect(c.installed.map((i) => [i.id, i.meta.index])).toEqual([['n4', p.lastIndex]]);
    expect(c.node('n4').status().config).toEqual({ voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
    expect(c.appliedData('n4')).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    change(c, 'n1', { type: 'promote', node: 'n4' });
    c.restart('n4');
    expect(c.node('n4').status().config.voters).toContain('n4'); // the promotion is in its log after the snapshot
  });
});

describe('learners', () => {
  it('a learner is replicated to but never counted, never campaigns, and its vote does not count', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.addNode('n4');
    change(c, 'n1', { type: 'add-learner', node: 'n4' });
    // Not counted: with n2 and n3 cut off, n1 + learner n4 commit nothing.
    c.isolate('n2');
    c.isolate('n3');
    const commit = c.node('n1').status().commit;
    c.node('n1').propose([enc('x')]);
    c.stabilize();
    expect(c.node('n4').status().lastIndex).toBe(commit + 1); // replicated to
    expect(c.node('n1').status().commit).toBe(commit); // but not counted
    // Never campaigns, however long it hears nothing.
    c.isolate('n1');
    const term = c.node('n4').status().term;
    const sent = c.sent.length;
    for (let t = 0; t < 100; t++) c.tick(['n4']);
    expect(c.node('n4').status()).toMatchObject({ role: 'follower', term });
    expect(c.sent.slice(sent).filter((m) => m.from === 'n4')).toEqual([]);
    // A candidate does not ask it, and does not count its grant.
    const n2 = c.node('n2');
    c.heal();
    c.isolate('n1');
    c.isolate('n3');
    c.tickUntil(() => n2.status().role === 'candidate' || n2.status().role === 'pre-candidate', 100, ['n2']);
    c.handleReadies();
    expect(c.inFlight.filter((m) => m.from === 'n2' && m.to === 'n4')).toEqual([]);
    const s = n2.status();
    n2.step({ type: 'RequestVoteResponse', from: 'n4', to: 'n2', term: s.role === 'pre-candidate' ? s.term + 1 : s.term, preVote: s.role === 'pre-candidate', granted: true });
    expect(n2.status().role).toBe(s.role);
  });

  it('bootstrap learners and joining nodes are configured explicitly', () => {
    const l = new RaftNode({ id: 'd', peers: ['a', 'b', 'c'], learners: ['d'], randomSeed: 1, electionTicks: 3 });
    for (let t = 0; t < 30; t++) l.tick();
    expect(l.status()).toMatchObject({ role: 'follower', term: 0, config: { voters: ['a', 'b', 'c'], learners: ['d'] } });
    expect(thrown(() => new RaftNode({ id: 'e', peers: ['a', 'b', 'c'], randomSeed: 1 })).code).toBe('BAD_REQUEST');
    expect(thrown(() => new RaftNode({ id: 'a', peers: ['a', 'b'], joining: true, randomSeed: 1 })).code).toBe('BAD_REQUEST');
    expect(thrown(() => new RaftNode({ id: 'a', peers: ['a', 'b'], learners: ['b'], randomSeed: 1 })).code).toBe('BAD_REQUEST');
  });
});

describe('the rules of single-server changes (thesis §4.1)', () => {
  it('a second change is refused while the first is uncommitted', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.isolate('n2');
    c.isolate('n3');
    c.node('n1').proposeConfChange({ type: 'add-learner', node: 'n4' });
    c.stabilize();
    const e = thrown(() => c.node('n1').proposeConfChange({ type: 'add-learner', node: 'n5' }));
    expect(e.code).toBe('CONF_CHANGE_IN_PROGRESS');
    expect(e.message).toMatch(/not committed yet/);
    c.heal();
    c.tickUntil(() => c.node('n1').status().commit === c.node('n1').status().lastIndex);
    c.node('n1').proposeConfChange({ type: 'add-learner', node: 'n5' }); // now it may
  });

  it('no change before the leader has committed an entry of its term (the 2015 fix)', () => {
    const c = new Cluster(3);
    c.dropIf = (m) => m.type === 'AppendEntries'; // the new leader's no-op cannot commit
    c.elect('n1');
    const e = thrown(() => c.node('n1').proposeConfChange({ type: 'add-learner', node: 'n4' }));
    expect(e.code).toBe('CONF_CHANGE_IN_PROGRESS');
    expect(e.message).toMatch(/has not yet committed an entry of its term/);
    c.dropIf = null;
    c.tickUntil(() => c.node('n1').status().commit === 1);
    c.node('n1').proposeConfChange({ type: 'add-learner', node: 'n4' });
  });

  it('the 2015 scenario: a new leader cannot add a server until its no-op commits, so the old leader\'s uncommitted change cannot win', () => {
    // Four voters; n5 and n6 are spares. n1 leads term 1 and appends "add n5" (C1 = n1..n5),
    // which only n5 receives: uncommitted.
    const c = new Cluster(4, { checkQuorum: false, preVote: false });
    c.addNode('n5');
    c.addNode('n6');
    c.elect('n1');
    c.dropIf = (m) => m.type === 'AppendEntries' && m.from === 'n1' && m.to !== 'n5';
    c.node('n1').proposeConfChange({ type: 'add-voter', node: 'n5' });
    c.stabilize();
    expect(c.node('n5').status().config.voters).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    // n1 and n5 are cut off; n2 wins term 2 under C0 = n1..n4, but n4 does not hear from it yet.
    c.dropIf = null;
    c.partition(['n1', 'n5'], ['n2', 'n3', 'n4', 'n6']);
    c.dropIf = (m) => m.type === 'AppendEntries' && m.from === 'n2' && m.to === 'n4';
    c.elect('n2');
    // n2 would add n6 at once (C2 = n1..n4 + n6, committable by n2, n3, n6). The 2015 fix: not
    // before an entry of its own term is committed, on a majority of C0, so on n4 or n1 too.
    expect(thrown(() => c.node('n2').proposeConfChange({ type: 'add-voter', node: 'n6' })).code).toBe('CONF_CHANGE_IN_PROGRESS');
    c.dropIf = null;
    c.tickUntil(() => c.node('n2').status().commit === 2, 50, ['n2']);
    expect(c.node('n4').status().lastTerm).toBe(2);
    const p = c.node('n2').proposeConfChange({ type: 'add-voter', node: 'n6' });
    c.tickUntil(() => c.node('n2').status().commit >= p.lastIndex, 50, ['n2']);
    // Now n1 returns with its stale C1 and only n4 and n5 to talk to: C1's majority would be
    // {n1, n4, n5}, but n4 holds term-2 entries and refuses n1. Nobody wins; nothing committed is lost.
    c.heal();
    c.partition(['n1', 'n4', 'n5'], ['n2', 'n3', 'n6']);
    for (let t = 0; t < 60; t++) c.tick(['n1', 'n4', 'n5']);
    expect(['n1', 'n4', 'n5'].map((id) => c.node(id).status().role)).not.toContain('leader');
    // Healed, the members of C2 settle on it: n1's C1 entry is overwritten and undone. n5, in
    // no configuration anyone else holds, is ignored (its vote requests too).
    c.heal();
    const c2 = ['n1', 'n2', 'n3', 'n4', 'n6'];
    c.tickUntil(() => c2.every((id) => c.node(id).status().commit >= p.lastIndex), 200);
    for (const id of c2) expect(c.node(id).status().config.voters).toEqual(c2);
  });

  it('invalid changes are refused with BAD_REQUEST; followers answer NOT_LEADER', () => {
    const c = new Cluster(3);
    c.elect('n1');
    const n1 = c.node('n1');
    expect(thrown(() => n1.proposeConfChange({ type: 'add-learner', node: 'n2' })).message).toMatch(/already a voter/);
    expect(thrown(() => n1.proposeConfChange({ type: 'add-voter', node: 'n3' })).code).toBe('BAD_REQUEST');
    expect(thrown(() => n1.proposeConfChange({ type: 'promote', node: 'n2' })).message).toMatch(/not a learner/);
    expect(thrown(() => n1.proposeConfChange({ type: 'remove', node: 'n9' })).message).toMatch(/not a member/);
    expect(thrown(() => c.node('n2').proposeConfChange({ type: 'remove', node: 'n3' }))).toMatchObject({ code: 'NOT_LEADER', leaderHint: 'n1' });
    const solo = new Cluster(1);
    solo.elect('n1');
    expect(thrown(() => solo.node('n1').proposeConfChange({ type: 'remove', node: 'n1' })).message).toMatch(/last voter/);
  });

  it('a configuration takes effect when appended, and reverts when its entry is truncated', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.isolate('n1');
    c.node('n1').proposeConfChange({ type: 'add-learner', node: 'n4' });
    c.handleReadies();
    // In effect at once in n1's log, uncommitted.
    expect(c.node('n1').status()).toMatchObject({ config: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] }, configIndex: 2, commit: 1 });
    // n2 and n3 move on without it; when n1 rejoins, its config entry is overwritten.
    c.tickUntil(() => c.leader() !== null && c.leader() !== 'n1', 200, ['n2', 'n3']);
    c.node(c.leader()!).propose([enc('y')]);
    c.stabilize();
    c.heal();
    c.tickUntil(() => c.appliedData('n1').includes('y'));
    expect(c.node('n1').status()).toMatchObject({ role: 'follower', config: { voters: ['n1', 'n2', 'n3'], learners: [] }, configIndex: 0 });
  });

  it('a restarted node recomputes its configuration from its log', () => {
    const c = new Cluster(3);
    c.elect('n1');
    c.addNode('n4');
    change(c, 'n1', { type: 'add-learner', node: 'n4' });
    change(c, 'n1', { type: 'remove', node: 'n2' }, ['n1', 'n3', 'n4']);
    for (const id of ['n1', 'n3', 'n4']) {
      c.restart(id);
      expect(c.node(id).status().config).toEqual({ voters: ['n1', 'n3'], learners: ['n4'] });
    }
  });
});

describe('the quorum-overlap check of the chaos property', () => {
  const cfg = (...voters: string[]) => ({ voters, learners: [] });
  it('holds for configurations one server apart, and fails where majorities can be disjoint', () => {
    expect(quorumsOverlap(cfg('a', 'b', 'c'), cfg('a', 'b', 'c', 'd'))).toBe(true);
    expect(quorumsOverlap(cfg('a', 'b', 'c', 'd'), cfg('a', 'b', 'c'))).toBe(true);
    expect(quorumsOverlap(cfg('a', 'b'), cfg('b'))).toBe(true);
    // Two servers apart: {a, b} and {c, d, e} are majorities of each.
    expect(quorumsOverlap(cfg('a', 'b', 'c'), cfg('a', 'b', 'c', 'd', 'e'))).toBe(false);
    // Two different single additions to four servers (the 2015 bug's shape): {a, b, x} and {c, d, y}.
    expect(quorumsOverlap(cfg('a', 'b', 'c', 'd', 'x'), cfg('a', 'b', 'c', 'd', 'y'))).toBe(false);
    expect(quorumsOverlap(cfg('a'), cfg('b'))).toBe(false);
  });
});
