// Decoding a whole corpus: sort the sentences by length so that each batch needs little padding,
// decode batch by batch (greedy for beam 1, beam search otherwise), and return the results in the
// input order. Empty sources are not decoded: their output is empty.
import { isNonAutoregressive, type EncoderDecoderModel, type NonAutoregressiveModel } from "../nn/models/index.ts";
import type { BpeTokenizer } from "../nn/tokenizer/bpe.ts";
import { beamSearch, type BeamOptions } from "./beam.ts";
import type { Hypothesis } from "./common.ts";
import { greedyDecode } from "./greedy.ts";
import { natDecode, type NatDecodeOptions } from "./nat.ts";

// Every model that translates: autoregressive (greedy, beam) or non-autoregressive (nat,
// mask-predict, ctc).
export type Translator = EncoderDecoderModel | NonAutoregressiveModel;

export interface CorpusOptions extends BeamOptions, NatDecodeOptions {
  batchSize?: number; // sentences per batch, default 32
  onBatch?: (done: number, total: number) => void; // progress, after each batch
}

export async function decodeCorpus(model: Translator, sources: readonly ArrayLike<number>[], opts: CorpusOptions = {}): Promise<Hypothesis[]> {
  const batchSize = opts.batchSize ?? 32, beam = opts.beam ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`decodeCorpus: batchSize must be an integer >= 1, got ${batchSize}`);
  const out: Hypothesis[] = sources.map(() => ({ tokens: [], score: 0 }));
  // Stable sort: sentences of equal length keep their order, so batches are reproducible.
  const order = Array.from(sources.keys()).filter((i) => sources[i].length > 0).sort((a, b) => sources[a].length - sources[b].length);
  let done = sources.length - order.length;
  for (let i = 0; i < order.length; i += batchSize) {
    const idx = order.slice(i, i + batchSize);
    const batch = idx.map((j) => sources[j]);
    const hyps = isNonAutoregressive(model) ? await natDecode(model, batch, opts)
      : beam <= 1 ? await greedyDecode(model, batch, opts) : await beamSearch(model, batch, opts);
    idx.forEach((j, k) => (out[j] = hyps[k]));
    done += idx.length;
    opts.onBatch?.(done, sources.length);
  }
  return out;
}

// Characters that end a line for some reader (Python's universal newlines, str.splitlines): a
// translation is one line of output, so they become spaces. (Byte-fallback tokens can spell them.)
const LINE_BREAKS = /[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/g;
export const toOneLine = (s: string): string => s.replace(LINE_BREAKS, " ");

export interface TranslateResult {
  translations: string[];
  truncated: number[]; // indices of sources cut to the model's maxLen
}

// Text in, text out: encode with the tokenizer, cut sources longer than the model's maxLen,
// decode, and detokenize to one line per sentence. <unk> and <mask> are never emitted (the
// decoders' default ban list).
export async function translateLines(m: { model: Translator; tokenizer: BpeTokenizer }, lines: readonly string[], opts: CorpusOptions = {}): Promise<TranslateResult> {
  const { model, tokenizer } = m;
  const maxLen = model.config.maxLen;
  const truncated: number[] = [];
  const sources = lines.map((line, i) => {
    const ids = tokenizer.encode(line);
    if (ids.length <= maxLen) return ids;
    truncated.push(i);
    return ids.slice(0, maxLen);
  });
  const hyps = await decodeCorpus(model, sources, {
    bosId: tokenizer.bosId, eosId: tokenizer.eosId, padId: tokenizer.padId,
    ...opts,
  });
  return { translations: hyps.map((h) => toOneLine(tokenizer.decode(h.tokens))), truncated };
}
