// Training objectives beyond plain cross-entropy: the NAT losses (OAXE, ngram-OAXE, AXE, CTC), the
// CMLM masked cross-entropy, and the assignment solver OAXE is built on.
export { linearSumAssignment, linearSumAssignmentFlat } from "./assignment.ts";
export { oaxeLoss, oaxeLossAsync, type OaxeOptions } from "./oaxe.ts";
export { ngramOaxeLoss, ngramOaxeLossAsync, type NgramOaxeOptions } from "./ngram-oaxe.ts";
export { axeLoss, axeLossAsync, type AxeOptions } from "./axe.ts";
export { ctcLoss, ctcLossAsync, type CtcOptions } from "./ctc.ts";
export { maskedCrossEntropy, type MaskedCrossEntropyOptions } from "./masked-xe.ts";
