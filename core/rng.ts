// Seeded random numbers whose exact position in the stream can be saved and restored.
//
// Built on seedrandom's Alea (Baagøe's multiply-with-carry generator, period ~2^116, passes
// BigCrush). Its whole state is four doubles, so a checkpoint can store it as plain JSON and a
// resumed run draws exactly the numbers the uninterrupted run would have drawn.
//
// Seeds are turned into strings before hashing (that is how Alea seeds), so `1` and `"1"` give the
// same stream.
import seedrandom from "seedrandom";

/** The exact position of a Generator in its stream: plain data, safe to JSON.stringify. */
export interface GeneratorState {
  algorithm: "alea";
  /** Alea's internal state: carry c and the three lagged values s0, s1, s2 in [0, 1). */
  c: number;
  s0: number;
  s1: number;
  s2: number;
  /** The second value of the last Box–Muller pair, not yet returned by normal(); null if none. */
  normalSpare: number | null;
}

type AleaPrng = seedrandom.StatefulPRNG<seedrandom.State.Alea>;

function checkSeed(seed: unknown): string {
  if (typeof seed === "number") {
    if (!Number.isFinite(seed)) throw new Error(`rng: seed must be a finite number or a string, got ${seed}`);
    return String(seed);
  }
  if (typeof seed === "string") return seed;
  throw new Error(`rng: seed must be a finite number or a string, got ${typeof seed}`);
}

function checkState(s: unknown): GeneratorState {
  const bad = (why: string) => new Error(`rng: invalid generator state: ${why}`);
  if (typeof s !== "object" || s === null) throw bad(`expected an object, got ${s === null ? "null" : typeof s}`);
  const st = s as Record<string, unknown>;
  if (st.algorithm !== "alea") throw bad(`expected algorithm "alea", got ${JSON.stringify(st.algorithm)}`);
  for (const k of ["c", "s0", "s1", "s2"]) {
    const v = st[k];
    if (typeof v !== "number" || !Number.isFinite(v)) throw bad(`field ${k} must be a finite number, got ${String(v)}`);
  }
  const spare = st.normalSpare;
  if (spare !== null && (typeof spare !== "number" || !Number.isFinite(spare))) {
    throw bad(`normalSpare must be null or a finite number, got ${String(spare)}`);
  }
  return st as unknown as GeneratorState;
}

export class Generator {
  private prng: AleaPrng;
  private normalSpare: number | null = null;

  constructor(seed: number | string) {
    this.prng = seedrandom.alea(checkSeed(seed), { state: true });
  }

  /** Restart the stream from a new seed, in place (everyone holding this generator sees it). */
  reseed(seed: number | string): void {
    this.prng = seedrandom.alea(checkSeed(seed), { state: true });
    this.normalSpare = null;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    return this.prng.double();
  }

  /** Standard normal N(0, 1) by Box–Muller; the pair's second value is kept for the next call. */
  normal(): number {
    if (this.normalSpare !== null) {
      const z = this.normalSpare;
      this.normalSpare = null;
      return z;
    }
    // u1 in (0, 1] so log(u1) is finite. With u1, u2 uniform:
    // r = √(-2 ln u1), θ = 2π u2  ->  (r cos θ, r sin θ) are two independent N(0, 1).
    const u1 = 1 - this.prng.double();
    const u2 = this.prng.double();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.normalSpare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** A uniformly chosen integer in [lo, hi). */
  randint(lo: number, hi: number): number {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi)) {
      throw new Error(`rng.randint: bounds must be safe integers, got lo=${lo}, hi=${hi}`);
    }
    if (hi <= lo) throw new Error(`rng.randint: need lo < hi, got lo=${lo}, hi=${hi}`);
    const span = hi - lo;
    if (!Number.isSafeInteger(span)) throw new Error(`rng.randint: range hi-lo=${span} is too large`);
    // floor(u·span) with 53-bit u: the bias is below span/2^53, far below what any test can see
    // for the spans used here (vocabulary sizes, dataset lengths).
    return lo + Math.floor(this.prng.double() * span);
  }

  /** Fill `arr` with uniform values in [lo, hi). */
  fillUniform<A extends Float32Array | Float64Array>(arr: A, lo = 0, hi = 1): A {
    checkRange("fillUniform", lo, hi);
    const width = hi - lo;
    if (arr instanceof Float32Array) {
      // Rounding lo + width·u to float32 can land on hi itself; step back to the float32 below it.
      const below = float32Below(hi);
      for (let i = 0; i < arr.length; i++) {
        const v = Math.fround(lo + width * this.prng.double());
        arr[i] = v >= hi ? below : v;
      }
    } else {
      const below = float64Below(hi);
      for (let i = 0; i < arr.length; i++) {
        const v = lo + width * this.prng.double();
        arr[i] = v >= hi ? below : v;
      }
    }
    return arr;
  }

  /** Fill `arr` with N(mean, std²) values; draws from the same stream as normal(). */
  fillNormal<A extends Float32Array | Float64Array>(arr: A, mean = 0, std = 1): A {
    if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0) {
      throw new Error(`rng.fillNormal: need finite mean and std >= 0, got mean=${mean}, std=${std}`);
    }
    for (let i = 0; i < arr.length; i++) arr[i] = mean + std * this.normal();
    return arr;
  }

  /** n values, each `value` (default 1) with probability keepProb and 0 otherwise (a dropout mask). */
  bernoulliMask(n: number, keepProb: number, value = 1): Float32Array {
    checkLength("bernoulliMask", n);
    if (!(keepProb >= 0 && keepProb <= 1)) {
      throw new Error(`rng.bernoulliMask: keepProb must be in [0, 1], got ${keepProb}`);
    }
    const out = new Float32Array(n);
    // Masks are large (every activation of a training step): one Alea draw seeds a mulberry32
    // stream for the whole mask, ~10× faster than an Alea double per element. Still a pure
    // function of this generator's state, so the same seed gives the same mask everywhere.
    let state = this.prng.int32() >>> 0;
    const threshold = keepProb * 4294967296; // keep when the 32-bit draw u < keepProb·2³²
    for (let i = 0; i < n; i++) {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      out[i] = value * +(((t ^ (t >>> 14)) >>> 0) < threshold);
    }
    return out;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    checkLength("permutation", n);
    if (n > 0x7fffffff) throw new Error(`rng.permutation: n must fit in int32, got ${n}`);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    return this.shuffle(out);
  }

  /** Shuffle in place (Fisher–Yates) and return the same array. */
  shuffle<T extends { length: number; [i: number]: any }>(arr: T): T {
    return shuffleInPlace(arr, () => this.prng.double());
  }

  /** The exact stream position, as plain JSON-safe data. */
  getState(): GeneratorState {
    const s = this.prng.state();
    return { algorithm: "alea", c: s.c, s0: s.s0, s1: s.s1, s2: s.s2, normalSpare: this.normalSpare };
  }

  /** Jump to a position saved by getState(); later draws repeat the saved run's draws exactly. */
  setState(state: GeneratorState): void {
    const s = checkState(state);
    // The seed passed here is irrelevant: the state object overwrites everything it set up.
    this.prng = seedrandom.alea("", { state: { c: s.c, s0: s.s0, s1: s.s1, s2: s.s2 } });
    this.normalSpare = s.normalSpare;
  }

  static fromState(state: GeneratorState): Generator {
    const g = new Generator(0);
    g.setState(state);
    return g;
  }

  /**
   * A child generator, derived deterministically: it is seeded from four 32-bit draws of this
   * generator, so the parent advances (two forks in a row differ) and the same parent state
   * always yields the same child.
   */
  fork(): Generator {
    const words: number[] = [];
    for (let i = 0; i < 4; i++) words.push(this.prng.int32() >>> 0);
    return new Generator(`fork:${words.join(":")}`);
  }
}

function checkRange(fn: string, lo: number, hi: number): void {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !Number.isFinite(hi - lo)) {
    throw new Error(`rng.${fn}: bounds must be finite, got lo=${lo}, hi=${hi}`);
  }
  if (hi <= lo) throw new Error(`rng.${fn}: need lo < hi, got lo=${lo}, hi=${hi}`);
}

function checkLength(fn: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`rng.${fn}: n must be a non-negative integer, got ${n}`);
}

/** The largest float32 strictly below x (x a finite number). */
function float32Below(x: number): number {
  const f = new Float32Array([x]);
  if (f[0] < x) return f[0]; // x itself was not a float32 and rounded down already
  const bits = new Int32Array(f.buffer);
  // Stepping the bit pattern moves one ulp: down for positives, up in magnitude for negatives.
  if (f[0] === 0) bits[0] = 0x80000001; // -smallest subnormal
  else if (f[0] > 0) bits[0]--;
  else bits[0]++;
  return f[0];
}

/** The largest float64 strictly below x (x finite). */
function float64Below(x: number): number {
  if (x === 0) return -Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const bits = new BigInt64Array(f.buffer);
  bits[0] += x > 0 ? -1n : 1n;
  return f[0];
}

// The module-wide generator, like torch.default_generator. Seeded with 0 so that even code that
// never calls manualSeed is reproducible.
const defaultGen = new Generator(0);

/** Reseed the module-wide generator in place. */
export function manualSeed(seed: number | string): Generator {
  defaultGen.reseed(seed);
  return defaultGen;
}

export function defaultGenerator(): Generator {
  return defaultGen;
}

/** Fisher–Yates: every permutation equally likely given a uniform `random` in [0, 1). Walking
 *  down, position i receives a uniform pick among the i+1 not-yet-placed elements. */
export function shuffleInPlace<T extends { length: number; [i: number]: any }>(arr: T, random: () => number): T {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = arr[i];
    arr[i] = arr[j];
    arr[j] = t;
  }
  return arr;
}

/**
 * mulberry32: a 32-bit state advanced by a Weyl step (+0x6D2B79F5) and scrambled by two
 * multiply-xorshift rounds; floats in [0, 1). Period 2³²: plenty for shuffling a corpus, and a
 * state that is one integer, so a data order is reproducible from (seed, epoch) alone. (The same
 * stream that bernoulliMask() inlines for speed.)
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
