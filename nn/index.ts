// Hasten nn: modules, layers, models, tasks, training, optimizers and schedules.
export { Module, ModuleList, type LoadResult, type StateDict } from "./module.ts";
export * as init from "./init.ts";

export { Linear, type LinearOptions } from "./layers/linear.ts";
export { Embedding } from "./layers/embedding.ts";
export { LayerNorm } from "./layers/layer-norm.ts";
export { Dropout } from "./layers/dropout.ts";
export { LearnedPositions, PositionalEncoding, SinusoidalPositions } from "./layers/positions.ts";
export { FeedForward, type Activation } from "./layers/feed-forward.ts";
export { MASKED, MultiHeadAttention, causalBias, scaledDotProductAttention, type AttentionOptions } from "./layers/attention.ts";
export { DecoderCache, KVCache } from "./layers/kv-cache.ts";
export { RingKVCache } from "./layers/ring-kv-cache.ts";
export { GlimpseAttention } from "./layers/glimpse-attention.ts";
export { EncoderLayer, type LayerConfig } from "./layers/encoder-layer.ts";
export { DecoderLayer, type DecoderLayerInputs } from "./layers/decoder-layer.ts";

// Models: the interfaces (EncoderDecoderModel, CausalLM), the registered kinds, model directories.
export * from "./models/index.ts";
// Tasks (training recipes) and the trainer.
export * from "./tasks/index.ts";
export * from "./train/index.ts";
export { checkOption, describeSpec, type OptionSpec, type OptionTable, type OptionValue, type ValueSpec } from "./options.ts";
export { embedTokens, makePositions, projectTokens } from "./layers/token-io.ts";

export { Optimizer, type OptimizerState, type ParamState, type ParamsInput, type StepOptions, type UpdateResult } from "./optim/optimizer.ts";
export { SGD, type SGDOptions } from "./optim/sgd.ts";
export { Adam, AdamW, type AdamOptions } from "./optim/adam.ts";
export { clipGradNorm, clipGradNormAsync } from "./optim/clip.ts";
export { cosineLr, inverseSqrtLr, noamLr } from "./optim/schedules.ts";

// The text pipeline (tokenizer, corpus reading, batching) lives beside the modules.
export * from "./tokenizer/index.ts";
export * from "./data/index.ts";

// Objectives: OAXE, ngram-OAXE, AXE, CTC, masked cross-entropy; the assignment solver.
export * from "./losses/index.ts";
