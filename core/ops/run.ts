// The one place where ops meet the backend: check inputs, run a kernel, wrap outputs,
// and record the autodiff node.
import { needsGrad } from "../autograd.ts";
import { getBackend, type Backend } from "../backend.ts";
import type { DType, TypedArray } from "../dtype.ts";
import { KERNEL_OUTPUTS, type KernelName, type KernelParams } from "../kernels.ts";
import { fmt, numel, type Shape } from "../shape.ts";
import { Storage, Tensor } from "../tensor.ts";

export function backendOf(op: string, inputs: readonly Tensor[]): Backend {
  if (inputs.length === 0) return getBackend();
  const b = inputs[0].backend;
  for (const t of inputs) {
    if (t.backend !== b) {
      throw new Error(`${op}: tensors live on different backends ("${b.name}" and "${t.backend.name}"); move one with .to or recreate it`);
    }
  }
  return b;
}

export interface OutSpec {
  shape: Shape;
  dtype: DType;
}

export function runKernel<K extends KernelName>(kernel: K, inputs: readonly Tensor[], params: KernelParams[K], outs: OutSpec[], op: string = kernel): Tensor[] {
  const backend = backendOf(op, inputs);
  if (outs.length !== KERNEL_OUTPUTS[kernel]) throw new Error(`internal: kernel ${kernel} has ${KERNEL_OUTPUTS[kernel]} outputs, ${outs.length} declared`);
  const bufs = backend.run(kernel, inputs.map((t) => t.buf), params);
  return bufs.map((buf, i) => {
    const want = numel(outs[i].shape);
    if (buf.size !== want) throw new Error(`internal: kernel ${kernel} on ${backend.name} returned ${buf.size} elements for ${fmt(outs[i].shape)}`);
    return new Tensor(new Storage(backend, buf), outs[i].shape, outs[i].dtype);
  });
}

export function run1<K extends KernelName>(kernel: K, inputs: readonly Tensor[], params: KernelParams[K], shape: Shape, dtype: DType, op?: string): Tensor {
  return runKernel(kernel, inputs, params, [{ shape, dtype }], op)[0];
}

// Attach the backward rule to `out` when any input requires grad (and grad mode is on).
export function record(out: Tensor, prim: string, inputs: Tensor[], vjp: (g: Tensor) => (Tensor | null)[]): Tensor {
  if (needsGrad(inputs)) {
    out.requiresGrad = true;
    out._node = { prim, inputs, vjp };
  }
  return out;
}

export function fromArray(data: TypedArray, shape: Shape, dtype: DType, backend: Backend = getBackend()): Tensor {
  return new Tensor(new Storage(backend, backend.upload(dtype, data)), shape, dtype);
}

export function filled(shape: Shape, value: number, dtype: DType, backend: Backend = getBackend()): Tensor {
  return new Tensor(new Storage(backend, backend.full(dtype, numel(shape), value)), shape, dtype);
}

// A tensor sharing `t`'s buffer with a new shape (reshape/view); no copy, no kernel.
export function shareAs(t: Tensor, shape: Shape): Tensor {
  const s = t.storage;
  s.refs++;
  return new Tensor(s, shape, t.dtype);
}
