// The benchmark LM (see lm.ts) in jax-js on its "wasm" device, the JAX way: value_and_grad of
// the loss and the AdamW update are jit-compiled, so jax-js can fuse element-wise work into its
// kernels. In Node jax-js computes on the calling thread (its worker pool needs a browser Worker).
//
// jax-js frees arrays by reference counting: every function takes ownership of its arguments, so
// an array used twice is passed as `x.ref` the first time (https://github.com/ekzhang/jax-js).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ADAMW, numParams, type LMDecoder, type LMTrainer, type LMWeights } from "./lm.ts";
import { peerRequire } from "./load.ts";

/* eslint-disable @typescript-eslint/no-explicit-any -- jax-js's types live in .bench-peers/ */
type Jax = any;
type A = any;
type Params = Record<string, A>;

export async function loadJax(): Promise<{ jax: Jax; label: string } | { skip: string }> {
  const r = peerRequire("@jax-js/jax");
  if ("skip" in r) return r;
  const jax = r.require("@jax-js/jax");
  const version = JSON.parse(readFileSync(join(dirname(r.require.resolve("@jax-js/jax")), "..", "package.json"), "utf8")).version;
  const devices: string[] = await jax.init("wasm");
  if (!devices.includes("wasm")) return { skip: `jax-js found no wasm device (got ${devices.join(", ")})` };
  jax.defaultDevice("wasm");
  return { jax, label: `jax-js ${version} wasm` };
}

/**
 * Mean cross-entropy of the LM on one-hot ids [B·T, V] against one-hot targets [B·T, V];
 * consumes all. The embedding lookup is onehot(ids)·E, a matmul: jax-js 0.1.25 cannot jit the
 * gradient of np.take here (its scatter gets a fused input: "jit: routine primitive scatter input
 * is not imm"). That adds 2·(B·T)·V·D flops forward and as many backward (about 1 GFLOP, some 9%
 * of the step) that the other peers do not do.
 */
function lossFn(jax: Jax, w: LMWeights, b: number, t: number, p: Params, idsHot: A, onehot: A): A {
  const np = jax.numpy, nn = jax.nn;
  const { dModel: d, heads: h, layers } = w.config;
  const dh = d / h;
  const lin = (x: A, name: string) => np.matmul(x, p[`${name}.weight`].transpose()).add(p[`${name}.bias`]);
  const layerNorm = (x: A, name: string) => {
    const xc = x.ref.sub(x.mean(-1, { keepdims: true }));
    const variance = np.square(xc.ref).mean(-1, { keepdims: true });
    return xc.mul(np.reciprocal(np.sqrt(variance.add(1e-5)))).mul(p[`${name}.weight`]).add(p[`${name}.bias`]);
  };
  const split = (y: A) => y.reshape([b, t, h, dh]).transpose([0, 2, 1, 3]); // [B, H, T, Dh]
  const mask = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) mask[i * t + j] = -1e9;

  const E = p["embed.weight"];
  const pos = p["positions.weight"].slice([0, t]); // [T, D]
  let x = np.matmul(idsHot, E.ref).reshape([b, t, d]).mul(Math.sqrt(d)).add(pos).reshape([b * t, d]);
  for (let l = 0; l < layers; l++) {
    const pre = `layers.${l}`;
    const a = layerNorm(x.ref, `${pre}.selfNorm`);
    const q = split(lin(a.ref, `${pre}.selfAttn.q`)).mul(1 / Math.sqrt(dh));
    const k = split(lin(a.ref, `${pre}.selfAttn.k`));
    const v = split(lin(a, `${pre}.selfAttn.v`));
    const scores = np.matmul(q, k.transpose([0, 1, 3, 2])).add(np.array(mask, { shape: [t, t] })); // [B, H, T, T]
    const att = np.matmul(nn.softmax(scores, -1), v).transpose([0, 2, 1, 3]).reshape([b * t, d]);
    x = x.add(lin(att, `${pre}.selfAttn.o`));
    const f = lin(nn.gelu(lin(layerNorm(x.ref, `${pre}.ffnNorm`), `${pre}.ffn.fc1`), { approximate: false }), `${pre}.ffn.fc2`);
    x = x.add(f);
  }
  const logits = np.matmul(layerNorm(x, "norm"), E.transpose()); // [N, V], tied to E
  return nn.logSoftmax(logits, -1).mul(onehot).sum().mul(-1 / (b * t));
}

export function jaxTrainer(jax: Jax, label: string, w: LMWeights, ids: Int32Array, targets: Int32Array, b: number, t: number): LMTrainer {
  const np = jax.numpy;
  let params: Params = {}, m: Params = {}, v: Params = {};
  w.names.forEach((n, i) => {
    params[n] = np.array(w.data[i], { shape: w.shapes[i] });
    m[n] = np.zeros(w.shapes[i]);
    v[n] = np.zeros(w.shapes[i]);
  });
  const oneHot = (cls: Int32Array) => {
    const hot = new Float32Array(cls.length * w.config.vocab);
    cls.forEach((c, r) => (hot[r * w.config.vocab + c] = 1));
    return np.array(hot, { shape: [cls.length, w.config.vocab] });
  };
  const idsA = oneHot(ids), onehot = oneHot(targets);
  const { lr, beta1, beta2, eps, weightDecay } = ADAMW;

  // jit(valueAndGrad(loss)) and jit(AdamW): two compiled functions, as with optax's update
  const lossGrad = jax.jit(jax.valueAndGrad((p: Params, ids1: A, hot1: A) => lossFn(jax, w, b, t, p, ids1, hot1)));
  const adamw = jax.jit((p: Params, g: Params, m0: Params, v0: Params, bc1: A, bc2: A) => {
    const np1: Params = {}, nm: Params = {}, nv: Params = {};
    for (const n of w.names) {
      const mi = m0[n].mul(beta1).add(g[n].ref.mul(1 - beta1));
      const vi = v0[n].mul(beta2).add(np.square(g[n]).mul(1 - beta2));
      // p ← p(1 − lr·λ) − lr·(m/bc1)/(√(v/bc2) + ε)
      const upd = mi.ref.div(bc1.ref).div(np.sqrt(vi.ref.div(bc2.ref)).add(eps));
      np1[n] = p[n].mul(1 - lr * weightDecay).sub(upd.mul(lr));
      nm[n] = mi;
      nv[n] = vi;
    }
    bc1.dispose();
    bc2.dispose();
    return [np1, nm, nv];
  });
  let step = 0;
  return {
    name: label,
    params: numParams(w),
    async step() {
      step++;
      const bc1 = np.array(1 - beta1 ** step), bc2 = np.array(1 - beta2 ** step);
      const [loss, g] = lossGrad(jax.tree.ref(params), idsA.ref, onehot.ref);
      const [p1, m1, v1] = adamw(params, g, m, v, bc1, bc2);
      params = p1;
      m = m1;
      v = v1;
      await jax.blockUntilReady(params); // the update is part of the step
      return (await loss.data())[0]; // data() frees `loss`
    },
    dispose() {
      for (const tree of [params, m, v]) for (const x of Object.values(tree)) x.dispose();
      idsA.dispose();
      onehot.dispose();
      lossGrad.dispose();
      adamw.dispose();
    },
  };
}

/**
 * Greedy decoding with a KV cache, the JAX way: jit wants static shapes, so the cache is a
 * preallocated [H, L, Dh] per layer, a step writes position `pos` through a one-hot mask
 * (K ← K·(1 − e_pos) + k·e_pos) and attends over all L slots with −1e9 on the unwritten ones.
 * The prompt is fed through the same compiled step, one token at a time.
 */
export function jaxDecoder(jax: Jax, label: string, w: LMWeights, maxLen: number): LMDecoder {
  const np = jax.numpy, nn = jax.nn;
  const { dModel: d, heads: h, layers, vocab } = w.config;
  const dh = d / h, L = maxLen;
  const params: Params = {};
  w.names.forEach((n, i) => (params[n] = np.array(w.data[i], { shape: w.shapes[i] })));

  // (params, K, V caches, one-hot token [1, V], one-hot position [1, L], mask [1, L]) → [argmax, K', V']
  const step = jax.jit((p: Params, ks: A[], vs: A[], tokHot: A, posHot: A, mask: A) => {
    const lin = (x: A, name: string) => np.matmul(x, p[`${name}.weight`].transpose()).add(p[`${name}.bias`]);
    const layerNorm = (x: A, name: string) => {
      const xc = x.ref.sub(x.mean(-1, { keepdims: true }));
      const variance = np.square(xc.ref).mean(-1, { keepdims: true });
      return xc.mul(np.reciprocal(np.sqrt(variance.add(1e-5)))).mul(p[`${name}.weight`]).add(p[`${name}.bias`]);
    };
    const E = p["embed.weight"];
    const slot = posHot.ref.reshape([1, L, 1]); // e_pos over [H, L, Dh]
    let x = np.matmul(tokHot, E.ref).mul(Math.sqrt(d)).add(np.matmul(posHot, p["positions.weight"].slice([0, L]))); // [1, D]
    const nk: A[] = [], nv: A[] = [];
    for (let l = 0; l < layers; l++) {
      const pre = `layers.${l}`;
      const a = layerNorm(x.ref, `${pre}.selfNorm`);
      const q = lin(a.ref, `${pre}.selfAttn.q`).reshape([h, 1, dh]).mul(1 / Math.sqrt(dh));
      const k = lin(a.ref, `${pre}.selfAttn.k`).reshape([h, 1, dh]);
      const v = lin(a, `${pre}.selfAttn.v`).reshape([h, 1, dh]);
      const K = ks[l].mul(slot.ref.mul(-1).add(1)).add(k.mul(slot.ref)); // [H, L, Dh]
      const V = vs[l].mul(slot.ref.mul(-1).add(1)).add(v.mul(slot.ref));
      const scores = np.matmul(q, K.ref.transpose([0, 2, 1])).add(mask.ref.reshape([1, 1, L])); // [H, 1, L]
      const att = np.matmul(nn.softmax(scores, -1), V.ref).reshape([1, d]);
      x = x.add(lin(att, `${pre}.selfAttn.o`));
      x = x.add(lin(nn.gelu(lin(layerNorm(x.ref, `${pre}.ffnNorm`), `${pre}.ffn.fc1`), { approximate: false }), `${pre}.ffn.fc2`));
      nk.push(K);
      nv.push(V);
    }
    slot.dispose();
    mask.dispose();
    const logits = np.matmul(layerNorm(x, "norm"), E.transpose()); // [1, V]
    return [np.argmax(logits.reshape([vocab])), nk, nv];
  });

  return {
    name: label,
    async decode(prompt, steps) {
      if (prompt.length + steps > L) throw new Error(`jaxDecoder: ${prompt.length} + ${steps} positions exceed the cache of ${L}`);
      let ks: A[] = Array.from({ length: layers }, () => np.zeros([h, L, dh]));
      let vs: A[] = Array.from({ length: layers }, () => np.zeros([h, L, dh]));
      const hot = (n: number, i: number) => {
        const a = new Float32Array(n);
        a[i] = 1;
        return np.array(a, { shape: [1, n] });
      };
      const feed = async (tok: number, pos: number): Promise<number> => {
        const mask = new Float32Array(L);
        mask.fill(-1e9, pos + 1);
        const [next, k1, v1] = step(jax.tree.ref(params), ks, vs, hot(vocab, tok), hot(L, pos), np.array(mask, { shape: [1, L] }));
        ks = k1;
        vs = v1;
        return (await next.data())[0];
      };
      let t0 = performance.now();
      let tok = 0;
      for (let i = 0; i < prompt.length; i++) tok = await feed(prompt[i], i);
      const prefillMs = performance.now() - t0;
      const tokens = [tok], stepMs: number[] = [];
      for (let s = 0; s < steps; s++) {
        t0 = performance.now();
        tok = await feed(tok, prompt.length + s);
        stepMs.push(performance.now() - t0);
        tokens.push(tok);
      }
      for (const a of [...ks, ...vs]) a.dispose();
      return { tokens, stepMs, prefillMs };
    },
    dispose() {
      for (const x of Object.values(params)) x.dispose();
      step.dispose();
    },
  };
}
