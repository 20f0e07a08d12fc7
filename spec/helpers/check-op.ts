// checkOp: one line per op. Forward against an independent float64 reference, and the autodiff
// gradient against central finite differences of that reference (in float64), on every backend.
import { Generator, setBackend, tensor, type Backend, type Tensor } from "../../core/index.ts";
import { testBackends } from "./backends.ts";
import { nd, size, type Nd } from "./nd.ts";

export interface InputSpec {
  shape: number[];
  dtype?: "float32" | "int32";
  // value range for floats (uniform) or ints [low, high)
  low?: number;
  high?: number;
  // Take part in the gradient check (floats only; default true).
  grad?: boolean;
  // Explicit values instead of random ones.
  values?: number[];
}

export interface CheckOptions {
  atol?: number;
  rtol?: number;
  gradAtol?: number;
  gradRtol?: number;
  grad?: boolean; // false for non-differentiable ops
  seed?: number;
  fdStep?: number;
  // Per-backend loosening where a backend's float math differs (e.g. GPU exp approximations).
  tolerance?: Record<string, { atol?: number; rtol?: number }>;
  // The gradient of L = Σ w ⊙ f(x) written out, instead of finite differences: for inputs where
  // differences cannot resolve the function (x = 1e30: a step below an ulp changes nothing, a
  // larger one overflows exp) or where it is defined only as a limit (−∞ inputs). One entry per
  // input; null for inputs without a gradient.
  gradRef?: (w: Nd, ...xs: Nd[]) => (Nd | null)[];
}

type Spec = number[] | InputSpec;
const asSpec = (s: Spec): InputSpec => (Array.isArray(s) ? { shape: s } : s);

function makeValues(spec: InputSpec, g: Generator): number[] {
  if (spec.values) {
    if (spec.values.length !== size(spec.shape)) throw new Error(`checkOp: values length ${spec.values.length} vs shape [${spec.shape}]`);
    return spec.values.slice();
  }
  const n = size(spec.shape);
  const lo = spec.low ?? (spec.dtype === "int32" ? 0 : -2), hi = spec.high ?? (spec.dtype === "int32" ? 4 : 2);
  return Array.from({ length: n }, () => (spec.dtype === "int32" ? g.randint(lo, hi) : Math.fround(lo + (hi - lo) * g.random())));
}

function close(got: ArrayLike<number>, want: Float64Array, atol: number, rtol: number): string | null {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const a = got[i], b = want[i];
    if (Number.isNaN(b) && Number.isNaN(a)) continue;
    if (a === b) continue; // covers ±Infinity
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) return `index ${i}: got ${a}, want ${b} (atol ${atol}, rtol ${rtol})`;
  }
  return null;
}

export async function checkOp(
  name: string,
  specs: Spec[],
  fn: (...xs: Tensor[]) => Tensor,
  ref: (...xs: Nd[]) => Nd,
  opts: CheckOptions = {},
): Promise<void> {
  const seed = opts.seed ?? 1234;
  const g = new Generator(seed);
  const ss = specs.map(asSpec);
  const vals = ss.map((s) => makeValues(s, g));
  const refIn = ss.map((s, i) => nd(s.shape.slice(), vals[i]));
  const want = ref(...refIn);
  const doGrad = opts.grad ?? true;
  // Cotangent w: the gradient checked is that of L = Σ w ⊙ f(x).
  const w = Array.from({ length: want.data.length }, () => Math.fround(g.random() * 2 - 1));
  const L = (xs: Nd[]): number => {
    const y = ref(...xs);
    let s = 0;
    for (let i = 0; i < y.data.length; i++) s += w[i] * y.data[i];
    return s;
  };
  // Finite differences in float64 on the reference (step relative to the value), or gradRef.
  const analytic = doGrad && opts.gradRef ? opts.gradRef(nd(want.shape.slice(), w), ...refIn) : null;
  const fd: (Float64Array | null)[] = ss.map((s, k) => {
    if (!doGrad || s.dtype === "int32" || s.grad === false) return null;
    if (analytic) {
      const a = analytic[k];
      if (!a || a.data.length !== vals[k].length) throw new Error(`checkOp ${name}: gradRef gave no gradient of length ${vals[k].length} for input ${k}`);
      return a.data;
    }
    const out = new Float64Array(vals[k].length);
    for (let i = 0; i < out.length; i++) {
      // At ±∞ the step is absolute: ∞ ± h = ∞, so the expected gradient is 0 (a masked logit
      // takes no part); where the limit is not 0, pass gradRef.
      const v = vals[k][i];
      const h = (opts.fdStep ?? 1e-6) * (Number.isFinite(v) ? Math.max(1, Math.abs(v)) : 1);
      const plus = refIn.map((x) => nd(x.shape, x.data)), minus = refIn.map((x) => nd(x.shape, x.data));
      plus[k].data[i] += h;
      minus[k].data[i] -= h;
      out[i] = (L(plus) - L(minus)) / (2 * h);
    }
    return out;
  });

  for (const { cfg, backend } of await testBackends()) {
    const where = `${name} on ${cfg.label} (seed ${seed})`;
    const tol = opts.tolerance?.[cfg.label] ?? opts.tolerance?.[cfg.name] ?? {};
    const atol = tol.atol ?? opts.atol ?? 1e-5, rtol = tol.rtol ?? opts.rtol ?? 1e-4;
    const xs = ss.map((s, i) => tensor(vals[i], {
      shape: s.shape, dtype: s.dtype ?? "float32", requiresGrad: fd[i] !== null, backend,
    }));
    await setBackend(cfg.name, cfg.options); // ops that create constants use the current backend
    try {
      const y = fn(...xs);
      if (y.shape.join() !== want.shape.join()) throw new Error(`${where}: shape [${y.shape}] vs reference [${want.shape}]`);
      const err = close(await y.data(), want.data, atol, rtol);
      if (err) throw new Error(`${where}: forward mismatch at ${err}`);
      if (fd.some((f) => f !== null)) {
        const wt = tensor(w, { shape: want.shape, backend });
        y.mul(wt).sum().backward();
        for (let k = 0; k < xs.length; k++) {
          const f = fd[k];
          if (!f) continue;
          const gk = xs[k].grad;
          if (!gk) throw new Error(`${where}: input ${k} got no gradient`);
          // finite differences need loose tolerances; a written-out gradient gets the forward's
          const gerr = close(await gk.data(), f, opts.gradAtol ?? (analytic ? atol : 2e-3), opts.gradRtol ?? (analytic ? rtol : 2e-3));
          if (gerr) throw new Error(`${where}: gradient of input ${k} mismatch at ${gerr}`);
        }
      }
    } finally {
      await setBackend("cpu");
    }
    void (backend as Backend);
  }
}

// Gradient check for composite functions (layers, models) with float32 finite differences on
// the backend itself: looser, but needs no reference implementation.
export async function checkGrad(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: { eps?: number; atol?: number; rtol?: number } = {},
): Promise<void> {
  const eps = opts.eps ?? 1e-2, atol = opts.atol ?? 1e-2, rtol = opts.rtol ?? 5e-2;
  for (const x of inputs) { x.zeroGrad(); if (!x.requiresGrad) x.requiresGrad_(true); }
  fn(...inputs).sum().backward();
  for (let k = 0; k < inputs.length; k++) {
    const x = inputs[k];
    const base = Float32Array.from(await x.data());
    const got = await x.grad!.data();
    for (let i = 0; i < base.length; i++) {
      const eval1 = async (v: number): Promise<number> => {
        const d = base.slice();
        d[i] = v;
        const xi = tensor(d, { shape: x.shape, backend: x.backend });
        const args = inputs.map((t, j) => (j === k ? xi : t.detach()));
        return (await fn(...args).sum().data())[0];
      };
      const num = ((await eval1(base[i] + eps)) - (await eval1(base[i] - eps))) / (2 * eps);
      if (!(Math.abs(got[i] - num) <= atol + rtol * Math.abs(num))) {
        throw new Error(`checkGrad: input ${k} element ${i}: autodiff ${got[i]} vs finite difference ${num}`);
      }
    }
  }
}
