// The peer wire codec: every message variant round-trips through a frame, and validation rejects
// any message whose shape differs from core/types.ts (missing, extra or mistyped fields).

import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { RaftError } from '../src/core/errors.js';
import type { Entry, Message, MessageType } from '../src/core/types.js';
import {
  decodeBatch,
  decodeHello,
  decodeHelloAck,
  encodeBatch,
  encodeHello,
  encodeHelloAck,
  encodeMessage,
  validateMessage,
} from '../src/transport/codec.js';

const SEED = 424242;
const raw = new Packr({ useRecords: false });

const idArb = fc.string({ minLength: 1, maxLength: 12 });
const natArb = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const base = { from: idArb, to: idArb, term: natArb };

function entriesArb(prevLogIndex: number): fc.Arbitrary<Entry[]> {
  return fc
    .array(
      fc.record({
        term: fc.integer({ min: 1, max: 2 ** 40 }),
        type: fc.constantFrom('normal' as const, 'noop' as const),
        data: fc.uint8Array({ maxLength: 64 }),
      }),
      { maxLength: 8 },
    )
    .map((es) => es.map((e, i) => ({ index: prevLogIndex + 1 + i, ...e })));
}

const ARBS: { readonly [T in MessageType]: fc.Arbitrary<Extract<Message, { type: T }>> } = {
  RequestVote: fc.record({
    type: fc.constant('RequestVote' as const),
    ...base,
    preVote: fc.boolean(),
    lastLogIndex: natArb,
    lastLogTerm: natArb,
    // Optional in memory (leadership transfer), always written on the wire (false when absent).
    force: fc.boolean(),
  }),
  RequestVoteResponse: fc.record({
    type: fc.constant('RequestVoteResponse' as const),
    ...base,
    preVote: fc.boolean(),
    granted: fc.boolean(),
  }),
  AppendEntries: fc.nat({ max: 2 ** 45 }).chain((prevLogIndex) =>
    fc.record({
      type: fc.constant('AppendEntries' as const),
      ...base,
      prevLogIndex: fc.constant(prevLogIndex),
      prevLogTerm: natArb,
      entries: entriesArb(prevLogIndex),
      leaderCommit: natArb,
    }),
  ),
  AppendEntriesResponse: fc.record({
    type: fc.constant('AppendEntriesResponse' as const),
    ...base,
    success: fc.boolean(),
    index: natArb,
    conflictTerm: natArb,
    conflictIndex: natArb,
  }),
  Heartbeat: fc.record({ type: fc.constant('Heartbeat' as const), ...base, commit: natArb, readRound: natArb }),
  HeartbeatResponse: fc.record({ type: fc.constant('HeartbeatResponse' as const), ...base, readRound: natArb }),
  ReadIndex: fc.record({
    type: fc.constant('ReadIndex' as const),
    ...base,
    requestIds: fc.array(fc.maxSafeInteger(), { maxLength: 10 }),
  }),
  ReadIndexResponse: fc.record({
    type: fc.constant('ReadIndexResponse' as const),
    ...base,
    requestIds: fc.array(fc.maxSafeInteger(), { maxLength: 10 }),
    index: natArb,
  }),
  // Issue 3 (core): snapshot metadata and leadership transfer.
  InstallSnapshot: fc.record({
    type: fc.constant('InstallSnapshot' as const),
    ...base,
    meta: fc.record({
      index: natArb,
      term: natArb,
      config: fc.uniqueArray(fc.constantFrom('n1', 'n2', 'n3', 'n4', 'n5'), { maxLength: 5 }).map((ids) => ({
        voters: ids.slice(0, Math.ceil(ids.length / 2)),
        learners: ids.slice(Math.ceil(ids.length / 2)),
      })),
    }),
  }),
  TimeoutNow: fc.record({ type: fc.constant('TimeoutNow' as const), ...base }),
};
const TYPES = Object.keys(ARBS) as MessageType[];
const messageArb: fc.Arbitrary<Message> = fc.oneof(...TYPES.map((t) => ARBS[t] as fc.Arbitrary<Message>));

function expectBadRequest(fn: () => unknown): RaftError {
  let caught: unknown = null;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(RaftError);
  expect((caught as RaftError).code).toBe('BAD_REQUEST');
  return caught as RaftError;
}

describe('codec round trip', () => {
  it.each(TYPES)('%s survives encode → frame → decode unchanged', (type) => {
    fc.assert(
      fc.property(fc.array(ARBS[type] as fc.Arbitrary<Message>, { minLength: 1, maxLength: 5 }), (messages) => {
        const decoded = decodeBatch(encodeBatch(messages));
        expect(decoded).toEqual(messages);
        for (const m of decoded) {
          if (m.type === 'AppendEntries') {
            for (const e of m.entries) expect(Object.getPrototypeOf(e.data)).toBe(Uint8Array.prototype);
          }
        }
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('mixed batches of every size header (fixarray, array16) round-trip in order', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { maxLength: 40 }), (messages) => {
        expect(decodeBatch(encodeBatch(messages))).toEqual(messages);
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('fields an in-memory object carries beyond its variant are not written', () => {
    const m = { type: 'Heartbeat', from: 'n1', to: 'n2', term: 3, commit: 4, readRound: 0, extra: 'x' } as Message;
    expect(decodeBatch(encodeBatch([m]))).toEqual([{ type: 'Heartbeat', from: 'n1', to: 'n2', term: 3, commit: 4, readRound: 0 }]);
  });

  it('hello and hello-ack round-trip and are told apart', () => {
    const hello = decodeHello(encodeHello({ clusterId: 'ballot', from: 'n1', to: 'n2' }));
    expect(hello).toEqual({ type: 'hello', version: 1, clusterId: 'ballot', from: 'n1', to: 'n2' });
    expect(decodeHelloAck(encodeHelloAck('n2'))).toEqual({ type: 'hello-ack', version: 1, from: 'n2' });
    expectBadRequest(() => decodeHello(encodeHelloAck('n2')));
    expectBadRequest(() => decodeHelloAck(encodeHello({ clusterId: 'c', from: 'a', to: 'b' })));
    expectBadRequest(() => decodeHello(raw.pack({ type: 'hello', version: 1, clusterId: 'c', from: 'a' })));
  });
});

/** Values of the wrong type for each kind of field. */
const WRONG: Record<'id' | 'nat' | 'bool' | 'entries' | 'ids', readonly unknown[]> = {
  id: [123, '', null, true, 'x'.repeat(300), new Uint8Array([1]), ['n1'], { id: 'n1' }],
  nat: [-1, 1.5, '1', null, true, Number.NaN, 2 ** 53, new Uint8Array(0), [1], {}],
  bool: [0, 1, 'true', null, [], {}],
  entries: ['x', null, 7, {}, [null], [{ index: 1 }], [1, 2]],
  ids: ['x', null, [1.5], [null], ['1'], {}],
};

function kindOf(key: string): keyof typeof WRONG {
  if (key === 'from' || key === 'to') return 'id';
  if (key === 'preVote' || key === 'granted' || key === 'success') return 'bool';
  if (key === 'entries') return 'entries';
  if (key === 'requestIds') return 'ids';
  return 'nat';
}

describe('validation rejects mutated shapes', () => {
  it('a field of the wrong type', () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), fc.nat(), (m, keyPick, valuePick) => {
        const keys = Object.keys(m).filter((k) => k !== 'type');
        const key = keys[keyPick % keys.length]!;
        const wrong = WRONG[kindOf(key)];
        const mutated = { ...m, [key]: wrong[valuePick % wrong.length] };
        expectBadRequest(() => validateMessage(mutated));
        // And the same arriving over the wire.
        expectBadRequest(() => decodeBatch(raw.pack([mutated])));
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('a missing field, an extra field, or an unknown type', () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), fc.string({ minLength: 1 }), (m, keyPick, extraKey) => {
        const keys = Object.keys(m);
        const key = keys[keyPick % keys.length]!;
        const missing: Record<string, unknown> = { ...m };
        delete missing[key];
        expectBadRequest(() => validateMessage(missing));
        if (!keys.includes(extraKey)) expectBadRequest(() => validateMessage({ ...m, [extraKey]: 1 }));
        expectBadRequest(() => validateMessage({ ...m, type: `${m.type}X` }));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('entries with wrong fields, a broken index run, term 0, or non-binary data', () => {
    const good: Message = {
      type: 'AppendEntries',
      from: 'n1',
      to: 'n2',
      term: 2,
      prevLogIndex: 4,
      prevLogTerm: 1,
      entries: [
        { index: 5, term: 2, type: 'normal', data: new Uint8Array([1, 2]) },
        { index: 6, term: 2, type: 'noop', data: new Uint8Array(0) },
      ],
      leaderCommit: 3,
    };
    expect(validateMessage(good)).toEqual(good);
    const withEntry = (i: number, patch: Record<string, unknown>): unknown => ({
      ...good,
      entries: good.entries.map((e, j) => (j === i ? { ...e, ...patch } : e)),
    });
    const bad = [
      withEntry(1, { index: 7 }), // gap in the run
      withEntry(0, { index: 4 }), // does not start at prevLogIndex + 1
      withEntry(0, { term: 0 }),
      withEntry(0, { type: 'snapshot' }),
      withEntry(0, { data: 'bytes' }),
      withEntry(0, { data: [1, 2] }),
      withEntry(0, { extra: true }),
      { ...good, entries: [{ index: 5, term: 2, type: 'normal' }] },
    ];
    for (const m of bad) {
      expectBadRequest(() => validateMessage(m));
      expectBadRequest(() => decodeBatch(raw.pack([m])));
    }
  });

  it('a prototype cannot smuggle fields in', () => {
    const sneaky = Object.create({ commit: 1, readRound: 0 }) as Record<string, unknown>;
    Object.assign(sneaky, { type: 'Heartbeat', from: 'n1', to: 'n2', term: 1 });
    expectBadRequest(() => validateMessage(sneaky));
  });

  it('arbitrary bytes either decode to valid messages or fail with BAD_REQUEST, never otherwise', () => {
    const valid = encodeBatch([{ type: 'HeartbeatResponse', from: 'n2', to: 'n1', term: 1, readRound: 3 }]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          // Valid frames with one byte changed or cut short.
          fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([pos, byte]) => {
            const b = Buffer.from(valid);
            b[pos % b.length] = byte;
            return b;
          }),
          fc.nat().map((n) => valid.subarray(0, n % valid.length)),
        ),
        (bytes) => {
          let out: Message[] | null = null;
          try {
            out = decodeBatch(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(RaftError);
            expect((e as RaftError).code).toBe('BAD_REQUEST');
            return;
          }
          for (const m of out) expect(validateMessage(m)).toEqual(m);
        },
      ),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it('encodeMessage writes one msgpack map per message', () => {
    const m: Message = { type: 'HeartbeatResponse', from: 'a', to: 'b', term: 1, readRound: 2 };
    expect(raw.unpack(encodeMessage(m))).toEqual(m);
  });
});
