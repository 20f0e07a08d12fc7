// Models: the interfaces decoders and tasks use, the registered kinds, and model directories.
import "./registry.ts";

export * from "./kinds.ts";
export { LIMITS, Transformer, padMask, transformerConfig, transformerKind, transformerParameters, type TransformerConfig } from "./transformer.ts";
export { MarkovTransformer, markovBias, markovConfig, markovKind, markovMask, positionRange, type MarkovConfig, type MarkovVariant } from "./markov.ts";
export { LM_BENCH_CONFIG, TransformerLM, lmConfig, lmKind, lmParameters, type LMConfig } from "./lm.ts";
export { NATransformer, cmlmKind, copyIndex, ctcKind, natParameters, natVanillaKind, type NatConfig } from "./nat.ts";
export { GlideDraft, glideKind, glideParameters, glimpseMask, glideTargetOf, type GlideConfig } from "./glide.ts";
export { loadModelDir, readModelDirConfig, saveModelDir, MODEL_DIR_FILES, MODEL_DIR_FORMAT, MODEL_DIR_VERSION, type DecodingDefaults, type ModelDir, type ModelDirConfig } from "./model-dir.ts";
