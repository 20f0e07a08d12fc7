// Scoring given outputs with one teacher-forced pass (no cache): the reference that incremental
// decoding is checked against, and what reranking or forced decoding needs.
//   score(y | x) = Σₜ log p(yₜ | y<ₜ, x) over y₁ … yₙ and the final eos
import { noGrad, tensor, tidy } from "../core/index.ts";
import type { EncoderDecoderModel } from "../nn/models/index.ts";
import { backendOf, inEvalMode, prepareSources, readAndDispose, type DecodeOptions, type SourceInput } from "./common.ts";

// targets[b]: the output tokens of sentence b, without bos/eos. Returns one score per sentence.
export async function scoreTargets(model: EncoderDecoderModel, src: SourceInput, targets: readonly ArrayLike<number>[], opts: DecodeOptions = {}): Promise<number[]> {
  const p = prepareSources(model, src, opts, "scoreTargets");
  if (targets.length !== p.batch) throw new Error(`scoreTargets: ${p.batch} sources but ${targets.length} targets`);
  if (p.batch === 0) return [];
  const V = model.config.tgtVocab, B = p.batch;
  const T = Math.max(...targets.map((y) => y.length)) + 1;
  const limit = model.maxDecodeLen ?? model.config.maxLen;
  if (T > limit) throw new Error(`scoreTargets: a target of ${T - 1} tokens plus eos exceeds the model's maxLen ${limit}`);
  // tgtIn = bos y, tgtOut = y eos, right-padded; padded positions get weight 0.
  const tgtIn = new Int32Array(B * T).fill(p.padId), tgtOut = new Int32Array(B * T), weight = new Float32Array(B * T);
  targets.forEach((y, b) => {
    tgtIn[b * T] = p.bosId;
    for (let j = 0; j < y.length; j++) {
      if (!Number.isInteger(y[j]) || y[j] < 0 || y[j] >= V) throw new Error(`scoreTargets: target ${b} position ${j} holds ${y[j]}, expected an id in [0, ${V})`);
      tgtIn[b * T + j + 1] = tgtOut[b * T + j] = y[j];
    }
    tgtOut[b * T + y.length] = p.eosId;
    weight.fill(1, b * T, b * T + y.length + 1);
  });
  return inEvalMode(model, async () => {
    const backend = backendOf(model);
    const sums = noGrad(() => tidy(() => {
      const src = tensor(p.ids, { shape: [B, p.width], dtype: "int32", backend });
      const inp = tensor(tgtIn, { shape: [B, T], dtype: "int32", backend });
      const out = tensor(tgtOut, { shape: [B, T, 1], dtype: "int32", backend });
      const lp = model.forward(src, inp).logSoftmax(-1).gather(2, out).reshape(B, T); // [B, T]
      return lp.mul(tensor(weight, { shape: [B, T], backend }));
    }));
    // Summed on the host in float64, the way the decoders accumulate their scores.
    const [w] = await readAndDispose([sums]);
    return Array.from({ length: B }, (_, b) => {
      let s = 0;
      for (let t = 0; t < T; t++) s += w[b * T + t];
      return s;
    });
  });
}
