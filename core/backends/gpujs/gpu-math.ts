// Helper functions that kernels call. gpu.js translates them to WGSL / WebAssembly along with
// the kernel, so they are written in the subset it understands: numbers, if, for, Math.*.
// No negative literals anywhere in kernel source: gpu.js's WGSL printer turns `x - -0.9` into
// `x--0.9`, which does not parse; constants are rearranged to be subtracted instead.

// ⌊a / b⌋ for integers 0 ≤ a < 2^24, b ≥ 1, computed in float32. The float quotient may be
// off by one ulp (WGSL allows 2.5 ulp for division) and land on the wrong side of an
// integer; the remainder test moves it back, since a − q·b is exact in this range.
export function floorDiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  const r = a - q * b;
  if (r < 0) {
    q -= 1;
  }
  if (r >= b) {
    q += 1;
  }
  return q;
}

// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7, below float32 resolution near 1):
// erf(x) = 1 − (a1 t + a2 t² + a3 t³ + a4 t⁴ + a5 t⁵) e^(−x²), t = 1 / (1 + p|x|),
// with a2 and a4 negative, written here as subtractions in Horner form.
export function erfApprox(x: number): number {
  const ax = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * ax);
  const poly = t * (0.254829592 - t * (0.284496736 - t * (1.421413741 - t * (1.453152027 - t * 1.061405429))));
  const e = 1 - poly * Math.exp(0 - ax * ax);
  if (x < 0) {
    return 0 - e;
  }
  return e;
}

// tanh via e^(−2|x|), which never overflows (the built-in is NaN for large |x| on some drivers).
export function tanhSafe(x: number): number {
  const e = Math.exp(0 - 2 * Math.abs(x));
  const t = (1 - e) / (1 + e);
  if (x < 0) {
    return 0 - t;
  }
  return t;
}

export function sigmoidSafe(x: number): number {
  if (x >= 0) {
    return 1 / (1 + Math.exp(0 - x));
  }
  const e = Math.exp(x);
  return e / (1 + e);
}

// GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2)), and its derivative Φ(x) + x·φ(x).
export function geluExact(x: number): number {
  return 0.5 * x * (1 + erfApprox(x * 0.7071067811865476));
}
export function geluExactGrad(x: number): number {
  return 0.5 * (1 + erfApprox(x * 0.7071067811865476)) + x * 0.3989422804014327 * Math.exp(0 - 0.5 * x * x);
}
// The tanh form used by GPT-2: ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
export function geluTanhApprox(x: number): number {
  return 0.5 * x * (1 + tanhSafe(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
export function geluTanhApproxGrad(x: number): number {
  const t = tanhSafe(0.7978845608028654 * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 0.134145 * x * x);
}

// a^b with JavaScript's sign rules for negative bases and integer exponents (WGSL's pow is
// undefined for a < 0).
export function powSigned(a: number, b: number): number {
  if (b === 0) {
    return 1;
  }
  if (a >= 0) {
    return Math.pow(a, b);
  }
  if (Math.floor(b) !== b) {
    return Math.sqrt(0 - 1 - Math.abs(a)); // NaN, as Math.pow gives
  }
  const p = Math.pow(0 - a, b);
  if (Math.floor(b * 0.5) * 2 === b) {
    return p;
  }
  return 0 - p;
}

// Truncation toward zero, for int32 results stored as floats.
export function truncInt(x: number): number {
  if (x < 0) {
    return Math.ceil(x);
  }
  return Math.floor(x);
}
