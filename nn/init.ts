// Parameter initialisers, as in the usual Transformer recipes (fairseq, Vaswani et al. 2017).
// Values are drawn on the host from a seeded Generator, so the same seed gives the same model on
// every backend.
import { type Backend, checkShape, fmt, tensor, type Generator, numel, type Shape, type Tensor } from "../core/index.ts";

// fan_in / fan_out of a weight stored PyTorch-style as [out, in, ...receptive field].
export function fans(shape: Shape): [number, number] {
  if (shape.length < 2) throw new Error(`init: fan in/out need at least 2 dims, got ${fmt(shape)}`);
  const field = numel(shape.slice(2));
  return [shape[1] * field, shape[0] * field];
}

export function uniform(shape: Shape, bound: number, generator: Generator, backend?: Backend): Tensor {
  checkShape("uniform", shape);
  if (!(bound >= 0)) throw new Error(`uniform: bound must be ≥ 0, got ${bound}`);
  const a = new Float32Array(numel(shape));
  if (bound > 0) generator.fillUniform(a, -bound, bound);
  return tensor(a, { shape, backend });
}

export function normal(shape: Shape, std: number, generator: Generator, backend?: Backend): Tensor {
  checkShape("normal", shape);
  return tensor(generator.fillNormal(new Float32Array(numel(shape)), 0, std), { shape, backend });
}

// Glorot & Bengio (2010): U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) keeps the variance
// of activations and of gradients roughly constant through a linear layer.
export function xavierUniform(shape: Shape, generator: Generator, gain = 1, backend?: Backend): Tensor {
  const [fanIn, fanOut] = fans(shape);
  return uniform(shape, gain * Math.sqrt(6 / (fanIn + fanOut)), generator, backend);
}

// PyTorch's nn.Linear default (kaiming uniform with a = √5): U(−1/√fan_in, 1/√fan_in).
export function kaimingUniform(shape: Shape, generator: Generator, backend?: Backend): Tensor {
  const [fanIn] = fans(shape);
  return uniform(shape, 1 / Math.sqrt(fanIn), generator, backend);
}

export function constant(shape: Shape, value: number, backend?: Backend): Tensor {
  checkShape("constant", shape);
  return tensor(new Float32Array(numel(shape)).fill(value), { shape, backend });
}
