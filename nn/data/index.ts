// Parallel corpora from disk to padded Int32Array batches.
export { readLines, readParallel, encodePairs, filterByLength, type TextPair, type TokenPair, type LengthFilter } from "./corpus.ts";
export { Batcher, type Batch, type BatcherOptions, type BatcherState, type Example } from "./batcher.ts";
export { defaultDataDir, findDataDir, multi30kFiles, projectRoot, type Multi30kSplit } from "./paths.ts";
export { LMBatcher, type LMBatch } from "./lm-batcher.ts";
