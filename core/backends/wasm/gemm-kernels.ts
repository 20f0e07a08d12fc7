// Wasm code generation for the blocked matrix multiply (Goto/BLIS structure):
//
//   for jc in N by NC            B panel  [KC × NC] packed once per (jc, pc)   → stays in L3
//     for pc in K by KC
//       pack B(pc, jc)           into NR-wide column panels, zero padded
//       for ic in M by MC        A block  [MC × KC] packed per (jc, pc, ic)    → stays in L2
//         pack A(ic, pc)         into MR-high row panels, zero padded
//         for jr in NC by NR       B micro-panel [KC × NR]                      → stays in L1
//           for ir in MC by MR     micro-kernel: C[MR × NR] (+)= Apanel · Bpanel
//
// The micro-kernel keeps MR × NR/4 f32x4 accumulators in locals (registers after V8's
// register allocation), and per k does NR/4 vector loads of B, MR broadcast loads of A
// (v128.load32_splat) and MR·NR/4 multiply-adds. Transposed layouts cost nothing extra:
// packing reads A and B through (row, column) byte strides, so Aᵀ and Bᵀ only change strides.
//
// Everything here runs inside wasm (also in workers), driven by one exported entry point,
// gemm_job(p), that reads its arguments from a job record in the shared memory.

import { f32, i32, ModuleBuilder, Op, Simd, v128, type FuncBuilder } from "./asm.ts";

export interface GemmConfig {
  /** Micro-tile rows (broadcast A values). */
  MR: number;
  /** Micro-tile columns; a multiple of 4 (f32x4 lanes). */
  NR: number;
  /** Depth of one packed panel: the B micro-panel KC·NR·4 bytes should sit in L1. */
  KC: number;
  /** Rows of the packed A block: MC·KC·4 bytes should sit in L2. */
  MC: number;
  /** Columns of the packed B panel (L3). */
  NC: number;
  /** Unroll of the micro-kernel's k loop. */
  unroll: number;
  /** Use f32x4.relaxed_madd (fused multiply-add) instead of mul + add. */
  fma: boolean;
}

/** Layout of a job record: i32 slots read by gemm_job. Strides are in elements. */
export const JOB = {
  transA: 0, transB: 1, M: 2, N: 3, K: 4,
  a: 5, aBatchStride: 6, lda: 7, b: 8, bBatchStride: 9, ldb: 10, c: 11, cBatchStride: 12, ldc: 13,
  accumulate: 14, batch0: 15, batch1: 16, m0: 17, m1: 18, n0: 19, n1: 20,
  packA: 21, packB: 22, tile: 23,
  slots: 24,
} as const;

/** Bytes of per-thread scratch: packed A block, packed B panel, one edge tile. */
export function scratchBytes(cfg: GemmConfig) {
  const nc = Math.ceil(cfg.NC / cfg.NR) * cfg.NR;
  const mc = Math.ceil(cfg.MC / cfg.MR) * cfg.MR;
  return { packA: mc * cfg.KC * 4, packB: nc * cfg.KC * 4, tile: cfg.MR * cfg.NR * 4 };
}

/** Pushes min(local x, constant y) (signed). */
function minConst(f: FuncBuilder, x: number, y: number) {
  f.get(x).i32c(y).get(x).i32c(y).op(Op.i32_lt_s).op(Op.select);
}

/**
 * micro-kernel(kc, pa, pb, pc, ldcBytes, acc): C[MR×NR] at pc (row stride ldcBytes)
 * = or += Σ_k Apanel[k][0..MR) ⊗ Bpanel[k][0..NR).
 */
function emitMicroKernel(m: ModuleBuilder, cfg: GemmConfig): number {
  const { MR, NR, unroll, fma } = cfg;
  const NV = NR / 4;
  return m.func(null, [i32, i32, i32, i32, i32, i32], [], (f) => {
    const [kc, pa, pb, pc, ldc, acc] = [0, 1, 2, 3, 4, 5];
    const accs: number[][] = [];
    for (let i = 0; i < MR; i++) accs.push(Array.from({ length: NV }, () => f.local(v128)));
    const bv = Array.from({ length: NV }, () => f.local(v128));
    const av = f.local(v128);
    const k = f.local(i32);
    const kEnd = f.local(i32);
    for (const row of accs) for (const r of row) f.f32x4c(0).set(r);

    // One k step at byte offsets (offA, offB) from the current panel pointers.
    const step = (u: number) => {
      for (let j = 0; j < NV; j++) f.get(pb).v128load(u * NR * 4 + j * 16).set(bv[j]);
      for (let i = 0; i < MR; i++) {
        f.get(pa).v128load32splat(u * MR * 4 + i * 4).set(av);
        for (let j = 0; j < NV; j++) {
          if (fma) f.get(av).get(bv[j]).get(accs[i][j]).simd(Simd.f32x4_relaxed_madd).set(accs[i][j]);
          else f.get(accs[i][j]).get(av).get(bv[j]).simd(Simd.f32x4_mul).simd(Simd.f32x4_add).set(accs[i][j]);
        }
      }
    };
    const kLoop = (u: number) => {
      f.block(() =>
        f.loop(() => {
          f.get(k).get(kEnd).op(Op.i32_ge_s).brIf(1);
          for (let s = 0; s < u; s++) step(s);
          f.get(pa).i32c(u * MR * 4).op(Op.i32_add).set(pa);
          f.get(pb).i32c(u * NR * 4).op(Op.i32_add).set(pb);
          f.get(k).i32c(u).op(Op.i32_add).set(k);
          f.br(0);
        }),
      );
    };
    f.i32c(0).set(k);
    f.get(kc).i32c(-unroll).op(Op.i32_and).set(kEnd); // kc rounded down to the unroll (a power of 2)
    kLoop(unroll);
    if (unroll > 1) {
      f.get(kc).set(kEnd);
      kLoop(1);
    }
    // Write back: row i lives at pc + i·ldc.
    const store = (accumulate: boolean) => {
      const row = f.local(i32);
      f.get(pc).set(row);
      for (let i = 0; i < MR; i++) {
        for (let j = 0; j < NV; j++) {
          f.get(row);
          if (accumulate) f.get(row).v128load(j * 16).get(accs[i][j]).simd(Simd.f32x4_add);
          else f.get(accs[i][j]);
          f.v128store(j * 16);
        }
        if (i + 1 < MR) f.get(row).get(ldc).op(Op.i32_add).set(row);
      }
    };
    f.get(acc).if(
      () => store(true),
      () => store(false),
    );
  });
}

/** edge_store(tile, pc, ldcBytes, mr, nr, acc): the valid mr×nr corner of a full tile into C. */
function emitEdgeStore(m: ModuleBuilder, cfg: GemmConfig): number {
  return m.func(null, [i32, i32, i32, i32, i32, i32], [], (f) => {
    const [tile, pc, ldc, mr, nr, acc] = [0, 1, 2, 3, 4, 5];
    const i = f.local(i32);
    const j = f.local(i32);
    const src = f.local(i32);
    const dst = f.local(i32);
    const addr = f.local(i32);
    const v = f.local(f32);
    f.for(i, () => f.i32c(0), () => f.get(mr), 1, () => {
      f.get(tile).get(i).i32c(cfg.NR * 4).op(Op.i32_mul).op(Op.i32_add).set(src);
      f.get(pc).get(i).get(ldc).op(Op.i32_mul).op(Op.i32_add).set(dst);
      f.for(j, () => f.i32c(0), () => f.get(nr), 1, () => {
        f.get(src).get(j).i32c(2).op(Op.i32_shl).op(Op.i32_add).f32load().set(v);
        f.get(dst).get(j).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(addr);
        f.get(acc).if(() => f.get(v).get(addr).f32load().op(Op.f32_add).set(v));
        f.get(addr).get(v).f32store();
      });
    });
  });
}

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
 * panels of W consecutive p: dst[panel][k][0..W), zero padded past np. The two fast cases
 * are the contiguous ones: p contiguous (ps = 4: copy vectors) and k contiguous (ks = 4:
 * transpose 4×4 blocks); anything else is scalar.
 */
function emitPack(m: ModuleBuilder, W: number): number {
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
    const vec = W % 4 === 0;

    f.get(dst).set(out);
    f.for(p0, () => f.i32c(0), () => f.get(np), W, () => {
      f.get(np).get(p0).op(Op.i32_sub).set(rows); // rows left; the panel is full when ≥ W
      f.get(src).get(p0).get(ps).op(Op.i32_mul).op(Op.i32_add).set(base);
      const full = () => f.get(rows).i32c(W).op(Op.i32_ge_s);
      const scalar = () => {
        // dst[k][i] = i < rows ? A(p0 + i, k) : 0
        f.for(k, () => f.i32c(0), () => f.get(kc), 1, () => {
          f.get(out).get(k).i32c(W * 4).op(Op.i32_mul).op(Op.i32_add).set(i);
          for (let ii = 0; ii < W; ii++) {
            f.get(rows).i32c(ii).op(Op.i32_gt_s).if(
              () => f.get(i).get(base).i32c(ii).get(ps).op(Op.i32_mul).op(Op.i32_add).get(k).get(ks).op(Op.i32_mul).op(Op.i32_add).f32load().f32store(ii * 4),
              () => f.get(i).f32c(0).f32store(ii * 4),
            );
          }
        });
      };
      if (!vec) scalar();
      else {
        // p contiguous: each k is W/4 vector copies
        const copy = () => {
          f.for(k, () => f.i32c(0), () => f.get(kc), 1, () => {
            f.get(base).get(k).get(ks).op(Op.i32_mul).op(Op.i32_add).set(i);
            for (let g = 0; g < W / 4; g++) {
              f.get(out).get(k).i32c(W * 4).op(Op.i32_mul).op(Op.i32_add).get(i).v128load(g * 16).v128store(g * 16);
            }
          });
        };
        // k contiguous: 4×4 transposes, then a scalar tail of kc mod 4
        const trans = () => {
          f.get(kc).i32c(-4).op(Op.i32_and).set(k4);
          for (let g = 0; g < W / 4; g++) {
            for (let q = 0; q < 4; q++) f.get(base).i32c(g * 4 + q).get(ps).op(Op.i32_mul).op(Op.i32_add).set(rp[q]);
            f.for(k, () => f.i32c(0), () => f.get(k4), 4, () => {
              for (let q = 0; q < 4; q++) f.get(rp[q]).get(k).i32c(2).op(Op.i32_shl).op(Op.i32_add).v128load().set(r[q]);
              transpose4(f, r, t, c);
              for (let q = 0; q < 4; q++) {
                f.get(out).get(k).i32c(q).op(Op.i32_add).i32c(W * 4).op(Op.i32_mul).op(Op.i32_add).get(c[q]).v128store(g * 16);
              }
            });
          }
          f.for(k, () => f.get(k4), () => f.get(kc), 1, () => {
            for (let ii = 0; ii < W; ii++) {
              f.get(out).get(k).i32c(W * 4).op(Op.i32_mul).op(Op.i32_add);
              f.get(base).i32c(ii).get(ps).op(Op.i32_mul).op(Op.i32_add).get(k).i32c(2).op(Op.i32_shl).op(Op.i32_add).f32load();
              f.f32store(ii * 4);
            }
          });
        };
        full().if(() => {
          f.get(ps).i32c(4).op(Op.i32_eq).if(copy, () => {
            f.get(ks).i32c(4).op(Op.i32_eq).if(trans, scalar);
          });
        }, scalar);
      }
      f.get(out).get(kc).i32c(W * 4).op(Op.i32_mul).op(Op.i32_add).set(out);
    });
  });
}

/** Emits the kernels and the exported driver `gemm_job(p)`. Returns nothing; see JOB. */
export function emitGemm(m: ModuleBuilder, cfg: GemmConfig): void {
  const { MR, NR, KC, MC, NC } = cfg;
  if (NR % 4 !== 0) throw new Error(`gemm: NR must be a multiple of 4, got ${NR}`);
  if ((cfg.unroll & (cfg.unroll - 1)) !== 0) throw new Error(`gemm: unroll must be a power of 2, got ${cfg.unroll}`);
  const kernel = emitMicroKernel(m, cfg);
  const edge = emitEdgeStore(m, cfg);
  const packA = emitPack(m, MR);
  const packB = emitPack(m, NR);
  const NCr = Math.ceil(NC / NR) * NR;
  const MCr = Math.ceil(MC / MR) * MR;

  m.func("gemm_job", [i32], [], (f) => {
    const p = 0;
    const L = () => f.local(i32);
    const [K, a, b, c, ldc, accIn, b1, m0, m1, n0, n1, pA, pB, tile] = Array.from({ length: 14 }, L);
    const [rsA, csA, rsB, csB, aBS, bBS, cBS] = Array.from({ length: 7 }, L);
    const [bi, jc, pc, ic, jr, ir, nc, kc, mc, nr, mr, accF, Ab, Bb, Cb, cp] = Array.from({ length: 16 }, L);
    const ld = (slot: number, into: number) => f.get(p).i32load(slot * 4).set(into);
    ld(JOB.K, K);
    ld(JOB.a, a);
    ld(JOB.b, b);
    ld(JOB.c, c);
    ld(JOB.accumulate, accIn);
    ld(JOB.batch1, b1);
    ld(JOB.m0, m0);
    ld(JOB.m1, m1);
    ld(JOB.n0, n0);
    ld(JOB.n1, n1);
    ld(JOB.packA, pA);
    ld(JOB.packB, pB);
    ld(JOB.tile, tile);
    f.get(p).i32load(JOB.ldc * 4).i32c(4).op(Op.i32_mul).set(ldc);
    for (const [slot, into] of [[JOB.aBatchStride, aBS], [JOB.bBatchStride, bBS], [JOB.cBatchStride, cBS]]) {
      f.get(p).i32load(slot * 4).i32c(4).op(Op.i32_mul).set(into);
    }
    // (row, col) byte strides of A (M×K) and B (K×N) under the transposition flags
    const strides = (trans: number, ldSlot: number, rs: number, cs: number) => {
      f.get(p).i32load(trans * 4).if(
        () => f.i32c(4).set(rs).get(p).i32load(ldSlot * 4).i32c(4).op(Op.i32_mul).set(cs),
        () => f.i32c(4).set(cs).get(p).i32load(ldSlot * 4).i32c(4).op(Op.i32_mul).set(rs),
      );
    };
    strides(JOB.transA, JOB.lda, rsA, csA);
    strides(JOB.transB, JOB.ldb, rsB, csB);

    f.for(bi, () => f.get(p).i32load(JOB.batch0 * 4), () => f.get(b1), 1, () => {
      f.get(a).get(bi).get(aBS).op(Op.i32_mul).op(Op.i32_add).set(Ab);
      f.get(b).get(bi).get(bBS).op(Op.i32_mul).op(Op.i32_add).set(Bb);
      f.get(c).get(bi).get(cBS).op(Op.i32_mul).op(Op.i32_add).set(Cb);
      f.for(jc, () => f.get(n0), () => f.get(n1), NCr, () => {
        f.get(n1).get(jc).op(Op.i32_sub).set(nc);
        minConst(f, nc, NCr);
        f.set(nc);
        f.for(pc, () => f.i32c(0), () => f.get(K), KC, () => {
          f.get(K).get(pc).op(Op.i32_sub).set(kc);
          minConst(f, kc, KC);
          f.set(kc);
          // pack B(pc.., jc..): p runs over columns j (stride csB), k over rows (stride rsB)
          f.get(Bb).get(pc).get(rsB).op(Op.i32_mul).op(Op.i32_add).get(jc).get(csB).op(Op.i32_mul).op(Op.i32_add);
          f.get(csB).get(rsB).get(nc).get(kc).get(pB).call(packB);
          // accumulate unless this is the first k block of a fresh C; with cBatchStride 0 every
          // batch after the first adds into the same C (a sum over the batch)
          f.get(accIn).get(pc).i32c(0).op(Op.i32_gt_s).op(Op.i32_or);
          f.get(cBS).op(Op.i32_eqz).get(bi).get(p).i32load(JOB.batch0 * 4).op(Op.i32_gt_s).op(Op.i32_and).op(Op.i32_or).set(accF);
          f.for(ic, () => f.get(m0), () => f.get(m1), MCr, () => {
            f.get(m1).get(ic).op(Op.i32_sub).set(mc);
            minConst(f, mc, MCr);
            f.set(mc);
            f.get(Ab).get(ic).get(rsA).op(Op.i32_mul).op(Op.i32_add).get(pc).get(csA).op(Op.i32_mul).op(Op.i32_add);
            f.get(rsA).get(csA).get(mc).get(kc).get(pA).call(packA);
            f.for(jr, () => f.i32c(0), () => f.get(nc), NR, () => {
              f.get(nc).get(jr).op(Op.i32_sub).set(nr);
              minConst(f, nr, NR);
              f.set(nr);
              f.for(ir, () => f.i32c(0), () => f.get(mc), MR, () => {
                f.get(mc).get(ir).op(Op.i32_sub).set(mr);
                minConst(f, mr, MR);
                f.set(mr);
                // cp = Cb + ((ic + ir)·ldc + (jc + jr)·4)
                f.get(Cb).get(ic).get(ir).op(Op.i32_add).get(ldc).op(Op.i32_mul).op(Op.i32_add);
                f.get(jc).get(jr).op(Op.i32_add).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(cp);
                // packed panels: A at pA + ir·kc·4, B at pB + jr·kc·4
                const args = () => {
                  f.get(kc);
                  f.get(pA).get(ir).get(kc).op(Op.i32_mul).i32c(2).op(Op.i32_shl).op(Op.i32_add);
                  f.get(pB).get(jr).get(kc).op(Op.i32_mul).i32c(2).op(Op.i32_shl).op(Op.i32_add);
                };
                f.get(mr).i32c(MR).op(Op.i32_ge_s).get(nr).i32c(NR).op(Op.i32_ge_s).op(Op.i32_and).if(
                  () => {
                    args();
                    f.get(cp).get(ldc).get(accF).call(kernel);
                  },
                  () => {
                    args();
                    f.get(tile).i32c(NR * 4).i32c(0).call(kernel);
                    f.get(tile).get(cp).get(ldc).get(mr).get(nr).get(accF).call(edge);
                  },
                );
              });
            });
          });
        });
      });
    });
  });
}
