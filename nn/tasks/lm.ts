// Language modelling with a causal LM on plain text (Tiny Shakespeare, the Jane Austen novels).
//
// Text → paragraphs (split at blank lines; the lines of a paragraph joined with spaces, so hard
// wrapping disappears) → one stream  bos p₁ eos bos p₂ eos …  → windows of seqLen + 1 tokens.
//   loss = CE_ls(model(w[0 … T−1]), w[1 … T])   per token
// Validation: the last `validFraction` of each file's paragraphs, in order; the metric is the
// per-token NLL (perplexity = exp(nll)). Files named in `exclude` are left out altogether (held out
// for a later evaluation, e.g. one novel).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { crossEntropy, tensor } from "../../core/index.ts";
import { LMBatcher, type LMBatch } from "../data/lm-batcher.ts";
import { defaultDataDir } from "../data/paths.ts";
import { isCausalLM, type AnyModel, type CausalLM } from "../models/index.ts";
import type { OptionTable } from "../options.ts";
import type { BpeTokenizer } from "../tokenizer/bpe.ts";
import type { TrainConfig } from "../train/config.ts";
import { crossEntropySums, type PreparedTask, type Task, type TaskData } from "./task.ts";
import { sha256 } from "./translation.ts";

const OPTIONS: OptionTable = {
  data: { spec: { kind: "string" }, default: "", help: "a text file, or a folder of .txt files (default: <data dir>/tinyshakespeare/input.txt)", resumable: true },
  exclude: { spec: { kind: "string" }, default: "", help: "comma-separated file names in the folder to leave out (held-out text)" },
  validFraction: { spec: { kind: "number", min: 0, max: 0.5, above: true }, default: 0.05, help: "fraction of each file's paragraphs (its end) kept for validation" },
  tokenizer: { spec: { kind: "string" }, default: "", help: "use this tokenizer.json instead of learning one" },
  vocabSize: { spec: { kind: "int", min: 300 }, default: 4000, help: "BPE vocabulary size" },
  seqLen: { spec: { kind: "int", min: 1 }, default: 128, help: "tokens per training sequence" },
  labelSmoothing: { spec: { kind: "number", min: 0, max: 0.99 }, default: 0, help: "label smoothing" },
  maxNewTokens: { spec: { kind: "int", min: 1 }, default: 100, help: "generation default saved with the model", resumable: true },
  temperature: { spec: { kind: "number", min: 0 }, default: 0.8, help: "generation default saved with the model (0: greedy)", resumable: true },
  topP: { spec: { kind: "number", min: 0, max: 1, above: true }, default: 0.95, help: "generation default saved with the model", resumable: true },
};

// The files a run reads, in a fixed (sorted) order.
export function textFiles(c: TrainConfig): string[] {
  const given = c.data as string;
  const path = given ? resolve(given) : join(defaultDataDir(), "tinyshakespeare", "input.txt");
  if (!existsSync(path)) throw new Error(`\`data\`: ${path} does not exist (a text file, or a folder of .txt files)`);
  const exclude = (c.exclude as string).split(",").map((s) => s.trim()).filter(Boolean);
  if (!statSync(path).isDirectory()) {
    if (exclude.length) throw new Error(`\`exclude\` names files in a folder, but \`data\` ${path} is a file`);
    return [path];
  }
  const all = readdirSync(path).filter((f) => f.endsWith(".txt")).sort();
  const unknown = exclude.filter((f) => !all.includes(f));
  if (unknown.length) throw new Error(`\`exclude\`: ${unknown.join(", ")} not among the .txt files of ${path} (${all.join(", ")})`);
  const files = all.filter((f) => !exclude.includes(f)).map((f) => join(path, f));
  if (files.length === 0) throw new Error(`\`data\`: ${path} holds no .txt file to train on${exclude.length ? " once `exclude` is applied" : ""}`);
  return files;
}

// Paragraphs of a text: blank lines separate them; inner line breaks become spaces.
export function paragraphs(text: string): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const line = raw.trim();
    if (line === "") {
      if (cur.length) out.push(cur.join(" "));
      cur = [];
    } else cur.push(line);
  }
  if (cur.length) out.push(cur.join(" "));
  return out;
}

// The paragraphs of the training files, split into training and validation (the last
// `validFraction` of each file), and a fingerprint of the files. Shared with tasks that train on
// the same text (glide).
export function readText(c: TrainConfig): { train: string[]; valid: string[]; fingerprint: string } {
  const files = textFiles(c);
  const frac = c.validFraction as number;
  const train: string[] = [], valid: string[] = [];
  const hash: Uint8Array[] = [];
  for (const f of files) {
    const bytes = readFileSync(f);
    hash.push(Buffer.from(basename(f) + "\0"), bytes, Buffer.from([0]));
    const ps = paragraphs(bytes.toString("utf8"));
    if (ps.length < 2) throw new Error(`${f} has ${ps.length} paragraph(s); at least 2 are needed (training and validation)`);
    const nValid = Math.max(1, Math.round(ps.length * frac));
    // A loop, not push(...): a file may hold more paragraphs than V8 accepts as arguments.
    for (let i = 0; i < ps.length; i++) (i < ps.length - nValid ? train : valid).push(ps[i]);
  }
  return { train, valid, fingerprint: sha256(Buffer.concat(hash)) };
}

function readData(c: TrainConfig): TaskData {
  const { train, valid, fingerprint } = readText(c);
  return {
    fingerprint,
    tokenizerLines: () => train,
    prepare: (tok, cfg) => prepare(tok, cfg, train, valid),
  };
}

// bos p₁ eos bos p₂ eos … as one Int32Array.
export function encodeStream(tok: BpeTokenizer, ps: string[]): Int32Array {
  const parts: ArrayLike<number>[] = [];
  let n = 0;
  for (const p of ps) {
    const ids = tok.encode(p);
    parts.push(ids);
    n += ids.length + 2;
  }
  const out = new Int32Array(n);
  let at = 0;
  for (const ids of parts) {
    out[at++] = tok.bosId;
    for (let i = 0; i < ids.length; i++) out[at++] = ids[i];
    out[at++] = tok.eosId;
  }
  return out;
}

function prepare(tok: BpeTokenizer, c: TrainConfig, trainText: string[], validText: string[]): PreparedTask<LMBatch> {
  const T = c.seqLen as number;
  const B = Math.max(1, Math.floor(c.maxTokens / T));
  const trainStream = encodeStream(tok, trainText), validStream = encodeStream(tok, validText);
  if (validStream.length < T + 1) throw new Error(`the validation text is ${validStream.length} tokens, fewer than one \`seqLen\` + 1 = ${T + 1}; raise \`validFraction\` or lower \`seqLen\``);
  const train = new LMBatcher(trainStream, T, B, { seed: c.seed });
  const valid = [...new LMBatcher(validStream, T, B, { shuffle: false }).epochBatches()];
  const ls = c.labelSmoothing as number;
  const run = (m: AnyModel, b: LMBatch) => {
    const backend = m.parameters()[0].backend;
    const input = tensor(b.input, { dtype: "int32", shape: b.shape, backend });
    const target = tensor(b.target, { dtype: "int32", shape: b.shape, backend });
    return { logits: causal(m).forward(input), target }; // [B, T, V]
  };
  return {
    train,
    valid,
    describe: `${trainText.length} paragraphs, ${trainStream.length} training tokens in ${train.numWindows} sequences of ${T}; ${validStream.length} validation tokens`,
    tokens: (b) => b.numTokens,
    srcTokens: () => 0,
    loss: (m, b) => {
      const { logits, target } = run(m, b);
      return crossEntropy(logits, target, { labelSmoothing: ls });
    },
    validSums: (m, b) => {
      const { logits, target } = run(m, b);
      return crossEntropySums(logits, target, { labelSmoothing: ls });
    },
    exportInfo: () => ({ decoding: { maxNewTokens: c.maxNewTokens as number, temperature: c.temperature as number, topP: c.topP as number } }),
  };
}

function causal(m: AnyModel): CausalLM {
  if (!isCausalLM(m)) throw new Error(`language modelling needs a causal LM, got a ${m.family} model`);
  return m;
}

export const lmTask: Task = {
  name: "lm",
  summary: "language modelling on plain text with a causal LM (perplexity on validation)",
  family: "causal-lm",
  defaultModel: "lm",
  options: OPTIONS,
  overrideDefaults: { bestBy: "loss", lr: 1e-3, warmup: 200, weightDecay: 0.01, maxSteps: 2000, evalEvery: 250, checkpointEvery: 250, maxTokens: 4096 },
  check: (c) => {
    const p: string[] = [];
    const T = c.seqLen as number;
    if (typeof c.maxLen === "number" && T > c.maxLen) p.push(`\`seqLen\` ${T} needs \`maxLen\` ≥ ${T}, got ${c.maxLen}`);
    if (T > c.maxTokens) p.push(`\`seqLen\` ${T} needs \`maxTokens\` ≥ ${T} (a batch holds maxTokens / seqLen sequences), got ${c.maxTokens}`);
    return p;
  },
  readData,
};
