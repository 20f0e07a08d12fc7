// Matrix products with very few rows of C (decoding: M = 1..4 tokens or beams). Packing B
// would copy the whole weight for a handful of rows, and the packed micro-kernel would compute
// padding rows, so these kernels read B in place:
//
//   B as stored K×N (not transposed):    C[i, :] += A[i,k] · B[k, :]              (axpy)
//   B stored N×K (A·Bᵀ, a Linear layer):  C[i, j]   = A[i, :] · B[j, :]          (dots)
//
// The axpy form streams B row by row (contiguous, 4 rows per pass) into the row of C, which
// stays in L1. The dot form takes rows of A in groups of g = 4, 2, 1 sharing every B load, with
// g·R = 8 dots (R rows of B) in registers.
// The dot form needs A's rows contiguous: a transposed A is first copied into the thread's
// packing buffer. B is taken JB rows at a time, the same block for every group of A rows, so B
// is read from memory once whatever the number of rows (beams): with groups outermost, 5 beams
// read the 8000×256 output matrix twice (a group of 4, then 1).
// Same task interface as the packed gemm block: (job, rec, b0, b1, m0, m1, n0, n1).

import { f32, i32, Op, Simd, v128, type FuncBuilder, type ModuleBuilder } from "./asm.ts";
import { JOB, THREAD } from "./gemm-kernels.ts";
import { addr, emitHsum, emitRowLoop, load, store } from "./simd-math.ts";

const GROUPS = [4, 2, 1];
/** Rows of B (dots) that every group of A rows takes before the next block: 8 = g·R for each g. */
const JB = 8;

/** C[addr] = v, or C[addr] += v when the i32 local `acc` is set (v, addr: locals). */
function storeScalar(f: FuncBuilder, addrL: number, v: number, acc: number) {
  f.get(acc).if(() => f.get(v).get(addrL).f32load().op(Op.f32_add).set(v));
  f.get(addrL).get(v).f32store();
}

/** while (limit − x ≥ step) { body(); x += step } */
function whileRoom(f: FuncBuilder, x: number, limit: number, step: number, body: () => void) {
  f.block(() =>
    f.loop(() => {
      f.get(limit).get(x).op(Op.i32_sub).i32c(step).op(Op.i32_lt_s).brIf(1);
      body();
      f.get(x).i32c(step).op(Op.i32_add).set(x).br(0);
    }),
  );
}

export function emitGemv(m: ModuleBuilder): number {
  return m.func(null, [i32, i32, i32, i32, i32, i32, i32, i32], [], (f) => {
    const [job, rec, b0, b1, m0, m1, n0, n1] = [0, 1, 2, 3, 4, 5, 6, 7];
    const L = () => f.local(i32);
    const [K, K4, lda, ldb, ldc, aBS, bBS, cBS, accF, bi, i, j, k, q, Ab, Bb, Cb, rsA, csA, j0, jEnd] = Array.from({ length: 21 }, L);
    const pa = Array.from({ length: 4 }, L); // A row pointers of a group
    const pbr = Array.from({ length: 8 }, L); // B row pointers (dots)
    const acc = Array.from({ length: 8 }, () => f.local(v128));
    const av = Array.from({ length: 4 }, () => f.local(v128));
    const [bv, tmp] = [f.local(v128), f.local(v128)];
    const s = f.local(f32);
    const ld = (slot: number) => f.get(job).i32load(slot * 4);
    const bytes = (slot: number, into: number) => ld(slot).i32c(4).op(Op.i32_mul).set(into);
    ld(JOB.K).set(K);
    f.get(K).i32c(-4).op(Op.i32_and).set(K4);
    bytes(JOB.lda, lda);
    bytes(JOB.ldb, ldb);
    bytes(JOB.ldc, ldc);
    bytes(JOB.aBatchStride, aBS);
    bytes(JOB.bBatchStride, bBS);
    bytes(JOB.cBatchStride, cBS);
    /** pushes base + x·stride + extra (locals; extra a constant) */
    const at = (base: number, x: number, stride: number, extra = 0) => {
      f.get(base).get(x);
      if (extra) f.i32c(extra).op(Op.i32_add);
      f.get(stride).op(Op.i32_mul).op(Op.i32_add);
    };
    const k4 = () => f.get(k).i32c(2).op(Op.i32_shl).op(Op.i32_add); // + k·4
    /** C[i + r, j + c] address into q */
    const cAt = (r: number, col: () => void) => {
      at(Cb, i, ldc, r);
      col();
      f.i32c(2).op(Op.i32_shl).op(Op.i32_add).set(q);
    };

    // dots: C[i..i+g, j..j+R) with R = 8/g, every A and B vector load shared
    const dots = (g: number, R: number) => {
      for (let r = 0; r < R; r++) at(Bb, j, ldb, r), f.set(pbr[r]);
      for (let r = 0; r < g * R; r++) f.f32x4c(0).set(acc[r]);
      f.for(k, () => f.i32c(0), () => f.get(K4), 4, () => {
        for (let a = 0; a < g; a++) f.get(pa[a]), k4(), f.v128load().set(av[a]);
        for (let r = 0; r < R; r++) {
          f.get(pbr[r]);
          k4();
          f.v128load().set(bv);
          for (let a = 0; a < g; a++) f.get(acc[a * R + r]).get(av[a]).get(bv).simd(Simd.f32x4_mul).simd(Simd.f32x4_add).set(acc[a * R + r]);
        }
      });
      for (let a = 0; a < g; a++) {
        for (let r = 0; r < R; r++) {
          f.get(acc[a * R + r]);
          emitHsum(f, tmp);
          f.set(s);
          f.for(k, () => f.get(K4), () => f.get(K), 1, () => {
            f.get(s).get(pa[a]);
            k4();
            f.f32load().get(pbr[r]);
            k4();
            f.f32load().op(Op.f32_mul).op(Op.f32_add).set(s);
          });
          cAt(a, () => f.get(j).i32c(r).op(Op.i32_add));
          storeScalar(f, q, s, accF);
        }
      }
    };

    // axpy, streaming B by rows: C[i..i+g, n0..n1) += Σ_k A[i..i+g, k]·B[k, n0..n1), 4 rows of
    // B per pass over the (L1-resident) rows of C; B is read contiguously once per group of g
    // rows of C, each of its vectors feeding g rows
    const [len, crow] = [L(), Array.from({ length: 4 }, L)];
    const pb4 = Array.from({ length: 4 }, L);
    const asplat = Array.from({ length: 16 }, () => f.local(v128)); // A[i+a, k+r] splatted
    const axpyRows = (g: number) => {
      for (let a = 0; a < g; a++) {
        at(Ab, i, rsA, a);
        f.set(pa[a]);
        at(Cb, i, ldc, a);
        f.get(n0).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(crow[a]);
        f.get(accF).op(Op.i32_eqz).if(() => emitRowLoop(f, j, len, (vec) => (addr(f, crow[a], j).f32x4c(0), store(f, vec))));
      }
      const pass = (rowsB: number) => {
        for (let r = 0; r < rowsB; r++) {
          at(Bb, k, ldb, r);
          f.get(n0).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(pb4[r]);
          for (let a = 0; a < g; a++) {
            f.get(pa[a]).v128load32splat().set(asplat[a * 4 + r]);
            f.get(pa[a]).get(csA).op(Op.i32_add).set(pa[a]);
          }
        }
        emitRowLoop(f, j, len, (vec) => {
          for (let r = 0; r < rowsB; r++) load(f, pb4[r], j, vec).set(av[r]);
          for (let a = 0; a < g; a++) {
            addr(f, crow[a], j);
            load(f, crow[a], j, vec);
            for (let r = 0; r < rowsB; r++) f.get(asplat[a * 4 + r]).get(av[r]).simd(Simd.f32x4_mul).simd(Simd.f32x4_add);
            store(f, vec);
          }
        });
      };
      f.i32c(0).set(k);
      whileRoom(f, k, K, 4, () => pass(4)); // advances k by 4 after each pass
      whileRoom(f, k, K, 1, () => pass(1));
    };

    f.for(bi, () => f.get(b0), () => f.get(b1), 1, () => {
      // accumulate when asked, and into a batch-sum C after its first batch
      ld(JOB.accumulate).get(cBS).op(Op.i32_eqz).get(bi).get(b0).op(Op.i32_gt_s).op(Op.i32_and).op(Op.i32_or).set(accF);
      f.get(job).i32load(JOB.a * 4).get(bi).get(aBS).op(Op.i32_mul).op(Op.i32_add).set(Ab);
      f.get(job).i32load(JOB.b * 4).get(bi).get(bBS).op(Op.i32_mul).op(Op.i32_add).set(Bb);
      f.get(job).i32load(JOB.c * 4).get(bi).get(cBS).op(Op.i32_mul).op(Op.i32_add).set(Cb);
      ld(JOB.transA).if(() => f.i32c(4).set(rsA).get(lda).set(csA), () => f.get(lda).set(rsA).i32c(4).set(csA));
      ld(JOB.transB).if(
        () => {
          ld(JOB.transA).if(() => {
            // copy Aᵀ's rows m0..m1 to packA as contiguous rows: packA[(i − m0)·K + k] = A[k, i]
            f.get(rec).i32load(THREAD.packA * 4).set(q);
            f.for(i, () => f.get(m0), () => f.get(m1), 1, () => {
              f.for(k, () => f.i32c(0), () => f.get(K), 1, () => {
                f.get(q).get(i).get(m0).op(Op.i32_sub).get(K).op(Op.i32_mul).get(k).op(Op.i32_add).i32c(2).op(Op.i32_shl).op(Op.i32_add);
                at(Ab, k, lda);
                f.get(i).i32c(2).op(Op.i32_shl).op(Op.i32_add).f32load().f32store();
              });
            });
            // now row i sits at packA − m0·K·4 + i·K·4
            f.get(q).get(m0).get(K).op(Op.i32_mul).i32c(2).op(Op.i32_shl).op(Op.i32_sub).set(Ab);
            f.get(K).i32c(4).op(Op.i32_mul).set(rsA);
          });
          // B in blocks of JB rows, each read from memory once: every group of A rows then
          // takes the block from L1 (groups outermost would read all of B once per group)
          f.for(j0, () => f.get(n0), () => f.get(n1), JB, () => {
            f.get(j0).i32c(JB).op(Op.i32_add).tee(jEnd);
            f.get(n1).get(jEnd).get(n1).op(Op.i32_lt_s).op(Op.select).set(jEnd);
            f.get(m0).set(i);
            for (const g of GROUPS) {
              whileRoom(f, i, m1, g, () => {
                for (let a = 0; a < g; a++) at(Ab, i, rsA, a), f.set(pa[a]);
                f.get(j0).set(j);
                whileRoom(f, j, jEnd, 8 / g, () => dots(g, 8 / g));
                whileRoom(f, j, jEnd, 1, () => dots(g, 1));
              });
            }
          });
        },
        () => {
          f.get(n1).get(n0).op(Op.i32_sub).set(len);
          f.get(m0).set(i);
          for (const g of GROUPS) whileRoom(f, i, m1, g, () => axpyRows(g));
        },
      );
    });
  });
}
