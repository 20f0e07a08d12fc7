// Tests for core/rng.ts: reproducibility, exact resume from saved state, distributions, errors.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Generator, defaultGenerator, manualSeed, type GeneratorState } from "../../core/rng.ts";

const FC = { seed: 1234, numRuns: 100 };

/** A mixed sequence of draws, so resume is checked across every method that consumes the stream. */
function draws(g: Generator, ops: number[]): number[] {
  const out: number[] = [];
  for (const op of ops) {
    switch (op % 6) {
      case 0: out.push(g.random()); break;
      case 1: out.push(g.normal()); break;
      case 2: out.push(g.randint(-5, 17)); break;
      case 3: out.push(...g.permutation(4)); break;
      case 4: out.push(...g.bernoulliMask(3, 0.3)); break;
      default: out.push(...g.fillNormal(new Float32Array(3), 1, 2));
    }
  }
  return out;
}

test("same seed gives the same numbers; number and string seeds both work", () => {
  for (const seed of [0, 1, 42, -7.5, "hello", ""]) {
    const a = new Generator(seed);
    const b = new Generator(seed);
    assert.equal(draws(a, [0, 1, 2, 3, 4, 5, 1, 0]), draws(b, [0, 1, 2, 3, 4, 5, 1, 0]));
  }
});

test("different seeds give different streams", () => {
  const firsts = new Set<number>();
  for (let s = 0; s < 50; s++) firsts.add(new Generator(s).random());
  assert.is(firsts.size, 50);
  assert.not.equal(draws(new Generator("a"), [0, 0, 0]), draws(new Generator("b"), [0, 0, 0]));
});

test("getState/setState resumes exactly, through JSON, including normal()'s cached value", () => {
  fc.assert(
    fc.property(
      fc.integer(),
      fc.array(fc.nat(5), { maxLength: 20 }),
      fc.array(fc.nat(5), { minLength: 1, maxLength: 20 }),
      (seed, before, after) => {
        const g = new Generator(seed);
        draws(g, before);
        const saved: GeneratorState = JSON.parse(JSON.stringify(g.getState()));
        const expected = draws(g, after);
        // Resume both on a fresh generator and by rewinding the same one.
        assert.equal(draws(Generator.fromState(saved), after), expected);
        g.setState(saved);
        assert.equal(draws(g, after), expected);
      },
    ),
    FC,
  );
});

test("the Box–Muller spare is part of the state", () => {
  const g = new Generator(9);
  g.normal(); // draws a pair, returns the first, keeps the second
  const s = g.getState();
  assert.type(s.normalSpare, "number");
  const spare = g.normal();
  assert.is(spare, s.normalSpare);
  g.setState(s);
  assert.is(g.normal(), spare);
  assert.is(g.getState().normalSpare, null);
});

test("normal(): sample mean ≈ 0 and variance ≈ 1 over 20k draws", () => {
  const g = new Generator(2024);
  const n = 20000;
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const z = g.normal();
    sum += z;
    sq += z * z;
  }
  const mean = sum / n;
  const variance = sq / n - mean * mean;
  // Standard errors: 1/√n ≈ 0.007 for the mean, √(2/n) = 0.01 for the variance.
  assert.ok(Math.abs(mean) < 0.035, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.05, `variance ${variance}`);
});

test("fillNormal uses mean and std", () => {
  const a = new Generator(5).fillNormal(new Float64Array(20000), 3, 0.5);
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  const sd = Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length);
  assert.ok(Math.abs(mean - 3) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(sd - 0.5) < 0.02, `sd ${sd}`);
});

test("random() and fillUniform stay in [lo, hi) with the right mean", () => {
  const g = new Generator(11);
  let sum = 0;
  for (let i = 0; i < 10000; i++) {
    const u = g.random();
    assert.ok(u >= 0 && u < 1);
    sum += u;
  }
  assert.ok(Math.abs(sum / 10000 - 0.5) < 0.015, `mean ${sum / 10000}`);
  for (const arr of [g.fillUniform(new Float32Array(5000), -2, 3), g.fillUniform(new Float64Array(5000), -2, 3)]) {
    for (const x of arr) assert.ok(x >= -2 && x < 3, `${x}`);
  }
});

test("fillUniform never returns hi even when rounding would land on it", () => {
  // [1, next float32 after 1) contains exactly one float32: 1. Rounding 1 + 2^-23·u lands on hi
  // for u > 1/2, so without the guard about half the values would equal hi.
  const hi32 = 1 + 2 ** -23;
  const a = new Generator(3).fillUniform(new Float32Array(1000), 1, hi32);
  assert.ok(a.every((x) => x === 1));
  const hi64 = 1 + 2 ** -52;
  const b = new Generator(3).fillUniform(new Float64Array(1000), 1, hi64);
  assert.ok(b.every((x) => x === 1));
});

test("randint covers [lo, hi) evenly", () => {
  const g = new Generator(77);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 20000; i++) {
    const k = g.randint(-3, 7);
    assert.ok(Number.isInteger(k) && k >= -3 && k < 7, `${k}`);
    counts[k + 3]++;
  }
  // Expected 2000 per bin, standard deviation ≈ 42; allow ±200.
  for (const c of counts) assert.ok(Math.abs(c - 2000) < 200, `counts ${counts}`);
});

test("bernoulliMask: 0/1 values with mean keepProb; 0 and 1 are exact", () => {
  const g = new Generator(4);
  const m = g.bernoulliMask(20000, 0.3);
  assert.ok(m.every((x) => x === 0 || x === 1));
  const mean = m.reduce((s, x) => s + x, 0) / m.length;
  assert.ok(Math.abs(mean - 0.3) < 0.02, `mean ${mean}`);
  assert.ok(g.bernoulliMask(100, 0).every((x) => x === 0));
  assert.ok(g.bernoulliMask(100, 1).every((x) => x === 1));
  assert.is(g.bernoulliMask(0, 0.5).length, 0);
});

test("permutation is a permutation; shuffle permutes in place", () => {
  fc.assert(
    fc.property(fc.integer(), fc.nat(300), (seed, n) => {
      const p = new Generator(seed).permutation(n);
      assert.is(p.length, n);
      const sorted = Array.from(p).sort((a, b) => a - b);
      assert.equal(sorted, Array.from({ length: n }, (_, i) => i));
    }),
    FC,
  );
  const items = ["a", "b", "c", "d", "e", "f"];
  const same = new Generator(1).shuffle(items);
  assert.is(same, items);
  assert.equal([...items].sort(), ["a", "b", "c", "d", "e", "f"]);
});

test("permutation is roughly uniform: each of the 6 orders of 3 appears ~1/6 of the time", () => {
  const g = new Generator(8);
  const counts = new Map<string, number>();
  for (let i = 0; i < 6000; i++) {
    const key = g.permutation(3).join("");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.is(counts.size, 6);
  for (const c of counts.values()) assert.ok(Math.abs(c - 1000) < 120, `counts ${[...counts]}`);
});

test("fork: deterministic, advances the parent, children independent of each other", () => {
  const a = new Generator(12);
  const b = new Generator(12);
  const ca = a.fork();
  const cb = b.fork();
  assert.equal(draws(ca, [0, 1, 2]), draws(cb, [0, 1, 2]));
  assert.equal(a.getState(), b.getState());
  const c2 = a.fork();
  assert.not.equal(draws(c2, [0, 0, 0]), draws(a.fork(), [0, 0, 0]));
  assert.not.equal(draws(new Generator(12).fork(), [0, 0, 0]), draws(new Generator(12), [0, 0, 0]));
});

test("manualSeed reseeds the default generator in place", () => {
  const g = defaultGenerator();
  assert.is(manualSeed(7), g);
  const x = [g.random(), g.normal()];
  manualSeed(7);
  assert.equal([defaultGenerator().random(), defaultGenerator().normal()], x);
  const ref = new Generator(7);
  assert.equal([ref.random(), ref.normal()], x);
});

test("bad arguments give clear errors", () => {
  const g = new Generator(0);
  assert.throws(() => new Generator(NaN), /seed must be a finite number or a string, got NaN/);
  assert.throws(() => new Generator(Infinity), /finite/);
  assert.throws(() => manualSeed(-Infinity), /finite/);
  assert.throws(() => g.randint(3, 3), /need lo < hi, got lo=3, hi=3/);
  assert.throws(() => g.randint(0.5, 2), /safe integers/);
  assert.throws(() => g.fillUniform(new Float32Array(2), 1, 0), /need lo < hi/);
  assert.throws(() => g.fillUniform(new Float32Array(2), 0, Infinity), /finite/);
  assert.throws(() => g.fillNormal(new Float32Array(2), 0, -1), /std >= 0/);
  assert.throws(() => g.bernoulliMask(3, 1.5), /keepProb must be in \[0, 1\], got 1.5/);
  assert.throws(() => g.bernoulliMask(3, NaN), /keepProb/);
  assert.throws(() => g.bernoulliMask(-1, 0.5), /non-negative integer, got -1/);
  assert.throws(() => g.permutation(2.5), /non-negative integer/);
  assert.throws(() => g.setState({} as GeneratorState), /expected algorithm "alea"/);
  assert.throws(() => g.setState({ ...g.getState(), s1: NaN }), /field s1 must be a finite number/);
  assert.throws(() => Generator.fromState({ ...g.getState(), normalSpare: "x" as unknown as number }), /normalSpare/);
  // A failed setState leaves the generator where it was.
  const before = g.getState();
  assert.throws(() => g.setState(null as unknown as GeneratorState), /invalid generator state/);
  assert.equal(g.getState(), before);
});

test.run();
