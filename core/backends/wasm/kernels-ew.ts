// Element-wise kernels in f32x4: binary arithmetic with broadcasting of a trailing vector, a
// column vector or a scalar; exp; and the AdamW update. All take rows [r0, r1) of a matrix of
// `cols` columns and `n` elements in all (flat arrays are cut into rows of a fixed length, the
// last one short), so they run as row jobs on all threads.

import { f32, i32, Op, Simd, v128, type FuncBuilder, type ModuleBuilder } from "./asm.ts";
import { emitRowsJob } from "./jobs.ts";
import { addr, emitExp, emitRowLoop, expLocals, load, store } from "./simd-math.ts";

export const BINARY_OPS = { add: Simd.f32x4_add, sub: Simd.f32x4_sub, mul: Simd.f32x4_mul, div: Simd.f32x4_div, max: Simd.f32x4_max, min: Simd.f32x4_min } as const;
export type BinaryOp = keyof typeof BINARY_OPS;

/** How b is broadcast against a [rows, cols] a. */
export const BROADCAST = { same: 0, row: 1, col: 2, scalar: 3 } as const;
export type Broadcast = keyof typeof BROADCAST;

/**
 * Opens the row loop shared by all kernels here: for r in [r0, r1), the elements
 * [r·cols, min(n, (r+1)·cols)), calling `body(start, len)` with i32 locals.
 */
function rows(f: FuncBuilder, r0: number, r1: number, cols: number, n: number, body: (r: number, start: number, len: number) => void) {
  const [r, start, len] = [f.local(i32), f.local(i32), f.local(i32)];
  f.for(r, () => f.get(r0), () => f.get(r1), 1, () => {
    f.get(r).get(cols).op(Op.i32_mul).tee(start);
    f.get(cols).op(Op.i32_add).get(n);
    f.get(start).get(cols).op(Op.i32_add).get(n).op(Op.i32_lt_s).op(Op.select); // min(start + cols, n)
    f.get(start).op(Op.i32_sub).set(len);
    body(r, start, len);
  });
}

/** Pushes base + k·4 into a fresh-ish local (returns the local). */
function offset(f: FuncBuilder, into: number, base: number, k: number) {
  f.get(base).get(k).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(into);
}

/**
 * ew_<op>(r0, r1, a, b, out, cols, n, mode, swap): out = a ∘ b, or b ∘ a when swap, with b
 * broadcast by mode (BROADCAST). out may be a (in place).
 */
function emitBinary(m: ModuleBuilder, op: BinaryOp): number {
  const code = BINARY_OPS[op];
  return m.func(null, [i32, i32, i32, i32, i32, i32, i32, i32, i32], [], (f) => {
    const [r0, r1, a, b, out, cols, n, mode, swap] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const [pa, pb, po, j] = [f.local(i32), f.local(i32), f.local(i32), f.local(i32)];
    const s = f.local(v128);
    const commutative = op === "add" || op === "mul" || op === "max" || op === "min";
    rows(f, r0, r1, cols, n, (r, start, len) => {
      offset(f, pa, a, start);
      offset(f, po, out, start);
      // b for this row: a pointer that walks with j (same, row) or one splatted value (col, scalar)
      f.get(mode).i32c(BROADCAST.same).op(Op.i32_eq).if(() => offset(f, pb, b, start), () => f.get(b).set(pb));
      f.get(mode).i32c(BROADCAST.col).op(Op.i32_eq).if(() => offset(f, pb, b, r));
      const loop = (walk: boolean, swapped: boolean) => {
        if (!walk) f.get(pb).v128load32splat().set(s);
        emitRowLoop(f, j, len, (vec) => {
          addr(f, po, j);
          const x = () => load(f, pa, j, vec);
          const y = () => (walk ? load(f, pb, j, vec) : f.get(s));
          if (swapped) (y(), x());
          else (x(), y());
          f.simd(code);
          store(f, vec);
        });
      };
      const both = (walk: boolean) => {
        if (commutative) loop(walk, false);
        else f.get(swap).if(() => loop(walk, true), () => loop(walk, false));
      };
      f.get(mode).i32c(BROADCAST.row).op(Op.i32_le_u).if(() => both(true), () => both(false));
    });
  });
}

/** ew_exp(r0, r1, x, y, cols, n): y = exp(x) (see simd-math.ts for the accuracy). */
function emitExpKernel(m: ModuleBuilder): number {
  return m.func(null, [i32, i32, i32, i32, i32, i32], [], (f) => {
    const [r0, r1, x, y, cols, n] = [0, 1, 2, 3, 4, 5];
    const [px, py, j] = [f.local(i32), f.local(i32), f.local(i32)];
    const E = expLocals(f);
    rows(f, r0, r1, cols, n, (_r, start, len) => {
      offset(f, px, x, start);
      offset(f, py, y, start);
      emitRowLoop(f, j, len, (vec) => {
        addr(f, py, j);
        load(f, px, j, vec);
        emitExp(f, E);
        store(f, vec);
      });
    });
  });
}

/**
 * adamw(r0, r1, cols, n, p, g, m, v, decay, beta1, beta2, stepSize, sqrtBc2, eps), the
 * PyTorch AdamW step in place, in its order of operations:
 *   p ← p·(1 − lr·wd);  m ← m + (1−β1)·(g − m);  v ← β2·v + (1−β2)·g·g
 *   p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + eps)
 * with decay = 1 − lr·wd, stepSize = lr / (1−β1ᵗ) and sqrtBc2 = √(1−β2ᵗ) from the caller.
 */
function emitAdamW(m: ModuleBuilder): number {
  return m.func(null, [i32, i32, i32, i32, i32, i32, i32, i32, f32, f32, f32, f32, f32, f32], [], (f) => {
    const [r0, r1, cols, n, p, g, mm, vv, decay, b1, b2, step, sb2, eps] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
    const [pp, pg, pm, pv, j] = [f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)];
    const [G, M, V] = [f.local(v128), f.local(v128), f.local(v128)];
    const c = (s: number) => f.get(s).simd(Simd.f32x4_splat);
    rows(f, r0, r1, cols, n, (_r, start, len) => {
      offset(f, pp, p, start);
      offset(f, pg, g, start);
      offset(f, pm, mm, start);
      offset(f, pv, vv, start);
      emitRowLoop(f, j, len, (vec) => {
        load(f, pg, j, vec).set(G);
        // m = m + (1 − β1)·(g − m)   (torch's lerp)
        load(f, pm, j, vec).set(M);
        f.get(M).f32c(1).get(b1).op(Op.f32_sub).simd(Simd.f32x4_splat).get(G).get(M).simd(Simd.f32x4_sub).simd(Simd.f32x4_mul);
        f.simd(Simd.f32x4_add).set(M);
        addr(f, pm, j).get(M);
        store(f, vec);
        // v = β2·v + (1 − β2)·g²
        load(f, pv, j, vec);
        c(b2).simd(Simd.f32x4_mul);
        f.f32c(1).get(b2).op(Op.f32_sub).simd(Simd.f32x4_splat).get(G).simd(Simd.f32x4_mul).get(G).simd(Simd.f32x4_mul);
        f.simd(Simd.f32x4_add).set(V);
        addr(f, pv, j).get(V);
        store(f, vec);
        // p = p·decay − step·m / (√v / sqrtBc2 + eps)
        addr(f, pp, j);
        load(f, pp, j, vec);
        c(decay).simd(Simd.f32x4_mul);
        c(step).get(M).simd(Simd.f32x4_mul);
        f.get(V).simd(Simd.f32x4_sqrt);
        c(sb2).simd(Simd.f32x4_div);
        c(eps).simd(Simd.f32x4_add).simd(Simd.f32x4_div).simd(Simd.f32x4_sub);
        store(f, vec);
      });
    });
  });
}

/** Emits the element-wise kernels and their row-job entry points; returns the entry names. */
export function emitElementwise(m: ModuleBuilder): string[] {
  const names: string[] = [];
  for (const op of Object.keys(BINARY_OPS) as BinaryOp[]) {
    emitRowsJob(m, `ew_${op}_job`, emitBinary(m, op), [i32, i32, i32, i32, i32, i32, i32]);
    names.push(`ew_${op}_job`);
  }
  emitRowsJob(m, "ew_exp_job", emitExpKernel(m), [i32, i32, i32, i32]);
  emitRowsJob(m, "adamw_job", emitAdamW(m), [i32, i32, i32, i32, i32, i32, f32, f32, f32, f32, f32, f32]);
  names.push("ew_exp_job", "adamw_job");
  return names;
}
