// The `cpu` backend: buffers are plain typed arrays, kernels are plain TypeScript.
import type { Backend, BackendBuffer } from "../../backend.ts";
import { arrayFor, type DType, type TypedArray } from "../../dtype.ts";
import type { KernelName, KernelParams } from "../../kernels.ts";
import { cpuKernels } from "./kernels.ts";
import type { Alloc, KernelTable } from "./types.ts";

export class CpuBuffer implements BackendBuffer {
  constructor(readonly dtype: DType, readonly data: TypedArray) {}
  get size(): number {
    return this.data.length;
  }
}

// Shared by every backend whose buffers are host typed arrays (cpu, and wasm with heap views).
export class HostBackend implements Backend {
  readonly sync = true;
  protected live = 0;
  constructor(readonly name: string, protected kernels: KernelTable, protected alloc: Alloc = arrayFor) {}

  protected wrap(dtype: DType, data: TypedArray): CpuBuffer {
    this.live++;
    return new CpuBuffer(dtype, data);
  }
  upload(dtype: DType, data: TypedArray): BackendBuffer {
    const arr = this.alloc(dtype, data.length);
    arr.set(data);
    return this.wrap(dtype, arr);
  }
  full(dtype: DType, size: number, value: number): BackendBuffer {
    const arr = this.alloc(dtype, size);
    if (value !== 0) arr.fill(value);
    return this.wrap(dtype, arr);
  }
  read(buf: BackendBuffer): Promise<TypedArray> {
    return Promise.resolve(this.readSync(buf));
  }
  readSync(buf: BackendBuffer): TypedArray {
    return (buf as CpuBuffer).data.slice();
  }
  // Zero-copy view for kernels and fast paths inside host backends; never hand it to users.
  view(buf: BackendBuffer): TypedArray {
    return (buf as CpuBuffer).data;
  }
  free(_buf: BackendBuffer): void {
    this.live--;
  }
  run<K extends KernelName>(kernel: K, inputs: BackendBuffer[], params: KernelParams[K]): BackendBuffer[] {
    const fn = this.kernels[kernel] as (a: Alloc, x: TypedArray[], p: KernelParams[K]) => TypedArray[];
    const outs = fn(this.alloc, inputs.map((b) => (b as CpuBuffer).data), params);
    return outs.map((o) => this.wrap(o instanceof Int32Array ? "int32" : "float32", o));
  }
  liveBuffers(): number {
    return this.live;
  }
}

export function createCpuBackend(): Backend {
  return new HostBackend("cpu", cpuKernels);
}
