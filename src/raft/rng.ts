import { assert } from "./assert.js";

/**
 * The only source of randomness raft uses (election timeout jitter). It is a constructor argument so that a
 * seed replays a whole run exactly (STYLE.md: no Math.random in raft).
 */
export interface Rng {
  /** A uniformly distributed integer in [0, bound); bound is a positive integer <= 2^32. */
  nextInt(bound: number): number;
}

const TWO_POW_32 = 4294967296;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 step: spreads a seed into well-mixed state words for xoshiro. */
function splitmix32(state: { value: number }): number {
  state.value = (state.value + 0x9e3779b9) | 0;
  let t = state.value ^ (state.value >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  t ^= t >>> 15;
  return t >>> 0;
}

/**
 * xoshiro128** (Blackman & Vigna): small, fast, good statistical quality, and fully determined by its seed.
 * Not cryptographic; it only spreads election timeouts and drives the simulator.
 */
export class Xoshiro128 implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any safe integer (negative allowed); equal seeds give equal sequences. */
  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), `rng seed must be a safe integer, got ${seed}`);
    const low = (seed % TWO_POW_32) | 0;
    const high = Math.floor(seed / TWO_POW_32) | 0;
    const state = { value: low ^ Math.imul(high, 0x85ebca6b) };
    this.s0 = splitmix32(state);
    this.s1 = splitmix32(state);
    this.s2 = splitmix32(state);
    this.s3 = splitmix32(state);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  nextInt(bound: number): number {
    assert(Number.isInteger(bound) && bound > 0 && bound <= TWO_POW_32, `rng bound out of range: ${bound}`);
    // Rejection sampling removes the modulo bias.
    const limit = TWO_POW_32 - (TWO_POW_32 % bound);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % bound;
    }
  }

  /** A float in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / TWO_POW_32;
  }
}
