import type { DType, TypedArray } from "../../dtype.ts";
import type { KernelName, KernelParams } from "../../kernels.ts";

// Output allocator handed to kernels, so a backend can place outputs in its own memory.
// It must return zero-filled arrays (scatterAdd and indexAdd accumulate into them).
export type Alloc = (dtype: DType, n: number) => TypedArray;
export type KernelFn<K extends KernelName> = (alloc: Alloc, inputs: TypedArray[], params: KernelParams[K]) => TypedArray[];
export type KernelTable = { [K in KernelName]: KernelFn<K> };
