// The benchmark LM (see lm.ts) in TensorFlow.js 4.22 on its wasm backend (SIMD; Node runs it on
// one thread), written with tfjs-core ops, tf.variableGrads and a hand-written AdamW (tfjs has no
// AdamW; its own Adam is built from the same element-wise ops).
//
// Two tfjs specifics: tfjs-core's Node build registers no gradients, so @tensorflow/tfjs is
// loaded for them; and the wasm backend lacks UnsortedSegmentSum, the kernel of gather's
// gradient, so the embedding lookup carries a custom gradient that sums rows with ScatterNd
// (which adds duplicate indices).
import { dirname } from "node:path";
import { ADAMW, numParams, type LMDecoder, type LMTrainer, type LMWeights } from "./lm.ts";
import { peerRequire } from "./load.ts";

/* eslint-disable @typescript-eslint/no-explicit-any -- tfjs's types live in .bench-peers/ */
type TF = any;
type T = any;

/** tfjs with gradients registered and the wasm backend selected, or why not. */
export async function loadTfjs(): Promise<{ tf: TF; label: string } | { skip: string }> {
  const r = peerRequire("@tensorflow/tfjs");
  if ("skip" in r) return r;
  const w = peerRequire("@tensorflow/tfjs-backend-wasm");
  if ("skip" in w) return w;
  const tf = r.require("@tensorflow/tfjs");
  const wasm = w.require("@tensorflow/tfjs-backend-wasm");
  wasm.setWasmPaths(dirname(w.require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm")) + "/");
  if (!(await tf.setBackend("wasm"))) return { skip: "tfjs could not initialise its wasm backend" };
  await tf.ready();
  const simd = tf.env().getBool("WASM_HAS_SIMD_SUPPORT");
  const mt = tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT");
  return { tf, label: `tfjs-wasm ${tf.version_core}${simd ? " simd" : ""}${mt ? "" : " 1t"}` };
}

const isLinear = (name: string) => /\.(q|k|v|o|fc1|fc2)\.weight$/.test(name);

interface Cache {
  k: (T | null)[]; // per layer [1, H, t, Dh]
  v: (T | null)[];
  length: number;
}

class TfjsLM {
  readonly p: Record<string, T> = {};
  private readonly embedLookup: (e: T, ids: T) => T;

  constructor(readonly tf: TF, readonly w: LMWeights, trainable: boolean) {
    w.names.forEach((n, i) => {
      let t = tf.tensor(w.data[i], w.shapes[i], "float32");
      // Linear weights in tf.layers.dense's [in, out] layout: tfjs-wasm's matmul is several
      // times slower with a transposed operand (measured 2.3 against 14 GFLOP/s at 1024×256×768)
      if (isLinear(n)) t = tf.transpose(t);
      this.p[n] = trainable ? tf.variable(t, true, n) : t;
    });
    // E[ids] with dE = Σ_rows scatter(dy) (ScatterNd sums rows that share an id)
    this.embedLookup = tf.customGrad((e: T, ids: T, save: (ts: T[]) => void) => {
      save([ids]);
      return {
        value: tf.gather(e, ids),
        gradFunc: (dy: T, [saved]: T[]) => [tf.scatterND(tf.expandDims(saved, 1), dy, e.shape), tf.zerosLike(saved)],
      };
    });
  }

  private linear(x: T, name: string): T {
    const tf = this.tf;
    return tf.add(tf.matMul(x, this.p[`${name}.weight`]), this.p[`${name}.bias`]);
  }

  private layerNorm(x: T, name: string): T {
    const tf = this.tf;
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5)));
    return tf.add(tf.mul(xhat, this.p[`${name}.weight`]), this.p[`${name}.bias`]);
  }

  // GELU(x) = x·Φ(x) = ½x(1 + erf(x/√2)), the exact form Hasten uses
  private gelu(x: T): T {
    const tf = this.tf;
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
  }

  // x: [B·Tn, D] for a batch of b rows of tn new positions starting at `offset` → [B·Tn, D]
  private attention(x: T, l: number, b: number, tn: number, cache?: Cache): T {
    const tf = this.tf;
    const { dModel: d, heads: h } = this.w.config;
    const dh = d / h;
    const split = (y: T) => tf.transpose(tf.reshape(y, [b, tn, h, dh]), [0, 2, 1, 3]); // [B, H, Tn, Dh]
    const pre = `layers.${l}.selfAttn`;
    const q = split(this.linear(x, `${pre}.q`));
    let k = split(this.linear(x, `${pre}.k`));
    let v = split(this.linear(x, `${pre}.v`));
    const offset = cache ? cache.length : 0;
    if (cache) {
      if (cache.k[l]) {
        k = tf.concat([cache.k[l], k], 2);
        v = tf.concat([cache.v[l], v], 2);
        cache.k[l].dispose();
        cache.v[l].dispose();
      }
      cache.k[l] = tf.keep(k);
      cache.v[l] = tf.keep(v);
    }
    const tk = offset + tn;
    let scores = tf.matMul(tf.mul(q, 1 / Math.sqrt(dh)), tf.transpose(k, [0, 1, 3, 2])); // [B, H, Tn, Tk]
    if (tn > 1) {
      // causal: query at position offset + i sees keys j ≤ offset + i
      const mask = new Float32Array(tn * tk);
      for (let i = 0; i < tn; i++) for (let j = offset + i + 1; j < tk; j++) mask[i * tk + j] = -1e9;
      scores = tf.add(scores, tf.tensor2d(mask, [tn, tk]));
    }
    const out = tf.matMul(tf.softmax(scores), v); // [B, H, Tn, Dh]
    return this.linear(tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b * tn, d]), `${pre}.o`);
  }

  // ids: int32 [B·Tn] → logits [B·Tn, V]
  forward(ids: T, b: number, tn: number, cache?: Cache): T {
    const tf = this.tf;
    const { dModel: d, layers } = this.w.config;
    const offset = cache ? cache.length : 0;
    const pos = tf.slice(this.p["positions.weight"], [offset, 0], [tn, d]); // [Tn, D]
    const emb = tf.reshape(this.embedLookup(this.p["embed.weight"], ids), [b, tn, d]);
    let x = tf.reshape(tf.add(tf.mul(emb, Math.sqrt(d)), pos), [b * tn, d]);
    for (let l = 0; l < layers; l++) {
      x = tf.add(x, this.attention(this.layerNorm(x, `layers.${l}.selfNorm`), l, b, tn, cache));
      const f = this.linear(this.gelu(this.linear(this.layerNorm(x, `layers.${l}.ffnNorm`), `layers.${l}.ffn.fc1`)), `layers.${l}.ffn.fc2`);
      x = tf.add(x, f);
    }
    if (cache) cache.length += tn;
    return tf.matMul(this.layerNorm(x, "norm"), tf.transpose(this.p["embed.weight"])); // tied: h·Eᵀ
  }

  dispose(): void {
    for (const t of Object.values(this.p)) t.dispose();
  }
}

export function tfjsTrainer(tf: TF, label: string, w: LMWeights, ids: Int32Array, targets: Int32Array, b: number, t: number): LMTrainer {
  const model = new TfjsLM(tf, w, true);
  const vars = w.names.map((n) => model.p[n]);
  const m = vars.map((x: T) => tf.variable(tf.zerosLike(x), false));
  const v = vars.map((x: T) => tf.variable(tf.zerosLike(x), false));
  const idsT = tf.tensor1d(ids, "int32");
  const tgtT = tf.oneHot(tf.tensor1d(targets, "int32"), w.config.vocab); // [N, V] float
  let step = 0;
  const { lr, beta1, beta2, eps, weightDecay } = ADAMW;
  return {
    name: label,
    params: numParams(w),
    async step() {
      // loss = −mean_n log softmax(z_n)[target_n]
      const { value, grads } = tf.variableGrads(() => {
        const logp = tf.logSoftmax(model.forward(idsT, b, t));
        return tf.neg(tf.div(tf.sum(tf.mul(logp, tgtT)), b * t));
      }, vars);
      step++;
      const bc1 = 1 - beta1 ** step, bc2 = 1 - beta2 ** step;
      tf.tidy(() => {
        vars.forEach((p: T, i: number) => {
          const g = grads[p.name];
          const mi = tf.add(tf.mul(m[i], beta1), tf.mul(g, 1 - beta1));
          const vi = tf.add(tf.mul(v[i], beta2), tf.mul(tf.square(g), 1 - beta2));
          // p ← p(1 − lr·λ) − lr·(m/bc1)/(√(v/bc2) + ε)
          const upd = tf.div(tf.div(mi, bc1), tf.add(tf.sqrt(tf.div(vi, bc2)), eps));
          p.assign(tf.sub(tf.mul(p, 1 - lr * weightDecay), tf.mul(upd, lr)));
          m[i].assign(mi);
          v[i].assign(vi);
        });
      });
      tf.dispose(grads);
      const loss = (await value.data())[0];
      value.dispose();
      return loss;
    },
    dispose() {
      model.dispose();
      tf.dispose([...m, ...v, idsT, tgtT]);
    },
  };
}

export function tfjsDecoder(tf: TF, label: string, w: LMWeights): LMDecoder {
  const model = new TfjsLM(tf, w, false);
  return {
    name: label,
    async decode(prompt, steps) {
      const cache: Cache = { k: [], v: [], length: 0 };
      const next = (ids: Int32Array): number => {
        const a = tf.tidy(() => {
          const logits = model.forward(tf.tensor1d(ids, "int32"), 1, ids.length, cache); // [Tn, V]
          return tf.argMax(tf.slice(logits, [ids.length - 1, 0], [1, w.config.vocab]), 1);
        });
        const tok = a.dataSync()[0];
        a.dispose();
        return tok;
      };
      let t0 = performance.now();
      let tok = next(prompt);
      const prefillMs = performance.now() - t0;
      const tokens = [tok], stepMs: number[] = [];
      for (let s = 0; s < steps; s++) {
        t0 = performance.now();
        tok = next(Int32Array.of(tok));
        stepMs.push(performance.now() - t0);
        tokens.push(tok);
      }
      tf.dispose([...cache.k, ...cache.v]);
      return { tokens, stepMs, prefillMs };
    },
    dispose() {
      model.dispose();
    },
  };
}
