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

import { Atomic, f32, i32, ModuleBuilder, Op, Simd, v128, type FuncBuilder } from "./asm.ts";
import { emitPack } from "./gemm-pack.ts";
import { emitGemv } from "./gemv-kernels.ts";

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
  /** A·Bᵀ with at most this many rows of C uses the unpacked dot kernels (0: never). */
  dotsMaxM: number;
  /** A·B with at most this many rows of C uses the unpacked axpy kernels (0: never). */
  axpyMaxM: number;
}

/**
 * Layout of a job record (i32 slots) shared by all threads of one gemm. Strides are in
 * elements. C is cut into tasks of mb × nb (× one batch, unless sumBatch: then a task runs
 * every batch in order into the same C); threads claim tasks with an atomic add on `next` and
 * count finished ones in `finished`, which the caller waits on.
 */
export const JOB = {
  transA: 0, transB: 1, M: 2, N: 3, K: 4,
  a: 5, aBatchStride: 6, lda: 7, b: 8, bBatchStride: 9, ldb: 10, c: 11, cBatchStride: 12, ldc: 13,
  accumulate: 14, batch: 15, mb: 16, nb: 17, tilesM: 18, tilesN: 19, tasks: 20, sumBatch: 21,
  next: 22, finished: 23, gemv: 24,
  // 0, or B already packed by gemm_pack_b (batch 1): the block reads its panels instead of packing
  packedB: 25,
  slots: 26,
} as const;

/** Per-thread record (i32 slots): the job it works on and its own packing buffers. */
export const THREAD = { job: 0, packA: 1, packB: 2, tile: 3, slots: 4 } as const;

/** Bytes of per-thread scratch: packed A block, packed B panel, one edge tile. */
export function scratchBytes(cfg: GemmConfig) {
  const nc = Math.ceil(cfg.NC / cfg.NR) * cfg.NR;
  const mc = Math.ceil(cfg.MC / cfg.MR) * cfg.MR;
  return { packA: mc * cfg.KC * 4, packB: nc * cfg.KC * 4, tile: cfg.MR * cfg.NR * 4 };
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

/** min(local x, local-or-constant y) pushed as i32 (signed). */
function minOf(f: FuncBuilder, x: () => void, y: () => void) {
  x();
  y();
  x();
  y();
  f.op(Op.i32_lt_s).op(Op.select);
}

/**
 * gemm_block(job, rec, b0, b1, m0, m1, n0, n1): batches [b0, b1) of the C rectangle
 * [m0, m1) × [n0, n1), all of K, with the packing buffers of thread record `rec`.
 */
function emitBlock(m: ModuleBuilder, cfg: GemmConfig, kernel: number, edge: number, packA: number, packB: number): number {
  const { MR, NR, KC } = cfg;
  const NCr = Math.ceil(cfg.NC / NR) * NR;
  const MCr = Math.ceil(cfg.MC / MR) * MR;
  return m.func(null, [i32, i32, i32, i32, i32, i32, i32, i32], [], (f) => {
    const [job, rec, b0, b1, m0, m1, n0, n1] = [0, 1, 2, 3, 4, 5, 6, 7];
    const L = () => f.local(i32);
    const [K, a, b, c, ldc, accIn, pA, pB, tile, rsA, csA, rsB, csB, aBS, bBS, cBS] = Array.from({ length: 16 }, L);
    const [bi, jc, pc, ic, jr, ir, nc, kc, mc, nr, mr, accF, Ab, Bb, Cb, cp] = Array.from({ length: 16 }, L);
    const [pre, nPad, pScratch] = [L(), L(), L()];
    const ld = (slot: number) => f.get(job).i32load(slot * 4);
    ld(JOB.K).set(K);
    ld(JOB.a).set(a);
    ld(JOB.b).set(b);
    ld(JOB.c).set(c);
    ld(JOB.accumulate).set(accIn);
    ld(JOB.ldc).i32c(4).op(Op.i32_mul).set(ldc);
    ld(JOB.aBatchStride).i32c(4).op(Op.i32_mul).set(aBS);
    ld(JOB.bBatchStride).i32c(4).op(Op.i32_mul).set(bBS);
    ld(JOB.cBatchStride).i32c(4).op(Op.i32_mul).set(cBS);
    f.get(rec).i32load(THREAD.packA * 4).set(pA);
    f.get(rec).i32load(THREAD.packB * 4).set(pScratch);
    ld(JOB.packedB).set(pre);
    // columns of a pre-packed B, rounded up to whole panels
    ld(JOB.N).i32c(NR - 1).op(Op.i32_add).i32c(NR).op(Op.i32_div_u).i32c(NR).op(Op.i32_mul).set(nPad);
    f.get(rec).i32load(THREAD.tile * 4).set(tile);
    // (row, column) byte strides of A (M×K) and B (K×N) under the transposition flags
    const strides = (trans: number, ldSlot: number, rs: number, cs: number) => {
      ld(trans).if(
        () => f.i32c(4).set(rs).get(job).i32load(ldSlot * 4).i32c(4).op(Op.i32_mul).set(cs),
        () => f.i32c(4).set(cs).get(job).i32load(ldSlot * 4).i32c(4).op(Op.i32_mul).set(rs),
      );
    };
    strides(JOB.transA, JOB.lda, rsA, csA);
    strides(JOB.transB, JOB.ldb, rsB, csB);
    const sub = (x: number, y: number) => () => f.get(x).get(y).op(Op.i32_sub);
    const cst = (v: number) => () => f.i32c(v);

    f.for(bi, () => f.get(b0), () => f.get(b1), 1, () => {
      f.get(a).get(bi).get(aBS).op(Op.i32_mul).op(Op.i32_add).set(Ab);
      f.get(b).get(bi).get(bBS).op(Op.i32_mul).op(Op.i32_add).set(Bb);
      f.get(c).get(bi).get(cBS).op(Op.i32_mul).op(Op.i32_add).set(Cb);
      f.for(jc, () => f.get(n0), () => f.get(n1), NCr, () => {
        minOf(f, sub(n1, jc), cst(NCr));
        f.set(nc);
        f.for(pc, () => f.i32c(0), () => f.get(K), KC, () => {
          minOf(f, sub(K, pc), cst(KC));
          f.set(kc);
          f.get(pre).if(
            // packed once by gemm_pack_b: block pc starts at pc·nPad, its panel jc/NR at jc·kc
            () => f.get(pre).get(pc).get(nPad).op(Op.i32_mul).get(jc).get(kc).op(Op.i32_mul).op(Op.i32_add).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(pB),
            () => {
              // pack B(pc.., jc..): p runs over columns j (stride csB), k over rows (stride rsB)
              f.get(pScratch).set(pB);
              f.get(Bb).get(pc).get(rsB).op(Op.i32_mul).op(Op.i32_add).get(jc).get(csB).op(Op.i32_mul).op(Op.i32_add);
              f.get(csB).get(rsB).get(nc).get(kc).get(pB).call(packB);
            },
          );
          // accumulate unless this is the first k block of a fresh C; with cBatchStride 0 every
          // batch after the first adds into the same C (a sum over the batch)
          f.get(accIn).get(pc).i32c(0).op(Op.i32_gt_s).op(Op.i32_or);
          f.get(cBS).op(Op.i32_eqz).get(bi).get(b0).op(Op.i32_gt_s).op(Op.i32_and).op(Op.i32_or).set(accF);
          f.for(ic, () => f.get(m0), () => f.get(m1), MCr, () => {
            minOf(f, sub(m1, ic), cst(MCr));
            f.set(mc);
            f.get(Ab).get(ic).get(rsA).op(Op.i32_mul).op(Op.i32_add).get(pc).get(csA).op(Op.i32_mul).op(Op.i32_add);
            f.get(rsA).get(csA).get(mc).get(kc).get(pA).call(packA);
            f.for(jr, () => f.i32c(0), () => f.get(nc), NR, () => {
              minOf(f, sub(nc, jr), cst(NR));
              f.set(nr);
              f.for(ir, () => f.i32c(0), () => f.get(mc), MR, () => {
                minOf(f, sub(mc, ir), cst(MR));
                f.set(mr);
                // cp = Cb + (ic + ir)·ldc + (jc + jr)·4
                f.get(Cb).get(ic).get(ir).op(Op.i32_add).get(ldc).op(Op.i32_mul).op(Op.i32_add);
                f.get(jc).get(jr).op(Op.i32_add).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(cp);
                // packed panels: A at pA + ir·kc·4, B at pB + jr·kc·4
                const panels = () => {
                  f.get(kc);
                  f.get(pA).get(ir).get(kc).op(Op.i32_mul).i32c(2).op(Op.i32_shl).op(Op.i32_add);
                  f.get(pB).get(jr).get(kc).op(Op.i32_mul).i32c(2).op(Op.i32_shl).op(Op.i32_add);
                };
                f.get(mr).i32c(MR).op(Op.i32_eq).get(nr).i32c(NR).op(Op.i32_eq).op(Op.i32_and).if(
                  () => {
                    panels();
                    f.get(cp).get(ldc).get(accF).call(kernel);
                  },
                  () => {
                    // a partial tile: compute the full tile aside, then store its valid corner
                    panels();
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

/** Emits the kernels and the exported entry point `gemm_job(threadRecord) → tasks run`. */
export function emitGemm(m: ModuleBuilder, cfg: GemmConfig): void {
  if (cfg.NR % 4 !== 0) throw new Error(`gemm: NR must be a multiple of 4, got ${cfg.NR}`);
  if ((cfg.unroll & (cfg.unroll - 1)) !== 0) throw new Error(`gemm: unroll must be a power of 2, got ${cfg.unroll}`);
  const kernel = emitMicroKernel(m, cfg);
  const edge = emitEdgeStore(m, cfg);
  const packA = emitPack(m, cfg.MR);
  const packB = emitPack(m, cfg.NR);
  const block = emitBlock(m, cfg, kernel, edge, packA, packB);
  const gemv = emitGemv(m);

  // gemm_pack_b(b, csB, rsB, N, K, dst): all of B (element (k, j) at b + k·rsB + j·csB) in the
  // order gemm_block packs it, KC rows at a time: block pc at dst + pc·nPad·4 (nPad = N rounded
  // up to NR), its panels of NR columns one after another. A job whose packedB points here
  // skips the packing: a weight that a decoding loop multiplies every step is packed once.
  m.func("gemm_pack_b", [i32, i32, i32, i32, i32, i32], [], (f) => {
    const [b, csB, rsB, N, K, dst] = [0, 1, 2, 3, 4, 5];
    const [pc, kc, nPad] = [f.local(i32), f.local(i32), f.local(i32)];
    f.get(N).i32c(cfg.NR - 1).op(Op.i32_add).i32c(cfg.NR).op(Op.i32_div_u).i32c(cfg.NR).op(Op.i32_mul).set(nPad);
    f.for(pc, () => f.i32c(0), () => f.get(K), cfg.KC, () => {
      minOf(f, () => f.get(K).get(pc).op(Op.i32_sub), () => f.i32c(cfg.KC));
      f.set(kc);
      f.get(b).get(pc).get(rsB).op(Op.i32_mul).op(Op.i32_add);
      f.get(csB).get(rsB).get(N).get(kc);
      f.get(dst).get(pc).get(nPad).op(Op.i32_mul).i32c(2).op(Op.i32_shl).op(Op.i32_add);
      f.call(packB);
    });
  });

  // Claims tasks until none are left; the thread that finishes the last one wakes the caller.
  m.func("gemm_job", [i32], [i32], (f) => {
    const rec = 0;
    const [job, tasks, t, per, rest, tilesN, b0, b1, m0, n0, mb, nb, mine] = Array.from({ length: 13 }, () => f.local(i32));
    const ld = (slot: number) => f.get(job).i32load(slot * 4);
    f.get(rec).i32load(THREAD.job * 4).set(job);
    ld(JOB.tasks).set(tasks);
    ld(JOB.tilesN).set(tilesN);
    ld(JOB.mb).set(mb);
    ld(JOB.nb).set(nb);
    ld(JOB.tilesM).get(tilesN).op(Op.i32_mul).set(per); // tasks per batch
    f.block(() =>
      f.loop(() => {
        f.get(job).i32c(1).atomic(Atomic.i32_atomic_rmw_add, JOB.next * 4).tee(t);
        f.get(tasks).op(Op.i32_ge_u).brIf(1);
        // task t → (batches, row tile, column tile)
        ld(JOB.sumBatch).if(
          () => {
            f.i32c(0).set(b0);
            ld(JOB.batch).set(b1);
            f.get(t).set(rest);
          },
          () => {
            f.get(t).get(per).op(Op.i32_div_u).tee(b0).i32c(1).op(Op.i32_add).set(b1);
            f.get(t).get(per).op(Op.i32_rem_u).set(rest);
          },
        );
        f.get(rest).get(tilesN).op(Op.i32_div_u).get(mb).op(Op.i32_mul).set(m0);
        f.get(rest).get(tilesN).op(Op.i32_rem_u).get(nb).op(Op.i32_mul).set(n0);
        const args = () => {
          f.get(job).get(rec).get(b0).get(b1).get(m0);
          minOf(f, () => f.get(m0).get(mb).op(Op.i32_add), () => ld(JOB.M));
          f.get(n0);
          minOf(f, () => f.get(n0).get(nb).op(Op.i32_add), () => ld(JOB.N));
        };
        ld(JOB.gemv).if(() => (args(), f.call(gemv)), () => (args(), f.call(block)));
        f.get(mine).i32c(1).op(Op.i32_add).set(mine);
        // finished += 1; the last one notifies whoever waits on it
        f.get(job).i32c(1).atomic(Atomic.i32_atomic_rmw_add, JOB.finished * 4).i32c(1).op(Op.i32_add);
        f.get(tasks).op(Op.i32_eq).if(() => {
          f.get(job).i32c(JOB.finished * 4).op(Op.i32_add).i32c(-1).atomic(Atomic.memory_atomic_notify).op(Op.drop);
        });
        f.br(0);
      }),
    );
    f.get(mine); // tasks this thread ran
  });
}
