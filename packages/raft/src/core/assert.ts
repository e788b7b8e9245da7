// Loud failure for internal impossibilities (TigerBeetle's style): a wrong state that could
// corrupt data stops the node instead of carrying on.

/** Throws when an internal impossibility is detected: better to stop than corrupt data. */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`raft invariant violated: ${message}`);
}
