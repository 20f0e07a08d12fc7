// Goodness of fit for the sampling tests: Pearson's χ² against exact expected probabilities, and
// its p-value from the regularised upper incomplete gamma function, P(χ²_k ≥ x) = Q(k/2, x/2).

// ln Γ(a), Lanczos approximation (g = 7, n = 9; relative error below 1e-13 for a > 0).
function logGamma(a: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (a < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * a)) - logGamma(1 - a);
  const x = a - 1;
  let s = c[0];
  for (let i = 1; i < 9; i++) s += c[i] / (x + i);
  const t = x + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(s);
}

// Q(a, x) = Γ(a, x)/Γ(a): the series of P for x < a + 1, else Lentz's continued fraction for Q.
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lead = a * Math.log(x) - x - logGamma(a);
  if (x < a + 1) {
    let sum = 1 / a, term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(lead);
  }
  const tiny = 1e-300;
  let b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (let n = 1; n < 1000; n++) {
    const an = -n * (n - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(lead) * h;
}

export interface ChiSquare {
  chi2: number;
  df: number;
  pValue: number;
  impossible: number; // samples in cells of probability 0 (any one fails the test)
}

// Observed counts against probabilities (summing to 1). Cells expected below `minExpected` are
// pooled into one, as the χ² approximation needs.
export function chiSquare(counts: ArrayLike<number>, probs: ArrayLike<number>, minExpected = 5): ChiSquare {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i];
  let chi2 = 0, cells = 0, poolO = 0, poolE = 0, impossible = 0;
  for (let i = 0; i < counts.length; i++) {
    const e = n * probs[i];
    if (probs[i] <= 0) {
      impossible += counts[i];
      continue;
    }
    if (e < minExpected) {
      poolO += counts[i];
      poolE += e;
      continue;
    }
    chi2 += (counts[i] - e) ** 2 / e;
    cells++;
  }
  if (poolE > 0) {
    chi2 += (poolO - poolE) ** 2 / poolE;
    cells++;
  }
  const df = Math.max(1, cells - 1);
  return { chi2, df, pValue: impossible > 0 ? 0 : gammaQ(df / 2, chi2 / 2), impossible };
}
