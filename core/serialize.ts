// Tensor-level checkpoints over the raw safetensors codec: {name: Tensor} ↔ file.
import { getBackend, type Backend } from "./backend.ts";
import type { TypedArray } from "./dtype.ts";
import { fromArray } from "./ops/run.ts";
import {
  rawFromFloat32, rawFromInt32, rawToFloat32, rawToInt32, readSafetensors, writeSafetensors, type RawTensor,
} from "./safetensors.ts";
import type { Tensor } from "./tensor.ts";

export interface SaveOptions {
  // Storage dtype for float tensors: F32 (exact) or F16/BF16 (half the size).
  floatDtype?: "F32" | "F16" | "BF16";
  metadata?: Record<string, string>;
  mkdir?: boolean;
}

export async function toRaw(record: Record<string, Tensor>, floatDtype: "F32" | "F16" | "BF16" = "F32"): Promise<Record<string, RawTensor>> {
  const raw: Record<string, RawTensor> = {};
  for (const [name, t] of Object.entries(record)) {
    if (!t || typeof t.data !== "function") throw new Error(`saveSafetensors: "${name}" is not a Tensor`);
    raw[name] = rawOf(name, t, await t.data(), floatDtype);
  }
  return raw;
}

function rawOf(name: string, t: Tensor, data: TypedArray, floatDtype: "F32" | "F16" | "BF16"): RawTensor {
  return t.dtype === "float32" ? rawFromFloat32(data as Float32Array, t.shape, floatDtype) : rawFromInt32(data as Int32Array, t.shape, "I32");
}

// Reads every tensor first, then writes the file atomically: a failure leaves the old file.
// When every tensor lives on a synchronous backend the file is complete when this returns (the
// Promise is already settled), so `saveSafetensors(p, r); loadSafetensors(p)` works as well as
// `await saveSafetensors(p, r)`; device tensors are read asynchronously first.
export function saveSafetensors(path: string, record: Record<string, Tensor>, opts: SaveOptions = {}): Promise<void> {
  const floatDtype = opts.floatDtype ?? "F32";
  const write = (raw: Record<string, RawTensor>) => writeSafetensors(path, raw, opts.metadata, { mkdir: opts.mkdir });
  try {
    const entries = Object.entries(record);
    for (const [name, t] of entries) if (!t || typeof t.data !== "function") throw new Error(`saveSafetensors: "${name}" is not a Tensor`);
    if (entries.every(([, t]) => t.backend.sync)) {
      const raw: Record<string, RawTensor> = {};
      for (const [name, t] of entries) raw[name] = rawOf(name, t, t.dataSync(), floatDtype);
      write(raw);
      return Promise.resolve();
    }
    return toRaw(record, floatDtype).then(write);
  } catch (e) {
    return Promise.reject(e);
  }
}

export function fromRaw(raw: RawTensor, name: string, backend: Backend = getBackend()): Tensor {
  const isFloat = raw.dtype === "F32" || raw.dtype === "F16" || raw.dtype === "BF16" || raw.dtype === "F64";
  return isFloat
    ? fromArray(rawToFloat32(raw, name), raw.shape, "float32", backend)
    : fromArray(rawToInt32(raw, name), raw.shape, "int32", backend);
}

// Float dtypes load as float32, integer dtypes as int32. The whole file is validated before
// any tensor is made.
export function loadSafetensors(path: string, backend?: Backend): Record<string, Tensor> {
  const { tensors } = readSafetensors(path);
  const out: Record<string, Tensor> = {};
  for (const [name, raw] of Object.entries(tensors)) out[name] = fromRaw(raw, name, backend);
  return out;
}

export function loadSafetensorsWithMetadata(path: string, backend?: Backend): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const { tensors, metadata } = readSafetensors(path);
  const out: Record<string, Tensor> = {};
  for (const [name, raw] of Object.entries(tensors)) out[name] = fromRaw(raw, name, backend);
  return { tensors: out, metadata };
}
