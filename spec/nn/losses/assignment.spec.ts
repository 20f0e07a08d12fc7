// linearSumAssignment: the Hungarian solver against brute force over every injective assignment
// (square and rectangular, n ≤ 7), its invariances, +∞ handling and refused input.
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { linearSumAssignment, linearSumAssignmentFlat } from "../../../nn/index.ts";

const t = suite("losses/assignment");
const FC = { seed: 20210609, numRuns: 150 };

// The least total over all injective maps rows → columns, by enumeration.
function bruteForce(c: number[][]): number {
  const n = c.length, m = n ? c[0].length : 0;
  const used = new Array<boolean>(m).fill(false);
  let best = Infinity;
  const go = (i: number, acc: number): void => {
    if (i === n) {
      if (acc < best) best = acc;
      return;
    }
    for (let j = 0; j < m; j++) {
      if (used[j]) continue;
      used[j] = true;
      go(i + 1, acc + c[i][j]);
      used[j] = false;
    }
  };
  go(0, 0);
  return best;
}

const total = (c: number[][], a: number[]): number => a.reduce((s, j, i) => s + c[i][j], 0);
const isInjective = (a: number[], m: number): boolean => new Set(a).size === a.length && a.every((j) => Number.isInteger(j) && j >= 0 && j < m);

// An n×m matrix (n ≤ m ≤ 7), entries from a small integer range (many ties) or real-valued.
const matrix = fc.integer({ min: 0, max: 7 }).chain((n) =>
  fc.integer({ min: n, max: 7 }).chain((m) =>
    fc.oneof(
      fc.array(fc.array(fc.integer({ min: 0, max: 4 }), { minLength: m, maxLength: m }), { minLength: n, maxLength: n }),
      fc.array(fc.array(fc.double({ min: -20, max: 20, noNaN: true }), { minLength: m, maxLength: m }), { minLength: n, maxLength: n }),
    ).map((rows) => ({ rows, n, m }))));

t("equals brute force over all assignments (n ≤ 7, rows ≤ columns), and is injective", () => {
  fc.assert(fc.property(matrix, ({ rows, m }) => {
    const a = linearSumAssignment(rows);
    return a.length === rows.length && isInjective(a, m) && Math.abs(total(rows, a) - bruteForce(rows)) <= 1e-9 * (1 + Math.abs(bruteForce(rows)));
  }), FC);
});

t("adding a constant to a row or a column shifts the optimum by it", () => {
  fc.assert(fc.property(matrix.filter(({ n }) => n > 0), fc.double({ min: -5, max: 5, noNaN: true }), fc.nat(), fc.boolean(), ({ rows, n, m }, k, pick, byRow) => {
    const base = total(rows, linearSumAssignment(rows));
    const shifted = rows.map((r, i) => r.map((c, j) => (byRow ? (i === pick % n ? c + k : c) : (j === pick % m ? c + k : c))));
    const got = total(shifted, linearSumAssignment(shifted));
    // A column constant reaches the optimum only when that column is used; for n = m it always is.
    const want = byRow || n === m ? base + k : bruteForce(shifted);
    return Math.abs(got - want) <= 1e-9 * (1 + Math.abs(want));
  }), FC);
});

t("flat Float64Array form equals the nested form; `out` is reused", () => {
  fc.assert(fc.property(matrix, ({ rows, n, m }) => {
    const flat = new Float64Array(rows.flat());
    const out = new Int32Array(n + 2).fill(-1);
    const r = linearSumAssignmentFlat(flat, n, m, out);
    return r === out && total(rows, Array.from(out.subarray(0, n))) === total(rows, linearSumAssignment(rows));
  }), FC);
});

t("+∞ entries are avoided when an assignment can avoid them, refused when none can", () => {
  const I = Infinity;
  assert.equal(linearSumAssignment([[I, 1], [1, I]]), [1, 0]);
  assert.equal(linearSumAssignment([[1, I, I], [I, I, 5], [2, 3, I]]), [0, 2, 1]);
  assert.equal(linearSumAssignment([[I, 0, I]]), [1]);
  assert.throws(() => linearSumAssignment([[1, I], [2, I]]), /infeasible/);
  assert.throws(() => linearSumAssignment([[I]]), /infeasible/);
  // Huge finite costs next to +∞ still choose the finite pair.
  assert.equal(linearSumAssignment([[1e300, I], [I, -1e300]]), [0, 1]);
  fc.assert(fc.property(matrix.filter(({ n }) => n > 0), fc.array(fc.nat(), { maxLength: 10 }), ({ rows, n, m }, holes) => {
    const c = rows.map((r) => r.slice());
    for (const h of holes) c[h % n][Math.floor(h / n) % m] = I;
    const want = bruteForce(c);
    if (want === I) {
      try {
        linearSumAssignment(c);
        return false;
      } catch (e) {
        return /infeasible/.test((e as Error).message);
      }
    }
    return Math.abs(total(c, linearSumAssignment(c)) - want) <= 1e-9 * (1 + Math.abs(want));
  }), FC);
});

t("empty and single-entry matrices", () => {
  assert.equal(linearSumAssignment([]), []);
  assert.equal(linearSumAssignment([[3]]), [0]);
  assert.equal(linearSumAssignment([[3, 1, 2]]), [1]);
  assert.equal(Array.from(linearSumAssignmentFlat(new Float64Array(0), 0, 5)), []);
});

t("bad input is refused with a message naming the problem", () => {
  assert.throws(() => linearSumAssignment([[1, 2], [3, 4], [5, 6]]), /rows ≤ columns.*3×2/);
  assert.throws(() => linearSumAssignment([[1, NaN]]), /cost\[0\]\[1\] is NaN/);
  assert.throws(() => linearSumAssignment([[1, -Infinity]]), /-Infinity/);
  assert.throws(() => linearSumAssignment([[1, 2], [3]]), /row 1 has 1/);
  assert.throws(() => linearSumAssignment([[1, "2" as unknown as number]]), /not a number/);
  assert.throws(() => linearSumAssignment("x" as unknown as number[][]), /array of rows/);
  assert.throws(() => linearSumAssignmentFlat(new Float64Array(5), 2, 3), /has 6 entries, got 5/);
  assert.throws(() => linearSumAssignmentFlat(new Float64Array(6), 2, 3, new Int32Array(1)), /out has 1 slots/);
  assert.throws(() => linearSumAssignmentFlat(new Float64Array(6), 2.5, 3), /integers/);
});

t.run();
