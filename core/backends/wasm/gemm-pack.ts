// Packing for the gemm: copies a block of A or B into the panel order the micro-kernel streams
// (W values of consecutive rows/columns per k, zero padded past the matrix edge). Reading the
// source through two byte strides makes the transposed layouts free: Aᵀ and Bᵀ are the same
// copy with the strides swapped.

import { i32, Op, v128, type FuncBuilder, type ModuleBuilder } from "./asm.ts";

/** Emits the four-row transposition of r0..r3 (each 4 lanes) into c0..c3 (columns). */
function transpose4(f: FuncBuilder, r: number[], t: number[], c: number[]) {
  f.get(r[0]).get(r[1]).shuffle32(0, 4, 1, 5).set(t[0]); // r0₀ r1₀ r0₁ r1₁
  f.get(r[0]).get(r[1]).shuffle32(2, 6, 3, 7).set(t[1]); // r0₂ r1₂ r0₃ r1₃
  f.get(r[2]).get(r[3]).shuffle32(0, 4, 1, 5).set(t[2]);
  f.get(r[2]).get(r[3]).shuffle32(2, 6, 3, 7).set(t[3]);
  f.get(t[0]).get(t[2]).shuffle32(0, 1, 4, 5).set(c[0]); // r0₀ r1₀ r2₀ r3₀
  f.get(t[0]).get(t[2]).shuffle32(2, 3, 6, 7).set(c[1]);
  f.get(t[1]).get(t[3]).shuffle32(0, 1, 4, 5).set(c[2]);
  f.get(t[1]).get(t[3]).shuffle32(2, 3, 6, 7).set(c[3]);
}

/**
 * pack(src, ps, ks, np, kc, dst): element (p, k) at src + p·ps + k·ks (byte strides) goes to
 * panels of W consecutive p: dst[panel][k][0..W), zero padded past np. Fast paths for full
 * panels when W is 2 or a multiple of 4: p contiguous (ps = 4: vector copies) and k contiguous
 * (ks = 4: 4×4 transposes, or 2×4 interleaves for W = 2). Anything else is scalar.
 */
export function emitPack(m: ModuleBuilder, W: number): number {
  return m.func(null, [i32, i32, i32, i32, i32, i32], [], (f) => {
    const [src, ps, ks, np, kc, dst] = [0, 1, 2, 3, 4, 5];
    const p0 = f.local(i32);
    const k = f.local(i32);
    const i = f.local(i32);
    const rows = f.local(i32);
    const base = f.local(i32);
    const out = f.local(i32);
    const k4 = f.local(i32);
    const rp = Array.from({ length: 4 }, () => f.local(i32));
    const r = Array.from({ length: 4 }, () => f.local(v128));
    const t = Array.from({ length: 4 }, () => f.local(v128));
    const c = Array.from({ length: 4 }, () => f.local(v128));
    const fast = W % 4 === 0 || W === 2;
    /** pushes out + k·W·4 (the packed row of k) */
    const outRow = (kExtra = 0) => {
      f.get(out).get(k);
      if (kExtra) f.i32c(kExtra).op(Op.i32_add);
      f.i32c(W * 4).op(Op.i32_mul).op(Op.i32_add);
    };

    // dst[k][i] = i < rows ? src(p0 + i, k) : 0
    const scalar = () => {
      f.for(k, () => f.i32c(0), () => f.get(kc), 1, () => {
        outRow();
        f.set(i);
        for (let ii = 0; ii < W; ii++) {
          f.get(rows).i32c(ii).op(Op.i32_gt_s).if(
            () => f.get(i).get(base).i32c(ii).get(ps).op(Op.i32_mul).op(Op.i32_add).get(k).get(ks).op(Op.i32_mul).op(Op.i32_add).f32load().f32store(ii * 4),
            () => f.get(i).f32c(0).f32store(ii * 4),
          );
        }
      });
    };
    // p contiguous: each packed row is a straight copy of W floats
    const copy = () => {
      f.for(k, () => f.i32c(0), () => f.get(kc), 1, () => {
        f.get(base).get(k).get(ks).op(Op.i32_mul).op(Op.i32_add).set(i);
        if (W === 2) {
          outRow();
          f.get(i).i64load().i64store();
        } else {
          for (let g = 0; g < W / 4; g++) {
            outRow();
            f.get(i).v128load(g * 16).v128store(g * 16);
          }
        }
      });
    };
    // k contiguous: transpose 4 k at a time, then a scalar tail of kc mod 4
    const trans = () => {
      f.get(kc).i32c(-4).op(Op.i32_and).set(k4);
      const groups = W === 2 ? 1 : W / 4;
      const lanes = W === 2 ? 2 : 4;
      for (let g = 0; g < groups; g++) {
        for (let q = 0; q < lanes; q++) f.get(base).i32c(g * 4 + q).get(ps).op(Op.i32_mul).op(Op.i32_add).set(rp[q]);
        f.for(k, () => f.i32c(0), () => f.get(k4), 4, () => {
          for (let q = 0; q < lanes; q++) f.get(rp[q]).get(k).i32c(2).op(Op.i32_shl).op(Op.i32_add).v128load().set(r[q]);
          if (W === 2) {
            // rows r0, r1 over k..k+3 → (r0ₖ r1ₖ r0ₖ₊₁ r1ₖ₊₁), (r0ₖ₊₂ r1ₖ₊₂ r0ₖ₊₃ r1ₖ₊₃)
            outRow();
            f.get(r[0]).get(r[1]).shuffle32(0, 4, 1, 5).v128store();
            outRow(2);
            f.get(r[0]).get(r[1]).shuffle32(2, 6, 3, 7).v128store();
          } else {
            transpose4(f, r, t, c);
            for (let q = 0; q < 4; q++) {
              outRow(q);
              f.get(c[q]).v128store(g * 16);
            }
          }
        });
      }
      f.for(k, () => f.get(k4), () => f.get(kc), 1, () => {
        for (let ii = 0; ii < W; ii++) {
          outRow();
          f.get(base).i32c(ii).get(ps).op(Op.i32_mul).op(Op.i32_add).get(k).i32c(2).op(Op.i32_shl).op(Op.i32_add).f32load();
          f.f32store(ii * 4);
        }
      });
    };

    f.get(dst).set(out);
    f.for(p0, () => f.i32c(0), () => f.get(np), W, () => {
      f.get(np).get(p0).op(Op.i32_sub).set(rows); // rows left; the panel is full when ≥ W
      f.get(src).get(p0).get(ps).op(Op.i32_mul).op(Op.i32_add).set(base);
      if (!fast) scalar();
      else {
        f.get(rows).i32c(W).op(Op.i32_ge_s).if(() => {
          f.get(ps).i32c(4).op(Op.i32_eq).if(copy, () => {
            f.get(ks).i32c(4).op(Op.i32_eq).if(trans, scalar);
          });
        }, scalar);
      }
      f.get(out).get(kc).i32c(W * 4).op(Op.i32_mul).op(Op.i32_add).set(out);
    });
  });
}
