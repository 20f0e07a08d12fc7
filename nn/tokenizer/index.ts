// Text ↔ token ids: a joint BPE vocabulary with byte fallback, and the normalisation it applies.
export { BpeTokenizer, SPECIAL_TOKENS, WORD_MARKER, type BpeTrainOptions, type DecodeOptions, type BpeJSON } from "./bpe.ts";
export { normalize, splitPieces, splitWords } from "./normalize.ts";
