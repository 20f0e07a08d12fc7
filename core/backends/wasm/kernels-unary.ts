// Element-wise unary kernels in f32x4: activations (GELU both forms, tanh, sigmoid, relu) with
// the gradients autodiff asks for (geluGrad, geluTanhGrad, step), and neg, abs, sign, sqrt,
// rsqrt, log. Each is a row job over flat rows of `cols` elements, like ew_exp: every element
// goes through the same vector code (the tail one lane at a time), so results do not depend on
// how the rows are split between threads.
//
// Special values follow the float64 formulas the cpu kernels evaluate (core/math.ts): ±inf and
// NaN go through the same arithmetic, so e.g. gelu(−inf) = −inf·0 = NaN as there. One exception:
// relu(−inf) = 0 here (pmax), where the cpu's x·[x>0] gives NaN.
//
// Errors measured against float64 (spec/core/wasm-unary.spec.ts): sqrt 0.5 ulp, log 0.8,
// tanh 1.3, rsqrt 1.5, sigmoid 2.3; gelu and geluTanh within 2e-6 relative for |x| ≤ 5 and
// 1.1e-5 in the far left tail (where the functions amplify input rounding by ~x²); the two
// gradients within 2e-7 absolute. No size threshold sends small inputs elsewhere, so a value's
// result never depends on the tensor it sits in.

import { i32, Op, Simd, v128, type FuncBuilder, type ModuleBuilder } from "./asm.ts";
import { emitRowsJob } from "./jobs.ts";
import { addr, emitExp, emitRowLoop, expLocals, load, store } from "./simd-math.ts";

export const UNARY_KERNELS = [
  "neg", "abs", "sign", "sqrt", "rsqrt", "log", "tanh", "sigmoid", "relu", "step",
  "gelu", "geluGrad", "geluTanh", "geluTanhGrad",
] as const;
export type UnaryKernel = (typeof UNARY_KERNELS)[number];

export const unaryJobName = (op: UnaryKernel): string => `un_${op}_job`;

/** Allocates its locals in `f`, then returns code that pushes op(x) for the v128 local x. */
type OpEmitter = (f: FuncBuilder) => (x: number) => void;

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

// erfc(z) ≈ t·exp(−z² + Q(t)), t = 1/(1 + z/2), z ≥ 0: the Chebyshev fit of Numerical Recipes
// §6.2 (fractional error < 1.2e-7 for all z ≥ 0); Q's coefficients, lowest degree first.
const ERFC_Q = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];
// tanh(a) ≈ a + a³·P(a²) for 0 ≤ a < 0.625 (the Cephes tanhf minimax fit), lowest first.
const TANH_P = [-3.33332819422e-1, 1.33314422036e-1, -5.37397155531e-2, 2.06390887954e-2, -5.70498872745e-3];
// log(1 + z) ≈ z − z²/2 + z³·P(z) for √½ − 1 ≤ z < √2 − 1 (the Cephes logf fit), lowest first.
const LOG_P = [3.3333331174e-1, -2.4999993993e-1, 2.0000714765e-1, -1.6668057665e-1, 1.4249322787e-1, -1.2420140846e-1, 1.1676998740e-1, -1.1514610310e-1, 7.0376836292e-2];
// ln 2 split as in simd-math.ts: a short high part (e·LN2_HI exact for |e| < 2¹⁵) and the rest.
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
const FLT_MIN = 1.17549435e-38; // smallest normal float

const mul = (f: FuncBuilder) => f.simd(Simd.f32x4_mul);
const add = (f: FuncBuilder) => f.simd(Simd.f32x4_add);
const sub = (f: FuncBuilder) => f.simd(Simd.f32x4_sub);
const div = (f: FuncBuilder) => f.simd(Simd.f32x4_div);

/** Locals t², t⁴, … up to t^top for `estrin`, and the code that fills them from t. */
function powers(f: FuncBuilder, top: 4 | 8) {
  const p: Record<number, number> = {};
  for (let k = 2; k <= top; k *= 2) p[k] = f.local(v128);
  const fill = (t: number) => {
    f.get(t).get(t);
    mul(f);
    for (let k = 2; k < top; k *= 2) {
      f.tee(p[k]).get(p[k]);
      mul(f);
    }
    f.set(p[top]);
  };
  return { p, fill };
}

/**
 * Pushes c₀ + c₁t + … by Estrin's scheme: P = L(t) + tᵐ·H(t) with m the largest power of two
 * below the length, recursively. The halves are independent, so the dependency chain is about
 * 2·log₂(degree) operations instead of Horner's 2·degree, which is what bounds these kernels.
 * `c[k]` multiplies tᵏ; needs the powers filled.
 */
function estrin(f: FuncBuilder, t: number, pw: Record<number, number>, c: number[]) {
  if (c.length === 1) {
    f.f32x4c(c[0]);
    return;
  }
  if (c.length === 2) {
    f.f32x4c(c[1]).get(t);
    mul(f).f32x4c(c[0]);
    add(f);
    return;
  }
  let m = 2;
  while (2 * m < c.length) m *= 2;
  if (!(m in pw)) throw new Error(`kernels-unary: estrin needs t^${m}`);
  estrin(f, t, pw, c.slice(0, m));
  estrin(f, t, pw, c.slice(m));
  f.get(pw[m]);
  mul(f);
  add(f);
}

/** Pops a mask and pushes v1 where it is set, v2 elsewhere (v1 and v2 pushed by callbacks). */
function select(f: FuncBuilder, v1: () => void, v2: () => void, mask: () => void) {
  v1();
  v2();
  mask();
  f.simd(Simd.v128_bitselect);
}

/**
 * Φ(x) = ½·erfc(−x/√2) into local `phi`, with H = ½·erfc(|x|/√2) = Φ(−|x|) from the fit, so
 * that Φ(x) = H for x < 0 (no cancellation in the left tail) and 1 − H otherwise. The fit's
 * −z² is computed as −x²·½ (one rounding; `hx2` gets x²/2 for the caller).
 */
function emitPhi(f: FuncBuilder, x: number, t: number, hx2: number, phi: number, E: ReturnType<typeof expLocals>, P: ReturnType<typeof powers>) {
  f.f32x4c(1).f32x4c(1).get(x).simd(Simd.f32x4_abs).f32x4c(0.5 * SQRT1_2);
  mul(f);
  add(f);
  div(f).set(t);
  f.get(x).get(x);
  mul(f).f32x4c(0.5);
  mul(f).set(hx2);
  P.fill(t);
  estrin(f, t, P.p, ERFC_Q);
  f.get(hx2);
  sub(f);
  emitExp(f, E);
  f.get(t);
  mul(f).f32x4c(0.5);
  mul(f).set(phi); // H
  select(f, () => f.get(phi), () => f.f32x4c(1).get(phi).simd(Simd.f32x4_sub), () => f.get(x).f32x4c(0).simd(Simd.f32x4_lt));
  f.set(phi);
}

/**
 * σ(v) into `s` and e = exp(−|v|) into `e`, for v = 2·√(2/π)·(x + 0.044715·x³) (so that
 * ½(1 + tanh(v/2)) = σ(v)): σ(v) = 1/(1 + e) for v ≥ 0 and e/(1 + e) below, never overflowing.
 */
function emitTanhGate(f: FuncBuilder, x: number, v: number, e: number, s: number, E: ReturnType<typeof expLocals>) {
  f.get(x).get(x).get(x);
  mul(f).f32x4c(2 * GELU_C * GELU_K);
  mul(f).f32x4c(2 * GELU_C);
  add(f);
  mul(f).tee(v);
  f.simd(Simd.f32x4_abs).simd(Simd.f32x4_neg);
  emitExp(f, E);
  f.set(e);
  select(f, () => f.get(e), () => f.f32x4c(1), () => f.get(v).f32x4c(0).simd(Simd.f32x4_lt));
  f.get(e).f32x4c(1);
  add(f);
  div(f).set(s);
}

const OPS: Record<UnaryKernel, OpEmitter> = {
  neg: (f) => (x) => f.get(x).simd(Simd.f32x4_neg),
  abs: (f) => (x) => f.get(x).simd(Simd.f32x4_abs),
  // [x > 0] − [x < 0] as the bits of 1.0 and −1.0 under the compare masks (NaN → 0, as the cpu)
  sign: (f) => (x) => {
    f.get(x).f32x4c(0).simd(Simd.f32x4_gt).f32x4c(1).simd(Simd.v128_and);
    f.get(x).f32x4c(0).simd(Simd.f32x4_lt).f32x4c(-1).simd(Simd.v128_and).simd(Simd.v128_or);
  },
  sqrt: (f) => (x) => f.get(x).simd(Simd.f32x4_sqrt),
  // two roundings (sqrt, then 1/·): within 1.5 ulp
  rsqrt: (f) => (x) => {
    f.f32x4c(1).get(x).simd(Simd.f32x4_sqrt);
    div(f);
  },
  // pmax(x, 0) = x < 0 ? 0 : x: one maxps; NaN stays NaN
  relu: (f) => (x) => f.get(x).f32x4c(0).simd(Simd.f32x4_pmax),
  step: (f) => (x) => f.get(x).f32x4c(0).simd(Simd.f32x4_gt).f32x4c(1).simd(Simd.v128_and),

  // σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) for x < 0 with e = exp(−|x|): exact down to the
  // denormals on both sides (1/(1 + exp(−x)) would return 0 below x ≈ −88.7).
  sigmoid: (f) => {
    const E = expLocals(f), e = f.local(v128);
    return (x) => {
      f.get(x).simd(Simd.f32x4_abs).simd(Simd.f32x4_neg);
      emitExp(f, E);
      f.set(e);
      select(f, () => f.get(e), () => f.f32x4c(1), () => f.get(x).f32x4c(0).simd(Simd.f32x4_lt));
      f.get(e).f32x4c(1);
      add(f);
      div(f);
    };
  },

  // tanh on a = |x| with the sign put back: a + a³·P(a²) below 0.625 (where 1 − 2/(e²ᵃ + 1)
  // would cancel), 1 − 2/(e²ᵃ + 1) above (→ 1 once e²ᵃ overflows).
  tanh: (f) => {
    const E = expLocals(f), P = powers(f, 4), [a, z] = [f.local(v128), f.local(v128)];
    return (x) => {
      f.get(x).simd(Simd.f32x4_abs).tee(a).get(a);
      mul(f).set(z);
      const small = () => {
        P.fill(z);
        estrin(f, z, P.p, TANH_P);
        f.get(z);
        mul(f).get(a);
        mul(f).get(a);
        add(f);
      };
      const large = () => {
        f.f32x4c(1).f32x4c(2).get(a).get(a);
        add(f);
        emitExp(f, E);
        f.f32x4c(1);
        add(f);
        div(f);
        sub(f);
      };
      // NaN fails the compare and goes the exp way, which keeps it NaN
      select(f, small, large, () => f.get(a).f32x4c(0.625).simd(Simd.f32x4_lt));
      f.get(x).f32x4c(-0).simd(Simd.v128_and).simd(Simd.v128_or);
    };
  },

  // x·Φ(x)
  gelu: (f) => {
    const E = expLocals(f), P = powers(f, 8), [t, hx2, phi] = [f.local(v128), f.local(v128), f.local(v128)];
    return (x) => {
      emitPhi(f, x, t, hx2, phi, E, P);
      f.get(x).get(phi);
      mul(f);
    };
  },
  // Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π); ±inf give inf·0 = NaN as the float64 formula does.
  geluGrad: (f) => {
    const E = expLocals(f), P = powers(f, 8), [t, hx2, phi] = [f.local(v128), f.local(v128), f.local(v128)];
    return (x) => {
      emitPhi(f, x, t, hx2, phi, E, P);
      f.get(phi).get(x).get(hx2).simd(Simd.f32x4_neg);
      emitExp(f, E);
      f.f32x4c(INV_SQRT_2PI);
      mul(f);
      mul(f);
      add(f);
    };
  },
  // ½x(1 + tanh(u)) = x·σ(2u)
  geluTanh: (f) => {
    const E = expLocals(f), [v, e, s] = [f.local(v128), f.local(v128), f.local(v128)];
    return (x) => {
      emitTanhGate(f, x, v, e, s, E);
      f.get(x).get(s);
      mul(f);
    };
  },
  // d/dx x·σ(v) = σ(v) + x·σ(v)σ(−v)·v′, σ(v)σ(−v) = e/(1 + e)², v′ = 2c(1 + 3·0.044715·x²).
  // x² is capped at 1e8 inside v′ (where e is 0 already) so that a finite x past 1.8e19 gives
  // 0·finite instead of 0·inf; x = ±inf still gives inf·0 = NaN, as the float64 formula.
  geluTanhGrad: (f) => {
    const E = expLocals(f), [v, e, s] = [f.local(v128), f.local(v128), f.local(v128)];
    return (x) => {
      emitTanhGate(f, x, v, e, s, E);
      f.get(s).get(x).get(e).f32x4c(1).get(e);
      add(f).tee(v).get(v); // v is free again: (1 + e)²
      mul(f);
      div(f);
      mul(f);
      f.get(x).get(x);
      mul(f).f32x4c(1e8).simd(Simd.f32x4_pmin).f32x4c(6 * GELU_C * GELU_K);
      mul(f).f32x4c(2 * GELU_C);
      add(f);
      mul(f);
      add(f);
    };
  },

  // log x = e·ln2 + log(1 + z), x = 2ᵉ·(1 + z) with 1 + z ∈ [√½, √2) (the Cephes logf
  // reduction); denormals are scaled by 2²³ first. x = ±0 → −inf, x < 0 → NaN, +inf → +inf.
  log: (f) => {
    const [d, b, ex, m, z] = [f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128)];
    const P = powers(f, 8), z2 = P.p[2];
    return (x) => {
      f.get(x).f32x4c(FLT_MIN).simd(Simd.f32x4_lt).set(d);
      select(f, () => f.get(x).f32x4c(2 ** 23).simd(Simd.f32x4_mul), () => f.get(x), () => f.get(d));
      f.set(b);
      // exponent of m ∈ [½, 1): e = biased − 126, minus 23 for the scaled denormals
      f.get(b).i32c(23).simd(Simd.i32x4_shr_u).i32x4c(126).simd(Simd.i32x4_sub);
      f.get(d).i32x4c(23).simd(Simd.v128_and).simd(Simd.i32x4_sub).set(ex);
      f.get(b).i32x4c(0x007fffff).simd(Simd.v128_and).i32x4c(0x3f000000).simd(Simd.v128_or).set(m);
      // m < √½: use 2m (e − 1), else m; z = that − 1 (exact: Sterbenz)
      f.get(m).f32x4c(SQRT1_2).simd(Simd.f32x4_lt).set(d);
      f.get(ex).get(d).simd(Simd.i32x4_add).simd(Simd.f32x4_convert_i32x4_s).set(ex);
      f.get(m).get(m).get(d).simd(Simd.v128_and);
      add(f).f32x4c(1);
      sub(f).set(z);
      P.fill(z);
      // z + (z³·P(z) + e·LN2_LO − z²/2) + e·LN2_HI
      estrin(f, z, P.p, LOG_P);
      f.get(z);
      mul(f).get(z2);
      mul(f).get(ex).f32x4c(LN2_LO);
      mul(f);
      add(f).get(z2).f32x4c(0.5);
      mul(f);
      sub(f).get(z);
      add(f).get(ex).f32x4c(LN2_HI);
      mul(f);
      add(f);
      // keep it for finite x > 0; otherwise −inf (±0), NaN (x < 0) or x itself (+inf, NaN)
      f.set(z);
      const special = () =>
        select(f, () => f.f32x4c(-Infinity), () => select(f, () => f.f32x4c(NaN), () => f.get(x), () => f.get(x).f32x4c(0).simd(Simd.f32x4_lt)),
          () => f.get(x).f32x4c(0).simd(Simd.f32x4_eq));
      const finitePositive = () => {
        f.get(x).f32x4c(0).simd(Simd.f32x4_gt).get(x).f32x4c(Infinity).simd(Simd.f32x4_lt).simd(Simd.v128_and);
      };
      select(f, () => f.get(z), special, finitePositive);
    };
  },
};

/** un_<op>(r0, r1, x, y, cols, n): y = op(x) on the elements [r0·cols, min(r1·cols, n)). */
function emitUnaryKernel(m: ModuleBuilder, op: UnaryKernel): number {
  return m.func(null, [i32, i32, i32, i32, i32, i32], [], (f) => {
    const [r0, r1, x, y, cols, n] = [0, 1, 2, 3, 4, 5];
    const [start, len, px, py, j] = [f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)];
    const xv = f.local(v128);
    const body = OPS[op](f);
    f.get(r0).get(cols).op(Op.i32_mul).set(start);
    // len = min(r1·cols, n) − start
    f.get(r1).get(cols).op(Op.i32_mul).tee(len).get(n).get(len).get(n).op(Op.i32_lt_s).op(Op.select);
    f.get(start).op(Op.i32_sub).set(len);
    f.get(x).get(start).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(px);
    f.get(y).get(start).i32c(2).op(Op.i32_shl).op(Op.i32_add).set(py);
    emitRowLoop(f, j, len, (vec) => {
      addr(f, py, j);
      load(f, px, j, vec).set(xv);
      body(xv);
      store(f, vec);
    });
  });
}

/** Emits one row job per unary kernel; returns the entry names. */
export function emitUnary(m: ModuleBuilder): string[] {
  return UNARY_KERNELS.map((op) => {
    const name = unaryJobName(op);
    emitRowsJob(m, name, emitUnaryKernel(m, op), [i32, i32, i32, i32]);
    return name;
  });
}
