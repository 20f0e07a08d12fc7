// Non-autoregressive translation: the parallel corpus of `translation` (raw, or distilled by
// `hasten distill`), a non-autoregressive model (cmlm, nat, ctc), and one of the objectives:
//
//   xe          cmlm: k ~ U{1 … n} random target positions replaced by [MASK], cross-entropy on
//               them (Ghazvininejad et al. 2019); nat: every position, from the copied source.
//   oaxe        every position masked; cross-entropy under the best one-to-one alignment of
//               positions and target tokens (Du et al. 2021), `truncate` drops unlikely pairs.
//   ngram-oaxe  the same over n-gram windows (`ngram`; Du et al. 2022).
//   axe         the best monotonic alignment, skipped predictions scored as [MASK] (the ε) and
//               skipped targets weighted by `axeDelta` (Ghazvininejad et al. 2020).
//   ctc         ctc models: −log Σ over the paths that collapse to the target, blank = [MASK].
// Every objective is averaged per target token.
//
// Glancing training (`glance` λ > 0, cmlm with xe; GLAT, Qian et al. 2021, see glancing.ts): the
// xe masks are not drawn uniformly but from a first all-[MASK] pass: ⌊λ·(wrong tokens)⌋ target
// tokens are revealed, the rest are masked and scored.
//
// Length: a cross-entropy on the length head's prediction of n, weighted by `lengthLossWeight`
// (not for ctc, whose length is r·S). Masks are drawn from the model's dropout generator, whose
// state every checkpoint saves, so a resumed run draws the same masks. Validation masks every
// position (the one-pass inference condition), so it draws nothing.
import { cat, crossEntropy, noGrad, tensor, tidy, type Tensor } from "../../core/index.ts";
import { axeLoss, ctcLoss, ngramOaxeLoss, oaxeLoss } from "../losses/index.ts";
import type { Batch } from "../data/batcher.ts";
import { corpusBleu } from "../metrics/bleu.ts";
import { copyIndex, isNonAutoregressive, type AnyModel, type NonAutoregressiveModel } from "../models/index.ts";
import type { OptionTable } from "../options.ts";
import type { BpeTokenizer } from "../tokenizer/bpe.ts";
import type { TrainConfig } from "../train/config.ts";
import { distinctPositions, glanceInputs } from "./glancing.ts";
import type { PreparedTask, Task } from "./task.ts";
import { parallelBatches, parallelProblems, readParallelCorpus, TRANSLATION_OPTIONS } from "./translation.ts";

const pick = (keys: string[]): OptionTable => Object.fromEntries(keys.map((k) => [k, TRANSLATION_OPTIONS[k]]));

export const NAT_LOSSES = ["xe", "oaxe", "axe", "ngram-oaxe", "ctc"] as const;
export type NatLoss = (typeof NAT_LOSSES)[number];

const OPTIONS: OptionTable = {
  ...pick(["src", "tgt", "data", "trainSplit", "validSplit", "tokenizer", "vocabSize", "maxSentenceTokens", "labelSmoothing", "validBleuLimit"]),
  loss: { spec: { kind: "enum", values: NAT_LOSSES }, default: "xe", help: "objective: xe (cmlm masks / nat all), oaxe, axe, ngram-oaxe, ctc (ctc models)" },
  lengthLossWeight: { spec: { kind: "number", min: 0 }, default: 0.1, help: "weight of the length head's loss" },
  truncate: { spec: { kind: "number", min: 0, max: 1 }, default: 0, help: "oaxe: drop aligned pairs with probability below this (0: none)" },
  axeDelta: { spec: { kind: "number", min: 0 }, default: 1, help: "axe: skip-target penalty δ" },
  ngram: { spec: { kind: "int", min: 1, max: 16 }, default: 2, help: "ngram-oaxe: block size n" },
  glance: { spec: { kind: "number", min: 0, max: 1 }, default: 0, help: "glancing training (GLAT; cmlm with xe): reveal this fraction of a first all-[MASK] pass's wrong tokens, score the rest (0: off; the paper uses 0.5 → 0.3)" },
  decoder: { spec: { kind: "enum", values: ["auto", "nat", "mask-predict", "ctc"] }, default: "auto", help: "decoding saved with the model (auto: ctc for ctc models, else nat)", resumable: true },
  lengthBeam: { spec: { kind: "int", min: 1, max: 64 }, default: 3, help: "candidate lengths per sentence saved with the model", resumable: true },
  iterations: { spec: { kind: "int", min: 1, max: 100 }, default: 1, help: "mask-predict iterations saved with the model", resumable: true },
};

interface NatRows {
  src: Int32Array; // [B, S]
  srcShape: [number, number];
  srcLens: number[];
  y: Int32Array; // [B, N] targets (no bos/eos), padded
  n: number[]; // target lengths
  N: number;
}

// The target y₁ … yₙ of each row, from the batch's tgtOut = y eos.
function rowsOf(b: Batch): NatRows {
  const [B, T] = b.tgtShape, N = Math.max(1, T - 1);
  const y = new Int32Array(B * N).fill(b.padId);
  const n = b.tgtLengths.map((l) => l - 1);
  for (let r = 0; r < B; r++) for (let j = 0; j < n[r]; j++) y[r * N + j] = b.tgtOut[r * T + j];
  return { src: b.src, srcShape: b.srcShape, srcLens: b.srcLengths, y, n, N };
}

function natModel(m: AnyModel): NonAutoregressiveModel {
  if (!isNonAutoregressive(m)) throw new Error(`the nat task needs a non-autoregressive model (cmlm, nat, ctc), got a ${m.family} model`);
  return m;
}

function prepare(tok: BpeTokenizer, c: TrainConfig, corpus: ReturnType<typeof readParallelCorpus>): PreparedTask<Batch> {
  const { train, valid, kept, dropped } = parallelBatches(tok, c, corpus.train, corpus.valid);
  const loss = c.loss as NatLoss, ls = c.labelSmoothing as number, lw = c.lengthLossWeight as number;
  const maxLen = c.maxLen as number, pad = tok.padId, glance = c.glance as number;

  // Decoder inputs and the per-position targets the loss reads (pad = not scored).
  const inputs = (m: NonAutoregressiveModel, r: NatRows, training: boolean) => {
    const B = r.srcShape[0];
    if (m.config.upsample > 0) {
      const T = Math.min(maxLen, Math.max(...r.srcLens.map((s) => m.config.upsample * Math.max(1, s))));
      const dec = new Int32Array(B * T).fill(pad);
      r.srcLens.forEach((s, b) => {
        const len = Math.min(maxLen, m.config.upsample * Math.max(1, s)), map = copyIndex(s, len);
        for (let j = 0; j < len; j++) dec[b * T + j] = s === 0 ? pad : r.src[b * r.srcShape[1] + map[j]];
      });
      return { dec, T, target: r.y, fromSource: true };
    }
    const T = r.N, dec = new Int32Array(B * T).fill(pad), target = new Int32Array(B * T).fill(pad);
    for (let b = 0; b < B; b++) {
      const n = r.n[b];
      if (m.config.decoderInput === "copy") {
        const map = copyIndex(r.srcLens[b], n);
        for (let j = 0; j < n; j++) {
          dec[b * T + j] = r.srcLens[b] === 0 ? pad : r.src[b * r.srcShape[1] + map[j]];
          target[b * T + j] = r.y[b * T + j];
        }
        continue;
      }
      // cmlm: all positions masked (validation, and every non-xe loss), else k ~ U{1 … n} of them.
      dec.fill(m.config.maskId, b * T, b * T + n);
      if (!training || loss !== "xe") {
        target.set(r.y.subarray(b * T, b * T + n), b * T);
        continue;
      }
      const g = m.dropoutGenerator;
      const k = 1 + Math.floor(g.random() * n);
      for (let j = 0; j < n; j++) dec[b * T + j] = r.y[b * T + j];
      for (const j of distinctPositions(n, k, () => g.random())) {
        dec[b * T + j] = m.config.maskId;
        target[b * T + j] = r.y[b * T + j];
      }
    }
    return { dec, T, target, fromSource: m.config.decoderInput === "copy" };
  };

  // GLAT's inputs: a first pass with every position masked (no gradient, same encoder output),
  // then glanceInputs reveals ⌊λ·wrong⌋ target tokens per sentence, drawn from the dropout RNG.
  const glanced = (m: NonAutoregressiveModel, r: NatRows, memory: Tensor, srcMask: Tensor) => {
    const B = r.srcShape[0], T = r.N;
    const first = inputs(m, r, false).dec; // every target position [MASK]
    const pred = tidy(() => noGrad(() => {
      const d = tensor(first, { dtype: "int32", shape: [B, T], backend: memory.backend });
      return m.decodeParallel(d, memory, srcMask, d.eq(pad), false).argmax(-1); // [B, T]
    }));
    let predicted: ArrayLike<number>;
    try {
      if (!pred.backend.sync) throw new Error(`\`glance\` reads the first pass on the host; backend "${pred.backend.name}" reads asynchronously (train on wasm or cpu)`);
      predicted = pred.dataSync();
    } finally {
      pred.dispose();
    }
    const g = glanceInputs({ y: r.y, n: r.n, T }, predicted, glance, { maskId: m.config.maskId, padId: pad }, () => m.dropoutGenerator.random());
    return { dec: g.dec as Int32Array, T, target: g.target as Int32Array };
  };

  // [token loss, length loss] of a batch, reduced by `reduction`.
  // One forward pass: the decoder's logits and what the objectives read from the batch.
  const forward = (model: AnyModel, b: Batch, training: boolean) => {
    const m = natModel(model);
    const r = rowsOf(b);
    const backend = m.parameters()[0].backend;
    const B = r.srcShape[0];
    const src = tensor(r.src, { dtype: "int32", shape: r.srcShape, backend });
    const srcMask = src.eq(pad);
    const memory = m.encode(src, srcMask);
    const { dec, T, target } = training && glance > 0 ? glanced(m, r, memory, srcMask) : inputs(m, r, training);
    const decT = tensor(dec, { dtype: "int32", shape: [B, T], backend });
    const logits = m.decodeParallel(decT, memory, srcMask, decT.eq(pad), m.config.decoderInput === "copy"); // [B, T, V]
    return { m, r, b, backend, B, T, target, memory, srcMask, logits };
  };

  // The objective (plus the weighted length loss) of one forward pass, reduced by `reduction`.
  const lossOf = (f: ReturnType<typeof forward>, smoothing: number, reduction: "mean" | "sum"): Tensor => {
    const { m, r, b, backend, B, T, target, memory, srcMask, logits } = f;
    // Targets per decoder position (not for ctc, whose T positions align to the target by the loss).
    const tgtOf = () => tensor(target, { dtype: "int32", shape: [B, T], backend });
    const perToken = (sum: Tensor) => (reduction === "sum" ? sum : sum.div(Math.max(1, tokensOf(b))));
    let tokenLoss: Tensor;
    switch (loss) {
      case "xe":
        tokenLoss = crossEntropy(logits, tgtOf(), { ignoreIndex: pad, labelSmoothing: smoothing, reduction });
        break;
      case "oaxe":
        tokenLoss = perToken(oaxeLoss(logits, tgtOf(), { ignoreIndex: pad, labelSmoothing: smoothing, truncate: c.truncate as number, reduction: "sum" }));
        break;
      case "ngram-oaxe":
        tokenLoss = perToken(ngramOaxeLoss(logits, tgtOf(), { n: c.ngram as number, ignoreIndex: pad, labelSmoothing: smoothing, truncate: c.truncate as number, reduction: "sum" }));
        break;
      case "axe":
        tokenLoss = perToken(axeLoss(logits, tgtOf(), { delta: c.axeDelta as number, blank: m.config.maskId, ignoreIndex: pad, predLengths: r.n, reduction: "sum" }));
        break;
      case "ctc": {
        const yT = tensor(r.y, { dtype: "int32", shape: [B, r.N], backend });
        const inputLengths = r.srcLens.map((s) => Math.min(maxLen, m.config.upsample * Math.max(1, s)));
        tokenLoss = perToken(ctcLoss(logits.logSoftmax(-1), yT, { inputLengths, targetLengths: r.n, blank: m.config.maskId, reduction: "sum", zeroInfinity: true }));
        break;
      }
    }
    if (m.config.upsample > 0 || lw === 0) return tokenLoss;
    const lenT = tensor(Int32Array.from(r.n, (n) => Math.min(n, maxLen - 1)), { dtype: "int32", backend });
    const lengthLoss = crossEntropy(m.predictLength(memory, srcMask), lenT, { reduction });
    return tokenLoss.add(lengthLoss.mul(lw));
  };
  const tokensOf = (b: Batch) => b.tgtLengths.reduce((s, l) => s + l - 1, 0);

  return {
    train,
    valid,
    describe: `${kept} training pairs (${dropped} dropped), loss ${loss}`,
    tokens: tokensOf,
    srcTokens: (b) => b.srcLengths.reduce((s, n) => s + n, 0),
    loss: (m, b) => lossOf(forward(m, b, true), ls, "mean"),
    validSums: (m, b) => {
      const f = forward(m, b, false); // validation masks nothing at random: one pass serves both sums
      return cat([lossOf(f, ls, "sum").reshape(1), lossOf(f, 0, "sum").reshape(1)]);
    },
    validExtra: async (m, hooks) => {
      if (!hooks.translate) return { bleu: null, bleuSentences: 0 };
      const limit = c.validBleuLimit as number;
      const sub = limit > 0 ? corpus.valid.slice(0, limit) : corpus.valid;
      const hyps = await hooks.translate({ model: m, tokenizer: tok }, sub.map((p) => p.src), { maxLenA: 1.2, maxLenB: 10 });
      return { bleu: corpusBleu(hyps, [sub.map((p) => p.tgt)]).score, bleuSentences: sub.length };
    },
    exportInfo: () => ({
      src: c.src as string, tgt: c.tgt as string,
      decoding: { decoder: c.decoder as string, lengthBeam: c.lengthBeam as number, iterations: c.iterations as number, dropBlank: loss === "axe" },
    }),
  };
}

export const natTask: Task = {
  name: "nat",
  summary: "non-autoregressive translation (cmlm, nat, ctc models) with XE, OAXE, AXE, ngram-OAXE or CTC",
  family: "non-autoregressive",
  defaultModel: "cmlm",
  options: OPTIONS,
  check: (c) => {
    const p = parallelProblems(c);
    const isCtc = c.model === "ctc";
    if (isCtc !== (c.loss === "ctc")) p.push(isCtc ? "a `model` ctc trains with `loss` ctc" : `\`loss\` ctc needs \`model\` ctc (got ${c.model})`);
    if (c.decoder === "mask-predict" && c.model !== "cmlm") p.push("`decoder` mask-predict needs `model` cmlm");
    if (c.decoder === "ctc" && !isCtc) p.push("`decoder` ctc needs `model` ctc");
    if (c.decoder === "nat" && isCtc) p.push("a ctc model decodes with `decoder` ctc (or auto)");
    if (c.iterations !== 1 && c.decoder !== "mask-predict") p.push("`iterations` > 1 needs `decoder` mask-predict");
    if ((c.glance as number) > 0 && (c.model !== "cmlm" || c.loss !== "xe")) p.push(`\`glance\` (glancing training) needs \`model\` cmlm and \`loss\` xe (got ${c.model}, ${c.loss})`);
    return p;
  },
  readData: (c) => {
    const corpus = readParallelCorpus(c);
    return { fingerprint: corpus.fingerprint, tokenizerLines: corpus.tokenizerLines, prepare: (tok, cfg) => prepare(tok, cfg, corpus) };
  },
};
