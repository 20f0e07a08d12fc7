// Hasten core: tensors, autodiff, backends, RNG and checkpoints.
import { registerBackend } from "./backend.ts";
import { createCpuBackend } from "./backends/cpu/index.ts";

registerBackend("cpu", createCpuBackend);
import "./backends/wasm/register.ts"; // the default: WebAssembly SIMD kernels on all cores
import "./backends/gpujs/register.ts"; // gpu.js loads only when the backend is first created

export { Tensor } from "./tensor.ts";
export type { DType, TypedArray } from "./dtype.ts";
export { getBackend, registerBackend, registeredBackends, selectBackend, setBackend, type Backend, type BackendBuffer } from "./backend.ts";
export { backward, isGradEnabled, noGrad } from "./autograd.ts";
export { keep, tidy } from "./scope.ts";
export { leakBackstop, setLeakBackstop } from "./backstop.ts";
export { Generator, defaultGenerator, manualSeed, mulberry32, shuffleInPlace, type GeneratorState } from "./rng.ts";
export { arange, eye, full, fullLike, ones, onesLike, rand, randint, randn, tensor, zeros, zerosLike, type TensorOptions } from "./ops/creation.ts";
export { add, clamp, div, maskedFill, maximum, minimum, mul, pow, rdiv, rsub, sub, where } from "./ops/elementwise.ts";
export { argmax, argmin, logsumexp, max, mean, min, sum, variance } from "./ops/reduce.ts";
export { linear, matmul, type MatmulOptions } from "./ops/linalg.ts";
export { adamwUpdate, type AdamwHyper, type AdamwResult } from "./ops/optim.ts";
export { cat, catAfterPrefix, chunk, expand, flatten, narrow, pad, permute, reshape, split, squeeze, stack, transpose, unsqueeze } from "./ops/shape.ts";
export { embedding, gather, indexSelect, oneHot, scatterAdd } from "./ops/indexing.ts";
export { crossEntropy, dropout, layerNorm, logSoftmax, logSoftmaxArgmax, softmax, type CrossEntropyOptions } from "./ops/nn.ts";
export { fromRaw, loadSafetensors, loadSafetensorsWithMetadata, saveSafetensors, toRaw, type SaveOptions } from "./serialize.ts";
export { encodeSafetensorsChunks, readSafetensors, type RawDType, type RawTensor, type SafetensorsContents } from "./safetensors.ts";
export { syncDirectory, writeFileAtomic, writeFileAtomicAsync } from "./atomic-write.ts";
export { checkShape, fmt, numel, type Shape } from "./shape.ts";
export { allFinite, allFiniteSync, firstNonFinite } from "./finite.ts";
