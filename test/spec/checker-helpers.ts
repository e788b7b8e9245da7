// Helpers for the checker's property suites: a fixed, replayable seed, and generated histories
// turned into operations through the same text format a user's file goes through.
import fc from 'fast-check';
import type { GeneratedEvent } from '../src/checker/generate.js';
import { formatHistory, pairOperations, parseHistory, type Operation } from '../src/checker/history.js';

export const SEED = Number(process.env.BALLOT_CHECKER_SEED ?? 20261121);

/** fast-check's message names the seed and the shrunk counterexample; this adds how to replay it. */
export function assertProperty<T>(prop: fc.IProperty<T>, numRuns: number): void {
  try {
    fc.assert(prop, { seed: SEED, numRuns });
  } catch (err) {
    throw new Error(`property failed (replay with BALLOT_CHECKER_SEED=${SEED}):\n${(err as Error).message}`);
  }
}

/** The operations of a generated history, via its JSON Lines form. */
export const opsOf = (events: readonly GeneratedEvent[]): Operation[] => pairOperations(parseHistory(formatHistory(events)));

/** A tape of random choices for the generator. */
export const tape = (maxLength: number): fc.Arbitrary<number[]> => fc.array(fc.nat({ max: 1 << 20 }), { maxLength, size: 'max' });
