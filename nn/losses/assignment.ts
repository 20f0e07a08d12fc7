// The linear sum assignment problem: give each row its own column so that the total cost is least.
//
//   min over injective σ: rows → columns of Σᵢ C[i][σ(i)],   rows ≤ columns
//
// Solved by the Hungarian method in its shortest-augmenting-path form (Kuhn 1955, Munkres 1957;
// the O(n²·m) arrangement with row and column potentials u, v that Jonker & Volgenant also use).
// Rows are added one at a time. Adding row i grows a Dijkstra-like tree over columns on the
// reduced costs C[r][j] − u[r] − v[j] (never negative) until it reaches a free column, then flips
// the matched edges along that path. The potentials stay a feasible dual (u[r] + v[j] ≤ C[r][j]
// everywhere, with equality on matched edges), so the matching is optimal after the last row.
//
// +∞ entries are forbidden pairs. They are replaced by a finite cost larger than any assignment
// made of finite entries could total, and an answer that still uses one means that every
// assignment needs a forbidden pair: that is refused as infeasible. NaN and −∞ are refused.
//
// The loss functions call the flat form on the host with Float64Array costs; the nested-array
// form is the same solver for callers holding number[][].

// Row i's column for each row i of an n×m cost matrix (n ≤ m), minimising the total cost.
export function linearSumAssignment(cost: readonly (readonly number[])[]): number[] {
  if (!Array.isArray(cost)) throw new Error("linearSumAssignment: cost must be an array of rows (number[][])");
  const n = cost.length;
  const m = n === 0 ? 0 : cost[0]?.length ?? 0;
  const flat = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const row: ArrayLike<unknown> = cost[i];
    if (!Array.isArray(row) && !ArrayBuffer.isView(row)) throw new Error(`linearSumAssignment: row ${i} is not an array`);
    if (row.length !== m) throw new Error(`linearSumAssignment: rows must all have ${m} columns (row 0 has ${m}), row ${i} has ${row.length}`);
    for (let j = 0; j < m; j++) {
      const c = row[j];
      if (typeof c !== "number") throw new Error(`linearSumAssignment: cost[${i}][${j}] is not a number (${typeof c})`);
      flat[i * m + j] = c;
    }
  }
  return Array.from(linearSumAssignmentFlat(flat, n, m));
}

// The same on a row-major n×m matrix. `out` (length ≥ n) receives the columns when given.
export function linearSumAssignmentFlat(cost: ArrayLike<number>, n: number, m: number, out?: Int32Array): Int32Array {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(m) || m < 0) throw new Error(`linearSumAssignment: rows and columns must be integers ≥ 0, got ${n}×${m}`);
  if (n > m) throw new Error(`linearSumAssignment: needs rows ≤ columns (each row gets its own column), got ${n}×${m}; pass the transpose`);
  if (cost.length !== n * m) throw new Error(`linearSumAssignment: a ${n}×${m} matrix has ${n * m} entries, got ${cost.length}`);
  const result = out ?? new Int32Array(n);
  if (result.length < n) throw new Error(`linearSumAssignment: out has ${result.length} slots for ${n} rows`);
  if (n === 0) return result;

  // Check the entries; find the finite range to size the stand-in for +∞.
  let lo = Infinity, hi = -Infinity, infinite = false;
  for (let k = 0; k < n * m; k++) {
    const c = cost[k];
    if (c !== c) throw new Error(`linearSumAssignment: cost[${Math.floor(k / m)}][${k % m}] is NaN`);
    if (c === Infinity) infinite = true;
    else if (c === -Infinity) throw new Error(`linearSumAssignment: cost[${Math.floor(k / m)}][${k % m}] is -Infinity (the minimum would be unbounded)`);
    else {
      if (c < lo) lo = c;
      if (c > hi) hi = c;
    }
  }
  let C: ArrayLike<number> = cost;
  if (infinite) {
    if (lo > hi) lo = hi = 0;
    // Any assignment using k ≥ 1 forbidden pairs costs ≥ k·big + (n − k)·lo > n·hi ≥ any all-finite one.
    const big = n * (hi - lo) + Math.abs(hi) + Math.abs(lo) + 1;
    const copy = new Float64Array(n * m);
    for (let k = 0; k < n * m; k++) copy[k] = cost[k] === Infinity ? big : cost[k];
    C = copy;
  }

  solve(C, n, m, result);

  if (infinite) {
    for (let i = 0; i < n; i++) {
      if (cost[i * m + result[i]] === Infinity) {
        throw new Error(`linearSumAssignment: infeasible: every assignment of the ${n}×${m} matrix uses a +Infinity (forbidden) entry`);
      }
    }
  }
  return result;
}

// Shortest augmenting paths with potentials. Indices are 1-based inside (0 is the virtual root
// column holding the row being inserted): u[1..n] rows, v[0..m] columns, match[j] = row on column j.
function solve(C: ArrayLike<number>, n: number, m: number, out: Int32Array): void {
  const u = new Float64Array(n + 1), v = new Float64Array(m + 1);
  const minv = new Float64Array(m + 1);
  const match = new Int32Array(m + 1), way = new Int32Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    match[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = match[j0], rowBase = (i0 - 1) * m - 1, ui0 = u[i0];
      let delta = Infinity, j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = C[rowBase + j] - ui0 - v[j]; // reduced cost of (i0, j)
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      // Move the potentials by the smallest slack: the tree's edges stay tight and (i0, j1) becomes tight.
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          u[match[j]] += delta;
          v[j] -= delta;
        } else minv[j] -= delta;
      }
      j0 = j1;
    } while (match[j0] !== 0);
    // Flip the alternating path back to the root.
    do {
      const j1 = way[j0];
      match[j0] = match[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  for (let j = 1; j <= m; j++) if (match[j] !== 0) out[match[j] - 1] = j - 1;
}
