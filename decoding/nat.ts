// Decoding non-autoregressive translation models: the whole target in parallel.
//
//   nat          one pass: the length head's top-ℓ lengths (the "length beam") are each filled
//                with [MASK]s (cmlm) or with copied source tokens (nat) and decoded at once;
//                every position takes its most probable token; the candidate with the highest
//                average log-probability wins.
//   mask-predict T iterations (Ghazvininejad et al. 2019): after the first pass, iteration
//                t = 1 … T−1 re-masks the n = ⌊L·(T−t)/T⌋ least probable tokens of each
//                candidate and predicts them again; tokens and probabilities change only at
//                re-masked positions. T = 1 is `nat`.
//   ctc          the decoder reads the source copied to r·S positions; each position takes its
//                most probable token (the blank included), and the collapse merges repeats, then
//                drops blanks (Graves et al. 2006).
//
// Only two numbers per position come back from the backend (the chosen id and its
// log-probability); pad, bos, eos, <unk> (and [MASK], except as the ctc blank) are never chosen.
import { logSoftmaxArgmax, noGrad, tensor, tidy, type Tensor } from "../core/index.ts";
import { copyIndex, type NonAutoregressiveModel } from "../nn/models/index.ts";
import { backendOf, DEFAULT_BANNED, inEvalMode, prepareSources, readAndDispose, type DecodeOptions, type Hypothesis, type SourceInput } from "./common.ts";

export type NatDecoder = "nat" | "mask-predict" | "ctc";

export interface NatDecodeOptions extends DecodeOptions {
  decoder?: NatDecoder; // default: ctc for ctc models, else nat
  lengthBeam?: number; // candidate lengths per sentence (nat, mask-predict); default 3
  iterations?: number; // mask-predict T; default 10 for mask-predict, 1 for nat
  // AXE-trained models predict [MASK] as the ε of skipped positions: allow it, then drop it.
  dropBlank?: boolean;
}

export interface NatHypothesis extends Hypothesis {
  length: number; // decoder positions used (before the ctc collapse)
  avgLogProb: number; // what the length beam ranks by
}

export function defaultNatDecoder(model: NonAutoregressiveModel): NatDecoder {
  return model.config.upsample > 0 ? "ctc" : "nat";
}

export async function natDecode(model: NonAutoregressiveModel, src: SourceInput, opts: NatDecodeOptions = {}): Promise<NatHypothesis[]> {
  const who = "natDecode";
  const decoder = opts.decoder ?? defaultNatDecoder(model);
  const c = model.config;
  if (decoder === "ctc" && c.upsample === 0) throw new Error(`${who}: the ctc decoder needs a ctc model (upsample > 0); this model has a length head: use nat or mask-predict`);
  if (decoder !== "ctc" && c.upsample > 0) throw new Error(`${who}: a ctc model decodes with the ctc decoder, not ${decoder}`);
  if (decoder === "mask-predict" && c.decoderInput !== "mask") throw new Error(`${who}: mask-predict re-masks tokens, which needs a [MASK]-input model (cmlm); this one reads copied source tokens`);
  const lengthBeam = opts.lengthBeam ?? 3;
  const iterations = opts.iterations ?? (decoder === "mask-predict" ? 10 : 1);
  if (!Number.isInteger(lengthBeam) || lengthBeam < 1 || lengthBeam > 64) throw new Error(`${who}: lengthBeam must be an integer in [1, 64], got ${lengthBeam}`);
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 100) throw new Error(`${who}: iterations must be an integer in [1, 100], got ${iterations}`);
  if (decoder === "nat" && iterations !== 1) throw new Error(`${who}: the nat decoder is one pass; use mask-predict for iterations > 1`);
  const p = prepareSources(model, src, { ...opts, banned: [] }, who);
  if (p.batch === 0) return [];
  const V = c.tgtVocab;
  // Never chosen: pad, bos, eos, <unk>, and [MASK] unless it is the ctc blank.
  const ban = new Float32Array(V);
  const blankAllowed = decoder === "ctc" || (opts.dropBlank ?? false);
  for (const id of [p.padId, p.bosId, p.eosId, ...(opts.banned ?? DEFAULT_BANNED)]) if (id >= 0 && id < V && !(blankAllowed && id === c.maskId)) ban[id] = -Infinity;
  const backend = backendOf(model);
  return inEvalMode(model, async () => {
    const [srcMask, memory] = noGrad(() => tidy(() => {
      const srcT = tensor(p.ids, { shape: [p.batch, p.width], dtype: "int32", backend });
      const mask = srcT.eq(p.padId); // [B, S], 1 at padding
      return [mask, model.encode(srcT, mask)];
    }));
    const banBias = tensor(ban, { backend });
    try {
      // Candidate rows: (sentence, length).
      let rows: { sentence: number; len: number; lengthLogProb: number }[];
      if (decoder === "ctc") {
        rows = p.lengths.map((n, b) => ({ sentence: b, len: Math.min(c.maxLen, Math.max(1, c.upsample * n)), lengthLogProb: 0 }));
      } else {
        const [lenLp] = await readAndDispose([noGrad(() => tidy(() => model.predictLength(memory, srcMask).logSoftmax(-1)))]); // [B, maxLen]
        rows = [];
        for (let b = 0; b < p.batch; b++) {
          const cap = c.maxLen - 1; // lengths 1 … maxLen − 1 (the positions cover maxLen)
          const scored: [number, number][] = [];
          for (let n = 1; n <= cap; n++) scored.push([n, lenLp[b * c.maxLen + n]]);
          scored.sort((x, y) => y[1] - x[1] || x[0] - y[0]);
          for (const [n, lp] of scored.slice(0, lengthBeam)) rows.push({ sentence: b, len: n, lengthLogProb: lp });
        }
      }
      const R = rows.length, T = Math.max(...rows.map((r) => r.len));
      const [mem, memMask] = noGrad(() => tidy(() => {
        const rowIdx = tensor(Int32Array.from(rows, (r) => r.sentence), { dtype: "int32", backend });
        return [memory.indexSelect(0, rowIdx), srcMask.indexSelect(0, rowIdx)];
      }));
      // Decoder inputs: [MASK]s, or the copied source ids.
      const decIn = new Int32Array(R * T).fill(p.padId);
      rows.forEach((r, i) => {
        if (c.decoderInput === "mask") decIn.fill(c.maskId, i * T, i * T + r.len);
        else {
          const n = p.lengths[r.sentence], map = copyIndex(n, r.len);
          for (let j = 0; j < r.len; j++) decIn[i * T + j] = n === 0 ? p.padId : p.ids[r.sentence * p.width + map[j]];
        }
      });
      const pass = async (ids: Int32Array) => {
        const [choice, best] = await readAndDispose(noGrad(() => tidy(() => {
          const inp = tensor(ids, { shape: [R, T], dtype: "int32", backend });
          const logits = model.decodeParallel(inp, mem, memMask, inp.eq(p.padId), c.decoderInput === "copy"); // [R, T, V]
          // argmax and max of logSoftmax(logits) + ban in one kernel, without writing [R, T, V] twice more
          const { indices, values } = logSoftmaxArgmax(logits, banBias); // [R, T] int32, [R, T]
          return [indices, values] as Tensor[];
        })));
        return { choice: choice as Int32Array, best: best as Float32Array };
      };
      let tokens: Int32Array, probs: Float32Array;
      try {
        ({ choice: tokens, best: probs } = await pass(decIn));
        tokens = Int32Array.from(tokens);
        probs = Float32Array.from(probs);
        for (let t = 1; t < iterations; t++) {
          const next = Int32Array.from(decIn);
          const remasked: number[][] = rows.map((r, i) => {
            const n = Math.floor((r.len * (iterations - t)) / iterations);
            const order = Array.from({ length: r.len }, (_, j) => j).sort((a, b) => probs[i * T + a] - probs[i * T + b] || a - b);
            const chosen = order.slice(0, n);
            for (let j = 0; j < r.len; j++) next[i * T + j] = tokens[i * T + j];
            for (const j of chosen) next[i * T + j] = c.maskId;
            return chosen;
          });
          if (remasked.every((m) => m.length === 0)) break;
          const again = await pass(next);
          rows.forEach((_, i) => {
            for (const j of remasked[i]) {
              tokens[i * T + j] = again.choice[i * T + j];
              probs[i * T + j] = again.best[i * T + j];
            }
          });
        }
      } finally {
        mem.dispose();
        memMask.dispose();
      }
      // Per sentence: the candidate with the best average log-probability (ties: the likelier length).
      const out: NatHypothesis[] = p.lengths.map(() => ({ tokens: [], score: -Infinity, length: 0, avgLogProb: -Infinity }));
      rows.forEach((r, i) => {
        let sum = 0;
        for (let j = 0; j < r.len; j++) sum += probs[i * T + j];
        const avg = sum / r.len;
        const o = out[r.sentence];
        if (avg > o.avgLogProb) {
          const ids = Array.from(tokens.subarray(i * T, i * T + r.len));
          const kept = decoder === "ctc" ? ctcCollapse(ids, c.maskId) : blankAllowed ? ids.filter((t) => t !== c.maskId) : ids;
          out[r.sentence] = { tokens: kept, score: sum, length: r.len, avgLogProb: avg };
        }
      });
      // An empty source gives an empty translation.
      p.lengths.forEach((n, b) => {
        if (n === 0) out[b] = { tokens: [], score: 0, length: 0, avgLogProb: 0 };
      });
      return out;
    } finally {
      for (const t of [srcMask, memory, banBias]) t.dispose();
    }
  });
}

// CTC's collapse B: merge runs of equal tokens, then drop blanks ("a a ε a b b" → "a a b").
export function ctcCollapse(ids: readonly number[], blank: number): number[] {
  const out: number[] = [];
  let prev = -1;
  for (const id of ids) {
    if (id !== prev && id !== blank) out.push(id);
    prev = id;
  }
  return out;
}
