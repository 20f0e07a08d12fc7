// Training a GliDe draft for a frozen target LM (Du et al. 2024; the authors' ds_train_glide.py).
//
// The text is read and batched as for language modelling (nn/tasks/lm.ts). Each batch:
//   1. the target runs over the input under noGrad, filling a KV cache: K_ℓ, V_ℓ [B, H, T, Dh]
//   2. the draft runs over the same input, its layers glimpsing those keys and values through the
//      block mask (token p sees target positions < B·⌊p/B⌋, nn/models/glide.ts)
//   3. loss = cross-entropy of the draft's logits against the next tokens (the data, not the
//      target's predictions, as in the authors' code)
// The target is loaded read-only from its model directory and frozen: its parameters take no
// gradient, and the optimizer and checkpoints only ever see the draft's. Its tokenizer is the
// draft's (a draft must share the target's ids), and the fingerprint of the training data covers
// the target's weights, so a run cannot resume against another target.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { crossEntropy, noGrad, tensor, type Tensor } from "../../core/index.ts";
import { LMBatcher, type LMBatch } from "../data/lm-batcher.ts";
import { glideTargetOf, isCausalLM, isGlideDraft, loadModelDir, type AnyModel, type CausalLM, type DecodeCache, type GlideDraftModel } from "../models/index.ts";
import type { OptionTable } from "../options.ts";
import { BpeTokenizer } from "../tokenizer/bpe.ts";
import type { TrainConfig } from "../train/config.ts";
import { encodeStream, readText } from "./lm.ts";
import { crossEntropySums, type PreparedTask, type Task, type TaskData } from "./task.ts";
import { sha256 } from "./translation.ts";

const OPTIONS: OptionTable = {
  target: { spec: { kind: "string" }, default: "", help: "model directory of the target LM (read only; its tokenizer is the draft's)" },
  data: { spec: { kind: "string" }, default: "", help: "a text file, or a folder of .txt files (default: <data dir>/tinyshakespeare/input.txt)", resumable: true },
  exclude: { spec: { kind: "string" }, default: "", help: "comma-separated file names in the folder to leave out (held-out text)" },
  validFraction: { spec: { kind: "number", min: 0, max: 0.5, above: true }, default: 0.05, help: "fraction of each file's paragraphs (its end) kept for validation" },
  seqLen: { spec: { kind: "int", min: 1 }, default: 128, help: "tokens per training sequence" },
  blockSize: { spec: { kind: "int", min: 1, max: 64 }, default: 5, help: "glimpse block: a token sees target positions before its block (use ≥ gamma)" },
  labelSmoothing: { spec: { kind: "number", min: 0, max: 0.99 }, default: 0, help: "label smoothing" },
  gamma: { spec: { kind: "int", min: 1, max: 64 }, default: 4, help: "speculative decoding default saved with the draft: tokens drafted per round", resumable: true },
  capeBins: { spec: { kind: "string", nonEmpty: true }, default: "8,8,8,6,6,6,4,4,2,2", help: "CaPE default saved with the draft: tokens verified per depth by draft confidence (10 counts)", resumable: true },
  method: { spec: { kind: "enum", values: ["glide", "glide-cape"] }, default: "glide-cape", help: "speculative decoding default saved with the draft: with or without CaPE", resumable: true },
};

// sha256 of a file's bytes.
function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function readData(c: TrainConfig): TaskData {
  const dir = resolve(c.target as string);
  glideTargetOf(dir); // a kind-lm directory, checked before any text is read
  const fixedTokenizer = BpeTokenizer.load(join(dir, "tokenizer.json"));
  const targetSha = fileSha256(join(dir, "model.safetensors"));
  const text = readText(c);
  return {
    fingerprint: sha256(`${text.fingerprint}\0target:${targetSha}\0tokenizer:${sha256(JSON.stringify(fixedTokenizer.toJSON()))}`),
    tokenizerLines: () => text.train,
    fixedTokenizer,
    prepare: (tok, cfg) => prepare(tok, cfg, dir, targetSha, text.train, text.valid),
  };
}

function prepare(tok: BpeTokenizer, c: TrainConfig, dir: string, targetSha: string, trainText: string[], validText: string[]): PreparedTask<LMBatch> {
  const T = c.seqLen as number;
  const B = Math.max(1, Math.floor(c.maxTokens / T));
  const trainStream = encodeStream(tok, trainText), validStream = encodeStream(tok, validText);
  if (validStream.length < T + 1) throw new Error(`the validation text is ${validStream.length} tokens, fewer than one \`seqLen\` + 1 = ${T + 1}; raise \`validFraction\` or lower \`seqLen\``);
  const loaded = loadModelDir(dir);
  if (!isCausalLM(loaded.model)) {
    loaded.model.dispose();
    throw new Error(`\`target\`: ${dir} holds a ${loaded.model.family} model, not a causal LM`);
  }
  const target: CausalLM = loaded.model;
  if (target.config.maxLen < T) {
    target.dispose();
    throw new Error(`\`seqLen\` ${T} exceeds the target's context of ${target.config.maxLen} positions`);
  }
  for (const p of target.parameters()) p.requiresGrad_(false); // frozen: no gradient, no optimizer state
  target.eval();
  const train = new LMBatcher(trainStream, T, B, { seed: c.seed });
  const valid = [...new LMBatcher(validStream, T, B, { shuffle: false }).epochBatches()];
  const ls = c.labelSmoothing as number, blockSize = c.blockSize as number;
  // The target's cache of the latest batch stays alive until the next one: the backward pass,
  // which runs after loss() returns, reads its keys and values.
  let held: DecodeCache | undefined;
  const run = (m: AnyModel, b: LMBatch): { logits: Tensor; target: Tensor } => {
    if (!isGlideDraft(m)) throw new Error(`the glide task trains GliDe drafts, got a ${m.family} model`);
    const draft: GlideDraftModel = m;
    const backend = m.parameters()[0].backend;
    const input = tensor(b.input, { dtype: "int32", shape: b.shape, backend });
    const labels = tensor(b.target, { dtype: "int32", shape: b.shape, backend });
    held?.dispose();
    const glimpse = (held = target.createCache());
    noGrad(() => target.forward(input, { cache: glimpse, output: "cache" }).dispose()); // only the keys and values are wanted
    return { logits: draft.forward(input, { glimpse, blockSize }), target: labels };
  };
  return {
    train,
    valid,
    describe: `${trainText.length} paragraphs, ${trainStream.length} training tokens in ${train.numWindows} sequences of ${T}; ${validStream.length} validation tokens; target ${dir} (frozen, ${(target.numParameters() / 1e6).toFixed(2)}M parameters)`,
    tokens: (b) => b.numTokens,
    srcTokens: () => 0,
    loss: (m, b) => {
      const { logits, target: y } = run(m, b);
      return crossEntropy(logits, y, { labelSmoothing: ls });
    },
    validSums: (m, b) => {
      const { logits, target: y } = run(m, b);
      return crossEntropySums(logits, y, { labelSmoothing: ls });
    },
    exportInfo: () => ({ decoding: { method: c.method as string, gamma: c.gamma as number, capeBins: c.capeBins as string, blockSize, targetSha256: targetSha } }),
    dispose: () => {
      held?.dispose();
      held = undefined;
      target.dispose();
    },
  };
}

export const glideTask: Task = {
  name: "glide",
  summary: "a GliDe draft for a frozen target LM (speculative decoding); the target's tokenizer",
  family: "glide-draft",
  defaultModel: "glide",
  options: OPTIONS,
  overrideDefaults: { bestBy: "loss", lr: 5e-4, warmup: 200, weightDecay: 0, beta2: 0.95, maxSteps: 2000, evalEvery: 250, checkpointEvery: 250, maxTokens: 4096 },
  check: (c) => {
    const p: string[] = [];
    const T = c.seqLen as number;
    if (!c.target) p.push("`target` must name the target LM's model directory (the draft reads its KV cache)");
    if (typeof c.maxLen === "number" && c.maxLen > 0 && T > c.maxLen) p.push(`\`seqLen\` ${T} needs \`maxLen\` ≥ ${T}, got ${c.maxLen}`);
    if (T > c.maxTokens) p.push(`\`seqLen\` ${T} needs \`maxTokens\` ≥ ${T} (a batch holds maxTokens / seqLen sequences), got ${c.maxTokens}`);
    const bins = String(c.capeBins).split(",").map((s) => Number(s.trim()));
    if (bins.length !== 10 || bins.some((k) => !Number.isInteger(k) || k < 1 || k > 64)) p.push(`\`capeBins\` must be 10 comma-separated integers in [1, 64], got ${JSON.stringify(c.capeBins)}`);
    if ((c.gamma as number) > (c.blockSize as number)) p.push(`\`gamma\` ${c.gamma} exceeds \`blockSize\` ${c.blockSize}: drafts would glimpse a cache staler than any seen in training`);
    return p;
  },
  readData,
};
