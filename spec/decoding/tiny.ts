// Tiny random translation models for the decoding and command tests.
//
// A freshly initialised model is nearly uniform and, with tied embeddings, mostly repeats one
// token; an untied output layer and weights scaled up give peaked, source-dependent
// distributions, so searches take different paths and the properties have something to test.
import { Generator, noGrad } from "../../core/index.ts";
import { BpeTokenizer, Transformer, transformerConfig, type TransformerConfig } from "../../nn/index.ts";
import type { ModelDirConfig } from "../../nn/models/model-dir.ts";

export function tinyModel(seed: number, extra: Partial<TransformerConfig> & { gain?: number } = {}): Transformer {
  const { gain = 2, ...rest } = extra;
  const vocab = rest.tgtVocab ?? 12;
  const model = new Transformer(transformerConfig({
    srcVocab: vocab, tgtVocab: vocab, dModel: 16, heads: 2, ffn: 32, encLayers: 2, decLayers: 2, maxLen: 16,
    dropout: 0, tieEmbeddings: false, tieOutput: false, seed, ...rest,
  }));
  noGrad(() => {
    for (const p of model.parameters()) if (p.ndim === 2) p.assign_(p.mul(gain));
  });
  return model.eval();
}

// n random sources of 1 … maxLen tokens drawn from [lo, vocab).
export function randomSources(seed: number, n: number, vocab: number, maxLen: number, lo = 3): number[][] {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => Array.from({ length: g.randint(1, maxLen + 1) }, () => g.randint(lo, vocab)));
}

// A tokenizer learned from a few German and English captions, and a tiny model over its vocabulary.
export const TINY_LINES = [
  "Ein Mann fährt Fahrrad.", "A man rides a bike.",
  "Zwei Hunde spielen im Schnee.", "Two dogs play in the snow.",
  "Eine Frau liest ein Buch.", "A woman reads a book.",
  "Kinder spielen am Strand.", "Children play on the beach.",
];

export function tinyTokenizer(): BpeTokenizer {
  return BpeTokenizer.train(TINY_LINES, { vocabSize: 330 });
}

export function tinyModelDir(seed: number, extra: Partial<TransformerConfig> & { gain?: number } = {}): { model: Transformer; tokenizer: BpeTokenizer; config: ModelDirConfig } {
  const tokenizer = tinyTokenizer();
  const model = tinyModel(seed, { srcVocab: tokenizer.vocabSize, tgtVocab: tokenizer.vocabSize, maxLen: 64, ...extra });
  const config: ModelDirConfig = {
    kind: "transformer", config: { ...model.config }, task: "translation", src: "de", tgt: "en",
    decoding: { maxLenA: 1, maxLenB: 3, beam: 3, lengthPenalty: 1 },
    training: { note: "random weights, for tests" },
  };
  return { model, tokenizer, config };
}
