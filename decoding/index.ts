// Hasten decoding: search algorithms over a trained model's incremental decoder.
export { DecoderRows, prepareSources, type DecodeOptions, type Hypothesis, type SourceInput } from "./common.ts";
export { greedyDecode } from "./greedy.ts";
export { beamSearch, beamSearchNBest, type BeamOptions, type ScoredHypothesis } from "./beam.ts";
export { scoreTargets } from "./score.ts";
export { decodeCorpus, toOneLine, translateLines, type CorpusOptions, type TranslateResult, type Translator } from "./corpus.ts";
export { ctcCollapse, defaultNatDecoder, natDecode, type NatDecodeOptions, type NatDecoder, type NatHypothesis } from "./nat.ts";
export { DEFAULT_BANNED } from "./common.ts";
export { argmaxAllowed, checkSampling, drawFrom, generate, samplingDistribution, type Generation, type GenerateOptions, type SamplingRule } from "./generate.ts";
export { distillLines, type DistillOptions, type DistillResult } from "./distill.ts";
export { generationSetup, type GenerationSetup } from "./generate.ts";
export * from "./speculative/index.ts";
