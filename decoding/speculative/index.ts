// Speculative decoding: a draft proposes, the target verifies several tokens in one pass, and the
// acceptance rule keeps the output distributed exactly as the target's own.
export { acceptanceProbability, chooseAtNode, EXACT_RULES, expectedTokensPerCall, type AcceptRules, type Candidate } from "./accept.ts";
export { glideDrafter, lmDrafter, type Drafter } from "./drafters.ts";
export { acceptanceSummary, speculativeGenerate, type RoundInfo, type SpeculativeGeneration, type SpeculativeOptions } from "./speculative.ts";
export { addNode, capeBudget, CAPE_BINS, checkBins, childrenOf, drawTreeMask, isChain, rootTree, topK, treeMask, treePositions, type TokenTree } from "./tree.ts";
