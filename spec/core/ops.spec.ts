// Every op, one line each: forward vs an independent float64 reference and gradient vs central
// finite differences, on every registered backend (spec/helpers/check-op.ts).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as C from "../../core/index.ts";
import { erf } from "../../core/math.ts";
import { testBackends } from "../helpers/backends.ts";
import { checkOp } from "../helpers/check-op.ts";
import {
  alongDim, alongDimPair, at, map, matmulNd, nd, permuteNd, reduceDims, unravel, zip, type Nd,
} from "../helpers/nd.ts";

const t = suite("ops");
const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const pos = { low: 0.5, high: 2 };

// ---- element-wise unary ----
t("neg", () => checkOp("neg", [[3, 4]], (x) => x.neg(), (x) => map(x, (v) => -v)));
t("exp", () => checkOp("exp", [[3, 4]], (x) => x.exp(), (x) => map(x, Math.exp)));
t("log", () => checkOp("log", [{ shape: [3, 4], ...pos }], (x) => x.log(), (x) => map(x, Math.log)));
t("sqrt", () => checkOp("sqrt", [{ shape: [5], ...pos }], (x) => x.sqrt(), (x) => map(x, Math.sqrt)));
t("rsqrt", () => checkOp("rsqrt", [{ shape: [5], ...pos }], (x) => x.rsqrt(), (x) => map(x, (v) => 1 / Math.sqrt(v))));
t("abs", () => checkOp("abs", [[2, 5]], (x) => x.abs(), (x) => map(x, Math.abs)));
t("tanh", () => checkOp("tanh", [[2, 5]], (x) => x.tanh(), (x) => map(x, Math.tanh)));
t("sigmoid", () => checkOp("sigmoid", [[2, 5]], (x) => x.sigmoid(), (x) => map(x, sig)));
t("relu", () => checkOp("relu", [[2, 5]], (x) => x.relu(), (x) => map(x, (v) => Math.max(v, 0))));
t("gelu (erf)", () => checkOp("gelu", [[2, 6]], (x) => x.gelu(), (x) => map(x, gelu)));
t("gelu (tanh)", () => checkOp("geluTanh", [[2, 6]], (x) => x.gelu("tanh"),
  (x) => map(x, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))))));
t("sin/cos", () => checkOp("sin*cos", [[7]], (x) => x.sin().mul(x.cos()), (x) => map(x, (v) => Math.sin(v) * Math.cos(v))));
t("square", () => checkOp("square", [[7]], (x) => x.square(), (x) => map(x, (v) => v * v)));

// ---- binary with broadcasting ----
const bin = (name: string, a: number[], b: number[], f: (x: C.Tensor, y: C.Tensor) => C.Tensor, r: (x: number, y: number) => number, specB = {}) =>
  t(`${name} ${JSON.stringify(a)}·${JSON.stringify(b)}`, () => checkOp(name, [a, { shape: b, ...specB }], f, (x, y) => zip([x, y], r)));
bin("add", [3, 4], [3, 4], (x, y) => x.add(y), (x, y) => x + y);
bin("add", [2, 3, 4], [4], (x, y) => x.add(y), (x, y) => x + y);
bin("add", [2, 1, 4], [3, 1], (x, y) => x.add(y), (x, y) => x + y);
bin("sub", [3, 1], [1, 4], (x, y) => x.sub(y), (x, y) => x - y);
bin("mul", [2, 3, 1], [1, 3, 5], (x, y) => x.mul(y), (x, y) => x * y);
bin("mul", [], [3, 2], (x, y) => x.mul(y), (x, y) => x * y);
bin("div", [2, 3], [3], (x, y) => x.div(y), (x, y) => x / y, pos);
bin("pow", [2, 3], [3], (x, y) => x.abs().add(0.5).pow(y), (x, y) => (Math.abs(x) + 0.5) ** y);
bin("maximum", [4, 3], [3], (x, y) => x.maximum(y), Math.max);
bin("minimum", [4, 1], [1, 3], (x, y) => x.minimum(y), Math.min);
t("scalar ops", () => checkOp("scalars", [[3, 4]], (x) => x.mul(3).add(1).sub(0.5).div(2).pow(2),
  (x) => map(x, (v) => ((v * 3 + 1 - 0.5) / 2) ** 2)));
t("rsub/rdiv", () => checkOp("rsub/rdiv", [{ shape: [5], ...pos }], (x) => C.rdiv(C.rsub(x, 3), 2),
  (x) => map(x, (v) => 2 / (3 - v)), { atol: 1e-4 }));
t("clamp", () => checkOp("clamp", [[4, 5]], (x) => x.clamp(-0.5, 0.7), (x) => map(x, (v) => Math.min(0.7, Math.max(-0.5, v)))));
t("compare → mask", () => checkOp("gt", [[3, 4], [4]], (x, y) => x.gt(y), (x, y) => zip([x, y], (a, b) => (a > b ? 1 : 0)), { grad: false }));
t("eq/ne/le/lt/ge scalar", () => checkOp("cmp", [{ shape: [12], dtype: "int32" }],
  (x) => x.eq(1).add(x.ne(2).mul(2)).add(x.le(1).mul(4)).add(x.lt(3).mul(8)).add(x.ge(2).mul(16)),
  (x) => map(x, (v) => +(v === 1) + 2 * +(v !== 2) + 4 * +(v <= 1) + 8 * +(v < 3) + 16 * +(v >= 2)), { grad: false }));
t("where", () => checkOp("where", [{ shape: [3, 1], grad: false }, [3, 4], [4]],
  (c, a, b) => C.where(c.gt(0), a, b), (c, a, b) => zip([c, a, b], (cc, x, y) => (cc > 0 ? x : y))));
t("maskedFill", () => checkOp("maskedFill", [[2, 3], { shape: [3], grad: false }],
  (x, m) => x.maskedFill(m.gt(0), -5), (x, m) => zip([x, m], (v, mm) => (mm > 0 ? -5 : v))));

// ---- reductions ----
t("sum all", () => checkOp("sum", [[3, 4]], (x) => x.sum(), (x) => nd([], [sum([...x.data])])));
t("sum dim keepdim", () => checkOp("sum", [[2, 3, 4]], (x) => x.sum(1, true), (x) => reduceDims(x, [1], true, sum)));
t("sum dims [0,2]", () => checkOp("sum", [[2, 3, 4]], (x) => x.sum([0, 2]), (x) => reduceDims(x, [0, 2], false, sum)));
t("mean", () => checkOp("mean", [[2, 3, 4]], (x) => x.mean(-1), (x) => reduceDims(x, [2], false, (v) => sum(v) / v.length)));
t("max dim", () => checkOp("max", [[3, 5]], (x) => x.max(1), (x) => reduceDims(x, [1], false, (v) => Math.max(...v))));
t("min dims", () => checkOp("min", [[3, 4, 2]], (x) => x.min([0, 2], true), (x) => reduceDims(x, [0, 2], true, (v) => Math.min(...v))));
t("argmax", () => checkOp("argmax", [[3, 5]], (x) => x.argmax(1), (x) => reduceDims(x, [1], false, (v) => v.indexOf(Math.max(...v))), { grad: false }));
t("argmin", () => checkOp("argmin", [[3, 5]], (x) => x.argmin(0), (x) => reduceDims(x, [0], false, (v) => v.indexOf(Math.min(...v))), { grad: false }));
const lse = (v: number[]) => { const m = Math.max(...v); return m + Math.log(sum(v.map((u) => Math.exp(u - m)))); };
t("logsumexp", () => checkOp("logsumexp", [[3, 5]], (x) => x.logsumexp(-1), (x) => reduceDims(x, [1], false, lse)));
t("var", () => checkOp("var", [[3, 5]], (x) => x.var(1), (x) => reduceDims(x, [1], false, (v) => {
  const m = sum(v) / v.length; return sum(v.map((u) => (u - m) ** 2)) / (v.length - 1);
})));

// ---- linear algebra ----
t("matmul 2d", () => checkOp("matmul", [[3, 4], [4, 5]], (a, b) => a.matmul(b), matmulNd));
t("matmul batched", () => checkOp("matmul", [[2, 3, 4], [2, 4, 2]], (a, b) => a.matmul(b), matmulNd));
t("matmul broadcast batch", () => checkOp("matmul", [[2, 1, 3, 4], [3, 4, 2]], (a, b) => a.matmul(b), matmulNd));
t("matmul [B,T,K]@[K,N]", () => checkOp("matmul", [[2, 3, 4], [4, 5]], (a, b) => a.matmul(b), matmulNd));
t("matmul vector", () => checkOp("matmul", [[4], [4, 3]], (a, b) => a.matmul(b),
  (a, b) => { const r = matmulNd(nd([1, 4], a.data), b); return nd([3], r.data); }));
t("matmul across k-blocks, odd sizes", () => checkOp("matmul", [[5, 300], [300, 7]], (a, b) => a.matmul(b), matmulNd, { atol: 1e-4 }));
t("matmul with transposed operands", () => checkOp("matmul", [[3, 6, 5], [4, 6]], (a, b) => a.mT.matmul(b.mT), (a, b) => matmulNd(permuteNd(a, [0, 2, 1]), permuteNd(b, [1, 0]))));
t("matmul, only B needs a gradient", () => checkOp("matmul", [{ shape: [3, 4], grad: false }, [4, 2]], (a, b) => a.matmul(b), matmulNd));
t("mul/div, only one side needs a gradient", () => checkOp("mul/div", [{ shape: [3, 4], grad: false }, { shape: [4], low: 0.5, high: 2 }], (a, b) => a.mul(b).div(b.add(1)).add(a.div(b)), (a, b) => zip([a, b], (x, y) => (x * y) / (y + 1) + x / y)));
t("mT", () => checkOp("mT", [[2, 3, 4]], (x) => x.mT, (x) => permuteNd(x, [0, 2, 1])));

// ---- shape ----
t("reshape/view/flatten", () => checkOp("reshape", [[2, 3, 4]], (x) => x.reshape(4, -1).view([2, 12]).flatten(), (x) => nd([24], x.data)));
t("unsqueeze/squeeze", () => checkOp("squeeze", [[3, 1, 4]], (x) => x.squeeze(1).unsqueeze(0).mul(2), (x) => nd([1, 3, 4], x.data.map((v) => 2 * v))));
t("permute", () => checkOp("permute", [[2, 3, 4]], (x) => x.permute(2, 0, 1), (x) => permuteNd(x, [2, 0, 1])));
t("permute moving only size-1 dims (a reshape)", () => checkOp("permute", [[2, 1, 3, 4]], (x) => x.permute(0, 2, 1, 3), (x) => permuteNd(x, [0, 2, 1, 3])));
t("permute of size-1 dims among others", () => checkOp("permute", [[3, 1, 1, 2]], (x) => x.permute(3, 1, 0, 2), (x) => permuteNd(x, [3, 1, 0, 2])));
t("transpose", () => checkOp("transpose", [[2, 3, 4]], (x) => x.transpose(0, 2), (x) => permuteNd(x, [2, 1, 0])));
t("expand", () => checkOp("expand", [[3, 1]], (x) => x.expand(2, 3, 4), (x) => zip([x, nd([2, 3, 4])], (a) => a)));
const sliceRef = (x: Nd, dim: number, s: number, e: number): Nd => {
  const shape = x.shape.slice(); shape[dim] = e - s;
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) { const idx = unravel(i, shape); idx[dim] += s; out.data[i] = at(x, idx); }
  return out;
};
// Copies whose innermost dim is contiguous and at least 8 long (the wasm backend moves them a run at a time)
t("permute splitting heads [2,3,4,10] → [2,4,3,10]", () => checkOp("permute", [[2, 3, 4, 10]], (x) => x.permute(0, 2, 1, 3), (x) => permuteNd(x, [0, 2, 1, 3])));
t("narrow inside rows of 9, expand over a middle dim", () => checkOp("narrow", [[3, 5, 9]], (x) => x.narrow(1, 2, 2).expand(2, 3, 2, 9).mul(1),
  (x) => zip([sliceRef(x, 1, 2, 4), nd([2, 3, 2, 9])], (a) => a)));
t("permute of int32 with rows of 8", () => checkOp("permute", [{ shape: [3, 2, 8], dtype: "int32", low: -50, high: 50 }], (x) => x.permute(1, 0, 2), (x) => permuteNd(x, [1, 0, 2]), { grad: false }));
t("narrow/slice", () => checkOp("narrow", [[4, 5]], (x) => x.narrow(1, 1, 3).slice(0, -3), (x) => sliceRef(sliceRef(x, 1, 1, 4), 0, 1, 4)));
t("split/chunk", () => checkOp("split", [[6, 2]], (x) => { const [a, b, c] = x.chunk(3, 0); const [d] = x.split([4, 2]); return a.add(b).mul(c).sum().add(d.sum()); },
  (x) => { let s = 0; for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) s += (x.data[r * 2 + c] + x.data[(r + 2) * 2 + c]) * x.data[(r + 4) * 2 + c]; for (let i = 0; i < 8; i++) s += x.data[i]; return nd([], [s]); }));
t("cat", () => checkOp("cat", [[2, 3], [2, 1]], (a, b) => C.cat([a, b], 1), (a, b) => {
  const out = nd([2, 4]); for (let r = 0; r < 2; r++) { for (let c = 0; c < 3; c++) out.data[r * 4 + c] = a.data[r * 3 + c]; out.data[r * 4 + 3] = b.data[r]; } return out;
}));
t("cat of three int32 tensors along a middle dim", () => checkOp("cat", [{ shape: [2, 1, 3], dtype: "int32", low: -9, high: 9 }, { shape: [2, 2, 3], dtype: "int32", low: -9, high: 9 }, { shape: [2, 1, 3], dtype: "int32", low: -9, high: 9 }],
  (a, b, c) => C.cat([a, b, c], 1), (a, b, c) => nd([2, 4, 3], [0, 1].flatMap((r) => [...a.data.subarray(r * 3, r * 3 + 3), ...b.data.subarray(r * 6, r * 6 + 6), ...c.data.subarray(r * 3, r * 3 + 3)])), { grad: false }));
t("stack", () => checkOp("stack", [[3], [3]], (a, b) => C.stack([a, b], 1), (a, b) => nd([3, 2], [a.data[0], b.data[0], a.data[1], b.data[1], a.data[2], b.data[2]])));
t("pad", () => checkOp("pad", [[2, 3]], (x) => x.pad([1, 2, 0, 1], 0.5), (x) => {
  const out = nd([3, 6]).data.fill(0.5); for (let r = 0; r < 2; r++) for (let c = 0; c < 3; c++) out[r * 6 + c + 1] = x.data[r * 3 + c]; return nd([3, 6], out);
}));
t("tril/triu", () => checkOp("tril", [[3, 4]], (x) => x.tril().add(x.triu(1).mul(2)),
  (x) => { const o = nd([3, 4]); for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) o.data[i * 4 + j] = x.data[i * 4 + j] * (j <= i ? 1 : 2); return o; }));

// ---- indexing ----
t("gather", () => checkOp("gather", [[3, 5], { shape: [3, 2], dtype: "int32", low: 0, high: 5 }], (x, i) => x.gather(1, i),
  (x, i) => { const o = nd([3, 2]); for (let r = 0; r < 3; r++) for (let k = 0; k < 2; k++) o.data[r * 2 + k] = x.data[r * 5 + i.data[r * 2 + k]]; return o; }));
t("scatterAdd", () => checkOp("scatterAdd", [[2, 4], { shape: [2, 3], dtype: "int32", low: 0, high: 4 }, [2, 3]], (x, i, s) => x.scatterAdd(1, i, s),
  (x, i, s) => { const o = nd([2, 4], x.data); for (let r = 0; r < 2; r++) for (let k = 0; k < 3; k++) o.data[r * 4 + i.data[r * 3 + k]] += s.data[r * 3 + k]; return o; }));
t("indexSelect", () => checkOp("indexSelect", [[4, 3], { shape: [5], dtype: "int32", low: 0, high: 4 }], (x, i) => x.indexSelect(0, i),
  (x, i) => { const o = nd([5, 3]); for (let k = 0; k < 5; k++) for (let c = 0; c < 3; c++) o.data[k * 3 + c] = x.data[i.data[k] * 3 + c]; return o; }));
t("indexSelect dim 1", () => checkOp("indexSelect", [[2, 4, 3], { shape: [2], dtype: "int32", low: 0, high: 4 }], (x, i) => x.indexSelect(1, i),
  (x, i) => { const o = nd([2, 2, 3]); for (let b = 0; b < 2; b++) for (let k = 0; k < 2; k++) for (let c = 0; c < 3; c++) o.data[(b * 2 + k) * 3 + c] = x.data[(b * 4 + i.data[k]) * 3 + c]; return o; }));
t("embedding", () => checkOp("embedding", [[6, 3], { shape: [2, 2], dtype: "int32", low: 0, high: 6 }], (w, i) => C.embedding(w, i),
  (w, i) => { const o = nd([2, 2, 3]); for (let k = 0; k < 4; k++) for (let c = 0; c < 3; c++) o.data[k * 3 + c] = w.data[i.data[k] * 3 + c]; return o; }));
t("oneHot", () => checkOp("oneHot", [{ shape: [4], dtype: "int32", low: 0, high: 3 }], (i) => C.oneHot(i, 3),
  (i) => { const o = nd([4, 3]); i.data.forEach((v, k) => (o.data[k * 3 + v] = 1)); return o; }, { grad: false }));

// ---- NN primitives ----
const softmaxRow = (v: number[]) => { const m = Math.max(...v); const e = v.map((u) => Math.exp(u - m)); const s = sum(e); return e.map((u) => u / s); };
t("softmax last", () => checkOp("softmax", [[3, 6]], (x) => x.softmax(-1), (x) => alongDim(x, 1, softmaxRow)));
t("softmax dim 0", () => checkOp("softmax", [[4, 3]], (x) => x.softmax(0), (x) => alongDim(x, 0, softmaxRow)));
// (u − m) − log Σ e^(u−m), never u − lse: at u = 1e30 even float64 rounds m + log 2 to m.
const logSoftmaxRow = (v: number[]) => { const m = Math.max(...v); const ls = Math.log(sum(v.map((u) => Math.exp(u - m)))); return v.map((u) => u - m - ls); };
t("logSoftmax", () => checkOp("logSoftmax", [[2, 3, 5]], (x) => x.logSoftmax(-1), (x) => alongDim(x, 2, logSoftmaxRow)));
t("logSoftmax dim 1", () => checkOp("logSoftmax", [[2, 3, 2]], (x) => x.logSoftmax(1), (x) => alongDim(x, 1, logSoftmaxRow)));
const lnRef = (x: Nd, w: Nd, b: Nd, eps: number) => {
  const n = w.data.length; const out = nd(x.shape.slice());
  for (let r = 0; r < x.data.length / n; r++) {
    const row = [...x.data.subarray(r * n, r * n + n)];
    const mu = sum(row) / n; const v = sum(row.map((u) => (u - mu) ** 2)) / n;
    row.forEach((u, j) => (out.data[r * n + j] = ((u - mu) / Math.sqrt(v + eps)) * w.data[j] + b.data[j]));
  }
  return out;
};
t("layerNorm", () => checkOp("layerNorm", [[2, 3, 8], [8], [8]], (x, w, b) => C.layerNorm(x, w, b, 1e-5), (x, w, b) => lnRef(x, w, b, 1e-5), { gradAtol: 5e-3 }));
// The smoothed target q = (1−ε)·onehot(t) + ε/V of one row.
const smoothed = (v: number, target: number, eps: number) => Array.from({ length: v }, (_, j) => (j === target ? 1 - eps : 0) + eps / v);
const ceRef = (z: Nd, tt: Nd, eps: number, ignore: number) => {
  const v = z.shape[z.shape.length - 1]; let tot = 0, cnt = 0;
  for (let r = 0; r < tt.data.length; r++) {
    if (tt.data[r] === ignore) continue;
    const logp = logSoftmaxRow([...z.data.subarray(r * v, r * v + v)]);
    // cross-entropy against the smoothed target: −Σ q_j log p_j, where 0·log 0 counts as 0
    let loss = 0;
    smoothed(v, tt.data[r], eps).forEach((q, j) => { if (q !== 0) loss -= q * logp[j]; });
    tot += loss; cnt++;
  }
  return nd([], [tot / cnt]);
};
t("crossEntropy", () => checkOp("crossEntropy", [[4, 5], { shape: [4], dtype: "int32", low: 0, high: 5 }], (z, y) => C.crossEntropy(z, y), (z, y) => ceRef(z, y, 0, -100)));
t("crossEntropy smoothing + ignoreIndex", () => checkOp("crossEntropy", [[2, 3, 5], { shape: [2, 3], dtype: "int32", values: [1, 0, 4, 0, 2, 3] }],
  (z, y) => C.crossEntropy(z, y, { labelSmoothing: 0.1, ignoreIndex: 0 }), (z, y) => ceRef(z, y, 0.1, 0)));
t("crossEntropy sum", () => checkOp("crossEntropy", [[3, 4], { shape: [3], dtype: "int32", low: 0, high: 4 }],
  (z, y) => C.crossEntropy(z, y, { reduction: "sum" }), (z, y) => nd([], [ceRef(z, y, 0, -100).data[0] * 3])));

// ---- NN primitives at the edges: masked (−∞) and huge logits, on every backend ----
// Gradients written out (gradRef) where finite differences cannot resolve them: d/dx of Σ w ⊙ f.
const softmaxVjp = (x: Nd, w: Nd) => alongDimPair(x, w, -1, (v, g) => {
  const y = softmaxRow(v); const s = sum(y.map((p, j) => p * g[j])); return y.map((p, j) => p * (g[j] - s));
});
const logSoftmaxVjp = (x: Nd, w: Nd) => alongDimPair(x, w, -1, (v, g) => {
  const y = softmaxRow(v); const s = sum(g); return y.map((p, j) => g[j] - p * s);
});
// d/dz of w · mean over the kept rows of CE: (w / count) · (softmax(z_r) − q_r)
const ceGrad = (w: Nd, z: Nd, tt: Nd, eps: number, ignore: number) => {
  const v = z.shape[z.shape.length - 1]; const out = nd(z.shape.slice());
  const kept = [...tt.data].filter((x) => x !== ignore).length;
  for (let r = 0; r < tt.data.length; r++) {
    if (tt.data[r] === ignore) continue;
    const p = softmaxRow([...z.data.subarray(r * v, r * v + v)]); const q = smoothed(v, tt.data[r], eps);
    p.forEach((pj, j) => (out.data[r * v + j] = (w.data[0] / kept) * (pj - q[j])));
  }
  return out;
};
const NEG = -Infinity;
const maskedRows = { shape: [3, 5], values: [NEG, 1, 2, NEG, 0.5, 0.3, NEG, -1, 2, 1, 1, 2, 3, 4, 5] };
const hugeRows = { shape: [5, 3], values: [1e30, 1e30, 0, 3e7, 3e7 - 2, 0, -1e30, -1e30, 5, -3e7, 1e30, NEG, 1e30, NEG, -1e30].map(Math.fround) };
const rowTargets = (values: number[]) => ({ shape: [values.length], dtype: "int32" as const, values });
t("softmax with −∞ entries", () => checkOp("softmax", [maskedRows], (x) => x.softmax(-1), (x) => alongDim(x, 1, softmaxRow)));
t("logSoftmax with −∞ entries (their gradient is the limit, w)", () => checkOp("logSoftmax", [maskedRows], (x) => x.logSoftmax(-1),
  (x) => alongDim(x, 1, logSoftmaxRow), { gradRef: (w, x) => [logSoftmaxVjp(x, w)] }));
t("softmax/logSoftmax of an all −∞ row are NaN (as PyTorch)", () => checkOp("softmax", [{ shape: [2, 3], values: [NEG, NEG, NEG, 0, NEG, 1] }],
  (x) => x.softmax(-1).add(x.logSoftmax(-1)), (x) => nd([2, 3], [NaN, NaN, NaN, ...zip([alongDim(nd([3], [0, NEG, 1]), 0, softmaxRow), alongDim(nd([3], [0, NEG, 1]), 0, logSoftmaxRow)], (a, b) => a + b).data]), { grad: false }));
t("softmax of huge logits (1e30, 3e7)", () => checkOp("softmax", [hugeRows], (x) => x.softmax(-1), (x) => alongDim(x, 1, softmaxRow), { gradRef: (w, x) => [softmaxVjp(x, w)] }));
t("logSoftmax of huge logits: (x − m) − log Σ, not x − lse", () => checkOp("logSoftmax", [hugeRows], (x) => x.logSoftmax(-1),
  (x) => alongDim(x, 1, logSoftmaxRow), { gradRef: (w, x) => [logSoftmaxVjp(x, w)] }));
t("softmax/logSoftmax of huge logits in rows of 9 (4-lane SIMD steps and a tail)", () => checkOp("logSoftmax", [{ shape: [2, 9],
  values: [1e30, 1e30, 0, 5, -1e30, 1e30, 3, 2, 1, 3e7, 3e7 - 2, NEG, 0, 3e7 - 4, 1, NEG, 3e7, -3e7].map(Math.fround) }],
  (x) => x.logSoftmax(-1).add(x.softmax(-1)), (x) => zip([alongDim(x, 1, logSoftmaxRow), alongDim(x, 1, softmaxRow)], (a, b) => a + b),
  { gradRef: (w, x) => [zip([logSoftmaxVjp(x, w), softmaxVjp(x, w)], (a, b) => a + b)] }));
t("logSoftmax of huge logits along dim 0", () => checkOp("logSoftmax", [{ ...hugeRows, shape: [3, 5] }], (x) => x.logSoftmax(0),
  (x) => alongDim(x, 0, logSoftmaxRow), { grad: false }));
t("crossEntropy with −∞ logits, ε = 0: finite, masked classes get no gradient", () => checkOp("crossEntropy", [maskedRows, rowTargets([1, 4, 2])],
  (z, y) => C.crossEntropy(z, y), (z, y) => ceRef(z, y, 0, -100)));
t("crossEntropy: a −∞ target logit, or ε > 0 with any −∞ logit, is +∞", () => checkOp("crossEntropy", [maskedRows, rowTargets([1, 4, 2])],
  (z, y) => C.crossEntropy(z, y, { labelSmoothing: 0.1, reduction: "none" }).add(C.crossEntropy(z, C.tensor([0, 1, 2], { dtype: "int32", backend: z.backend }), { reduction: "none" })),
  (z, y) => nd([3], [Infinity, Infinity, ceRef(nd([1, 5], z.data.subarray(10)), nd([1], [2]), 0.1, -100).data[0] + ceRef(nd([1, 5], z.data.subarray(10)), nd([1], [2]), 0, -100).data[0]]), { grad: false }));
for (const eps of [0, 0.1]) {
  t(`crossEntropy of huge logits, ε = ${eps}`, () => checkOp("crossEntropy", [hugeRows, rowTargets([0, 1, 2, 1, 0])],
    (z, y) => C.crossEntropy(z, y, { labelSmoothing: eps }), (z, y) => ceRef(z, y, eps, -100),
    { gradRef: (w, z, y) => [ceGrad(w, z, y, eps, -100), null], ...(eps > 0 ? { grad: false } : {}) }));
}
t("crossEntropy gradient from |logit| ≈ 3e7, with an ignored row", () => checkOp("crossEntropy",
  [{ shape: [3, 4], values: [3e7, 3e7 - 2, 0, -3e7, -3e7, -3e7 + 4, 1, 2, 5, 6, 7, 8].map(Math.fround) }, rowTargets([1, 0, -100])],
  (z, y) => C.crossEntropy(z, y, { labelSmoothing: 0.2 }), (z, y) => ceRef(z, y, 0.2, -100), { gradRef: (w, z, y) => [ceGrad(w, z, y, 0.2, -100), null] }));
// ---- logSoftmaxArgmax: greedy decoding's fused pick ----
// s = logSoftmax(x) + b per row; the reference scans s in float64: first maximum, a NaN wins.
const pickRef = (x: Nd, b: Nd, want: "values" | "indices") => {
  const n = x.shape[x.shape.length - 1], rows = x.data.length / n;
  return nd(x.shape.slice(0, -1), Array.from({ length: rows }, (_, r) => {
    const sv = logSoftmaxRow([...x.data.subarray(r * n, r * n + n)]).map((v, j) => v + b.data[j]);
    let j0 = 0;
    for (let j = 1; j < n && !Number.isNaN(sv[j0]); j++) if (Number.isNaN(sv[j]) || sv[j] > sv[j0]) j0 = j;
    return want === "values" ? sv[j0] : j0;
  }));
};
const banned = { shape: [11], values: [NEG, 0, 0, NEG, 0, 0, 0, 0, NEG, 0, 0] };
t("logSoftmaxArgmax values", () => checkOp("logSoftmaxArgmax", [[2, 3, 11], banned], (x, b) => C.logSoftmaxArgmax(x, b).values, (x, b) => pickRef(x, b, "values"), { grad: false }));
t("logSoftmaxArgmax indices (−∞ bias bans a position)", () => checkOp("logSoftmaxArgmax", [[6, 11], banned],
  (x, b) => C.logSoftmaxArgmax(x, b).indices, (x, b) => pickRef(x, b, "indices"), { grad: false }));
t("logSoftmaxArgmax of huge logits, without a bias", () => checkOp("logSoftmaxArgmax", [hugeRows], (x) => C.logSoftmaxArgmax(x).values,
  (x) => pickRef(x, nd([3], [0, 0, 0]), "values"), { grad: false }));
t("logSoftmaxArgmax is bit for bit logSoftmax → add → argmax → gather on every backend (ties, −∞, NaN, tails)", async () => {
  const g = new C.Generator(77);
  for (const { cfg, backend } of await testBackends()) {
    for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 100]) {
      const rows = 7;
      // few distinct levels, so that rows hold ties; row 5 gets a NaN, row 6 is all banned
      const x = Array.from({ length: rows * n }, () => Math.fround(Math.round(g.random() * 4) * 0.75 - 1));
      if (n > 2) x[5 * n + 2] = NaN;
      const b = Array.from({ length: n }, (_, j) => (g.random() < 0.25 ? -Infinity : 0));
      const xt = C.tensor(x, { shape: [rows, n], backend }), bt = C.tensor(b, { shape: [n], backend });
      const allBanned = C.full([n], -Infinity, { backend });
      const got = C.logSoftmaxArgmax(xt, bt), gotBanned = C.logSoftmaxArgmax(xt, allBanned);
      for (const [bias, res] of [[bt, got], [allBanned, gotBanned]] as const) {
        const s = xt.logSoftmax(-1).add(bias), idx = s.argmax(-1), val = s.gather(1, idx.reshape(rows, 1)).reshape(rows);
        const [gi, gv, wi, wv] = await Promise.all([res.indices.data(), res.values.data(), idx.data(), val.data()]);
        for (let r = 0; r < rows; r++) {
          if (gi[r] !== wi[r] || !Object.is(gv[r], wv[r])) {
            throw new Error(`${cfg.label}, n ${n}, row ${r}: fused (${gi[r]}, ${gv[r]}) vs composed (${wi[r]}, ${wv[r]})`);
          }
        }
        for (const t of [s, idx, val, res.indices, res.values]) t.dispose();
      }
      for (const t of [xt, bt, allBanned]) t.dispose();
    }
  }
});
t("wasm: a weight multiplied by a few rows again and again is packed once, gives the same bits, and goes with its buffer", async () => {
  const wasm = await C.setBackend("wasm");
  try {
    const { getWasmRuntime } = await import("../../core/backends/wasm/index.ts");
    const heap = getWasmRuntime().heap;
    const g = new C.Generator(5);
    const x = C.randn([20, 300], { generator: g, backend: wasm });
    const before = heap.liveBytes();
    const w = C.randn([1000, 300], { generator: g, backend: wasm });
    const outs = [0, 1, 2].map(() => C.linear(x, w));
    const grown = heap.liveBytes() - before;
    const first = outs[0].dataSync();
    for (const o of outs.slice(1)) assert.equal(Array.from(o.dataSync()), Array.from(first), "the same bits from the packed copy");
    assert.ok(grown >= 2 * 1000 * 300 * 4, `a packed copy of w was kept (${grown} bytes)`);
    for (const o of outs) o.dispose();
    w.dispose();
    assert.is(heap.liveBytes(), before, "the packed copy went with w");
    x.dispose();
  } finally {
    await C.setBackend("cpu");
  }
});
t("dropout (seeded mask)", () => checkOp("dropout", [[4, 8]], (x) => C.dropout(x, 0.25, true, new C.Generator(7)), (x) => {
  const mask = new C.Generator(7).bernoulliMask(32, 0.75);
  return map(x, (v, i) => (v * mask[i]) / 0.75);
}));
t("composite: attention-like", () => checkOp("attention", [[2, 3, 4], [2, 5, 4], [2, 5, 4]],
  (q, k, v) => q.matmul(k.mT).mul(0.5).softmax(-1).matmul(v),
  (q, k, v) => matmulNd(alongDim(map(matmulNd(q, permuteNd(k, [0, 2, 1])), (u) => u * 0.5), 2, softmaxRow), v)));

t.run();
