// Creating tensors: from data, filled, ranges, identity, and seeded random values.
import { getBackend, type Backend } from "../backend.ts";
import { isDType, type DType, type TypedArray } from "../dtype.ts";
import { defaultGenerator, type Generator } from "../rng.ts";
import { checkShape, fmt, numel, type Shape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { filled, fromArray } from "./run.ts";

export interface TensorOptions {
  shape?: Shape;
  dtype?: DType;
  requiresGrad?: boolean;
  backend?: Backend;
}

type Nested = number | readonly Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
    if (cur === undefined) break;
  }
  return shape;
}

function flattenNested(data: Nested, shape: number[], out: number[], dim: number, path: string): void {
  if (dim === shape.length) {
    if (typeof data !== "number") throw new Error(`tensor: expected a number at ${path || "top"}, got ${Array.isArray(data) ? "an array" : typeof data}`);
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) {
    throw new Error(`tensor: ragged nested array: expected length ${shape[dim]} at ${path || "top"}, got ${Array.isArray(data) ? data.length : typeof data}`);
  }
  for (let i = 0; i < data.length; i++) flattenNested(data[i], shape, out, dim + 1, `${path}[${i}]`);
}

function finish(t: Tensor, requiresGrad: boolean | undefined): Tensor {
  if (requiresGrad) t.requiresGrad_(true);
  return t;
}

export function tensor(data: Nested | TypedArray | readonly number[], opts: TensorOptions = {}): Tensor {
  if (opts.dtype !== undefined && !isDType(opts.dtype)) throw new Error(`tensor: unknown dtype ${JSON.stringify(opts.dtype)}; expected "float32" or "int32"`);
  let values: ArrayLike<number>;
  let shape: number[];
  if (data instanceof Float32Array || data instanceof Int32Array || data instanceof Float64Array || data instanceof Uint8Array) {
    values = data;
    shape = opts.shape ? opts.shape.slice() : [data.length];
  } else if (typeof data === "number") {
    values = [data];
    shape = opts.shape ? opts.shape.slice() : [];
  } else if (Array.isArray(data)) {
    const inferred = inferShape(data as Nested);
    const flat: number[] = [];
    flattenNested(data as Nested, inferred, flat, 0, "");
    values = flat;
    shape = opts.shape ? opts.shape.slice() : inferred;
  } else {
    throw new Error(`tensor: expected a number, nested array or typed array, got ${data === null ? "null" : typeof data}`);
  }
  checkShape("tensor", shape);
  if (numel(shape) !== values.length) throw new Error(`tensor: shape ${fmt(shape)} needs ${numel(shape)} values, got ${values.length}`);
  const dtype: DType = opts.dtype ?? (data instanceof Int32Array ? "int32" : "float32");
  if (dtype === "int32") {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isInteger(values[i]) || values[i] > 2147483647 || values[i] < -2147483648) {
        throw new Error(`tensor: dtype int32 needs 32-bit integers, got ${values[i]} at index ${i}`);
      }
    }
  }
  if (opts.requiresGrad && dtype !== "float32") throw new Error(`tensor: requiresGrad needs dtype float32, got ${dtype}`);
  const arr = dtype === "float32" ? Float32Array.from(values) : Int32Array.from(values);
  return finish(fromArray(arr, shape, dtype, opts.backend ?? getBackend()), opts.requiresGrad);
}

function shapeArg(op: string, shape: Shape | number): number[] {
  const s = typeof shape === "number" ? [shape] : shape.slice();
  checkShape(op, s);
  return s;
}

export function full(shape: Shape | number, value: number, opts: TensorOptions = {}): Tensor {
  const s = shapeArg("full", shape);
  const dtype = opts.dtype ?? "float32";
  if (dtype === "int32" && !Number.isInteger(value)) throw new Error(`full: int32 needs an integer value, got ${value}`);
  return finish(filled(s, value, dtype, opts.backend ?? getBackend()), opts.requiresGrad);
}
export const zeros = (shape: Shape | number, opts: TensorOptions = {}): Tensor => full(shape, 0, opts);
export const ones = (shape: Shape | number, opts: TensorOptions = {}): Tensor => full(shape, 1, opts);
export const zerosLike = (t: Tensor, opts: TensorOptions = {}): Tensor => full(t.shape, 0, { dtype: t.dtype, backend: t.backend, ...opts });
export const onesLike = (t: Tensor, opts: TensorOptions = {}): Tensor => full(t.shape, 1, { dtype: t.dtype, backend: t.backend, ...opts });
export const fullLike = (t: Tensor, value: number, opts: TensorOptions = {}): Tensor => full(t.shape, value, { dtype: t.dtype, backend: t.backend, ...opts });

// arange(end) or arange(start, end, step); int32 when all arguments are integers.
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0 || !Number.isFinite(step) || !Number.isFinite(start) || !Number.isFinite(end)) {
    throw new Error(`arange: need finite start/end and non-zero step, got ${start}, ${end}, ${step}`);
  }
  const n = Math.max(0, Math.ceil((end - start) / step));
  const dtype = opts.dtype ?? (Number.isInteger(start) && Number.isInteger(step) ? "int32" : "float32");
  const arr = dtype === "int32" ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) arr[i] = start + i * step;
  return finish(fromArray(arr, [n], dtype, opts.backend ?? getBackend()), opts.requiresGrad);
}

export function eye(n: number, m = n, opts: TensorOptions = {}): Tensor {
  checkShape("eye", [n, m]);
  const arr = new Float32Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) arr[i * m + i] = 1;
  return finish(fromArray(arr, [n, m], "float32", opts.backend ?? getBackend()), opts.requiresGrad);
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

// Values are drawn on the host from a seeded Generator: same seed, same numbers, every backend.
export function rand(shape: Shape | number, opts: RandomOptions = {}): Tensor {
  const s = shapeArg("rand", shape);
  const arr = (opts.generator ?? defaultGenerator()).fillUniform(new Float32Array(numel(s)));
  return finish(fromArray(arr, s, "float32", opts.backend ?? getBackend()), opts.requiresGrad);
}

export function randn(shape: Shape | number, opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const s = shapeArg("randn", shape);
  const arr = (opts.generator ?? defaultGenerator()).fillNormal(new Float32Array(numel(s)), opts.mean ?? 0, opts.std ?? 1);
  return finish(fromArray(arr, s, "float32", opts.backend ?? getBackend()), opts.requiresGrad);
}

export function randint(lo: number, hi: number, shape: Shape | number, opts: RandomOptions = {}): Tensor {
  const s = shapeArg("randint", shape);
  const g = opts.generator ?? defaultGenerator();
  const arr = new Int32Array(numel(s));
  for (let i = 0; i < arr.length; i++) arr[i] = g.randint(lo, hi);
  return fromArray(arr, s, "int32", opts.backend ?? getBackend());
}
