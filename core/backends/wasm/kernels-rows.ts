// Fused row kernels on [rows, n] matrices, forward and backward, each a row job:
//   softmax     y = eˣ⁻ᵐ / Σ eˣ⁻ᵐ (m = row max)           dx = y ⊙ (dy − Σ dy⊙y)
//   logSoftmax  y = (x − m) − log Σ eˣ⁻ᵐ                 dx = dy − eʸ · Σ dy
//   layerNorm   y = (x − μ)·r·γ + β, r = 1/√(σ² + eps)   dx = r·(g − mean(g) − x̂·mean(g⊙x̂)),
//               with g = dy⊙γ and x̂ = (x − μ)·r; dγ = Σ_rows dy⊙x̂ and dβ = Σ_rows dy run as a
//               separate job over column chunks, so the sums need no cross-thread reduction.
// Sums run 4 lanes wide, then the lanes are added, then the tail: a fixed order, so results do
// not depend on the number of threads.

import { f32, i32, Op, Simd, v128, type FuncBuilder, type ModuleBuilder } from "./asm.ts";
import { emitRowsJob } from "./jobs.ts";
import { addr, emitExp, emitHmax, emitHsum, emitRowLoop, expLocals, load, store } from "./simd-math.ts";

/** Per-row pointers: p_k = base_k + r·n·4 for each base local, into fresh locals. */
function rowPointers(f: FuncBuilder, r: number, n: number, bases: number[]): number[] {
  return bases.map((b) => {
    const p = f.local(i32);
    f.get(b).get(r).get(n).op(Op.i32_mul).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(p);
    return p;
  });
}

/**
 * Σ over a row of the v128 that `term(vec)` pushes (4 lanes, or a splatted tail value), in
 * lane-parallel order, then lanes, then tail; leaves the f32 sum in `into`.
 */
function rowSum(f: FuncBuilder, j: number, n: number, into: number, term: (vec: boolean) => void) {
  const acc = f.local(v128);
  const tmp = f.local(v128);
  const tail = f.local(f32);
  f.f32x4c(0).set(acc);
  f.f32c(0).set(tail);
  emitRowLoop(f, j, n, (vec) => {
    if (vec) {
      f.get(acc);
      term(true);
      f.simd(Simd.f32x4_add).set(acc);
    } else {
      f.get(tail);
      term(false);
      f.extractLane(0).op(Op.f32_add).set(tail);
    }
  });
  f.get(acc);
  emitHsum(f, tmp);
  f.get(tail).op(Op.f32_add).set(into);
}

/** The row maximum of base[0..n) (NaN skipped) into the f32 local `into` (−inf for n = 0). */
function rowMax(f: FuncBuilder, j: number, n: number, base: number, into: number) {
  const acc = f.local(v128);
  const tmp = f.local(v128);
  f.f32x4c(-Infinity).set(acc);
  emitRowLoop(f, j, n, (vec) => {
    f.get(acc);
    load(f, base, j, vec);
    // pmax (one maxps; f32x4.max's NaN handling costs V8 ~7 instructions and made softmax
    // 1.5x slower) skips NaN, but a NaN in the row still makes its exp, the sum and so every
    // output NaN, as in PyTorch. A splatted tail value is a max of itself.
    f.simd(Simd.f32x4_pmax).set(acc);
  });
  f.get(acc);
  emitHmax(f, tmp);
  f.set(into);
}

const splat = (f: FuncBuilder, s: number) => f.get(s).simd(Simd.f32x4_splat);
const KERNEL = [i32, i32, i32, i32, i32, i32] as const;

function rowKernel(m: ModuleBuilder, params: readonly (typeof i32 | typeof f32)[], body: (f: FuncBuilder, r: number) => void): number {
  return m.func(null, [...params], [], (f) => {
    const r = f.local(i32);
    f.for(r, () => f.get(0), () => f.get(1), 1, () => body(f, r));
  });
}

/** Emits the row kernels and their jobs; `log` is the index of an imported f64 → f64 log. */
export function emitRowKernels(m: ModuleBuilder, log: number): string[] {
  const jobs: [string, number, (typeof i32 | typeof f32)[]][] = [];

  // softmax(r0, r1, x, y, n)
  jobs.push(["softmax_job", rowKernel(m, [i32, i32, i32, i32, i32], (f, r) => {
    const [x, y, n] = [2, 3, 4];
    const [px, py] = rowPointers(f, r, n, [x, y]);
    const [j, mx, sum] = [f.local(i32), f.local(f32), f.local(f32)];
    const E = expLocals(f);
    rowMax(f, j, n, px, mx);
    rowSum(f, j, n, sum, (vec) => {
      // e = exp(x − m), stored in y and summed
      addr(f, py, j);
      load(f, px, j, vec);
      splat(f, mx).simd(Simd.f32x4_sub);
      emitExp(f, E);
      f.tee(E.k); // emitExp leaves k free after it pushed the result
      store(f, vec);
      f.get(E.k);
    });
    f.f32c(1).get(sum).op(Op.f32_div).set(sum); // multiply by 1/Σ: one division per row
    emitRowLoop(f, j, n, (vec) => {
      addr(f, py, j);
      load(f, py, j, vec);
      splat(f, sum).simd(Simd.f32x4_mul);
      store(f, vec);
    });
  }), [i32, i32, i32]]);

  // logSoftmax(r0, r1, x, y, n)
  jobs.push(["log_softmax_job", rowKernel(m, [i32, i32, i32, i32, i32], (f, r) => {
    const [x, y, n] = [2, 3, 4];
    const [px, py] = rowPointers(f, r, n, [x, y]);
    const [j, mx, sum] = [f.local(i32), f.local(f32), f.local(f32)];
    const E = expLocals(f);
    rowMax(f, j, n, px, mx);
    rowSum(f, j, n, sum, (vec) => {
      load(f, px, j, vec);
      splat(f, mx).simd(Simd.f32x4_sub);
      emitExp(f, E);
    });
    // y = (x − m) − log Σ (log in f64 from the host: one call per row). Never x − (m + log Σ):
    // for x = 1e30 the sum m + log Σ rounds to m and the result to 0 instead of −log 2.
    f.get(sum).op(Op.f64_promote_f32).call(log).op(Op.f32_demote_f64).set(sum);
    emitRowLoop(f, j, n, (vec) => {
      addr(f, py, j);
      load(f, px, j, vec);
      splat(f, mx).simd(Simd.f32x4_sub);
      splat(f, sum).simd(Simd.f32x4_sub);
      store(f, vec);
    });
  }), [i32, i32, i32]]);

  // logSoftmaxArgmax(r0, r1, x, bias, index, value, n): the log-softmax values exactly as
  // log_softmax_job computes them, plus bias, never stored: each lane keeps its best value and
  // index (a larger value replaces it, and a NaN replaces a number, so each lane holds its first
  // maximum or first NaN), then the lanes are merged by (NaN first, larger, lower index) and the
  // tail scanned in order: the first maximum of the row, as reduce's argmax finds it.
  jobs.push(["log_softmax_argmax_job", rowKernel(m, [i32, i32, i32, i32, i32, i32, i32], (f, r) => {
    const [x, bias, index, value, n] = [2, 3, 4, 5, 6];
    const [px] = rowPointers(f, r, n, [x]);
    const [j, mx, sum, v, best] = [f.local(i32), f.local(f32), f.local(f32), f.local(f32), f.local(f32)];
    const [bi, vi] = [f.local(i32), f.local(i32)];
    const [bestV, bestI, idx, s, take] = Array.from({ length: 5 }, () => f.local(v128));
    const E = expLocals(f);
    rowMax(f, j, n, px, mx);
    rowSum(f, j, n, sum, (vec) => {
      load(f, px, j, vec);
      splat(f, mx).simd(Simd.f32x4_sub);
      emitExp(f, E);
    });
    f.get(sum).op(Op.f64_promote_f32).call(log).op(Op.f32_demote_f64).set(sum);
    // s = ((x − m) − log Σ) + bias, 4 lanes or one (the tail)
    const term = (vec: boolean) => {
      load(f, px, j, vec);
      splat(f, mx).simd(Simd.f32x4_sub);
      splat(f, sum).simd(Simd.f32x4_sub);
      load(f, bias, j, vec).simd(Simd.f32x4_add);
    };
    f.f32x4c(-Infinity).set(bestV);
    f.i32x4c(0, 1, 2, 3).tee(bestI).set(idx);
    const n4 = f.local(i32);
    f.get(n).i32c(-4).op(Op.i32_and).set(n4);
    f.for(j, () => f.i32c(0), () => f.get(n4), 4, () => {
      term(true);
      f.set(s);
      // take = s > best, or s is NaN and best is not
      f.get(s).get(bestV).simd(Simd.f32x4_gt);
      f.get(s).get(s).simd(Simd.f32x4_ne).get(bestV).get(bestV).simd(Simd.f32x4_eq).simd(Simd.v128_and);
      f.simd(Simd.v128_or).set(take);
      f.get(s).get(bestV).get(take).simd(Simd.v128_bitselect).set(bestV);
      f.get(idx).get(bestI).get(take).simd(Simd.v128_bitselect).set(bestI);
      f.get(idx).i32x4c(4).simd(Simd.i32x4_add).set(idx);
    });
    const isNaN = (l: number) => f.get(l).get(l).op(Op.f32_ne);
    f.get(bestV).extractLane(0).set(best);
    f.get(bestI).extractLaneI32(0).set(bi);
    for (let lane = 1; lane < 4; lane++) {
      f.get(bestV).extractLane(lane).set(v);
      f.get(bestI).extractLaneI32(lane).set(vi);
      // take lane if: v is NaN and (best is not, or vi < bi); or neither is NaN and
      // (v > best, or v = best and vi < bi)
      isNaN(v);
      f.if(() => {
        isNaN(best);
        f.op(Op.i32_eqz).get(vi).get(bi).op(Op.i32_lt_s).op(Op.i32_or);
        f.if(() => f.get(v).set(best).get(vi).set(bi));
      }, () => {
        f.get(v).get(best).op(Op.f32_gt);
        f.get(v).get(best).op(Op.f32_eq).get(vi).get(bi).op(Op.i32_lt_s).op(Op.i32_and).op(Op.i32_or);
        f.if(() => f.get(v).set(best).get(vi).set(bi));
      });
    }
    f.for(j, () => f.get(n4), () => f.get(n), 1, () => {
      term(false);
      f.extractLane(0).set(v);
      f.get(v).get(best).op(Op.f32_gt);
      isNaN(v);
      isNaN(best);
      f.op(Op.i32_eqz).op(Op.i32_and).op(Op.i32_or);
      f.if(() => f.get(v).set(best).get(j).set(bi));
    });
    f.get(index).get(r).i32c(2).op(Op.i32_shl).op(Op.i32_add).get(bi).i32store();
    f.get(value).get(r).i32c(2).op(Op.i32_shl).op(Op.i32_add).get(best).f32store();
  }), [i32, i32, i32, i32, i32]]);

  // softmaxBackward(r0, r1, y, dy, dx, n)
  jobs.push(["softmax_bwd_job", rowKernel(m, [...KERNEL], (f, r) => {
    const [y, dy, dx, n] = [2, 3, 4, 5];
    const [py, pdy, pdx] = rowPointers(f, r, n, [y, dy, dx]);
    const [j, dot] = [f.local(i32), f.local(f32)];
    rowSum(f, j, n, dot, (vec) => {
      load(f, py, j, vec);
      load(f, pdy, j, vec).simd(Simd.f32x4_mul);
    });
    emitRowLoop(f, j, n, (vec) => {
      addr(f, pdx, j);
      load(f, py, j, vec);
      load(f, pdy, j, vec);
      splat(f, dot).simd(Simd.f32x4_sub).simd(Simd.f32x4_mul);
      store(f, vec);
    });
  }), [i32, i32, i32, i32]]);

  // logSoftmaxBackward(r0, r1, y, dy, dx, n)
  jobs.push(["log_softmax_bwd_job", rowKernel(m, [...KERNEL], (f, r) => {
    const [y, dy, dx, n] = [2, 3, 4, 5];
    const [py, pdy, pdx] = rowPointers(f, r, n, [y, dy, dx]);
    const [j, s] = [f.local(i32), f.local(f32)];
    const E = expLocals(f);
    rowSum(f, j, n, s, (vec) => load(f, pdy, j, vec));
    emitRowLoop(f, j, n, (vec) => {
      addr(f, pdx, j);
      load(f, pdy, j, vec);
      load(f, py, j, vec);
      emitExp(f, E);
      splat(f, s).simd(Simd.f32x4_mul).simd(Simd.f32x4_sub);
      store(f, vec);
    });
  }), [i32, i32, i32, i32]]);

  // layerNorm(r0, r1, x, gamma, beta, y, mean, rstd, n, eps); gamma and beta both 0 (no
  // affine) or both set; mean and rstd may be 0 (not saved)
  jobs.push(["layer_norm_job", rowKernel(m, [i32, i32, i32, i32, i32, i32, i32, i32, i32, f32], (f, r) => {
    const [x, gamma, beta, y, mean, rstd, n, eps] = [2, 3, 4, 5, 6, 7, 8, 9];
    const [px, py] = rowPointers(f, r, n, [x, y]);
    const [j, mu, rs] = [f.local(i32), f.local(f32), f.local(f32)];
    const t = f.local(v128);
    const nf = () => f.get(n).op(Op.f32_convert_i32_s);
    rowSum(f, j, n, mu, (vec) => load(f, px, j, vec));
    f.get(mu);
    nf();
    f.op(Op.f32_div).set(mu);
    // two-pass variance: Σ (x − μ)² / n, no cancellation
    rowSum(f, j, n, rs, (vec) => {
      load(f, px, j, vec);
      splat(f, mu).simd(Simd.f32x4_sub).tee(t).get(t).simd(Simd.f32x4_mul);
    });
    f.f32c(1).get(rs);
    nf();
    f.op(Op.f32_div).get(eps).op(Op.f32_add).op(Op.f32_sqrt).op(Op.f32_div).set(rs);
    f.get(mean).if(() => f.get(mean).get(r).i32c(2).op(Op.i32_shl).op(Op.i32_add).get(mu).f32store());
    f.get(rstd).if(() => f.get(rstd).get(r).i32c(2).op(Op.i32_shl).op(Op.i32_add).get(rs).f32store());
    const write = (affine: boolean) => {
      emitRowLoop(f, j, n, (vec) => {
        addr(f, py, j);
        load(f, px, j, vec);
        splat(f, mu).simd(Simd.f32x4_sub);
        splat(f, rs).simd(Simd.f32x4_mul);
        if (affine) {
          load(f, gamma, j, vec).simd(Simd.f32x4_mul);
          load(f, beta, j, vec).simd(Simd.f32x4_add);
        }
        store(f, vec);
      });
    };
    f.get(gamma).if(() => write(true), () => write(false));
  }), [i32, i32, i32, i32, i32, i32, i32, f32]]);

  // layerNormBackward(r0, r1, x, gamma, mean, rstd, dy, dx, n): dx only; gamma may be 0
  jobs.push(["layer_norm_bwd_job", rowKernel(m, [i32, i32, i32, i32, i32, i32, i32, i32, i32], (f, r) => {
    const [x, gamma, mean, rstd, dy, dx, n] = [2, 3, 4, 5, 6, 7, 8];
    const [px, pdy, pdx] = rowPointers(f, r, n, [x, dy, dx]);
    const [j, mu, rs, sg, sgx] = [f.local(i32), f.local(f32), f.local(f32), f.local(f32), f.local(f32)];
    const nf = () => f.get(n).op(Op.f32_convert_i32_s);
    f.get(mean).get(r).i32c(2).op(Op.i32_shl).op(Op.i32_add).f32load().set(mu);
    f.get(rstd).get(r).i32c(2).op(Op.i32_shl).op(Op.i32_add).f32load().set(rs);
    const body = (affine: boolean) => {
      const g = (vec: boolean) => {
        load(f, pdy, j, vec);
        if (affine) load(f, gamma, j, vec).simd(Simd.f32x4_mul);
      };
      const xhat = (vec: boolean) => {
        load(f, px, j, vec);
        splat(f, mu).simd(Simd.f32x4_sub);
        splat(f, rs).simd(Simd.f32x4_mul);
      };
      rowSum(f, j, n, sg, g);
      rowSum(f, j, n, sgx, (vec) => {
        g(vec);
        xhat(vec);
        f.simd(Simd.f32x4_mul);
      });
      f.get(sg);
      nf();
      f.op(Op.f32_div).set(sg);
      f.get(sgx);
      nf();
      f.op(Op.f32_div).set(sgx);
      emitRowLoop(f, j, n, (vec) => {
        addr(f, pdx, j);
        g(vec);
        splat(f, sg).simd(Simd.f32x4_sub);
        xhat(vec);
        splat(f, sgx).simd(Simd.f32x4_mul).simd(Simd.f32x4_sub);
        splat(f, rs).simd(Simd.f32x4_mul);
        store(f, vec);
      });
    };
    f.get(gamma).if(() => body(true), () => body(false));
  }), [i32, i32, i32, i32, i32, i32, i32]]);

  // layerNormParamsBackward(c0, c1, x, mean, rstd, dy, dgamma, dbeta, rows, n, accumulate):
  // dγ[j] (+)= Σᵢ dy[i,j]·x̂[i,j] and dβ[j] (+)= Σᵢ dy[i,j] for the columns [c0, c1)
  jobs.push(["layer_norm_params_bwd_job", m.func(null, [i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32], [], (f) => {
    const [c0, c1, x, mean, rstd, dy, dg, db, rows, n, acc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const [i, j, len, pg, pb, px, pdy] = Array.from({ length: 7 }, () => f.local(i32));
    const [mu, rs] = [f.local(f32), f.local(f32)];
    const d = f.local(v128);
    f.get(c1).get(c0).op(Op.i32_sub).set(len);
    f.get(dg).get(c0).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(pg);
    f.get(db).get(c0).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(pb);
    f.get(acc).op(Op.i32_eqz).if(() => {
      emitRowLoop(f, j, len, (vec) => {
        addr(f, pg, j).f32x4c(0);
        store(f, vec);
        addr(f, pb, j).f32x4c(0);
        store(f, vec);
      });
    });
    f.for(i, () => f.i32c(0), () => f.get(rows), 1, () => {
      f.get(mean).get(i).i32c(2).op(Op.i32_shl).op(Op.i32_add).f32load().set(mu);
      f.get(rstd).get(i).i32c(2).op(Op.i32_shl).op(Op.i32_add).f32load().set(rs);
      f.get(i).get(n).op(Op.i32_mul).get(c0).op(Op.i32_add).i32c(2).op(Op.i32_shl).tee(px).get(dy).op(Op.i32_add).set(pdy);
      f.get(px).get(x).op(Op.i32_add).set(px);
      emitRowLoop(f, j, len, (vec) => {
        load(f, pdy, j, vec).set(d);
        addr(f, pg, j);
        load(f, pg, j, vec);
        f.get(d);
        load(f, px, j, vec);
        splat(f, mu).simd(Simd.f32x4_sub);
        splat(f, rs).simd(Simd.f32x4_mul).simd(Simd.f32x4_mul).simd(Simd.f32x4_add);
        store(f, vec);
        addr(f, pb, j);
        load(f, pb, j, vec).get(d).simd(Simd.f32x4_add);
        store(f, vec);
      });
    });
  }), [i32, i32, i32, i32, i32, i32, i32, i32, i32]]);

  for (const [name, kernel, types] of jobs) emitRowsJob(m, name, kernel, types);
  return jobs.map(([name]) => name);
}
