// Helpers for the invariant-checker tests (sim-invariants*.test.ts): small log entries and hard
// states to build histories from, and an assertion that a history is rejected by a given invariant.
import { expect } from 'vitest';
import type { Entry, HardState } from '../src/core/types.js';
import { InvariantViolation, type InvariantName } from '../src/sim/invariants.js';

/** The empty entry a new leader appends in its term (Raft §8 / thesis §6.4). */
export function noop(index: number, term: number): Entry {
  return { index, term, type: 'noop', data: new Uint8Array(0) };
}

export function hs(term: number, commit: number, vote: string | null = null): HardState {
  return { term, vote, commit };
}

/** Runs `fn`, expects it to throw the named InvariantViolation (with a detail matching `detail`), returns it. */
export function expectViolation(invariant: InvariantName, fn: () => void, detail?: RegExp): InvariantViolation {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvariantViolation);
    const v = err as InvariantViolation;
    expect(v.invariant).toBe(invariant);
    if (detail) expect(v.detail).toMatch(detail);
    return v;
  }
  throw new Error(`expected a ${invariant} violation, but the history was accepted`);
}
