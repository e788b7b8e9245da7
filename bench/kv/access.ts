// One interface for every way the bench talks to a store (etcd's JSON gateway, Ballot's JSON
// gateway, Ballot's native protocol), and the one closed-loop operation built on it, so every
// system runs the same workload code: which key, which value, what counts as success.

import { BenchRequestError } from '../raft/cluster.js';
import { KEY_PREFIX, keyName, ownedKeyIndex, type KvOp, type TxnOutcome } from './workload.js';

/**
 * What a workload needs from a store. Every method checks the answer (right key, value size,
 * revision present) and rejects with BenchRequestError(code) on anything else, so only checked
 * answers are counted.
 */
export interface KvAccess {
  /** "etcd", "ballot", "ballot-native": the column the results go to. */
  readonly label: string;
  /** Writes the worker's 256-byte value under `key`. */
  put(worker: number, key: string): Promise<void>;
  /** Reads `key` (must exist, with a value of the bench's size). */
  get(worker: number, key: string, serializable: boolean): Promise<void>;
  /** If mod_revision(key) = expected, puts the worker's value, else reads the key (Kubernetes' update). */
  txn(worker: number, key: string, expectedModRevision: number): Promise<TxnOutcome>;
  /** key -> mod_revision of every key under the prefix (linearizable read); exactly `count` keys expected. */
  modRevisions(prefix: string, count: number): Promise<ReadonlyMap<string, number>>;
  close(): Promise<void>;
}

/** Writes every key once (values of worker i mod clients), `parallel` requests at a time. */
export async function preload(access: KvAccess, keyCount: number, parallel: number, workers: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < keyCount) {
      const i = next++;
      await access.put(i % workers, keyName(i, keyCount));
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, keyCount) }, () => lane()));
}

/**
 * The closed-loop operation of one cell: worker w cycles through the keys it owns
 * (ownedKeyIndex), so writers never collide. For txn, the current mod_revisions are read first
 * (outside the measurement); a compare that fails means a write was lost or applied twice, and
 * counts as an error (COMPARE_FAILED) after the cache is refreshed from the failure branch's read.
 */
export async function cellOperation(
  access: KvAccess,
  op: KvOp,
  clients: number,
  keyCount: number,
): Promise<(worker: number) => Promise<void>> {
  const keys = Array.from({ length: keyCount }, (_, i) => keyName(i, keyCount));
  ownedKeyIndex(clients - 1, 0, clients, keyCount); // validates clients <= keyCount up front
  const seq = new Array<number>(clients).fill(0);
  const nextKey = (w: number): string => {
    const s = seq[w] ?? 0;
    seq[w] = s + 1;
    return keys[ownedKeyIndex(w, s, clients, keyCount)] as string;
  };
  switch (op) {
    case 'put':
      return (w) => access.put(w, nextKey(w));
    case 'get':
      return (w) => access.get(w, nextKey(w), false);
    case 'sget':
      return (w) => access.get(w, nextKey(w), true);
    case 'txn': {
      const mods = new Map(await access.modRevisions(KEY_PREFIX, keyCount));
      return async (w) => {
        const key = nextKey(w);
        const expected = mods.get(key);
        if (expected === undefined) throw new BenchRequestError('MISSING_KEY', `${key} was not preloaded`);
        const outcome = await access.txn(w, key, expected);
        if (outcome.kind === 'applied') {
          mods.set(key, outcome.revision);
          return;
        }
        mods.set(key, outcome.modRevision);
        throw new BenchRequestError('COMPARE_FAILED', `${key}: mod_revision ${outcome.modRevision}, expected ${expected}`);
      };
    }
  }
}
