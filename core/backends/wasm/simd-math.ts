// f32x4 building blocks for the element-wise and row kernels: exp, horizontal sum/max, and a
// loop over a row that runs 4 lanes at a time and the tail through the same vector code (one
// lane used), so every element sees the same arithmetic.

import { Op, Simd, v128, i32, type FuncBuilder } from "./asm.ts";

// exp(x) = 2ⁿ · eʳ with n = round(x·log₂e) and r = x − n·ln2 ∈ [−ln2/2, ln2/2]. ln2 is split in
// a short high part (exact n·C1 for |n| < 2¹⁵) and a correction, so r keeps its low bits. eʳ is
// 1 + r + r²·P(r) with the degree-5 minimax P of the Cephes expf. 2ⁿ is built in the exponent
// field, in two halves 2^⌊n/2⌋·2^(n−⌊n/2⌋) so that n from −150 to 128 neither overflows the
// field nor flushes gradual underflow: results are correct down to the denormals, +inf past
// 88.72, 0 below −103.97, NaN for NaN.
const LOG2E = 1.4426950408889634;
const C1 = 0.693359375;
const C2 = -2.12194440e-4;
const P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
const X_MAX = 89; // past ln(FLT_MAX) ≈ 88.72: the product overflows to +inf by itself
const X_MIN = -104; // below ln(2⁻¹⁴⁹) ≈ −103.28: the product rounds to 0 by itself
const MAGIC = 12582912; // 1.5·2²³
const MAGIC_BITS = 0x4b400000;

/** v128 locals used by emitExp; make them once per function. */
export interface ExpLocals {
  x: number;
  n: number;
  r: number;
  p: number;
  k: number;
}

export function expLocals(f: FuncBuilder): ExpLocals {
  return { x: f.local(v128), n: f.local(v128), r: f.local(v128), p: f.local(v128), k: f.local(v128) };
}

/** Pops a v128 of x and pushes exp(x), lane by lane. */
export function emitExp(f: FuncBuilder, L: ExpLocals): void {
  // clamp with pmin/pmax (single minps/maxps on x64; a NaN x passes through as NaN)
  f.f32x4c(X_MAX).simd(Simd.f32x4_pmin).f32x4c(X_MIN).simd(Simd.f32x4_pmax).set(L.x);
  // n = round(x·log₂e) by adding 1.5·2²³: the sum's low mantissa bits hold n as an integer
  f.get(L.x).f32x4c(LOG2E).simd(Simd.f32x4_mul).f32x4c(MAGIC).simd(Simd.f32x4_add).tee(L.k);
  f.f32x4c(MAGIC).simd(Simd.f32x4_sub).set(L.n);
  // r = (x − n·C1) − n·C2
  f.get(L.x).get(L.n).f32x4c(C1).simd(Simd.f32x4_mul).simd(Simd.f32x4_sub);
  f.get(L.n).f32x4c(C2).simd(Simd.f32x4_mul).simd(Simd.f32x4_sub).set(L.r);
  // Horner: P(r)
  f.f32x4c(P[0]);
  for (let i = 1; i < P.length; i++) f.get(L.r).simd(Simd.f32x4_mul).f32x4c(P[i]).simd(Simd.f32x4_add);
  // y = P·r² + r + 1
  f.get(L.r).get(L.r).simd(Simd.f32x4_mul).simd(Simd.f32x4_mul).get(L.r).simd(Simd.f32x4_add).f32x4c(1).simd(Simd.f32x4_add).set(L.p);
  // 2ⁿ = 2^h · 2^(n−h), h = n >> 1; each factor's exponent field is (e + 127) << 23
  f.get(L.k).i32x4c(MAGIC_BITS).simd(Simd.i32x4_sub).set(L.k); // n as i32
  f.get(L.k).i32c(1).simd(Simd.i32x4_shr_s).set(L.n); // h (reusing n's local)
  f.get(L.p);
  f.get(L.n).i32x4c(127).simd(Simd.i32x4_add).i32c(23).simd(Simd.i32x4_shl).simd(Simd.f32x4_mul);
  f.get(L.k).get(L.n).simd(Simd.i32x4_sub).i32x4c(127).simd(Simd.i32x4_add).i32c(23).simd(Simd.i32x4_shl).simd(Simd.f32x4_mul);
}

/** Pops a v128 and pushes the f32 sum of its lanes ((l0 + l2) + (l1 + l3)). */
export function emitHsum(f: FuncBuilder, tmp: number): void {
  f.tee(tmp).get(tmp).get(tmp).shuffle32(2, 3, 0, 1).simd(Simd.f32x4_add).tee(tmp);
  f.get(tmp).get(tmp).shuffle32(1, 0, 3, 2).simd(Simd.f32x4_add).extractLane(0);
}

/** Pops a v128 and pushes the f32 maximum of its lanes (NaN lanes skipped, as pmax does). */
export function emitHmax(f: FuncBuilder, tmp: number): void {
  f.tee(tmp).get(tmp).get(tmp).shuffle32(2, 3, 0, 1).simd(Simd.f32x4_pmax).tee(tmp);
  f.get(tmp).get(tmp).shuffle32(1, 0, 3, 2).simd(Simd.f32x4_pmax).extractLane(0);
}

/**
 * for (j = 0; j < n; j += 4) with `body(vec)`: vec true for full 4-lane steps, false for the
 * tail elements (then j advances by 1 and the body must load/store a single lane). `j` is an
 * i32 local holding the element index.
 */
export function emitRowLoop(f: FuncBuilder, j: number, n: number, body: (vec: boolean) => void): void {
  const n4 = f.local(i32);
  f.get(n).i32c(-4).op(Op.i32_and).set(n4);
  f.for(j, () => f.i32c(0), () => f.get(n4), 4, () => body(true));
  f.for(j, () => f.get(n4), () => f.get(n), 1, () => body(false));
}

/** Pushes the byte address base + j·4. */
export function addr(f: FuncBuilder, base: number, j: number): FuncBuilder {
  return f.get(base).get(j).i32c(2).op(Op.i32_shl).op(Op.i32_add);
}

/** Loads 4 lanes (vec) or one value splatted to 4 lanes (tail) from base + j·4. */
export function load(f: FuncBuilder, base: number, j: number, vec: boolean): FuncBuilder {
  addr(f, base, j);
  return vec ? f.v128load() : f.v128load32splat();
}

/**
 * Stores the v128 on the stack to base + j·4: 4 lanes (vec) or lane 0 (tail). The address must
 * be pushed before the value: call `addr` first, compute, then `store`.
 */
export function store(f: FuncBuilder, vec: boolean): FuncBuilder {
  return vec ? f.v128store() : f.extractLane(0).f32store();
}
