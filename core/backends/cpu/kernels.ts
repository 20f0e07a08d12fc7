// The plain-TypeScript kernel table: the readable reference every other backend is tested against.
import { adamw, binary, cast, scalar, unary, where } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { concat, gather, indexAdd, indexSelect, pad, scatterAdd, strided } from "./movement.ts";
import { crossEntropy, crossEntropyBackward, layerNorm, layerNormBackward, logSoftmaxArgmax, softmax, softmaxBackward } from "./nn.ts";
import { reduce } from "./reduce.ts";
import type { KernelTable } from "./types.ts";

export const cpuKernels: KernelTable = {
  unary, binary, scalar, where, reduce, strided, pad, concat, matmul, gather, scatterAdd,
  indexSelect, indexAdd, softmax, logSoftmaxArgmax, softmaxBackward, layerNorm, layerNormBackward, crossEntropy,
  crossEntropyBackward, cast, adamw,
};
