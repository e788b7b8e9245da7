// A small seeded pseudo-random generator for election-timeout jitter (§5.2).
//
// The core must be deterministic: the same seed and the same inputs give the same outputs,
// in the simulator and in real processes alike. So it never calls Math.random; every random
// choice comes from this generator, seeded from RaftConfig.randomSeed and the node's id
// (so that nodes given the same seed still draw different timeouts).
//
// The algorithm is Marsaglia's xorshift32 (three shifts, period 2^32 - 1): plenty for jitter,
// not for cryptography.

export class Rand {
  private state: number;

  constructor(seed: number, salt = '') {
    // Mix the salt (the node id) into the seed with FNV-1a, then make sure the state is non-zero
    // (zero is the one fixed point of xorshift).
    let h = 0x811c9dc5 ^ (seed >>> 0) ^ Math.floor(seed / 0x1_0000_0000);
    for (let i = 0; i < salt.length; i++) {
      h ^= salt.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    this.state = h >>> 0 || 0x9e3779b9;
    // Discard a few outputs so that nearby seeds do not start with nearby values.
    for (let i = 0; i < 8; i++) this.nextUint32();
  }

  /** The next value in [0, 2^32). */
  nextUint32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  /** A uniformly drawn integer in [lo, hi). */
  intBetween(lo: number, hi: number): number {
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && hi > lo)) {
      throw new Error(`Rand.intBetween: bad range [${lo}, ${hi})`);
    }
    return lo + (this.nextUint32() % (hi - lo));
  }
}
