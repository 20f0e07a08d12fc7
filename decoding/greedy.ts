// Greedy decoding: at each step every unfinished sentence takes its most probable next token,
//   yₜ = argmax_v log p(v | y<ₜ, x)      (pad, bos and opts.banned excluded)
// over one batch, one decoder step for all rows through the KV cache. A sentence leaves the batch
// when it emits eos (or reaches its length limit, where eos is forced): its rows are dropped from
// the cache, so the remaining steps cost only what is left.
//
// Only B ids and B log-probabilities come back from the backend per step (2·B at a length
// limit): logSoftmaxArgmax picks from the logits in one kernel, without writing the [B, V]
// log-probabilities (the same ids and values as log-softmax, + ban bias, argmax and gather).
import { logSoftmaxArgmax, tensor, type Tensor } from "../core/index.ts";
import type { EncoderDecoderModel } from "../nn/models/index.ts";
import { backendOf, DecoderRows, inEvalMode, prepareSources, readAndDispose, type DecodeOptions, type Hypothesis, type SourceInput } from "./common.ts";

export async function greedyDecode(model: EncoderDecoderModel, src: SourceInput, opts: DecodeOptions = {}): Promise<Hypothesis[]> {
  const p = prepareSources(model, src, opts, "greedyDecode");
  if (p.batch === 0) return [];
  return inEvalMode(model, async () => {
    const hyps: Hypothesis[] = p.lengths.map(() => ({ tokens: [], score: 0 }));
    // −∞ on banned ids, added before the argmax.
    const bias = new Float32Array(p.banned.length);
    p.banned.forEach((b, i) => (bias[i] = b ? -Infinity : 0));
    const banBias = tensor(bias, { backend: backendOf(model) });
    const rows = new DecoderRows(model, p);
    try {
      let sentence = Array.from(hyps.keys()); // the sentence each row decodes
      let last = new Int32Array(p.batch).fill(p.bosId);
      for (let t = 0; sentence.length > 0; t++) {
        const n = sentence.length;
        // log p(eos) is needed only where eos is forced
        const atLimit = sentence.some((s) => t >= p.maxOut[s]);
        const [choice, chosen, eos] = await readAndDispose(rows.stepLogits(last, (logits) => {
          const { indices, values } = logSoftmaxArgmax(logits, banBias); // [N] int32, [N]
          return (atLimit ? [indices, values, logits.logSoftmax(-1).narrow(1, p.eosId, 1).reshape(n)] : [indices, values]) as Tensor[];
        }));
        const keepRows: number[] = [], nextTokens: number[] = [];
        for (let r = 0; r < n; r++) {
          const h = hyps[sentence[r]];
          if (t >= p.maxOut[sentence[r]]) {
            h.score += eos[r]; // length limit: eos is forced
          } else if (choice[r] === p.eosId) {
            h.score += chosen[r];
          } else {
            h.score += chosen[r];
            h.tokens.push(choice[r]);
            keepRows.push(r);
            nextTokens.push(choice[r]);
          }
        }
        if (keepRows.length === 0) break;
        rows.select(keepRows);
        sentence = keepRows.map((r) => sentence[r]);
        last = Int32Array.from(nextTokens);
      }
    } finally {
      rows.dispose();
      banBias.dispose();
    }
    return hyps;
  });
}
