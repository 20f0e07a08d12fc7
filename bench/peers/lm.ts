// The benchmark language model as every peer must build it, and what the peers get from Hasten:
// its initial weights by name, the token batch and the decoding prompt.
//
// The model is Hasten's TransformerLM with LM_BENCH_CONFIG and dropout 0 (nn/models/lm.ts):
//   x = √D · E[ids] + P[0:T]                        E [V, D] token embedding, P [512, D] learned
//   per layer (pre-LN):  x += Wo·Attn(LN₁(x)),  x += FFN(LN₂(x)),  FFN = fc2(GELU_erf(fc1(·)))
//   logits = LN(x) · Eᵀ                             tied: the output projection is E itself
// Attention: 4 heads, q scaled by 1/√Dh before q·kᵀ, causal; all Linear layers have biases;
// LayerNorm eps 1e-5. Loss: mean cross-entropy over all B·T tokens. AdamW: lr 1e-3, betas
// (0.9, 0.999), eps 1e-8, weight decay 0.01 on every parameter (Hasten's defaults).
// Every peer loads the same initial weights, so the same batch must give the same loss.
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import type { LMConfig } from "../../nn/models/lm.ts";

export interface LMWeights {
  config: Pick<LMConfig, "vocab" | "dModel" | "heads" | "ffn" | "layers" | "maxLen">;
  names: string[];
  shapes: number[][];
  data: Float32Array[];
}

export const ADAMW = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } as const;

export function numParams(w: LMWeights): number {
  return w.data.reduce((s, d) => s + d.length, 0);
}

export function weight(w: LMWeights, name: string): Float32Array {
  const i = w.names.indexOf(name);
  if (i < 0) throw new Error(`bench LM: no weight named ${name} (have ${w.names.length} weights)`);
  return w.data[i];
}

/** Deterministic token ids in [0, vocab): a 32-bit LCG, so every peer can be handed the same. */
export function tokens(n: number, vocab: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = Math.floor((s / 2 ** 32) * vocab);
  }
  return out;
}

/** A language-modelling batch: ids [B, T] and targets [B, T] = ids shifted by one position. */
export function lmBatch(b: number, t: number, vocab: number, seed = 1): { ids: Int32Array; targets: Int32Array } {
  const seq = tokens(b * (t + 1), vocab, seed);
  const ids = new Int32Array(b * t), targets = new Int32Array(b * t);
  for (let r = 0; r < b; r++) {
    ids.set(seq.subarray(r * (t + 1), r * (t + 1) + t), r * t);
    targets.set(seq.subarray(r * (t + 1) + 1, (r + 1) * (t + 1)), r * t);
  }
  return { ids, targets };
}

/**
 * Writes the weights and int32 arrays for the PyTorch script into a fresh temp folder:
 * manifest.json (config, names, shapes, and the arrays' file names) and raw little-endian files.
 */
export function writeForPython(w: LMWeights, arrays: Record<string, Int32Array>): string {
  const dir = mkdtempSync(join(os.tmpdir(), "hasten-bench-lm-"));
  const put = (name: string, bytes: NodeJS.ArrayBufferView) => {
    writeFileSync(join(dir, `${name}.tmp`), bytes);
    renameSync(join(dir, `${name}.tmp`), join(dir, name));
  };
  const total = numParams(w);
  const flat = new Float32Array(total);
  let off = 0;
  for (const d of w.data) {
    flat.set(d, off);
    off += d.length;
  }
  put("weights.f32", flat);
  for (const [k, a] of Object.entries(arrays)) put(`${k}.i32`, a);
  put("manifest.json", Buffer.from(JSON.stringify({
    config: w.config, names: w.names, shapes: w.shapes, arrays: Object.fromEntries(Object.entries(arrays).map(([k, a]) => [k, { file: `${k}.i32`, length: a.length }])),
  })));
  return dir;
}

/** A peer's training loop on one fixed batch. */
export interface LMTrainer {
  name: string;
  params: number;
  /** One forward + backward + AdamW step, complete when it resolves; the loss before the update. */
  step(): Promise<number>;
  dispose(): void;
}

/** Greedy decoding at batch 1 with a KV cache: prefill the prompt, then one token per step. */
export interface LMDecoder {
  name: string;
  /** The greedy tokens after the prompt, and the time (ms) of each step, argmax and read-back included. */
  decode(prompt: Int32Array, steps: number): Promise<{ tokens: number[]; stepMs: number[]; prefillMs: number }>;
  dispose(): void;
}
