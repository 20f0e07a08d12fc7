// Scalar special functions shared by kernels and references.

// erf to ~1e-15: Maclaurin series for |x| ≤ 3 (alternating, loses about 3 digits to
// cancellation at x = 3), the continued fraction of erfc beyond (fast convergence for x > 3).
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax <= 3) {
    // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax; // x^(2n+1)/n!
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), by backward recurrence.
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

// erf for float32 kernels: the Chebyshev fit of erfc from Numerical Recipes (§6.2), fractional
// error below 1.2e-7 on erfc, so |erf error| < 1.2e-7 — below float32 resolution of 1 + erf,
// which is what GELU uses. One exp instead of the series above.
export function erfFast(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_C = Math.sqrt(2 / Math.PI);

// GELU(x) = x·Φ(x), Φ the standard normal CDF.
export function gelu(x: number): number {
  return 0.5 * x * (1 + erfFast(x * SQRT1_2));
}
// d/dx x·Φ(x) = Φ(x) + x·φ(x)
export function geluGrad(x: number): number {
  return 0.5 * (1 + erfFast(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}
// The tanh approximation used by GPT-2: ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)));
}
export function geluTanhGrad(x: number): number {
  const t = Math.tanh(GELU_C * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x);
}
export function sigmoid(x: number): number {
  // Two branches keep exp from overflowing.
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
